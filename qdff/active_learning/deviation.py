"""Committee model deviation (DP-GEN's ``model_devi``), trust levels and candidate choice."""

from __future__ import annotations

import numpy as np


def committee_predictions(calcs, frames):
    """Energies (n_models, n_frames) and forces (n_models, n_frames, n_atoms, 3) of every
    committee member on every frame (all frames of one cluster: same atom count)."""
    energies = np.zeros((len(calcs), len(frames)))
    forces = np.zeros((len(calcs), len(frames), len(frames[0]), 3))
    for m, calc in enumerate(calcs):
        for i, a in enumerate(frames):
            b = a.copy()
            b.calc = calc
            energies[m, i] = b.get_potential_energy()
            forces[m, i] = b.get_forces()
    return energies, forces


def model_deviation(energies, forces, n_atoms: int) -> dict:
    """Per frame: the largest over atoms of the committee's force spread
    ``max_i sqrt(<|F_i - <F_i>|^2>)`` (eV/A; DP-GEN's max_devi_f), its mean over atoms, and
    the committee's standard deviation of the energy per atom (eV/atom)."""
    forces = np.asarray(forces, dtype=np.float64)
    spread = np.sqrt(np.mean(np.sum((forces - forces.mean(axis=0)) ** 2, axis=-1), axis=0))  # (frames, atoms)
    return {
        "max_devi_f": spread.max(axis=1),
        "avg_devi_f": spread.mean(axis=1),
        "devi_e": np.std(np.asarray(energies, dtype=np.float64), axis=0) / n_atoms,
    }


def classify(max_devi_f, lo: float, hi: float) -> np.ndarray:
    """'accurate' below ``lo``, 'candidate' in [lo, hi), 'failed' at or above ``hi``
    (too far from anything the models know to be a physical frame worth a DFT call)."""
    d = np.asarray(max_devi_f)
    return np.where(d < lo, "accurate", np.where(d < hi, "candidate", "failed"))


def pick_candidates(candidate_rows, X, max_labels: int) -> list[int]:
    """At most ``max_labels`` of ``candidate_rows``, spread out by farthest point sampling in
    descriptor space ``X`` (rows of the same frames); all of them if there are fewer."""
    rows = list(candidate_rows)
    if len(rows) <= max_labels:
        return rows
    from ..selection.frames import fps

    picked = fps(np.asarray(X)[rows], max_labels)
    return [rows[i] for i in picked]


def converged(accurate_fraction: float, all_stable: bool, target: float) -> bool:
    """The stop rule: enough explored frames are accurate and no trajectory blew up."""
    return bool(all_stable and accurate_fraction >= target)
