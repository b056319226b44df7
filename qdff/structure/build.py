"""QD structures: builders from config, or import of a user's file.

A builder cuts a near-spherical cluster out of a bulk crystal made by ASE
(``ase.build.bulk`` / ``ase.spacegroup.crystal``), either the ``n_pairs`` formula units
nearest the centre (stoichiometric by construction) or every atom within ``diameter``/2
of the centre; for CsPbBr3 ``diameter`` gives a CsBr-terminated cube (:func:`perovskite_cube`).
The cluster is then made charge-balanced with formal charges (:data:`FORMAL_CHARGES`) by
the rule of :func:`neutralise`; with a halide passivant a diameter cut is first made
cation-rich like the shipped DFT-optimised dots (:func:`cation_rich`) and the halides bridge
cations (:func:`add_passivants`). Output is an ASE Atoms object centred in a non-periodic box
with the requested vacuum.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
from ase import Atom, Atoms
from ase.io import read

from .. import elements

# the crystal chemistry, re-exported: build.MATERIALS, build.FORMAL_CHARGES, ... as before
from .crystals import (  # noqa: F401
    BOND_FACTOR,
    FORMAL_CHARGES,
    MATERIALS,
    PASSIVANTS,
    Material,
    StructureError,
    anions,
    bond_cutoffs,
    bulk_coordination,
    bulk_crystal,
    cations,
    coordination,
    covalent_radius,
    nearest_neighbour_distances,
)

log = logging.getLogger(__name__)

#: builder (config name) -> crystal structure it cuts
BUILDERS = {
    "zincblende-cut": "zincblende",
    "wurtzite-cut": "wurtzite",
    "rocksalt-cut": "rocksalt",
    "perovskite-cut": "perovskite",
}


def check_builder(material: str, builder: str) -> str:
    """The crystal of ``builder``; an error naming the key if it cannot build ``material``."""
    if material not in MATERIALS:
        raise StructureError(f"structure.material: {material!r} not known; choose from {', '.join(MATERIALS)}")
    if builder not in BUILDERS:
        raise StructureError(f"structure.builder: {builder!r} not known; choose from {', '.join(BUILDERS)}")
    crystal = BUILDERS[builder]
    allowed = MATERIALS[material].crystals
    if crystal not in allowed:
        ok = [b for b, c in BUILDERS.items() if c in allowed]
        raise StructureError(
            f"structure.builder: {builder!r} cannot build {material} (no {crystal} {material} in qdff); "
            f"use {' or '.join(repr(b) for b in ok)}"
        )
    return crystal


def _supercell(material: str, crystal: str, min_height: float) -> Atoms:
    """The bulk repeated until every height of the supercell is at least ``min_height``."""
    cell = bulk_crystal(material, crystal)
    vol = abs(cell.cell.volume)
    c = cell.cell.array
    heights = [vol / np.linalg.norm(np.cross(c[(k + 1) % 3], c[(k + 2) % 3])) for k in range(3)]
    reps = [max(2, int(np.ceil(min_height / h))) for h in heights]
    return cell.repeat(reps)


#: structure.centre values
CENTRES = ("auto", "bond", "cation", "anion")


def _centre(lattice: Atoms, material: str, centre: str = "auto") -> np.ndarray:
    """The cut's centre next to the middle of ``lattice``: a cation or anion site, or the
    midpoint of a cation-anion bond; ``auto`` is the material's usual choice."""
    m = MATERIALS[material]
    pos = lattice.positions
    syms = np.array(lattice.get_chemical_symbols())
    middle = pos.mean(axis=0)
    if centre == "auto":
        centre = m.centre
    if centre not in CENTRES:
        raise StructureError(f"structure.centre {centre!r} not known; choose from {', '.join(CENTRES)}")
    # the cation of highest formal charge: for CsPbBr3 Pb, the octahedron centre
    cation = max(cations(material), key=lambda t: FORMAL_CHARGES[t])
    first = anions(material)[0] if centre == "anion" else cation
    idx = np.flatnonzero(syms == first)
    c0 = idx[np.argmin(np.linalg.norm(pos[idx] - middle, axis=1))]
    if centre != "bond":
        return pos[c0].copy()
    an_idx = np.flatnonzero(syms == anions(material)[0])
    a0 = an_idx[np.argmin(np.linalg.norm(pos[an_idx] - pos[c0], axis=1))]
    return 0.5 * (pos[c0] + pos[a0])


