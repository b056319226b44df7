"""Beyond MD: relaxed geometry, normal modes and vibrational density of states of a QD.

A force field can have small force errors, run stable MD and give the right pair
distances, and still get the curvature of the energy surface wrong: the CdSe LO phonon
region near 200 cm^-1, ligand modes, the low-frequency modes that couple to excitons. This
module measures that, in eV, Angstrom and cm^-1 throughout:

- normal modes of a structure with any ASE calculator (:func:`normal_modes`: central
  finite differences of forces by :class:`ase.vibrations.Vibrations`, which caches every
  displacement on disk, so a killed run resumes), or from a Hessian computed elsewhere
  (:func:`modes_from_hessian`: CP2K's VIBRATIONAL_ANALYSIS, read by
  :mod:`qdff.cp2k.run`). The 6 rigid-body modes of a free cluster (3 translations, 3
  rotations) are projected out of the mass-weighted Hessian (the Eckart conditions, as
  CP2K does with FULLY_PERIODIC F) and reported separately: their curvature before the
  projection is a check of the Hessian (near zero at a minimum computed accurately);
- the comparison of two sets of modes (:func:`compare_modes`): sorted frequencies, their
  mean absolute error over the 3N-6 vibrations, and the imaginary modes of each;
- the vibrational density of states from the mass-weighted velocity autocorrelation, per
  element (:func:`vdos`), an overlap score between two of them (:func:`vdos_overlap`), and
  a model's NVE VDOS against the AIMD's from the same start (:func:`compare_vdos`);
- relaxation with a model (:func:`relax`) and the RMSD after optimal superposition to the
  reference minimum (:func:`aligned_rmsd`).

Imaginary frequencies are written as negative numbers (the convention of CP2K's output).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from ase import Atoms, units

log = logging.getLogger(__name__)

#: cm^-1 per (1/fs): wavenumber = frequency / c
CM1_PER_INV_FS = 1e15 / (units._c * 100.0)
#: an imaginary frequency counts as a mode (not finite-difference noise) beyond this, cm^-1
IMAGINARY_TOL_CM1 = 10.0


# --------------------------------------------------------------------------- normal modes


def _sqrt_signed(eigenvalues_eV_per_A2_amu) -> np.ndarray:
    """Eigenvalues of the mass-weighted Hessian [eV/(A^2 amu)] -> frequencies [cm^-1],
    imaginary ones negative. The factor is ASE's (ase.vibrations.VibrationsData):
    hbar * sqrt(k/m) in eV, divided by ase.units.invcm."""
    s = units._hbar * 1e10 / np.sqrt(units._e * units._amu)  # eV per sqrt(eV/(A^2 amu))
    lam = np.asarray(eigenvalues_eV_per_A2_amu, dtype=float)
    return np.sign(lam) * s * np.sqrt(np.abs(lam)) / units.invcm


def rigid_body_basis(atoms: Atoms) -> np.ndarray:
    """Orthonormal basis (3N x k) of the mass-weighted rigid-body motions of a free cluster:
    3 translations and 3 rotations about the centre of mass (k = 5 for a linear molecule)."""
    m = atoms.get_masses()
    sq = np.sqrt(m)
    r = atoms.positions - atoms.get_center_of_mass()
    n = len(atoms)
    vecs = []
    for k in range(3):
        t = np.zeros((n, 3))
        t[:, k] = sq
        vecs.append(t.ravel())
    for k in range(3):
        axis = np.zeros(3)
        axis[k] = 1.0
        vecs.append((np.cross(axis, r) * sq[:, None]).ravel())
    q, rr = np.linalg.qr(np.array(vecs).T)
    keep = np.abs(np.diag(rr)) > 1e-8 * np.abs(rr).max()
    return q[:, keep]


def modes_from_hessian(atoms: Atoms, hessian) -> dict:
    """Frequencies [cm^-1] of the Cartesian Hessian ``hessian`` [eV/A^2] (3N x 3N) of ``atoms``.

    ``frequencies_cm1``: the 3N-6 vibrations, ascending, from the mass-weighted Hessian with
    the rigid-body motions projected out; ``rigid_cm1``: the curvature along those motions
    (the 6 eigenvalues of the Hessian restricted to them), near zero for a free cluster at a
    minimum; ``all_cm1``: every eigenvalue of the unprojected Hessian, ascending (what
    ase.vibrations reports). ``asymmetry``: max |H - H^T| / max |H| of the input (finite
    differences are not exactly symmetric); the symmetrised Hessian is what is diagonalised.
    """
    H = np.asarray(hessian, dtype=float)
    n3 = 3 * len(atoms)
    if H.shape != (n3, n3):
        raise ValueError(f"Hessian of shape {H.shape} for {len(atoms)} atoms (expected {n3} x {n3})")
    asym = float(np.abs(H - H.T).max() / max(np.abs(H).max(), 1e-300))
    H = 0.5 * (H + H.T)
    inv_sq = 1.0 / np.sqrt(np.repeat(atoms.get_masses(), 3))
    Hm = H * np.outer(inv_sq, inv_sq)
    all_cm1 = _sqrt_signed(np.linalg.eigvalsh(Hm))
    R = rigid_body_basis(atoms)
    rigid = _sqrt_signed(np.linalg.eigvalsh(R.T @ Hm @ R))
    # the vibrations: the Hessian in the orthogonal complement of the rigid-body motions
    q, _ = np.linalg.qr(np.hstack([R, np.eye(n3)]))
    V = q[:, R.shape[1] : n3]
    lam, vec = np.linalg.eigh(V.T @ Hm @ V)
    modes = (V @ vec).T * inv_sq  # Cartesian displacement pattern of each mode (rows)
    modes /= np.linalg.norm(modes, axis=1, keepdims=True)
    return {
        "n_atoms": len(atoms),
        "frequencies_cm1": _sqrt_signed(lam).tolist(),
        "rigid_cm1": sorted(rigid.tolist(), key=abs),
        "all_cm1": all_cm1.tolist(),
        "n_rigid": int(R.shape[1]),
        "n_imaginary": int(np.sum(_sqrt_signed(lam) < -IMAGINARY_TOL_CM1)),
        "asymmetry": asym,
        "modes": modes.reshape(-1, len(atoms), 3),
    }


def hessian_ase(atoms: Atoms, calc, *, delta: float = 0.01, cache_dir=None) -> np.ndarray:
    """Cartesian Hessian [eV/A^2] by central differences of ``calc``'s forces
    (:class:`ase.vibrations.Vibrations`, nfree=2: 6N + 1 force calls, each displacement
    ``delta`` A). ``cache_dir``: where ase.vibrations keeps one file per displacement, so that
    a rerun only computes what is missing; default a temporary directory."""
    import tempfile

    from ase.vibrations import Vibrations

    a = atoms.copy()
    a.calc = calc
    a.set_constraint()
    if cache_dir is None:
        with tempfile.TemporaryDirectory(prefix="qdff-vib-") as tmp:
            return hessian_ase(atoms, calc, delta=delta, cache_dir=Path(tmp) / "vib")
    vib = Vibrations(a, name=str(cache_dir), delta=delta, nfree=2)
    vib.run()
    return vib.get_vibrations().get_hessian_2d()


def normal_modes(atoms: Atoms, calc, *, delta: float = 0.01, cache_dir=None) -> dict:
    """:func:`modes_from_hessian` of the finite-difference Hessian of ``calc`` at ``atoms``,
    with the wall time and the number of force calls."""
    t0 = time.perf_counter()
    H = hessian_ase(atoms, calc, delta=delta, cache_dir=cache_dir)
    out = modes_from_hessian(atoms, H)
    out.update(delta_A=delta, force_calls=6 * len(atoms) + 1, seconds=time.perf_counter() - t0, hessian_eV_per_A2=H)
    log.info(
        "normal modes of %d atoms: %d vibrations %.1f..%.1f cm^-1, %d imaginary; rigid-body "
        "curvature up to %.1f cm^-1 (%.1f s)",
        len(atoms),
        len(out["frequencies_cm1"]),
        out["frequencies_cm1"][0],
        out["frequencies_cm1"][-1],
        out["n_imaginary"],
        max(abs(f) for f in out["rigid_cm1"]),
        out["seconds"],
    )
    return out


def compare_modes(reference: dict, model: dict, imaginary_tol_cm1: float = IMAGINARY_TOL_CM1) -> dict:
    """Sorted-frequency comparison of two results of :func:`modes_from_hessian` for the same
    atoms: mean absolute and largest error [cm^-1] over the 3N-6 vibrations (pairs in
    ascending order, the usual comparison when modes cannot be matched one to one), the
    imaginary modes of each (below -``imaginary_tol_cm1``)."""
    ref = np.sort(np.asarray(reference["frequencies_cm1"], dtype=float))
    mod = np.sort(np.asarray(model["frequencies_cm1"], dtype=float))
    if ref.shape != mod.shape:
        raise ValueError(f"{len(ref)} reference modes against {len(mod)} model modes: not the same structure")
    err = mod - ref
    return {
        "n_modes": int(len(ref)),
        "frequency_mae_cm1": float(np.mean(np.abs(err))),
        "frequency_max_error_cm1": float(np.max(np.abs(err))),
        "frequency_mean_signed_error_cm1": float(np.mean(err)),
        "n_imaginary_reference": int(np.sum(ref < -imaginary_tol_cm1)),
        "n_imaginary_model": int(np.sum(mod < -imaginary_tol_cm1)),
        "highest_reference_cm1": float(ref[-1]),
        "highest_model_cm1": float(mod[-1]),
        "imaginary_tol_cm1": float(imaginary_tol_cm1),
    }


# --------------------------------------------------------------------------- VDOS


def internal_velocities(velocities, positions, masses) -> np.ndarray:
    """Velocities (frames, atoms, 3) without each frame's centre-of-mass translation and
    rigid rotation (v - v_cm - omega x (r - r_cm), omega = I^-1 L): a free cluster's
    rotation, which neither CP2K's thermostat nor ML-MD removes, otherwise puts the largest
    VDOS peak at 0 cm^-1 (seen in the demo) and weighs into every overlap."""
    v = np.array(velocities, dtype=float)
    x = np.asarray(positions, dtype=float)
    m = np.asarray(masses, dtype=float)
    out = np.empty_like(v)
    for k in range(len(v)):
        r = x[k] - np.average(x[k], axis=0, weights=m)
        w = v[k] - np.average(v[k], axis=0, weights=m)
        L = np.einsum("a,ab->b", m, np.cross(r, w))
        inertia = np.einsum("a,ab,ac->bc", m, r, r)
        inertia = np.trace(inertia) * np.eye(3) - inertia
        omega = np.linalg.lstsq(inertia, L, rcond=None)[0]  # lstsq: a linear molecule is singular
        out[k] = w - np.cross(omega, r)
    return out


def peak_above(result: dict, min_cm1: float, element: str = "all") -> float:
    """Frequency of the highest point of a :func:`vdos` spectrum above ``min_cm1``."""
    f = np.asarray(result["frequency_cm1"])
    s = np.asarray(result["all"] if element == "all" else result["elements"][element])
    m = f >= min_cm1
    return float(f[m][int(np.argmax(s[m]))]) if m.any() else float("nan")


def vdos(velocities, symbols, masses, timestep_fs: float, *, max_lag_fs: float | None = None) -> dict:
    """Vibrational density of states per element from the mass-weighted velocity
    autocorrelation of a trajectory.

    ``velocities``: (frames, atoms, 3) in A/fs, ``timestep_fs`` apart. For each element,
    C(t) = sum_i m_i <v_i(0).v_i(t)> averaged over time origins (by FFT, zero-padded so that
    it is not circular), tapered by a half Hann window over lags 0..max_lag (default a
    quarter of the trajectory: longer lags are averaged over too few origins), and Fourier
    transformed (cosine transform of the even extension). Returns the frequencies [cm^-1]
    and, per element and for all atoms, the spectrum normalised to unit area over cm^-1.
    The resolution is 1 / (2 max_lag) in 1/fs; the highest frequency 1 / (2 timestep).
    """
    v = np.asarray(velocities, dtype=float)
    if v.ndim != 3 or v.shape[2] != 3:
        raise ValueError(f"velocities of shape {v.shape}: expected (frames, atoms, 3)")
    nt = v.shape[0]
    if nt < 8:
        raise ValueError(f"{nt} frames: too few for a velocity autocorrelation")
    lag = nt // 4 if max_lag_fs is None else int(round(max_lag_fs / timestep_fs))
    lag = max(4, min(lag, nt - 1))
    symbols = np.asarray(symbols)
    m = np.asarray(masses, dtype=float)
    nfft = 1 << int(np.ceil(np.log2(2 * nt)))
    spec = np.fft.rfft(v, n=nfft, axis=0)
    acf_all = np.fft.irfft(np.abs(spec) ** 2, n=nfft, axis=0)[:lag]  # (lag, atoms, 3)
    acf_all /= (nt - np.arange(lag))[:, None, None]  # unbiased: average over origins
    window = np.cos(0.5 * np.pi * np.arange(lag) / lag) ** 2  # half Hann, 1 at t=0, 0 at max lag
    n_even = 2 * lag
    freq_cm1 = np.fft.rfftfreq(n_even, d=timestep_fs) * CM1_PER_INV_FS

    def spectrum(mask):
        c = np.einsum("tac,a->t", acf_all[:, mask], m[mask]) * window
        even = np.concatenate([c, [0.0], c[:0:-1]])[:n_even]  # C(-t) = C(t)
        s = np.clip(np.fft.rfft(even).real, 0.0, None)
        area = np.trapezoid(s, freq_cm1) if hasattr(np, "trapezoid") else np.trapz(s, freq_cm1)
        return (s / area if area > 0 else s).tolist()

    out = {
        "frequency_cm1": freq_cm1.tolist(),
        "timestep_fs": float(timestep_fs),
        "frames": int(nt),
        "max_lag_fs": float(lag * timestep_fs),
        "resolution_cm1": float(freq_cm1[1]),
        "elements": {},
        "all": spectrum(np.ones(len(symbols), bool)),
    }
    for el in sorted(set(symbols.tolist())):
        out["elements"][el] = spectrum(symbols == el)
    return out


def vdos_overlap(a: dict, b: dict, max_cm1: float | None = None) -> dict:
    """Overlap score per element (and "all") between two results of :func:`vdos`: 1 - half
    the L1 distance of the unit-area spectra on a common grid (1 identical, 0 disjoint),
    up to ``max_cm1`` (default the lower of the two Nyquist frequencies)."""
    fa, fb = np.asarray(a["frequency_cm1"]), np.asarray(b["frequency_cm1"])
    top = min(fa[-1], fb[-1]) if max_cm1 is None else float(max_cm1)
    step = max(a["resolution_cm1"], b["resolution_cm1"])
    grid = np.arange(0.0, top + 0.5 * step, step)
    trap = np.trapezoid if hasattr(np, "trapezoid") else np.trapz

    def unit(f, s):
        y = np.interp(grid, f, s, right=0.0)
        area = trap(y, grid)
        return y / area if area > 0 else y

    out = {}
    keys = ["all"] + sorted(set(a["elements"]) & set(b["elements"]))
    for k in keys:
        sa = a["all"] if k == "all" else a["elements"][k]
        sb = b["all"] if k == "all" else b["elements"][k]
        out[k] = float(1.0 - 0.5 * trap(np.abs(unit(fa, sa) - unit(fb, sb)), grid))
    return out


def compare_vdos(aimd: dict, calc, timestep_fs: float, steps: int, max_lag_fs: float | None = None) -> dict:
    """The VDOS of ``aimd`` (:func:`qdff.cp2k.output.read_velocities`: symbols, positions,
    velocities in A/fs, time step) against that of an NVE run of ``steps`` with ``calc``,
    started from the AIMD's first frame, positions and velocities; overlap per element.
    ``max_lag_fs``: the autocorrelation's longest lag (default: a quarter of the shorter run)."""
    from ase.md.verlet import VelocityVerlet

    atoms = Atoms(aimd["symbols"], positions=aimd["positions"][0])
    atoms.set_velocities(aimd["velocities"][0] / units.fs)
    atoms.calc = calc
    dt = float(timestep_fs)
    dyn = VelocityVerlet(atoms, dt * units.fs)
    vel, pos = [], []
    for _ in range(steps):
        dyn.run(1)
        vel.append(atoms.get_velocities() * units.fs)
        pos.append(atoms.get_positions())
    masses = atoms.get_masses()
    # vibrations only: each frame's translation and rigid rotation removed, on both sides
    vel = internal_velocities(vel, pos, masses)
    aimd_vel = internal_velocities(aimd["velocities"], aimd["positions"], masses)
    lag = max_lag_fs or 0.25 * min(len(aimd_vel) * aimd["timestep_fs"], len(vel) * dt)
    ref = vdos(aimd_vel, aimd["symbols"], masses, aimd["timestep_fs"], max_lag_fs=lag)
    mod = vdos(vel, aimd["symbols"], masses, dt, max_lag_fs=lag)
    overlap = vdos_overlap(ref, mod)
    # what the overlap can reach: the AIMD's first half against its second half at the same
    # lag (each half shorter than the whole, so a conservative, lower bound on the AIMD's own
    # statistical agreement)
    half = len(aimd_vel) // 2
    self_overlap = (
        vdos_overlap(
            vdos(aimd_vel[:half], aimd["symbols"], masses, aimd["timestep_fs"], max_lag_fs=lag),
            vdos(aimd_vel[half : 2 * half], aimd["symbols"], masses, aimd["timestep_fs"], max_lag_fs=lag),
        )
        if half >= 8
        else None
    )
    return {
        "overlap": overlap,
        "aimd_self_overlap": self_overlap,
        "aimd": ref,
        "model": mod,
        # above the resolution: the lowest bin holds what remains of slow, non-vibrational motion
        "aimd_peak_cm1": peak_above(ref, 2 * ref["resolution_cm1"]),
        "model_peak_cm1": peak_above(mod, 2 * mod["resolution_cm1"]),
        "rigid_motion_removed": True,
        "model_nve_temperature_K": float(atoms.get_temperature()),
    }


