"""Energy and force errors of a model (an ASE calculator) on labelled frames.

The numbers the usefulness check of every training (:func:`qdff.training.backends.common.check_useful`),
the zero-shot baselines and the validation stage (:mod:`qdff.validation.evaluate`) all report.
"""

from __future__ import annotations

import time

import numpy as np


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
        # near the RMSE: the energy error is mostly one constant offset (the report says so)
        "energy_mean_signed_error_meV_per_atom": 1e3 * float(np.mean(de)),
        "force_mae_meV_per_A": 1e3 * float(np.mean(np.abs(df))),
        "force_rmse_meV_per_A": 1e3 * float(np.sqrt(np.mean(df**2))),
        "force_max_error_meV_per_A": 1e3 * float(np.max(np.abs(df))),
        "baseline_zero_force_rmse_meV_per_A": 1e3 * float(np.sqrt(np.mean(f_ref.ravel() ** 2))),
        "baseline_mean_energy_rmse_meV_per_atom": 1e3 * float(np.sqrt(np.mean(base_de**2))),
    }
    symbols = np.concatenate([a.get_chemical_symbols() for a in frames])
    for el in sorted(set(symbols)):
        m = symbols == el
        out[f"force_rmse_meV_per_A_{el}"] = rmse_meV((f_hat[m] - f_ref[m]).ravel())
        out[f"baseline_zero_force_rmse_meV_per_A_{el}"] = rmse_meV(f_ref[m].ravel())
    return out


def rmse_meV(d) -> float:
    """RMSE of ``d`` (eV or eV/A) in meV or meV/A; nan when ``d`` is empty."""
    return 1e3 * float(np.sqrt(np.mean(np.asarray(d) ** 2))) if len(d) else float("nan")
