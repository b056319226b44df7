"""Steps of rules/structure.smk: build the QD, relax it with CP2K."""

from __future__ import annotations

import logging

from ase.io import write

from ..cp2k import run as cp2k_run
from ..data import dataset
from ..fileio import atomic_path, write_json
from ..structure import build as structures

log = logging.getLogger(__name__)


def build_structure(out, summary_out=None, *, structure: dict) -> dict:
    """The QD of the config's ``structure`` block in its box to ``out``; its build summary
    (composition, diameter, net formal charge, surface atoms, passivants) to ``summary_out``
    (JSON) if given."""
    summary: dict = {}
    atoms = structures.build_structure({"structure": structure}, summary)
    with atomic_path(out, suffix=".extxyz") as tmp:
        write(tmp, atoms, format="extxyz")
    if summary_out:
        write_json(summary_out, summary)
    log.info("wrote %s (%s, %d atoms)", out, atoms.get_chemical_formula(), len(atoms))
    return summary


def relax_structure(structure_file, out, *, workdir, structure: dict, cp2k: dict, launch) -> None:
    """CP2K GEO_OPT of ``structure_file`` in ``workdir`` (``cp2k.relax``: else copied as it is)."""
    atoms = dataset.read_structure(structure_file)
    if not cp2k["relax"]:
        log.info("cp2k.relax is false: using the structure as it is")
        with atomic_path(out, suffix=".extxyz") as tmp:
            write(tmp, atoms, format="extxyz")
        return
    cp2k_run.relax(atoms, cp2k_run.settings(structure, cp2k, launch), workdir, out)