def peak_cm1(result: dict, element: str = "all") -> float:
    """Frequency of the highest point of a :func:`vdos` spectrum, cm^-1."""
    s = result["all"] if element == "all" else result["elements"][element]
    return float(result["frequency_cm1"][int(np.argmax(s))])


# --------------------------------------------------------------------------- relaxation


def aligned_rmsd(reference: Atoms, atoms: Atoms) -> float:
    """RMSD [A] of ``atoms`` from ``reference`` (same atoms, same order) after the optimal
    rotation and translation (ase.build.minimize_rotation_and_translation: the quaternion
    form of Kabsch's superposition, no reflection)."""
    from ase.build import minimize_rotation_and_translation

    if reference.get_chemical_symbols() != atoms.get_chemical_symbols():
        raise ValueError("aligned_rmsd: the two structures do not list the same atoms in the same order")
    ref, mov = reference.copy(), atoms.copy()
    ref.set_pbc(False)
    mov.set_pbc(False)
    minimize_rotation_and_translation(ref, mov)
    return float(np.sqrt(np.mean(np.sum((mov.positions - ref.positions) ** 2, axis=1))))


def bond_lengths(atoms: Atoms, factor: float = 1.2) -> dict[str, list[float]]:
    """Bonded distances per element pair (sorted names, "Cd-Se"), A: pairs closer than
    ``factor`` x the sum of ASE's covalent radii (the criterion of qdff.validation.mlmd)."""
    from ase.data import covalent_radii

    from .stability import pair_name

    out: dict[str, list[float]] = {}
    z = atoms.numbers
    d = atoms.get_all_distances()
    n = len(atoms)
    for i in range(n):
        for j in range(i + 1, n):
            if d[i, j] < factor * (covalent_radii[z[i]] + covalent_radii[z[j]]):
                out.setdefault(pair_name(atoms[i].symbol, atoms[j].symbol), []).append(float(d[i, j]))
    return {k: sorted(v) for k, v in sorted(out.items())}


