"""The steps of one active-learning iteration, as functions of files (rules/active_learning.smk).

Iteration i: train a committee on the training set of i (iteration 0: the selected AIMD
frames of the common split), explore with ML-MD of member 0, score every explored frame by
the committee's force deviation, pick at most ``max_labels`` candidates in the trust window,
label them with CP2K, and append them to the training set of i+1. The validation frames
(for the usefulness gate) and the held-out test frames (time-separated AIMD blocks) stay
those of the common split in every iteration: never labelled into training.
"""

from __future__ import annotations

import csv
import logging
import shutil
from pathlib import Path

import numpy as np

from ..data import dataset
from ..fileio import atomic_open, read_json, write_json
from ..training import with_seed
from . import calibration, deviation, trust

log = logging.getLogger(__name__)


def exploration_temperatures(cfg: dict) -> list[float]:
    """The AIMD temperatures, plus the configured stress temperatures (default: 1.5x the
    highest AIMD temperature), where the AIMD data did not go."""
    al = cfg["active_learning"]
    aimd = [float(t) for t in cfg["aimd"]["temperatures"]]
    extra = al["extra_temperatures"]
    if extra is None:
        extra = [round(al["stress_factor"] * max(aimd), 1)]
    return sorted(set(aimd) | {float(t) for t in extra})


def member_params(cfg: dict, member: int, n_train: int | None = None) -> dict:
    """The committee member's training settings: the backend's, with its own seed, and (with
    steps_scale: data, DeePMD-kit's step count) as many steps per frame as iteration 0 had."""
    al = cfg["active_learning"]
    p = with_seed(cfg["backends"][al["backend"]], member)
    if al.get("steps_scale", "fixed") == "data" and n_train and "steps" in p and al["backend"] == "deepmd":
        ref = int(cfg.get("selection", {}).get("n_train") or n_train)
        p["steps"] = max(int(p["steps"]), int(round(p["steps"] * n_train / ref)))
    return p


def subsample(frames: list, fraction: float, seed: int) -> list:
    """The member's own subsample of the training set (``fraction`` of it, without replacement,
    in the original order); all frames at fraction 1."""
    if fraction >= 1 or len(frames) < 2:
        return list(frames)
    n = max(1, int(round(fraction * len(frames))))
    idx = np.sort(np.random.default_rng(seed).choice(len(frames), size=n, replace=False))
    return [frames[i] for i in idx]


def train_member(cfg: dict, member: int, train_file, split_dir, workdir, model_dir, init_from=None) -> Path:
    """Committee member ``member`` on its subsample of ``train_file``; ``init_from``: the same
    member's model directory of the previous iteration (warm start)."""
    from ..training import backends

    split_dir = Path(split_dir)
    al = cfg["active_learning"]
    everything = dataset.read_frames(train_file)
    params = member_params(cfg, member, len(everything))
    train = subsample(everything, al.get("subsample", 1.0), params["seed"])
    valid = dataset.read_frames(split_dir / "valid.extxyz")
    refs = read_json(split_dir / "selection.json")["reference_energies"]
    backend = al["backend"]
    if init_from is not None:
        params["init_model"] = str((Path(init_from) / "model.ckpt.pt").resolve())
    if al.get("warm_start"):
        params["keep_checkpoint"] = True  # the next iteration's member starts from it
    log.info(
        "committee member %d (%s): %d of %d training frames, seed %d%s%s",
        member,
        backend,
        len(train),
        len(everything),
        params["seed"],
        f", {params['steps']} steps" if "steps" in params else "",
        f", warm start from {init_from}" if init_from else "",
    )
    return backends.get(backend).train(
        train,
        valid,
        refs,
        params,
        workdir,
        model_dir,
        data_files=[train_file, split_dir / "valid.extxyz"],
        gate=cfg["training"],
    )


def _calculators(member_dirs):
    from ..training.models import load_calculator

    return [load_calculator(d) for d in member_dirs]


def _start_frames(frames, temperature: float, n: int) -> list:
    """``n`` start frames spread over the run whose temperature is nearest ``temperature``."""
    temps = np.array([float(a.info.get("temperature", np.nan)) for a in frames])
    nearest = temps[np.nanargmin(np.abs(temps - temperature))]
    pool = [a for a, t in zip(frames, temps) if t == nearest]
    idx = np.linspace(0, len(pool) - 1, n).round().astype(int)
    return [pool[i] for i in idx]


