"""The null test of the ML-MD stability verdict: CP2K itself, run through the same protocol
and judged by the same recorder as every model, must come out stable.

    python benchmarks/null_test.py results/<system> --config config/<system>.yaml \
        [--seeds 10] [--temperatures 300 600] [--workers 2] [--out DIR] [--aimd-halves]

Takes a finished run's data set and split. For each AIMD temperature and seed: CP2K's own MD
(the config's preset, CSVR with the AIMD's time constant, CP2K's velocities at that
temperature from GLOBAL%SEED = seed) from the same start frame as the pipeline's ML-MD (the
first held-out frame at that temperature), for ``mlmd.steps + mlmd.nve_steps`` steps, every
step under the thermostat, frames every ``mlmd.record_every`` steps. Each frame goes through
qdff.validation.mlmd's recorder with the config's settings and the AIMD frames at that
temperature after ``selection.equilibration_fs`` (exactly as the run_mlmd rule judges a
model). Prints, per temperature: the seeds judged stable by today's criteria
(qdff.validation.stability), each gross bond criterion alone (undercoordinated, stretched), every
episode below the coordination floor however short as a rate per ps over all seeds (a model and
the reference, a few seeds each, are compared by that rate, not by pass or fail) and,
for comparison, the criterion before issue 32 (more bonds
broken or formed relative to the start frame than any AIMD frame shows, three checks in a row),
recomputed from the same frames. Writes ``null_test.json`` in ``--out``.

Resumable: run the same command again after a kill and each seed continues from CP2K's last
restart file in ``--out`` (written every ``mlmd.record_every`` steps); finished seeds are only
judged again. Give each system its own ``--out``. ``--judge-on-disk`` (the same arguments) judges
the frames each seed has so far without running CP2K: an interim verdict of a null test under
way, written to ``null_test_on_disk.json``.

``--extend-to N`` runs each seed N steps: the verdicts still judge the protocol's length, the
episodes below the floor are counted over all N (a rate needs picoseconds more than seeds; a
seed already run goes on from its restart file).

``--start FRAME.extxyz`` shoots from another frame instead of the first held-out one, e.g. a
model's ML-MD frame some hundred fs before its failure: does CP2K from the same configuration
(fresh velocities per seed) fail the same way? The reference frames and the verdict are the
same; give the shots their own ``--out``. ``benchmarks/long_run.py MODEL FRAME.extxyz --reference
OUT/reference_<T>K.extxyz --seed K`` shoots the model from the same frame.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qdff import config as qconfig  # noqa: E402
from qdff.data import dataset  # noqa: E402
from qdff.steps import mlmd as mlmd_steps  # noqa: E402
from qdff.validation import stability  # noqa: E402

OLD_PERSIST = 3  # the checks in a row of the criterion before issue 32


def _cp2k_md(task: dict) -> dict:
    """:func:`_run_seed` in a worker of the pool. A SIGTERM to the job (``kill -- -PGID``) stops
    the worker's CP2K (qdff.processes) and then the worker itself: the pool would otherwise hand
    it the next seed after its parent is gone (measured: a killed null test went on with
    another seed)."""
    import os

    from qdff import processes

    try:
        return _run_seed(task)
    except processes.Terminated as stop:
        os._exit(int(stop.code))


def _run_seed(task: dict) -> dict:
    """One CP2K MD run of the protocol, judged by the recorder; returns its verdicts. The MD is
    qdff's AIMD runner (qdff.cp2k.run.run_md) with the protocol's time step, recording interval
    and seed: a killed null test resumes each seed from CP2K's restart file (a 149-atom seed at
    xTB takes hours), and a finished seed is not run again."""
    import copy

    from ase.io import read

    from qdff.cp2k import run as cp2k_run

    cfg, T, seed, workdir = task["cfg"], task["temperature"], task["seed"], Path(task["workdir"])
    start = read(task["start"], format="extxyz")
    reference = dataset.read_frames(task["reference"])
    p = cfg["mlmd"]
    steps = task["md_steps"]
    run_cfg = copy.deepcopy(cfg)
    run_cfg["aimd"].update(steps=steps, timestep_fs=p["timestep_fs"], print_every=p["record_every"], seed=seed)
    run_cfg["cp2k"].update(threads=task["threads"], on_failure="fail")
    if (workdir / f"{cp2k_run.MD_PROJECT}-1.ener").is_file() and not (workdir / cp2k_run.MD_SETTINGS).is_file():
        # a run of the null test before it recorded its settings: its start frame (the split's
        # first held-out frame then) is unknown, so it is set aside, never continued
        from qdff.fileio import move_aside

        dest = move_aside([f for f in workdir.iterdir() if f.is_file()], workdir)
        print(f"{workdir}: an earlier run without {cp2k_run.MD_SETTINGS} moved to {dest}; starting afresh", flush=True)
    try:
        md = cp2k_run.run_md(start, run_cfg, T, workdir, workdir / "md-summary.json")
    except cp2k_run.CP2KError as err:
        raise RuntimeError(f"CP2K failed in {workdir}: {err}") from None
    row = _judge(cfg, T, seed, start, reference, _frames_on_disk(workdir, steps), task["steps"])
    return row | {"cp2k_seconds_per_step": md["seconds_per_step_median"]}


def _frames_on_disk(workdir: Path, steps: int) -> list[tuple]:
    """(step, positions, potential energy, temperature) of a seed's CP2K frames 1..``steps``,
    each step once, those with their energy line written (a live run's last position frame may
    not have it yet)."""
    from qdff.cp2k import output as cp2k_output
    from qdff.cp2k import run as cp2k_run
    from qdff.validation import reference_md

    ener = cp2k_output.read_ener(workdir / f"{cp2k_run.MD_PROJECT}-1.ener")
    temp_at = dict(zip(ener["step"].tolist(), ener["temperature"]))
    epot_at = dict(zip(ener["step"].tolist(), ener["potential"]))
    return [
        (f.step, f.values, float(epot_at[f.step]), float(temp_at[f.step]))
        for f in reference_md.segment_frames(workdir, cp2k_run.MD_PROJECT)
        if 0 < f.step <= steps and f.step in epot_at
    ]


def _judge_on_disk(task: dict) -> dict | None:
    """The frames a seed has on disk so far (a run under way or killed), judged as far as they
    go, without running CP2K; None when it has none. A verdict of fewer steps than the protocol's
    is an interim one: stable so far, or unstable at the step it names."""
    from ase.io import read

    from qdff.cp2k import run as cp2k_run

    workdir, T = Path(task["workdir"]), task["temperature"]
    if not (workdir / f"{cp2k_run.MD_PROJECT}-1.ener").is_file():
        return None
    frames = _frames_on_disk(workdir, task["md_steps"])
    if not frames:
        return None
    start = read(task["start"], format="extxyz")
    reference = dataset.read_frames(task["reference"])
    row = _judge(task["cfg"], T, task["seed"], start, reference, frames, task["steps"])
    return row | {"steps_on_disk": frames[-1][0], "md_steps": task["md_steps"], "protocol_steps": task["steps"]}


def _judge(cfg, T, seed, start, reference, frames: list, steps: int) -> dict:
    """Frames (step, positions, potential energy, temperature) of one run through the recorder
    with the config's settings, judged against ``reference``: the verdicts of one seed over its
    first ``steps``, and the episodes below the coordination floor over all its frames."""
    from qdff.validation import mlmd, stability

    p = cfg["mlmd"]
    traj: list = []
    rec = mlmd._Recorder(
        start,
        reference,
        temperature=T,
        seed=seed,
        **(mlmd.protocol(p, recorder_only=True) | {"trajectory": traj}),
    )
    atoms = start.copy()
    reason, done = None, 0
    for step, positions, epot, temperature in (f for f in frames if f[0] <= steps):
        atoms.positions = positions
        done = step
        reason = rec.langevin(atoms, step, epot, temperature)
        if reason:
            break
    summary = rec.summary(steps=steps, done=done, reason=reason, seconds_per_step=0.0, nve_steps=0, engine="cp2k")
    # the criterion before issue 32, recomputed from the same frames
    streak, old = 0, None
    for a in traj:
        beyond = (
            a.info["bonds_broken"] > summary["aimd_bonds_broken_max"]
            or a.info["bonds_formed"] > summary["aimd_bonds_formed_max"]
        )
        streak = streak + 1 if beyond else 0
        if streak >= OLD_PERSIST and old is None:
            old = f"step {a.info['step']}: {a.info['bonds_broken']} broken, {a.info['bonds_formed']} formed"
    # each gross bond criterion, whichever the config judges by: undercoordinated recomputed from
    # the same frames; stretched from the longest stretch the recorder always keeps
    under = stability.undercoordinated_by_seed(
        traj, reference, summary["bond_break_distances"], p["bond_break_fs"]
    ).get(seed)
    return {
        "undercoordinated_stable": under is None,
        "stretched_stable": summary["longest_stretch_fs"] < p["bond_break_fs"],
        "undercoordinated_reason": under or "",
        "temperature": T,
        "seed": seed,
        "steps": done,
        "stable": summary["stable"],
        "reason": summary["reason"],
        "failure_time_fs": summary["failure_time_fs"],
        "longest_stretch_fs": summary["longest_stretch_fs"],
        "bond_break_distances": summary["bond_break_distances"],
        "bonds_broken_max": summary["bonds_broken_max"],
        "bonds_formed_max": summary["bonds_formed_max"],
        "aimd_bonds_broken_max": summary["aimd_bonds_broken_max"],
        "aimd_bonds_formed_max": summary["aimd_bonds_formed_max"],
        "old_criterion_stable": old is None,
        "old_criterion_reason": old or "",
    } | _episodes(start, reference, frames, summary, p)


def _episodes(start, reference, frames: list, summary: dict, p: dict) -> dict:
    """Every episode below the coordination floor in all of a seed's frames, past its protocol's
    length (``--extend-to``) and past a failure: the verdict's own count (its floor, break
    distances and frames), run on to the last frame."""
    from qdff.validation import stability

    if summary.get("bond_criterion") != "undercoordinated":
        return {"below_floor_episodes": None, "below_floor_observed_fs": None, "steps_counted": 0}
    check = stability.Undercoordinated(
        start.get_chemical_symbols(), summary["bond_break_distances"], reference, p["bond_break_fs"]
    )
    for step, positions, _, _ in frames:
        check(positions, step * p["timestep_fs"])
    return {
        "below_floor_episodes": check.episodes,
        "below_floor_observed_fs": check.observed_fs,
        "steps_counted": frames[-1][0] if frames else 0,
    }


def _episodes_text(rows: list[dict]) -> str:
    """Every episode below the coordination floor in all the seeds' time, as a rate with its exact
    Poisson interval: what the reference is compared with a model by (see the module)."""
    from qdff.validation import stability

    if any(r.get("below_floor_episodes") is None for r in rows):
        return "episodes below the coordination floor: not counted (mlmd.bond_criterion is not undercoordinated)"
    k = sum(r["below_floor_episodes"] for r in rows)
    ps = sum(r["below_floor_observed_fs"] for r in rows) / 1000.0
    lo, hi = stability.episode_rate_interval(k, ps)
    return (
        f"below the coordination floor {k} times in {ps:.2f} ps of all seeds ({lo:.2f}-{hi:.2f} per ps, exact 95 % CI)"
    )


def _aimd_halves(cfg, data, temps, out: Path) -> int:
    """Each AIMD run at ``temps``, after selection.equilibration_fs, cut in two halves by time:
    the second half goes through the recorder as if it were a model's run, judged against the
    first half (limits, break distances and coordination from those frames only). Cheap: no
    CP2K run. It shows whether the verdict calls the reference unstable on a stretch of its own
    MD it was not calibrated on; one run of half the AIMD's length, not the 10-seed null test."""
    rows = []
    dt = float(cfg["aimd"]["timestep_fs"])
    for T in temps:
        frames = dataset.equilibrated(dataset.at_temperature(data, T), cfg["selection"]["equilibration_fs"])
        frames.sort(key=lambda f: float(f.info.get("time", 0.0)))
        if len(frames) < 4:
            raise SystemExit(f"{T:g} K: {len(frames)} AIMD frames after equilibration; too few to halve")
        half = len(frames) // 2
        reference, judged = frames[:half], frames[half:]
        t0 = float(judged[0].info["time"])
        run = ((round((float(f.info["time"]) - t0) / dt), f.positions, f.get_potential_energy(), T) for f in judged[1:])
        row = _judge(cfg, T, 0, judged[0], reference, run, round((float(judged[-1].info["time"]) - t0) / dt))
        row.update(
            reference_fs=[float(reference[0].info["time"]), float(reference[-1].info["time"])],
            judged_fs=[t0, float(judged[-1].info["time"])],
        )
        rows.append(row)
        print(
            f"{T:g} K: AIMD {row['judged_fs'][0]:g}-{row['judged_fs'][1]:g} fs judged against "
            f"{row['reference_fs'][0]:g}-{row['reference_fs'][1]:g} fs: "
            f"{'stable' if row['stable'] else 'UNSTABLE: ' + row['reason']}; undercoordinated "
            f"{'stable' if row['undercoordinated_stable'] else 'UNSTABLE: ' + row['undercoordinated_reason']}; "
            f"longest stretch beyond a break distance {row['longest_stretch_fs']:.0f} fs; "
            f"break distances {row['bond_break_distances']}",
            flush=True,
        )
    (out / "aimd_halves.json").write_text(json.dumps({"rows": rows}, indent=1))
    print(f"wrote {out / 'aimd_halves.json'}")
    return 0


