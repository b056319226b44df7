"""Active learning against training on the full AIMD, on the same held-out frames.

    python benchmarks/active_learning.py results/cdse-demo-full results/cdse-al [--mlmd-steps 2000]

Peer: the full comparison's DeePMD model (config/demo-full.yaml: 4000 GFN1-xTB AIMD steps at
300 and 600 K, 300 FPS-selected training frames; the demo's settings until issue 20 cut it). Ours: the final model of config/cdse-al.yaml (600 AIMD
steps at 300 K, then active learning). Both are DeePMD-kit with the same hyperparameters.
Prints, per temperature of the demo's held-out frames, the force and energy RMSE of both; the
CP2K force evaluations each needed (every AIMD step and every labelled frame counts one) and
their ratio; and Langevin ML-MD stability of both at the stress temperature (900 K) from the
same start, with the same seed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qdff.data import dataset  # noqa: E402
from qdff.training.models import load_calculator  # noqa: E402
from qdff.validation import evaluate, mlmd  # noqa: E402


def cp2k_evaluations(results: Path) -> int:
    aimd = sum(json.loads(p.read_text())["steps_done"] for p in sorted(results.glob("aimd/*K/run.json")))
    labels = sum(json.loads(p.read_text())["frames"] for p in sorted(results.glob("al/iter*/labels/labels.json")))
    return aimd + labels


def per_temperature(calc, frames) -> dict:
    out = {}
    for t in sorted({a.info["temperature"] for a in frames}):
        sub = [a for a in frames if a.info["temperature"] == t]
        e, f, _ = evaluate.predict(calc, sub)
        m = evaluate.error_metrics(sub, e, f)
        out[f"{t:g} K"] = (
            m["force_rmse_meV_per_A"],
            m["energy_rmse_meV_per_atom"],
            m["baseline_zero_force_rmse_meV_per_A"],
            len(sub),
        )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("peer", type=Path, help="results/<demo name> (full AIMD)")
    ap.add_argument("ours", type=Path, help="results/<active-learning name>")
    ap.add_argument("--backend", default="deepmd")
    ap.add_argument("--stress-temperature", type=float, default=900.0)
    ap.add_argument("--mlmd-steps", type=int, default=2000)
    a = ap.parse_args()
    test = dataset.read_frames(a.peer / "split/test.extxyz")
    models = {"full AIMD": a.peer / "models" / a.backend, "active learning": a.ours / "models" / a.backend}
    calcs = {k: load_calculator(v) for k, v in models.items()}
    evals = {"full AIMD": cp2k_evaluations(a.peer), "active learning": cp2k_evaluations(a.ours)}
    print(f"held-out frames: {len(test)} of {a.peer / 'split/test.extxyz'} (final time block of each demo AIMD run)")
    rows = {k: per_temperature(c, test) for k, c in calcs.items()}
    print(f"{'':18s} {'T':>7s} {'F RMSE meV/A':>13s} {'E RMSE meV/at':>14s} {'zero-F base':>12s} {'frames':>7s}")
    for k, by_t in rows.items():
        for t, (f, e, b, n) in by_t.items():
            print(f"{k:18s} {t:>7s} {f:13.1f} {e:14.2f} {b:12.1f} {n:7d}")
    for t in rows["full AIMD"]:
        r = rows["active learning"][t][0] / rows["full AIMD"][t][0]
        print(f"force RMSE ratio active learning / full AIMD at {t}: {r:.2f}")
    print(
        f"CP2K force evaluations: full AIMD {evals['full AIMD']}, active learning {evals['active learning']}, "
        f"ratio {evals['active learning'] / evals['full AIMD']:.3f}"
    )
    start = [f for f in test if f.info["temperature"] == max(f.info["temperature"] for f in test)][0]
    for k, c in calcs.items():
        s = mlmd.run(
            c,
            start,
            test,
            temperature=a.stress_temperature,
            steps=a.mlmd_steps,
            timestep_fs=1.0,
            thermostat="langevin",
            thermostat_timecon_fs=100.0,
            bond_factor=1.5,
            seed=3,
        )
        verdict = "stable" if s["stable"] else f"UNSTABLE ({s['reason']})"
        print(f"ML-MD {a.stress_temperature:g} K, {a.mlmd_steps} steps, {k}: {verdict}")
    summary = a.ours / "al/summary.json"
    if summary.is_file():
        s = json.loads(summary.read_text())
        print(f"active learning: {len(s['iterations'])} iterations, converged: {s['converged']}")
        for r in s["iterations"]:
            print(
                f"  iteration {r['iteration']}: {r['train_frames']} training frames, {r['labels_added']} labels added, "
                f"accurate {100 * r['accurate_fraction']:.1f}%, candidate {100 * r['candidate_fraction']:.1f}%, "
                f"failed {100 * r['failed_fraction']:.1f}%, stable: {r['all_stable']}"
            )
    return 0


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    sys.exit(main())
