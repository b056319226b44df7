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
from . import deviation

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


def member_params(cfg: dict, member: int) -> dict:
    """The committee member's training settings: the backend's, with its own seed."""
    return with_seed(cfg["backends"][cfg["active_learning"]["backend"]], member)


def train_member(cfg: dict, member: int, train_file, split_dir, workdir, model_dir) -> Path:
    from ..training import backends

    split_dir = Path(split_dir)
    train = dataset.read_frames(train_file)
    valid = dataset.read_frames(split_dir / "valid.extxyz")
    refs = read_json(split_dir / "selection.json")["reference_energies"]
    backend = cfg["active_learning"]["backend"]
    log.info(
        "committee member %d (%s): %d training frames, seed %d",
        member,
        backend,
        len(train),
        member_params(cfg, member)["seed"],
    )
    return backends.get(backend).train(
        train,
        valid,
        refs,
        member_params(cfg, member),
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
):
    """Langevin ML-MD with ``calc`` from ``trajectories_per_temperature`` AIMD frames at every
    exploration temperature: ``(frames recorded, statistics per temperature, all stable)``.
    Stability is judged as the report's ML-MD judges it (qdff.validation.stability), with the
    break distances of the AIMD run nearest in temperature.
    ``drop_failed_frame``: leave out the frame that ended an unstable trajectory.
    ``model_dir``: the model ``calc`` is, run through :func:`qdff.validation.mlmd.run_model` (in
    LAMMPS where mlmd.engine says so, each trajectory in its own folder under ``workdir``);
    without it (a zero-shot baseline), ``calc`` in ASE."""
    from ..validation import mlmd

    al, p = cfg["active_learning"], cfg["mlmd"]
    aimd_temps = sorted(t for t in {float(a.info.get("temperature", np.nan)) for a in aimd} if np.isfinite(t))
    explored, per_t, stable_all = [], {}, True
    for T in exploration_temperatures(cfg):
        starts = _start_frames(aimd, T, al["trajectories_per_temperature"])
        nearest = min(aimd_temps, key=lambda t: abs(t - T)) if aimd_temps else None
        reference = [a for a in aimd if float(a.info.get("temperature", np.nan)) == nearest] or aimd
        stats = {"trajectories": len(starts), "stable_trajectories": 0, "reasons": [], "frames": 0}
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
                stable_all = False
                stats["reasons"].append(summary["reason"])
                if drop_failed_frame and traj and not summary["reason"].startswith("calculator failed"):
                    traj = traj[:-1]
            for a in traj:
                a.info.update(al_iteration=al_iteration, trajectory=j, run=f"{run_prefix}-{T:g}K-{j}")
            stats["frames"] += len(traj)
            explored += traj
        per_t[f"{T:g}"] = stats
    return explored, per_t, stable_all


