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


def hill_formula(symbols) -> str:
    """Chemical formula as ASE writes it (Hill order, as the structure summary's ``formula``)."""
    from ase.formula import Formula

    return Formula.from_list(list(symbols)).format("hill")


def composition_label(atoms) -> str:
    """A frame's composition: its Hill formula, as imported frames are stamped."""
    return hill_formula(atoms.get_chemical_symbols())


def fit_reference_energies(frames) -> dict[str, float]:
    """Per-element reference energies (eV) by least squares of total energy on composition
    (:func:`fit_reference_energies_report`'s ``reference_energies``)."""
    return fit_reference_energies_report(frames)["reference_energies"]


def fit_reference_energies_report(frames) -> dict:
    """Per-element reference energies (eV) by least squares of total energy on composition,
    with what the fit could determine.

    The fit is over every frame, so a data set of several compositions (e.g. imported frames
    of two clusters) gives one reference per element shared by all of them. The references are
    *identifiable* only when the composition matrix (frames x elements) has full column rank:
    at least as many linearly independent compositions as elements. With one composition (an
    MD data set of one cluster), or compositions in the same ratio (Cd2Se2 and Cd6Se6), the
    system is under-determined; the minimum-norm solution then splits the mean energy over
    the elements in proportion to their counts, which is enough to take the large constant
    (about -760 eV/atom for CdSe at DFT level) out of the training labels, but the values are
    not per-element energies. Returns ``reference_energies``, ``elements``, ``compositions``
    (formula -> frames), ``rank``, ``identifiable``, ``residual_rmse_meV_per_atom`` (per
    composition: RMS of the frames' per-atom energies about the fit, i.e. what the model has to
    learn) and ``note``.
    """
    elements = sorted({s for a in frames for s in a.get_chemical_symbols()})
    X = composition_matrix(frames, elements)
    y = energies(frames)
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    rank = int(np.linalg.matrix_rank(X)) if len(frames) else 0
    identifiable = rank == len(elements) and len(elements) > 0
    formulas = [composition_label(a) for a in frames]
    counts = {f: formulas.count(f) for f in dict.fromkeys(formulas)}
    n_atoms = X.sum(axis=1)
    resid = (y - X @ coef) / np.where(n_atoms > 0, n_atoms, 1)
    per_comp = {
        f: 1e3 * float(np.sqrt(np.mean(np.square([r for r, g in zip(resid, formulas) if g == f])))) for f in counts
    }
    if identifiable:
        note = (
            f"fitted across {len(counts)} compositions ({', '.join(counts)}): the composition matrix has full "
            f"rank {rank} for {len(elements)} elements, so each element's reference is determined"
        )
    else:
        note = (
            f"{len(counts)} composition(s) ({', '.join(counts)}) for {len(elements)} elements: the composition "
            f"matrix has rank {rank} < {len(elements)}, so per-element references are not identifiable; the "
            "minimum-norm least-squares solution is used (it removes the constant energy per composition, "
            "but the values are not per-element energies)"
        )
    return {
        "reference_energies": {el: float(c) for el, c in zip(elements, coef)},
        "elements": elements,
        "compositions": counts,
        "rank": rank,
        "identifiable": bool(identifiable),
        "residual_rmse_meV_per_atom": per_comp,
        "note": note,
    }


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


def evenly_spaced(frames, n: int) -> list:
    """At most ``n`` of ``frames``, evenly spaced, the first and the last included."""
    if len(frames) <= n:
        return list(frames)
    return [frames[k] for k in np.linspace(0, len(frames) - 1, n).round().astype(int)]


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
