"""Self-contained HTML report per system (Jinja2, images embedded), and an index."""
from __future__ import annotations

import base64
import datetime
import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from jinja2 import Environment, PackageLoader, select_autoescape  # noqa: E402

from . import __version__  # noqa: E402
from .cp2k_input import LEVEL_OF_THEORY  # noqa: E402
from .cp2k_output import read_ener  # noqa: E402
from .fileio import atomic_open, atomic_path, read_json  # noqa: E402

METRIC_COLUMNS = [
    ("backend", "backend", "{}"),
    ("n_frames", "test frames", "{}"),
    ("energy_mae_meV_per_atom", "E MAE [meV/atom]", "{:.2f}"),
    ("energy_rmse_meV_per_atom", "E RMSE [meV/atom]", "{:.2f}"),
    ("force_mae_meV_per_A", "F MAE [meV/Å]", "{:.1f}"),
    ("force_rmse_meV_per_A", "F RMSE [meV/Å]", "{:.1f}"),
    ("force_max_error_meV_per_A", "F max error [meV/Å]", "{:.0f}"),
    ("baseline_zero_force_rmse_meV_per_A", "zero-force baseline F RMSE [meV/Å]", "{:.1f}"),
    ("force_rmse_meV_per_A_site_core", "F RMSE core [meV/Å]", "{:.1f}"),
    ("force_rmse_meV_per_A_site_surface", "F RMSE surface [meV/Å]", "{:.1f}"),
    ("mlmd_verdicts", "ML-MD stability", "{}"),
    ("mlmd_nve_drift_meV_per_atom_per_ps", "NVE drift [meV/atom/ps]", "{:.2f}"),
    ("rdf_overlap_min", "RDF overlap (worst pair)", "{:.2f}"),
    ("rdf_overlap_aimd_halves_min", "RDF overlap of AIMD halves (ceiling)", "{:.2f}"),
    ("speedup_vs_cp2k", "MD speed-up vs CP2K", "{:.0f}×"),
    ("training_wall_s", "training time [s]", "{:.0f}"),
    ("inference_s_per_atom_step", "inference [µs/atom/step]", "{}"),
    ("model_size_MB", "model size [MB]", "{:.2f}"),
]


def breakdown_table(metrics: list) -> tuple[list, list]:
    """Columns and rows of force RMSE by element, site class and temperature, with the
    zero-force baseline of each group (the first row)."""
    prefix = "force_rmse_meV_per_A_"
    keys = sorted({k[len(prefix):] for m in metrics for k in m if k.startswith(prefix)},
                  key=lambda k: (k.startswith("T_"), k.startswith("site_"), k))
    def label(k):
        return k[5:] if k.startswith("site_") else k[2:].replace("K", " K") if k.startswith("T_") else k
    base = ["zero-force baseline"] + [_fmt("", "{:.1f}", metrics[0].get(f"baseline_zero_force_rmse_meV_per_A_{k}"))
                                      for k in keys] if metrics else []
    rows = [base] + [[m["backend"]] + [_fmt("", "{:.1f}", m.get(prefix + k)) for k in keys] for m in metrics]
    return ["force RMSE [meV/Å]"] + [label(k) for k in keys], rows


def _env():
    return Environment(loader=PackageLoader("qdff", "templates"), autoescape=select_autoescape(["html", "j2"]))


