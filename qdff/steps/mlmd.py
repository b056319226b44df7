"""Steps of rules/mlmd.smk: ML-MD with a model at one temperature, and its pair-distance
distributions against the AIMD's."""

from __future__ import annotations

import logging
from pathlib import Path

from ase.io import read

from ..data import dataset
from ..fileio import read_json, write_json

log = logging.getLogger(__name__)


def start_and_reference(test_file, data, temperature, aimd_temperatures, equilibration_fs):
    """The held-out frames to start from, the AIMD frames that judge the run, whether
    ``temperature`` is a stress temperature and the AIMD temperature both come from."""
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
    return frames, reference, stress, aimd_t


def structural_fidelity(summary: dict, traj: list, reference: list, bond_break_fs: float) -> dict:
    """Bond-change rates, coordination and bond lengths of the ML-MD seeds (after their first
    10 %, as the pair-distance distributions) against the AIMD's at the same temperature with a
    block-bootstrap interval (qdff.validation.fidelity), under the recorder's bond cutoffs; the
    independent AIMD run (aimd.test_seed), where ``reference`` holds it, graded beside them as
    if it were a model. Graded, never a verdict: the stability verdict is untouched."""
    from ..config import test_run_label
    from ..validation import fidelity, rdf

    ml = rdf.usable_mlmd_frames(traj, summary)
    if not summary.get("bond_cutoffs") or len(ml) < 2:
        return {"note": "no bond cutoffs or too few ML-MD frames"}
    label = test_run_label(summary["reference_temperature"])
    aimd = [a for a in reference if a.info.get("run") != label]
    independent = [a for a in reference if a.info.get("run") == label]
    # a stress temperature has no AIMD of its own: values without a reference (compare's note)
    return fidelity.compare(
        ml,
        summary["bond_cutoffs"],
        aimd=None if summary["stress"] else aimd,
        independent=None if summary["stress"] else independent or None,
        persistence_fs=bond_break_fs,
    )


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

    frames, reference, stress, aimd_t = start_and_reference(
        test_file, data, temperature, aimd_temperatures, equilibration_fs
    )
    p = mlmd
    traj: list = []
    # the same criteria at every temperature: at a stress temperature the hottest AIMD's break
    # distances (a property of the bonds, not of the temperature)
    common = md.validation_protocol(p, temperature) | {"trajectory": traj}
    # a LAMMPS run's input and log stay beside the summary: a starting point for production runs
    work = Path(summary_out).parent / "lammps"
    # decided (and any fallback logged) once for all seeds
    engine = md.engine(p["engine"], backend)
    calc = None if engine == "lammps" else load_calculator(model_dir)
    runs = [
        md.run_model(
            engine,
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
    summary["structural_fidelity"] = structural_fidelity(summary, traj, reference, p["bond_break_fs"])
    dataset.write_frames(traj_out, traj) if traj else Path(traj_out).write_text("")
    write_json(summary_out, summary)
    return summary


def run_reference_md(
    test_file,
    traj_out,
    summary_out,
    data=None,
    *,
    temperature: float,
    aimd_temperatures: list,
    mlmd: dict,
    equilibration_fs: float,
    structure: dict,
    cp2k: dict,
    launch,
    workdir,
) -> dict:
    """The reference as a model (the null test): CP2K's own MD at the data's level of theory
    (``cp2k``: preset, overrides; ``launch``: how CP2K runs) under exactly :func:`run_mlmd`'s
    protocol, frames and verdicts (qdff.validation.reference_md). Each seed's CP2K files and
    summary stay in ``workdir``/seed<S>; a seed finished before a kill is not run again."""
    from ..cp2k import run as cp2k_run
    from ..validation import mlmd as md
    from ..validation import reference_md

    frames, reference, stress, aimd_t = start_and_reference(
        test_file, data, temperature, aimd_temperatures, equilibration_fs
    )
    settings = cp2k_run.settings(structure, cp2k, launch)
    cp2k_run.check_cp2k_available(settings)
    p = mlmd
    traj: list = []
    common = md.validation_protocol(p, temperature)  # the trajectory goes to each seed apart
    runs = []
    for k in range(p["seeds"]):
        seed = p["seed"] + k
        log.info(
            "reference (CP2K %s) MD at %g K, seed %d (%d of %d)", cp2k["preset"], temperature, seed, k + 1, p["seeds"]
        )
        runs.append(
            reference_md.run_seed(
                frames[0],
                reference,
                cp2k=settings["cp2k"],
                structure=structure,
                workdir=Path(workdir) / f"seed{seed}",
                trajectory=traj,
                seed=seed,
                **common,
            )
        )
    summary = md.combine(runs)
    summary.update(
        backend="reference",
        stress=stress,
        reference_temperature=aimd_t,
        # CP2K's threads, not torch's: the speed columns count these cores
        hardware={**md.hardware(), "cp2k_threads": settings["cp2k"]["threads"], "device": "cpu"},
        level_of_theory=reference_md.level_of_theory(cp2k["preset"]),
    )
    summary["structural_fidelity"] = structural_fidelity(summary, traj, reference, p["bond_break_fs"])
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
    frame count, beside pairs of non-adjacent AIMD blocks (qdff.validation.rdf; ``evaluation``:
    its rdf_* settings)."""
    from ..config import test_run_label
    from ..validation import rdf

    at_t = dataset.equilibrated(dataset.at_temperature(dataset.read_frames(data), temperature), equilibration_fs)
    # the independent AIMD run at this temperature (aimd.test_seed), where there is one: scored
    # as if it were a model, what a perfect model scores (a null test at any level of theory)
    independent = [a for a in at_t if a.info.get("run") == test_run_label(temperature)]
    aimd = [a for a in at_t if a.info.get("run") != test_run_label(temperature)]
    run = read_json(mlmd_summary)
    # ML-MD snapshots are positions only (no DFT labels): plain ASE read
    ml = read(trajectory, index=":", format="extxyz") if Path(trajectory).stat().st_size else []
    ml = rdf.usable_mlmd_frames(ml, run)
    p = evaluation
    result = None
    if len(ml) >= 3 and aimd:
        result = rdf.compare(aimd, ml, p["rdf_r_max"], p["rdf_bins"], independent=independent or None)
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
            f"{result['seeds_scored']} ML-MD seed(s) ({result['model_blocks']} blocks) in {result['frames_per_block']}"
            f"-frame blocks ({result['block_fs']:.0f} fs) against each of {result['reference_blocks']} AIMD blocks "
            f"({result['n_reference_frames']} AIMD frames every {result['spacing_fs']:g} fs)\nAIMD null: "
            f"{result['reference_pairs']} pair(s) of non-adjacent AIMD blocks",
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
