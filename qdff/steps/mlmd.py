"""Steps of rules/mlmd.smk: ML-MD with a model at one temperature, and its pair-distance
distributions against the AIMD's."""

from __future__ import annotations

import logging
from pathlib import Path

from ase.io import read

from ..data import dataset
from ..fileio import read_json, write_json

log = logging.getLogger(__name__)


def run_mlmd(
    backend: str,
    model_dir,
    test_file,
    traj_out,
    summary_out,
    data=None,
    *,
    temperature: float,
    aimd_temperatures: list,
    mlmd: dict,
    equilibration_fs: float,
) -> dict:
    """ML-MD at ``temperature``, ``mlmd.seeds`` runs, from the first held-out frame of the AIMD
    run at that temperature (at a stress temperature, one above ``aimd_temperatures``: of the
    hottest AIMD run). ``data``: the whole AIMD data set, whose frames at that temperature
    (after ``equilibration_fs``) give the limits, bond cutoffs and the AIMD's own bond
    changes; without it, the held-out frames do."""
    from ..training.models import load_calculator
    from ..validation import mlmd as md

    stress = float(temperature) not in {float(t) for t in aimd_temperatures}
    aimd_t = max(float(t) for t in aimd_temperatures) if stress else float(temperature)
    frames = dataset.at_temperature(dataset.read_frames(test_file), aimd_t)
    if not frames:
        raise ValueError(f"{test_file}: no held-out frame at {aimd_t:g} K to start ML-MD from")
    reference = frames
    if data:
        reference = (
            dataset.equilibrated(dataset.at_temperature(dataset.read_frames(data), aimd_t), equilibration_fs) or frames
        )
    p = mlmd
    traj: list = []
    # the same criteria at every temperature: at a stress temperature the hottest AIMD's break
    # distances (a property of the bonds, not of the temperature)
    common = md.protocol(p) | dict(
        temperature=temperature,
        steps=p["steps"],
        record_every=p["record_every"],
        trajectory=traj,
        nve_steps=p["nve_steps"],
    )
    # a LAMMPS run's input and log stay beside the summary: a starting point for production runs
    work = Path(summary_out).parent / "lammps"
    calc = None if md.engine(p["engine"], backend) == "lammps" else load_calculator(model_dir)
    runs = [
        md.run_model(
            p["engine"],
            backend,
            model_dir,
            frames[0],
            reference,
            workdir=work / f"seed{p['seed'] + k}",
            calc=calc,
            seed=p["seed"] + k,
            **common,
        )
        for k in range(p["seeds"])
    ]
    summary = md.combine(runs)
    summary.update(backend=backend, stress=stress, reference_temperature=aimd_t, hardware=md.hardware())
    dataset.write_frames(traj_out, traj) if traj else Path(traj_out).write_text("")
    write_json(summary_out, summary)
    return summary


def compare_rdfs(
    backend: str,
    data,
    trajectory,
    mlmd_summary,
    out_json,
    out_png,
    *,
    temperature: float,
    evaluation: dict,
    equilibration_fs: float,
) -> dict:
    """Pair-distance distributions of the ML-MD runs against the AIMD frames at the same
    temperature (after ``equilibration_fs``): each seed against the AIMD in blocks of equal
    frame count, beside disjoint pairs of AIMD blocks (qdff.validation.rdf; ``evaluation``:
    its rdf_* settings)."""
    from ..validation import rdf

    aimd = dataset.equilibrated(dataset.at_temperature(dataset.read_frames(data), temperature), equilibration_fs)
    run = read_json(mlmd_summary)
    # ML-MD snapshots are positions only (no DFT labels): plain ASE read
    ml = read(trajectory, index=":", format="extxyz") if Path(trajectory).stat().st_size else []
    ml = rdf.usable_mlmd_frames(ml, run)
    p = evaluation
    result = None
    if len(ml) >= 3 and aimd:
        result = rdf.compare(aimd, ml, p["rdf_r_max"], p["rdf_bins"])
        if not result["overlap"]:
            result["note"] = f"too few AIMD frames for two blocks of {len(ml)} ML-MD frames"
    if result is None:
        result = {
            "overlap": {},
            "overlap_min": float("nan"),
            "n_model_frames": len(ml),
            "n_reference_frames": len(aimd),
            "note": "too few ML-MD frames for pair-distance distributions",
        }
    if result["overlap"]:
        rdf.plot(
            result,
            f"{backend}, {temperature:g} K: pair-distance distributions (unit area)\neach of "
            f"{result['seeds_scored']} ML-MD seed(s) ({result['model_frames_compared']} frames in all) against the "
            f"AIMD's last {result['frames_per_block']} frames ({result['block_fs']:.0f} fs; {result['n_reference_frames']}"
            f" AIMD frames every {result['spacing_fs']:g} fs)\nAIMD interval: {result['reference_pairs']} pair(s) of "
            f"disjoint {result['frames_per_block']}-frame AIMD blocks",
            out_png,
        )
        log.info(
            "%s at %g K: pair-distance overlap %s (AIMD self-agreement %s); %s",
            backend,
            temperature,
            ", ".join(f"{k} {v:.3f}" for k, v in result["overlap"].items()),
            ", ".join(f"{k} {v:.3f}" for k, v in result["reference_overlap"].items()),
            "; ".join(f"{k}: {v}" for k, v in result["verdict"].items()),
        )
        if result.get("block_note"):
            log.warning("%s at %g K: %s", backend, temperature, result["block_note"])
    else:
        log.warning("%s at %g K: %s", backend, temperature, result["note"])
        rdf.plot_message(f"{backend}, {temperature:g} K: {result['note']}", out_png)
    result.update(backend=backend, temperature=temperature, stable=run["stable"])
    write_json(out_json, result)
    return result