def _count_cut(material: str, crystal: str, n_pairs: int, centre: str = "auto") -> tuple[Atoms, Atoms, np.ndarray]:
    """The count cut on its lattice: (cluster, lattice, centre) in lattice coordinates."""
    m = MATERIALS[material]
    reps = 2
    while True:
        lattice = bulk_crystal(material, crystal).repeat(reps)
        syms = np.array(lattice.get_chemical_symbols())
        if all((syms == s).sum() >= 4 * n_pairs * k for s, k in zip(m.species, m.formula_unit)):
            break
        reps += 1
    pos = lattice.positions
    centre = _centre(lattice, material, centre)
    chosen = []
    for s, k in zip(m.species, m.formula_unit):
        idx = np.flatnonzero(syms == s)
        dist = np.linalg.norm(pos[idx] - centre, axis=1)
        order = np.lexsort((idx, np.round(dist, 6)))  # deterministic tie-break
        chosen.extend(idx[order[: n_pairs * k]])
    cluster = lattice[sorted(chosen)]
    cluster.set_pbc(False)
    cluster.set_cell(None)
    return cluster, lattice, centre


def cut_cluster(material: str = "CdSe", crystal: str = "zincblende", n_pairs: int = 6) -> Atoms:
    """A stoichiometric near-spherical cut: for each species, its ``n_pairs`` x (atoms per
    formula unit) sites nearest the centre.

    For CdSe/InP the centre is the midpoint of a central cation-anion bond, so that both
    sublattices are cut symmetrically; the cluster is charge neutral with formal charges.
    """
    if material not in MATERIALS:
        raise StructureError(f"structure.material {material!r} not known; choose from {', '.join(MATERIALS)}")
    cluster, _, _ = _count_cut(material, crystal, n_pairs)
    cluster.positions -= cluster.positions.mean(axis=0)
    return cluster


def _formal_charge(symbols) -> int:
    return int(sum(FORMAL_CHARGES[s] for s in symbols))


def min_anion_neighbours(material: str, crystal: str) -> int:
    """Fewest cation neighbours an anion of a cation-rich cut keeps: more than half its bulk
    count, so zinc blende and wurtzite 3 of 4 (a two-coordinated Se or P is a hole trap), rock
    salt 4 of 6. On the Se-centred 20 A zinc-blende and the Pb-centred 20 A rock-salt cuts this
    gives the shipped Cd68Se55Cl26 and Pb79Se44Cl70."""
    return bulk_coordination(material, crystal)[anions(material)[0]] // 2 + 1


def min_cation_neighbours(crystal: str) -> int:
    """Fewest anion neighbours a cation of a cation-rich cut keeps: 2 in zinc blende and
    wurtzite (a tetrahedral Cd or In on one Se or P would hang on its ligands), 1 in rock
    salt, whose octahedral Pb takes up to five X, as in the shipped Pb19Se6Cl26 (its six
    outer Pb have one Se each)."""
    return 1 if crystal == "rocksalt" else 2


#: least distance (Angstrom) of an added passivant to another passivant or to an anion;
#: the shipped DFT-optimised dots have Cl-Cl >= 3.46 and Cl-Se, Cl-P >= 3.34
MIN_X_SEPARATION = 3.0

#: a passivant is bonded to the cations within this factor times the M-X bond length
X_BOND_FACTOR = 1.2


