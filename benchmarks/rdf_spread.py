"""The pair-distance comparison (qdff.validation.rdf.compare) on a finished run's results, read-only,
and its calibration on a synthetic null.

    python benchmarks/rdf_spread.py RESULTS [--temperatures 300 600]
    python benchmarks/rdf_spread.py --synthetic 40 [--corr 0.8 0.95] [--layouts demo test] [--bad]

RESULTS (e.g. results/cdse-demo): per backend (``reference`` is CP2K's own MD run through the
ML-MD protocol: the null, which must pass) and temperature, per element pair: the seeds' mean
block overlap (mean and range over seeds), the seeds inside the AIMD interval, the interval's
lower end (by default the lowest overlap of the non-adjacent AIMD block pairs) and its pair count,
the Wasserstein distances of the seeds and of the AIMD pairs, the verdict. Equilibration and
histogram settings from the run's config.yaml when it is there (else the demo's: 100 fs, 8 A,
80 bins).

--synthetic N: N synthetic trajectories (an 80-atom CdSe cluster vibrating with AR(1)-correlated
Gaussian displacements, ``corr`` per frame) cut into an "AIMD" part and three "seeds" of a
perfect model from the same process, in the demo's proportions (141 AIMD frames, seeds of 90
frames) and in the unit test's (1000 AIMD frames, seeds of 50): how often the perfect model
passes every element pair (no pair with most seeds below), and what fraction of seeds is inside;
with --bad, how often models with bonds 2 % or 5 % too long or displacements from the mean
structure 1.5 or 2 times too large fail at least one element pair.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import yaml
from ase.io import read

from qdff.data import dataset
from qdff.validation import rdf


def demo(results: Path, temperatures) -> None:
    cfg_file = results / "config.yaml"
    cfg = yaml.safe_load(cfg_file.read_text()) if cfg_file.is_file() else {}
    ev = cfg.get("evaluation", {})
    r_max, bins = ev.get("rdf_r_max", 8.0), ev.get("rdf_bins", 80)
    eq = cfg.get("selection", {}).get("equilibration_fs", 100.0)
    frames = dataset.read_frames(results / "dataset" / "frames.extxyz")
    print(
        "| backend | T [K] | pair | frames/block (AIMD blocks, seed blocks) | seeds' mean overlap [min-max] "
        "| AIMD lower end (pairs) | seeds inside | W [Å] | AIMD pairs' W [Å] | fails |"
    )
    print("|" + "---|" * 10)
    for backend_dir in sorted((results / "mlmd").iterdir()):
        for T in temperatures:
            d = backend_dir / f"{T:g}K"
            if not (d / "summary.json").is_file():
                continue
            aimd = dataset.equilibrated(dataset.at_temperature(frames, T), eq)
            summary = json.loads((d / "summary.json").read_text())
            traj = d / "trajectory.extxyz"
            ml = read(traj, index=":", format="extxyz") if traj.stat().st_size else []
            ml = rdf.usable_mlmd_frames(ml, summary)
            r = rdf.compare(aimd, ml, r_max, bins) if len(ml) >= 3 and aimd else {"overlap": {}}
            if not r["overlap"]:
                print(f"| {backend_dir.name} | {T:g} | - | {r.get('note', 'no comparison')} |||||||")
                continue
            blocks = f"{r['frames_per_block']}{'*' if r.get('block_note') else ''} ({r['reference_blocks']}, "
            blocks += "/".join(str(s.get("blocks", 0)) for s in r["seeds"]) + ")"
            for p in r["overlap"]:
                lo, hi = r["overlap_range"][p]
                rw = r["reference_wasserstein_range_A"][p]
                print(
                    f"| {backend_dir.name} | {T:g} | {p} | {blocks} | {r['overlap'][p]:.3f} [{lo:.3f}-{hi:.3f}] "
                    f"| {r['reference_interval'][p][0]:.3f} ({r['reference_pairs']}) "
                    f"| {r['seeds_inside'][p]}/{r['seeds_scored']} | {r['wasserstein_A'][p]:.3f} "
                    f"| {rw[0]:.3f}-{rw[1]:.3f} | {'FAIL' if p in r['below_reference_interval'] else ''} |"
                )
    print("\n* uncalibrated: the AIMD holds too few blocks (block_note)")


BAD = {
    "bonds +2 %": lambda x, mean: x.mean(axis=0) + 1.02 * (x - x.mean(axis=0)),
    "bonds +5 %": lambda x, mean: x.mean(axis=0) + 1.05 * (x - x.mean(axis=0)),
    "displacements x1.5": lambda x, mean: mean + 1.5 * (x - mean),
    "displacements x2": lambda x, mean: mean + 2.0 * (x - mean),
}


def synthetic(n: int, corrs, layouts: list[str], bad: bool, quantile: float = 0.0) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_validation import _correlated_trajectory, _timed

    from qdff.structure.build import cut_cluster

    cluster = cut_cluster("CdSe", "zincblende", 40)
    everything = {
        "demo (141 AIMD frames, 3 seeds of 90)": (141, 90, 20),
        "test (1000 AIMD frames, 3 seeds of 50)": (1000, 50, 5),
    }
    layouts = {k: v for k, v in everything.items() if k.split()[0] in layouts}
    for corr in corrs:
        for name, (n_aimd, n_seed, gap) in layouts.items():
            t0, passed, inside, total, fpb = time.time(), 0, 0, 0, set()
            failed = dict.fromkeys(BAD, 0)
            for s in range(n):
                length = n_aimd + 3 * (gap + n_seed)
                traj = _timed(_correlated_trajectory(cluster, length, 0.06, corr, 1000 + s), 10.0)
                aimd = traj[:n_aimd]
                for a in aimd:
                    a.info["run"] = "T"
                ml = []
                for k in range(3):
                    start = n_aimd + gap + k * (gap + n_seed)
                    for a in traj[start : start + n_seed]:
                        b = a.copy()
                        b.info.update(time=a.info["time"], seed=k)
                        ml.append(b)
                r = rdf.compare(aimd, ml, 8.0, 80, quantile=quantile)
                passed += not r["below_reference_interval"]
                if bad:
                    mean = np.mean([a.positions for a in aimd], axis=0)
                    for label, f in BAD.items():
                        worse = [a.copy() for a in ml]
                        for a in worse:
                            a.positions = f(a.positions, mean)
                        failed[label] += bool(
                            rdf.compare(aimd, worse, 8.0, 80, quantile=quantile)["below_reference_interval"]
                        )
                inside += sum(r["seeds_inside"].values())
                total += r["seeds_scored"] * len(r["seeds_inside"])
                fpb.add((r["frames_per_block"], r["reference_blocks"], r["reference_pairs"]))
            print(
                f"corr {corr:g}, {name}: perfect model passes every pair in {passed}/{n} "
                f"({100 * passed / n:.0f} %); seeds inside {inside}/{total} ({100 * inside / total:.1f} %); "
                f"(frames/block, AIMD blocks, null pairs) {sorted(fpb)}; {time.time() - t0:.0f} s"
            )
            if bad:
                print("  bad models failing at least one pair: " + ", ".join(f"{k} {v}/{n}" for k, v in failed.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path, nargs="?")
    ap.add_argument("--temperatures", type=float, nargs="+", default=[300, 600])
    ap.add_argument("--synthetic", type=int, default=0, metavar="N")
    ap.add_argument("--corr", type=float, nargs="+", default=[0.8, 0.95])
    ap.add_argument("--layouts", nargs="+", default=["demo", "test"], choices=["demo", "test"])
    ap.add_argument("--quantile", type=float, default=0.0, help="compare()'s quantile (synthetic only)")
    ap.add_argument("--bad", action="store_true", help="also count how often bad models (BAD) fail")
    a = ap.parse_args()
    if a.results:
        demo(a.results, a.temperatures)
    if a.synthetic:
        synthetic(a.synthetic, a.corr, a.layouts, a.bad, a.quantile)


if __name__ == "__main__":
    main()
