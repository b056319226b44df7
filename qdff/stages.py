"""The pipeline's stages as functions of files: what each Snakemake rule (and each
``qdff`` subcommand) calls. Every function reads its inputs, writes its outputs
atomically and logs what it did."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from ase.io import read, write

from . import config as qconfig
from .cp2k import input as cp2k_input, output as cp2k_output, run as cp2k_run
from .data import dataset
from .fileio import atomic_path, read_json, write_json
from .selection import frames as selection
from .structure import build as structures

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
    from .selection import descriptors

    p = dict(cfg["selection"]["descriptor"])
    chunk = p.pop("chunk_frames")
    return descriptors.compute_file(data, out, p, chunk_frames=chunk)


def _descriptor_rows(descriptors_npy, frames_all, frames) -> np.ndarray:
    """Cached descriptor rows of ``frames`` (a subset of ``frames_all``, the file's frames)."""
    from .selection import descriptors

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
    sel = cfg["selection"]
    n_scf = sum(1 for a in frames_all if not a.info.get("scf_converged", True))
    frames = dataset.drop_unconverged_scf(frames_all)[0] if sel["drop_unconverged_scf"] else frames_all
    if n_scf and not sel["drop_unconverged_scf"]:
        log.warning("keeping %d frame(s) whose SCF did not converge: selection.drop_unconverged_scf is false", n_scf)
    frames, n_dup = dataset.dedupe_frames(frames)
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
        "scf_not_converged": n_scf,
        "scf_not_converged_dropped": n_scf if sel["drop_unconverged_scf"] else 0,
        "near_duplicates_dropped": idx["near_duplicates"],
        "dedupe_tolerance": sel["dedupe_tolerance"],
        "n_pool": len(idx["pool"]),
        "n_train": len(idx["train"]),
        "n_valid": len(idx["valid"]),
        "n_test": len(idx["test"]),
        "n_valid_block": len(idx["valid_block"]),
        "test_fraction": sel["test_fraction"],
        "valid_fraction": sel["valid_fraction"],
        "gap_fs": sel["gap_fs"],
        "test_seed": cfg["aimd"]["test_seed"],
        "blocks": idx["blocks"],
        "reference_energies": refs,
        "train_steps": steps("train"),
        "valid_steps": steps("valid"),
        "test_steps": steps("test"),
    }
    write_json(out_dir / "selection.json", summary)
    log.info("selected %d train (%s), %d valid; %d held out (of %d frames; %d near-duplicates dropped)",
             summary["n_train"], sel["method"], summary["n_valid"], summary["n_test"], len(frames),
             idx["near_duplicates"])
    return summary


def map_configurations(cfg: dict, descriptors, selection_file, out_png, out_html, out_info=None) -> dict:
    from .selection import confmap

    info = confmap.write_map(descriptors, selection_file, out_png, out_html, cfg["selection"])
    if out_info:
        write_json(out_info, info)
    return info


def select_learning_curve_frames(cfg: dict, method: str, n: int, data, descriptors, out_dir) -> dict:
    """The split of one learning-curve point: ``n`` training frames chosen by ``method``."""
    from .selection.learning_curve import point_config

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
    from .selection import learning_curve
    from .training.models import load_calculator
    from .validation import evaluate

    # a point's model may be poor (that is what the curve shows), so only a diverged one fails
    _train_on_split("deepmd", learning_curve.deepmd_params(cfg), split_dir, workdir, model_dir,
                    gate={"max_force_rmse_ratio": float("inf"), "max_energy_rmse_ratio": float("inf")})
    frames = evaluate.evenly(dataset.read_frames(Path(split_dir) / "valid.extxyz"), cfg["evaluation"]["max_frames"])
    metrics = {"method": method, "n_train": int(n)} | learning_curve.heldout_errors(load_calculator(model_dir), frames)
    write_json(metrics_out, metrics)
    log.info("learning curve %s N=%d: force RMSE %.1f meV/A", method, n, metrics["force_rmse_meV_per_A"])
    return metrics


def plot_learning_curve(metric_files, out_csv, out_png, out_summary) -> dict:
    from .selection import learning_curve

    return learning_curve.collect(metric_files, out_csv, out_png, out_summary)


def train_model(cfg: dict, backend: str, split_dir, workdir, model_dir) -> Path:
    """Train ``backend``; for a zero-shot baseline (config baselines) only its energy shift is fitted."""
    params = cfg["backends"][backend] if backend in cfg["backends"] else {}
    return _train_on_split(backend, params, split_dir, workdir, model_dir, gate=cfg["training"])


