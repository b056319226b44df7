"""ML-MD with a trained model: does the force field keep the cluster together?

Low test errors do not guarantee stable MD. Each model runs Langevin MD (ASE) from an
AIMD frame at each AIMD temperature; the run is judged unstable, and stopped, when a
value is not finite, an atom's nearest neighbour moves farther than ``bond_factor``
times the largest nearest-neighbour distance seen in AIMD (a bond broken, an atom
leaving), or two atoms come closer than half the smallest AIMD distance (a collapse).
An unstable model is a result, not an error: the pipeline goes on and reports it.
"""
from __future__ import annotations

import logging
import time

import numpy as np
from ase import units
from ase.md.langevin import Langevin
from ase.md.verlet import VelocityVerlet
from ase.constraints import FixCom
from ase.md.velocitydistribution import Stationary, ZeroRotation

try:  # ASE >= 3.29
    from ase.md.velocitydistribution import thermalize_momenta
except ImportError:  # pragma: no cover - older ASE
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta

log = logging.getLogger(__name__)


def nn_distances(positions: np.ndarray) -> np.ndarray:
    d = np.linalg.norm(positions[:, None, :] - positions[None, :, :], axis=-1)
    np.fill_diagonal(d, np.inf)
    return d.min(axis=1)


def reference_limits(frames) -> dict:
    """Largest nearest-neighbour and smallest pair distance over AIMD frames (Angstrom)."""
    nn_max = max(float(nn_distances(a.positions).max()) for a in frames)
    pair_min = min(float(nn_distances(a.positions).min()) for a in frames)
    return {"nn_max": nn_max, "pair_min": pair_min}


def check_frame(atoms, energy: float, limits: dict, bond_factor: float) -> str | None:
    """Why this frame is unstable, or None."""
    if not (np.isfinite(energy) and np.all(np.isfinite(atoms.positions))):
        return "non-finite energy or positions"
    nn = nn_distances(atoms.positions)
    if nn.max() > bond_factor * limits["nn_max"]:
        i = int(nn.argmax())
        return (f"atom {i} ({atoms[i].symbol}) is {nn.max():.2f} A from its nearest neighbour, more than "
                f"{bond_factor} x the AIMD maximum {limits['nn_max']:.2f} A")
    if nn.min() < 0.5 * limits["pair_min"]:
        return f"two atoms {nn.min():.2f} A apart, less than half the AIMD minimum {limits['pair_min']:.2f} A"
    return None


def _nve_drift(atoms, steps: int, timestep_fs: float, record_every: int, limits: dict, bond_factor: float):
    """Total-energy drift (meV/atom/ps, slope of a straight-line fit) over an NVE segment:
    a force field whose forces are not the gradient of its energy, or that needs a smaller
    time step, shows it here. Returns (drift, reason-if-unstable)."""
    dyn = VelocityVerlet(atoms, timestep_fs * units.fs)
    times, etot = [], []
    for step in range(1, steps + 1):
        try:
            dyn.run(1)
            epot = float(atoms.get_potential_energy())
        except Exception as exc:
            return float("nan"), f"NVE step {step}: calculator failed: {type(exc).__name__}: {exc}"
        if step % record_every == 0 or step == steps:
            reason = check_frame(atoms, epot, limits, bond_factor)
            if reason:
                return float("nan"), f"NVE step {step}: {reason}"
            times.append(step * timestep_fs / 1000.0)
            etot.append(epot + float(atoms.get_kinetic_energy()))
    if len(times) < 2:
        return float("nan"), None
    slope = np.polyfit(times, etot, 1)[0]  # eV/ps
    return float(1e3 * slope / len(atoms)), None


def run(calc, start, reference_frames, *, temperature: float, steps: int, timestep_fs: float,
        friction_per_fs: float, bond_factor: float, seed: int, record_every: int = 10,
        trajectory: list | None = None, nve_steps: int = 0) -> dict:
    """Langevin MD, then (if stable) ``nve_steps`` of NVE to measure the drift of the total
    energy; returns a summary with ``stable`` and, if not, ``reason``."""
    atoms = start.copy()
    atoms.calc = calc
    atoms.set_pbc(False)
    rng = np.random.default_rng(seed)
    thermalize_momenta(atoms, temperature_K=temperature, rng=rng)
    Stationary(atoms)
    ZeroRotation(atoms)
    atoms.set_constraint(FixCom())  # a free cluster: no centre-of-mass drift
    dyn = Langevin(atoms, timestep_fs * units.fs, temperature_K=temperature,
                   friction=friction_per_fs / units.fs, fixcm=False, rng=rng)
    limits = reference_limits(reference_frames)
    temps, epots = [], []
    reason, done = None, 0
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        try:
            dyn.run(1)
            epot = float(atoms.get_potential_energy())
        except Exception as exc:  # a model that fails on a distorted geometry is unstable too
            reason = f"calculator failed at step {step}: {type(exc).__name__}: {exc}"
            break
        done = step
        if step % record_every == 0 or step == steps:
            reason = check_frame(atoms, epot, limits, bond_factor)
            temps.append(float(atoms.get_temperature()))
            epots.append(epot)
            if trajectory is not None:
                snap = atoms.copy()
                snap.calc = None
                snap.set_constraint()
                snap.info.update(step=step, time=step * timestep_fs, temperature=temperature)
                trajectory.append(snap)
            if reason:
                reason = f"step {step}: {reason}"
                break
    wall = time.perf_counter() - t0
    drift = float("nan")
    if reason is None and nve_steps > 0:
        drift, reason = _nve_drift(atoms, nve_steps, timestep_fs, record_every, limits, bond_factor)
    summary = {
        "temperature": temperature,
        "steps_requested": steps,
        "steps_run": done,
        "stable": reason is None,
        "reason": reason or "",
        "seconds_per_step": wall / max(done, 1),
        "temperature_mean": float(np.mean(temps)) if temps else float("nan"),
        "epot_first": epots[0] if epots else float("nan"),
        "epot_last": epots[-1] if epots else float("nan"),
        "reference_nn_max": limits["nn_max"],
        "reference_pair_min": limits["pair_min"],
        "bond_factor": bond_factor,
        "nve_steps": nve_steps if reason is None else 0,
        "nve_drift_meV_per_atom_per_ps": drift,
    }
    if np.isfinite(drift):
        log.info("NVE segment of %d steps: total-energy drift %.3f meV/atom/ps", nve_steps, drift)
    log.info("ML-MD at %g K: %s after %d of %d steps (%.4f s/step)%s", temperature,
             "stable" if summary["stable"] else "UNSTABLE", done, steps, summary["seconds_per_step"],
             f": {reason}" if reason else "")
    return summary
