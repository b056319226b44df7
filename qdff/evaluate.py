"""Energy and force errors of a model on held-out frames, with parity plots."""
from __future__ import annotations

import logging
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .fileio import atomic_path  # noqa: E402

log = logging.getLogger(__name__)


def evenly(frames, max_frames: int):
    if len(frames) <= max_frames:
        return list(frames)
    idx = np.linspace(0, len(frames) - 1, max_frames).round().astype(int)
    return [frames[i] for i in idx]


def predict(calc, frames):
    """Predicted energies (eV) and forces (eV/A) for ``frames``, and seconds per atom-step."""
    e_pred, f_pred = [], []
    t0 = time.perf_counter()
    for a in frames:
        b = a.copy()
        b.calc = calc
        e_pred.append(b.get_potential_energy())
        f_pred.append(b.get_forces())
    dt = time.perf_counter() - t0
    n_atoms = sum(len(a) for a in frames)
    return np.array(e_pred), f_pred, dt / max(n_atoms, 1)


def error_metrics(frames, e_pred, f_pred) -> dict:
    """MAE/RMSE of energy per atom (meV/atom) and force components (meV/A), plus baselines.

    Baselines: forces of zero everywhere, and energy equal to the mean held-out energy
    per atom; a useful model beats both clearly.
    """
    n = np.array([len(a) for a in frames], dtype=np.float64)
    e_ref = np.array([a.get_potential_energy() for a in frames], dtype=np.float64)
    f_ref = np.concatenate([a.get_forces() for a in frames])
    f_hat = np.concatenate(f_pred)
    de = (np.asarray(e_pred) - e_ref) / n
    # energy offset common to all frames is part of the error (reference energies included)
    df = (f_hat - f_ref).ravel()
    base_de = e_ref / n - np.mean(e_ref / n)
    out = {
        "n_frames": len(frames),
        "energy_mae_meV_per_atom": 1e3 * float(np.mean(np.abs(de))),
        "energy_rmse_meV_per_atom": 1e3 * float(np.sqrt(np.mean(de**2))),
        "force_mae_meV_per_A": 1e3 * float(np.mean(np.abs(df))),
        "force_rmse_meV_per_A": 1e3 * float(np.sqrt(np.mean(df**2))),
        "force_max_error_meV_per_A": 1e3 * float(np.max(np.abs(df))),
        "baseline_zero_force_rmse_meV_per_A": 1e3 * float(np.sqrt(np.mean(f_ref.ravel() ** 2))),
        "baseline_mean_energy_rmse_meV_per_atom": 1e3 * float(np.sqrt(np.mean(base_de**2))),
    }
    symbols = np.concatenate([a.get_chemical_symbols() for a in frames])
    for el in sorted(set(symbols)):
        m = symbols == el
        d = (f_hat[m] - f_ref[m]).ravel()
        out[f"force_rmse_meV_per_A_{el}"] = 1e3 * float(np.sqrt(np.mean(d**2)))
    return out


def parity_plot(frames, e_pred, f_pred, title: str, path) -> None:
    n = np.array([len(a) for a in frames], dtype=np.float64)
    e_ref = np.array([a.get_potential_energy() for a in frames]) / n
    e_hat = np.asarray(e_pred) / n
    offset = float(np.mean(e_ref))
    f_ref = np.concatenate([a.get_forces() for a in frames]).ravel()
    f_hat = np.concatenate(f_pred).ravel()
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    ax = axes[0]
    ax.scatter(1e3 * (e_ref - offset), 1e3 * (e_hat - offset), s=8, alpha=0.7)
    lim = [1e3 * (min(e_ref.min(), e_hat.min()) - offset), 1e3 * (max(e_ref.max(), e_hat.max()) - offset)]
    ax.plot(lim, lim, "k--", lw=0.8)
    ax.set_xlabel(f"reference E/atom - {offset:.3f} eV [meV]")
    ax.set_ylabel("predicted E/atom [meV]")
    ax.set_title("energy per atom")
    ax = axes[1]
    ax.scatter(f_ref, f_hat, s=3, alpha=0.4)
    lim = [min(f_ref.min(), f_hat.min()), max(f_ref.max(), f_hat.max())]
    ax.plot(lim, lim, "k--", lw=0.8)
    ax.set_xlabel("reference force component [eV/A]")
    ax.set_ylabel("predicted [eV/A]")
    ax.set_title("forces")
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def evaluate(calc, frames, *, backend: str, max_frames: int, parity_path) -> dict:
    frames = evenly(frames, max_frames)
    e_pred, f_pred, s_per_atom = predict(calc, frames)
    if not (np.all(np.isfinite(e_pred)) and all(np.all(np.isfinite(f)) for f in f_pred)):
        raise ValueError(f"{backend}: model predicted non-finite energies or forces on held-out frames")
    metrics = {"backend": backend, **error_metrics(frames, e_pred, f_pred), "inference_s_per_atom_step": s_per_atom}
    parity_plot(frames, e_pred, f_pred, f"{backend}: held-out frames (n={len(frames)})", parity_path)
    log.info(
        "%s: force RMSE %.1f meV/A (zero-force baseline %.1f), energy RMSE %.2f meV/atom",
        backend, metrics["force_rmse_meV_per_A"], metrics["baseline_zero_force_rmse_meV_per_A"],
        metrics["energy_rmse_meV_per_atom"],
    )
    return metrics
