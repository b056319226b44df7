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

from .. import __version__  # noqa: E402
from ..cp2k.input import LEVEL_OF_THEORY  # noqa: E402
from ..cp2k.output import read_ener  # noqa: E402
from ..fileio import atomic_open, atomic_path, read_json  # noqa: E402
from ..validation.metrics import REFERENCE as REFERENCE_BACKEND  # noqa: E402
from ..validation.metrics import seed_mean  # noqa: E402
from ..validation.recommend import recommend  # noqa: E402

METRIC_COLUMNS = [
    ("backend", "backend", "{}"),
    ("model_kind", "model", "{}"),
    ("n_frames", "test frames", "{}"),
    ("energy_mae_meV_per_atom", "E MAE [meV/atom]", "{:.2f}"),
    ("energy_rmse_meV_per_atom", "E RMSE, mean offset included [meV/atom]", "{:.2f}"),
    ("energy_mean_signed_error_meV_per_atom", "E mean offset (mean signed error) [meV/atom]", "{:+.2f}"),
    ("energy_error_std_meV_per_atom", "E error std, mean offset removed [meV/atom]", "{:.2f}"),
    (
        "baseline_mean_energy_rmse_meV_per_atom",
        "mean-energy baseline, one mean over all temperatures [meV/atom]",
        "{:.2f}",
    ),
    ("energy_verdict", "energies useful per T (error std < that T's mean-energy baseline)", "{}"),
    ("force_mae_meV_per_A", "F MAE [meV/Å]", "{:.1f}"),
    ("force_rmse_meV_per_A", "F RMSE [meV/Å]", "{:.1f}"),
    ("force_max_error_meV_per_A", "F max error [meV/Å]", "{:.0f}"),
    ("baseline_zero_force_rmse_meV_per_A", "zero-force baseline F RMSE [meV/Å]", "{:.1f}"),
    ("force_rmse_meV_per_A_site_core", "F RMSE core [meV/Å]", "{:.1f}"),
    ("force_rmse_meV_per_A_site_surface", "F RMSE surface [meV/Å]", "{:.1f}"),
    ("mlmd_verdicts", "ML-MD stability", "{}"),
    ("mlmd_nve_drift_meV_per_atom_per_ps", "NVE drift, worst T [meV/atom/ps]", "{:.3f}"),
    ("cp2k_conserved_drift_meV_per_atom_per_ps", "CP2K conserved-quantity drift, worst T [meV/atom/ps]", "{:.3f}"),
    ("pair_distance_overlap_min", "pair-distance overlap, worst pair (mean over seeds)", "{:.2f}"),
    ("pair_distance_overlap_worst", "worst pair", "{}"),
    ("pair_distance_overlap_seeds_at_worst", "overlap, range over seeds", "{}"),
    ("pair_distance_aimd_overlap_at_worst", "AIMD self-agreement, same pair and block length", "{:.2f}"),
    ("pair_distance_aimd_interval_at_worst", "AIMD block pairs: lower end-highest", "{}"),
    ("pair_distance_wasserstein_A_at_worst", "Wasserstein distance, worst pair [Å]", "{:.3f}"),
    ("pair_distance_aimd_wasserstein_A_at_worst", "AIMD block pairs' Wasserstein [Å]", "{}"),
    ("pair_distance_seeds_inside", "seeds inside the AIMD interval", "{}"),
    ("pair_distance_below_aimd_interval", "pairs with most seeds below the AIMD interval", "{}"),
    ("speedup_vs_cp2k", "MD speed-up vs CP2K (wall time per step)", "{:.0f}×"),
    ("speedup_per_core_vs_cp2k", "MD speed-up vs CP2K per core-second", "{:.0f}×"),
    ("training_wall_s", "training time [s]", "{:.0f}"),
    ("inference_s_per_atom_step", "inference [µs/atom/step]", "{}"),
    ("model_size_MB", "model size [MB]", "{:.2f}"),
]


def breakdown_table(metrics: list) -> tuple[list, list]:
    """Columns and rows of force RMSE by element, site class and temperature, with the
    zero-force baseline of each group (the first row)."""
    from ..validation.metrics import is_spread_key

    prefix = "force_rmse_meV_per_A_"
    keys = sorted(
        {k[len(prefix) :] for m in metrics for k in m if k.startswith(prefix) and not is_spread_key(k)},
        key=lambda k: (k.startswith("system_"), k.startswith("T_"), k.startswith("site_"), k),
    )

    def label(k):
        if k.startswith("system_"):
            return k[7:]
        return k[5:] if k.startswith("site_") else k[2:].replace("K", " K") if k.startswith("T_") else k

    base = (
        ["zero-force baseline"]
        + [_fmt("", "{:.1f}", metrics[0].get(f"baseline_zero_force_rmse_meV_per_A_{k}")) for k in keys]
        if metrics
        else []
    )
    rows = [base] + [
        [m["backend"] + (f" ({m['n_models']} models)" if _n_models(m) > 1 else "")]
        + [_spread_cell(m, prefix + k, "{:.1f}", with_n=False) for k in keys]
        for m in metrics
    ]
    return ["force RMSE [meV/Å]"] + [label(k) for k in keys], rows


