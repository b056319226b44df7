"""Trust levels on the committee's deviation, the minimum-distance filter, and the stop rule.

Fixed levels (DP-GEN's trust_lo / trust_hi) fail when the lower one lies inside the committee's
own deviation floor: on frames next to its training data it already deviates by about as much,
so no amount of labelling makes the explored frames "accurate". The adaptive lower level is
that floor, measured on each committee: a quantile of its deviation on its calibration frames
(labelled frames it never trained on, as well known as data can be), smoothed over iterations
like aims-PAX's moving average of the uncertainty. Above the upper level a frame is no longer
thrown away for its deviation alone: only the minimum-distance filter (DP-GEN's physical
check) calls it unphysical, so the repulsive wall an exploration falls into gets labelled.
"""

from __future__ import annotations

import itertools

import numpy as np

ENDINGS = {
    "converged": "the calibrated predicted force error of the explored frames reached the target "
    "and every exploration temperature was explored and stable",
    "budget": "the CP2K budget (active_learning.max_cp2k_evaluations) was spent",
    "iterations": "the last iteration (active_learning.max_iterations) was reached",
}


def adaptive_lower(calibration_devi, quantile: float, previous: float | None, smoothing: float) -> float:
    """The lower trust level of this committee: the ``quantile`` of its deviation on its
    calibration frames, averaged with the previous iteration's level (weight ``smoothing``)."""
    level = float(np.quantile(np.asarray(calibration_devi, dtype=np.float64), quantile))
    if previous is None:
        return level
    return float(smoothing * previous + (1 - smoothing) * level)


def pair_key(a: str, b: str) -> str:
    return "-".join(sorted((a, b)))


def shortest_distances(frames) -> dict[str, float]:
    """The shortest distance (A) of every element pair over ``frames``."""
    out: dict[str, float] = {}
    for atoms in frames:
        for key, d in _frame_shortest(atoms).items():
            out[key] = min(out.get(key, np.inf), d)
    return out


def _frame_shortest(atoms) -> dict[str, float]:
    d = atoms.get_all_distances()
    sym = np.array(atoms.get_chemical_symbols())
    out: dict[str, float] = {}
    for a, b in itertools.combinations_with_replacement(sorted(set(sym)), 2):
        block = d[np.ix_(sym == a, sym == b)]
        if a == b:
            block = block[~np.eye(len(block), dtype=bool)] if len(block) > 1 else np.array([])
        if block.size:
            out[pair_key(a, b)] = float(block.min())
    return out


def physical(atoms, floors: dict[str, float], factor: float) -> bool:
    """The minimum-distance filter: no element pair closer than ``factor`` x its shortest
    distance in the AIMD data (``floors``); a pair the data never had is judged by the
    shortest floor of any pair of the same two elements' partners, i.e. not at all."""
    for key, d in _frame_shortest(atoms).items():
        if key in floors and d < factor * floors[key]:
            return False
    return True


def classify(devi, lo: float, hi: float, is_physical) -> np.ndarray:
    """'accurate' below ``lo``; 'candidate' at or above it when physical (above ``hi`` too:
    'beyond', labelled only after the candidates below ``hi``); 'failed' when unphysical."""
    d = np.asarray(devi, dtype=np.float64)
    ok = np.asarray(is_physical, dtype=bool)
    out = np.where(d < lo, "accurate", np.where(d < hi, "candidate", "beyond"))
    return np.where((out != "accurate") & ~ok, "failed", out)


def stop_reason(
    *,
    predicted_rmse: float,
    target: float,
    all_stable: bool,
    all_temperatures: bool,
    evaluations: int,
    budget: int | None,
    iteration: int,
    max_iterations: int,
) -> str | None:
    """Why the loop ends at this iteration (a key of ENDINGS), or None to go on. Converged
    needs a predicted error at the target and stability at every exploration temperature;
    otherwise the CP2K budget or the iteration cap ends it."""
    if all_stable and all_temperatures and np.isfinite(predicted_rmse) and predicted_rmse <= target:
        return "converged"
    if budget is not None and evaluations >= budget:
        return "budget"
    if iteration >= max_iterations:
        return "iterations"
    return None