def passivant_bond_lengths(material: str, crystal: str, x: str) -> dict[str, float]:
    """M-X bond length (Angstrom) of passivant ``x`` per cation M: the bulk M-anion distance
    with the anion's covalent radius replaced by X's. Cd-Cl 2.44, In-Cl 2.49, Pb-Cl 2.88;
    the Cl of the shipped DFT-optimised dots are at 2.51, 2.50 and 2.85-2.91 on average."""
    out: dict[str, float] = {}
    for pair, d in nearest_neighbour_distances(material, crystal).items():
        c, a = pair.split("-")
        out[c] = min(out.get(c, np.inf), d - covalent_radius(a) + covalent_radius(x))
    return out


def _least_coordinated(atoms: Atoms, species, cut, bulk_cn, centre) -> int:
    """Index of the atom of ``species`` with the lowest coordination relative to bulk (ties:
    farthest from ``centre``, then highest index)."""
    cn = coordination(atoms, cut)
    syms = np.array(atoms.get_chemical_symbols())
    idx = np.flatnonzero(np.isin(syms, list(species)))
    rel = np.array([cn[i] / bulk_cn[syms[i]] for i in idx])
    dist = np.linalg.norm(atoms.positions[idx] - centre, axis=1)
    return int(idx[np.lexsort((-idx, -np.round(dist, 6), np.round(rel, 6)))[0]])


def cation_rich(cluster: Atoms, material: str, crystal: str, centre, charge: int = 0) -> tuple[Atoms, Counter]:
    """The cut without under-coordinated atoms, as the shipped dots are made: anions with
    fewer than :func:`min_anion_neighbours` cation neighbours and cations with fewer than
    :func:`min_cation_neighbours` anion neighbours are removed until none is left; if the
    net formal charge is still below ``charge``, the least-coordinated anion goes, and the
    trim repeats. Returns the cluster and the removed atoms by element."""
    cut = bond_cutoffs(material, crystal, ())
    bulk_cn = bulk_coordination(material, crystal)
    an = anions(material)
    need, need_cation = min_anion_neighbours(material, crystal), min_cation_neighbours(crystal)
    centre = np.asarray(centre, dtype=float)
    atoms = cluster.copy()
    removed: Counter = Counter()
    while len(atoms):
        cn = coordination(atoms, cut)
        syms = np.array(atoms.get_chemical_symbols())
        is_anion = np.isin(syms, an)
        drop = [int(i) for i in np.flatnonzero(np.where(is_anion, cn < need, cn < need_cation))]
        if not drop:
            if _formal_charge(syms) >= charge or not is_anion.any():
                break
            drop = [_least_coordinated(atoms, an, cut, bulk_cn, centre)]
        removed.update(syms[drop].tolist())
        del atoms[drop]
    return atoms, removed


