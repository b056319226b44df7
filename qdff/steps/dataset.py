"""Steps of rules/dataset.smk and rules/import.smk: CP2K MD runs of qdff's AIMD, or a group's
imported data (config ``data``), -> the canonical data set (eV, Angstrom)."""

from __future__ import annotations

from pathlib import Path

from .. import config as qconfig
from ..cp2k import output as cp2k_output
from ..fileio import write_json


def convert_trajectory(
    run_dirs, out, summary=None, *, temperatures: list | None, runs: list | None = None
) -> list[dict]:
    """Every CP2K MD run directory of ``run_dirs`` into one extxyz data set ``out``;
    ``temperatures`` and ``runs``: the temperature and run label of each directory (default
    label: the temperature's)."""
    run_dirs = [Path(d) for d in run_dirs]
    if runs is None:
        runs = [qconfig.temperature_label(t) for t in temperatures] if temperatures else None
    result = cp2k_output.convert_runs(run_dirs, out, runs=runs, temperatures=temperatures)
    if summary:
        write_json(summary, result)
    return result


def import_data(out, summary=None, *, data: dict) -> dict:
    """The config's ``data`` block (CP2K run directories or extxyz files) into one extxyz data
    set ``out``, as ``qdff import`` writes it; its summary (per source: frames, compositions,
    temperatures, time order, duplicates) to ``summary`` (JSON) if given."""
    from ..data.imports import import_data as run_import

    result = run_import(data, out)
    if summary:
        write_json(summary, result)
    return result