def _explore_trajectories(
    calc,
    aimd,
    cfg: dict,
    seed_offset: int,
    al_iteration,
    run_prefix: str,
    drop_failed_frame: bool = False,
    model_dir=None,
    workdir=None,
    temperatures=None,
):
    """Langevin ML-MD with ``calc`` from ``trajectories_per_temperature`` AIMD frames at every
    exploration temperature: ``(frames recorded, statistics per temperature, all stable)``.
    Stability is judged as the report's ML-MD judges it (qdff.validation.stability), with the
    break distances of the AIMD run nearest in temperature.
    ``drop_failed_frame``: leave out the frame that ended an unstable trajectory.
    ``model_dir``: the model ``calc`` is, run through :func:`qdff.validation.mlmd.run_model` (in
    LAMMPS where mlmd.engine says so, each trajectory in its own folder under ``workdir``);
    without it (a zero-shot baseline), ``calc`` in ASE. ``temperatures``: those to explore
    (default: every exploration temperature). The frames before the one that ended an unstable
    trajectory are marked ``before_failure`` (:func:`mark_failure_path`)."""
    from ..validation import mlmd

    al, p = cfg["active_learning"], cfg["mlmd"]
    aimd_temps = sorted(t for t in {float(a.info.get("temperature", np.nan)) for a in aimd} if np.isfinite(t))
    explored, per_t = [], {}
    for T in exploration_temperatures(cfg) if temperatures is None else temperatures:
        starts = _start_frames(aimd, T, al["trajectories_per_temperature"])
        nearest = min(aimd_temps, key=lambda t: abs(t - T)) if aimd_temps else None
        reference = [a for a in aimd if float(a.info.get("temperature", np.nan)) == nearest] or aimd
        # judged: an AIMD run at this temperature is the verdict's reference; above the hottest
        # AIMD the reference is that run's, which CP2K itself fails (active_learning.stability_above_aimd)
        judged = nearest is None or float(nearest) == float(T)
        stats = {"trajectories": len(starts), "stable_trajectories": 0, "reasons": [], "frames": 0, "judged": judged}
        for j, start in enumerate(starts):
            traj: list = []
            kw = mlmd.protocol(p) | dict(
                temperature=T,
                steps=al["explore_steps"],
                seed=p["seed"] + seed_offset + 101 * j + int(T),
                record_every=al["record_every"],
                trajectory=traj,
            )
            if model_dir is not None:
                summary = mlmd.run_model(
                    p["engine"],
                    al["backend"],
                    model_dir,
                    start,
                    reference,
                    calc=calc,
                    workdir=Path(workdir) / f"{T:g}K-{j}",
                    **kw,
                )
            else:
                summary = mlmd.run(calc, start, reference, **kw)
            stats["stable_trajectories"] += int(summary["stable"])
            if not summary["stable"]:
                stats["reasons"].append(summary["reason"])
                mark_failure_path(traj, al.get("failure_path_frames", 1), al.get("failure_path_fs", 300.0))
                if drop_failed_frame and traj and not summary["reason"].startswith("calculator failed"):
                    traj = traj[:-1]
            for a in traj:
                a.info.update(al_iteration=al_iteration, trajectory=j, run=f"{run_prefix}-{T:g}K-{j}")
            stats["frames"] += len(traj)
            explored += traj
        per_t[f"{T:g}"] = stats
    return explored, per_t, stable_where_judged(per_t, cfg)


def mark_failure_path(traj: list, n_frames: int, span_fs: float) -> None:
    """Mark up to ``n_frames`` recorded frames of an unstable trajectory (its last frame is the
    one the verdict fired on) with ``info["before_failure"]`` = their rank: 1 for the last frame
    before the failure, then the others, spread evenly in time over the ``span_fs`` before it.
    Why more than the last: on Cd68Se55Cl26 the model's error lay along the whole stretch of the
    bond (2.9-3.9 Angstrom, 300 fs before the verdict fired) and the committee's spread there was
    a quarter of it (docs/benchmarks.md, "A failure labelled by the reference")."""
    if len(traj) < 2:
        return
    t_fail = float(traj[-1].info.get("time", len(traj) - 1))
    window = [a for a in traj[:-1] if float(a.info.get("time", 0.0)) >= t_fail - float(span_fs)] or [traj[-2]]
    # evenly spaced from the last frame back: the last is always rank 1
    idx = np.unique(np.round(np.linspace(len(window) - 1, 0, min(int(n_frames), len(window)))).astype(int))[::-1]
    for rank, i in enumerate(idx, start=1):
        window[i].info["before_failure"] = rank


def stable_where_judged(per_t: dict, cfg: dict) -> bool:
    """Whether every trajectory was stable at the temperatures whose verdict decides (those with
    their own AIMD run; every one with active_learning.stability_above_aimd: required)."""
    required = cfg["active_learning"].get("stability_above_aimd", "reported") == "required"
    return all(
        s["stable_trajectories"] == s["trajectories"] for s in per_t.values() if required or s.get("judged", True)
    )