def add_passivants(atoms: Atoms, n: int, x: str, lattice: Atoms, centre, material: str, crystal: str) -> Atoms:
    """``atoms`` with ``n`` X- ions added, each bridging two or more cations at about the M-X
    bond length (:func:`passivant_bond_lengths`), as the Cl of the shipped dots do.

    Candidate sites: (1) the empty anion sites of the bulk ``lattice`` next to at least two
    cations of the cluster, each moved to where its distances to those cations are closest
    to the bond length (least squares, by fixed-point iteration); (2) off the lattice, points
    on the circle at r from two under-coordinated cations, r from the bond length up to
    :data:`X_BOND_FACTOR` times it, the most open points of each circle (the shipped
    Cd68Se55Cl26 has 2 such Cl, where no empty anion site bridges two Cd). A site
    counts only with at least two cations within :data:`X_BOND_FACTOR` times the bond length,
    none within 0.8 times it and no anion within :data:`MIN_X_SEPARATION`.

    The sites are taken greedily: each time the one whose cations miss most of their bulk
    bonds, counted as the formal charge of the missing bonds (Cd with 2 of 4 Se: 1) and at
    most 1/k per cation for a site bridging k cations (Pauling's electrostatic valence: X-
    gives each of its k cations 1/k); ties go to the site nearest the bond length, then to
    lattice sites, then to the one bridging more cations, then to the one farthest from
    ``centre``. Sites within :data:`MIN_X_SEPARATION` of a placed X are dropped.
    """
    from scipy.spatial import cKDTree

    if n <= 0:
        return atoms.copy()
    centre = np.asarray(centre, dtype=float)
    b = passivant_bond_lengths(material, crystal, x)
    cut = bond_cutoffs(material, crystal, ())
    bulk_cn = bulk_coordination(material, crystal)
    syms = np.array(atoms.get_chemical_symbols())
    pos = atoms.positions
    cat = np.flatnonzero(np.isin(syms, cations(material)))
    ani = np.flatnonzero(np.isin(syms, anions(material) + [x]))
    cn = coordination(atoms, cut)
    deficit = np.zeros(len(atoms))
    deficit[cat] = [FORMAL_CHARGES[syms[i]] * (1 - cn[i] / bulk_cn[syms[i]]) for i in cat]
    b_of = np.array([b.get(t, 0.0) for t in syms])
    nn_min = min(nearest_neighbour_distances(material, crystal).values())

    def keep(points):
        """The acceptable ``points`` (m x 3), each with its bonded cations and largest deviation
        from the bond length."""
        d_cat = np.linalg.norm(points[:, None, :] - pos[None, cat, :], axis=2)
        bonded = d_cat < X_BOND_FACTOR * b_of[cat]
        ok = (bonded.sum(axis=1) >= 2) & ~(d_cat < 0.8 * b_of[cat]).any(axis=1)
        if len(ani):
            ok &= np.linalg.norm(points[:, None, :] - pos[None, ani, :], axis=2).min(axis=1) >= MIN_X_SEPARATION
        dev = np.where(bonded, np.abs(d_cat - b_of[cat]), 0.0).max(axis=1)
        return [(points[k], cat[bonded[k]], float(dev[k])) for k in np.flatnonzero(ok)]

    cands = []  # (position, bonded cations, largest deviation from the bond length, on a lattice site)
    tree = cKDTree(pos)
    lat_syms = np.array(lattice.get_chemical_symbols())
    sites = np.flatnonzero(np.isin(lat_syms, anions(material)))
    empty = sites[tree.query(lattice.positions[sites])[0] >= 0.5 * nn_min]
    r_lat = max(cut.values())
    for s, near in zip(empty, tree.query_ball_point(lattice.positions[empty], r_lat)):
        p = lattice.positions[s]
        near = np.array([i for i in near if syms[i] in b and np.linalg.norm(pos[i] - p) < cut[(syms[i], lat_syms[s])]])
        if len(near) < 2:
            continue
        # least squares of |q - M_i| - b_i: each step the mean of the points at b_i from M_i towards q
        q = p.copy()
        for _ in range(100):
            r = q - pos[near]
            q_new = np.mean(pos[near] + b_of[near, None] * r / np.linalg.norm(r, axis=1)[:, None], axis=0)
            if np.linalg.norm(q_new - q) < 1e-6:
                break
            q = q_new
        cands += [(q, bonded, dev, True) for q, bonded, dev in keep(q[None, :])]
    under = cat[deficit[cat] > 1e-9]
    angles = np.linspace(0, 2 * np.pi, 72, endpoint=False)
    stretch = np.linspace(1.0, 0.99 * X_BOND_FACTOR, 5)
    pairs = cKDTree(pos[under]).query_pairs(stretch[-1] * 2 * b_of[under].max(), output_type="ndarray")
    pairs = under[pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]] if len(pairs) else np.zeros((0, 2), dtype=int)
    for i, j in pairs:
        axis = pos[j] - pos[i]
        dij = float(np.linalg.norm(axis))
        if dij >= stretch[-1] * (b_of[i] + b_of[j]):
            continue
        u = axis / dij
        v = np.cross(u, [1.0, 0, 0] if abs(u[0]) < 0.9 else [0, 1.0, 0])
        v /= np.linalg.norm(v)
        w = np.cross(u, v)
        mid = 0.5 * (pos[i] + pos[j])
        others = np.array(
            [
                k
                for k in tree.query_ball_point(mid, 0.5 * dij + 2 * X_BOND_FACTOR * b_of[i] + MIN_X_SEPARATION)
                if k not in (i, j)
            ]
        )
        for f in stretch:
            bi, bj = f * b_of[i], f * b_of[j]
            if dij >= bi + bj:
                continue
            t = (dij**2 + bi**2 - bj**2) / (2 * dij)
            h = np.sqrt(max(bi**2 - t**2, 0.0))
            ring = pos[i] + t * u + h * (np.outer(np.cos(angles), v) + np.outer(np.sin(angles), w))
            clearance = (
                np.linalg.norm(ring[:, None, :] - pos[others][None, :, :], axis=2).min(axis=1)
                if len(others)
                else np.full(len(ring), np.inf)
            )
            # the most open point and every sixth next-most-open one (30 degrees apart)
            cands += [
                (q, bonded, dev, False) for q, bonded, dev in keep(ring[np.argsort(-clearance, kind="stable")[::6]])
            ]
    if not cands:
        raise StructureError(f"no bridging site for a {x}- passivant; change structure.diameter or structure.centre")
    q_all = np.array([c[0] for c in cands])
    k_bond = np.array([len(c[1]) for c in cands])
    members = np.full((len(cands), k_bond.max()), -1)
    for k, c in enumerate(cands):
        members[k, : len(c[1])] = c[1]
    dev = np.round([c[2] for c in cands], 2)
    off_lattice = np.array([not c[3] for c in cands])
    far = -np.round(np.linalg.norm(q_all - centre, axis=1), 6)
    alive = np.ones(len(cands), dtype=bool)
    out = atoms.copy()
    for placed in range(n):
        if not alive.any():
            raise StructureError(
                f"no bridging site left for {x}- passivant {placed + 1} of {n} (each must bridge two cations "
                f"within {X_BOND_FACTOR} x the M-X bond length, {MIN_X_SEPARATION} A from other {x} and anions); "
                "change structure.diameter or structure.centre"
            )
        share = 1.0 / k_bond
        got = np.where(members >= 0, np.minimum(np.clip(deficit[members], 0, None), share[:, None]), 0.0).sum(axis=1)
        score = -np.round(got, 6)
        order = np.lexsort((np.arange(len(cands)), far, -k_bond, off_lattice, dev, score))
        best = order[alive[order]][0]
        deficit[members[best, : k_bond[best]]] -= share[best]
        out.append(Atom(x, q_all[best]))
        alive &= np.linalg.norm(q_all - q_all[best], axis=1) >= MIN_X_SEPARATION
    return out


