"""CP2K input files from a level-of-theory preset plus overrides, via cp2k-input-tools.

The input is built as a nested dict in cp2k-input-tools' simplified form and
rendered by its :class:`CP2KInputGenerator`, which checks every section and
keyword against CP2K's input specification; no string templates.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import numpy as np
from ase import Atoms
from cp2k_input_tools.generator import (
    CP2KInputGenerator,
    KeywordNotFoundError,
    SectionNotFoundError,
)

from .. import elements
from ..fileio import atomic_open

PRESETS = ("xtb", "pbe-fast", "pbe", "hle17")

#: preset -> human-readable level of theory (shown in logs and the report)
LEVEL_OF_THEORY = {
    "xtb": "GFN1-xTB (semi-empirical tight binding, CP2K); a fast stand-in for DFT, demo quality",
    "pbe-fast": "PBE-D3 / DZVP-MOLOPT-SR-GTH, GTH-PBE pseudopotentials; 200 Ry cutoff, EPS_SCF 1e-5 (test quality)",
    "pbe": "PBE-D3 / DZVP-MOLOPT-SR-GTH, GTH-PBE pseudopotentials; 400 Ry cutoff, EPS_SCF 1e-6",
    "hle17": (
        "HLE17/DZVP-MOLOPT-SR-GTH (meta-GGA, libxc), GTH-PBE pseudopotentials, no dispersion correction; "
        "300 Ry cutoff (REL_CUTOFF 40), EPS_SCF 1e-6"
    ),
}

#: preset -> (CUTOFF, REL_CUTOFF) in Ry of the plane-wave presets
CUTOFFS = {"pbe-fast": (200, 30), "pbe": (400, 50), "hle17": (300, 40)}


class CP2KInputError(ValueError):
    pass


def deep_merge(base: dict, override: dict) -> dict:
    """Recursively merge ``override`` into a copy of ``base`` (keys compared case-insensitively)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        match = next((k for k in out if k.lower() == str(key).lower()), None)
        if match is not None and isinstance(out[match], dict) and isinstance(value, dict):
            out[match] = deep_merge(out[match], value)
        else:
            if match is not None:
                del out[match]
            out[key] = copy.deepcopy(value)
    return out


def _dft_section(preset: str, symbols, charge: int, multiplicity: int) -> dict:
    dft: dict = {"charge": charge, "multiplicity": multiplicity}
    if multiplicity > 1:
        dft["uks"] = True
    if preset == "xtb":
        # CP2K's atomic-charge check stays on (its default): it stops a run whose Mulliken
        # charges leave xTB's parametrised range, instead of producing unphysical frames
        dft["qs"] = {"method": "xTB", "xtb": {"do_ewald": False}}
        dft["scf"] = {
            "scf_guess": "mopac",
            "eps_scf": 1e-6,
            "max_scf": 50,
            "ot": {"minimizer": "DIIS", "preconditioner": "FULL_SINGLE_INVERSE"},
            "outer_scf": {"max_scf": 20, "eps_scf": 1e-6},
        }
        dft["poisson"] = {"periodic": "NONE", "psolver": "ANALYTIC"}
        return dft
    fast = preset == "pbe-fast"
    cutoff, rel_cutoff = CUTOFFS[preset]
    dft.update(
        {
            "basis_set_file_name": elements.BASIS_FILE,
            "potential_file_name": elements.POTENTIAL_FILE,
            "mgrid": {"cutoff": cutoff, "rel_cutoff": rel_cutoff, "ngrids": 4},
            "qs": {"eps_default": 1e-10 if fast else 1e-12},
            # wavelet (free boundary) solver: exact for an isolated charge density in any box
            # the density fits in; Martyna-Tuckerman needs a box about twice the density's
            # extent, i.e. ~8x the grid memory for a 20 A dot (CP2K manual, POISSON/MT)
            "poisson": {"periodic": "NONE", "psolver": "WAVELET", "wavelet": {"scf_type": 60}},
            "scf": {
                "scf_guess": "atomic",
                "eps_scf": 1e-5 if fast else 1e-6,
                "max_scf": 30,
                "ot": {"minimizer": "DIIS", "preconditioner": "FULL_SINGLE_INVERSE"},
                "outer_scf": {"max_scf": 10, "eps_scf": 1e-5 if fast else 1e-6},
            },
            "xc": {
                "xc_functional": {"_": "PBE"},
                "vdw_potential": {
                    "potential_type": "PAIR_POTENTIAL",
                    "pair_potential": {
                        "type": "DFTD3",
                        "parameter_file_name": "dftd3.dat",
                        "reference_functional": "PBE",
                    },
                },
            },
        }
    )
    if preset == "hle17":
        # HLE17 (Verma & Truhlar 2017), libxc's MGGA_XC_HLE17, written as its own section:
        # Debian's CP2K 2023.1 (libxc 5.2.3) aborts on the &LIBXC FUNCTIONAL form ("unknown
        # subsection LIBXC"). DFT-D3 has no HLE17 parameters: no dispersion correction.
        dft["xc"] = {"xc_functional": {"mgga_xc_hle17": {}}}
    return dft


