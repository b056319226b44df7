"""Learning-curve experiment: how many frames each selection method needs.

For every (method, N): select N training frames from the same pool, train the same small
DeePMD model, evaluate it on the same validation frames (time blocks of their own, gap_fs
away from the pool). The test frames play no part: choosing a selection method by its test
error would make the test set part of the model choice. The summary states how many frames
each method needs to reach the force error that random selection reaches at the largest N,
interpolated on the curve.
"""

from __future__ import annotations

import copy
import logging
import math

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ..fileio import atomic_path, read_json, write_json  # noqa: E402

log = logging.getLogger(__name__)

METRIC = "force_rmse_meV_per_A"  # the figure of merit of the summary
COLUMNS = [
    "method",
    "n_train",
    "force_rmse_meV_per_A",
    "energy_rmse_meV_per_atom",
    "force_max_error_meV_per_A",
    "force_mae_meV_per_A",
    "energy_mae_meV_per_atom",
    "n_valid_frames",
]


def point_config(cfg: dict, method: str, n: int) -> dict:
    """The config of one curve point: selection method and size replaced, the rest as is."""
    cfg = copy.deepcopy(cfg)
    cfg["selection"]["method"] = method
    cfg["selection"]["n_train"] = int(n)
    return cfg


def deepmd_params(cfg: dict) -> dict:
    """backends.deepmd with the experiment's step count (identical for every point)."""
    params = dict(cfg["backends"]["deepmd"])
    params["steps"] = cfg["selection"]["learning_curve"]["deepmd_steps"]
    return params


def heldout_errors(calc, frames) -> dict:
    """Force RMSE/MAE/max error (meV/A) and energy RMSE/MAE (meV/atom) on ``frames`` (the validation frames)."""
    from ..validation.evaluate import error_metrics, predict

    e_pred, f_pred, _ = predict(calc, frames)
    m = error_metrics(frames, e_pred, f_pred)
    return {k: m[k] for k in COLUMNS[2:-1]} | {"n_valid_frames": len(frames)}


def frames_needed(sizes, errors, target: float):
    """Smallest N at which the curve (sizes ascending) reaches ``target`` error.

    Linear interpolation in log N - log error between the bracketing points (learning
    curves are close to power laws); the first size when it is already there; None when
    the curve never gets down to ``target``.
    """
    pts = sorted(zip(sizes, errors))
    for k, (n, e) in enumerate(pts):
        if e <= target:
            if k == 0 or e == target:
                return float(n)
            (n0, e0) = pts[k - 1]
            if e == e0 or target <= 0:
                return float(n)
            t = (math.log(target) - math.log(e0)) / (math.log(e) - math.log(e0))
            return float(math.exp(math.log(n0) + t * (math.log(n) - math.log(n0))))
    return None


def summarize(rows: list[dict], baseline: str = "random") -> dict:
    """Per method: frames needed to reach the baseline's error at the baseline's largest N."""
    by = {}
    for r in rows:
        by.setdefault(r["method"], []).append((r["n_train"], r[METRIC]))
    out = {"metric": METRIC, "baseline": baseline, "methods": {}}
    if baseline not in by:
        out["note"] = f"no {baseline} curve: nothing to compare against"
        return out
    n_max, target = max(by[baseline])
    out["target_n"], out["target_error"] = n_max, target
    for method, pts in sorted(by.items()):
        sizes, errs = zip(*sorted(pts))
        need = frames_needed(sizes, errs, target)
        out["methods"][method] = {
            "sizes": list(sizes),
            "errors": list(errs),
            "frames_needed": need if need is not None else "not reached",
            "fraction_of_baseline": (need / n_max) if need is not None else None,
        }
    return out


def plot(rows: list[dict], path, summary: dict | None = None) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    for method in sorted({r["method"] for r in rows}):
        pts = sorted((r["n_train"], r[METRIC], r["energy_rmse_meV_per_atom"]) for r in rows if r["method"] == method)
        n, f, e = zip(*pts)
        axes[0].plot(n, f, "o-", label=method)
        axes[1].plot(n, e, "o-", label=method)
    if summary and "target_error" in summary:
        axes[0].axhline(summary["target_error"], color="grey", ls=":", lw=1, label=f"random at N={summary['target_n']}")
    sizes = sorted({r["n_train"] for r in rows})
    plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:.3g}")
    for ax, ylabel in zip(axes, ("force RMSE (meV/A)", "energy RMSE (meV/atom)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(sizes, [str(n) for n in sizes])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain)
        ax.set_xlabel("training frames")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.suptitle("learning curves on the validation frames (same model, same steps)")
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def collect(metric_files, out_csv, out_png, out_summary) -> dict:
    import pandas as pd

    rows = [read_json(f) for f in metric_files]
    rows.sort(key=lambda r: (r["method"], r["n_train"]))
    with atomic_path(out_csv, suffix=".csv") as tmp:
        pd.DataFrame(rows, columns=COLUMNS).to_csv(tmp, index=False)
    summary = summarize(rows)
    write_json(out_summary, summary)
    plot(rows, out_png, summary)
    for m, s in summary["methods"].items():
        log.info(
            "learning curve: %s needs %s frames for random's %.1f meV/A",
            m,
            s["frames_needed"],
            summary.get("target_error", float("nan")),
        )
    return summary