def ladder(cfg: dict, previous: dict | None) -> list[float]:
    """The temperatures iteration i explores: with active_learning.temperature_ladder, the AIMD
    temperatures first, then each iteration adds the next exploration temperature once every
    temperature of the previous iteration was stable (and keeps those it has)."""
    temps = exploration_temperatures(cfg)
    if not cfg["active_learning"].get("temperature_ladder", False):
        return temps
    top = max(float(t) for t in cfg["aimd"]["temperatures"])
    if previous is None:
        return [t for t in temps if t <= top]
    done = sorted(float(t) for t in previous["per_temperature"])
    stable = stable_where_judged(previous["per_temperature"], cfg)
    higher = [t for t in temps if t > max(done)]
    return sorted(set(done) | ({higher[0]} if stable and higher else set()))


def zero_force_rms(frames) -> float:
    """The RMS force component of ``frames`` (eV/A): the error of predicting zero force."""
    return float(np.sqrt(np.mean(np.concatenate([a.get_forces().ravel() for a in frames]) ** 2)))


def calibrate(calcs, frames, level: float, relative_floor: float | None) -> tuple[dict, np.ndarray]:
    """The committee's calibration on labelled ``frames`` it never trained on (see
    :mod:`.calibration`), and its deviations there (the adaptive lower level's sample)."""
    energies, forces = deviation.committee_predictions(calcs, frames)
    devi = deviation.model_deviation(energies, forces, len(frames[0]), relative_floor)
    ref = np.array([a.get_forces() for a in frames])
    key = "max_devi_f_rel" if relative_floor is not None else "max_devi_f"
    out = calibration.fit(
        devi[key],
        calibration.max_atomic_error(forces[0], ref),
        devi["rms_devi_f"],
        calibration.frame_rmse(forces[0], ref),
        level,
    )
    return out, devi[key]


def pick(classes, explored, X_of, max_labels: int, before_failure: bool = True) -> tuple[list[int], set[int]]:
    """At most ``max_labels`` frames to label: with ``before_failure``, the frames marked before a
    failure first (every failure's last frame, then every failure's second, ...: a tight budget
    still covers each failure), then candidates by farthest point sampling in descriptor space,
    then frames beyond the upper level the same way (``X_of(rows)``: the descriptors of those rows).
    Returns the picked rows and the set of those picked for a failure."""
    picked: list[int] = []
    if before_failure:
        marked = [i for i, a in enumerate(explored) if a.info.get("before_failure") and classes[i] != "failed"]
        picked = sorted(marked, key=lambda i: (int(explored[i].info["before_failure"]), i))[:max_labels]
    for_failure = set(picked)
    for cls in ("candidate", "beyond"):
        room = max_labels - len(picked)
        taken = set(picked)  # a set: a list search made this quadratic in the frames explored
        rows = [i for i, c in enumerate(classes) if c == cls and i not in taken]
        if room <= 0 or not rows:
            continue
        picked += [rows[j] for j in deviation.pick_candidates(range(len(rows)), X_of(rows), room)]
    return picked, for_failure


