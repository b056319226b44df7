"""Surface and core atoms of a QD, by coordination number.

QD users care most about the surface: a force field can be accurate in the core and
wrong where ligands bind and atoms are undercoordinated. An atom is counted as *core*
when it has as many cation-anion neighbours as in the bulk crystal, *surface* when it has
fewer, and *ligand* when its element is not part of the material (Cl, O, H, ...
passivants). Neighbours are atoms of another element within 1.2 x the sum of their
covalent radii (ASE's natural cutoffs), which takes the first shell of every material
here (CdSe 2.63 A, InP 2.54 A, PbSe 3.06 A, Pb-Br 2.95 A, Cs-Br 4.17 A) and never the
second (same-element) shell.
"""
from __future__ import annotations

import numpy as np
from ase.neighborlist import natural_cutoffs, neighbor_list

# Hetero-element neighbours in the bulk crystal. Zinc blende and wurtzite: 4; rock salt: 6;
# cubic CsPbBr3: Pb has 6 Br, Cs 12 Br, Br 2 Pb + 4 Cs.
BULK_COORDINATION = {
    "CdSe": {"Cd": 4, "Se": 4},
    "CdS": {"Cd": 4, "S": 4},
    "InP": {"In": 4, "P": 4},
    "PbSe": {"Pb": 6, "Se": 6},
    "PbS": {"Pb": 6, "S": 6},
    "CsPbBr3": {"Cs": 12, "Pb": 6, "Br": 6},
}
CUTOFF_FACTOR = 1.2
CLASSES = ("core", "surface", "ligand")


def hetero_coordination(atoms, among: set | None = None) -> np.ndarray:
    """Number of neighbours of another element for every atom; with ``among``, only
    neighbours whose element is in it count."""
    a = atoms.copy()
    a.pbc = False
    i, j = neighbor_list("ij", a, natural_cutoffs(a, mult=CUTOFF_FACTOR))
    z = a.numbers
    keep = z[i] != z[j]
    if among is not None:
        symbols = np.array(a.get_chemical_symbols())
        keep &= np.isin(symbols[j], list(among))
    return np.bincount(i[keep], minlength=len(a))


def classify(atoms, material: str) -> np.ndarray:
    """Array of 'core' / 'surface' / 'ligand' per atom of ``atoms``."""
    try:
        bulk = BULK_COORDINATION[material]
    except KeyError:
        raise ValueError(f"no bulk coordination known for material {material!r}; "
                         f"known: {', '.join(BULK_COORDINATION)}") from None
    # a surface Cd bound to a Cl ligand is still undercoordinated in CdSe terms
    cn = hetero_coordination(atoms, among=set(bulk))
    out = np.empty(len(atoms), dtype=object)
    for k, (s, c) in enumerate(zip(atoms.get_chemical_symbols(), cn)):
        if s not in bulk:
            out[k] = "ligand"
        else:
            out[k] = "core" if c >= bulk[s] else "surface"
    return out