def neutralise(
    cluster: Atoms, lattice: Atoms, centre, material: str, crystal: str, charge: int = 0, passivate: str = "none"
) -> tuple[Atoms, dict]:
    """Make the net formal charge of ``cluster`` equal ``charge``.

    The rule (formal charges :data:`FORMAL_CHARGES`):

    * without a passivant, remove the fewest surface atoms whose formal charges add up to
      the excess, each time the atom of a needed species with the lowest coordination
      relative to bulk (ties: farthest from the centre, then highest index);
    * with a passivant X (Cl or Br, charge -1): while the cluster is negative, remove the
      lowest-coordinated anion as above; then add one X- per remaining positive charge at
      bridging sites (:func:`add_passivants`).

    Returns the new cluster and what was removed and added.
    """
    cut = bond_cutoffs(material, crystal)
    bulk_cn = bulk_coordination(material, crystal)
    for x in PASSIVANTS:
        bulk_cn.setdefault(x, bulk_cn[anions(material)[0]])
    atoms = cluster.copy()
    removed: Counter = Counter()
    centre = np.asarray(centre, dtype=float)

    def excess():
        return _formal_charge(atoms.get_chemical_symbols()) - charge

    def remove_one(species):
        pick = _least_coordinated(atoms, species, cut, bulk_cn, centre)
        removed[atoms[pick].symbol] += 1
        del atoms[pick]

    if passivate == "none":
        while excess() != 0:
            # species whose removal lowers |excess| without overshooting it
            fits = [
                t
                for t in MATERIALS[material].species
                if FORMAL_CHARGES[t] * excess() > 0
                and abs(FORMAL_CHARGES[t]) <= abs(excess())
                and t in atoms.get_chemical_symbols()
            ]
            if not fits:
                raise StructureError(
                    f"net formal charge {excess() + charge:+d} cannot be brought to structure.charge={charge} by "
                    f"removing {material} atoms (formal charges "
                    f"{', '.join(f'{t} {FORMAL_CHARGES[t]:+d}' for t in MATERIALS[material].species)}); "
                    "set structure.passivate to Cl or Br, or change structure.charge"
                )
            remove_one(fits)
        added = {}
    else:
        if passivate not in PASSIVANTS:
            raise StructureError(f"structure.passivate {passivate!r} not known; choose none, {', '.join(PASSIVANTS)}")
        while excess() < 0:
            remove_one(anions(material))
        n_x = excess()
        atoms = add_passivants(atoms, n_x, passivate, lattice, centre, material, crystal)
        added = {passivate: n_x} if n_x else {}
    if excess() != 0:
        raise StructureError(
            f"charge balance failed: net formal charge {excess() + charge} != structure.charge {charge}"
        )
    return atoms, {"removed": dict(removed), "passivants": added}