def energy_table(metrics: list) -> tuple[list, list]:
    """Columns and rows of energy errors per temperature, one row per backend and temperature:
    the RMSE (mean offset included), the mean offset, the error std (offset removed), the
    mean-energy baseline of that temperature (the RMS of its per-atom energies about their own
    mean) and the verdict of :func:`qdff.training.errors.energy_useful`."""
    cols = [
        "backend",
        "T",
        "test frames",
        "E RMSE, mean offset included [meV/atom]",
        "E mean offset [meV/atom]",
        "E error std, mean offset removed [meV/atom]",
        "mean-energy baseline at T [meV/atom]",
        "energies useful at T (error std < baseline)",
    ]
    rows = []
    for m in metrics:
        for key in sorted((k for k in m if k.startswith("energy_useful_T_")), key=_t_order):
            t = key[len("energy_useful_T_") :]
            rows.append(
                [
                    m["backend"],
                    t.replace("K", " K"),
                    _fmt("", "{}", m.get(f"n_frames_T_{t}")),
                    _fmt("", "{:.2f}", m.get(f"energy_rmse_meV_per_atom_T_{t}")),
                    _fmt("", "{:+.2f}", m.get(f"energy_mean_signed_error_meV_per_atom_T_{t}")),
                    _fmt("", "{:.2f}", m.get(f"energy_error_std_meV_per_atom_T_{t}")),
                    _fmt("", "{:.2f}", m.get(f"baseline_mean_energy_rmse_meV_per_atom_T_{t}")),
                    _verdict(m[key]),
                ]
            )
    return cols, rows


def system_table(metrics: list) -> tuple[list, list]:
    """Columns and rows of held-out errors per system (composition), one row per backend and
    system, where the held-out frames hold several compositions
    (:func:`qdff.validation.evaluate.by_system`); no rows otherwise."""
    cols = [
        "backend",
        "system",
        "test frames",
        "F RMSE [meV/Å]",
        "zero-force baseline [meV/Å]",
        "E RMSE, mean offset included [meV/atom]",
        "E mean offset [meV/atom]",
        "E error std, mean offset removed [meV/atom]",
    ]
    rows = []
    for m in metrics:
        for key in sorted(k for k in m if k.startswith("n_frames_system_")):
            sys_ = key[len("n_frames_system_") :]
            rows.append(
                [
                    m["backend"],
                    sys_,
                    _fmt("", "{}", m[key]),
                    _fmt("", "{:.1f}", m.get(f"force_rmse_meV_per_A_system_{sys_}")),
                    _fmt("", "{:.1f}", m.get(f"baseline_zero_force_rmse_meV_per_A_system_{sys_}")),
                    _fmt("", "{:.2f}", m.get(f"energy_rmse_meV_per_atom_system_{sys_}")),
                    _fmt("", "{:+.2f}", m.get(f"energy_mean_signed_error_meV_per_atom_system_{sys_}")),
                    _fmt("", "{:.2f}", m.get(f"energy_error_std_meV_per_atom_system_{sys_}")),
                ]
            )
    return cols, rows


def _t_order(key: str) -> float:
    try:
        return float(key.rsplit("_", 1)[1].rstrip("K"))
    except ValueError:
        return float("inf")


def _verdict(useful) -> str:
    return {True: "useful", False: "NOT useful"}.get(useful, "too few frames")


def energy_verdict(m: dict) -> str | None:
    """The metrics table's one-line verdict on energies: per temperature, useful or not."""
    keys = sorted((k for k in m if k.startswith("energy_useful_T_")), key=_t_order)
    if not keys:
        return None
    return "; ".join(f"{k[len('energy_useful_T_') :].replace('K', ' K')}: {_verdict(m[k])}" for k in keys)


def _n_models(m: dict) -> int:
    """How many models of training.seeds a metrics row summarises (1: model 0 alone)."""
    return int(m.get("n_models") or 1)