def relax(atoms: Atoms, calc, *, fmax: float = 0.01, steps: int = 1000) -> tuple[Atoms, dict]:
    """Relax ``atoms`` with ``calc`` (ase.optimize: LBFGS beyond 100 atoms, where the full
    3N x 3N BFGS Hessian gets costly, else BFGS, as cp2k_input does for CP2K's GEO_OPT) to
    a largest force of ``fmax`` eV/A. Returns the relaxed copy and a summary."""
    from ase.optimize import BFGS, LBFGS

    a = atoms.copy()
    a.set_constraint()
    a.calc = calc
    e0 = float(a.get_potential_energy())
    opt_cls = LBFGS if len(a) > 100 else BFGS
    opt = opt_cls(a, logfile=None)
    t0 = time.perf_counter()
    converged = bool(opt.run(fmax=fmax, steps=steps))
    f = float(np.linalg.norm(a.get_forces(), axis=1).max())
    summary = {
        "optimizer": opt_cls.__name__,
        "fmax": fmax,
        "converged": converged,
        "steps": int(opt.nsteps),
        "max_force_eV_per_A": f,
        "energy_start_eV": e0,
        "energy_eV": float(a.get_potential_energy()),
        "seconds": time.perf_counter() - t0,
    }
    out = a.copy()
    out.calc = None
    return out, summary