def sphere_cluster(
    material: str, crystal: str, diameter: float, charge: int = 0, passivate: str = "none", centre: str = "auto"
) -> tuple[Atoms, dict]:
    """Every atom within ``diameter``/2 of the centre, then charge-balanced.

    With a passivant (Cl, Br) the cut is made cation-rich like the shipped dots
    (:func:`cation_rich`) and gets one X- per excess positive charge at bridging sites
    (:func:`neutralise`). Without one, atoms bonded to fewer than two others are removed
    (repeatedly), then the excess species is trimmed by :func:`neutralise`."""
    if material not in MATERIALS:
        raise StructureError(f"structure.material {material!r} not known; choose from {', '.join(MATERIALS)}")
    nn = max(nearest_neighbour_distances(material, crystal).values())
    lattice = _supercell(material, crystal, diameter + 6 * nn)
    centre = _centre(lattice, material, centre)
    inside = np.linalg.norm(lattice.positions - centre, axis=1) <= diameter / 2 + 1e-6
    cluster = lattice[inside]
    cut = bond_cutoffs(material, crystal)
    dangling = 0
    trimmed: Counter = Counter()
    if passivate != "none":
        cluster, trimmed = cation_rich(cluster, material, crystal, centre, charge)
    while passivate == "none" and len(cluster):
        cn = coordination(cluster, cut)
        drop = np.flatnonzero(cn < 2)
        if len(drop) == 0:
            break
        dangling += len(drop)
        del cluster[[int(i) for i in drop]]
    if len(cluster) < 2 or len(set(cluster.get_chemical_symbols())) < 2:
        raise StructureError(f"structure.diameter {diameter} A is too small to hold a {material} cluster")
    cluster, info = neutralise(cluster, lattice, centre, material, crystal, charge, passivate)
    if passivate == "none":
        info["dangling_removed"] = dangling
    else:
        info["undercoordinated_removed"] = dict(trimmed)
    cluster.set_pbc(False)
    cluster.set_cell(None)
    cluster.positions -= centre
    return cluster, info


