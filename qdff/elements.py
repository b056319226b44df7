"""Per-element CP2K settings (basis set, pseudopotential, valence electrons).

Names were checked against Debian's cp2k-data 2023.1 (BASIS_MOLOPT and GTH_POTENTIALS);
:func:`check_cp2k_data` re-checks them against the installed files before any job starts,
so a missing basis or potential is an error naming the element and the file, not a
CP2K abort after the queue wait.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

#: element -> (basis set name in BASIS_MOLOPT, GTH pseudopotential name, valence electrons)
ELEMENT_SETTINGS: dict[str, tuple[str, str, int]] = {
    "H": ("DZVP-MOLOPT-SR-GTH", "GTH-PBE-q1", 1),
    "C": ("DZVP-MOLOPT-SR-GTH", "GTH-PBE-q4", 4),
    "O": ("DZVP-MOLOPT-SR-GTH", "GTH-PBE-q6", 6),
    "P": ("DZVP-MOLOPT-SR-GTH", "GTH-PBE-q5", 5),
    "Cl": ("DZVP-MOLOPT-SR-GTH", "GTH-PBE-q7", 7),
    "Br": ("DZVP-MOLOPT-SR-GTH", "GTH-PBE-q7", 7),
    "Se": ("DZVP-MOLOPT-SR-GTH", "GTH-PBE-q6", 6),
    "Cd": ("DZVP-MOLOPT-SR-GTH", "GTH-PBE-q12", 12),
    "In": ("DZVP-MOLOPT-SR-GTH", "GTH-PBE-q13", 13),
    "Cs": ("DZVP-MOLOPT-SR-GTH", "GTH-PBE-q9", 9),
    # Pb with the 4-electron potential: the -q14 one has no matching MOLOPT-SR basis
    "Pb": ("DZVP-MOLOPT-SR-GTH", "GTH-PBE-q4", 4),
}

BASIS_FILE = "BASIS_MOLOPT"
POTENTIAL_FILE = "GTH_POTENTIALS"

#: where Debian (and most builds) install CP2K's data files
DATA_DIR_CANDIDATES = ("/usr/share/cp2k", "/usr/share/cp2k/data", "/usr/local/share/cp2k/data")


class ElementError(ValueError):
    """An element qdff has no CP2K settings for, or one missing from the data files."""


def cp2k_data_dir() -> Path | None:
    """CP2K's data directory: $CP2K_DATA_DIR, else the usual install locations."""
    candidates = [os.environ.get("CP2K_DATA_DIR")] + list(DATA_DIR_CANDIDATES)
    for cand in candidates:
        if cand and (Path(cand) / BASIS_FILE).is_file():
            return Path(cand)
    return None


def settings_for(symbols) -> dict[str, tuple[str, str, int]]:
    """Settings for each distinct element in ``symbols``; unknown elements are an error."""
    out = {}
    for sym in sorted(set(symbols)):
        if sym not in ELEMENT_SETTINGS:
            raise ElementError(
                f"element {sym!r} has no CP2K basis/potential settings in qdff "
                f"(known: {', '.join(sorted(ELEMENT_SETTINGS))}); add it to qdff/elements.py "
                "or give basis and potential through cp2k.overrides"
            )
        out[sym] = ELEMENT_SETTINGS[sym]
    return out


def _names_in(path: Path, element: str) -> set[str]:
    names = set()
    pat = re.compile(rf"^\s*{element}\s+(.*)$")
    with open(path, errors="replace") as fh:
        for line in fh:
            m = pat.match(line)
            if m:
                names.update(m.group(1).split())
    return names


def check_cp2k_data(symbols, data_dir: Path | None = None) -> None:
    """Raise :class:`ElementError` if a basis or potential of ``symbols`` is not installed."""
    data_dir = data_dir or cp2k_data_dir()
    if data_dir is None:
        raise ElementError(
            f"CP2K data files ({BASIS_FILE}, {POTENTIAL_FILE}) not found in "
            f"{', '.join(DATA_DIR_CANDIDATES)}; set CP2K_DATA_DIR or install cp2k-data"
        )
    for sym, (basis, potential, _) in settings_for(symbols).items():
        if basis not in _names_in(data_dir / BASIS_FILE, sym):
            raise ElementError(f"basis set {basis} for element {sym} not found in {data_dir / BASIS_FILE}")
        if potential not in _names_in(data_dir / POTENTIAL_FILE, sym):
            raise ElementError(
                f"pseudopotential {potential} for element {sym} not found in {data_dir / POTENTIAL_FILE}"
            )


def valence_electrons(symbols, charge: int = 0) -> int:
    settings = settings_for(symbols)
    return sum(settings[s][2] for s in symbols) - charge


def check_multiplicity(symbols, charge: int, multiplicity: int) -> None:
    """Electron count and multiplicity must have matching parity (for the GTH valence count)."""
    n = valence_electrons(symbols, charge)
    if n < 0:
        raise ElementError(f"charge {charge} removes more electrons than the {n + charge} valence electrons")
    if (n % 2) == (multiplicity % 2):
        raise ElementError(
            f"{n} valence electrons (charge {charge}) cannot have multiplicity {multiplicity}: "
            f"an {'even' if n % 2 == 0 else 'odd'} electron count needs an {'odd' if n % 2 == 0 else 'even'} multiplicity"
        )
