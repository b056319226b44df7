"""Steps of rules/select.smk: descriptors, the split and frame selection, the
configuration-space map, and the learning-curve experiment."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .. import config as qconfig
from ..data import dataset
from ..fileio import write_json
from ..selection import frames as frame_selection
from .train import train_on_split

log = logging.getLogger(__name__)


def select_params(cfg: dict) -> dict:
    """:func:`select_frames`'s keyword arguments from a whole validated config (as
    rules/select.smk declares them): for callers without Snakemake (the ``qdff`` command, tests)."""
    return {
        "selection": cfg["selection"],
        "reference_energies": cfg["reference_energies"],
        "test_runs": qconfig.test_runs(cfg),
        "test_seed": cfg["aimd"]["test_seed"],
    }


def compute_descriptors(data, out, *, descriptor: dict) -> dict:
    """Per-frame descriptors (selection.descriptor) of every frame of ``data`` (file order), cached in ``out``."""
    from ..selection import descriptors

    p = dict(descriptor)
    chunk = p.pop("chunk_frames")
    return descriptors.compute_file(data, out, p, chunk_frames=chunk)


def _descriptor_rows(descriptors_npy, frames_all, frames) -> np.ndarray:
    """Cached descriptor rows of ``frames`` (a subset of ``frames_all``, the file's frames)."""
    from ..selection import descriptors

    X, meta = descriptors.load(descriptors_npy)
    keys = [[str(a.info.get("run", "")), int(a.info.get("step", i))] for i, a in enumerate(frames_all)]
    if meta["n_frames"] != len(frames_all) or meta["keys"] != keys:
        raise ValueError(f"{descriptors_npy}: computed for other frames than the data set; delete it to recompute")
    kept = {id(a) for a in frames}
    return np.asarray(X[[i for i, a in enumerate(frames_all) if id(a) in kept]])


def select_frames(
    data, out_dir, descriptors=None, *, selection: dict, reference_energies, test_runs: list, test_seed
) -> dict:
    """Split and select by the ``selection`` block; ``descriptors``: the cached descriptors of
    ``data`` (computed here if the method needs them and none are given); ``test_runs``: the
    runs of the independent test AIMD (aimd.test_seed), held out whole."""
    frames_all = dataset.read_frames(data)
    sel = selection
    n_scf = sum(1 for a in frames_all if not a.info.get("scf_converged", True))
    frames = dataset.drop_unconverged_scf(frames_all)[0] if sel["drop_unconverged_scf"] else frames_all
    if n_scf and not sel["drop_unconverged_scf"]:
        log.warning("keeping %d frame(s) whose SCF did not converge: selection.drop_unconverged_scf is false", n_scf)
    frames, n_dup = dataset.dedupe_frames(frames)
    X = _descriptor_rows(descriptors, frames_all, frames) if descriptors else None
    idx = frame_selection.split_and_select(frames, sel, descriptors=X, test_runs=test_runs)
    out_dir = Path(out_dir)
    for part in ("train", "valid", "test"):
        dataset.write_frames(out_dir / f"{part}.extxyz", [frames[i] for i in idx[part]])
    refs = reference_energies
    fit = None
    if refs == "fit":
        fit = dataset.fit_reference_energies_report([frames[i] for i in idx["train"]])
        refs = fit["reference_energies"]
        # several compositions: say whether the per-element values are determined; one
        # composition: today's minimum-norm behaviour, said once at info level
        (log.info if fit["identifiable"] or len(fit["compositions"]) < 2 else log.warning)(
            "reference energies: %s", fit["note"]
        )
        # a split by whole files or clusters can hold a whole composition out of training: its
        # energies then rest on references fitted without it
        held = {dataset.composition_label(frames[i]) for part in ("valid", "test") for i in idx[part]}
        fit["held_out_only_compositions"] = sorted(held - set(fit["compositions"]))
        if fit["held_out_only_compositions"]:
            log.warning(
                "reference energies: composition(s) %s are held out but not in the training frames: their "
                "energies rest on references fitted without them",
                ", ".join(fit["held_out_only_compositions"]),
            )
    else:
        missing = {s for a in frames for s in a.get_chemical_symbols()} - set(refs)
        if missing:
            raise qconfig.ConfigError(f"config error at reference_energies: no value for {', '.join(sorted(missing))}")

    def steps(part):
        return [[frames[i].info["run"], int(frames[i].info["step"])] for i in idx[part]]

    summary = {
        "method": sel["method"],
        "descriptor": sel["descriptor"]["kind"] if frame_selection.needs_descriptors(sel) else None,
        "n_frames": len(frames),
        "duplicates_dropped": n_dup,
        "scf_not_converged": n_scf,
        "scf_not_converged_dropped": n_scf if sel["drop_unconverged_scf"] else 0,
        "near_duplicates_dropped": idx["near_duplicates"],
        "dedupe_tolerance": sel["dedupe_tolerance"],
        "n_pool": len(idx["pool"]),
        "n_train": len(idx["train"]),
        "n_valid": len(idx["valid"]),
        "n_test": len(idx["test"]),
        "n_valid_block": len(idx["valid_block"]),
        "test_fraction": sel["test_fraction"],
        "valid_fraction": sel["valid_fraction"],
        "gap_fs": sel["gap_fs"],
        "test_seed": test_seed,
        "blocks": idx["blocks"],
        # how held-out frames are kept apart from training frames, and what that cannot promise
        "split": idx["split"],
        # per run: held-out frames outside the pool's potential energy range (a drifting run)
        "held_out_beyond_pool": idx["held_out_beyond_pool"],
        "reference_energies": refs,
        # the fit's diagnostics (reference_energies: fit): compositions, rank, identifiable, note
        "reference_energies_fit": fit,
        "train_steps": steps("train"),
        "valid_steps": steps("valid"),
        "test_steps": steps("test"),
    }
    write_json(out_dir / "selection.json", summary)
    log.info(
        "selected %d train (%s), %d valid; %d held out (of %d frames; %d near-duplicates dropped)",
        summary["n_train"],
        sel["method"],
        summary["n_valid"],
        summary["n_test"],
        len(frames),
        idx["near_duplicates"],
    )
    return summary


def map_configurations(descriptors, selection_file, out_png, out_html, out_info=None, *, selection: dict) -> dict:
    """The configuration-space map (selection.map, .dbscan, .seed) of every frame, marking the split."""
    from ..selection import confmap

    info = confmap.write_map(descriptors, selection_file, out_png, out_html, selection)
    if out_info:
        write_json(out_info, info)
    return info


def select_learning_curve_frames(
    method: str, n: int, data, descriptors, out_dir, *, selection: dict, reference_energies, test_runs: list, test_seed
) -> dict:
    """The split of one learning-curve point: ``n`` training frames chosen by ``method``, the
    rest of ``selection`` as the pipeline's own split."""
    summary = select_frames(
        data,
        out_dir,
        descriptors,
        selection={**selection, "method": method, "n_train": int(n)},
        reference_energies=reference_energies,
        test_runs=test_runs,
        test_seed=test_seed,
    )
    if summary["n_train"] != int(n):
        raise frame_selection.SelectionError(
            f"config error at selection.learning_curve.sizes: {n} training frames do not fit the training pool "
            f"of {summary['n_pool']} frames"
        )
    return summary


def train_learning_curve_point(
    method: str, n: int, metrics_out, *, threads: int, deepmd: dict, evaluation: dict, workdir, split_dir, model_dir
) -> dict:
    """Train the experiment's DeePMD model (``deepmd``: backends.deepmd with the experiment's
    step count, on ``threads``) on one point's split; errors on its validation frames.

    The test frames are never read: they are left to judge the final models. DeePMD trains
    for a fixed number of steps (no early stopping), so the validation frames, the same for
    every point, are held out from each point's training."""
    from ..selection import learning_curve
    from ..training.models import load_calculator

    # a point's model may be poor (that is what the curve shows), so only a diverged one fails
    train_on_split(
        "deepmd",
        {**deepmd, "threads": threads},
        split_dir,
        workdir,
        model_dir,
        gate={"max_force_rmse_ratio": float("inf"), "max_energy_rmse_ratio": float("inf")},
    )
    frames = dataset.evenly_spaced(dataset.read_frames(Path(split_dir) / "valid.extxyz"), evaluation["max_frames"])
    metrics = {"method": method, "n_train": int(n)} | learning_curve.heldout_errors(load_calculator(model_dir), frames)
    write_json(metrics_out, metrics)
    log.info("learning curve %s N=%d: force RMSE %.1f meV/A", method, n, metrics["force_rmse_meV_per_A"])
    return metrics


def plot_learning_curve(metric_files, out_csv, out_png, out_summary) -> dict:
    """Error against training-set size per method, and the frames each method needs to match random."""
    from ..selection import learning_curve

    return learning_curve.collect(metric_files, out_csv, out_png, out_summary)
