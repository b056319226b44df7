"""The pipeline's stages as functions of files: what each Snakemake rule (and each
``qdff`` subcommand) calls. Every function reads its inputs, writes its outputs
atomically and logs what it did."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from ase.io import read, write

from . import config as qconfig
from . import cp2k_input, cp2k_output, cp2k_run, dataset, selection, structures
from .fileio import atomic_path, read_json, write_json

log = logging.getLogger(__name__)


def _atoms_with_box(path):
    atoms = read(path, format="extxyz")
    atoms.set_pbc(False)
    return atoms


def build_structure(cfg: dict, out, summary_out=None) -> dict:
    """The structure in its box to ``out``; its build summary (composition, diameter, net
    formal charge, surface atoms, passivants) to ``summary_out`` (JSON) if given."""
    summary: dict = {}
    atoms = structures.build_structure(cfg, summary)
    with atomic_path(out, suffix=".extxyz") as tmp:
        write(tmp, atoms, format="extxyz")
    if summary_out:
        write_json(summary_out, summary)
    log.info("wrote %s (%s, %d atoms)", out, atoms.get_chemical_formula(), len(atoms))
    return summary


def relax_structure(cfg: dict, structure, workdir, out) -> None:
    atoms = _atoms_with_box(structure)
    if not cfg["cp2k"]["relax"]:
        log.info("cp2k.relax is false: using the structure as it is")
        with atomic_path(out, suffix=".extxyz") as tmp:
            write(tmp, atoms, format="extxyz")
        return
    cp2k_run.relax(atoms, cfg, workdir, out)


def write_cp2k_input(cfg: dict, structure, temperature: float, out) -> None:
    """The MD input of one temperature (what ``run_aimd`` runs when starting afresh)."""
    atoms = _atoms_with_box(structure)
    cp2k_run.preflight(atoms, cfg)
    s, c, md = cfg["structure"], cfg["cp2k"], cfg["aimd"]
    tree = cp2k_input.build_input(
        atoms, preset=c["preset"], run_type="MD", project=cp2k_run.MD_PROJECT,
        charge=s["charge"], multiplicity=s["multiplicity"], temperature=temperature,
        steps=md["steps"], timestep_fs=md["timestep_fs"], print_every=md["print_every"],
        thermostat_timecon_fs=md["thermostat_timecon_fs"], seed=md["seed"], overrides=c["overrides"],
    )
    cp2k_input.write_input(out, tree)


def run_aimd(cfg: dict, structure, temperature: float, workdir, summary, seed=None) -> dict:
    """NVT AIMD at ``temperature``; ``seed`` replaces aimd.seed (the independent test run of
    aimd.test_seed: other initial velocities and thermostat noise, all else the same)."""
    if seed is not None:
        cfg = {**cfg, "aimd": {**cfg["aimd"], "seed": int(seed)}}
    return cp2k_run.run_md(_atoms_with_box(structure), cfg, temperature, workdir, summary)


def convert_trajectories(run_dirs, out, temperatures=None, summary=None, runs=None) -> list[dict]:
    """``runs``: the run label of each directory (default: the temperature label)."""
    run_dirs = [Path(d) for d in run_dirs]
    if runs is None:
        runs = [qconfig.temperature_label(t) for t in temperatures] if temperatures else None
    result = cp2k_output.convert_runs(run_dirs, out, runs=runs, temperatures=temperatures)
    if summary:
        write_json(summary, result)
    return result


def compute_descriptors(cfg: dict, data, out) -> dict:
    """Per-frame descriptors of every frame of ``data`` (file order), cached in ``out``."""
    from . import descriptors

    p = dict(cfg["selection"]["descriptor"])
    chunk = p.pop("chunk_frames")
    return descriptors.compute_file(data, out, p, chunk_frames=chunk)


def _descriptor_rows(descriptors_npy, frames_all, frames) -> np.ndarray:
    """Cached descriptor rows of ``frames`` (a subset of ``frames_all``, the file's frames)."""
    from . import descriptors

    X, meta = descriptors.load(descriptors_npy)
    keys = [[str(a.info.get("run", "")), int(a.info.get("step", i))] for i, a in enumerate(frames_all)]
    if meta["n_frames"] != len(frames_all) or meta["keys"] != keys:
        raise ValueError(f"{descriptors_npy}: computed for other frames than the data set; delete it to recompute")
    kept = {id(a) for a in frames}
    return np.asarray(X[[i for i, a in enumerate(frames_all) if id(a) in kept]])


def select_frames(cfg: dict, data, out_dir, descriptors=None) -> dict:
    """Split and select; ``descriptors``: the cached descriptors of ``data`` (computed here if
    the method needs them and none are given)."""
    frames_all = dataset.read_frames(data)
    frames, n_dup = dataset.dedupe_frames(frames_all)
    sel = cfg["selection"]
    X = _descriptor_rows(descriptors, frames_all, frames) if descriptors else None
    idx = selection.split_and_select(frames, sel, descriptors=X, test_runs=qconfig.test_runs(cfg))
    out_dir = Path(out_dir)
    for part in ("train", "valid", "test"):
        dataset.write_frames(out_dir / f"{part}.extxyz", [frames[i] for i in idx[part]])
    refs = cfg["reference_energies"]
    if refs == "fit":
        refs = dataset.fit_reference_energies([frames[i] for i in idx["train"]])
    else:
        missing = {s for a in frames for s in a.get_chemical_symbols()} - set(refs)
        if missing:
            raise qconfig.ConfigError(f"config error at reference_energies: no value for {', '.join(sorted(missing))}")

    def steps(part):
        return [[frames[i].info["run"], int(frames[i].info["step"])] for i in idx[part]]

    summary = {
        "method": sel["method"],
        "descriptor": sel["descriptor"]["kind"] if selection.needs_descriptors(sel) else None,
        "n_frames": len(frames),
        "duplicates_dropped": n_dup,
        "near_duplicates_dropped": idx["near_duplicates"],
        "dedupe_tolerance": sel["dedupe_tolerance"],
        "n_pool": len(idx["pool"]),
        "n_train": len(idx["train"]),
        "n_valid": len(idx["valid"]),
        "n_test": len(idx["test"]),
        "test_fraction": sel["test_fraction"],
        "valid_fraction": sel["valid_fraction"],
        "gap_fs": sel["gap_fs"],
        "test_seed": cfg["aimd"]["test_seed"],
        "blocks": idx["blocks"],
        "reference_energies": refs,
        "train_steps": steps("train"),
        "valid_steps": steps("valid"),
        "test_steps": steps("test"),
        "n_valid_block": len(idx["valid_block"]),
    }
    write_json(out_dir / "selection.json", summary)
    log.info("selected %d train (%s), %d valid; %d held out (of %d frames; %d near-duplicates dropped)",
             summary["n_train"], sel["method"], summary["n_valid"], summary["n_test"], len(frames),
             idx["near_duplicates"])
    return summary


def map_configurations(cfg: dict, descriptors, selection_file, out_png, out_html, out_info=None) -> dict:
    from . import confmap

    info = confmap.write_map(descriptors, selection_file, out_png, out_html, cfg["selection"])
    if out_info:
        write_json(out_info, info)
    return info


def select_learning_curve_frames(cfg: dict, method: str, n: int, data, descriptors, out_dir) -> dict:
    """The split of one learning-curve point: ``n`` training frames chosen by ``method``."""
    from .learning_curve import point_config

    summary = select_frames(point_config(cfg, method, n), data, out_dir, descriptors)
    if summary["n_train"] != int(n):
        raise selection.SelectionError(
            f"config error at selection.learning_curve.sizes: {n} training frames do not fit the training pool "
            f"of {summary['n_pool']} frames"
        )
    return summary


def train_learning_curve_point(cfg: dict, method: str, n: int, split_dir, workdir, model_dir, metrics_out) -> dict:
    """Train the experiment's DeePMD model on one point's split; errors on its validation frames.

    The test frames are never read: they are left to judge the final models. DeePMD trains
    for a fixed number of steps (no early stopping), so the validation frames, the same for
    every point, are held out from each point's training."""
    from . import evaluate, learning_curve
    from .models import load_calculator

    # a point's model may be poor (that is what the curve shows), so only a diverged one fails
    _train_on_split("deepmd", learning_curve.deepmd_params(cfg), split_dir, workdir, model_dir,
                    gate={"max_force_rmse_ratio": float("inf"), "max_energy_rmse_ratio": float("inf")})
    frames = evaluate.evenly(dataset.read_frames(Path(split_dir) / "valid.extxyz"), cfg["evaluation"]["max_frames"])
    metrics = {"method": method, "n_train": int(n)} | learning_curve.heldout_errors(load_calculator(model_dir), frames)
    write_json(metrics_out, metrics)
    log.info("learning curve %s N=%d: force RMSE %.1f meV/A", method, n, metrics["force_rmse_meV_per_A"])
    return metrics


def plot_learning_curve(metric_files, out_csv, out_png, out_summary) -> dict:
    from . import learning_curve

    return learning_curve.collect(metric_files, out_csv, out_png, out_summary)


def train_model(cfg: dict, backend: str, split_dir, workdir, model_dir) -> Path:
    return _train_on_split(backend, cfg["backends"][backend], split_dir, workdir, model_dir, gate=cfg["training"])


def _train_on_split(backend: str, params: dict, split_dir, workdir, model_dir, gate: dict) -> Path:
    """Train ``backend`` on the train/valid files and reference energies of a split directory;
    ``gate``: the usefulness thresholds of :func:`qdff.backends.common.check_useful`."""
    from . import backends

    split_dir = Path(split_dir)
    files = [split_dir / "train.extxyz", split_dir / "valid.extxyz"]
    train, valid = (dataset.read_frames(f) for f in files)
    refs = read_json(split_dir / "selection.json")["reference_energies"]
    return backends.get(backend).train(train, valid, refs, params, workdir, model_dir, data_files=files, gate=gate)


def evaluate_model(cfg: dict, backend: str, model_dir, test_file, metrics_out, parity_out, errors_out=None) -> dict:
    from . import evaluate
    from .models import load_calculator

    calc = load_calculator(model_dir)
    frames = dataset.read_frames(test_file)
    metrics = evaluate.evaluate(calc, frames, backend=backend, max_frames=cfg["evaluation"]["max_frames"],
                                parity_path=parity_out, errors_path=errors_out,
                                material=cfg["structure"].get("material"))
    model_file = Path(model_dir) / read_json(Path(model_dir) / "model.json")["model_file"]
    metrics["model_size_MB"] = model_file.stat().st_size / 1e6 if model_file.is_file() else float("nan")
    write_json(metrics_out, metrics)
    return metrics


def _at_temperature(frames, temperature: float) -> list:
    return [a for a in frames if float(a.info.get("temperature", -1)) == float(temperature)]


def run_mlmd(cfg: dict, backend: str, model_dir, test_file, temperature: float, traj_out, summary_out) -> dict:
    """ML-MD at one AIMD temperature from the first held-out frame of that run."""
    from . import mlmd
    from .models import load_calculator

    frames = _at_temperature(dataset.read_frames(test_file), temperature)
    if not frames:
        raise ValueError(f"{test_file}: no held-out frame at {temperature:g} K to start ML-MD from")
    p = cfg["mlmd"]
    traj: list = []
    summary = mlmd.run(
        load_calculator(model_dir), frames[0], frames, temperature=temperature, steps=p["steps"],
        timestep_fs=p["timestep_fs"], friction_per_fs=p["friction_per_fs"], bond_factor=p["bond_factor"],
        seed=p["seed"], record_every=p["record_every"], trajectory=traj, nve_steps=p["nve_steps"],
    )
    summary["backend"] = backend
    dataset.write_frames(traj_out, traj) if traj else Path(traj_out).write_text("")
    write_json(summary_out, summary)
    return summary


def compare_rdfs(cfg: dict, backend: str, data, trajectory, mlmd_summary, temperature: float, out_json, out_png) -> dict:
    """RDFs of the ML-MD run against the AIMD frames at the same temperature."""
    from . import rdf

    aimd = _at_temperature(dataset.read_frames(data), temperature)
    t0 = min((a.info.get("time", 0.0) for a in aimd), default=0.0)
    aimd = [a for a in aimd if a.info.get("time", 0.0) - t0 >= cfg["selection"]["equilibration_fs"]]
    run = read_json(mlmd_summary)
    # ML-MD snapshots are positions only (no DFT labels): plain ASE read
    ml = read(trajectory, index=":", format="extxyz") if Path(trajectory).stat().st_size else []
    if not run["stable"]:
        ml = ml[:-1]  # the frame that failed the stability check is not a structure to compare
    ml = ml[len(ml) // 10:]  # the first 10 %: velocities settling to the thermostat
    p = cfg["evaluation"]
    if len(ml) < 3 or not aimd:
        result = {"overlap": {}, "overlap_min": float("nan"), "n_model_frames": len(ml),
                  "n_reference_frames": len(aimd), "note": "too few ML-MD frames for an RDF"}
        log.warning("%s at %g K: %s", backend, temperature, result["note"])
        rdf.plot_message(f"{backend}, {temperature:g} K: {result['note']}", out_png)
    else:
        result = rdf.compare(aimd, ml, p["rdf_r_max"], p["rdf_bins"])
        rdf.plot(result, f"{backend}, {temperature:g} K: ML-MD ({len(ml)} frames) vs AIMD ({len(aimd)} frames)", out_png)
        log.info("%s at %g K: RDF overlap %s", backend, temperature,
                 ", ".join(f"{k} {v:.3f}" for k, v in result["overlap"].items()))
    result.update(backend=backend, temperature=temperature, stable=run["stable"])
    write_json(out_json, result)
    return result


def collect_metrics(metric_files, out_json, out_csv, mlmd_files=(), rdf_files=(), aimd_files=()) -> list[dict]:
    """One row per backend: held-out errors, ML-MD stability, RDF overlap and speed against CP2K."""
    import pandas as pd

    rows = [read_json(f) for f in metric_files]
    mlmd_runs = [read_json(f) for f in mlmd_files]
    rdfs = [read_json(f) for f in rdf_files]
    cp2k_s = {float(s["temperature"]): s["seconds_per_step_median"] for s in map(read_json, aimd_files)}
    for row in rows:
        runs = [r for r in mlmd_runs if r.get("backend") == row["backend"]]
        if runs:
            row["mlmd_stable"] = all(r["stable"] for r in runs)
            row["mlmd_seconds_per_step"] = float(sum(r["seconds_per_step"] for r in runs) / len(runs))
            row["mlmd_verdicts"] = "; ".join(
                f"{r['temperature']:g} K: " + ("stable" if r["stable"] else f"UNSTABLE ({r['reason']})") for r in runs
            )
            drifts = [abs(r.get("nve_drift_meV_per_atom_per_ps", float("nan"))) for r in runs]
            drifts = [d for d in drifts if np.isfinite(d)]
            row["mlmd_nve_drift_meV_per_atom_per_ps"] = max(drifts) if drifts else float("nan")
            ratios = [cp2k_s[float(r["temperature"])] / r["seconds_per_step"] for r in runs
                      if float(r["temperature"]) in cp2k_s and r["seconds_per_step"] > 0]
            if ratios:
                row["speedup_vs_cp2k"] = float(np.mean(ratios))
                row["cp2k_seconds_per_step"] = float(np.mean([cp2k_s[float(r["temperature"])] for r in runs]))
        mine = [r for r in rdfs if r.get("backend") == row["backend"]]
        for r in mine:
            for pair, score in r["overlap"].items():
                row[f"rdf_overlap_{pair}_{r['temperature']:g}K"] = score
        scores = [r["overlap_min"] for r in mine if np.isfinite(r["overlap_min"])]
        if mine:
            row["rdf_overlap_min"] = float(min(scores)) if scores else float("nan")
            halves = [r["reference_halves_overlap_min"] for r in mine if "reference_halves_overlap_min" in r]
            row["rdf_overlap_aimd_halves_min"] = float(min(halves)) if halves else float("nan")
    write_json(out_json, rows)
    with atomic_path(out_csv, suffix=".csv") as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    return rows


def render_report(cfg: dict, *, aimd_dirs, aimd_summaries, selection_file, metrics_file, parity_plots: dict,
                  model_dirs: dict, aimd_plot, out, error_plots: dict | None = None, rdf_plots=(),
                  structure_file=None, al_summary=None, al_plot=None, al_calibration=()) -> None:
    """``rdf_plots``: (backend, temperature label, png path) triples; ``al_*``: the active
    learning summary, progress plot and calibration plots, when the loop ran."""
    from . import report

    ener = {qconfig.temperature_label(read_json(s)["temperature"]): Path(d) / f"{cp2k_run.MD_PROJECT}-1.ener"
            for d, s in zip(aimd_dirs, aimd_summaries)}
    report.aimd_overview_plot(ener, aimd_plot)
    report.render_report(
        cfg,
        aimd_plot=aimd_plot,
        aimd_summaries=[read_json(s) for s in aimd_summaries],
        selection=read_json(selection_file),
        metrics=read_json(metrics_file),
        parity_plots=parity_plots,
        models={b: read_json(Path(d) / "model.json") for b, d in model_dirs.items()},
        out_path=out,
        error_plots=error_plots,
        rdf_plots=_nest(rdf_plots),
        structure=read_json(structure_file) if structure_file else None,
        selection_context=_selection_context(selection_file),
        active_learning={"summary": read_json(al_summary), "plot": al_plot, "calibration": list(al_calibration)}
        if al_summary else None,
    )
    log.info("report written to %s", out)


def _selection_context(selection_file) -> dict:
    """The map and learning curve beside results/{system}/split/selection.json, where present."""
    from . import selection_report

    system_dir = Path(selection_file).parent.parent
    return selection_report.context(**selection_report.selection_files(system_dir.name, system_dir.parent))


def _nest(triples) -> dict:
    out: dict = {}
    for backend, label, path in triples:
        out.setdefault(backend, {})[label] = path
    return out


def render_index(results_dir, out) -> None:
    from . import report

    report.render_index(results_dir, out)
