"""Committee model deviation (DP-GEN's ``model_devi``) and candidate choice."""

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


def model_deviation(energies, forces, n_atoms: int, relative_floor: float | None = None) -> dict:
    """Per frame: the largest over atoms of the committee's force spread
    ``max_i sqrt(<|F_i - <F_i>|^2>)`` (eV/A; DP-GEN's max_devi_f), its mean over atoms, its
    RMS over atoms and components (``rms_devi_f``, comparable with a force RMSE), and the
    committee's standard deviation of the energy per atom (eV/atom); ``spread`` holds the
    per-atom spread itself (frames, atoms). With ``relative_floor``
    (eV/A) also DeePMD's relative deviation ``max_i spread_i / (|<F_i>| + floor)``
    (``max_devi_f_rel``): an atom under a large force may deviate more."""
    forces = np.asarray(forces, dtype=np.float64)
    mean = forces.mean(axis=0)
    spread = np.sqrt(np.mean(np.sum((forces - mean) ** 2, axis=-1), axis=0))  # (frames, atoms)
    out = {
        "max_devi_f": spread.max(axis=1),
        "avg_devi_f": spread.mean(axis=1),
        "rms_devi_f": np.sqrt(np.mean(spread**2, axis=1) / 3.0),
        "devi_e": np.std(np.asarray(energies, dtype=np.float64), axis=0) / n_atoms,
        "spread": spread,
    }
    if relative_floor is not None:
        out["max_devi_f_rel"] = (spread / (np.linalg.norm(mean, axis=-1) + relative_floor)).max(axis=1)
    return out


def pick_candidates(candidate_rows, X, max_labels: int) -> list[int]:
    """At most ``max_labels`` of ``candidate_rows``, spread out by farthest point sampling in
    descriptor space ``X`` (rows of the same frames); all of them if there are fewer."""
    rows = list(candidate_rows)
    if len(rows) <= max_labels:
        return rows
    from ..selection.frames import fps

    picked = fps(np.asarray(X)[rows], max_labels)
    return [rows[i] for i in picked]
