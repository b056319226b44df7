"""Steps of rules/active_learning.smk: each rule's params put into the config shape of
:mod:`qdff.active_learning.loop` (the loop's science), and the loop's function called."""

from __future__ import annotations

from pathlib import Path

from ..active_learning import loop
from ..cp2k import run as cp2k_run


def train_committee_member(
    member: int,
    train_file,
    init_from=None,
    *,
    threads: int,
    backend: str,
    backend_config: dict,
    committee: dict,
    n_train_reference: int,
    gate: dict,
    workdir,
    split_dir,
    model_dir,
) -> Path:
    """Committee member ``member``: ``backend`` with its hyperparameters (``backend_config``), the
    member's own seed and subsample (``committee``: active_learning's subsample, steps_scale and
    warm_start; ``n_train_reference``: selection.n_train, iteration 0's training frames), on
    ``threads``; ``init_from``: the same member's model directory of the previous iteration
    (warm start); ``gate``: the usefulness thresholds (config training)."""
    cfg = {
        "active_learning": {"backend": backend, **committee},
        "backends": {backend: {**backend_config, "threads": threads}},
        "selection": {"n_train": n_train_reference},
        "training": gate,
    }
    return loop.train_member(cfg, member, train_file, split_dir, workdir, model_dir, init_from=init_from)


def _explore_config(active_learning: dict, mlmd: dict, descriptor: dict, aimd_temperatures: list) -> dict:
    return {
        "active_learning": active_learning,
        "mlmd": mlmd,
        "selection": {"descriptor": descriptor},
        "aimd": {"temperatures": aimd_temperatures},
    }


def explore_committee(
    iteration: int,
    member_dirs,
    train_file,
    calibration_file,
    out_table,
    out_candidates,
    out_summary,
    previous_summary=None,
    aimd_summaries=(),
    label_summaries=(),
    *,
    active_learning: dict,
    mlmd: dict,
    descriptor: dict,
    aimd_temperatures: list,
) -> dict:
    """Calibrate the committee, explore with member 0 at the ladder's temperatures, score every
    recorded frame, decide whether the loop ends and pick the frames to label
    (:func:`qdff.active_learning.loop.explore`); the CP2K evaluations so far are counted from
    the AIMD's and the earlier labels' summaries."""
    return loop.explore(
        _explore_config(active_learning, mlmd, descriptor, aimd_temperatures),
        iteration,
        member_dirs,
        train_file,
        calibration_file,
        out_table,
        out_candidates,
        out_summary,
        previous_summary=previous_summary,
        evaluations_before=loop.cp2k_evaluations(aimd_summaries, label_summaries),
    )


def explore_with_baseline(
    model_dir,
    train_file,
    out_table,
    out_candidates,
    out_summary,
    *,
    active_learning: dict,
    mlmd: dict,
    descriptor: dict,
    aimd_temperatures: list,
) -> dict:
    """The seed exploration with a zero-shot universal potential (active_learning.explore_with)."""
    return loop.explore_with_baseline(
        _explore_config(active_learning, mlmd, descriptor, aimd_temperatures),
        model_dir,
        train_file,
        out_table,
        out_candidates,
        out_summary,
    )


def label_candidates(
    candidates_file, out, summary_out, *, workdir, structure: dict, cp2k: dict, launch, seed: int
) -> dict:
    """CP2K energies and forces of the picked candidates (one restartable REFTRAJ job);
    ``seed``: CP2K's GLOBAL%SEED, as in the AIMD."""
    return loop.label(
        cp2k_run.settings(structure, cp2k, launch, {"seed": seed}), candidates_file, workdir, out, summary_out
    )


def extend_training_set(
    previous_train, previous_calibration, labelled_file, out, out_calibration, *, holdout_fraction: float
) -> int:
    """The previous training set and the frames CP2K labelled, less ``holdout_fraction`` of them
    held back into the next calibration set."""
    return loop.extend_training_set(
        previous_train,
        labelled_file,
        out,
        previous_calibration=previous_calibration,
        out_calibration=out_calibration,
        holdout_fraction=holdout_fraction,
    )


def evaluate_committee(
    iteration: int,
    member_dirs,
    test_file,
    out_json,
    out_png,
    previous_labels=None,
    *,
    max_frames: int,
    holdout_fraction: float = 0.0,
) -> dict:
    """Member 0 on (at most ``max_frames`` of) the held-out frames, and how the committee's
    deviation ranks its errors; with ``previous_labels`` (iteration i-1's labelled frames, of
    which ``holdout_fraction`` were held back from training), whether member 0 learnt them."""
    return loop.evaluate_iteration(
        {"evaluation": {"max_frames": max_frames}, "active_learning": {"holdout_fraction": holdout_fraction}},
        iteration,
        member_dirs,
        test_file,
        out_json,
        out_png,
        previous_labels=previous_labels,
    )


def summarize_active_learning(
    explore_files,
    label_files,
    eval_files,
    train_files,
    aimd_summaries,
    out_json,
    out_png,
    seed_explore=None,
    seed_labels=None,
    *,
    active_learning: dict,
) -> dict:
    """One row per iteration, and the progress plot (``active_learning``: the committee's backend,
    size and trust levels, which the summary states)."""
    return loop.summarize(
        {"active_learning": active_learning},
        explore_files,
        label_files,
        eval_files,
        train_files,
        aimd_summaries,
        out_json,
        out_png,
        seed_explore=seed_explore,
        seed_labels=seed_labels,
    )


def export_active_learning_model(member_dir, model_dir) -> Path:
    """The final committee's member 0 as the system's model of the committee's backend (member
    k > 0: its model k of training.seeds, rule export_active_learning_replica)."""
    return loop.export_model(member_dir, model_dir)
