"""Steps of rules/structure.smk: build the QD, relax it with CP2K."""
from __future__ import annotations

import logging

from ase.io import write

from ..cp2k import run as cp2k_run
from ..data import dataset
from ..fileio import atomic_path, write_json
from ..structure import build as structures

log = logging.getLogger(__name__)


def build_structure(cfg: dict, out, summary_out=None) -> dict:
    """The structure in its box to ``out``; its build summary (composition, diameter, net
    formal charge, surface atoms, passivants) to ``summary_out`` (JSON) if given."""
    summary: dict = {}
    atoms = structures.build_structure(cfg, summary)
    with atomic_path(out, suffix=".extxyz") as tmp:
        write(tmp, atoms, format="extxyz")
    if summary_out:
        write_json(summary_out, summary)
    log.info("wrote %s (%s, %d atoms)", out, atoms.get_chemical_formula(), len(atoms))
    return summary


def relax_structure(cfg: dict, structure, workdir, out) -> None:
    atoms = dataset.read_structure(structure)
    if not cfg["cp2k"]["relax"]:
        log.info("cp2k.relax is false: using the structure as it is")
        with atomic_path(out, suffix=".extxyz") as tmp:
            write(tmp, atoms, format="extxyz")
        return
    cp2k_run.relax(atoms, cfg, workdir, out)