def perovskite_cube(material: str, diameter: float, charge: int = 0, passivate: str = "none") -> tuple[Atoms, dict]:
    """A CsBr-terminated cube of corner-sharing PbBr6 octahedra, charge-balanced.

    n = ``diameter``/a rounded (at least 1) octahedra per edge: the n^3 Pb of a cube of the
    cubic cell, every Br bonded to them (3n^2(n+1)) and the (n+1)^3 Cs of the A sites on and
    inside its six CsBr faces; that is every atom of the crystal with all coordinates in
    [a/2, (n + 1/2) a] from a Pb, a cube of edge n a. Its net formal charge is +(3n+1), which
    :func:`neutralise` balances: without a passivant by removing the least-coordinated Cs
    (the corners, 3 of 12 Br, first), with one by adding X- at bridging sites."""
    m = MATERIALS[material]
    a = m.crystals["perovskite"]["a"]
    n = max(1, int(round(diameter / a)))
    lattice = bulk_crystal(material, "perovskite").repeat(n + 2)
    frac = lattice.positions / a
    inside = np.all((frac >= 0.5 - 1e-6) & (frac <= n + 0.5 + 1e-6), axis=1)
    cluster = lattice[inside]
    centre = np.full(3, 0.5 * (n + 1) * a)
    cluster, info = neutralise(cluster, lattice, centre, material, "perovskite", charge, passivate)
    info["cut"] = {"shape": "CsBr-terminated cube", "octahedra_per_edge": n, "edge_A": round(n * a, 3)}
    cluster.set_pbc(False)
    cluster.set_cell(None)
    cluster.positions -= centre
    return cluster, info


def summarise(
    atoms: Atoms,
    charge: int = 0,
    material: str | None = None,
    crystal: str | None = None,
    passivants: dict | None = None,
) -> dict:
    """Composition, diameter, net formal charge, surface atoms and passivants of a cluster.

    Surface, core and ligand atoms are those of :func:`qdff.structure.sites.classify` (the metrics'
    definition) for ``material``, or for the material the elements of ``atoms`` name when it
    is not given or not present (an imported file); ``passivants`` defaults to the atoms of
    elements that are not part of that material."""
    from . import sites  # on demand: it computes the bulk coordination of every material at import

    syms = atoms.get_chemical_symbols()
    d = atoms.get_all_distances() if len(atoms) > 1 else np.zeros((1, 1))
    material = sites.resolve_material(syms, material)
    if passivants is None and material:
        passivants = dict(sorted(Counter(s for s in syms if s not in MATERIALS[material].species).items()))
    out = {
        "formula": atoms.get_chemical_formula(),
        "n_atoms": len(atoms),
        "composition": dict(sorted(Counter(syms).items())),
        "diameter_A": round(float(d.max()), 3),  # largest atom-atom distance
        "net_formal_charge": _formal_charge(syms) if all(s in FORMAL_CHARGES for s in syms) else None,
        "charge": charge,
        "passivants": passivants or {},
        "n_surface": None,
    }
    if material:
        n = sites.counts(atoms, material)
        out.update(
            n_surface=n["surface"],
            n_core=n["core"],
            n_ligand=n["ligand"],
            site_material=material,
            bulk_coordination=dict(sites.BULK_COORDINATION[material]),
        )
    if material and crystal:
        out["bulk_nn_A"] = {k: round(v, 4) for k, v in nearest_neighbour_distances(material, crystal).items()}
    return out


def put_in_box(atoms: Atoms, vacuum: float) -> Atoms:
    """The cluster centred in a cubic box with at least ``vacuum`` on each side.

    Cubic because CP2K's free-boundary (wavelet) Poisson solver, which the DFT presets use,
    aborts on non-cubic cells ("Poisson solver for non cubic cells not yet implemented").
    """
    atoms = atoms.copy()
    atoms.set_pbc(False)
    extent = atoms.positions.max(axis=0) - atoms.positions.min(axis=0)
    side = float(extent.max() + 2 * vacuum)
    atoms.set_cell([side, side, side])
    atoms.center()
    return atoms


