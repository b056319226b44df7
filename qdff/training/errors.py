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

    Energy per atom: the RMSE includes the mean offset of the predictions (reference energies
    included), which shifts every frame alike and changes neither forces nor MD; the mean
    signed error is that offset, and ``energy_error_std_meV_per_atom`` is the error with it
    removed (the standard deviation of the per-frame errors, ddof 0: RMSE² = offset² + std²).

    Baselines: forces of zero everywhere; and the energy per atom equal to the mean of these
    frames, ``baseline_mean_energy_rmse_meV_per_atom``: the RMS of the per-atom energies about
    ONE mean pooled over all frames, which with several temperatures is mostly the offset
    between them. The per-temperature figures (:func:`energy_by_temperature`) hold the
    baseline of each temperature about its own mean, and its error std beside it.
    """
    n = np.array([len(a) for a in frames], dtype=np.float64)
    e_ref = np.array([a.get_potential_energy() for a in frames], dtype=np.float64)
    f_ref = np.concatenate([a.get_forces() for a in frames])
    f_hat = np.concatenate(f_pred)
    de = (np.asarray(e_pred) - e_ref) / n
    # energy offset common to all frames is part of the RMSE (reference energies included)
    df = (f_hat - f_ref).ravel()
    base_de = e_ref / n - np.mean(e_ref / n)
    out = {
        "n_frames": len(frames),
        "energy_mae_meV_per_atom": 1e3 * float(np.mean(np.abs(de))),
        "energy_rmse_meV_per_atom": 1e3 * float(np.sqrt(np.mean(de**2))),
        # near the RMSE: the energy error is mostly one constant offset (the report says so)
        "energy_mean_signed_error_meV_per_atom": 1e3 * float(np.mean(de)),
        "energy_error_std_meV_per_atom": 1e3 * float(np.std(de)),
        "force_mae_meV_per_A": 1e3 * float(np.mean(np.abs(df))),
        "force_rmse_meV_per_A": 1e3 * float(np.sqrt(np.mean(df**2))),
        "force_max_error_meV_per_A": 1e3 * float(np.max(np.abs(df))),
        "baseline_zero_force_rmse_meV_per_A": 1e3 * float(np.sqrt(np.mean(f_ref.ravel() ** 2))),
        # about one mean over all frames (all temperatures pooled): kept under its old name
        "baseline_mean_energy_rmse_meV_per_atom": 1e3 * float(np.sqrt(np.mean(base_de**2))),
        **energy_by_temperature(frames, e_pred),
        **force_rmse_interval(frames, f_pred),
    }
    symbols = np.concatenate([a.get_chemical_symbols() for a in frames])
    for el in sorted(set(symbols)):
        m = symbols == el
        out[f"force_rmse_meV_per_A_{el}"] = rmse_meV((f_hat[m] - f_ref[m]).ravel())
        out[f"baseline_zero_force_rmse_meV_per_A_{el}"] = rmse_meV(f_ref[m].ravel())
    return out


#: length of the contiguous time blocks of the held-out force RMSE's bootstrap interval (fs):
#: longer than the force autocorrelation's first zero crossing, 52-54 fs in the demo's
#: Cd16Se13Cl6 AIMD at 300 and 500 K (frames 2 fs apart), so that blocks are roughly independent
FORCE_RMSE_BLOCK_FS = 60.0


def force_rmse_interval(
    frames, f_pred, block_fs: float = FORCE_RMSE_BLOCK_FS, resamples: int = 1000, seed: int = 0
) -> dict:
    """A 95 % interval of the force RMSE over the frames' time blocks: each run's frames
    (``info["run"]``, in time ``info["time"]``) cut into contiguous blocks of ``block_fs``;
    blocks resampled with replacement within each run (the mix of runs, i.e. of temperatures,
    stays fixed), ``resamples`` times with ``seed``; the 2.5 and 97.5 percentiles of the RMSE.
    Neighbouring frames share their errors, so frames one by one would give an interval far
    too narrow. Empty where the frames carry no time or there are fewer than 4 blocks."""
    blocks: dict[tuple, list[float]] = {}
    starts: dict = {}
    for a, f in zip(frames, f_pred):
        run, t = a.info.get("run", ""), a.info.get("time")
        if t is None:
            return {}
        t0 = starts.setdefault(run, float(t))
        sq = np.asarray(f, dtype=np.float64) - a.get_forces()
        acc = blocks.setdefault((run, int((float(t) - t0) // block_fs)), [0.0, 0.0])
        acc[0] += float(np.sum(sq**2))
        acc[1] += sq.size
    if len(blocks) < 4:
        return {}
    by_run: dict = {}
    for (run, _), acc in blocks.items():
        by_run.setdefault(run, []).append(acc)
    rng = np.random.default_rng(seed)
    rmse = np.empty(resamples)
    for k in range(resamples):
        tot = np.zeros(2)
        for accs in by_run.values():
            pick = rng.integers(0, len(accs), size=len(accs))
            tot += np.asarray(accs)[pick].sum(axis=0)
        rmse[k] = 1e3 * np.sqrt(tot[0] / tot[1])
    lo, hi = np.percentile(rmse, [2.5, 97.5])
    return {
        "rmse_interval_force_meV_per_A": [float(lo), float(hi)],
        "rmse_interval_blocks": len(blocks),
        "rmse_interval_block_fs": block_fs,
    }


def temperature_label(t: float) -> str:
    """The suffix of per-temperature keys: ``300K``."""
    return f"{t:g}K"


def energy_by_temperature(frames, e_pred) -> dict:
    """Per AIMD temperature (``info['temperature']``; frames without one are left out), in
    meV/atom: the energy RMSE (``energy_rmse_meV_per_atom_T_<T>K``), the error's standard
    deviation with that temperature's mean offset removed (``energy_error_std_meV_per_atom_T_<T>K``),
    the mean-energy baseline of that temperature (``baseline_mean_energy_rmse_meV_per_atom_T_<T>K``:
    the RMS of the reference per-atom energies of its frames about their own mean, i.e. the error
    of predicting that mean; not inflated by the offsets between temperatures), and
    ``energy_useful_T_<T>K``: :func:`energy_useful` (None with fewer than 2 frames)."""
    n = np.array([len(a) for a in frames], dtype=np.float64)
    e_ref = np.array([a.get_potential_energy() for a in frames], dtype=np.float64) / n
    de = np.asarray(e_pred, dtype=np.float64) / n - e_ref
    temps = np.array([float(a.info.get("temperature", np.nan)) for a in frames])
    out = {}
    for t in sorted(set(temps[np.isfinite(temps)])):
        m = temps == t
        label = temperature_label(t)
        std, base = 1e3 * float(np.std(de[m])), 1e3 * float(np.std(e_ref[m]))
        out[f"n_frames_T_{label}"] = int(m.sum())
        out[f"energy_rmse_meV_per_atom_T_{label}"] = rmse_meV(de[m])
        out[f"energy_mean_signed_error_meV_per_atom_T_{label}"] = 1e3 * float(np.mean(de[m]))
        out[f"energy_error_std_meV_per_atom_T_{label}"] = std
        out[f"baseline_mean_energy_rmse_meV_per_atom_T_{label}"] = base
        out[f"energy_useful_T_{label}"] = energy_useful(std, base) if m.sum() >= 2 else None
    return out


def energy_useful(error_std: float, baseline: float) -> bool:
    """The verdict on a model's energies at one temperature: useful when the standard deviation
    of its per-atom energy error at that temperature, mean offset removed, is below the
    mean-energy baseline of that temperature (the RMS of the reference per-atom energies about
    their own mean). Below it, the model tells the frames' energies apart better than a
    constant does; a constant offset does not count (it changes neither forces nor MD)."""
    return bool(error_std < baseline)


def rmse_meV(d) -> float:
    """RMSE of ``d`` (eV or eV/A) in meV or meV/A; nan when ``d`` is empty."""
    return 1e3 * float(np.sqrt(np.mean(np.asarray(d) ** 2))) if len(d) else float("nan")
