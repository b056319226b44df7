"""Active learning against training on the full AIMD and against a matched-budget passive
baseline, on the same independent test AIMD.

    python benchmarks/active_learning.py results/cdse-zb-small results/cdse-zb-al results/cdse-zb-passive \
        [--temperatures 300 500 750] [--mlmd-steps 1000] [--seeds 3] [--out benchmarks/out/active_learning.json]

Peer: the full AIMD (config/cdse-zb-small.yaml: 3000 GFN1-xTB steps at 300 and 500 K of
Cd16Se13Cl6, 400 training frames). Ours: config/cdse-zb-al.yaml (500 AIMD steps per
temperature, then the loop). Baseline: config/cdse-zb-passive.yaml (the loop's CP2K budget
spent as plain AIMD and FPS). All DeePMD-kit with the same settings per frame.

Prints and writes, per approach:
- CP2K force evaluations, counted from the run's own files (every AIMD step of the training
  runs and every frame sent to CP2K for a label; the independent test runs are not training
  data and are not counted), and their share of the full AIMD's;
- the force RMSE of each of its models (training.seeds, or the final committee's members 0 to
  seeds-1) on the peer's independent test AIMD (aimd.test_seed: other initial velocities and
  thermostat noise) per temperature and overall, with the 95 % interval of model 0 from
  contiguous 60 fs blocks (qdff.training.errors.force_rmse_interval), and mean +- std over models;
- ML-MD of model 0 at every temperature, ``--seeds`` seeds each, from the same test frame with
  the same seeds for every approach, judged by the pipeline's own verdict (qdff.validation.mlmd,
  the peer config's mlmd block: CSVR, undercoordination held 200 fs, ...), with break distances
  from the peer's test AIMD nearest in temperature;
- the loop's iterations (calibration, trust levels, predicted error, stop reason).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qdff import config as qconfig  # noqa: E402
from qdff.active_learning import loop  # noqa: E402
from qdff.data import dataset  # noqa: E402
from qdff.training import errors  # noqa: E402
from qdff.training.models import load_calculator  # noqa: E402
from qdff.validation import evaluate, mlmd  # noqa: E402


def cp2k_evaluations(results: Path) -> dict:
    """Training-data CP2K evaluations of one results folder, from its own files."""
    # counted as the loop's own budget counts them (qdff.active_learning.loop.cp2k_evaluations)
    aimd_files = sorted(results.glob("aimd/*K/run.json"))
    label_files = sorted(results.glob("al/*/labels/labels.json"))
    aimd, labels = loop.cp2k_evaluations(aimd_files, []), loop.cp2k_evaluations([], label_files)
    return {"aimd_steps": aimd, "labels": labels, "total": aimd + labels}


def model_dirs(results: Path, backend: str) -> list[Path]:
    base = results / "models" / backend
    reps = sorted((base / "replicas").glob("*/model.json"), key=lambda p: int(p.parent.name))
    return [base] + [p.parent for p in reps]


def errors_of(calc, test) -> dict:
    e, f, _ = evaluate.predict(calc, test)
    out = {"all": evaluate.error_metrics(test, e, f)["force_rmse_meV_per_A"]}
    for t in sorted({a.info["temperature"] for a in test}):
        idx = [i for i, a in enumerate(test) if a.info["temperature"] == t]
        sub = [test[i] for i in idx]
        out[f"{t:g}"] = evaluate.error_metrics(sub, [e[i] for i in idx], [f[i] for i in idx])["force_rmse_meV_per_A"]
    iv = errors.force_rmse_interval(test, f)
    out["interval"] = iv.get("rmse_interval_force_meV_per_A")
    return out


def stability(calc, test, temperatures, p: dict, seeds: int) -> dict:
    aimd_t = sorted({a.info["temperature"] for a in test})
    out = {}
    for T in temperatures:
        nearest = min(aimd_t, key=lambda t: abs(t - T))
        ref = [a for a in test if a.info["temperature"] == nearest]
        verdicts = []
        for k in range(seeds):
            s = mlmd.run(calc, ref[0], ref, seed=p["seed"] + k, **mlmd.validation_protocol(p, T))
            verdicts.append("stable" if s["stable"] else s["reason"])
        out[f"{T:g}"] = {"stable": sum(v == "stable" for v in verdicts), "runs": seeds, "reasons": verdicts}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("full", type=Path, help="results/<full AIMD name>, with aimd.test_seed")
    ap.add_argument("al", type=Path, help="results/<active-learning name>")
    ap.add_argument("passive", type=Path, nargs="?", help="results/<matched-budget passive name>")
    ap.add_argument("--config", type=Path, default=Path("config/cdse-zb-small.yaml"), help="the peer's config (mlmd)")
    ap.add_argument("--backend", default="deepmd")
    ap.add_argument("--temperatures", type=float, nargs="+", default=[300.0, 500.0, 750.0])
    ap.add_argument("--mlmd-steps", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--max-frames", type=int, default=1000, help="test frames, evenly spread in time")
    ap.add_argument(
        "--only",
        nargs="+",
        help="judge only these approaches (full, al, passive); the others' results are kept from --out",
    )
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/active_learning.json"))
    a = ap.parse_args()
    cfg = qconfig.load(a.config)
    p = dict(cfg["mlmd"], steps=a.mlmd_steps)
    if p["thermostat_timecon_fs"] is None:
        p["thermostat_timecon_fs"] = cfg["aimd"]["thermostat_timecon_fs"]
    test = dataset.evenly_spaced(dataset.read_frames(a.full / "split/test.extxyz"), a.max_frames)
    runs = sorted({x.info["run"] for x in test})
    print(f"test set: {len(test)} frames of {a.full / 'split/test.extxyz'}, runs {runs} (independent AIMD)")
    approaches = {"full AIMD": a.full, "active learning": a.al}
    if a.passive:
        approaches["passive, matched budget"] = a.passive
    short = dict(zip(("full", "al", "passive"), approaches))
    report: dict = {"test_frames": len(test), "test_runs": runs, "mlmd": p, "approaches": {}}
    if a.only and a.out.is_file():
        report["approaches"] = json.loads(a.out.read_text()).get("approaches", {})
    full_evals = cp2k_evaluations(a.full)["total"]
    for name, res in approaches.items():
        if a.only and name not in [short[k] for k in a.only]:
            continue
        t0 = time.time()
        ev = cp2k_evaluations(res)
        dirs = model_dirs(res, a.backend)
        errs = [errors_of(load_calculator(d), test) for d in dirs]
        calc0 = load_calculator(dirs[0])
        stab = stability(calc0, test, a.temperatures, p, a.seeds)
        allv = np.array([e["all"] for e in errs])
        row = {
            "cp2k_evaluations": ev,
            "share_of_full": ev["total"] / full_evals,
            "models": [str(d) for d in dirs],
            "force_rmse": errs,
            "force_rmse_mean": float(allv.mean()),
            "force_rmse_std": float(allv.std(ddof=1)) if len(allv) > 1 else float("nan"),
            "stability": stab,
            "wall_s": round(time.time() - t0, 1),
        }
        report["approaches"][name] = row
        by_t = "; ".join(f"{t} K {np.mean([e[t] for e in errs]):.1f}" for t in errs[0] if t not in ("all", "interval"))
        iv = errs[0]["interval"]
        print(
            f"{name}: {ev['total']} CP2K evaluations ({ev['aimd_steps']} AIMD steps + {ev['labels']} labels; "
            f"{100 * row['share_of_full']:.1f} % of the full AIMD's); force RMSE {row['force_rmse_mean']:.1f} "
            f"+- {row['force_rmse_std']:.1f} meV/A over {len(errs)} models (model 0: {errs[0]['all']:.1f}, 95 % "
            f"interval {iv[0]:.1f}-{iv[1]:.1f}); by temperature {by_t}"
            if iv
            else f"{name}: {ev['total']} CP2K evaluations; force RMSE {row['force_rmse_mean']:.1f}"
        )
        for T, s in stab.items():
            print(f"  ML-MD {T} K ({a.mlmd_steps} steps + {p['nve_steps']} NVE): stable in {s['stable']}/{s['runs']}")
    zero = evaluate.error_metrics(test, [0.0] * len(test), [np.zeros((len(x), 3)) for x in test])
    report["zero_force_rmse_meV_per_A"] = zero["baseline_zero_force_rmse_meV_per_A"]
    print(f"zero-force RMSE of the test set: {report['zero_force_rmse_meV_per_A']:.1f} meV/A")
    summary = a.al / "al/summary.json"
    if summary.is_file():
        s = json.loads(summary.read_text())
        report["loop"] = s
        print(f"active learning: {len(s['iterations'])} iterations, ended by: {s.get('stop_reason')}")
        for r in s["iterations"]:
            c = r.get("calibration") or {}
            lc = r.get("label_check") or {}
            print(
                f"  iteration {r['iteration']}: {r['train_frames']} training frames, {r['labels_requested']} "
                f"labels asked; T {r.get('temperatures')}; scale {c.get('scale', float('nan')):.2f} "
                f"(held-out coverage {100 * c.get('coverage_holdout', float('nan')):.0f} %, on its labels "
                f"{100 * lc.get('coverage', float('nan')):.0f} % of {lc.get('frames', 0)}); trust "
                f"{r.get('trust_lo', float('nan')):.3f}/{r.get('trust_hi', float('nan')):.3f}; predicted "
                f"{r.get('predicted_force_rmse_meV_per_A', float('nan')):.1f} vs target "
                f"{r.get('target_force_rmse_meV_per_A', float('nan')):.1f}, held-out "
                f"{r['force_rmse_meV_per_A']:.1f} meV/A; stable {r['all_stable']}; ends: {r.get('stop_reason')}"
            )
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=2, default=float) + "\n")
    print(f"written {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
