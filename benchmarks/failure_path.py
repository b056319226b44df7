"""An ML-MD failure labelled by the reference method: the model's error, or an event the AIMD
was too short to show?

    python benchmarks/failure_path.py results/<system> --config config/<system>.yaml \
        [--backend deepmd] [--temperature 300] [--seed N] [--span 320] \
        [--committee results/<system>/al/iterK/committee] [--out DIR] \
        [--model DIR --mlmd DIR] [--every K]

Takes a finished run's ML-MD (``mlmd/<backend>/<T>K``: its summary and recorded frames). For one
unstable seed (``--seed``; default the first unstable one) it picks the recorded frames of the
``--span`` fs before the failure, finds the atom the verdict counts as under-coordinated at
the failure and the neighbour it lost (qdff.validation.failure_path), labels the frames with
CP2K at the config's level of theory (qdff.active_learning.label: resumable, in ``--out``) and
compares along the path: energies relative to the first frame, the force on the lost
neighbour along the bond (negative pulls it back), force errors. With ``--committee``, also
each frame's committee deviation (max_devi_f) and the committee's force spread on the lost
neighbour, against the deployed model's error there: does the committee see this error?

``--model`` and ``--mlmd`` take another model and its ML-MD folder (``summary.json``,
``trajectory.extxyz``, as qdff.steps.mlmd.run_mlmd writes them), for a model trained outside
the run; ``--every K`` labels every K-th recorded frame (the last one always).

Writes ``failure_path.json`` in ``--out`` (default benchmarks/out/failure_path/<system>-<T>K-s<seed>).
A failure by collapse or blow-up has no lost neighbour: the script says so and stops.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ase.io import read  # noqa: E402

from qdff import config as qconfig  # noqa: E402
from qdff.active_learning.deviation import committee_predictions, model_deviation  # noqa: E402
from qdff.active_learning.label import label_frames  # noqa: E402
from qdff.fileio import read_json, write_json  # noqa: E402
from qdff.training.models import calculator_from_meta  # noqa: E402
from qdff.validation import failure_path  # noqa: E402


def _members(committee: Path) -> list:
    dirs = sorted(p for p in committee.glob("m*") if (p / "model.json").is_file())
    if len(dirs) < 2:
        raise SystemExit(f"{committee}: fewer than 2 committee members with a model.json")
    return [calculator_from_meta(d, read_json(d / "model.json")) for d in dirs]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="results/<system>")
    ap.add_argument("--config", type=Path, required=True)
    ap.add_argument("--backend", default="deepmd")
    ap.add_argument("--temperature", type=int, default=300)
    ap.add_argument("--seed", type=int, default=None, help="an unstable ML-MD seed (default: the first)")
    ap.add_argument("--span", type=float, default=320.0, help="fs before the failure to label")
    ap.add_argument("--committee", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument(
        "--model",
        type=Path,
        default=None,
        help="the model whose ML-MD failed (default: results/<system>/models/<backend>)",
    )
    ap.add_argument(
        "--mlmd",
        type=Path,
        default=None,
        help="that model's ML-MD folder, summary.json and trajectory.extxyz "
        "(default: results/<system>/mlmd/<backend>/<T>K)",
    )
    ap.add_argument("--every", type=int, default=1, help="label every this many recorded frames, the last one kept")
    a = ap.parse_args(argv)

    cfg = qconfig.load(a.config)
    mdir = a.mlmd or a.run / "mlmd" / a.backend / f"{a.temperature}K"
    summary = read_json(mdir / "summary.json")
    runs = {int(r["seed"]): r for r in summary["runs"]}
    failed = [s for s, r in runs.items() if not r["stable"]]
    if not failed:
        raise SystemExit(f"{mdir}: every seed is stable; nothing to label")
    seed = a.seed if a.seed is not None else failed[0]
    if seed not in failed:
        raise SystemExit(f"{mdir}: seed {seed} is not among the unstable seeds {failed}")
    run = runs[seed]
    if run.get("bond_criterion") != "undercoordinated":
        raise SystemExit(f"{mdir}: seed {seed} was judged by {run.get('bond_criterion')!r}, not 'undercoordinated'")
    print(f"seed {seed}: {run['reason']}")
    frames = failure_path.path_frames(read(mdir / "trajectory.extxyz", ":"), seed, run["failure_time_fs"], a.span)
    frames = frames[::-1][:: max(a.every, 1)][::-1]  # counted back from the frame the verdict fired on
    try:
        atom, neighbour = failure_path.lost_neighbour(
            frames, run["bond_break_distances"], run["aimd_least_coordination"]
        )
    except ValueError as err:
        raise SystemExit(f"seed {seed}: {err} (a collapse or blow-up, not a lost neighbour)") from None
    symbols = frames[0].get_chemical_symbols()
    print(
        f"{symbols[atom]} {atom} lost {symbols[neighbour]} {neighbour}: {len(frames)} frames, "
        f"{frames[0].info['time']:.0f}-{frames[-1].info['time']:.0f} fs"
    )

    out = a.out or Path("benchmarks/out/failure_path") / f"{a.run.name}-{a.temperature}K-s{seed}"
    labelled = out / "labelled.extxyz"
    if not labelled.is_file():
        bare = [f.copy() for f in frames]
        for f in bare:
            f.calc = None
        label_frames(
            bare, cfg, out / "cp2k", labelled, out / "labels.json", temperatures=[float(a.temperature)] * len(bare)
        )
    ref = read(labelled, ":")
    if len(ref) != len(frames):
        raise SystemExit(f"{labelled}: {len(ref)} of {len(frames)} frames labelled (SCF failures); compare needs all")

    model_dir = a.model or a.run / "models" / a.backend
    model = calculator_from_meta(model_dir, read_json(model_dir / "model.json"))
    energies, forces = committee_predictions([model], ref)
    result = failure_path.compare(ref, forces[0], energies[0], atom, neighbour)
    result.update(
        system=a.run.name,
        temperature_K=a.temperature,
        seed=seed,
        reason=run["reason"],
        model_dir=str(model_dir),
        level_of_theory=read_json(out / "labels.json").get("level_of_theory"),
    )
    if a.committee is not None:
        ce, cf = committee_predictions(_members(a.committee), ref)
        devi = model_deviation(ce, cf, len(ref[0]))
        spread = devi["spread"]  # (frames, atoms)
        for row, d, s in zip(result["rows"], devi["max_devi_f"], spread[:, neighbour], strict=True):
            row["max_devi_f_eV_per_A"] = float(d)
            row["committee_spread_neighbour_eV_per_A"] = float(s)
        result["committee"] = str(a.committee)
        result["committee_spread_neighbour_mean_eV_per_A"] = float(spread[:, neighbour].mean())

    print(" time  r [A]  dE ref  dE model [eV]  F_r ref  F_r model [eV/A]  F RMSE  |dF| nbr [meV/A]  devi  spread nbr")
    for x in result["rows"]:
        extra = ""
        if "max_devi_f_eV_per_A" in x:
            extra = f"  {x['max_devi_f_eV_per_A']:.3f}  {x['committee_spread_neighbour_eV_per_A']:.3f}"
        print(
            f"{x['time_fs']:5.0f} {x['distance_A']:6.2f} {x['energy_reference_eV']:7.3f} {x['energy_model_eV']:7.3f}"
            f" {x['radial_force_reference_eV_per_A']:8.3f} {x['radial_force_model_eV_per_A']:8.3f}"
            f" {x['force_rmse_meV_per_A']:7.0f} {x['neighbour_force_error_meV_per_A']:7.0f}{extra}"
        )
    print(
        f"reference path energy above the model's: at most {result['energy_excess_max_eV']:.2f} eV "
        f"(at {result['energy_excess_max_time_fs']:.0f} fs); mean radial force on {symbols[neighbour]} {neighbour}: "
        f"reference {result['radial_force_reference_mean_eV_per_A']:+.3f}, model {result['radial_force_model_mean_eV_per_A']:+.3f} eV/A"
    )
    write_json(out / "failure_path.json", result)
    print(f"wrote {out / 'failure_path.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
