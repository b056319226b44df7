"""Surface and core atoms of a QD, by coordination number.

QD users care most about the surface: a force field can be accurate in the core and
wrong where ligands bind and atoms are undercoordinated. This module is the one definition
of a surface atom, used by the build summary of built and imported structures
(``structure.json``, the report's structure table) and by the metrics' site breakdown.

An atom of the material is *core* when it has as many cation-anion neighbours as in the
bulk crystal, *surface* when it has fewer; an atom of another element (Cl, Br passivants,
organic ligand atoms) is a *ligand*. A cation and an anion are neighbours when closer than
the pair's cutoff: midway between the first and the second cation-anion shell of the bulk
crystal, the smallest over the material's crystals (:func:`pair_cutoffs`): Cd-Se 3.51 A
(wurtzite's Se 4.38 A straight above a Cd along c sets it; zinc blende alone would give
3.82), In-P 3.70, Pb-Se 4.18, Pb-Br 4.75, Cs-Br 5.67. Midway between the shells keeps both
margins wide: thermal motion and the long surface bonds of relaxed dots (Pb-Se up to 3.45 A in
the shipped Pb79Se44Cl70, whose Pb a 1.2 x covalent-radii cutoff of 3.19 A called 78 of 79
surface) do not move an atom out of its shell, and the second shell never counts.
"""

from __future__ import annotations

import functools
import logging

import numpy as np
from ase.neighborlist import neighbor_list

from . import crystals

log = logging.getLogger(__name__)

CLASSES = ("core", "surface", "ligand")


@functools.cache
def pair_cutoffs(material: str) -> dict[tuple[str, str], float]:
    """Cation-anion neighbour cutoffs of ``material`` (both orders), Angstrom: midway between
    the first and second cation-anion shells of the bulk, the smallest over its crystals.
    Cation-passivant pairs (Cl, Br) get the same cutoff shifted by the difference of the
    passivant's and the anion's covalent radii, like the M-X bond length of the builders."""
    m = crystals.MATERIALS[material]
    cut: dict = {}
    for crystal in m.crystals:
        cell = crystals.bulk_crystal(material, crystal)
        r_max = 2.2 * max(crystals.nearest_neighbour_distances(material, crystal).values())
        i, j, d = neighbor_list("ijd", cell, r_max)
        syms = np.array(cell.get_chemical_symbols())
        for c in crystals.cations(material):
            for a in crystals.anions(material):
                shells = np.unique(np.round(d[(syms[i] == c) & (syms[j] == a)], 3))
                mid = 0.5 * (shells[0] + shells[1])
                cut[(c, a)] = cut[(a, c)] = min(cut.get((c, a), np.inf), float(mid))
    for (c, a), r in list(cut.items()):
        if c in crystals.cations(material):
            for x in crystals.PASSIVANTS:
                if x not in m.species:
                    shifted = r + crystals.covalent_radius(x) - crystals.covalent_radius(a)
                    cut[(c, x)] = cut[(x, c)] = min(cut.get((c, x), np.inf), shifted)
    return cut


@functools.cache
def bulk_coordination(material: str) -> dict[str, int]:
    """Cation-anion neighbours of each element of ``material`` in its bulk crystal(s)."""
    cns = {crystal: crystals.bulk_coordination(material, crystal) for crystal in crystals.MATERIALS[material].crystals}
    first = next(iter(cns.values()))
    assert all(c == first for c in cns.values()), cns  # zinc blende and wurtzite: both 4
    return first


#: Hetero-element neighbours in the bulk crystal: zinc blende and wurtzite 4; rock salt 6;
#: cubic CsPbBr3: Pb 6 Br, Cs 12 Br, Br 2 Pb + 4 Cs.
BULK_COORDINATION = {m: bulk_coordination(m) for m in crystals.MATERIALS}


def resolve_material(symbols, material: str | None = None) -> str | None:
    """The material whose classification applies to a structure of ``symbols``: ``material``
    if all its elements are present, else the only material whose elements all are (an
    imported InP file with the default ``structure.material: CdSe`` is InP), else None."""
    present = set(symbols)
    if material in crystals.MATERIALS and set(crystals.MATERIALS[material].species) <= present:
        return material
    found = [m for m, spec in crystals.MATERIALS.items() if set(spec.species) <= present]
    if len(found) == 1:
        if material:
            log.info(
                "structure.material is %s but the structure holds %s: classifying its sites as %s",
                material,
                ", ".join(sorted(present)),
                found[0],
            )
        return found[0]
    return None


def hetero_coordination(atoms, material: str | None = None, among: set | None = None) -> np.ndarray:
    """Number of neighbours of another element (within :func:`pair_cutoffs` of ``material``,
    by default the one :func:`resolve_material` finds) for every atom; with ``among``, only
    neighbours whose element is in it count."""
    a = atoms.copy()
    a.pbc = False
    present = set(a.get_chemical_symbols())
    material = material or resolve_material(present)
    if material is None:
        raise ValueError(f"no material of qdff holds the elements {', '.join(sorted(present))}")
    cut = {k: v for k, v in pair_cutoffs(material).items() if k[0] in present and k[1] in present}
    if not cut:
        return np.zeros(len(a), dtype=int)
    i, j = neighbor_list("ij", a, cut)
    if among is not None:
        symbols = np.array(a.get_chemical_symbols())
        keep = np.isin(symbols[j], list(among))
        i = i[keep]
    return np.bincount(i, minlength=len(a))


def classify(atoms, material: str) -> np.ndarray:
    """Array of 'core' / 'surface' / 'ligand' per atom of ``atoms``."""
    try:
        bulk = BULK_COORDINATION[material]
    except KeyError:
        raise ValueError(
            f"no bulk coordination known for material {material!r}; known: {', '.join(BULK_COORDINATION)}"
        ) from None
    # a surface Cd bound to a Cl ligand is still undercoordinated in CdSe terms
    cn = hetero_coordination(atoms, material, among=set(bulk))
    out = np.empty(len(atoms), dtype=object)
    for k, (s, c) in enumerate(zip(atoms.get_chemical_symbols(), cn)):
        if s not in bulk:
            out[k] = "ligand"
        else:
            out[k] = "core" if c >= bulk[s] else "surface"
    return out


def counts(atoms, material: str) -> dict[str, int]:
    """Number of core, surface and ligand atoms of ``atoms``."""
    cls = classify(atoms, material)
    return {c: int(np.sum(cls == c)) for c in CLASSES}