def _spread_cell(m: dict, key: str, fmt: str, with_n: bool = True) -> str:
    """A held-out error of a metrics row: with several models of training.seeds, their
    "mean ± std (N models)" (:func:`qdff.validation.metrics.seed_spread`); else model 0's value."""
    if _n_models(m) > 1 and f"{key}_mean" in m:
        text = f"{_fmt(key, fmt, m[f'{key}_mean'])} ± {_fmt(key, fmt, m.get(f'{key}_std'))}"
        return text + (f" ({m.get(f'{key}_n', m['n_models'])} models)" if with_n else "")
    return _fmt(key, fmt, m.get(key))


def _env():
    return Environment(loader=PackageLoader("qdff.report", "templates"), autoescape=select_autoescape(["html", "j2"]))


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
    if fmt == "{:.0f}×" and abs(value) < 10:
        return f"{value:.2g}×"  # a ratio below 10 keeps two digits: 0.68x must not print as 1x
    if key == "inference_s_per_atom_step":
        return f"{value * 1e6:.1f}"
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def render_report(
    cfg: dict,
    *,
    aimd_plot,
    aimd_summaries: list,
    selection: dict,
    metrics: list,
    parity_plots: dict,
    models: dict,
    out_path,
    error_plots: dict | None = None,
    rdf_plots: dict | None = None,
    selection_context: dict | None = None,
    structure: dict | None = None,
    active_learning: dict | None = None,
    vibrations: dict | None = None,
    interactive: dict | None = None,
) -> None:
    """``active_learning``: {"summary": al/summary.json's content, "plot": png, "calibration": [png]};
    ``vibrations``: the keyword arguments of :func:`vibrations_context`."""
    rows = []
    for m in metrics:
        meta = models.get(m["backend"], {})
        prov = meta.get("provenance", {})
        m = {
            **m,
            "training_wall_s": prov.get("training_wall_s"),
            "model_kind": m.get("model_kind") or model_kind(meta),
            "energy_verdict": energy_verdict(m),
        }
        rows.append([_spread_cell(m, k, f) for k, _, f in METRIC_COLUMNS])
    # one column per backend, one row per metric: four backends stay readable
    table = [[label] + [r[i] for r in rows] for i, (_, label, _) in enumerate(METRIC_COLUMNS) if i > 0]
    preset = cfg["cp2k"]["preset"]
    # imported data (config data): their declared level of theory labels every number, not a preset's
    data = cfg.get("data") or {"source": "aimd"}
    imported = data.get("source", "aimd") != "aimd"
    baselines = [meta for meta in models.values() if meta.get("kind") == "zero-shot"]
    ctx = {
        "baselines": baselines,
        "metric_notes": metric_notes(metrics),
        "cfg": cfg,
        "name": cfg["name"],
        "description": cfg.get("description", ""),
        "level_of_theory": data["level_of_theory"] if imported else LEVEL_OF_THEORY[preset],
        "imported": data if imported else None,
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
        "speed_note": speed_note(metrics),
        "method_label": method_label(preset),
        "mlmd_rows": mlmd_rows(metrics),
        "peak_rows": peak_rows(metrics),
        **(selection_context or {}),
        "structure": structure,
        "structure_sites": structure_site_rows(structure, metrics),
        "models": models,
        "al": (active_learning or {}).get("summary"),
        "al_plot": png_data_uri(active_learning["plot"]) if active_learning else None,
        "al_calibration": [png_data_uri(p) for p in (active_learning or {}).get("calibration", [])],
        "vib": vibrations_context(**vibrations) if vibrations else None,
        # Plotly specifications ({"aimd": fig, "parity": {backend: fig}, "rdf": {backend: {T: fig}}})
        "figs": interactive or {},
        "plotly_js": _plotly_js() if interactive else None,
        "generated": datetime.datetime.now().isoformat(timespec="seconds"),
        "version": __version__,
    }
    ctx["recommendation"] = recommend(
        metrics, zero_shot={b for b, meta in models.items() if meta.get("kind") == "zero-shot"}
    )
    ctx["summary_rows"] = summary_rows(metrics, ctx["recommendation"])
    ctx["breakdown_columns"], ctx["breakdown_rows"] = breakdown_table(metrics)
    ctx["energy_columns"], ctx["energy_rows"] = energy_table(metrics)
    ctx["system_columns"], ctx["system_rows"] = system_table(metrics)
    text = _env().get_template("report.html.j2").render(**ctx)
    with atomic_open(out_path) as fh:
        fh.write(text)


def _plotly_js() -> str:
    from .interactive import plotly_js

    return plotly_js()


