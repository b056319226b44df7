"""A long ML-MD run of a trained model on a (larger) dot: its time per step, the hours a
nanosecond takes on these cores, and whether the dot stays together.

    python benchmarks/long_run.py MODEL_DIR (--run results/<system> --config config/<system>.yaml | STRUCTURE.xyz [--reference FRAMES.extxyz]) \
        [--steps 100000] [--temperature 300] [--engine lammps] [--threads 2] \
        [--record-every 100] [--seed 1] [--timecon 50] [--workdir DIR]

``MODEL_DIR`` is a model folder of a finished run (``results/<system>/models/deepmd``): its
deployed file (the compressed one where backends.deepmd.compress made it) runs under qdff's
ML-MD protocol (qdff.validation.mlmd: CSVR at ``--temperature`` with time constant
``--timecon`` fs, 1 fs steps, frames every ``--record-every`` steps) in LAMMPS (DeePMD-kit
models) or qdff's ASE loop. With ``--run``, from the frame the pipeline's ML-MD starts from (the
first held-out frame at ``--temperature``) and judged against the same AIMD frames (that
temperature's, after selection.equilibration_fs); else from ``STRUCTURE`` (the cluster, any box)
against ``--reference`` or the structure alone.

What is judged, and against what: the gross checks of every ML-MD verdict (non-finite values,
an atom leaving: nearest neighbour beyond ``mlmd.bond_factor`` = 1.5 x the largest one of the
reference frames; a collapse: two atoms closer than half their smallest distance; the
temperature held above qdff.validation.stability.BLOWUP_FACTOR x the target). The calibrated
bond criterion (an atom less coordinated than its element ever is in the AIMD) needs an AIMD
of *this* dot long enough to show its coordination range; where there is none (``--reference``
is a few frames, or the structure alone) bonds broken and formed relative to the start and the
coordination are recorded, never judged, and the summary says so.

Where the bond verdict can be calibrated (``--run``, or a ``--reference`` AIMD of at least 200
frames), every stretch in which an atom stays under-coordinated for ``mlmd.bond_break_fs``
(qdff.validation.stability.undercoordinated_stretches) is listed, judged or not: the verdict
stops at the first, a long run is described by all.

Writes ``long_run.json`` (the summary of qdff.validation.mlmd, the under-coordinated stretches,
wall time, hardware, the model's provenance) and, with LAMMPS, LAMMPS's input, log and dump, in ``--workdir``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ase.io import read  # noqa: E402

from qdff import config as qconfig  # noqa: E402
from qdff.data import dataset  # noqa: E402
from qdff.fileio import read_json, write_json  # noqa: E402
from qdff.steps import mlmd as mlmd_steps  # noqa: E402
from qdff.training.models import calculator_from_meta  # noqa: E402
from qdff.units import hours_per_ns  # noqa: E402
from qdff.validation import mlmd, stability  # noqa: E402

# a reference of fewer frames than this is no AIMD to calibrate the bond verdict on
MIN_REFERENCE_FRAMES = 200


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("structure", type=Path, nargs="?", help="the cluster (without --run)")
    ap.add_argument("--run", type=Path, default=None, help="a finished run: results/<system>")
    ap.add_argument("--config", type=Path, default=None, help="with --run: its config/<system>.yaml")
    ap.add_argument("--reference", type=Path, default=None, help="AIMD frames of this dot (extxyz)")
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--temperature", type=float, default=300.0)
    ap.add_argument("--timestep", type=float, default=1.0, help="fs")
    ap.add_argument("--timecon", type=float, default=50.0, help="CSVR time constant, fs (aimd.thermostat_timecon_fs)")
    ap.add_argument("--engine", choices=("lammps", "ase"), default="lammps")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--record-every", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument(
        "--record-bonds-only",
        action="store_true",
        help="record the bond verdict's quantities, judge only the gross checks (a model that fails the "
        "bond verdict: does the dot still hold together?)",
    )
    a = ap.parse_args(argv)

    import torch

    torch.set_num_threads(a.threads)
    meta = read_json(a.model_dir / "model.json")
    if a.run is not None:
        if a.config is None:
            ap.error("--run needs the run's --config (its selection.equilibration_fs)")
        equilibration = qconfig.load(a.config)["selection"]["equilibration_fs"]
        frames, reference, _, _ = mlmd_steps.start_and_reference(
            a.run / "split" / "test.extxyz",
            a.run / "dataset" / "frames.extxyz",
            a.temperature,
            [a.temperature],
            equilibration,
        )
        start, a.structure, a.reference = (
            frames[0],
            a.run / "split" / "test.extxyz",
            a.run / "dataset" / "frames.extxyz",
        )
    elif a.structure is None:
        ap.error("give --run or a structure")
    else:
        start = read(a.structure)
        reference = dataset.read_frames(a.reference) if a.reference else [start]
    start.calc = None
    if any(len(f) != len(start) or f.get_chemical_symbols() != start.get_chemical_symbols() for f in reference):
        raise SystemExit(f"{a.reference}: its frames are not the atoms of {a.structure} in the same order")
    # an AIMD long enough to calibrate the bond verdict: judged, or with --record-bonds-only recorded
    calibrated = len(reference) >= MIN_REFERENCE_FRAMES
    judge_bonds = calibrated and not a.record_bonds_only
    engine = mlmd.engine(a.engine, meta["backend"])
    name = a.run.name if a.run is not None else a.structure.stem
    work = a.workdir or Path("benchmarks/out/long_run") / f"{name}-{meta['backend']}-{engine}"
    work.mkdir(parents=True, exist_ok=True)
    print(
        f"{meta['backend']} model {a.model_dir} ({meta['model_file']}), {engine}, {a.threads} thread(s): "
        f"{len(start)} atoms ({start.get_chemical_formula()}), {a.steps} steps of {a.timestep:g} fs at "
        f"{a.temperature:g} K; reference: {len(reference)} frame(s), bond verdict "
        f"{'judged' if judge_bonds else 'recorded only' + ('' if a.record_bonds_only else ' (no AIMD of this dot to calibrate it)')}",
        flush=True,
    )
    protocol = dict(
        temperature=a.temperature,
        steps=a.steps,
        timestep_fs=a.timestep,
        thermostat="csvr",
        thermostat_timecon_fs=a.timecon,
        bond_factor=1.5,
        seed=a.seed,
        record_every=a.record_every,
        bond_check=judge_bonds,
        monitor_bonds=True,
    )
    traj: list = []  # the recorded frames: every under-coordinated stretch, below
    t0 = time.time()
    if engine == "lammps":
        run = mlmd.run_lammps(
            a.model_dir, start, reference, workdir=work / "lammps", threads=a.threads, trajectory=traj, **protocol
        )
    else:
        run = mlmd.run(calculator_from_meta(a.model_dir, meta), start, reference, trajectory=traj, **protocol)
    wall = time.time() - t0
    # the bond verdict stops a run at its first failure; with it recorded only, every stretch an
    # atom stays less coordinated than its element ever is in the AIMD (same floor, same break
    # distances, same duration) describes what the dot did
    stretches = (
        stability.undercoordinated_stretches(traj, reference, run["bond_break_distances"], run["bond_break_fs"])
        if calibrated and run.get("bond_break_distances")
        else None
    )
    h = hours_per_ns(run["seconds_per_step"], a.timestep)
    out = {
        "model_dir": str(a.model_dir),
        "model_file": meta["model_file"],
        "backend": meta["backend"],
        "trained_on": meta.get("provenance", {}).get("training_data_sha256"),
        "structure": str(a.structure),
        "formula": start.get_chemical_formula(),
        "atoms": len(start),
        "engine": engine,
        "threads": a.threads,
        "hardware": mlmd.hardware(),
        "reference": str(a.reference) if a.reference else "the structure alone",
        "reference_frames": len(reference),
        "bond_verdict": "judged" if judge_bonds else "recorded only",
        "wall_s": wall,
        "hours_per_ns": h,
        "run": {k: v for k, v in run.items() if k != "series"},
        "undercoordinated_stretches": stretches,
        "series": run["series"],
    }
    write_json(work / "long_run.json", out)
    cn = ", ".join(f"{el} {v:.2f}" for el, v in run.get("coordination", {}).items())
    print(
        f"{'stable' if run['stable'] else 'UNSTABLE: ' + run['reason']}: {run['steps_run']} of {a.steps} steps "
        f"in {wall / 60:.1f} min wall, {run['seconds_per_step']:.4f} s/step ({engine}), {h:.1f} h per ns on "
        f"{a.threads} thread(s) of {out['hardware']['cpu_model']}; mean T {run['temperature_mean']:.0f} K; bonds "
        f"relative to the start: at most {run.get('bonds_broken_max')} broken, {run.get('bonds_formed_max')} formed "
        f"of {run.get('bonds_start')}; mean coordination {cn}",
        flush=True,
    )
    if stretches is not None:
        by_el = {}
        for st in stretches:
            by_el.setdefault(st["element"], []).append(st)
        print(
            f"under-coordinated for >= {run['bond_break_fs']:g} fs (fewer neighbours than any atom of its element in "
            f"the AIMD): {len(stretches)} time(s)"
            + "".join(
                f"; {el} {len(v)} (first at {v[0]['from_fs'] / 1000:.1f} ps, atoms {sorted({x['atom'] for x in v})})"
                for el, v in sorted(by_el.items())
            ),
            flush=True,
        )
    if run.get("below_floor_episodes") is not None and run.get("below_floor_observed_fs"):
        ps = run["below_floor_observed_fs"] / 1000.0
        lo, hi = stability.episode_rate_interval(run["below_floor_episodes"], ps)
        print(
            f"below that floor however short: {run['below_floor_episodes']} time(s) in {ps:.1f} ps "
            f"({lo:.2f}-{hi:.2f} per ps, exact 95 % CI; frames every {a.record_every * a.timestep:g} fs)",
            flush=True,
        )
    print(json.dumps({"long_run": str(work / "long_run.json")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