def explore(
    cfg: dict,
    iteration: int,
    member_dirs,
    train_file,
    calibration_file,
    out_table,
    out_candidates,
    out_summary,
    previous_summary=None,
    evaluations_before: int = 0,
) -> dict:
    """Calibrate the committee on its calibration frames, explore with member 0 (ML-MD at the
    ladder's temperatures), score every recorded frame by the committee's deviation, decide
    whether the loop ends here (:func:`.trust.stop_reason`), and pick the frames to label
    (none when it ends). ``previous_summary``: the previous iteration's explore.json (ladder,
    smoothing of the adaptive level); ``evaluations_before``: CP2K evaluations so far."""
    from ..selection import descriptors

    al = cfg["active_learning"]
    prev = read_json(previous_summary) if previous_summary else None
    floor = al["relative_floor"] if al.get("deviation") == "relative" else None
    key = "max_devi_f_rel" if floor is not None else "max_devi_f"
    calcs = _calculators(member_dirs)
    train = dataset.read_frames(train_file)
    aimd = [a for a in train if a.info.get("labelled_by") != "cp2k"] or train
    calib_frames = read_xyz_frames(calibration_file)
    cal, calib_devi = calibrate(calcs, calib_frames, al["calibration_level"], floor)
    if not np.isfinite(cal["scale"]):
        log.warning(
            "iteration %d: %d calibration frames are too few for a conformal scale at the %.0f %% level "
            "(at least %d): calibrated errors are not stated",
            iteration,
            cal["frames"],
            100 * cal["level"],
            int(np.ceil(cal["level"] / (1 - cal["level"]))),
        )
    if al["trust_levels"] == "adaptive":
        lo = trust.adaptive_lower(
            calib_devi, al["adaptive_quantile"], prev["trust_lo"] if prev else None, al["adaptive_smoothing"]
        )
    else:
        lo = al["trust_lo"]
    hi = max(al["trust_hi"], lo)
    temps = ladder(cfg, prev)
    log.info(
        "iteration %d: committee calibrated on %d labelled frames it never trained on: max atomic force "
        "error <= %.2f x deviation (%.0f %% level; %.0f %% covered on the half not fitted), force RMSE = "
        "%.2f x RMS deviation; trust levels %.3f / %.3f (%s); exploring at %s K",
        iteration,
        cal["frames"],
        cal["scale"],
        100 * cal["level"],
        100 * cal["coverage_holdout"],
        cal["rms_scale"],
        lo,
        hi,
        al["trust_levels"],
        ", ".join(f"{t:g}" for t in temps),
    )
    explored, per_t, stable_all = _explore_trajectories(
        calcs[0],
        aimd,
        cfg,
        seed_offset=7919 * iteration,
        al_iteration=iteration,
        run_prefix=f"al{iteration}",
        model_dir=member_dirs[0],
        workdir=Path(out_summary).parent / "lammps",
        temperatures=temps,
    )
    if explored:
        energies, forces = deviation.committee_predictions(calcs, explored)
        devi = deviation.model_deviation(energies, forces, len(explored[0]), floor)
    else:
        energies, forces = np.zeros((len(calcs), 0)), np.zeros((len(calcs), 0, 0, 3))
        devi = {k: np.zeros(0) for k in ("max_devi_f", "avg_devi_f", "rms_devi_f", "devi_e", key)}
    floors = trust.shortest_distances(aimd)
    ok = np.array([trust.physical(a, floors, al["min_distance_factor"]) for a in explored], dtype=bool)
    classes = trust.classify(devi[key], lo, hi, ok)
    if al["beyond_trust_hi"] == "discard":
        classes = np.where(classes == "beyond", "failed", classes)
    target = (
        float(al["target_force_rmse"])
        if al["target_force_rmse"] is not None
        else 1000 * al["target_force_rmse_fraction"] * zero_force_rms(aimd)
    )
    predicted = 1000 * calibration.predicted_rmse(cal["rms_scale"], devi["rms_devi_f"])
    budget = al.get("max_cp2k_evaluations")
    reason = trust.stop_reason(
        predicted_rmse=predicted,
        target=target,
        all_stable=stable_all,
        all_temperatures=temps == exploration_temperatures(cfg),
        evaluations=evaluations_before,
        budget=budget,
        iteration=iteration,
        max_iterations=al["max_iterations"],
    )
    room = al["max_labels"] if budget is None else min(al["max_labels"], budget - evaluations_before)
    picked: list[int] = []
    for_failure: set[int] = set()
    if reason is None and room > 0:
        # descriptors of the rows that can be picked only
        picked, for_failure = pick(
            classes,
            explored,
            lambda rows: descriptors.compute([explored[i] for i in rows], cfg["selection"]["descriptor"]),
            room,
            before_failure=al.get("label_before_failure", True),
        )
    for T, stats in per_t.items():
        m = np.array([f"{float(a.info['temperature']):g}" == T for a in explored], dtype=bool)
        n = int(m.sum())
        stats["frames"] = n
        for c in ("accurate", "candidate", "beyond", "failed"):
            stats[f"{c}_fraction"] = float(np.mean(classes[m] == c)) if n else float("nan")
        stats["predicted_force_rmse_meV_per_A"] = (
            1000 * calibration.predicted_rmse(cal["rms_scale"], devi["rms_devi_f"][m]) if n else float("nan")
        )
    picked_set = set(picked)
    with atomic_open(out_table, newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "iteration",
                "temperature",
                "trajectory",
                "step",
                "max_devi_f",
                "avg_devi_f",
                "rms_devi_f",
                "devi_e",
                "deviation",
                "predicted_max_error",
                "physical",
                "class",
                "picked",
            ]
        )
        for i, a in enumerate(explored):
            w.writerow(
                [
                    iteration,
                    a.info["temperature"],
                    a.info["trajectory"],
                    a.info["step"],
                    f"{devi['max_devi_f'][i]:.6f}",
                    f"{devi['avg_devi_f'][i]:.6f}",
                    f"{devi['rms_devi_f'][i]:.6f}",
                    f"{devi['devi_e'][i]:.6g}",
                    f"{devi[key][i]:.6f}",
                    f"{cal['scale'] * devi[key][i]:.6f}",
                    int(ok[i]),
                    classes[i],
                    int(i in picked_set),
                ]
            )
    cands = []
    for i in picked:
        a = explored[i].copy()
        a.info.update(
            max_devi_f=float(devi["max_devi_f"][i]),
            deviation=float(devi[key][i]),
            rms_devi_f=float(devi["rms_devi_f"][i]),
            picked_as="before_failure" if i in for_failure else str(classes[i]),
        )
        # member 0's forces: the true error of every label, once CP2K has computed it
        a.arrays["member0_forces"] = np.asarray(forces[0][i], dtype=np.float64)
        cands.append(a)
    dataset.write_frames(out_candidates, cands)
    fractions = {
        c: float(np.mean(classes == c)) if len(classes) else 0.0 for c in ("accurate", "candidate", "beyond", "failed")
    }
    summary = {
        "iteration": iteration,
        "members": len(calcs),
        "frames_explored": len(explored),
        **{f"{c}_fraction": v for c, v in fractions.items()},
        "candidates": int(np.sum((classes == "candidate") | (classes == "beyond"))),
        "picked": len(picked),
        "picked_before_failure": sum(1 for a in cands if a.info["picked_as"] == "before_failure"),
        "picked_beyond": sum(1 for a in cands if a.info["picked_as"] == "beyond"),
        # stable at every temperature whose verdict decides (active_learning.stability_above_aimd)
        "all_stable": stable_all,
        "stability_above_aimd": al.get("stability_above_aimd", "reported"),
        "temperatures": temps,
        "all_temperatures": temps == exploration_temperatures(cfg),
        "calibration": cal,
        "deviation": al.get("deviation", "absolute"),
        "trust_levels": al["trust_levels"],
        "trust_lo": lo,
        "trust_hi": hi,
        "trust_lo_error": cal["scale"] * lo,
        "trust_hi_error": cal["scale"] * hi,
        "predicted_force_rmse_meV_per_A": predicted,
        "target_force_rmse_meV_per_A": target,
        "cp2k_evaluations_before": evaluations_before,
        "stop_reason": reason,
        "converged": reason == "converged",
        "last_iteration": reason is not None,
        "per_temperature": per_t,
    }
    write_json(out_summary, summary)
    log.info(
        "iteration %d: %d frames explored at %s K, %.1f%% accurate, predicted force RMSE %.1f meV/A "
        "(target %.1f), %s; %d picked for CP2K (%d before a failure, %d beyond trust_hi); %s",
        iteration,
        len(explored),
        ", ".join(f"{t:g}" for t in temps),
        100 * fractions["accurate"],
        predicted,
        target,
        "all stable" if stable_all else "some trajectories UNSTABLE",
        len(picked),
        summary["picked_before_failure"],
        summary["picked_beyond"],
        f"loop ends: {trust.ENDINGS[reason]}" if reason else "going on",
    )
    return summary