def metric_notes(metrics: list) -> list[str]:
    """One line where a number of the metrics table could mislead: an energy error that is
    mostly a constant offset, held-out frames beyond the training range."""
    notes = []
    first = metrics[0] if metrics else {}
    frac = first.get("test_energy_outside_training_fraction")
    if frac:
        notes.append(
            f"{100 * frac:.0f}% of the held-out frames lie outside the energy range of the training frames (up to "
            f"{first.get('test_energy_above_training_meV_per_atom', 0):.1f} meV/atom above it and "
            f"{first.get('test_energy_below_training_meV_per_atom', 0):.1f} below): every model extrapolates there "
            "(the training range is shaded in the parity plots). The held-out frames are the last time block of each run: "
            "in a short AIMD that block can lie above or below the earlier ones while the cluster equilibrates."
        )
    ffrac = first.get("test_force_outside_training_fraction")
    if ffrac and ffrac >= 1e-3:
        notes.append(
            f"{100 * ffrac:.1f}% of the held-out force components lie beyond the training range of force components."
        )
    spread = [m for m in metrics if _n_models(m) > 1]
    if spread:
        notes.append(
            "Held-out errors of "
            + ", ".join(f"{m['backend']} ({m['n_models']} models)" for m in spread)
            + ": mean ± sample standard deviation over models trained on the same split, identical but for "
            "their seed (training.seeds; min, max and each of model 0's own errors in metrics.csv). ML-MD, "
            "speed, vibrations and the plots are of model 0 only."
        )
    for m in metrics:
        mse, rmse = m.get("energy_mean_signed_error_meV_per_atom"), m.get("energy_rmse_meV_per_atom")
        if mse is not None and rmse and abs(mse) > 0.8 * rmse:
            notes.append(
                f"{m['backend']}: the energy error is mostly one constant offset (mean signed error {mse:+.2f} meV/atom of an "
                f"RMSE of {rmse:.2f}; MAE {m.get('energy_mae_meV_per_atom', float('nan')):.2f}; error std with the offset "
                f"removed {m.get('energy_error_std_meV_per_atom', float('nan')):.2f}). A constant energy per atom "
                "does not change forces or MD; it comes from the reference energies or from held-out frames at other "
                "energies than the training frames. The energy verdict per temperature judges the error std."
            )
    return notes


def model_kind(meta: dict) -> str:
    """What a column of the metrics table is: a model trained on this data set (from scratch
    or fine-tuned from a foundation model, named), or a zero-shot universal potential with the
    level of theory it was trained on."""
    if meta.get("kind") == "zero-shot":
        return f"zero-shot: {meta.get('label', meta.get('backend'))}, trained on {meta.get('trained_on', '?')}; not trained here"
    prov = meta.get("provenance", {})
    foundation = prov.get("foundation") or prov.get("foundation_model")  # sevenn's name, mace's file
    if foundation:
        return f"fine-tuned on this data set from {Path(str(foundation)).name}"
    return "trained on this data set" if meta else "–"


def structure_site_rows(structure: dict | None, metrics: list) -> list:
    """The structure table's rows on surface atoms: the counts of the structure as built or
    imported, and the fractions of the held-out frames' atoms the metrics' site breakdown
    uses, both classified by :func:`qdff.structure.sites.classify`; they differ only where relaxation
    and MD changed a coordination."""
    rows = []
    if structure and structure.get("n_surface") is not None:
        n = structure["n_atoms"]
        rows.append(
            [
                "surface / core / ligand atoms (structure as built or imported)",
                f"{structure['n_surface']} / {structure.get('n_core', '–')} / {structure.get('n_ligand', '–')} "
                f"of {n} ({100 * structure['n_surface'] / n:.0f}% surface)",
            ]
        )
    first = metrics[0] if metrics else {}
    if any(f"atom_fraction_site_{c}" in first for c in ("surface", "core", "ligand")):
        rows.append(
            [
                "surface / core / ligand atoms (held-out frames, as in the metrics)",
                " / ".join(
                    f"{100 * first.get(f'atom_fraction_site_{c}', 0.0):.0f}%" for c in ("surface", "core", "ligand")
                ),
            ]
        )
    return rows


def method_label(preset: str) -> str:
    """CP2K and its method in a few words ("CP2K GFN1-xTB", "CP2K PBE-D3"): the first word
    of the level of theory, so that a semi-empirical reference is never called DFT."""
    return f"CP2K {LEVEL_OF_THEORY[preset].split()[0]}"