def explore(cfg: dict, iteration: int, member_dirs, train_file, out_table, out_candidates, out_summary) -> dict:
    """ML-MD with member 0 at every exploration temperature, committee deviation of every
    recorded frame, and the candidates to label (none in the last iteration)."""
    from ..selection import descriptors

    al = cfg["active_learning"]
    calcs = _calculators(member_dirs)
    train = dataset.read_frames(train_file)
    aimd = [a for a in train if a.info.get("labelled_by") != "cp2k"] or train
    # member 0 explores, with the engine validation's ML-MD uses (mlmd.engine)
    explored, per_t, stable_all = _explore_trajectories(
        calcs[0],
        aimd,
        cfg,
        seed_offset=7919 * iteration,
        al_iteration=iteration,
        run_prefix=f"al{iteration}",
        model_dir=member_dirs[0],
        workdir=Path(out_summary).parent / "lammps",
    )
    if explored:
        energies, forces = deviation.committee_predictions(calcs, explored)
        devi = deviation.model_deviation(energies, forces, len(explored[0]))
    else:
        devi = {k: np.zeros(0) for k in ("max_devi_f", "avg_devi_f", "devi_e")}
    classes = deviation.classify(devi["max_devi_f"], al["trust_lo"], al["trust_hi"])
    last = iteration >= al["max_iterations"]
    cand_rows = [i for i, c in enumerate(classes) if c == "candidate"]
    picked: list[int] = []
    if cand_rows and not last:
        # descriptors of the candidates only: the others are never picked
        X = descriptors.compute([explored[i] for i in cand_rows], cfg["selection"]["descriptor"])
        picked = [cand_rows[j] for j in deviation.pick_candidates(range(len(cand_rows)), X, al["max_labels"])]
    for T, stats in per_t.items():
        m = np.array([f"{float(a.info['temperature']):g}" == T for a in explored], dtype=bool)
        n = int(m.sum())
        stats["frames"] = n
        for c in ("accurate", "candidate", "failed"):
            stats[f"{c}_fraction"] = float(np.mean(classes[m] == c)) if n else float("nan")
    accurate = float(np.mean(classes == "accurate")) if len(classes) else 0.0
    done = deviation.converged(accurate, stable_all, al["accurate_target"])
    picked_set = set(picked)
    with atomic_open(out_table, newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            ["iteration", "temperature", "trajectory", "step", "max_devi_f", "avg_devi_f", "devi_e", "class", "picked"]
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
                    f"{devi['devi_e'][i]:.6g}",
                    classes[i],
                    int(i in picked_set),
                ]
            )
    cands = []
    for i in picked:
        a = explored[i].copy()
        a.info.update(max_devi_f=float(devi["max_devi_f"][i]))
        cands.append(a)
    dataset.write_frames(out_candidates, cands)
    summary = {
        "iteration": iteration,
        "members": len(calcs),
        "frames_explored": len(explored),
        "accurate_fraction": accurate,
        "candidate_fraction": float(np.mean(classes == "candidate")) if len(classes) else 0.0,
        "failed_fraction": float(np.mean(classes == "failed")) if len(classes) else 0.0,
        "candidates": len(cand_rows),
        "picked": len(picked),
        "all_stable": stable_all,
        "converged": done,
        "last_iteration": last,
        "trust_lo": al["trust_lo"],
        "trust_hi": al["trust_hi"],
        "per_temperature": per_t,
    }
    write_json(out_summary, summary)
    log.info(
        "iteration %d: %d frames explored, %.1f%% accurate, %d candidates, %d picked for CP2K; %s",
        iteration,
        len(explored),
        100 * accurate,
        len(cand_rows),
        len(picked),
        "converged" if done else ("last iteration" if last else "going on"),
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


def extend_training_set(previous_train, labelled_file, out) -> int:
    frames = dataset.read_frames(previous_train) + read_xyz_frames(labelled_file)
    dataset.write_frames(out, frames)
    log.info("training set of the next iteration: %d frames", len(frames))
    return len(frames)


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


def evaluate_iteration(cfg: dict, iteration: int, member_dirs, test_file, out_json, out_png) -> dict:
    """Member 0 on the held-out frames (per temperature), and whether the committee's
    deviation ranks the true errors: Spearman correlation of the per-frame max force
    deviation with the per-frame max atomic force error, and a calibration plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import spearmanr

    from ..validation.evaluate import breakdown, error_metrics, evenly

    calcs = _calculators(member_dirs)
    test = evenly(dataset.read_frames(test_file), cfg["evaluation"]["max_frames"])
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
        "aimd_steps": aimd_steps,
        "cp2k_evaluations_total": cumulative,
        "iterations": rows,
        "final_iteration": final["iteration"] if final else None,
        "converged": bool(final and final["converged"]),
        "trust_lo": cfg["active_learning"]["trust_lo"],
        "trust_hi": cfg["active_learning"]["trust_hi"],
        "seed": seed,
    }
    write_json(out_json, out)
    fig, axes = plt.subplots(1, 2, figsize=(8.5, 3.4))
    x = [r["cp2k_evaluations_before"] for r in rows]
    axes[0].plot(x, [r["force_rmse_meV_per_A"] for r in rows], "o-")
    for xi, r in zip(x, rows):
        axes[0].annotate(f"it {r['iteration']}", (xi, r["force_rmse_meV_per_A"]), fontsize=7)
    axes[0].set_xlabel("CP2K force evaluations so far")
    axes[0].set_ylabel("held-out force RMSE [meV/Å]")
    axes[1].plot(x, [100 * r["accurate_fraction"] for r in rows], "o-", label="accurate")
    axes[1].plot(x, [100 * r["candidate_fraction"] for r in rows], "s-", label="candidate")
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
