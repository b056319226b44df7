"""Benchmark: CP2K seconds per MD step (GFN1-xTB) for the small cluster of each material.

Builds the structure of each ``config/<material>-small.yaml`` and runs a short real CP2K
NVT MD (default 10 steps at 300 K, no relaxation: this measures the MD step cost, not the
physics; ``--relax N`` runs an N-step GEO_OPT first) with the config's level of theory and
1 OpenMP thread. Seconds per step are read
from CP2K's .ener file (UsedTime column); step 1 carries the start-up (SCF from the MOPAC
guess) and is reported apart. Prints one row per material and the ratio of each median to
the CdSe zinc-blende one measured in the same run.

    .venv/bin/python benchmarks/materials_md.py [--steps 10] [--relax 0] [--workdir /tmp/qdff-materials-md]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ["cdse-zb-small", "cdse-wz-small", "inp-small", "pbse-small", "cspbbr3-small"]
PEER = "cdse-zb-small"


def run_one(name: str, steps: int, work: Path, threads: int, relax: int = 0) -> dict:
    from qdff import config
    from qdff.cp2k import output as cp2k_output
    from qdff.cp2k import run as cp2k_run
    from qdff.structure import build as structures

    cfg = config.load(ROOT / "config" / f"{name}.yaml")
    cfg["cp2k"].update(threads=threads, command="cp2k.psmp")
    cfg["aimd"].update(steps=steps, print_every=1)
    summary: dict = {}
    atoms = structures.build_structure(cfg, summary)
    run = work / name
    relax_s = None
    if relax:  # a short GEO_OPT first: an unrelaxed cut can heat up and slow the SCF
        cfg["cp2k"]["relax_max_iter"] = relax
        t0 = time.time()
        atoms = cp2k_run.relax(atoms, cfg, run / "relax", run / "relax" / "relaxed.extxyz")
        relax_s = round(time.time() - t0, 1)
    t0 = time.time()
    cp2k_run.run_md(atoms, cfg, 300.0, run, run / "run.json")
    wall = time.time() - t0
    ener = cp2k_output.read_ener(run / "md-1.ener")
    log = (run / f"{cp2k_run.MD_PROJECT}.log").read_text(errors="replace")
    sec = ener["seconds"]
    return {
        "config": name,
        "formula": summary["formula"],
        "n_atoms": summary["n_atoms"],
        "diameter_A": summary["diameter_A"],
        "n_surface": summary["n_surface"],
        "passivants": summary["passivants"],
        "steps": int(ener["step"][-1]),
        "first_step_s": float(sec[1]),
        "median_s_per_step": float(np.median(sec[2:])),
        "wall_s": round(wall, 1),
        "relax_steps": relax,
        "relax_s": relax_s,
        "scf_not_converged": log.count("SCF run NOT converged"),
        "conserved_drift_eV": float(ener["conserved"][-1] - ener["conserved"][0]),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workdir", default="/tmp/qdff-materials-md")
    ap.add_argument("--relax", type=int, default=0, help="GEO_OPT steps before the MD (0: MD from the cut)")
    ap.add_argument("--only", nargs="*", default=CONFIGS)
    a = ap.parse_args(argv)
    work = Path(a.workdir)
    rows = [run_one(name, a.steps, work, a.threads, a.relax) for name in a.only]
    peer = next((r["median_s_per_step"] for r in rows if r["config"] == PEER), None)
    print(
        f"{'config':16s} {'formula':14s} {'atoms':>5s} {'D/A':>6s} {'surf':>4s} {'1st s':>7s} {'s/step':>7s} {'vs ' + PEER:>20s} {'SCF fail':>8s}"
    )
    for r in rows:
        ratio = f"{r['median_s_per_step'] / peer:.2f}" if peer else "-"
        print(
            f"{r['config']:16s} {r['formula']:14s} {r['n_atoms']:5d} {r['diameter_A']:6.1f} {r['n_surface']:4d} "
            f"{r['first_step_s']:7.1f} {r['median_s_per_step']:7.2f} {ratio:>20s} {r['scf_not_converged']:8d}"
        )
    (work / "materials_md.json").write_text(json.dumps(rows, indent=2))
    print(f"wrote {work / 'materials_md.json'}")


if __name__ == "__main__":
    main()
