"""Steps of rules/structure.smk and rules/import.smk: build the QD (or take it from imported
data), relax it with CP2K."""

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


def structure_from_data(frames_file, out, summary_out=None, *, structure: dict) -> dict:
    """The structure of imported data (structure.source data): the first frame of the data set
    ``frames_file``, that is the first frame of data.paths[0], without its labels, in the
    vacuum box and with the summary (composition, diameter, net formal charge, surface atoms)
    that :func:`build_structure` writes. Assumed: that frame is a sensible structure of the QD
    (for a trajectory the start of the run, not necessarily relaxed or equilibrated; for a data
    set of several compositions only the first one's) and carries structure.charge and
    multiplicity (defaults 0 and 1). Nothing relaxes it."""
    from ase import Atoms
    from ase.io import read

    first = read(frames_file, index=0)
    atoms = Atoms(first.get_chemical_symbols(), positions=first.positions)
    summary: dict = {}
    atoms = structures.build_structure({"structure": structure}, summary, atoms=atoms)
    summary.update(
        source=str(first.info.get("source", frames_file)),
        from_data="first frame of the imported data set, not relaxed",
    )
    with atomic_path(out, suffix=".extxyz") as tmp:
        write(tmp, atoms, format="extxyz")
    if summary_out:
        write_json(summary_out, summary)
    log.info(
        "wrote %s (%s, %d atoms) from the first frame of %s",
        out,
        atoms.get_chemical_formula(),
        len(atoms),
        summary["source"],
    )
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