def build_cluster(s: dict) -> tuple[Atoms, dict]:
    """The cluster of a validated ``structure`` config block (no box) and its build summary."""
    crystal = check_builder(s["material"], s["builder"])
    passivate = s.get("passivate", "none")
    centre = s.get("centre", "auto")
    if centre == "auto":
        centre = MATERIALS[s["material"]].centre
    if s.get("diameter") and crystal == "perovskite":
        atoms, info = perovskite_cube(s["material"], s["diameter"], s["charge"], passivate)
    elif s.get("diameter"):
        atoms, info = sphere_cluster(s["material"], crystal, s["diameter"], s["charge"], passivate, centre)
        info["cut"] = {"diameter_A": s["diameter"], "centre": centre}
    else:
        m = MATERIALS[s["material"]]
        cut, lattice, xyz = _count_cut(s["material"], crystal, s["n_pairs"], centre)
        atoms, info = neutralise(cut, lattice, xyz, s["material"], crystal, s["charge"], passivate)
        info["cut"] = {"n_pairs": s["n_pairs"], "centre": centre, "formula_unit": dict(zip(m.species, m.formula_unit))}
    summary = summarise(atoms, s["charge"], s["material"], crystal, info["passivants"])
    summary.update(material=s["material"], builder=s["builder"], **info)
    return atoms, summary


def resolve_structure_file(path) -> Path:
    """``structure.file`` as given; a relative path that is not under the working directory is
    also looked for under the project (the directory holding the qdff package), so that the
    shipped structures (``qdff/data/structures/...``) are found when Snakemake runs with
    ``--directory`` elsewhere."""
    path = Path(path)
    if path.is_file() or path.is_absolute():
        return path
    shipped = Path(__file__).resolve().parents[2] / path
    return shipped if shipped.is_file() else path


def read_structure(path) -> Atoms:
    given = Path(path)
    path = resolve_structure_file(given)
    if not path.is_file():
        where = (
            "" if given.is_absolute() else f" (relative to {Path.cwd()} or to {Path(__file__).resolve().parents[2]})"
        )
        raise StructureError(f"structure.file: {given} does not exist{where}")
    try:
        return read(path, index=-1)
    except Exception as exc:
        raise StructureError(f"structure.file: cannot read {path}: {exc}") from exc


def build_structure(cfg: dict, summary: dict | None = None, atoms: Atoms | None = None) -> Atoms:
    """The structure of ``cfg['structure']`` in its vacuum box, checked for known elements.

    If ``summary`` is a dict it is filled with the build summary (:func:`summarise`).
    ``atoms``: the structure itself, for structure.source data (the caller read it from the
    imported data set).
    """
    s = cfg["structure"]
    if s["source"] == "data":
        if atoms is None:
            raise StructureError("structure.source is 'data': the structure is the imported data's first frame")
        info = summarise(atoms, s["charge"], s.get("material"))
        info.update(source="data")
    elif s["source"] == "file":
        if not s.get("file"):
            raise StructureError("structure.file must be set when structure.source is 'file'")
        atoms = read_structure(s["file"])
        # the configured material if the file holds its elements, else the one it does hold
        info = summarise(atoms, s["charge"], s.get("material"))
        info.update(source=str(s["file"]))
    else:
        atoms, info = build_cluster(s)
    atoms = put_in_box(atoms, s["vacuum"])
    elements.settings_for(atoms.get_chemical_symbols())  # unknown elements fail here
    elements.check_multiplicity(atoms.get_chemical_symbols(), s["charge"], s["multiplicity"])
    atoms.info = {"charge": s["charge"], "multiplicity": s["multiplicity"]}
    d = atoms.get_all_distances()
    d[np.diag_indices_from(d)] = np.inf
    if d.min() < 0.5:
        raise StructureError(f"structure has atoms {d.min():.2f} A apart; check the input")
    info["min_distance_A"] = round(float(d.min()), 3)
    info["valence_electrons"] = elements.valence_electrons(atoms.get_chemical_symbols(), s["charge"])
    log.info(
        "structure: %s, %d atoms, diameter %.1f A, net formal charge %s, %s surface atoms, passivants %s, "
        "min distance %.2f A",
        info["formula"],
        info["n_atoms"],
        info["diameter_A"],
        info["net_formal_charge"],
        info["n_surface"],
        info["passivants"] or "none",
        d.min(),
    )
    if summary is not None:
        summary.update(info)
    return atoms
