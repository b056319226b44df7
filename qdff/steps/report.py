"""Steps of rules/report.smk: the HTML report of a system, and the index of all systems."""

from __future__ import annotations

import logging
from pathlib import Path

from .. import config as qconfig
from ..cp2k import run as cp2k_run
from ..fileio import read_json

log = logging.getLogger(__name__)


def render_report(
    aimd_summaries,
    selection_file,
    structure_file,
    metrics_file,
    parity_plots,
    error_plots,
    rdf_plots,
    mlmd_summaries,
    model_files,
    out,
    aimd_plot,
    *,
    al_summary=None,
    al_plot=None,
    al_calibration=(),
    vibrations: dict | None = None,
    config: dict,
    backends: list,
    rdf_keys: list,
    vib_keys: list,
) -> None:
    """The system's report from the rule's flat file lists: ``parity_plots``, ``error_plots`` and
    ``model_files`` in the order of ``backends``; ``rdf_plots`` and ``mlmd_summaries`` in the
    order of ``rdf_keys`` ([backend, temperature label]); ``vibrations``: the vibrations rules'
    files, when they ran ({"cp2k", "spectra", "modes" and "relax" in the order of ``backends``,
    "vdos" and "vdos_plots" in the order of ``vib_keys``}); ``config``: what the report states of
    the config (name, description, cp2k.preset, the ML-MD protocol the verdicts name: mlmd.bond_cutoff_factor,
    bond_check, bond_criterion, ...; the vibrations settings)."""
    vib = None
    if vibrations:
        vib = {
            "cp2k": vibrations["cp2k"],
            "spectra": vibrations["spectra"],
            "modes": dict(zip(backends, vibrations["modes"])),
            "relax": dict(zip(backends, vibrations["relax"])),
            "vdos": [(b, t, p) for (b, t), p in zip(vib_keys, vibrations["vdos"])],
            "vdos_plots": [(b, t, p) for (b, t), p in zip(vib_keys, vibrations["vdos_plots"])],
        }
    write_report(
        config,
        aimd_dirs=[Path(s).parent for s in aimd_summaries],
        aimd_summaries=aimd_summaries,
        selection_file=selection_file,
        structure_file=structure_file,
        metrics_file=metrics_file,
        parity_plots=dict(zip(backends, parity_plots)),
        error_plots=dict(zip(backends, error_plots)),
        rdf_plots=[(b, t, p) for (b, t), p in zip(rdf_keys, rdf_plots)],
        mlmd_summaries=[(b, t, p) for (b, t), p in zip(rdf_keys, mlmd_summaries)],
        model_dirs={b: Path(m).parent for b, m in zip(backends, model_files)},
        aimd_plot=aimd_plot,
        al_summary=al_summary,
        al_plot=al_plot,
        al_calibration=al_calibration,
        vibrations=vib,
        out=out,
    )


def write_report(
    config: dict,
    *,
    aimd_dirs,
    aimd_summaries,
    selection_file,
    metrics_file,
    parity_plots: dict,
    model_dirs: dict,
    aimd_plot,
    out,
    error_plots: dict | None = None,
    rdf_plots=(),
    structure_file=None,
    al_summary=None,
    al_plot=None,
    al_calibration=(),
    vibrations: dict | None = None,
    mlmd_summaries=(),
) -> None:
    """``rdf_plots``, ``mlmd_summaries``: (backend, temperature label, path) triples; ``al_*``: the active
    learning summary, progress plot and calibration plots, when the loop ran; ``vibrations``:
    the vibrations rules' files, when they ran: {"cp2k": modes.json, "spectra": png, "modes"
    and "relax": {backend: json}, "vdos" and "vdos_plots": (backend, temperature label, path)}."""
    from ..report import interactive
    from ..report import render as report

    ener = {
        qconfig.temperature_label(read_json(s)["temperature"]): Path(d) / f"{cp2k_run.MD_PROJECT}-1.ener"
        for d, s in zip(aimd_dirs, aimd_summaries)
    }
    report.aimd_overview_plot(ener, aimd_plot)
    report.render_report(
        config,
        interactive=interactive.report_figures(ener, parity_plots, rdf_plots, mlmd_summaries),
        aimd_plot=aimd_plot,
        aimd_summaries=[read_json(s) for s in aimd_summaries],
        selection=read_json(selection_file),
        metrics=read_json(metrics_file),
        parity_plots=parity_plots,
        models={b: read_json(Path(d) / "model.json") for b, d in model_dirs.items()},
        out_path=out,
        error_plots=error_plots,
        rdf_plots=_nest(rdf_plots),
        structure=read_json(structure_file) if structure_file else None,
        selection_context=_selection_context(selection_file),
        active_learning={"summary": read_json(al_summary), "plot": al_plot, "calibration": list(al_calibration)}
        if al_summary
        else None,
        vibrations=_vibrations_context_args(vibrations) if vibrations else None,
    )
    log.info("report written to %s", out)


def _vibrations_context_args(files: dict) -> dict:
    return {
        "cp2k": read_json(files["cp2k"]),
        "spectra_png": files["spectra"],
        "modes": {b: read_json(p) for b, p in files["modes"].items()},
        "relax": {b: read_json(p) for b, p in files["relax"].items()},
        "vdos": {(b, t): read_json(p) for b, t, p in files["vdos"]},
        "vdos_plots": {(b, t): p for b, t, p in files["vdos_plots"]},
    }


def _selection_context(selection_file) -> dict:
    """The map and learning curve beside results/{system}/split/selection.json, where present."""
    from ..selection import report as selection_report

    system_dir = Path(selection_file).parent.parent
    return selection_report.context(**selection_report.selection_files(system_dir.name, system_dir.parent))


def _nest(triples) -> dict:
    out: dict = {}
    for backend, label, path in triples:
        out.setdefault(backend, {})[label] = path
    return out


def render_index(out, results_dir="results") -> None:
    """results/index.html: one row per system found under ``results_dir``."""
    from ..report import render as report

    report.render_index(results_dir, out)
