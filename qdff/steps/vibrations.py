"""Steps of rules/vibrations.smk: CP2K's normal modes, a model's modes and relaxations at
CP2K's minimum, the VDOS against AIMD, and the spectra plot."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from ase.io import write

from ..cp2k import output as cp2k_output
from ..cp2k import run as cp2k_run
from ..data import dataset
from ..fileio import atomic_path, read_json, write_json
from ..validation.vibration_plots import plot_spectra, plot_vdos

log = logging.getLogger(__name__)


def _modes_json(modes: dict, **extra) -> dict:
    """A :func:`qdff.validation.vibrations.modes_from_hessian` result without its arrays, for JSON."""
    return {k: v for k, v in modes.items() if k not in ("modes", "hessian_eV_per_A2")} | extra


def compute_normal_modes_cp2k(
    structure_file, workdir, out_json, out_minimum, *, structure: dict, cp2k: dict, launch, vibrations: dict
) -> dict:
    """CP2K's reference: a tight GEO_OPT from ``structure_file`` (the relaxed one), then CP2K's
    VIBRATIONAL_ANALYSIS; writes the minimum (the reference of every comparison) and the modes."""
    from ..validation import vibrations as vib

    v = vibrations
    res = cp2k_run.vibrational_analysis(
        dataset.read_structure(structure_file),
        cp2k_run.settings(structure, cp2k, launch),
        workdir,
        max_force=v["cp2k_max_force"],
        dx_bohr=v["cp2k_dx_bohr"],
    )
    modes = vib.modes_from_hessian(res["minimum"], res["hessian_eV_per_A2"])
    printed = res["cp2k_frequencies_cm1"]
    out = _modes_json(
        modes,
        source="cp2k",
        cp2k_frequencies_cm1=printed,
        preset=res["preset"],
        level_of_theory=res["level_of_theory"],
        dx_bohr=res["dx_bohr"],
        max_force_Ha_per_bohr=res["max_force_Ha_per_bohr"],
        relax_converged=res["relax_converged"],
        cp2k_seconds=res["seconds"],
        max_deviation_from_cp2k_printed_cm1=float(
            np.max(np.abs(np.asarray(modes["frequencies_cm1"]) - np.asarray(printed)))
        )
        if len(printed) == len(modes["frequencies_cm1"])
        else None,
    )
    np.save(Path(out_json).with_name("hessian_eV_per_A2.npy"), res["hessian_eV_per_A2"])
    with atomic_path(out_minimum, suffix=".extxyz") as tmp:
        write(tmp, res["minimum"], format="extxyz")
    write_json(out_json, out)
    return out


def compute_normal_modes_model(
    backend: str, model_dir, minimum, reference_json, out_json, cache_dir, *, vibrations: dict
) -> dict:
    """A model's normal modes at CP2K's minimum (ase.vibrations, displacements cached in
    ``cache_dir``) and their comparison with CP2K's. At CP2K's minimum, not the model's own:
    the same structure for both, so that sorted frequencies compare; the model's residual
    forces there are reported (the modes of the model's own minimum differ by what
    relax_with_model measures)."""
    from ..training.models import load_calculator
    from ..validation import vibrations as vib

    atoms = dataset.read_structure(minimum)
    calc = load_calculator(model_dir)
    a = atoms.copy()
    a.calc = calc
    fmax = float(np.linalg.norm(a.get_forces(), axis=1).max())
    modes = vib.normal_modes(atoms, calc, delta=vibrations["delta_A"], cache_dir=Path(cache_dir) / "vib")
    ref = read_json(reference_json)
    cmp = vib.compare_modes(ref, modes, vibrations["imaginary_tol_cm1"])
    out = _modes_json(modes, source=backend, backend=backend, max_force_at_cp2k_minimum_eV_per_A=fmax, comparison=cmp)
    write_json(out_json, out)
    log.info(
        "%s: frequency MAE %.1f cm^-1 against CP2K over %d modes (largest error %.1f), imaginary %d (CP2K %d)",
        backend,
        cmp["frequency_mae_cm1"],
        cmp["n_modes"],
        cmp["frequency_max_error_cm1"],
        cmp["n_imaginary_model"],
        cmp["n_imaginary_reference"],
    )
    return out


def relax_with_model(backend: str, model_dir, minimum, out_json, out_structures, *, vibrations: dict) -> dict:
    """Relaxations with a model from CP2K's minimum and from perturbed starts (qdff.validation.vibrations)."""
    from ..training.models import load_calculator
    from ..validation import vibrations as vib

    v = vibrations
    report, structures = vib.relaxation_report(
        dataset.read_structure(minimum),
        load_calculator(model_dir),
        fmax=v["relax_fmax"],
        steps=v["relax_steps"],
        perturbations=v["perturbations"],
        rattle_A=v["rattle_A"],
        seed=v["seed"],
        rmsd_tol_A=v["rmsd_tol_A"],
    )
    report["backend"] = backend
    for a, r in zip(structures, report["runs"]):
        a.info.update(start=r["start"], rmsd_A=r["rmsd_A"])
    with atomic_path(out_structures, suffix=".extxyz") as tmp:
        write(tmp, structures, format="extxyz")
    write_json(out_json, report)
    log.info(
        "%s: relaxed from CP2K's minimum: RMSD %.3f A, dE %.2f meV/atom; worst of %d starts %.3f A%s",
        backend,
        report["rmsd_A"],
        report["energy_difference_meV_per_atom"],
        len(report["runs"]),
        report["rmsd_max_A"],
        "; a DIFFERENT minimum" if report["different_minimum_any"] else "",
    )
    return report


def compute_vdos(
    backend: str,
    model_dir,
    aimd_dir,
    out_json,
    out_png,
    *,
    temperature: float,
    vibrations: dict,
    timestep_fs: float,
    equilibration_fs: float,
) -> dict:
    """VDOS of the AIMD run at ``temperature`` (CP2K's velocities) and of an NVE run with the
    model started from its first equilibrated frame, positions and velocities; overlap per
    element (:func:`qdff.validation.vibrations.compare_vdos`)."""
    from ..training.models import load_calculator
    from ..validation import vibrations as vib

    v = vibrations
    aimd = cp2k_output.read_velocities(aimd_dir, equilibration_fs)
    if len(aimd["velocities"]) < 8:
        raise ValueError(
            f"{aimd_dir}: {len(aimd['velocities'])} velocity frames after equilibration: too few for a VDOS"
        )
    if any(p is None for p in aimd["positions"]):
        raise ValueError(f"{aimd_dir}: velocity frames without positions of the same step: cannot remove the rotation")
    # the NVE run takes the AIMD's time step
    cmp = vib.compare_vdos(aimd, load_calculator(model_dir), timestep_fs, v["vdos_steps"], v["vdos_max_lag_fs"])
    out = {"backend": backend, "temperature": temperature} | cmp
    overlap = cmp["overlap"]
    plot_vdos(
        cmp["aimd"],
        cmp["model"],
        f"{backend}, {temperature:g} K: VDOS, ML NVE against AIMD (overlap "
        + ", ".join(f"{k} {x:.2f}" for k, x in overlap.items())
        + ")",
        out_png,
    )
    write_json(out_json, out)
    log.info("%s at %g K: VDOS overlap %s", backend, temperature, ", ".join(f"{k} {x:.3f}" for k, x in overlap.items()))
    return out


def plot_normal_modes(cp2k_json, model_jsons, out_png) -> None:
    """Sorted normal-mode frequencies of CP2K and of each model, one stick spectrum per row."""
    plot_spectra(read_json(cp2k_json), [read_json(f) for f in model_jsons], out_png)