def speed_rows(aimd_summaries: list, metrics: list) -> list:
    """Per method: seconds per MD step, hardware (device, ranks x threads, host), cores, the
    wall-clock speed-up and the speed-up per core-second against CP2K."""
    from ..validation.metrics import cp2k_hardware

    cp2k = [s for s in aimd_summaries if s.get("seconds_per_step_median")]
    s_cp2k = sum(s["seconds_per_step_median"] for s in cp2k) / len(cp2k) if cp2k else None
    cores = cp2k[0].get("mpi_ranks", 0) * cp2k[0].get("threads_per_rank", 0) if cp2k else 0
    rows = [
        [
            "CP2K (AIMD)",
            _fmt("", "{:.3g}", s_cp2k),
            cp2k_hardware(cp2k[0]) if cp2k else "–",
            str(cores) if cores else "–",
            "1×",
            "1×",
        ]
    ]
    for m in metrics:
        if m.get("mlmd_seconds_per_step"):
            hw = m.get("mlmd_hardware", "not recorded")
            cores = str(m["mlmd_cores"]) if m.get("mlmd_cores") else "– (GPU)" if "cuda" in hw else "–"
            rows.append(
                [
                    "reference: CP2K MD under the ML-MD protocol" if m.get("reference") else f"{m['backend']} (ML-MD)",
                    f"{m['mlmd_seconds_per_step']:.3g}",
                    hw,
                    cores,
                    _fmt("", "{:.0f}×", m.get("speedup_vs_cp2k")),
                    _fmt("", "{:.0f}×", m.get("speedup_per_core_vs_cp2k")),
                ]
            )
    return rows


def summary_rows(metrics: list, rec: dict) -> list:
    """The report's first table (issue 33), one row per model and the reference: held-out force
    error with its spread over training.seeds and against the baselines, each check's verdict,
    cost per ML-MD step against CP2K, and whether the model passes (qdff.validation.recommend)."""
    by = {m["backend"]: m for m in metrics}
    zero = [by[m["backend"]] for m in rec["models"] if m["zero_shot"] and m["force_rmse"] is not None]
    best_zero = min(zero, key=lambda m: seed_mean(m, "force_rmse_meV_per_A")) if zero else None

    def mark(ok, text, check=None):
        word = {True: "pass", False: "FAIL", None: "not run"}[ok]
        if ok is False and check in rec["broken"]:
            word = "FAIL, held against no model (CP2K itself fails this check here)"
        return word + (f": {text}" if text else "")

    rows = []
    for m in rec["models"]:
        row = by[m["backend"]]
        f, zf = m["force_rmse"], row.get("baseline_zero_force_rmse_meV_per_A")
        rel = [f"{100 * f / zf:.0f}% of zero force" if f is not None and zf else None]
        if best_zero and not m["zero_shot"] and f is not None:
            zb = seed_mean(best_zero, "force_rmse_meV_per_A")
            rel.append(f"{f / zb:.2f}× {best_zero['backend']} zero-shot")
        c = m["checks"]
        rows.append(
            {
                "backend": m["backend"],
                "recommended": m["backend"] == rec["recommended"],
                "cells": [
                    m["backend"] + (" (zero-shot)" if m["zero_shot"] else ""),
                    _spread_cell(row, "force_rmse_meV_per_A", "{:.1f}") + _interval(row),
                    ", ".join(r for r in rel if r) or "–",
                    mark(c["energies"], ""),
                    mark(c["stability"], m["stability_text"] or "", "stability"),
                    mark(c["pair distances"], _pairs_outside(row), "pair distances"),
                    _cost(row),
                    ("PASSES every check" if not rec["broken"] else "PASSES every check CP2K itself passes")
                    if m["passes"]
                    else "fails: "
                    + (", ".join(k for k, v in c.items() if v is False and k not in rec["broken"]) or "not validated")
                    + (f" (not run: {', '.join(m['not_run'])})" if m["not_run"] else ""),
                ],
            }
        )
    ref = rec.get("reference")
    if ref is not None:
        row = by[REFERENCE_BACKEND]
        rows.append(
            {
                "backend": REFERENCE_BACKEND,
                "recommended": False,
                "cells": [
                    "reference (CP2K itself: the null test)",
                    "– (made the labels)",
                    "–",
                    "–",
                    mark(ref["checks"]["stability"], ref.get("stability_text") or ""),
                    mark(ref["checks"]["pair distances"], _pairs_outside(row)),
                    _cost(row),
                    "the null test passes" if not rec["broken"] else "broken check(s): " + ", ".join(rec["broken"]),
                ],
            }
        )
    return rows


def _pairs_outside(row: dict) -> str:
    """ "Cd-Se 300 K, Se-Se 500 K": the element pairs whose distances the pair-distance check
    holds outside the AIMD interval, from the metrics row's own list (the check's reason
    names the same, after its sentence); "" where none is or the check did not run."""
    return ", ".join(row.get("pair_distance_outside") or [])


def _interval(row: dict) -> str:
    """ " (95 % interval 50.1-61.2, 6 time blocks)": model 0's held-out force RMSE resampled by
    time blocks (qdff.training.errors.force_rmse_interval); "" where there is none."""
    iv = row.get("rmse_interval_force_meV_per_A")
    if not iv:
        return ""
    return f" (95 % interval {iv[0]:.1f}-{iv[1]:.1f}, {row.get('rmse_interval_blocks')} time blocks)"


