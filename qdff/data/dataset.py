"""The canonical data set: extxyz frames in eV and Angstrom with per-frame metadata.

Each frame carries ``energy`` (total, eV), ``forces`` (eV/Angstrom) and info keys
``run``, ``temperature`` (K), ``step`` and ``time`` (fs), and ``scf_converged`` where CP2K's
log tells (False: the SCF stopped at its iteration limit, so energy and forces are not
those of the ground state; :func:`drop_unconverged_scf` takes such frames out). Frames
imported from a group's own data (:mod:`qdff.data.imports`) also carry ``source`` (their file
or directory), ``level_of_theory``, ``composition`` and ``trajectory`` (False: no ``time``,
and ``step`` is the frame's index in its file, a label).
"""

from __future__ import annotations

import logging

import numpy as np
from ase.io import read, write

from ..fileio import atomic_path

log = logging.getLogger(__name__)


def read_frames(path) -> list:
    frames = read(path, index=":", format="extxyz")
    for i, a in enumerate(frames):
        if a.calc is None or "energy" not in a.calc.results or "forces" not in a.calc.results:
            raise ValueError(f"{path}: frame {i} has no energy/forces")
        # a NaN label turns every training loss into NaN: refuse it here, naming the frame
        if not np.isfinite(a.calc.results["energy"]):
            raise ValueError(f"{path}: frame {i} has a non-finite energy ({a.calc.results['energy']})")
        if not np.isfinite(a.calc.results["forces"]).all():
            raise ValueError(f"{path}: frame {i} has a non-finite force")
        if not np.isfinite(a.positions).all():
            raise ValueError(f"{path}: frame {i} has a non-finite position")
    return frames


def write_frames(path, frames) -> None:
    """``frames`` as extxyz (atomically); none make an empty file, which ASE cannot write."""
    with atomic_path(path, suffix=".extxyz") as tmp:
        if frames:
            write(tmp, frames, format="extxyz")


def energies(frames) -> np.ndarray:
    return np.array([a.get_potential_energy() for a in frames], dtype=np.float64)


def composition_matrix(frames, elements: list[str]) -> np.ndarray:
    out = np.zeros((len(frames), len(elements)), dtype=np.float64)
    for i, a in enumerate(frames):
        syms = a.get_chemical_symbols()
        for j, el in enumerate(elements):
            out[i, j] = syms.count(el)
    return out


def fit_reference_energies(frames) -> dict[str, float]:
    """Per-element reference energies (eV) by least squares of total energy on composition.

    With one composition (an MD data set of one cluster) the system is under-determined;
    the minimum-norm solution splits the mean energy over the elements in proportion to
    their counts, which is enough to take the large constant (about -760 eV/atom for CdSe
    at DFT level) out of the training labels.
    """
    elements = sorted({s for a in frames for s in a.get_chemical_symbols()})
    X = composition_matrix(frames, elements)
    y = energies(frames)
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    return {el: float(c) for el, c in zip(elements, coef)}


def reference_energy(atoms, refs: dict[str, float]) -> float:
    try:
        return float(sum(refs[s] for s in atoms.get_chemical_symbols()))
    except KeyError as exc:
        raise ValueError(f"no reference energy for element {exc.args[0]}") from None


def drop_unconverged_scf(frames):
    """The frames not flagged ``scf_converged=False``, and how many were dropped.

    CP2K carries on after an SCF that reached MAX_SCF; the forces of that step are not the
    ground state's and would be trained and tested on as if they were. Unflagged frames
    (no log to tell) are kept."""
    out = [a for a in frames if a.info.get("scf_converged", True)]
    dropped = len(frames) - len(out)
    if dropped:
        log.warning("dropped %d frame(s) whose SCF did not converge (scf_converged=F)", dropped)
    return out, dropped


def dedupe_frames(frames, tol: float = 1e-8):
    """Drop frames whose (run, step) repeats, or whose positions equal an earlier frame's."""
    seen_keys, seen_pos, out, dropped = set(), set(), [], 0
    for a in frames:
        key = (a.info.get("run"), a.info.get("step"))
        h = np.round(a.positions / max(tol, 1e-12)).astype(np.int64).tobytes() if tol > 0 else a.positions.tobytes()
        if (key != (None, None) and key in seen_keys) or h in seen_pos:
            dropped += 1
            continue
        seen_keys.add(key)
        seen_pos.add(h)
        out.append(a)
    if dropped:
        log.warning("dropped %d duplicate frame(s)", dropped)
    return out, dropped


def read_structure(path):
    """A structure file (extxyz) as a cluster: non-periodic, in the box the file gives."""
    atoms = read(path, format="extxyz")
    atoms.set_pbc(False)
    return atoms


def at_temperature(frames, temperature: float) -> list:
    """The frames of runs at ``temperature`` (K)."""
    return [a for a in frames if float(a.info.get("temperature", -1)) == float(temperature)]


def equilibrated(frames, equilibration_fs: float) -> list:
    """``frames`` without the first ``equilibration_fs`` of each run."""
    t0: dict = {}
    for a in frames:
        r = a.info.get("run", "")
        t0[r] = min(t0.get(r, np.inf), float(a.info.get("time", 0.0)))
    return [a for a in frames if float(a.info.get("time", 0.0)) - t0[a.info.get("run", "")] >= equilibration_fs]