def png_data_uri(path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()


def aimd_overview_plot(ener_files: dict, path) -> None:
    """Temperature and potential energy against time, one line per run."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for label, f in ener_files.items():
        e = read_ener(f)
        axes[0].plot(e["time"], e["temperature"], label=label, lw=0.8)
        axes[1].plot(e["time"], e["potential"] - e["potential"][0], label=label, lw=0.8)
    axes[0].set_xlabel("time [fs]")
    axes[0].set_ylabel("temperature [K]")
    axes[1].set_xlabel("time [fs]")
    axes[1].set_ylabel("E_pot - E_pot(0) [eV]")
    axes[0].legend()
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def _fmt(key, fmt, value):
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    if key == "inference_s_per_atom_step":
        return f"{value * 1e6:.1f}"
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def render_report(cfg: dict, *, aimd_plot, aimd_summaries: list, selection: dict, metrics: list,
                  parity_plots: dict, models: dict, out_path, error_plots: dict | None = None,
                  rdf_plots: dict | None = None, selection_context: dict | None = None,
                  structure: dict | None = None, active_learning: dict | None = None) -> None:
    """``active_learning``: {"summary": al/summary.json's content, "plot": png, "calibration": [png]}."""
    rows = []
    for m in metrics:
        prov = models.get(m["backend"], {}).get("provenance", {})
        m = {**m, "training_wall_s": prov.get("training_wall_s")}
        rows.append([_fmt(k, f, m.get(k)) for k, _, f in METRIC_COLUMNS])
    # one column per backend, one row per metric: four backends stay readable
    table = [[label] + [r[i] for r in rows] for i, (_, label, _) in enumerate(METRIC_COLUMNS) if i > 0]
    preset = cfg["cp2k"]["preset"]
    ctx = {
        "cfg": cfg,
        "name": cfg["name"],
        "description": cfg.get("description", ""),
        "level_of_theory": LEVEL_OF_THEORY[preset],
        "preset": preset,
        "is_demo_quality": preset in ("xtb", "pbe-fast"),
        "aimd_plot": png_data_uri(aimd_plot),
        "aimd": aimd_summaries,
        "selection": selection,
        "backends": [r[0] for r in rows],
        "metric_rows": table,
        "parity": {k: png_data_uri(v) for k, v in parity_plots.items()},
        "errors": {k: png_data_uri(v) for k, v in (error_plots or {}).items()},
        "rdf": {b: {t: png_data_uri(p) for t, p in by_t.items()} for b, by_t in (rdf_plots or {}).items()},
        "speed": speed_rows(aimd_summaries, metrics),
        **(selection_context or {}),
        "structure": structure,
        "models": models,
        "al": (active_learning or {}).get("summary"),
        "al_plot": png_data_uri(active_learning["plot"]) if active_learning else None,
        "al_calibration": [png_data_uri(p) for p in (active_learning or {}).get("calibration", [])],
        "generated": datetime.datetime.now().isoformat(timespec="seconds"),
        "version": __version__,
    }
    ctx["breakdown_columns"], ctx["breakdown_rows"] = breakdown_table(metrics)
    text = _env().get_template("report.html.j2").render(**ctx)
    with atomic_open(out_path) as fh:
        fh.write(text)


def speed_rows(aimd_summaries: list, metrics: list) -> list:
    """Seconds per MD step of CP2K and of each model's ML-MD, and their ratio."""
    cp2k = [s["seconds_per_step_median"] for s in aimd_summaries if s.get("seconds_per_step_median")]
    rows = [["CP2K (AIMD)", f"{sum(cp2k) / len(cp2k):.3g}" if cp2k else "–", "1×"]]
    for m in metrics:
        if m.get("mlmd_seconds_per_step"):
            rows.append([m["backend"], f"{m['mlmd_seconds_per_step']:.3g}", _fmt("", "{:.0f}×", m.get("speedup_vs_cp2k"))])
    return rows


def render_index(results_dir, out_path) -> None:
    """``results/index.html``: one line per system that has a report."""
    results_dir = Path(results_dir)
    systems = []
    for rep in sorted(results_dir.glob("*/report.html")):
        name = rep.parent.name
        summary = rep.parent / "evaluation" / "metrics.json"
        best = None
        if summary.is_file():
            ms = read_json(summary)
            if ms:
                best = min(ms, key=lambda m: m["force_rmse_meV_per_A"])
        systems.append({"name": name, "href": f"{html.escape(name)}/report.html", "best": best})
    text = _env().get_template("index.html.j2").render(systems=systems, version=__version__)
    with atomic_open(out_path) as fh:
        fh.write(text)