def _report_on_disk(tasks: list[dict], out: Path) -> int:
    rows = [r for r in map(_judge_on_disk, tasks) if r is not None]
    for r in rows:
        under = "stable" if r["undercoordinated_stable"] else "UNSTABLE: " + r["undercoordinated_reason"]
        print(
            f"{r['temperature']:g} K seed {r['seed']}: {r['steps_on_disk']} of {r['md_steps']} steps on disk "
            f"(the verdicts judge the first {r['protocol_steps']}); "
            f"judged so far: {'stable' if r['stable'] else 'UNSTABLE: ' + r['reason']}; undercoordinated {under}; "
            f"stretched {'stable' if r['stretched_stable'] else 'UNSTABLE'} (longest stretch beyond a break "
            f"distance {r['longest_stretch_fs']:.0f} fs); break distances {r['bond_break_distances']}",
            flush=True,
        )
    if not rows:
        print(f"no seed has frames in {out} yet")
        return 1
    for T in sorted({r["temperature"] for r in rows}):
        print(f"{T:g} K so far: " + _episodes_text([r for r in rows if r["temperature"] == T]), flush=True)
    (out / "null_test_on_disk.json").write_text(json.dumps({"rows": rows, "interim": True}, indent=1))
    print(f"{len(rows)} seeds judged as far as they have run; wrote {out / 'null_test_on_disk.json'}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path, help="results/<system> of a finished run")
    ap.add_argument("--config", type=Path, required=True)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=101)
    ap.add_argument(
        "--temperatures",
        type=float,
        nargs="*",
        default=None,
        help="default: the AIMD temperatures; one above them is a stress temperature, as in the pipeline",
    )
    ap.add_argument("--workers", type=int, default=2, help="CP2K runs at once (one core each)")
    ap.add_argument(
        "--steps",
        type=int,
        default=None,
        help="CP2K MD steps per seed (default: mlmd.steps + mlmd.nve_steps, as the pipeline's ML-MD)",
    )
    ap.add_argument(
        "--extend-to",
        type=int,
        default=None,
        help="run each seed this many steps: the verdict still judges the protocol's first --steps, the "
        "episodes below the coordination floor are counted over all (a rate needs ps, not seeds); a seed run "
        "before goes on from its restart file",
    )
    ap.add_argument("--threads", type=int, default=1, help="OpenMP threads of each CP2K run")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/null_test"))
    ap.add_argument(
        "--start",
        type=Path,
        default=None,
        help="start every seed from this frame (extxyz, the dot's atoms in the data set's order) instead of "
        "the first held-out frame: shots from a model's frame before its failure",
    )
    ap.add_argument(
        "--judge-on-disk",
        action="store_true",
        help="no CP2K run: judge the frames each seed has on disk so far (a null test under way or "
        "killed); writes null_test_on_disk.json, an interim verdict",
    )
    ap.add_argument(
        "--aimd-halves",
        action="store_true",
        help="no CP2K run: the second half of each AIMD run (after equilibration) judged against its "
        "first half, for a dot whose 10-seed null test costs too much (one run, not a null test)",
    )
    a = ap.parse_args(argv)
    from qdff import logs

    logs.setup()  # CP2K's progress (step, s/step, ETA) and resumes, from qdff.cp2k.run
    cfg = qconfig.load(a.config)
    steps = a.steps or cfg["mlmd"]["steps"] + cfg["mlmd"]["nve_steps"]
    temps = a.temperatures or [float(t) for t in cfg["aimd"]["temperatures"]]
    data = dataset.read_frames(a.results / "dataset/frames.extxyz")
    a.out.mkdir(parents=True, exist_ok=True)
    if a.aimd_halves:
        return _aimd_halves(cfg, data, temps, a.out)
    tasks = []
    for T in temps:
        # start and reference exactly as the pipeline's ML-MD takes them: at a stress temperature
        # (above the AIMD's), the first held-out frame and the AIMD frames of the hottest AIMD run
        try:
            starts, reference, stress, aimd_t = mlmd_steps.start_and_reference(
                a.results / "split/test.extxyz",
                a.results / "dataset/frames.extxyz",
                T,
                cfg["aimd"]["temperatures"],
                cfg["selection"]["equilibration_fs"],
            )
        except ValueError as err:
            raise SystemExit(str(err)) from None
        if stress:
            print(f"{T:g} K is a stress temperature: started from and judged against the {aimd_t:g} K AIMD", flush=True)
        if a.start is not None:
            from ase.io import read

            starts = [read(a.start, index=-1, format="extxyz")]  # positions only: an ML-MD frame has no labels
            if starts[0].get_chemical_symbols() != reference[0].get_chemical_symbols():
                raise SystemExit(f"{a.start}: not the atoms of {a.results}'s data set in the same order")
        dataset.write_frames(a.out / f"start_{T:g}K.extxyz", starts[:1])
        dataset.write_frames(a.out / f"reference_{T:g}K.extxyz", reference)
        for k in range(a.seeds):
            seed = a.first_seed + k
            tasks.append(
                {
                    "cfg": cfg,
                    "temperature": T,
                    "seed": seed,
                    "workdir": str(a.out / f"{T:g}K/seed{seed}"),
                    "steps": steps,
                    "md_steps": max(steps, a.extend_to or 0),
                    "threads": a.threads,
                    "start": str(a.out / f"start_{T:g}K.extxyz"),
                    "reference": str(a.out / f"reference_{T:g}K.extxyz"),
                }
            )
    print(
        f"{a.results}: CP2K ({cfg['cp2k']['preset']}) MD as the model, {a.seeds} seeds at {temps} K, "
        f"{steps} steps judged"
        + (f", run to {a.extend_to} for the rate of episodes below the floor" if (a.extend_to or 0) > steps else "")
        + f" (CSVR, {cfg['aimd']['thermostat_timecon_fs']} fs) "
        f"from {a.start or 'the first held-out frame'}; judged against {len(data)} data-set frames",
        flush=True,
    )
    if a.judge_on_disk:
        return _report_on_disk(tasks, a.out)
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=a.workers) as pool:
        rows = list(pool.map(_cp2k_md, tasks))
    for T in temps:
        mine = [r for r in rows if r["temperature"] == T]
        new = sum(r["stable"] for r in mine)
        old = sum(r["old_criterion_stable"] for r in mine)
        under = sum(r["undercoordinated_stable"] for r in mine)
        stretched = sum(r["stretched_stable"] for r in mine)
        lo, hi = stability.failure_rate_interval(len(mine) - new, len(mine))
        print(
            f"{T:g} K: stable by the config's criteria (mlmd.bond_criterion: {cfg['mlmd']['bond_criterion']}) in "
            f"{new} of {len(mine)} seeds (the reference's failure rate per run: {100 * lo:.0f}-{100 * hi:.0f} %, "
            f"exact binomial 95 % CI); gross bond criteria alone: undercoordinated {under} of {len(mine)}, "
            f"stretched {stretched} of {len(mine)}; the criterion before issue 32 {old} of {len(mine)}; break "
            f"distances {mine[0]['bond_break_distances']}; longest stretch beyond one "
            f"{max(r['longest_stretch_fs'] for r in mine):.0f} fs; " + _episodes_text(mine)
        )
        for r in mine:
            if not r["undercoordinated_stable"]:
                print(f"  seed {r['seed']}: undercoordinated: {r['undercoordinated_reason']}")
            if not r["stable"] or not r["old_criterion_stable"]:
                print(
                    f"  seed {r['seed']}: today {'stable' if r['stable'] else 'UNSTABLE: ' + r['reason']}; "
                    f"before: {'stable' if r['old_criterion_stable'] else 'UNSTABLE: ' + r['old_criterion_reason']}"
                )
    total = time.perf_counter() - t0
    (a.out / "null_test.json").write_text(json.dumps({"rows": rows, "wall_s": total}, indent=1))
    print(f"{len(rows)} CP2K runs in {total:.0f} s; wrote {a.out / 'null_test.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