def _subsys(atoms: Atoms, preset: str) -> dict:
    cell = atoms.cell.lengths()
    if not np.all(cell > 0):
        raise CP2KInputError("the structure has no box: build or import it with a vacuum box first")
    subsys = {
        "cell": {"abc": [float(x) for x in cell], "periodic": "NONE"},
        "coord": {
            "*": [
                f"{s:<3s} {p[0]:16.10f} {p[1]:16.10f} {p[2]:16.10f}"
                for s, p in zip(atoms.get_chemical_symbols(), atoms.positions)
            ]
        },
    }
    if preset != "xtb":
        subsys["kind"] = {
            sym: {"basis_set": basis, "potential": pot}
            for sym, (basis, pot, _) in elements.settings_for(atoms.get_chemical_symbols()).items()
        }
    return subsys


def build_input(
    atoms: Atoms,
    *,
    preset: str,
    run_type: str,
    project: str,
    charge: int = 0,
    multiplicity: int = 1,
    temperature: float | None = None,
    steps: int = 100,
    timestep_fs: float = 1.0,
    print_every: int = 1,
    thermostat_timecon_fs: float = 50.0,
    max_iter: int = 200,
    seed: int = 2024,
    overrides: dict | None = None,
    restart_file: str | None = None,
    max_force: float | None = None,
    vib_dx_bohr: float = 0.01,
) -> dict:
    """The input tree (simplified cp2k-input-tools form) for an MD, GEO_OPT, ENERGY_FORCE or
    VIBRATIONAL_ANALYSIS run. ``max_force``: GEO_OPT's convergence on the largest force,
    Hartree/Bohr (CP2K's default 4.5e-4 when None); ``vib_dx_bohr``: the finite-difference
    step of VIBRATIONAL_ANALYSIS (CP2K's DX, in Bohr)."""
    if preset not in PRESETS:
        raise CP2KInputError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    symbols = atoms.get_chemical_symbols()
    elements.check_multiplicity(symbols, charge, multiplicity)
    tree: dict = {
        "global": {"project": project, "run_type": run_type, "print_level": "LOW", "seed": seed},
        "force_eval": {
            "method": "QUICKSTEP",
            "dft": _dft_section(preset, symbols, charge, multiplicity),
            "subsys": _subsys(atoms, preset),
        },
    }
    if run_type == "MD":
        if temperature is None:
            raise CP2KInputError("an MD run needs a temperature")
        each = {"md": print_every}
        tree["motion"] = {
            "md": {
                "ensemble": "NVT",
                # STEPS counts the steps of this invocation (measured: a restart with
                # STEPS n runs n more); cp2k_run passes the remaining steps on resume.
                # MAX_STEPS is left alone: set to the total it stopped one step short.
                "steps": steps,
                "timestep": timestep_fs,
                "temperature": temperature,
                "angvel_zero": True,
                "thermostat": {"type": "CSVR", "region": "GLOBAL", "csvr": {"timecon": thermostat_timecon_fs}},
            },
            "print": {
                "trajectory": {"format": "XYZ", "each": each},
                "forces": {"format": "XYZ", "each": each},
                "velocities": {"format": "XYZ", "each": each},
                # one backup: a kill while CP2K rewrites the restart file truncates it, and
                # the previous step's copy (PROJECT-1.restart.bak-1) is then resumed from
                "restart": {"backup_copies": 1, "each": each},
                "restart_history": {"_": "OFF"},
            },
        }
    elif run_type == "GEO_OPT":
        tree["motion"] = {
            # BFGS stores and diagonalises the full 3N x 3N Hessian; beyond ~100 atoms
            # limited-memory BFGS is CP2K's recommended choice
            "geo_opt": {"optimizer": "BFGS" if len(atoms) <= 100 else "LBFGS", "max_iter": max_iter},
            "print": {
                "trajectory": {"format": "XYZ", "each": {"geo_opt": 1}},
                "restart_history": {"_": "OFF"},
            },
        }
        if max_force is not None:
            # RMS_FORCE at CP2K's ratio to MAX_FORCE (3.0e-4 : 4.5e-4); the displacement
            # criteria stay at their defaults
            tree["motion"]["geo_opt"].update(max_force=float(max_force), rms_force=float(max_force) * 2 / 3)
    elif run_type == "VIBRATIONAL_ANALYSIS":
        # CP2K's own finite-difference Hessian: central differences of the forces, 6N force
        # evaluations of DX Bohr each; FULLY_PERIODIC F: translations and rotations are
        # projected out (a free cluster); PRINT/HESSIAN writes PROJECT-Hessian-1.hess
        # (Fortran unformatted, one record of 3N doubles per coordinate: the mass-weighted
        # Hessian in atomic units x 1e6, not symmetrised, as measured against CP2K 2023.1's
        # forces and its printed frequencies; read by qdff.cp2k.run.read_hessian)
        tree["vibrational_analysis"] = {
            "dx": float(vib_dx_bohr),
            "nproc_rep": 1,
            "fully_periodic": False,
            "print": {"hessian": {"_": "ON"}},
        }
    if run_type not in ("MD", "GEO_OPT", "ENERGY_FORCE", "VIBRATIONAL_ANALYSIS"):
        raise CP2KInputError(f"unsupported run type {run_type!r}")
    if overrides:
        tree = deep_merge(tree, overrides)
    if restart_file:
        tree["ext_restart"] = {"restart_file_name": restart_file}
    return tree


