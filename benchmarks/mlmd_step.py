"""Where the time of one ML-MD step goes, and the same model's step in LAMMPS.

    python benchmarks/mlmd_step.py results/<system> [--backends deepmd nequip] [--steps 200] [--threads 1]

For each trained model of a finished run, on the first held-out frame: the median wall time
of one energy-and-force call of its ASE calculator (positions moved every call, so nothing is
cached), and the seconds per step of qdff's ML-MD loop (qdff.validation.mlmd.run: ASE's
Langevin integrator, the stability checks, recording). Their difference is what the Python
loop costs beyond the model. For DeePMD models also the seconds per step of the same model in
LAMMPS (pair_style deepmd, NVE, qdff.validation.lammps), the named peer: printed as the ratio
of qdff's step to LAMMPS's, measured in the same run with the same thread count.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qdff.data import dataset  # noqa: E402
from qdff.fileio import read_json  # noqa: E402
from qdff.training.models import load_calculator  # noqa: E402
from qdff.validation import mlmd  # noqa: E402


def call_seconds(calc, atoms, n: int = 30) -> float:
    """Median wall time of one energy+forces call; each call on slightly moved positions."""
    a = atoms.copy()
    a.calc = calc
    rng = np.random.default_rng(0)
    a.get_forces()  # first call: model loading, compilation, warm-up
    times = []
    for _ in range(n):
        a.positions = atoms.positions + rng.normal(scale=0.01, size=atoms.positions.shape)
        t0 = time.perf_counter()
        a.get_potential_energy()
        a.get_forces()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path, help="results/<system> of a finished run")
    ap.add_argument("--backends", nargs="+", default=None, help="default: every model under models/")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    test = dataset.read_frames(args.results / "split/test.extxyz")
    start = test[0]
    reference = [a for a in test if a.info.get("temperature") == start.info.get("temperature")]
    temperature = float(start.info.get("temperature", 300.0))
    backends = args.backends or sorted(p.parent.name for p in (args.results / "models").glob("*/model.json"))
    hw = mlmd.hardware()
    print(
        f"{args.results}: {len(start)} atoms, {temperature:g} K, {args.steps} steps; "
        f"{hw['device_name']} ({hw['device']}), {args.threads} thread(s)"
    )
    print(
        f"{'backend':12s} {'call [s]':>10s} {'ASE step [s]':>13s} {'loop beyond model':>18s} {'LAMMPS step [s]':>16s} "
        f"{'qdff / LAMMPS':>14s}  ASE steps run"
    )
    for b in backends:
        model_dir = args.results / "models" / b
        calc = load_calculator(model_dir)
        call = call_seconds(calc, start)
        run = mlmd.run(
            calc,
            start,
            reference,
            temperature=temperature,
            steps=args.steps,
            timestep_fs=1.0,
            thermostat="langevin",
            thermostat_timecon_fs=100.0,
            bond_factor=1.5,
            seed=1,
            record_every=10,
        )
        step = run["seconds_per_step"]
        lmp = ratio = "-"
        if read_json(model_dir / "model.json")["backend"] == "deepmd":
            from qdff.validation import lammps

            per = lammps.seconds_per_step(
                model_dir,
                start,
                Path("benchmarks/out/mlmd_step") / args.results.name / b,
                steps=args.steps,
                temperature=temperature,
                threads=args.threads,
            )
            lmp, ratio = f"{per:.5f}", f"{step / per:.2f}x"
        print(
            f"{b:12s} {call:10.5f} {step:13.5f} {100 * (step - call) / step:17.0f}% {lmp:>16s} {ratio:>14s}  "
            f"{run['steps_run']}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
