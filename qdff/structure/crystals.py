"""Crystal chemistry of the QD materials: formal charges, lattices, bulk bonds.

The data and bulk-crystal functions both the builders (:mod:`qdff.structure.build`) and the
site classification (:mod:`qdff.structure.sites`) stand on; neither imports the other for them.
:mod:`qdff.structure.build` re-exports every name here (``build.MATERIALS`` and so on).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.data import atomic_numbers, covalent_radii
from ase.neighborlist import neighbor_list
from ase.spacegroup import crystal as spacegroup_crystal

#: Formal (oxidation-state) charges used for charge balance; also used to report the net
#: formal charge of imported structures when every element is listed here.
FORMAL_CHARGES = {"Cd": 2, "Se": -2, "In": 3, "P": -3, "Pb": 2, "Cs": 1, "Br": -1, "Cl": -1}

#: Inorganic passivants (X-type ligands) the builders can add at undercoordinated cations.
PASSIVANTS = ("Cl", "Br")


@dataclass(frozen=True)
class Material:
    species: tuple[str, ...]  # cations first; composition of one formula unit below
    formula_unit: tuple[int, ...]
    crystals: dict  # crystal -> lattice parameters (Angstrom)
    centre: str  # default centre: "bond" (midpoint of a central cation-anion bond) or "cation" (site)


# Lattice constants (room temperature unless noted), Angstrom:
# CdSe zinc blende a = 6.052; wurtzite a = 4.30, c = 7.01; InP zinc blende a = 5.8687;
# PbSe rock salt a = 6.124: O. Madelung, Semiconductors: Data Handbook, 3rd ed. (Springer 2004).
# CsPbBr3 cubic Pm-3m (stable above ~403 K) a = 5.874: C. C. Stoumpos et al.,
# Cryst. Growth Des. 13, 2722 (2013); colloidal CsPbBr3 nanocrystals are often described
# with this cubic cell (Protesescu et al., Nano Lett. 15, 3692 (2015)).
MATERIALS: dict[str, Material] = {
    "CdSe": Material(("Cd", "Se"), (1, 1), {"zincblende": {"a": 6.052}, "wurtzite": {"a": 4.30, "c": 7.01}}, "bond"),
    "InP": Material(("In", "P"), (1, 1), {"zincblende": {"a": 5.8687}}, "bond"),
    # rock salt and perovskite: centred on a cation (Pb) site, the usual choice (O_h symmetric cut)
    "PbSe": Material(("Pb", "Se"), (1, 1), {"rocksalt": {"a": 6.124}}, "cation"),
    "CsPbBr3": Material(("Cs", "Pb", "Br"), (1, 1, 3), {"perovskite": {"a": 5.874}}, "cation"),
}

#: bonds are cation-anion pairs closer than this factor times their bulk nearest-neighbour distance
BOND_FACTOR = 1.15


class StructureError(ValueError):
    pass


def bulk_crystal(material: str, crystal: str) -> Atoms:
    """The periodic conventional cell of ``material`` in ``crystal`` form."""
    m = MATERIALS[material]
    p = m.crystals[crystal]
    if crystal == "zincblende":
        return bulk("".join(m.species), "zincblende", a=p["a"], cubic=True)
    if crystal == "wurtzite":
        return bulk("".join(m.species), "wurtzite", a=p["a"], c=p["c"])
    if crystal == "rocksalt":
        return bulk("".join(m.species), "rocksalt", a=p["a"], cubic=True)
    if crystal == "perovskite":  # ABX3, Pm-3m (221): B at the origin, X at 3d, A at the body centre
        cs, pb, br = m.species
        return spacegroup_crystal(
            [pb, br, cs],
            basis=[(0, 0, 0), (0.5, 0, 0), (0.5, 0.5, 0.5)],
            spacegroup=221,
            cellpar=[p["a"]] * 3 + [90] * 3,
        )
    raise StructureError(f"unknown crystal {crystal!r}")


def cations(material: str) -> list[str]:
    return [s for s in MATERIALS[material].species if FORMAL_CHARGES[s] > 0]


def anions(material: str) -> list[str]:
    return [s for s in MATERIALS[material].species if FORMAL_CHARGES[s] < 0]


def bond_cutoffs(material: str, crystal: str, passivants=PASSIVANTS) -> dict[tuple[str, str], float]:
    """Cation-anion bond cutoffs: :data:`BOND_FACTOR` times the bulk nearest-neighbour distance
    of each pair. A passivant bonds like the anion whose site it takes."""
    cell = bulk_crystal(material, crystal)
    i, j, d = neighbor_list("ijd", cell, 1.5 * max(cell.cell.lengths()))
    syms = np.array(cell.get_chemical_symbols())
    cut = {}
    for c in cations(material):
        for a in anions(material):
            sel = (syms[i] == c) & (syms[j] == a)
            cut[(c, a)] = cut[(a, c)] = BOND_FACTOR * float(d[sel].min())
    an = anions(material)[0]
    for x in passivants:
        for c in cations(material):
            cut.setdefault((c, x), cut[(c, an)])
            cut.setdefault((x, c), cut[(c, an)])
    return cut


def nearest_neighbour_distances(material: str, crystal: str) -> dict[str, float]:
    """Bulk cation-anion nearest-neighbour distance per pair, e.g. {'Cd-Se': 2.62}."""
    return {
        f"{a}-{b}": c / BOND_FACTOR
        for (a, b), c in bond_cutoffs(material, crystal, ()).items()
        if FORMAL_CHARGES[a] > 0
    }


def coordination(atoms: Atoms, cutoffs: dict) -> np.ndarray:
    """Number of cation-anion bonds of each atom (pairs in ``cutoffs`` only)."""
    syms = set(atoms.get_chemical_symbols())
    cut = {k: v for k, v in cutoffs.items() if k[0] in syms and k[1] in syms}
    if not cut:
        return np.zeros(len(atoms), dtype=int)
    i = neighbor_list("i", atoms, cut)
    return np.bincount(i, minlength=len(atoms))


def bulk_coordination(material: str, crystal: str) -> dict[str, int]:
    cell = bulk_crystal(material, crystal)
    cn = coordination(cell, bond_cutoffs(material, crystal, ()))
    return {s: int(cn[cell.get_chemical_symbols().index(s)]) for s in MATERIALS[material].species}


def covalent_radius(symbol: str) -> float:
    return float(covalent_radii[atomic_numbers[symbol]])