@functools.lru_cache(maxsize=1)
def _generator() -> CP2KInputGenerator:
    """One generator per process: parsing CP2K's input specification takes seconds."""
    return CP2KInputGenerator()


def check_tree(tree: dict, generator: CP2KInputGenerator | None = None, prefix: str = "cp2k.overrides") -> None:
    """Check every section and keyword against CP2K's input specification.

    Raises :class:`CP2KInputError` naming the full path of the first unknown name,
    e.g. ``cp2k.overrides.force_eval.dft.mgird``.
    """
    gen = generator or _generator()

    def walk(node, xml, path):
        for key, value in node.items():
            if key in ("_", "*"):
                continue
            name = key.lstrip("+&").upper()
            try:
                sub = gen._get_section(name, xml)
            except SectionNotFoundError:
                try:
                    gen._get_keyword(name, xml)
                except KeywordNotFoundError:
                    raise CP2KInputError(
                        f"{'.'.join(path + [key])}: CP2K has no section or keyword {name} here"
                    ) from None
                continue
            items = value if isinstance(value, list) else [value]
            for item in items:
                if isinstance(item, dict):
                    # the simplified form of parametrised sections: {KIND: {Cd: {...}}}
                    if all(isinstance(v, dict) for v in item.values()) and not any(
                        _is_member(gen, k, sub) for k in item
                    ):
                        for param, inner in item.items():
                            walk(inner, sub, path + [key, str(param)])
                    else:
                        walk(item, sub, path + [key])

    walk(tree, gen._parse_tree.getroot(), [prefix] if prefix else [])


def _is_member(gen, key, xml) -> bool:
    name = str(key).lstrip("+&").upper()
    try:
        gen._get_section(name, xml)
        return True
    except SectionNotFoundError:
        pass
    try:
        gen._get_keyword(name, xml)
        return True
    except KeywordNotFoundError:
        return False


def render(tree: dict) -> str:
    gen = _generator()
    check_tree(tree, gen, prefix="")
    try:
        return "\n".join(gen.line_iter(tree)) + "\n"
    except Exception as exc:  # the generator's errors carry no path; say what was rendered
        raise CP2KInputError(f"cannot render CP2K input: {type(exc).__name__}: {exc}") from exc


def write_input(path, tree: dict) -> Path:
    text = render(tree)
    with atomic_open(path) as fh:
        fh.write(text)
    return Path(path)


#: resident bytes per point of the finest real-space grid and the memory a CP2K process holds
#: whatever its grid (executable, libraries, MPI), in MB (10^6 bytes, as Snakemake's mem_mb):
#: fitted to two measured peaks with benchmarks/cp2k_memory.py (Cd2Se2 at pbe-fast in 12.6 and
#: 20.6 A cubes, one process: 557 and 1796 MB); the 149-atom Cd68Se55Cl26 at pbe (375^3
#: points) then peaked 5% above the estimate (README "CP2K memory and time at pbe")
_BYTES_PER_GRID_POINT = 271.0
_BASE_MB = 216.0
#: the check's margin over the estimate
MEMORY_MARGIN = 1.15


def _fft_size(n: int) -> int:
    """The smallest size >= n whose prime factors are 2, 3 and 5 (CP2K's FFT grids)."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def estimate_memory_mb(atoms: Atoms, tree: dict, ranks: int = 1) -> dict:
    """A rough estimate of CP2K's peak resident memory, MB, all ``ranks`` MPI processes together.

    Dominated for clusters in vacuum by the real-space grids: their points grow with the
    box volume and with CUTOFF**1.5, and are shared out among the ranks; each rank adds its
    own base. xTB (no plane-wave grid) gets the base only.
    """
    base = _BASE_MB * max(int(ranks), 1)
    dft = tree["force_eval"]["dft"]
    mgrid = dft.get("mgrid")
    if not mgrid:
        return {"mem_mb": base, "grid": None, "points": 0, "ranks": ranks}
    cutoff_ry = float(mgrid.get("cutoff", 280))
    bohr = 0.529177210903
    # plane waves up to |G|^2/2 <= cutoff (Hartree) on a grid of n points over L needs
    # n >= sqrt(2 * cutoff_Ha) * L / pi = sqrt(cutoff_Ry) * L / pi
    grid = [_fft_size(int(np.ceil(np.sqrt(cutoff_ry) * (length / bohr) / np.pi))) for length in atoms.cell.lengths()]
    points = int(np.prod(grid))
    return {"mem_mb": base + points * _BYTES_PER_GRID_POINT / 1e6, "grid": grid, "points": points, "ranks": ranks}