def _cost(row: dict) -> str:
    s = row.get("mlmd_seconds_per_step")
    if not s:
        return "–"
    up = row.get("speedup_vs_cp2k")
    return f"{s:.3g} s/step" + (f" ({up:.0f}× CP2K)" if up and not row.get("reference") else "")


def speed_note(metrics: list) -> str:
    """Whether both sides of the speed comparison ran on the same hardware."""
    timed = [m for m in metrics if m.get("speedup_vs_cp2k") is not None]
    if not timed:
        return "No speed comparison: no CP2K and ML-MD runs at the same temperature."
    if all(m.get("same_hardware") for m in timed):
        return "CP2K and ML-MD ran on the same host and CPU; the per-core-second ratio also removes the difference in cores used."
    return (
        "CP2K and ML-MD ran on different hardware (see the hardware column): the wall-clock ratio compares "
        "machines as well as methods; the per-core-second ratio is given for CPU runs only."
    )


def mlmd_rows(metrics: list) -> list:
    """One row per backend and ML-MD temperature: verdict, bond changes against the AIMD's,
    coordination numbers, NVE statistics beside CP2K's conserved-quantity statistics."""

    def f(v, fmt="{:.2f}"):
        return _fmt("", fmt, v)

    rows = []
    for m in metrics:
        for t in m.get("mlmd_per_temperature", []):
            cn = t.get("coordination") or {}
            acn = t.get("aimd_coordination") or {}
            cn_text = (
                "; ".join(
                    f"{el} {f(v)} ({f(acn[el][0])} ± {f(acn[el][1])})" if el in acn else f"{el} {f(v)}"
                    for el, v in cn.items()
                )
                or "–"
            )
            bonds = (
                f"{t['bonds_broken_max']} / {t['bonds_formed_max']} ({t['aimd_bonds_broken_max']} / "
                f"{t['aimd_bonds_formed_max']})"
                if t.get("bonds_broken_max") is not None
                else "–"
            )
            rows.append(
                [
                    m["backend"],
                    f"{t['temperature']:g} K"
                    + (f" (stress; AIMD of {t['reference_temperature']:g} K)" if t.get("stress") else ""),
                    "stable" if t["stable"] else f"UNSTABLE: {t['reason']}",
                    seeds_text(t),
                    bonds,
                    cn_text,
                    fidelity_text(t),
                    f(t.get("nve_temperature_mean"), "{:.0f}"),
                    f(t.get("nve_drift_meV_per_atom_per_ps"), "{:.3f}"),
                    f(t.get("nve_energy_std_meV_per_atom"), "{:.3f}"),
                    "–" if t.get("stress") else f(t.get("cp2k_conserved_drift_meV_per_atom_per_ps"), "{:.3f}"),
                    "–" if t.get("stress") else f(t.get("cp2k_conserved_std_meV_per_atom"), "{:.3f}"),
                ]
            )
    return rows


def seeds_text(t: dict) -> str:
    """How many seeds ran, how many failed and the failure rate's exact 95 % interval: a verdict
    of a few seeds bounds the rate only loosely, and the reader should see how loosely."""
    from ..validation.stability import episode_rate_interval, failure_rate_interval

    n = len(t.get("seeds") or [1])
    k = int(t.get("unstable_seeds") or (0 if t["stable"] else n))
    lo, hi = failure_rate_interval(k, n)
    text = f"{n}: {k} unstable (failure rate {100 * lo:.0f}-{100 * hi:.0f} %, 95 % CI)"
    episodes, fs = t.get("below_floor_episodes"), t.get("below_floor_observed_fs")
    if episodes is not None and fs:
        # every episode below the coordination floor, however short: a rate over all the seeds' time
        lo, hi = episode_rate_interval(episodes, fs / 1000.0)
        text += f"; below the floor {episodes} times in {fs / 1000.0:.1f} ps ({lo:.2f}-{hi:.2f} per ps, 95 % CI)"
    return text