def read_xyz_frames(path, labelled: bool = True) -> list:
    """Frames of ``path`` (an empty file: none); ``labelled=False`` for frames without labels."""
    if Path(path).stat().st_size == 0:
        return []
    if labelled:
        return dataset.read_frames(path)
    from ase.io import read

    return read(path, index=":", format="extxyz")


def label(cfg: dict, candidates_file, workdir, out, summary_out) -> dict:
    from .label import label_frames

    frames = read_xyz_frames(candidates_file, labelled=False)
    return label_frames(
        frames, cfg, workdir, out, summary_out, temperatures=[a.info.get("temperature") for a in frames]
    )


def held_back(n: int, fraction: float) -> list[int]:
    """Indices of the ``fraction`` of ``n`` labels held back from training: spread evenly over
    the pick order, so that frames picked before a failure, candidates and frames beyond the
    upper level are all represented."""
    k = int(round(fraction * n))
    return sorted({int((j + 0.5) * n / k) for j in range(k)}) if k else []


def extend_training_set(
    previous_train, labelled_file, out, previous_calibration=None, out_calibration=None, holdout_fraction=0.0
) -> int:
    """The next training set (the previous one and the new labels) and, with
    ``out_calibration``, the next calibration set (the previous one and the labels held back)."""
    labelled = read_xyz_frames(labelled_file)
    for a in labelled:
        a.arrays.pop("member0_forces", None)  # the labelling committee's, not the next one's
    held = set(held_back(len(labelled), holdout_fraction)) if out_calibration else set()
    frames = dataset.read_frames(previous_train) + [a for i, a in enumerate(labelled) if i not in held]
    dataset.write_frames(out, frames)
    if out_calibration:
        calib = read_xyz_frames(previous_calibration) + [labelled[i] for i in sorted(held)]
        dataset.write_frames(out_calibration, calib)
        log.info("calibration set of the next iteration: %d frames (%d labels held back)", len(calib), len(held))
    log.info("training set of the next iteration: %d frames", len(frames))
    return len(frames)


def cp2k_evaluations(aimd_summaries, label_summaries) -> int:
    """CP2K force evaluations so far: every AIMD step and every frame sent to CP2K for a label
    (an unconverged SCF costs as much as a converged one)."""
    return sum(int(read_json(f)["steps_done"]) for f in aimd_summaries) + sum(
        int(read_json(f)["frames"]) for f in label_summaries
    )


