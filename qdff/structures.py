"""QD structures: builders from config, or import of a user's file.

Output is an ASE Atoms object centred in a non-periodic box with the requested vacuum.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.io import read

from . import elements

log = logging.getLogger(__name__)

#: material -> (cation, anion, lattice constant in Angstrom for zinc blende, (a, c) for wurtzite)
MATERIALS = {
    # CdSe: zinc blende a = 6.052 A, wurtzite a = 4.30 A, c = 7.01 A (experimental)
    "CdSe": ("Cd", "Se", 6.052, (4.30, 7.01)),
}


class StructureError(ValueError):
    pass


def _bulk(material: str, crystal: str, reps: int) -> Atoms:
    cation, anion, a_zb, (a_wz, c_wz) = MATERIALS[material]
    if crystal == "zincblende":
        cell = bulk(cation + anion, "zincblende", a=a_zb, cubic=True)
    else:
        cell = bulk(cation + anion, "wurtzite", a=a_wz, c=c_wz)
    return cell.repeat(reps)


def cut_cluster(material: str = "CdSe", crystal: str = "zincblende", n_pairs: int = 6) -> Atoms:
    """A stoichiometric near-spherical cut: the ``n_pairs`` cations and anions nearest the centre.

    The centre is the midpoint of a central cation-anion bond, so that both sublattices
    are cut symmetrically and the cluster is charge neutral with formal charges.
    """
    if material not in MATERIALS:
        raise StructureError(f"structure.material {material!r} not known; choose from {', '.join(MATERIALS)}")
    cation, anion, *_ = MATERIALS[material]
    reps = 2
    while True:
        crystal_atoms = _bulk(material, crystal, reps)
        syms = np.array(crystal_atoms.get_chemical_symbols())
        if min((syms == cation).sum(), (syms == anion).sum()) >= 4 * n_pairs:
            break
        reps += 1
    pos = crystal_atoms.positions
    middle = pos.mean(axis=0)
    cat_idx = np.flatnonzero(syms == cation)
    c0 = cat_idx[np.argmin(np.linalg.norm(pos[cat_idx] - middle, axis=1))]
    an_idx = np.flatnonzero(syms == anion)
    a0 = an_idx[np.argmin(np.linalg.norm(pos[an_idx] - pos[c0], axis=1))]
    centre = 0.5 * (pos[c0] + pos[a0])
    chosen = []
    for idx in (cat_idx, an_idx):
        dist = np.linalg.norm(pos[idx] - centre, axis=1)
        order = np.lexsort((idx, np.round(dist, 6)))  # deterministic tie-break
        chosen.extend(idx[order[:n_pairs]])
    cluster = crystal_atoms[sorted(chosen)]
    cluster.set_pbc(False)
    cluster.set_cell(None)
    cluster.positions -= cluster.positions.mean(axis=0)
    return cluster


def put_in_box(atoms: Atoms, vacuum: float) -> Atoms:
    atoms = atoms.copy()
    atoms.set_pbc(False)
    atoms.center(vacuum=vacuum)
    return atoms


def build_structure(cfg: dict) -> Atoms:
    """The structure of ``cfg['structure']`` in its vacuum box, checked for known elements."""
    s = cfg["structure"]
    if s["source"] == "file":
        if not s.get("file"):
            raise StructureError("structure.file must be set when structure.source is 'file'")
        path = Path(s["file"])
        if not path.is_file():
            raise StructureError(f"structure.file: {path} does not exist")
        try:
            atoms = read(path, index=-1)
        except Exception as exc:
            raise StructureError(f"structure.file: cannot read {path}: {exc}") from exc
    else:
        crystal = {"zincblende-cut": "zincblende", "wurtzite-cut": "wurtzite"}[s["builder"]]
        atoms = cut_cluster(s["material"], crystal, s["n_pairs"])
    atoms = put_in_box(atoms, s["vacuum"])
    elements.settings_for(atoms.get_chemical_symbols())  # unknown elements fail here
    elements.check_multiplicity(atoms.get_chemical_symbols(), s["charge"], s["multiplicity"])
    atoms.info.update(charge=s["charge"], multiplicity=s["multiplicity"])
    d = atoms.get_all_distances()
    d[np.diag_indices_from(d)] = np.inf
    if d.min() < 0.5:
        raise StructureError(f"structure has atoms {d.min():.2f} A apart; check the input")
    log.info("structure: %s, %d atoms, min distance %.2f A", atoms.get_chemical_formula(), len(atoms), d.min())
    return atoms