def fidelity_text(t: dict) -> str:
    """One ML-MD temperature's structural fidelity (qdff.validation.fidelity) in a table cell: the
    bond-change rates beside the AIMD's with its block-bootstrap interval, and every quantity
    outside that interval; graded, never a verdict."""
    fid = t.get("structural_fidelity") or {}
    q = fid.get("quantities") or {}
    parts = []
    for key, label in (("bond_changes_per_ps", "bond changes"), ("ligand_bond_changes_per_ps", "ligand hops")):
        e = q.get(key)
        if not e:
            continue
        text = f"{label} {e['mlmd_mean']:.1f}/ps"
        if e.get("aimd_interval"):
            lo, hi = e["aimd_interval"]
            text += f" (AIMD {e['aimd']:.1f}, {lo:.1f}-{hi:.1f}: {e.get('grade')})"
        parts.append(text)
    if fid.get("aimd_frames"):
        from ..validation.metrics import fidelity_outside

        parts.append("outside the AIMD interval: " + (fidelity_outside(fid) or "nothing"))
    elif q:
        parts.append("no AIMD at this temperature")
    return "; ".join(parts) or "–"


def peak_rows(metrics: list) -> list:
    """First peak of each pair-distance distribution: position and FWHM, AIMD against ML-MD."""

    def f(v):
        return _fmt("", "{:.2f}", v)

    return [
        [
            m["backend"],
            f"{p['temperature']:g} K",
            p["pair"],
            f(p["aimd_position_A"]),
            f(p["mlmd_position_A"]),
            f(p["aimd_fwhm_A"]),
            f(p["mlmd_fwhm_A"]),
        ]
        for m in metrics
        for p in m.get("pair_distance_first_peaks", [])
    ]


def index_row(system_dir: Path) -> dict:
    """One system of ``results/index.html``: composition, level of theory, the best trained
    backend per metric, the zero-shot baseline beside it, ML-MD verdicts, the report's size."""
    rep = system_dir / "report.html"
    row = {
        "name": system_dir.name,
        "href": f"{html.escape(system_dir.name)}/report.html",
        "report_MB": rep.stat().st_size / 1e6,
    }
    structure = system_dir / "structure.json"
    if structure.is_file():
        st = read_json(structure)
        row.update(formula=st.get("formula"), n_atoms=st.get("n_atoms"), material=st.get("material"))
    runs = sorted((system_dir / "aimd").glob("*/run.json"))
    if runs:
        r = read_json(runs[0])
        row.update(
            preset=r.get("preset"),
            level_of_theory=r.get("level_of_theory"),
            temperatures=", ".join(f"{read_json(f)['temperature']:g} K" for f in runs),
        )
    metrics_file = system_dir / "evaluation" / "metrics.json"
    ms = read_json(metrics_file) if metrics_file.is_file() else []
    models = {
        m["backend"]: read_json(system_dir / "models" / m["backend"] / "model.json")
        for m in ms
        if (system_dir / "models" / m["backend"] / "model.json").is_file()
    }
    trained = [m for m in ms if models.get(m["backend"], {}).get("kind") != "zero-shot"]
    zero = [m for m in ms if models.get(m["backend"], {}).get("kind") == "zero-shot"]
    best = {}
    for key, label in (
        ("force_rmse_meV_per_A", "F RMSE [meV/Å]"),
        ("energy_rmse_meV_per_atom", "E RMSE, mean offset included [meV/atom]"),
    ):
        have = [m for m in trained if m.get(key) is not None]
        if have:
            b = min(have, key=lambda m: seed_mean(m, key))
            best[label] = f"{b['backend']} {_spread_cell(b, key, '{:.1f}')}"
    row["best"] = best
    row["zero_shot"] = "; ".join(f"{m['backend']} F RMSE {m['force_rmse_meV_per_A']:.1f} meV/Å" for m in zero) or "–"
    row["baseline_zero_force"] = ms[0].get("baseline_zero_force_rmse_meV_per_A") if ms else None
    verdicts = []
    for m in ms:
        per_t = m.get("mlmd_per_temperature") or []
        if per_t:
            bad = [f"{t['temperature']:g} K" for t in per_t if not t["stable"]]
            verdicts.append(
                f"{m['backend']}: "
                + ("stable at all " + str(len(per_t)) + " temperatures" if not bad else "UNSTABLE at " + ", ".join(bad))
            )
    row["stability"] = verdicts
    rec = recommend(ms, zero_shot={m["backend"] for m in zero}) if ms else None
    row["recommended"] = (rec["recommended"] or "none passes every check") if rec else None
    return row


def render_index(results_dir, out_path) -> None:
    """``results/index.html``: every system that has a report, side by side."""
    results_dir = Path(results_dir)
    systems = [index_row(rep.parent) for rep in sorted(results_dir.glob("*/report.html"))]
    text = (
        _env()
        .get_template("index.html.j2")
        .render(systems=systems, version=__version__, generated=datetime.datetime.now().isoformat(timespec="seconds"))
    )
    with atomic_open(out_path) as fh:
        fh.write(text)


