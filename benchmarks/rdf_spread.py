"""The pair-distance comparison (qdff.validation.rdf.compare) on a finished run's results, read-only.

    python benchmarks/rdf_spread.py results/cdse-demo [--pair Cd-Se] [--temperatures 300 600]

Per backend and temperature: the ML-MD seeds' overlap (mean and range), their Wasserstein
distance, the seeds inside the AIMD interval, the AIMD interval of disjoint pairs of
contiguous blocks (lower end, highest, pairs, Wasserstein range) and, beside it, the interval
in the run's own validation/<backend>/<T>/rdf.json (whatever compare() wrote it: before issue
32, resampled 100 fs sub-blocks). Equilibration and histogram settings from the run's
config.yaml when it is there (else the defaults: 100 fs, 8 A, 80 bins).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml
from ase.io import read

from qdff.data import dataset
from qdff.validation import rdf


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path)
    ap.add_argument("--pair", default="Cd-Se")
    ap.add_argument("--temperatures", type=float, nargs="+", default=[300, 600])
    a = ap.parse_args()
    cfg_file = a.results / "config.yaml"
    cfg = yaml.safe_load(cfg_file.read_text()) if cfg_file.is_file() else {}
    ev = cfg.get("evaluation", {})
    r_max, bins = ev.get("rdf_r_max", 8.0), ev.get("rdf_bins", 80)
    eq = cfg.get("selection", {}).get("equilibration_fs", 100.0)
    frames = dataset.read_frames(a.results / "dataset" / "frames.extxyz")
    p = a.pair
    print(
        "| backend | T [K] | seeds | frames/block | overlap mean [min-max] | W [Å] mean [min-max] | seeds inside "
        "| AIMD pairs | AIMD overlap lower end-highest | AIMD W [Å] | old AIMD interval | old ML overlap |"
    )
    print("|" + "---|" * 12)
    for backend_dir in sorted((a.results / "mlmd").iterdir()):
        for T in a.temperatures:
            d = backend_dir / f"{T:g}K"
            if not (d / "summary.json").is_file():
                continue
            aimd = dataset.equilibrated(dataset.at_temperature(frames, T), eq)
            summary = json.loads((d / "summary.json").read_text())
            traj = d / "trajectory.extxyz"
            ml = read(traj, index=":", format="extxyz") if traj.stat().st_size else []
            ml = rdf.usable_mlmd_frames(ml, summary)
            old_file = a.results / "validation" / backend_dir.name / f"{T:g}K" / "rdf.json"
            old = json.loads(old_file.read_text()) if old_file.is_file() else {}
            old_iv = old.get("reference_interval", {}).get(p)
            old_txt = f"{old_iv[0]:.3f}-{old_iv[1]:.3f}" if old_iv else "-"
            old_ml = f"{old['overlap'][p]:.3f}" if p in old.get("overlap", {}) else "-"
            r = rdf.compare(aimd, ml, r_max, bins) if len(ml) >= 3 and aimd else {"overlap": {}}
            if p not in r["overlap"]:
                print(
                    f"| {backend_dir.name} | {T:g} | - | - | {r.get('note', 'no comparison')} |||||| {old_txt} | {old_ml} |"
                )
                continue
            lo, hi = r["overlap_range"][p]
            wlo, whi = r["wasserstein_range_A"][p]
            iv = r["reference_interval"][p]
            rw = r["reference_wasserstein_range_A"][p]
            print(
                f"| {backend_dir.name} | {T:g} | {r['seeds_scored']} | {r['frames_per_block']}"
                f"{'*' if r.get('block_note') else ''} | {r['overlap'][p]:.3f} [{lo:.3f}-{hi:.3f}] "
                f"| {r['wasserstein_A'][p]:.3f} [{wlo:.3f}-{whi:.3f}] | {r['seeds_inside'][p]}/{r['seeds_scored']} "
                f"| {r['reference_pairs']} | {iv[0]:.3f}-{iv[1]:.3f} | {rw[0]:.3f}-{rw[1]:.3f} | {old_txt} | {old_ml} |"
            )
    print("\n* blocks cut to what the AIMD holds two of (the longest seed is longer)")


if __name__ == "__main__":
    main()
