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
    ("mlmd_verdicts", "ML-MD stability", "{}"),
    ("training_wall_s", "training time [s]", "{:.0f}"),
    ("inference_s_per_atom_step", "inference [µs/atom/step]", "{}"),
]


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
    if value is None:
        return "–"
    if key == "inference_s_per_atom_step":
        return f"{value * 1e6:.1f}"
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def render_report(cfg: dict, *, aimd_plot, aimd_summaries: list, selection: dict, metrics: list,
                  parity_plots: dict, models: dict, out_path) -> None:
    rows = []
    for m in metrics:
        prov = models.get(m["backend"], {}).get("provenance", {})
        m = {**m, "training_wall_s": prov.get("training_wall_s")}
        rows.append([_fmt(k, f, m.get(k)) for k, _, f in METRIC_COLUMNS])
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
        "columns": [c[1] for c in METRIC_COLUMNS],
        "rows": rows,
        "parity": {k: png_data_uri(v) for k, v in parity_plots.items()},
        "models": models,
        "generated": datetime.datetime.now().isoformat(timespec="seconds"),
        "version": __version__,
    }
    text = _env().get_template("report.html.j2").render(**ctx)
    with atomic_open(out_path) as fh:
        fh.write(text)


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