def _train_on_split(backend: str, params: dict, split_dir, workdir, model_dir, gate: dict) -> Path:
    """Train ``backend`` on the train/valid files and reference energies of a split directory;
    ``gate``: the usefulness thresholds of :func:`qdff.training.backends.common.check_useful`."""
    from .training import backends

    split_dir = Path(split_dir)
    files = [split_dir / "train.extxyz", split_dir / "valid.extxyz"]
    train, valid = (dataset.read_frames(f) for f in files)
    refs = read_json(split_dir / "selection.json")["reference_energies"]
    return backends.get(backend).train(train, valid, refs, params, workdir, model_dir, data_files=files, gate=gate)


def evaluate_model(cfg: dict, backend: str, model_dir, test_file, metrics_out, parity_out, errors_out=None,
                   train_file=None) -> dict:
    from .training.models import load_calculator
    from .validation import evaluate

    calc = load_calculator(model_dir)
    frames = dataset.read_frames(test_file)
    metrics = evaluate.evaluate(calc, frames, backend=backend, max_frames=cfg["evaluation"]["max_frames"],
                                parity_path=parity_out, errors_path=errors_out,
                                material=cfg["structure"].get("material"),
                                train_frames=dataset.read_frames(train_file) if train_file else None,
                                predictions_path=Path(metrics_out).with_name("predictions.json"))
    model_file = Path(model_dir) / read_json(Path(model_dir) / "model.json")["model_file"]
    metrics["model_size_MB"] = model_file.stat().st_size / 1e6 if model_file.is_file() else float("nan")
    write_json(metrics_out, metrics)
    return metrics


def _at_temperature(frames, temperature: float) -> list:
    return [a for a in frames if float(a.info.get("temperature", -1)) == float(temperature)]


def equilibrated(frames, equilibration_fs: float) -> list:
    """``frames`` without the first ``equilibration_fs`` of each run."""
    t0: dict = {}
    for a in frames:
        r = a.info.get("run", "")
        t0[r] = min(t0.get(r, np.inf), float(a.info.get("time", 0.0)))
    return [a for a in frames if float(a.info.get("time", 0.0)) - t0[a.info.get("run", "")] >= equilibration_fs]


def run_mlmd(cfg: dict, backend: str, model_dir, test_file, temperature: float, traj_out, summary_out,
             data=None) -> dict:
    """ML-MD at one temperature, ``mlmd.seeds`` runs, from the first held-out frame of the
    AIMD run at that temperature (at a stress temperature: of the hottest AIMD run).
    ``data``: the whole AIMD data set, whose frames at that temperature (after
    selection.equilibration_fs) give the limits, bond cutoffs and the AIMD's own bond
    changes; without it, the held-out frames do."""
    from .training.models import load_calculator
    from .validation import mlmd

    stress = qconfig.mlmd_temperatures(cfg).get(float(temperature), False)
    aimd_t = max(float(t) for t in cfg["aimd"]["temperatures"]) if stress else float(temperature)
    frames = _at_temperature(dataset.read_frames(test_file), aimd_t)
    if not frames:
        raise ValueError(f"{test_file}: no held-out frame at {aimd_t:g} K to start ML-MD from")
    reference = frames
    if data:
        reference = equilibrated(_at_temperature(dataset.read_frames(data), aimd_t),
                                  cfg["selection"]["equilibration_fs"]) or frames
    p = cfg["mlmd"]
    traj: list = []
    common = dict(temperature=temperature, steps=p["steps"], timestep_fs=p["timestep_fs"],
                  friction_per_fs=p["friction_per_fs"], bond_factor=p["bond_factor"], record_every=p["record_every"],
                  trajectory=traj, nve_steps=p["nve_steps"], bond_check=p["bond_check"] and not stress,
                  monitor_bonds=True, bond_cutoff_factor=p["bond_cutoff_factor"], bond_persist=p["bond_persist"])
    if mlmd.engine_for(cfg, backend) == "lammps":
        import torch

        # lmp's input and log stay beside the summary: a starting point for production runs
        work = Path(summary_out).parent / "lammps"
        runs = [mlmd.run_lammps(model_dir, frames[0], reference, workdir=work / f"seed{p['seed'] + k}",
                                seed=p["seed"] + k, threads=torch.get_num_threads(), **common)
                for k in range(p["seeds"])]
    else:
        calc = load_calculator(model_dir)
        runs = [mlmd.run(calc, frames[0], reference, seed=p["seed"] + k, **common) for k in range(p["seeds"])]
    summary = mlmd.combine(runs)
    summary.update(backend=backend, stress=stress, reference_temperature=aimd_t, hardware=mlmd.hardware())
    dataset.write_frames(traj_out, traj) if traj else Path(traj_out).write_text("")
    write_json(summary_out, summary)
    return summary