def labels_learnt(frames, forces_after, holdout_fraction: float) -> dict:
    """Did the next committee learn the labels it trained on? Member 0's force RMSE on one
    iteration's labels (``frames``, as read from its labelled file) before them (the labelling
    committee's member 0, ``member0_forces``) and after (``forces_after``: the next member 0's forces on the same frames), apart for the labels
    that went into training (member 0 saw its subsample of them) and those held back, which no
    member saw. If the trained-on labels are fitted no better than the held-back ones, the
    model, not the data, limits its error: more labels will not lower it (a larger model or
    longer training will). Measured on the 149-atom dot (docs/benchmarks.md): 82-98 meV/A on
    labels trained on against 83-97 on those held back, in each of three iterations."""
    if not frames:
        return {"frames": 0}
    held = set(held_back(len(frames), holdout_fraction))

    def rmse(rows, forces):
        if not rows:
            return float("nan")
        d = np.concatenate([(np.asarray(forces[k]) - frames[k].get_forces()).ravel() for k in rows])
        return 1000 * float(np.sqrt(np.mean(d**2)))

    trained = [k for k in range(len(frames)) if k not in held]
    before = [k for k in range(len(frames)) if "member0_forces" in frames[k].arrays]
    out = {
        "frames": len(frames),
        "trained_on": len(trained),
        "held_back": len(held),
        "force_rmse_before_meV_per_A": rmse(before, {k: frames[k].arrays["member0_forces"] for k in before}),
        "force_rmse_trained_on_meV_per_A": rmse(trained, forces_after),
        "force_rmse_held_back_meV_per_A": rmse(sorted(held), forces_after),
    }
    # a tenth better on frames it trained on than on frames it never saw, or it has not learnt them
    out["learnt"] = bool(
        not held or out["force_rmse_trained_on_meV_per_A"] < 0.9 * out["force_rmse_held_back_meV_per_A"]
    )
    return out


def label_coverage(labelled_file, scale: float, rms_scale: float) -> dict:
    """How the iteration's calibration did on the labels it bought (frames it never saw):
    coverage of its conformal scale, and its predicted against true force RMSE."""
    frames = [a for a in read_xyz_frames(labelled_file) if "member0_forces" in a.arrays]
    if not frames:
        return {"frames": 0}
    pred = np.array([a.arrays["member0_forces"] for a in frames])
    ref = np.array([a.get_forces() for a in frames])
    err = calibration.max_atomic_error(pred, ref)
    dev = np.array([float(a.info["deviation"]) for a in frames])
    rms = np.array([float(a.info["rms_devi_f"]) for a in frames])
    return {
        "frames": len(frames),
        "coverage": calibration.coverage(scale, dev, err),
        "true_force_rmse_meV_per_A": 1000 * float(np.sqrt(np.mean(calibration.frame_rmse(pred, ref) ** 2))),
        "predicted_force_rmse_meV_per_A": 1000 * calibration.predicted_rmse(rms_scale, rms),
        "true_max_error_median": float(np.median(err)),
    }


def explore_with_baseline(cfg: dict, model_dir, train_file, out_table, out_candidates, out_summary, calc=None) -> dict:
    """The seed exploration (``active_learning.explore_with``): ML-MD with one universal
    potential at every exploration temperature, from AIMD training frames, and
    ``max_labels`` of its recorded frames picked by farthest point sampling in descriptor
    space for CP2K. A single model has no committee deviation, so frames are picked for
    being far from each other, not for being uncertain; the frame that ended an unstable
    trajectory is never picked (it failed the stability check). ``calc``: the calculator
    (default: the model of ``model_dir``)."""
    from ..selection import descriptors
    from ..training.models import load_calculator

    al = cfg["active_learning"]
    calc = calc if calc is not None else load_calculator(model_dir)
    aimd = dataset.read_frames(train_file)
    # the recorded frame that ended an unstable trajectory failed the check: never a candidate
    explored, per_t, stable_all = _explore_trajectories(
        calc, aimd, cfg, seed_offset=0, al_iteration="seed", run_prefix="seed", drop_failed_frame=True
    )
    picked: list[int] = []
    if explored:
        X = descriptors.compute(explored, cfg["selection"]["descriptor"])
        picked = deviation.pick_candidates(range(len(explored)), X, al["max_labels"])
    picked_set = set(picked)
    with atomic_open(out_table, newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["temperature", "trajectory", "step", "picked"])
        for i, a in enumerate(explored):
            w.writerow([a.info["temperature"], a.info["trajectory"], a.info["step"], int(i in picked_set)])
    dataset.write_frames(out_candidates, [explored[i] for i in picked])
    out = {
        "explore_with": al["explore_with"],
        "frames_explored": len(explored),
        "picked": len(picked),
        "all_stable": stable_all,
        "per_temperature": per_t,
    }
    write_json(out_summary, out)
    log.info(
        "seed exploration with %s: %d frames explored, %d picked for CP2K by farthest point sampling%s",
        al["explore_with"],
        len(explored),
        len(picked),
        "" if out["all_stable"] else " (some trajectories unstable: see explore.json)",
    )
    return out


