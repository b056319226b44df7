"""The metrics table: one row per model with its held-out errors, ML-MD stability and NVE
statistics beside CP2K's, pair-distance overlap against the AIMD's own agreement, and speed
against CP2K, with the hardware of both sides named."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..cp2k.output import read_ener
from ..cp2k.run import MD_PROJECT
from ..fileio import read_json
from .mlmd import energy_stats

#: the backend name under which the reference (CP2K's own MD under the ML-MD protocol) runs
REFERENCE = "reference"


def metrics_table(rows: list[dict], mlmd_runs: list[dict], rdfs: list[dict], cp2k: dict) -> list[dict]:
    """``rows`` (each model's held-out metrics) extended in place with its ML-MD runs, pair-distance
    comparisons and speed against ``cp2k`` (:func:`cp2k_runs`); returns ``rows``. Where the
    reference ran as a model (``mlmd.reference``: ML-MD runs of backend "reference"), a row of its
    own is appended: no held-out errors (it made the labels), every other column as a model's."""
    ref = [r for r in mlmd_runs if r.get("backend") == REFERENCE]
    if ref and not any(row["backend"] == REFERENCE for row in rows):
        rows.append(
            {
                "backend": REFERENCE,
                "reference": True,
                "model_kind": f"the reference itself (null test): CP2K {ref[0].get('level_of_theory', '')} MD "
                "under the ML-MD protocol; no held-out errors (it made the labels)",
            }
        )
    for row in rows:
        runs = [r for r in mlmd_runs if r.get("backend") == row["backend"]]
        if runs:
            _mlmd_rows(row, runs, cp2k)
            _speed(row, runs, cp2k)
        mine = [r for r in rdfs if r.get("backend") == row["backend"]]
        if mine:
            _pair_distance_rows(row, mine)
    return rows


#: suffixes of the spread of a held-out error over the models of training.seeds (:func:`seed_spread`)
SPREAD_SUFFIXES = ("_mean", "_std", "_min", "_max", "_n")


def is_spread_key(key: str) -> bool:
    """Whether ``key`` is a statistic :func:`seed_spread` added, not an error of one model."""
    return key.endswith(SPREAD_SUFFIXES)


def error_keys(row: dict) -> list[str]:
    """The held-out errors in one model's metrics (:func:`qdff.validation.evaluate.evaluate`): its
    numeric energy_* and force_* keys, overall and per element, site class and temperature."""
    return [
        k
        for k, v in row.items()
        if k.startswith(("energy_", "force_"))
        and isinstance(v, (int, float))
        and not isinstance(v, bool)
        and not is_spread_key(k)
    ]


def seed_mean(row: dict, key: str):
    """A held-out error of a metrics row as models are ranked by it: the mean over the models
    of training.seeds (``<key>_mean`` of :func:`seed_spread`) where there are several, else
    model 0's own ``<key>``; None where the row has neither. One rule for every place that
    ranks models (the recommendation, the report's summary, the index), so that they agree."""
    return row.get(f"{key}_mean", row.get(key))


def seed_spread(rows: list[dict], replicas: list[dict]) -> list[dict]:
    """Extend in place, and return, the ``rows`` (the metrics of model 0 of each backend) of every
    backend that has ``replicas`` (metrics of its models 1.. of training.seeds, matched by their
    ``backend``) with ``n_models`` and, for each of model 0's held-out errors (:func:`error_keys`),
    the mean, sample standard deviation (ddof 1), min and max over all its models, and how many
    of them have a finite value: ``<error>_mean``, ``_std``, ``_min``, ``_max``, ``_n``. Model 0's
    own values stay in ``<error>``."""
    for row in rows:
        mine = [r for r in replicas if r.get("backend") == row["backend"]]
        if not mine:
            continue
        models = [row, *mine]
        row["n_models"] = len(models)
        for key in error_keys(row):
            v = np.array([m.get(key, np.nan) for m in models], dtype=float)
            v = v[np.isfinite(v)]
            row[f"{key}_mean"] = float(v.mean()) if len(v) else float("nan")
            row[f"{key}_std"] = float(v.std(ddof=1)) if len(v) > 1 else float("nan")
            row[f"{key}_min"] = float(v.min()) if len(v) else float("nan")
            row[f"{key}_max"] = float(v.max()) if len(v) else float("nan")
            row[f"{key}_n"] = int(len(v))
    return rows


def cp2k_runs(aimd_files) -> dict:
    """Per AIMD temperature: CP2K's seconds per step, where and how it ran (run.json), and the
    drift and fluctuation of its conserved quantity (from the run's .ener file)."""
    out = {}
    for f in aimd_files:
        s = read_json(f)
        ener = Path(f).parent / f"{s.get('project', MD_PROJECT)}-1.ener"
        if ener.is_file() and s.get("n_atoms"):
            e = read_ener(ener)
            stats = energy_stats(e["time"], e["conserved"], s["n_atoms"])
            s.update(
                conserved_drift_meV_per_atom_per_ps=stats["drift_meV_per_atom_per_ps"],
                conserved_std_meV_per_atom=stats["std_meV_per_atom"],
            )
        out[float(s["temperature"])] = s
    return out


def _cores(cp2k: dict):
    ranks, threads = cp2k.get("mpi_ranks"), cp2k.get("threads_per_rank", cp2k.get("threads"))
    return ranks * threads if ranks and threads else None


def _mlmd_cores(hw: dict):
    """CPU cores an ML-MD run used; None on a GPU (core-seconds do not compare there)."""
    if hw and hw.get("cp2k_threads"):
        return hw["cp2k_threads"]
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
    row["speedup_vs_cp2k"] = float(
        np.mean([s["seconds_per_step_median"] / r["seconds_per_step"] for s, r in zip(c, same_t)])
    )
    hw = same_t[0].get("hardware") or {}
    cp2k_cores, ml_cores = _cores(c[0]), _mlmd_cores(hw)
    row["cp2k_cores"], row["mlmd_cores"] = cp2k_cores, ml_cores
    if cp2k_cores and ml_cores:
        row["speedup_per_core_vs_cp2k"] = float(
            np.mean(
                [
                    s["seconds_per_step_median"] * cp2k_cores / (r["seconds_per_step"] * ml_cores)
                    for s, r in zip(c, same_t)
                ]
            )
        )
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
    if engine == "cp2k":  # the reference: CP2K's own MD
        parts = ["CP2K MD", "CPU", f"{hw.get('cp2k_threads', '?')} thread(s)"]
        parts += [hw[k] for k in ("cpu_model", "host") if hw.get(k)]
        return ", ".join(parts)
    parts = [
        "LAMMPS (pair_style deepmd)" if engine == "lammps" else "ASE",
        f"{dev} ({hw['device_name']})" if dev.startswith("cuda") else "CPU",
        f"{hw.get('torch_threads', '?')} torch thread(s)",
    ]
    parts += [hw[k] for k in ("cpu_model", "host") if hw.get(k)]
    return ", ".join(parts)


def _mlmd_rows(row: dict, runs: list, cp2k: dict) -> None:
    row["mlmd_stable"] = all(r["stable"] for r in runs)
    # at the AIMD temperatures, as the speed-up against CP2K (stress runs are not compared)
    timed = [r for r in runs if not r.get("stress")] or runs
    row["mlmd_seconds_per_step"] = float(np.mean([r["seconds_per_step"] for r in timed]))
    row["mlmd_verdicts"] = "; ".join(
        f"{r['temperature']:g} K{' (stress)' if r.get('stress') else ''}: "
        + ("stable" if r["stable"] else f"UNSTABLE ({r['reason']})")
        for r in runs
    )
    drifts = [abs(r.get("nve_drift_meV_per_atom_per_ps", float("nan"))) for r in runs]
    drifts = [d for d in drifts if np.isfinite(d)]
    row["mlmd_nve_drift_meV_per_atom_per_ps"] = max(drifts) if drifts else float("nan")
    per_t = []
    for r in runs:
        c = cp2k.get(float(r.get("reference_temperature", r["temperature"])), {})
        t = {
            k: r.get(k)
            for k in (
                "temperature",
                "stress",
                "stable",
                "reason",
                "seeds",
                "unstable_seeds",
                "below_floor_episodes",
                "below_floor_observed_fs",
                "bonds_start",
                "bonds_broken_max",
                "bonds_formed_max",
                "aimd_bonds_broken_max",
                "aimd_bonds_formed_max",
                "coordination",
                "aimd_coordination",
                "bond_cutoffs",
                "nve_temperature_mean",
                "nve_drift_meV_per_atom_per_ps",
                "nve_energy_std_meV_per_atom",
                "reference_temperature",
                "structural_fidelity",
            )
        }
        t.update(
            cp2k_conserved_drift_meV_per_atom_per_ps=c.get("conserved_drift_meV_per_atom_per_ps"),
            cp2k_conserved_std_meV_per_atom=c.get("conserved_std_meV_per_atom"),
            cp2k_temperature=c.get("temperature"),
        )
        per_t.append(t)
        label = f"{r['temperature']:g}K"
        for k in ("bonds_broken_max", "bonds_formed_max", "nve_temperature_mean", "nve_energy_std_meV_per_atom"):
            if r.get(k) is not None:
                row[f"mlmd_{k}_{label}"] = r[k]
        _fidelity_row(row, label, r.get("structural_fidelity") or {})
    row["mlmd_per_temperature"] = per_t
    conserved = [
        abs(t["cp2k_conserved_drift_meV_per_atom_per_ps"])
        for t in per_t
        if t["cp2k_conserved_drift_meV_per_atom_per_ps"] is not None and not t["stress"]
    ]
    if conserved:
        row["cp2k_conserved_drift_meV_per_atom_per_ps"] = max(conserved)


def fidelity_outside(fid: dict) -> str:
    """The structural-fidelity quantities whose ML-MD value (the seeds' mean) lies outside the
    AIMD's interval, e.g. "coordination Cd above; bond length Cd-Se below" ("" when none)."""
    out = []
    for key, q in (fid.get("quantities") or {}).items():
        entries = {"": q} if "mlmd_mean" in q else q
        for sub, e in entries.items():
            if e.get("grade") in ("above", "below"):
                out.append(" ".join(x for x in (key.removesuffix("_A").replace("_", " "), sub, e["grade"]) if x))
    return "; ".join(out)


def _fidelity_row(row: dict, label: str, fid: dict) -> None:
    """Flat columns of one temperature's structural fidelity (metrics.csv keeps scalars only):
    the bond-change rates with their grades, and what lies outside the AIMD's interval (only
    where there is an AIMD at that temperature)."""
    q = fid.get("quantities") or {}
    for key in ("bond_changes_per_ps", "ligand_bond_changes_per_ps"):
        if key in q:
            row[f"mlmd_{key}_{label}"] = q[key]["mlmd_mean"]
            if "aimd" in q[key]:
                row[f"aimd_{key}_{label}"] = q[key]["aimd"]
                row[f"mlmd_{key}_grade_{label}"] = q[key]["grade"]
    if fid.get("aimd_frames"):
        row[f"mlmd_fidelity_outside_{label}"] = fidelity_outside(fid)


def _pair_distance_rows(row: dict, mine: list) -> None:
    """Overlap scores of the pair-distance distributions (mean over seeds), the AIMD
    self-agreement beside the worst with the seeds' range and Wasserstein distances, how many
    seeds are inside the AIMD interval, and first-peak positions and widths."""
    peaks, below, worst, seeds = [], [], None, []
    for r in mine:
        T = f"{r['temperature']:g}"
        for pair, score in r["overlap"].items():
            row[f"pair_distance_overlap_{pair}_{T}K"] = score
            if worst is None or score < worst[0]:
                worst = (score, pair, r)
        below += [f"{p} {T} K" for p in r.get("below_reference_interval", [])]
        if r.get("seeds_inside"):
            seeds.append(
                f"{T} K: "
                + ", ".join(f"{p} {k}/{r['seeds_scored']}" for p, k in r["seeds_inside"].items())
                + f" ({r.get('reference_pairs')} AIMD pair(s))"
            )
        fp = r.get("first_peak", {})
        for pair, ref in fp.get("reference", {}).items():
            ml = fp.get("model", {}).get(pair, {})
            peaks.append(
                {
                    "temperature": r["temperature"],
                    "pair": pair,
                    "aimd_position_A": ref["position_A"],
                    "mlmd_position_A": ml.get("position_A"),
                    "aimd_fwhm_A": ref["fwhm_A"],
                    "mlmd_fwhm_A": ml.get("fwhm_A"),
                }
            )
    row["pair_distance_overlap_min"] = worst[0] if worst else float("nan")
    if worst:
        score, pair, r = worst
        row["pair_distance_overlap_worst"] = f"{pair}, {r['temperature']:g} K"
        row["pair_distance_aimd_overlap_at_worst"] = r["reference_overlap"][pair]
        iv = r.get("reference_interval", {}).get(pair)
        if iv:
            row["pair_distance_aimd_interval_at_worst"] = f"{iv[0]:.2f}-{iv[1]:.2f}"
        rng = r.get("overlap_range", {}).get(pair)
        if rng:
            row["pair_distance_overlap_seeds_at_worst"] = f"{rng[0]:.2f}-{rng[1]:.2f}"
        if pair in r.get("wasserstein_A", {}):
            row["pair_distance_wasserstein_A_at_worst"] = r["wasserstein_A"][pair]
            wr = r.get("reference_wasserstein_range_A", {}).get(pair)
            if wr:
                row["pair_distance_aimd_wasserstein_A_at_worst"] = f"{wr[0]:.3f}-{wr[1]:.3f}"
        row["pair_distance_frames_per_block"] = r.get("frames_per_block")
    row["pair_distance_below_aimd_interval"] = "; ".join(below) if below else "none"
    # the same, as a list: the pair-distance check of qdff.validation.recommend
    row["pair_distance_outside"] = below
    if seeds:
        row["pair_distance_seeds_inside"] = "; ".join(seeds)
    row["pair_distance_first_peaks"] = peaks