def _usable_mlmd_frames(frames, summary: dict) -> list:
    """ML-MD snapshots to compare with AIMD: per seed, without the frame that failed the
    stability check (not a structure to compare) and the first 10 % (velocities settling
    to the thermostat)."""
    runs = {r["seed"]: r for r in summary.get("runs", [])}
    by_seed: dict = {}
    for a in frames:
        by_seed.setdefault(a.info.get("seed", summary.get("seed")), []).append(a)
    out = []
    for s, fr in by_seed.items():
        stable = runs[s]["stable"] if s in runs else summary["stable"]
        if not stable:
            fr = fr[:-1]
        out += fr[len(fr) // 10:]
    return out


def compare_rdfs(cfg: dict, backend: str, data, trajectory, mlmd_summary, temperature: float, out_json, out_png) -> dict:
    """Pair-distance distributions of the ML-MD runs against the AIMD frames at the same
    temperature, compared in blocks of equal frame count (qdff.validation.rdf)."""
    from .validation import rdf

    aimd = equilibrated(_at_temperature(dataset.read_frames(data), temperature), cfg["selection"]["equilibration_fs"])
    run = read_json(mlmd_summary)
    # ML-MD snapshots are positions only (no DFT labels): plain ASE read
    ml = read(trajectory, index=":", format="extxyz") if Path(trajectory).stat().st_size else []
    ml = _usable_mlmd_frames(ml, run)
    p = cfg["evaluation"]
    result = None
    if len(ml) >= 3 and aimd:
        result = rdf.compare(aimd, ml, p["rdf_r_max"], p["rdf_bins"], block_fs=p["rdf_block_fs"],
                             resamples=p["rdf_resamples"], seed=cfg["mlmd"]["seed"])
        if not result["overlap"]:
            result["note"] = f"too few AIMD frames for two blocks of {len(ml)} ML-MD frames"
    if result is None:
        result = {"overlap": {}, "overlap_min": float("nan"), "n_model_frames": len(ml),
                  "n_reference_frames": len(aimd), "note": "too few ML-MD frames for pair-distance distributions"}
    if result["overlap"]:
        rdf.plot(result, f"{backend}, {temperature:g} K: pair-distance distributions (unit area), ML-MD against "
                         f"AIMD in blocks of {result['frames_per_block']} frames ({result['block_fs']:.0f} fs)", out_png)
        log.info("%s at %g K: pair-distance overlap %s (AIMD self-agreement %s)", backend, temperature,
                 ", ".join(f"{k} {v:.3f}" for k, v in result["overlap"].items()),
                 ", ".join(f"{k} {v:.3f}" for k, v in result["reference_overlap"].items()))
    else:
        log.warning("%s at %g K: %s", backend, temperature, result["note"])
        rdf.plot_message(f"{backend}, {temperature:g} K: {result['note']}", out_png)
    result.update(backend=backend, temperature=temperature, stable=run["stable"])
    write_json(out_json, result)
    return result


def _cp2k_runs(aimd_files) -> dict:
    """Per AIMD temperature: CP2K's seconds per step, where and how it ran (run.json), and the
    drift and fluctuation of its conserved quantity (from the run's .ener file)."""
    from .cp2k.output import read_ener
    from .validation.mlmd import energy_stats

    out = {}
    for f in aimd_files:
        s = read_json(f)
        ener = Path(f).parent / f"{s.get('project', cp2k_run.MD_PROJECT)}-1.ener"
        if ener.is_file() and s.get("n_atoms"):
            e = read_ener(ener)
            stats = energy_stats(e["time"], e["conserved"], s["n_atoms"])
            s.update(conserved_drift_meV_per_atom_per_ps=stats["drift_meV_per_atom_per_ps"],
                     conserved_std_meV_per_atom=stats["std_meV_per_atom"])
        out[float(s["temperature"])] = s
    return out


def _cores(cp2k: dict):
    ranks, threads = cp2k.get("mpi_ranks"), cp2k.get("threads_per_rank", cp2k.get("threads"))
    return ranks * threads if ranks and threads else None


def _mlmd_cores(hw: dict):
    """CPU cores an ML-MD run used; None on a GPU (core-seconds do not compare there)."""
    if not hw or not str(hw.get("device", "cpu")).startswith("cpu"):
        return None
    return hw.get("torch_threads")


def _speed(row: dict, runs: list, cp2k: dict) -> None:
    """Seconds per step of ML-MD against CP2K at the same (AIMD) temperatures: wall-clock and
    per core-second, with the hardware of both sides."""
    same_t = [r for r in runs if float(r["temperature"]) in cp2k and r["seconds_per_step"] > 0 and not r.get("stress")]
    if not same_t:
        return
    c = [cp2k[float(r["temperature"])] for r in same_t]
    row["cp2k_seconds_per_step"] = float(np.mean([s["seconds_per_step_median"] for s in c]))
    row["speedup_vs_cp2k"] = float(np.mean([s["seconds_per_step_median"] / r["seconds_per_step"]
                                            for s, r in zip(c, same_t)]))
    hw = same_t[0].get("hardware") or {}
    cp2k_cores, ml_cores = _cores(c[0]), _mlmd_cores(hw)
    row["cp2k_cores"], row["mlmd_cores"] = cp2k_cores, ml_cores
    if cp2k_cores and ml_cores:
        row["speedup_per_core_vs_cp2k"] = float(np.mean([
            s["seconds_per_step_median"] * cp2k_cores / (r["seconds_per_step"] * ml_cores) for s, r in zip(c, same_t)]))
    row["cp2k_hardware"] = cp2k_hardware(c[0])
    row["mlmd_hardware"] = mlmd_hardware(hw, same_t[0].get("engine", "ase"))
    row["same_hardware"] = bool(hw) and hw.get("host") == c[0].get("host") and ml_cores is not None


def cp2k_hardware(s: dict) -> str:
    ranks, threads = s.get("mpi_ranks"), s.get("threads_per_rank", s.get("threads"))
    parts = [f"{ranks if ranks else '?'} MPI rank(s) x {threads if threads else '?'} thread(s)"]
    parts += [s[k] for k in ("cpu_model", "host") if s.get(k)]
    return ", ".join(parts)


def mlmd_hardware(hw: dict, engine: str = "ase") -> str:
    if not hw:
        return "not recorded"
    dev = str(hw.get("device", "cpu"))
    # DeePMD-kit in LAMMPS takes the GPU when its torch sees one, as the ASE calculator does
    parts = ["LAMMPS (pair_style deepmd)" if engine == "lammps" else "ASE",
             f"{dev} ({hw['device_name']})" if dev.startswith("cuda") else "CPU",
             f"{hw.get('torch_threads', '?')} torch thread(s)"]
    parts += [hw[k] for k in ("cpu_model", "host") if hw.get(k)]
    return ", ".join(parts)


def _mlmd_rows(row: dict, runs: list, cp2k: dict) -> None:
    row["mlmd_stable"] = all(r["stable"] for r in runs)
    # at the AIMD temperatures, as the speed-up against CP2K (stress runs are not compared)
    timed = [r for r in runs if not r.get("stress")] or runs
    row["mlmd_seconds_per_step"] = float(np.mean([r["seconds_per_step"] for r in timed]))
    row["mlmd_verdicts"] = "; ".join(
        f"{r['temperature']:g} K{' (stress)' if r.get('stress') else ''}: "
        + ("stable" if r["stable"] else f"UNSTABLE ({r['reason']})") for r in runs
    )
    drifts = [abs(r.get("nve_drift_meV_per_atom_per_ps", float("nan"))) for r in runs]
    drifts = [d for d in drifts if np.isfinite(d)]
    row["mlmd_nve_drift_meV_per_atom_per_ps"] = max(drifts) if drifts else float("nan")
    per_t = []
    for r in runs:
        c = cp2k.get(float(r.get("reference_temperature", r["temperature"])), {})
        t = {k: r.get(k) for k in ("temperature", "stress", "stable", "reason", "seeds", "unstable_seeds",
                                   "bonds_start", "bonds_broken_max", "bonds_formed_max", "aimd_bonds_broken_max",
                                   "aimd_bonds_formed_max", "coordination", "aimd_coordination", "bond_cutoffs",
                                   "nve_temperature_mean", "nve_drift_meV_per_atom_per_ps",
                                   "nve_energy_std_meV_per_atom", "reference_temperature")}
        t.update(cp2k_conserved_drift_meV_per_atom_per_ps=c.get("conserved_drift_meV_per_atom_per_ps"),
                 cp2k_conserved_std_meV_per_atom=c.get("conserved_std_meV_per_atom"),
                 cp2k_temperature=c.get("temperature"))
        per_t.append(t)
        label = f"{r['temperature']:g}K"
        for k in ("bonds_broken_max", "bonds_formed_max", "nve_temperature_mean", "nve_energy_std_meV_per_atom"):
            if r.get(k) is not None:
                row[f"mlmd_{k}_{label}"] = r[k]
    row["mlmd_per_temperature"] = per_t
    conserved = [abs(t["cp2k_conserved_drift_meV_per_atom_per_ps"]) for t in per_t
                 if t["cp2k_conserved_drift_meV_per_atom_per_ps"] is not None and not t["stress"]]
    if conserved:
        row["cp2k_conserved_drift_meV_per_atom_per_ps"] = max(conserved)


def _pair_distance_rows(row: dict, mine: list) -> None:
    """Overlap scores of the pair-distance distributions, the AIMD self-agreement beside the
    worst, and first-peak positions and widths."""
    peaks, below, worst = [], [], None
    for r in mine:
        T = f"{r['temperature']:g}"
        for pair, score in r["overlap"].items():
            row[f"pair_distance_overlap_{pair}_{T}K"] = score
            if worst is None or score < worst[0]:
                worst = (score, pair, r)
        below += [f"{p} {T} K" for p in r.get("below_reference_interval", [])]
        fp = r.get("first_peak", {})
        for pair, ref in fp.get("reference", {}).items():
            ml = fp.get("model", {}).get(pair, {})
            peaks.append({"temperature": r["temperature"], "pair": pair, "aimd_position_A": ref["position_A"],
                          "mlmd_position_A": ml.get("position_A"), "aimd_fwhm_A": ref["fwhm_A"],
                          "mlmd_fwhm_A": ml.get("fwhm_A")})
    row["pair_distance_overlap_min"] = worst[0] if worst else float("nan")
    if worst:
        score, pair, r = worst
        row["pair_distance_overlap_worst"] = f"{pair}, {r['temperature']:g} K"
        row["pair_distance_aimd_overlap_at_worst"] = r["reference_overlap"][pair]
        iv = r.get("reference_interval", {}).get(pair)
        if iv:
            row["pair_distance_aimd_interval_at_worst"] = f"{iv[0]:.2f}-{iv[1]:.2f}"
        row["pair_distance_frames_per_block"] = r.get("frames_per_block")
    row["pair_distance_below_aimd_interval"] = "; ".join(below) if below else "none"
    row["pair_distance_first_peaks"] = peaks


def collect_metrics(metric_files, out_json, out_csv, mlmd_files=(), rdf_files=(), aimd_files=()) -> list[dict]:
    """One row per backend: held-out errors, ML-MD stability and NVE statistics beside CP2K's,
    pair-distance overlap against the AIMD's self-agreement, and speed against CP2K."""
    import pandas as pd

    rows = [read_json(f) for f in metric_files]
    mlmd_runs = [read_json(f) for f in mlmd_files]
    rdfs = [read_json(f) for f in rdf_files]
    cp2k = _cp2k_runs(aimd_files)
    for row in rows:
        runs = [r for r in mlmd_runs if r.get("backend") == row["backend"]]
        if runs:
            _mlmd_rows(row, runs, cp2k)
            _speed(row, runs, cp2k)
        mine = [r for r in rdfs if r.get("backend") == row["backend"]]
        if mine:
            _pair_distance_rows(row, mine)
    write_json(out_json, rows)
    with atomic_path(out_csv, suffix=".csv") as tmp:
        # nested per-temperature details stay in the JSON
        pd.DataFrame([{k: v for k, v in r.items() if not isinstance(v, (list, dict))} for r in rows]).to_csv(tmp, index=False)
    return rows


def render_report(cfg: dict, *, aimd_dirs, aimd_summaries, selection_file, metrics_file, parity_plots: dict,
                  model_dirs: dict, aimd_plot, out, error_plots: dict | None = None, rdf_plots=(),
                  structure_file=None, al_summary=None, al_plot=None, al_calibration=(),
                  vibrations: dict | None = None, mlmd_summaries=()) -> None:
    """``rdf_plots``, ``mlmd_summaries``: (backend, temperature label, path) triples; ``al_*``: the active
    learning summary, progress plot and calibration plots, when the loop ran; ``vibrations``:
    the vibrations rules' files, when they ran: {"cp2k": modes.json, "spectra": png, "modes"
    and "relax": {backend: json}, "vdos" and "vdos_plots": (backend, temperature label, path)}."""
    from .report import render as report

    ener = {qconfig.temperature_label(read_json(s)["temperature"]): Path(d) / f"{cp2k_run.MD_PROJECT}-1.ener"
            for d, s in zip(aimd_dirs, aimd_summaries)}
    report.aimd_overview_plot(ener, aimd_plot)
    report.render_report(
        cfg,
        interactive=_interactive_figures(ener, parity_plots, rdf_plots, mlmd_summaries),
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
        vibrations=_vibrations_context_args(vibrations) if vibrations else None,
    )
    log.info("report written to %s", out)


def _interactive_figures(ener: dict, parity_plots: dict, rdf_plots, mlmd_summaries=()) -> dict:
    """Plotly specifications of the report's interactive figures, from the files beside the
    PNGs: each model's predictions.json, each comparison's rdf.json, CP2K's .ener files, the
    ML-MD summaries' recorded series."""
    from .cp2k.output import read_ener
    from .report import interactive
    from .validation.rdf import CURVE

    figs: dict = {"aimd": interactive.time_series_figure({k: read_ener(f) for k, f in ener.items()},
                                                         "AIMD: temperature and potential energy"),
                  "parity": {}, "rdf": {}}
    for backend, png in parity_plots.items():
        pred = Path(png).with_name("predictions.json")
        if pred.is_file():
            p = read_json(pred)
            figs["parity"][backend] = interactive.parity_figure(p, backend, p.get("training_range"))
    for backend, label, png in rdf_plots:
        res = Path(png).with_name("rdf.json")
        if res.is_file():
            figs["rdf"].setdefault(backend, {})[label] = interactive.pair_distance_figure(
                read_json(res), f"{backend}, {label}: pair-distance distributions, ML-MD against AIMD", f"{CURVE} [1/Å]")
    by_backend: dict = {}
    for backend, label, path in mlmd_summaries:
        if Path(path).is_file():
            by_backend.setdefault(backend, {})[label] = read_json(path)
    figs["mlmd"] = {}
    for backend, summaries in by_backend.items():
        series = interactive.mlmd_series(summaries)
        if series:
            figs["mlmd"][backend] = interactive.time_series_figure(
                series, f"{backend}: ML-MD (Langevin) temperature and potential energy, every run")
    return figs


def _vibrations_context_args(files: dict) -> dict:
    return {"cp2k": read_json(files["cp2k"]), "spectra_png": files["spectra"],
            "modes": {b: read_json(p) for b, p in files["modes"].items()},
            "relax": {b: read_json(p) for b, p in files["relax"].items()},
            "vdos": {(b, t): read_json(p) for b, t, p in files["vdos"]},
            "vdos_plots": {(b, t): p for b, t, p in files["vdos_plots"]}}


def _selection_context(selection_file) -> dict:
    """The map and learning curve beside results/{system}/split/selection.json, where present."""
    from .selection import report as selection_report

    system_dir = Path(selection_file).parent.parent
    return selection_report.context(**selection_report.selection_files(system_dir.name, system_dir.parent))


def _nest(triples) -> dict:
    out: dict = {}
    for backend, label, path in triples:
        out.setdefault(backend, {})[label] = path
    return out


def render_index(results_dir, out) -> None:
    from .report import render as report

    report.render_index(results_dir, out)


# ---------------------------------------------------------------- vibrations (rules/vibrations.smk)


def _modes_json(modes: dict, **extra) -> dict:
    """A :func:`qdff.validation.vibrations.modes_from_hessian` result without its arrays, for JSON."""
    return {k: v for k, v in modes.items() if k not in ("modes", "hessian_eV_per_A2")} | extra


def compute_normal_modes_cp2k(cfg: dict, structure, workdir, out_json, out_minimum) -> dict:
    """CP2K's reference: a tight GEO_OPT from ``structure`` (the relaxed one), then CP2K's
    VIBRATIONAL_ANALYSIS; writes the minimum (the reference of every comparison) and the modes."""
    from .validation import vibrations

    v = cfg["vibrations"]
    res = cp2k_run.vibrational_analysis(_atoms_with_box(structure), cfg, workdir, max_force=v["cp2k_max_force"],
                                        dx_bohr=v["cp2k_dx_bohr"])
    modes = vibrations.modes_from_hessian(res["minimum"], res["hessian_eV_per_A2"])
    printed = res["cp2k_frequencies_cm1"]
    out = _modes_json(modes, source="cp2k", cp2k_frequencies_cm1=printed, preset=res["preset"],
                      level_of_theory=res["level_of_theory"], dx_bohr=res["dx_bohr"],
                      max_force_Ha_per_bohr=res["max_force_Ha_per_bohr"], relax_converged=res["relax_converged"],
                      cp2k_seconds=res["seconds"],
                      max_deviation_from_cp2k_printed_cm1=float(np.max(np.abs(np.asarray(modes["frequencies_cm1"])
                                                                             - np.asarray(printed))))
                      if len(printed) == len(modes["frequencies_cm1"]) else None)
    np.save(Path(out_json).with_name("hessian_eV_per_A2.npy"), res["hessian_eV_per_A2"])
    with atomic_path(out_minimum, suffix=".extxyz") as tmp:
        write(tmp, res["minimum"], format="extxyz")
    write_json(out_json, out)
    return out


def compute_normal_modes_model(cfg: dict, backend: str, model_dir, minimum, reference_json, out_json, cache_dir) -> dict:
    """A model's normal modes at CP2K's minimum (ase.vibrations, displacements cached in
    ``cache_dir``) and their comparison with CP2K's. At CP2K's minimum, not the model's own:
    the same structure for both, so that sorted frequencies compare; the model's residual
    forces there are reported (the modes of the model's own minimum differ by what
    relax_with_model measures)."""
    from .training.models import load_calculator
    from .validation import vibrations

    atoms = _atoms_with_box(minimum)
    calc = load_calculator(model_dir)
    a = atoms.copy()
    a.calc = calc
    fmax = float(np.linalg.norm(a.get_forces(), axis=1).max())
    modes = vibrations.normal_modes(atoms, calc, delta=cfg["vibrations"]["delta_A"], cache_dir=Path(cache_dir) / "vib")
    ref = read_json(reference_json)
    cmp = vibrations.compare_modes(ref, modes, cfg["vibrations"]["imaginary_tol_cm1"])
    out = _modes_json(modes, source=backend, backend=backend, max_force_at_cp2k_minimum_eV_per_A=fmax, comparison=cmp)
    write_json(out_json, out)
    log.info("%s: frequency MAE %.1f cm^-1 against CP2K over %d modes (largest error %.1f), imaginary %d (CP2K %d)",
             backend, cmp["frequency_mae_cm1"], cmp["n_modes"], cmp["frequency_max_error_cm1"],
             cmp["n_imaginary_model"], cmp["n_imaginary_reference"])
    return out


def relax_with_model(cfg: dict, backend: str, model_dir, minimum, out_json, out_structures) -> dict:
    """Relaxations with a model from CP2K's minimum and from perturbed starts (qdff.validation.vibrations)."""
    from .training.models import load_calculator
    from .validation import vibrations

    v = cfg["vibrations"]
    report, structures = vibrations.relaxation_report(
        _atoms_with_box(minimum), load_calculator(model_dir), fmax=v["relax_fmax"], steps=v["relax_steps"],
        perturbations=v["perturbations"], rattle_A=v["rattle_A"], seed=v["seed"], rmsd_tol_A=v["rmsd_tol_A"])
    report["backend"] = backend
    for a, r in zip(structures, report["runs"]):
        a.info.update(start=r["start"], rmsd_A=r["rmsd_A"])
    with atomic_path(out_structures, suffix=".extxyz") as tmp:
        write(tmp, structures, format="extxyz")
    write_json(out_json, report)
    log.info("%s: relaxed from CP2K's minimum: RMSD %.3f A, dE %.2f meV/atom; worst of %d starts %.3f A%s", backend,
             report["rmsd_A"], report["energy_difference_meV_per_atom"], len(report["runs"]), report["rmsd_max_A"],
             "; a DIFFERENT minimum" if report["different_minimum_any"] else "")
    return report


def aimd_velocities(run_dir, equilibration_fs: float = 0.0):
    """CP2K's velocities of an MD run (PROJECT-vel-1.xyz, Bohr per atomic time unit) in A/fs,
    after ``equilibration_fs``; with the symbols, positions of the same steps and time step.
    Read here from CP2K's own file: the data set (cp2k_output) keeps positions and forces only."""
    from .units import AU_VELOCITY_TO_ANGSTROM_PER_FS

    run_dir = Path(run_dir)
    project = cp2k_output.find_project(run_dir)
    pos = {f.step: f for f in cp2k_output.iter_xyz_frames(run_dir / f"{project}-pos-1.xyz", allow_truncated=True)}
    steps, times, vels = [], [], []
    symbols = None
    for f in cp2k_output.iter_xyz_frames(run_dir / f"{project}-vel-1.xyz", allow_truncated=True):
        if steps and f.step <= steps[-1]:  # a resumed run repeats steps: keep the later copy
            k = steps.index(f.step)
            del steps[k:], times[k:], vels[k:]
        steps.append(f.step)
        times.append(f.time)
        vels.append(f.values * AU_VELOCITY_TO_ANGSTROM_PER_FS)
        symbols = f.symbols
    keep = [i for i, t in enumerate(times) if t - times[0] >= equilibration_fs]
    dt = float(np.median(np.diff(times))) if len(times) > 1 else float("nan")
    return {"symbols": symbols, "velocities": np.array([vels[i] for i in keep]),
            "positions": [pos[steps[i]].values if steps[i] in pos else None for i in keep],
            "timestep_fs": dt}


def compute_vdos(cfg: dict, backend: str, model_dir, aimd_dir, temperature: float, out_json, out_png) -> dict:
    """VDOS of the AIMD run at ``temperature`` (CP2K's velocities) and of an NVE run with the
    model started from its first equilibrated frame, positions and velocities; overlap per element."""
    from ase import Atoms, units
    from ase.md.verlet import VelocityVerlet

    from .training.models import load_calculator
    from .validation import vibrations

    v = cfg["vibrations"]
    aimd = aimd_velocities(aimd_dir, cfg["selection"]["equilibration_fs"])
    if len(aimd["velocities"]) < 8:
        raise ValueError(f"{aimd_dir}: {len(aimd['velocities'])} velocity frames after equilibration: too few for a VDOS")
    atoms = Atoms(aimd["symbols"], positions=aimd["positions"][0])
    atoms.set_velocities(aimd["velocities"][0] / units.fs)
    atoms.calc = load_calculator(model_dir)
    dt = float(cfg["aimd"]["timestep_fs"])
    dyn = VelocityVerlet(atoms, dt * units.fs)
    vel, pos = [], []
    for _ in range(v["vdos_steps"]):
        dyn.run(1)
        vel.append(atoms.get_velocities() * units.fs)
        pos.append(atoms.get_positions())
    masses = atoms.get_masses()
    # vibrations only: each frame's translation and rigid rotation removed, on both sides
    vel = vibrations.internal_velocities(vel, pos, masses)
    if any(p is None for p in aimd["positions"]):
        raise ValueError(f"{aimd_dir}: velocity frames without positions of the same step: cannot remove the rotation")
    aimd["velocities"] = vibrations.internal_velocities(aimd["velocities"], aimd["positions"], masses)
    lag = v["vdos_max_lag_fs"] or 0.25 * min(len(aimd["velocities"]) * aimd["timestep_fs"], len(vel) * dt)
    ref = vibrations.vdos(aimd["velocities"], aimd["symbols"], atoms.get_masses(), aimd["timestep_fs"], max_lag_fs=lag)
    mod = vibrations.vdos(vel, aimd["symbols"], atoms.get_masses(), dt, max_lag_fs=lag)
    overlap = vibrations.vdos_overlap(ref, mod)
    # what the overlap can reach: the AIMD's first half against its second half at the same
    # lag (each half shorter than the whole, so a conservative, lower bound on the AIMD's own
    # statistical agreement)
    half = len(aimd["velocities"]) // 2
    self_overlap = (vibrations.vdos_overlap(
        vibrations.vdos(aimd["velocities"][:half], aimd["symbols"], atoms.get_masses(), aimd["timestep_fs"], max_lag_fs=lag),
        vibrations.vdos(aimd["velocities"][half:2 * half], aimd["symbols"], atoms.get_masses(), aimd["timestep_fs"],
                        max_lag_fs=lag)) if half >= 8 else None)
    out = {"backend": backend, "temperature": temperature, "overlap": overlap, "aimd_self_overlap": self_overlap,
           "aimd": ref, "model": mod,
           # above the resolution: the lowest bin holds what remains of slow, non-vibrational motion
           "aimd_peak_cm1": vibrations.peak_above(ref, 2 * ref["resolution_cm1"]),
           "model_peak_cm1": vibrations.peak_above(mod, 2 * mod["resolution_cm1"]),
           "rigid_motion_removed": True,
           "model_nve_temperature_K": float(atoms.get_temperature())}
    _plot_vdos(ref, mod, f"{backend}, {temperature:g} K: VDOS, ML NVE against AIMD (overlap "
                         + ", ".join(f"{k} {x:.2f}" for k, x in overlap.items()) + ")", out_png)
    write_json(out_json, out)
    log.info("%s at %g K: VDOS overlap %s", backend, temperature, ", ".join(f"{k} {x:.3f}" for k, x in overlap.items()))
    return out


def _plot_vdos(ref: dict, mod: dict, title: str, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ["all"] + sorted(ref["elements"])
    from .report.plotgrid import MAX_PER_ROW, grid

    fig, axes = grid(plt, len(keys), panel=(4, 3.4))
    top = min(ref["frequency_cm1"][-1], 600.0)
    for ax, k in zip(axes, keys):
        for res, label in ((ref, "AIMD"), (mod, "ML NVE")):
            s = res["all"] if k == "all" else res["elements"][k]
            ax.plot(res["frequency_cm1"], s, label=label, lw=1)
        ax.set_xlim(0, top)
        ax.set_xlabel("wavenumber [cm$^{-1}$]")
        ax.set_title(k)
    for ax in axes[::MAX_PER_ROW]:
        ax.set_ylabel("VDOS (unit area)")
    axes[0].legend()
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def plot_spectra(cp2k_json, model_jsons, out_png) -> None:
    """Sorted normal-mode frequencies of CP2K and of each model, one stick spectrum per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = [("CP2K", read_json(cp2k_json))] + [(read_json(f)["backend"], read_json(f)) for f in model_jsons]
    fig, ax = plt.subplots(figsize=(8, 0.6 + 0.6 * len(sets)))
    for row, (label, m) in enumerate(sets):
        f = np.asarray(m["frequencies_cm1"])
        ax.vlines(f, row - 0.35, row + 0.35, color="C3" if row == 0 else "C0", lw=1)
    ax.set_yticks(range(len(sets)), [s[0] for s in sets])
    ax.set_xlabel("normal-mode frequency [cm$^{-1}$] (imaginary as negative)")
    ax.invert_yaxis()
    fig.tight_layout()
    with atomic_path(out_png, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