def evaluate_iteration(
    cfg: dict, iteration: int, member_dirs, test_file, out_json, out_png, previous_labels=None
) -> dict:
    """Member 0 on the held-out frames (per temperature), and whether the committee's
    deviation ranks the true errors: Spearman correlation of the per-frame max force
    deviation with the per-frame max atomic force error, and a calibration plot. With
    ``previous_labels`` (the labels of the iteration before): whether member 0 learnt them
    (:func:`labels_learnt`, ``active_learning.holdout_fraction`` of them held back)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import spearmanr

    from ..validation.evaluate import breakdown, error_metrics

    calcs = _calculators(member_dirs)
    test = dataset.evenly_spaced(dataset.read_frames(test_file), cfg["evaluation"]["max_frames"])
    energies, forces = deviation.committee_predictions(calcs, test)
    m = error_metrics(test, energies[0], list(forces[0]))
    m.update(breakdown(test, energies[0], list(forces[0]), None))
    devi = deviation.model_deviation(energies, forces, len(test[0]))
    f_ref = np.array([a.get_forces() for a in test])
    true_max = np.linalg.norm(forces[0] - f_ref, axis=-1).max(axis=1)
    rho = float(spearmanr(devi["max_devi_f"], true_max).statistic) if len(test) > 2 else float("nan")
    out = {
        "iteration": iteration,
        "members": len(calcs),
        **m,
        "spearman_devi_vs_error": rho,
        "max_devi_f_mean": float(np.mean(devi["max_devi_f"])),
        "true_max_error_mean": float(np.mean(true_max)),
    }
    if previous_labels:
        labelled = read_xyz_frames(previous_labels)
        after = deviation.committee_predictions(calcs[:1], labelled)[1][0] if labelled else []
        learnt = labels_learnt(labelled, after, cfg["active_learning"]["holdout_fraction"])
        out["labels_learnt"] = learnt
        if learnt["frames"] and not learnt["learnt"]:
            log.warning(
                "iteration %d: member 0 fits the %d labels of iteration %d it trained on (force RMSE %.1f meV/A) "
                "no better than the %d held back (%.1f; %.1f before them): the model, not the data, limits its "
                "error, and more labels will not lower it; a larger model or longer training "
                "(backends.%s) may",
                iteration,
                learnt["trained_on"],
                iteration - 1,
                learnt["force_rmse_trained_on_meV_per_A"],
                learnt["held_back"],
                learnt["force_rmse_held_back_meV_per_A"],
                learnt["force_rmse_before_meV_per_A"],
                cfg["active_learning"].get("backend", "<backend>"),
            )
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    ax.scatter(devi["max_devi_f"], true_max, s=8, alpha=0.6)
    lim = float(max(devi["max_devi_f"].max(), true_max.max())) * 1.05
    ax.plot([0, lim], [0, lim], "k--", lw=0.8, label="deviation = error")
    ax.set_xlabel("committee max force deviation [eV/Å]")
    ax.set_ylabel("true max atomic force error [eV/Å]")
    ax.set_title(f"iteration {iteration}: Spearman ρ = {rho:.2f} ({len(test)} held-out frames)", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    from ..fileio import atomic_path

    with atomic_path(out_png, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    write_json(out_json, out)
    return out


def summarize(
    cfg: dict,
    explore_files,
    label_files,
    eval_files,
    train_files,
    aimd_summaries,
    out_json,
    out_png,
    seed_explore=None,
    seed_labels=None,
) -> dict:
    """One row per iteration: training frames, CP2K labels, cumulative CP2K evaluations (every
    AIMD step and every labelled frame counts one), explored fractions, held-out errors.
    ``seed_*``: the seed exploration's explore.json and labels.json (explore_with), whose
    labels count before iteration 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    aimd_steps = sum(int(read_json(f)["steps_done"]) for f in aimd_summaries)
    labels = [read_json(f) for f in label_files]  # iterations 0 .. final-1 (none after the last)
    rows, cumulative = [], aimd_steps
    seed = None
    if seed_explore and seed_labels:
        e, lab = read_json(seed_explore), read_json(seed_labels)
        seed = {
            "explore_with": e["explore_with"],
            "frames_explored": e["frames_explored"],
            "labels_requested": lab["frames"],
            "labels_added": lab["labelled"],
            "labels_scf_failed": lab["scf_not_converged"],
            "all_stable": e["all_stable"],
            "per_temperature": e["per_temperature"],
        }
        cumulative += lab["frames"]
    for k, (ef, vf, tf) in enumerate(zip(explore_files, eval_files, train_files)):
        e, v = read_json(ef), read_json(vf)
        lab = labels[k] if k < len(labels) else {"frames": 0, "labelled": 0, "scf_not_converged": 0}
        row = {
            "iteration": k,
            "train_frames": len(read_xyz_frames(tf)),
            "cp2k_evaluations_before": cumulative,
            "labels_requested": lab["frames"],
            "labels_added": lab["labelled"],
            "labels_scf_failed": lab["scf_not_converged"],
            "accurate_fraction": e["accurate_fraction"],
            "candidate_fraction": e["candidate_fraction"],
            "failed_fraction": e["failed_fraction"],
            "all_stable": e["all_stable"],
            "converged": e["converged"],
            "per_temperature": e["per_temperature"],
            "force_rmse_meV_per_A": v["force_rmse_meV_per_A"],
            "energy_rmse_meV_per_atom": v["energy_rmse_meV_per_atom"],
            "baseline_zero_force_rmse_meV_per_A": v["baseline_zero_force_rmse_meV_per_A"],
            "spearman_devi_vs_error": v["spearman_devi_vs_error"],
            # whether member 0 learnt the labels of the iteration before (none for iteration 0)
            "labels_learnt": v.get("labels_learnt"),
            "beyond_fraction": e.get("beyond_fraction", 0.0),
            "temperatures": e.get("temperatures"),
            "calibration": e.get("calibration"),
            "trust_lo": e.get("trust_lo"),
            "trust_hi": e.get("trust_hi"),
            "trust_lo_error": e.get("trust_lo_error"),
            "trust_hi_error": e.get("trust_hi_error"),
            "predicted_force_rmse_meV_per_A": e.get("predicted_force_rmse_meV_per_A"),
            "target_force_rmse_meV_per_A": e.get("target_force_rmse_meV_per_A"),
            "picked_before_failure": e.get("picked_before_failure", 0),
            "picked_beyond": e.get("picked_beyond", 0),
            "stop_reason": e.get("stop_reason"),
            "stability_above_aimd": e.get("stability_above_aimd", "required"),
            # the calibration of this iteration on the labels it bought (same job's output)
            "label_check": (
                label_coverage(
                    Path(label_files[k]).parent / "labelled.extxyz",
                    e["calibration"]["scale"],
                    e["calibration"]["rms_scale"],
                )
                if k < len(label_files) and e.get("calibration")
                else {"frames": 0}
            ),
            "force_rmse_by_T": {
                k2[len("force_rmse_meV_per_A_T_") :]: val
                for k2, val in v.items()
                if k2.startswith("force_rmse_meV_per_A_T_")
            },
        }
        cumulative += lab["frames"]
        rows.append(row)
    final = rows[-1] if rows else None
    out = {
        "backend": cfg["active_learning"]["backend"],
        "members": cfg["active_learning"]["committee"],
        "subsample": cfg["active_learning"].get("subsample", 1.0),
        "aimd_steps": aimd_steps,
        "cp2k_evaluations_total": cumulative,
        "iterations": rows,
        "final_iteration": final["iteration"] if final else None,
        "converged": bool(final and final["converged"]),
        "stop_reason": final["stop_reason"] if final else None,
        "stop_reason_text": trust.ENDINGS.get(final["stop_reason"], "") if final else "",
        "trust_levels": cfg["active_learning"].get("trust_levels", "fixed"),
        "seed": seed,
    }
    write_json(out_json, out)
    fig, axes = plt.subplots(1, 2, figsize=(8.5, 3.4))
    x = [r["cp2k_evaluations_before"] for r in rows]
    axes[0].plot(x, [r["force_rmse_meV_per_A"] for r in rows], "o-", label="held-out (member 0)")
    if rows and rows[0].get("predicted_force_rmse_meV_per_A") is not None:
        axes[0].plot(
            x, [r["predicted_force_rmse_meV_per_A"] for r in rows], "s--", label="predicted on explored frames"
        )
        axes[0].axhline(rows[-1]["target_force_rmse_meV_per_A"], color="k", lw=0.8, ls=":", label="stop target")
    axes[0].legend(fontsize=7)
    for xi, r in zip(x, rows):
        axes[0].annotate(f"it {r['iteration']}", (xi, r["force_rmse_meV_per_A"]), fontsize=7)
    axes[0].set_xlabel("CP2K force evaluations so far")
    axes[0].set_ylabel("held-out force RMSE [meV/Å]")
    axes[1].plot(x, [100 * r["accurate_fraction"] for r in rows], "o-", label="accurate")
    axes[1].plot(x, [100 * r["candidate_fraction"] for r in rows], "s-", label="candidate")
    axes[1].plot(x, [100 * r["beyond_fraction"] for r in rows], "^-", label="beyond trust_hi")
    axes[1].plot(x, [100 * r["failed_fraction"] for r in rows], "x-", label="failed")
    axes[1].set_xlabel("CP2K force evaluations so far")
    axes[1].set_ylabel("explored frames [%]")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    from ..fileio import atomic_path

    with atomic_path(out_png, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return out


def export_model(member_dir, model_dir) -> Path:
    """The final committee's member 0 as the system's model of the backend, or member k as its
    model k of training.seeds (model.json last)."""
    member_dir, model_dir = Path(member_dir), Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    for f in sorted(member_dir.iterdir()):
        if f.is_file() and f.name != "model.json":
            shutil.copyfile(f, model_dir / f.name)
    meta = read_json(member_dir / "model.json")
    meta["active_learning"] = {"from": str(member_dir)}
    write_json(model_dir / "model.json", meta)
    return model_dir / "model.json"
