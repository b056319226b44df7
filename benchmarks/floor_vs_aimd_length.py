"""Does the under-coordination verdict's floor, taken from a short AIMD, fail the reference's
own longer dynamics? CP2K alone, no model.

The verdict (``mlmd.bond_criterion: undercoordinated``) calls an ML-MD run unstable when an atom
has fewer neighbours within the break distances than any atom of its element in the AIMD, for
``mlmd.bond_break_fs``. Its floor is a minimum over the AIMD's frames, so it depends on how long
the AIMD ran: a short one may never show a rare, real excursion that a model's long run then
shows and is failed for. This script measures that on one long CP2K trajectory: for each prefix
of ``--lengths`` ps (after ``selection.equilibration_fs``), floor and break distances come from
that prefix as the recorder takes them (qdff.validation.stability, at most
BOND_REFERENCE_FRAMES frames), and the same tail of the run (everything after the longest
prefix) is judged by each: episodes below the floor however short, as a rate with its exact
Poisson interval, and stretches of at least ``bond_break_fs`` (what the verdict fails). A floor
that the reference's own tail goes below is too strict for runs of that length.

The trajectory: the canonical data set of a results folder whose AIMD ran long (the data set's
frames at ``--temperature``, each AIMD run, including the independent ``aimd.test_seed`` run,
judged on its own, its prefix from itself), e.g. the demo's Cd16Se13Cl6 with 15 ps per temperature
(a copy of config/demo.yaml with ``name: cdse-demo-15ps`` and ``aimd.steps: 15000``, about 85 min on
2 cores; docs/benchmarks.md has the figures):

    .venv/bin/snakemake --profile profiles/local --configfile demo-15ps.yaml --cores 2 \\
        -- results/cdse-demo-15ps/dataset/frames.extxyz
    .venv/bin/python benchmarks/floor_vs_aimd_length.py results/cdse-demo-15ps --config config/demo.yaml \\
        --temperature 500 --lengths 0.5,1,2,5
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qdff import config as qconfig  # noqa: E402
from qdff.data import dataset  # noqa: E402
from qdff.validation import mlmd, stability  # noqa: E402


def judge_tail(prefix: list, tail: list, cutoff_factor: float, break_fs: float) -> dict:
    """The verdict's floor from ``prefix`` (AIMD frames), run over ``tail`` (frames with
    ``info["time"]`` in fs, in order): episodes below it, time judged, stretches of at least
    ``break_fs``."""
    breaks = stability.break_distances(prefix, mlmd.bond_cutoffs(prefix, cutoff_factor))
    check = stability.Undercoordinated(prefix[0].get_chemical_symbols(), breaks, prefix, break_fs)
    for a in tail:
        check(a.positions, float(a.info["time"]))
    stretches = stability.undercoordinated_stretches(tail, prefix, breaks, break_fs)
    return {
        "floor": check.min_cn,
        "breaks": breaks,
        "episodes": check.episodes,
        "observed_fs": check.observed_fs,
        "stretches": stretches,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="results/<system> whose dataset/frames.extxyz holds the long AIMD")
    ap.add_argument("--config", type=Path, required=True, help="its config (mlmd.bond_break_fs, the cutoffs)")
    ap.add_argument("--temperature", type=float, required=True)
    ap.add_argument("--lengths", default="0.5,1,2,5", help="ps of AIMD (after equilibration) the floors come from")
    a = ap.parse_args(argv)
    cfg = qconfig.load(a.config)
    p = cfg["mlmd"]
    lengths = sorted(float(x) for x in a.lengths.split(","))
    frames = dataset.equilibrated(
        dataset.at_temperature(dataset.read_frames(a.run / "dataset/frames.extxyz"), a.temperature),
        cfg["selection"]["equilibration_fs"],
    )
    if not frames:
        raise SystemExit(f"{a.run}/dataset/frames.extxyz: no frame at {a.temperature:g} K after equilibration")
    runs: dict[str, list] = {}
    for f in frames:
        runs.setdefault(str(f.info.get("run", "")), []).append(f)
    print(
        f"{a.run}: {a.temperature:g} K, verdict's floor from the first L ps of each AIMD run (after "
        f"{cfg['selection']['equilibration_fs']:g} fs), judged on the run after {lengths[-1]:g} ps; "
        f"a failure is {p['bond_break_fs']:g} fs below the floor"
    )
    totals = {L: [0, 0.0, 0] for L in lengths}
    for name, run in runs.items():
        run.sort(key=lambda f: float(f.info["time"]))
        t0 = float(run[0].info["time"])
        tail = [f for f in run if float(f.info["time"]) - t0 >= lengths[-1] * 1000.0]
        dt = np.diff([float(f.info["time"]) for f in run[:2]])
        print(
            f"\nrun {name or '(main)'}: {len(run)} frames, {(float(run[-1].info['time']) - t0) / 1000:.2f} ps, "
            f"a frame every {dt[0] if len(dt) else 0:g} fs; judged: {len(tail)} frames"
        )
        if len(tail) < 2:
            print("  too short for the longest prefix: skipped")
            continue
        print(f"  {'L ps':>5s} {'floor':28s} {'episodes':>8s} {'ps':>6s} {'per ps (95 % CI)':>18s} {'failures':>8s}")
        for L in lengths:
            prefix = [f for f in run if float(f.info["time"]) - t0 < L * 1000.0]
            r = judge_tail(prefix, tail, p["bond_cutoff_factor"], p["bond_break_fs"])
            ps = r["observed_fs"] / 1000.0
            lo, hi = stability.episode_rate_interval(r["episodes"], ps)
            floor = ", ".join(f"{el} {n}" for el, n in sorted(r["floor"].items()))
            print(
                f"  {L:5g} {floor:28s} {r['episodes']:8d} {ps:6.2f} {lo:8.2f}-{hi:<8.2f} {len(r['stretches']):8d}"
                + "".join(
                    f"\n        {s['element']} {s['atom']} {s['neighbours_min']} neighbour(s) "
                    f"{s['from_fs'] / 1000:.2f}-{s['to_fs'] / 1000:.2f} ps" + (" (ongoing)" if s["ongoing"] else "")
                    for s in r["stretches"][:5]
                )
            )
            tot = totals[L]
            tot[0] += r["episodes"]
            tot[1] += ps
            tot[2] += len(r["stretches"])
    print("\nall runs:")
    for L, (k, ps, fails) in totals.items():
        if ps > 0:
            lo, hi = stability.episode_rate_interval(k, ps)
            print(f"  floor from {L:g} ps: {k} episodes in {ps:.2f} ps ({lo:.2f}-{hi:.2f} per ps), {fails} failures")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
