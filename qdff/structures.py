"""QD structures: builders from config, or import of a user's file.

A builder cuts a near-spherical cluster out of a bulk crystal made by ASE
(``ase.build.bulk`` / ``ase.spacegroup.crystal``), either the ``n_pairs`` formula units
nearest the centre (stoichiometric by construction) or every atom within ``diameter``/2
of the centre. The cluster is then made charge-balanced with formal charges
(:data:`FORMAL_CHARGES`) by the rule of :func:`neutralise`. Output is an ASE Atoms object
centred in a non-periodic box with the requested vacuum.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atom, Atoms
from ase.build import bulk
from ase.io import read
from ase.neighborlist import neighbor_list
from ase.spacegroup import crystal as spacegroup_crystal

from . import elements

log = logging.getLogger(__name__)

#: Formal (oxidation-state) charges used for charge balance; also used to report the net
#: formal charge of imported structures when every element is listed here.
FORMAL_CHARGES = {"Cd": 2, "Se": -2, "In": 3, "P": -3, "Pb": 2, "Cs": 1, "Br": -1, "Cl": -1}

#: Inorganic passivants (X-type ligands) the builders can add at undercoordinated cations.
PASSIVANTS = ("Cl", "Br")

#: builder (config name) -> crystal structure it cuts
BUILDERS = {
    "zincblende-cut": "zincblende",
    "wurtzite-cut": "wurtzite",
    "rocksalt-cut": "rocksalt",
    "perovskite-cut": "perovskite",
}


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
        return spacegroup_crystal([pb, br, cs], basis=[(0, 0, 0), (0.5, 0, 0), (0.5, 0.5, 0.5)],
                                  spacegroup=221, cellpar=[p["a"]] * 3 + [90] * 3)
    raise StructureError(f"unknown crystal {crystal!r}")


def _cations(material: str) -> list[str]:
    return [s for s in MATERIALS[material].species if FORMAL_CHARGES[s] > 0]


def _anions(material: str) -> list[str]:
    return [s for s in MATERIALS[material].species if FORMAL_CHARGES[s] < 0]


def bond_cutoffs(material: str, crystal: str, passivants=PASSIVANTS) -> dict[tuple[str, str], float]:
    """Cation-anion bond cutoffs: :data:`BOND_FACTOR` times the bulk nearest-neighbour distance
    of each pair. A passivant bonds like the anion whose site it takes."""
    cell = bulk_crystal(material, crystal)
    i, j, d = neighbor_list("ijd", cell, 1.5 * max(cell.cell.lengths()))
    syms = np.array(cell.get_chemical_symbols())
    cut = {}
    for c in _cations(material):
        for a in _anions(material):
            sel = (syms[i] == c) & (syms[j] == a)
            cut[(c, a)] = cut[(a, c)] = BOND_FACTOR * float(d[sel].min())
    an = _anions(material)[0]
    for x in passivants:
        for c in _cations(material):
            cut.setdefault((c, x), cut[(c, an)])
            cut.setdefault((x, c), cut[(c, an)])
    return cut


def nearest_neighbour_distances(material: str, crystal: str) -> dict[str, float]:
    """Bulk cation-anion nearest-neighbour distance per pair, e.g. {'Cd-Se': 2.62}."""
    return {f"{a}-{b}": c / BOND_FACTOR for (a, b), c in bond_cutoffs(material, crystal, ()).items()
            if FORMAL_CHARGES[a] > 0}


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
    cation = max(_cations(material), key=lambda t: FORMAL_CHARGES[t])
    first = _anions(material)[0] if centre == "anion" else cation
    idx = np.flatnonzero(syms == first)
    c0 = idx[np.argmin(np.linalg.norm(pos[idx] - middle, axis=1))]
    if centre != "bond":
        return pos[c0].copy()
    an_idx = np.flatnonzero(syms == _anions(material)[0])
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


def neutralise(cluster: Atoms, lattice: Atoms, centre, material: str, crystal: str, charge: int = 0,
               passivate: str = "none") -> tuple[Atoms, dict]:
    """Make the net formal charge of ``cluster`` equal ``charge``.

    The rule (formal charges :data:`FORMAL_CHARGES`):

    * without a passivant, remove the fewest surface atoms whose formal charges add up to
      the excess, each time the atom of a needed species with the lowest coordination
      relative to bulk (ties: farthest from the centre, then highest index);
    * with a passivant X (Cl or Br, charge -1): while the cluster is negative, remove the
      lowest-coordinated anion as above; then add one X- per remaining positive charge,
      each at the empty anion site (of the bulk lattice ``lattice``) of the cation with the
      lowest relative coordination, on the site farthest from the centre.

    Returns the new cluster and what was removed and added.
    """
    cut = bond_cutoffs(material, crystal)
    bulk_cn = bulk_coordination(material, crystal)
    for x in PASSIVANTS:
        bulk_cn.setdefault(x, bulk_cn[_anions(material)[0]])
    atoms = cluster.copy()
    removed: Counter = Counter()
    added: Counter = Counter()
    centre = np.asarray(centre, dtype=float)

    def excess():
        return _formal_charge(atoms.get_chemical_symbols()) - charge

    def remove_one(species):
        cn = coordination(atoms, cut)
        syms = np.array(atoms.get_chemical_symbols())
        idx = np.flatnonzero(np.isin(syms, list(species)))
        rel = np.array([cn[i] / bulk_cn[syms[i]] for i in idx])
        dist = np.linalg.norm(atoms.positions[idx] - centre, axis=1)
        pick = idx[np.lexsort((-idx, -np.round(dist, 6), np.round(rel, 6)))[0]]
        removed[str(syms[pick])] += 1
        del atoms[int(pick)]

    if passivate == "none":
        while excess() != 0:
            # species whose removal lowers |excess| without overshooting it
            fits = [t for t in MATERIALS[material].species
                    if FORMAL_CHARGES[t] * excess() > 0 and abs(FORMAL_CHARGES[t]) <= abs(excess())
                    and t in atoms.get_chemical_symbols()]
            if not fits:
                raise StructureError(
                    f"net formal charge {excess() + charge:+d} cannot be brought to structure.charge={charge} by "
                    f"removing {material} atoms (formal charges "
                    f"{', '.join(f'{t} {FORMAL_CHARGES[t]:+d}' for t in MATERIALS[material].species)}); "
                    "set structure.passivate to Cl or Br, or change structure.charge"
                )
            remove_one(fits)
    else:
        if passivate not in PASSIVANTS:
            raise StructureError(f"structure.passivate {passivate!r} not known; choose none, {', '.join(PASSIVANTS)}")
        while excess() < 0:
            remove_one(_anions(material))
        anion_sites = lattice.positions[np.isin(lattice.get_chemical_symbols(), _anions(material))]
        cn = list(coordination(atoms, cut))
        for _ in range(excess()):
            x_atom = _passivant_site(atoms, np.array(cn), anion_sites, centre, material, cut, bulk_cn, passivate)
            # update the coordinations with the new passivant's bonds: one neighbour search
            # per passivant made large builds (180 atoms, 33 Cl) take seconds
            d = np.linalg.norm(atoms.positions - x_atom.position, axis=1)
            bonded = [j for j, t in enumerate(atoms.get_chemical_symbols())
                      if (t, passivate) in cut and FORMAL_CHARGES[t] > 0 and d[j] < cut[(t, passivate)]]
            for j in bonded:
                cn[j] += 1
            atoms.append(x_atom)
            cn.append(len(bonded))
            added[passivate] += 1
    if excess() != 0:
        raise StructureError(f"charge balance failed: net formal charge {excess() + charge} != structure.charge {charge}")
    return atoms, {"removed": dict(removed), "passivants": dict(added)}


def _passivant_site(atoms, cn, anion_sites, centre, material, cut, bulk_cn, x):
    syms = np.array(atoms.get_chemical_symbols())
    cat = np.flatnonzero(np.isin(syms, _cations(material)))
    rel = np.array([cn[i] / bulk_cn[syms[i]] for i in cat])
    dist = np.linalg.norm(atoms.positions[cat] - centre, axis=1)
    for i in cat[np.lexsort((-cat, -np.round(dist, 6), np.round(rel, 6)))]:
        r = cut[(syms[i], x)]
        d_site = np.linalg.norm(anion_sites - atoms.positions[i], axis=1)
        cand = anion_sites[d_site < r]
        # empty: no atom of the cluster on (or next to) the site
        occupied = [np.min(np.linalg.norm(atoms.positions - p, axis=1)) < 0.5 * r / BOND_FACTOR for p in cand]
        free = [p for p, occ in zip(cand, occupied) if not occ]
        if free:
            far = max(free, key=lambda p: np.linalg.norm(p - centre))
            return Atom(x, far)
    raise StructureError(f"no empty anion site left for a {x} passivant; use a larger structure.diameter")


def sphere_cluster(material: str, crystal: str, diameter: float, charge: int = 0,
                   passivate: str = "none", centre: str = "auto") -> tuple[Atoms, dict]:
    """Every atom within ``diameter``/2 of the centre, without atoms bonded to fewer than two
    others (removed repeatedly), then charge-balanced by :func:`neutralise`."""
    if material not in MATERIALS:
        raise StructureError(f"structure.material {material!r} not known; choose from {', '.join(MATERIALS)}")
    nn = max(nearest_neighbour_distances(material, crystal).values())
    lattice = _supercell(material, crystal, diameter + 6 * nn)
    centre = _centre(lattice, material, centre)
    inside = np.linalg.norm(lattice.positions - centre, axis=1) <= diameter / 2 + 1e-6
    cluster = lattice[inside]
    cut = bond_cutoffs(material, crystal)
    dangling = 0
    while len(cluster):
        cn = coordination(cluster, cut)
        drop = np.flatnonzero(cn < 2)
        if len(drop) == 0:
            break
        dangling += len(drop)
        del cluster[[int(i) for i in drop]]
    if len(cluster) < 2:
        raise StructureError(f"structure.diameter {diameter} A is too small to hold a {material} cluster")
    cluster, info = neutralise(cluster, lattice, centre, material, crystal, charge, passivate)
    info["dangling_removed"] = dangling
    cluster.set_pbc(False)
    cluster.set_cell(None)
    cluster.positions -= centre
    return cluster, info


def summarise(atoms: Atoms, charge: int = 0, material: str | None = None, crystal: str | None = None,
              passivants: dict | None = None) -> dict:
    """Composition, diameter, net formal charge, surface atoms and passivants of a cluster."""
    syms = atoms.get_chemical_symbols()
    d = atoms.get_all_distances() if len(atoms) > 1 else np.zeros((1, 1))
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
    if material and crystal:
        cn = coordination(atoms, bond_cutoffs(material, crystal))
        bulk_cn = bulk_coordination(material, crystal)
        core = [i for i, s in enumerate(syms) if s in bulk_cn and not (passivants and s in passivants
                                                                         and s not in MATERIALS[material].species)]
        out["n_surface"] = int(sum(cn[i] < bulk_cn[syms[i]] for i in core))
        out["bulk_coordination"] = bulk_cn
        out["bulk_nn_A"] = {k: round(v, 4) for k, v in nearest_neighbour_distances(material, crystal).items()}
    return out


def put_in_box(atoms: Atoms, vacuum: float) -> Atoms:
    atoms = atoms.copy()
    atoms.set_pbc(False)
    atoms.center(vacuum=vacuum)
    return atoms


def build_cluster(s: dict) -> tuple[Atoms, dict]:
    """The cluster of a validated ``structure`` config block (no box) and its build summary."""
    crystal = check_builder(s["material"], s["builder"])
    passivate = s.get("passivate", "none")
    centre = s.get("centre", "auto")
    if centre == "auto":
        centre = MATERIALS[s["material"]].centre
    if s.get("diameter"):
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


def read_structure(path) -> Atoms:
    path = Path(path)
    if not path.is_file():
        raise StructureError(f"structure.file: {path} does not exist")
    try:
        return read(path, index=-1)
    except Exception as exc:
        raise StructureError(f"structure.file: cannot read {path}: {exc}") from exc


def build_structure(cfg: dict, summary: dict | None = None) -> Atoms:
    """The structure of ``cfg['structure']`` in its vacuum box, checked for known elements.

    If ``summary`` is a dict it is filled with the build summary (:func:`summarise`).
    """
    s = cfg["structure"]
    if s["source"] == "file":
        if not s.get("file"):
            raise StructureError("structure.file must be set when structure.source is 'file'")
        atoms = read_structure(s["file"])
        info = summarise(atoms, s["charge"])
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
    log.info("structure: %s, %d atoms, diameter %.1f A, net formal charge %s, %s surface atoms, passivants %s, "
             "min distance %.2f A", info["formula"], info["n_atoms"], info["diameter_A"], info["net_formal_charge"],
             info["n_surface"], info["passivants"] or "none", d.min())
    if summary is not None:
        summary.update(info)
    return atoms