def relaxation_report(
    reference: Atoms,
    calc,
    *,
    fmax: float = 0.01,
    steps: int = 1000,
    perturbations: int = 0,
    rattle_A: float = 0.05,
    seed: int = 0,
    rmsd_tol_A: float = 0.1,
) -> tuple[dict, list]:
    """Relax with ``calc`` from the reference minimum and from ``perturbations`` starts
    rattled by ``rattle_A`` (Gaussian, A); per start: RMSD after alignment to the reference,
    energy difference under the model (E(relaxed) - E(reference)) per atom, bond-length
    changes per element pair, and whether it left the reference basin (RMSD > ``rmsd_tol_A``
    or bonds formed or broken). Returns the summary and the relaxed structures."""
    ref = reference.copy()
    ref.set_constraint()
    ref.calc = calc
    e_ref = float(ref.get_potential_energy())
    f_ref = float(np.linalg.norm(ref.get_forces(), axis=1).max())
    ref_bonds = bond_lengths(reference)
    rng = np.random.default_rng(seed)
    runs, structures = [], []
    for k in range(perturbations + 1):
        start = reference.copy()
        if k:
            start.positions = start.positions + rng.normal(scale=rattle_A, size=start.positions.shape)
        relaxed, s = relax(start, calc, fmax=fmax, steps=steps)
        bonds = bond_lengths(relaxed)
        rmsd = aligned_rmsd(reference, relaxed)
        changed = {p: len(bonds.get(p, [])) - len(v) for p, v in ref_bonds.items() if len(bonds.get(p, [])) != len(v)}
        changed.update({p: len(v) for p, v in bonds.items() if p not in ref_bonds})
        pair = {}
        for p, v in ref_bonds.items():
            w = bonds.get(p, [])
            if len(w) == len(v) and v:
                diff = np.asarray(w) - np.asarray(v)  # sorted lengths, pair by pair
                pair[p] = {
                    "reference_mean_A": float(np.mean(v)),
                    "model_mean_A": float(np.mean(w)),
                    "mean_abs_change_A": float(np.mean(np.abs(diff))),
                    "max_abs_change_A": float(np.max(np.abs(diff))),
                }
        runs.append(
            {
                "start": "reference" if k == 0 else f"rattled {rattle_A:g} A #{k}",
                **s,
                "rmsd_A": rmsd,
                "energy_difference_meV_per_atom": 1000 * (s["energy_eV"] - e_ref) / len(reference),
                "bond_count_change": changed,
                "bonds": pair,
                "different_minimum": bool(rmsd > rmsd_tol_A or changed),
            }
        )
        structures.append(relaxed)
    return {
        "n_atoms": len(reference),
        "reference_max_force_eV_per_A": f_ref,
        "reference_energy_eV": e_ref,
        "rmsd_tol_A": rmsd_tol_A,
        "runs": runs,
        "rmsd_A": runs[0]["rmsd_A"],
        "energy_difference_meV_per_atom": runs[0]["energy_difference_meV_per_atom"],
        "different_minimum_any": any(r["different_minimum"] for r in runs),
        "rmsd_max_A": max(r["rmsd_A"] for r in runs),
    }, structures