def vibrations_context(cp2k: dict, modes: dict, relax: dict, vdos: dict, spectra_png, vdos_plots: dict) -> dict:
    """The vibrations section (rules/vibrations.smk): ``cp2k`` CP2K's modes.json, ``modes``
    and ``relax`` per backend, ``vdos`` and ``vdos_plots`` per (backend, temperature label)."""

    def f(v, fmt="{:.1f}"):
        return _fmt("", fmt, v)

    freqs = cp2k.get("frequencies_cm1") or []
    ref = {
        "level_of_theory": cp2k.get("level_of_theory", "–"),
        "n_modes": len(freqs),
        "range": f"{f(freqs[0])} to {f(freqs[-1])}" if freqs else "–",
        "max_force": f(cp2k.get("max_force_Ha_per_bohr"), "{:.1e}"),
        "dx_bohr": f(cp2k.get("dx_bohr"), "{:g}"),
        "relax_converged": cp2k.get("relax_converged"),
        "seconds": " + ".join(
            f"{v:.0f} s ({k.removesuffix('_s').replace('_', ' ')})" for k, v in (cp2k.get("cp2k_seconds") or {}).items()
        )
        or "–",
        "n_imaginary": next((m["comparison"]["n_imaginary_reference"] for m in modes.values()), None),
        "imaginary_tol": next((m["comparison"]["imaginary_tol_cm1"] for m in modes.values()), None),
    }
    mode_rows = []
    for b, m in modes.items():
        c = m["comparison"]
        mode_rows.append(
            [
                b,
                str(c["n_modes"]),
                f(c["frequency_mae_cm1"]),
                f(c["frequency_max_error_cm1"]),
                f(c["frequency_mean_signed_error_cm1"]),
                f"{c['n_imaginary_model']} ({c['n_imaginary_reference']})",
                f"{f(c['highest_model_cm1'])} ({f(c['highest_reference_cm1'])})",
                f(1000 * m["max_force_at_cp2k_minimum_eV_per_A"], "{:.0f}"),
            ]
        )
    relax_rows = []
    for b, r in relax.items():
        worst = {}
        for run in r["runs"]:
            for pair, d in run.get("bonds", {}).items():
                worst[pair] = max(worst.get(pair, 0.0), d["mean_abs_change_A"])
        pair = max(worst, key=worst.get) if worst else None
        n_diff = sum(run["different_minimum"] for run in r["runs"])
        relax_rows.append(
            [
                b,
                f(r["rmsd_A"], "{:.3f}"),
                f(r["energy_difference_meV_per_atom"], "{:.2f}"),
                f(r["rmsd_max_A"], "{:.3f}"),
                f"{sum(run['converged'] for run in r['runs'])} / {len(r['runs'])}",
                f"{n_diff} of {len(r['runs'])}" + (" (DIFFERENT MINIMUM)" if n_diff else ""),
                f"{pair} {worst[pair]:.3f}" if pair else "–",
                f(1000 * r["reference_max_force_eV_per_A"], "{:.0f}"),
            ]
        )
    vdos_rows = []
    for (b, t), v in vdos.items():
        selfo = v.get("aimd_self_overlap") or {}
        keys = ["all"] + sorted(k for k in v["overlap"] if k != "all")
        vdos_rows.append(
            [b, t]
            + ["; ".join(f"{k} {v['overlap'][k]:.2f}" + (f" ({selfo[k]:.2f})" if k in selfo else "") for k in keys)]
            + [
                f(v["aimd_peak_cm1"], "{:.0f}"),
                f(v["model_peak_cm1"], "{:.0f}"),
                f(v["aimd"]["resolution_cm1"], "{:.0f}"),
                f(v["model"]["frames"] * v["model"]["timestep_fs"], "{:.0f}"),
                f(v.get("model_nve_temperature_K"), "{:.0f}"),
            ]
        )
    # a VDOS coarser than a fifth of the spectrum's extent cannot tell peaks apart: say so
    # rather than let an overlap near 1 pass for agreement
    top = freqs[-1] if freqs else None
    coarse = sorted(
        {v["aimd"]["resolution_cm1"] for v in vdos.values() if top and v["aimd"]["resolution_cm1"] > 0.2 * top}
    )
    return {
        "ref": ref,
        "mode_rows": mode_rows,
        "vdos_coarse": f"{coarse[-1]:.0f}" if coarse else None,
        "highest_mode": f(top, "{:.0f}"),
        "relax_rows": relax_rows,
        "vdos_rows": vdos_rows,
        "rmsd_tol": next((r["rmsd_tol_A"] for r in relax.values()), None),
        "spectra": png_data_uri(spectra_png) if spectra_png else None,
        "vdos_plots": [(b, t, png_data_uri(p)) for (b, t), p in vdos_plots.items()],
    }
