"""Calibration of the committee's force deviation against the true force errors of member 0.

A committee's spread is a ranking, not an error: members that share data and architecture
agree where they are all wrong, and the ratio of error to deviation differs from committee
to committee. Every frame CP2K labels has a true error, so the loop calibrates each committee
on labelled frames it never trained on (its calibration set: the split's validation frames
and the labels held back from training, ``active_learning.holdout_fraction``) and states its
thresholds and its predicted error in calibrated eV/A:

- the maximum atomic force error of a frame is at most ``scale x max_devi_f`` with probability
  ``level``: split-conformal on the ratio error/deviation (Angelopoulos & Bates 2021, sec. 2;
  distribution-free for frames exchangeable with the calibration set), checked on the half of
  the calibration set it was not fitted on, and afterwards on the labels the iteration buys;
- a frame's force RMSE is ``rms_scale x rms_devi_f`` on average (a least-squares ratio), which
  makes the predicted force RMSE of the explored frames that the stop rule holds against its
  target.
"""

from __future__ import annotations

import math

import numpy as np


def max_atomic_error(pred_forces, ref_forces) -> np.ndarray:
    """Per frame: the largest atomic force error |F_pred - F_ref| (eV/A)."""
    d = np.asarray(pred_forces, dtype=np.float64) - np.asarray(ref_forces, dtype=np.float64)
    return np.linalg.norm(d, axis=-1).max(axis=-1)


def frame_rmse(pred_forces, ref_forces) -> np.ndarray:
    """Per frame: the force RMSE over atoms and Cartesian components (eV/A), as the held-out
    force RMSE is computed."""
    d = np.asarray(pred_forces, dtype=np.float64) - np.asarray(ref_forces, dtype=np.float64)
    return np.sqrt(np.mean(d.reshape(d.shape[0], -1) ** 2, axis=1))


def conformal_scale(deviation, error, level: float) -> float:
    """The smallest s with error <= s x deviation for the ceil((n+1) level)-th of n frames: the
    split-conformal quantile of the ratios. inf when n is too small for the level."""
    dev = np.asarray(deviation, dtype=np.float64)
    err = np.asarray(error, dtype=np.float64)
    ratios = np.sort(err / np.maximum(dev, 1e-12))
    n = len(ratios)
    k = math.ceil((n + 1) * level)
    return float(ratios[k - 1]) if 0 < k <= n else float("inf")


def coverage(scale: float, deviation, error) -> float:
    """Fraction of frames whose error is within ``scale x deviation``."""
    dev, err = np.asarray(deviation, dtype=np.float64), np.asarray(error, dtype=np.float64)
    return float(np.mean(err <= scale * dev)) if len(dev) else float("nan")


def rms_scale(rms_deviation, rmse) -> float:
    """Least-squares s of rmse = s x rms_deviation over frames (through the origin)."""
    dev = np.asarray(rms_deviation, dtype=np.float64)
    err = np.asarray(rmse, dtype=np.float64)
    den = float(np.sum(dev**2))
    return float(np.sqrt(np.sum(err**2) / den)) if den > 0 else float("inf")


def fit(max_devi, max_error, rms_devi, rmse, level: float) -> dict:
    """Both calibrations on one calibration set, with the conformal scale's coverage on the
    half it was not fitted on (fitted on even frames, checked on odd ones) and the Spearman
    correlation of deviation and error (does the committee rank frames at all?)."""
    from scipy.stats import spearmanr

    max_devi, max_error = np.asarray(max_devi, float), np.asarray(max_error, float)
    n = len(max_devi)
    half = conformal_scale(max_devi[0::2], max_error[0::2], level)
    rho = float(spearmanr(max_devi, max_error).statistic) if n > 2 else float("nan")
    return {
        "frames": n,
        "level": level,
        "scale": conformal_scale(max_devi, max_error, level),
        "coverage_holdout": coverage(half, max_devi[1::2], max_error[1::2]),
        "holdout_frames": len(max_devi[1::2]),
        "rms_scale": rms_scale(rms_devi, rmse),
        "spearman": rho,
    }


def predicted_rmse(rms_scale_: float, rms_devi) -> float:
    """The calibrated force RMSE (eV/A) over frames with per-frame RMS deviations ``rms_devi``."""
    d = np.asarray(rms_devi, dtype=np.float64)
    return float(rms_scale_ * np.sqrt(np.mean(d**2))) if len(d) else float("nan")
