"""Reading CP2K MD output (positions, forces, energies) into the canonical data set.

CP2K writes, per printed step, ``PROJ-pos-1.xyz`` (Angstrom) and ``PROJ-frc-1.xyz``
(Hartree/Bohr); each frame's comment line is ``i = STEP, time = FS, E = EPOT`` with the
potential energy in Hartree. Both files are streamed frame by frame (memory does not
grow with the trajectory length) and converted once, here, with :mod:`qdff.units`. CP2K's
log tells which steps' SCF did not converge; those frames are flagged ``scf_converged=F``
(:func:`scf_convergence`) for the selection to drop.

The reader is ours rather than dpdata's ``cp2k/aimd_output`` because it streams and is
faster (benchmarks/convert.py measures both on the same trajectory) and because it
checks that the two files agree frame by frame; tests/test_convert.py cross-checks its
numbers against dpdata on a real CP2K run.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..fileio import atomic_open
from ..units import AU_VELOCITY_TO_ANGSTROM_PER_FS, HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM, HARTREE_TO_EV

log = logging.getLogger(__name__)

_COMMENT = re.compile(r"i\s*=\s*(\d+)\s*,\s*time\s*=\s*([-\d.Ee+]+)\s*,\s*E\s*=\s*([-\d.Ee+]+)")


class TrajectoryError(ValueError):
    """A CP2K output file that is truncated, inconsistent or not what was expected."""


@dataclass
class Frame:
    step: int
    time: float  # fs
    energy: float  # as written (Hartree)
    symbols: list
    values: np.ndarray  # (n, 3) as written


def iter_xyz_frames(path, allow_truncated: bool = False) -> Iterator[Frame]:
    """Stream the frames of a CP2K xyz file (positions, forces or velocities).

    A last frame cut short (a killed run) raises :class:`TrajectoryError` naming the
    file and frame, or, with ``allow_truncated``, is dropped with a warning in the log.
    """
    path = Path(path)
    with open(path) as fh:
        index = 0
        while True:
            header = fh.readline()
            if not header:
                return
            if not header.strip():
                continue
            try:
                natoms = int(header)
            except ValueError:
                raise TrajectoryError(
                    f"{path}: frame {index}: expected an atom count, got {header.strip()[:60]!r}"
                ) from None
            comment = fh.readline()
            m = _COMMENT.search(comment)
            lines = [fh.readline() for _ in range(natoms)]
            complete = bool(m) and all(line.endswith("\n") and len(line.split()) == 4 for line in lines)
            if not complete:
                # only the last frame may be incomplete: a killed run
                if fh.readline() == "" and allow_truncated:
                    log.warning("%s: dropping incomplete last frame %d (run killed while writing?)", path, index)
                    return
                raise TrajectoryError(
                    f"{path}: frame {index} is incomplete or malformed "
                    f"(comment {comment.strip()[:60]!r}); the file is truncated or not CP2K xyz output"
                )
            parts = [line.split() for line in lines]
            symbols = [p[0] for p in parts]
            try:
                values = np.array([p[1:4] for p in parts], dtype=np.float64)
            except ValueError as exc:
                raise TrajectoryError(f"{path}: frame {index}: non-numeric value ({exc})") from None
            yield Frame(int(m.group(1)), float(m.group(2)), float(m.group(3)), symbols, values)
            index += 1


def find_project(run_dir) -> str:
    """The CP2K project name of an MD output directory, from its ``*-pos-1.xyz`` file."""
    run_dir = Path(run_dir)
    found = sorted(p.name[: -len("-pos-1.xyz")] for p in run_dir.glob("*-pos-1.xyz"))
    if not found:
        raise TrajectoryError(f"{run_dir}: no CP2K trajectory (*-pos-1.xyz) found")
    if len(found) > 1:
        raise TrajectoryError(f"{run_dir}: several CP2K projects ({', '.join(found)}); pass the project name")
    return found[0]


def read_ener(path) -> dict:
    """CP2K's ``.ener`` file: step, time [fs], kinetic [eV], temperature [K], potential [eV], conserved [eV], seconds."""
    rows = []
    with open(path) as fh:
        for line in fh:
            if line.startswith("#") or not line.strip():
                continue
            parts = line.split()
            if len(parts) < 7:
                continue  # a line cut by a kill
            rows.append([float(x) for x in parts[:7]])
    arr = np.array(rows, dtype=np.float64).reshape(-1, 7)
    # keep the last occurrence of a repeated step (a restart after a kill)
    _, last = np.unique(arr[::-1, 0], return_index=True)
    arr = arr[::-1][last]
    return {
        "step": arr[:, 0].astype(int),
        "time": arr[:, 1],
        "kinetic": arr[:, 2] * HARTREE_TO_EV,
        "temperature": arr[:, 3],
        "potential": arr[:, 4] * HARTREE_TO_EV,
        "conserved": arr[:, 5] * HARTREE_TO_EV,
        "seconds": arr[:, 6],
    }


def iter_run_frames(run_dir, project: str | None = None, allow_truncated: bool = True):
    """Yield (step, time_fs, energy_eV, symbols, positions_A, forces_eV_per_A) for one run.

    Position and force files must agree frame by frame in step, atom count and atom
    order. Frames come in file order; :func:`convert_run` resolves steps written twice.
    """
    run_dir = Path(run_dir)
    project = project or find_project(run_dir)
    pos_path = run_dir / f"{project}-pos-1.xyz"
    frc_path = run_dir / f"{project}-frc-1.xyz"
    if not frc_path.is_file():
        raise TrajectoryError(f"{frc_path}: force file missing (set MOTION/PRINT/FORCES in the CP2K input)")
    pos_iter = iter_xyz_frames(pos_path, allow_truncated)
    frc_iter = iter_xyz_frames(frc_path, allow_truncated)
    n = 0
    while True:
        p = next(pos_iter, None)
        f = next(frc_iter, None)
        if p is None or f is None:
            if p is not None or f is not None:
                longer, shorter = (pos_path, frc_path) if p is not None else (frc_path, pos_path)
                extra = sum(1 for _ in (pos_iter if p is not None else frc_iter)) + 1
                if not allow_truncated or extra > 1:
                    raise TrajectoryError(
                        f"{longer} has {extra} more frame(s) than {shorter} (after {n} matching frames); "
                        "position and force files must have the same frames"
                    )
                log.warning("%s: dropping its last frame, which %s does not have (run killed?)", longer, shorter.name)
            break
        if p.step != f.step:
            raise TrajectoryError(f"{pos_path} frame {n} is step {p.step} but {frc_path} frame {n} is step {f.step}")
        if p.symbols != f.symbols:
            raise TrajectoryError(f"{pos_path} and {frc_path} list atoms in a different order at step {p.step}")
        n += 1
        yield (
            p.step,
            p.time,
            p.energy * HARTREE_TO_EV,
            p.symbols,
            p.values,
            f.values * HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM,
        )


# CP2K's markers, as CP2K 2023.1 writes them (tests/data/cp2k_md_scf holds a real log): the
# force evaluation of MD step N ends just before "MD| Step number N" (older CP2K: "STEP NUMBER
# = N"), that of the initial step just before "MD_INI| MD initialization"; an evaluation whose
# SCF stopped at MAX_SCF says "SCF run NOT converged" (a warning) and, with OUTER_SCF,
# "outer SCF loop FAILED to converge". CP2K appends to the log when a run is resumed.
_MD_STEP = re.compile(r"^\s*(?:MD\|\s*Step number|STEP NUMBER\s*=)\s*(\d+)")
_SCF_FAILED = ("SCF run NOT converged", "outer SCF loop FAILED")


def find_log(run_dir, project: str):
    """CP2K's main output of a run directory: ``PROJECT.log`` (how qdff runs CP2K), else the
    one ``*.log``/``*.out`` file that CP2K wrote there; None if there is none."""
    run_dir = Path(run_dir)
    own = run_dir / f"{project}.log"
    if own.is_file():
        return own
    found = []
    for cand in sorted([*run_dir.glob("*.log"), *run_dir.glob("*.out")]):
        with open(cand, errors="replace") as fh:
            if "CP2K" in fh.read(1 << 16):
                found.append(cand)
    return found[0] if len(found) == 1 else None


def scf_convergence(log_path) -> dict[int, bool]:
    """Step -> did the SCF of that step's force evaluation converge, from CP2K's MD log.

    Streamed line by line (a production log is 10^2 MB). A step evaluated again after a
    resume keeps its last record, as :func:`convert_run` keeps the last copy of its frame. The
    initial evaluation of a resumed run re-computes a step whose frame the earlier run wrote,
    so it counts only where that step has no record yet (a fresh run's step 0).
    """
    flags: dict[int, bool] = {}
    failed = False  # of the force evaluation being read
    initial = None  # the result of this invocation's initial evaluation, until its step is known
    with open(log_path, errors="replace") as fh:
        for line in fh:
            if "SCF" in line:
                if any(text in line for text in _SCF_FAILED):
                    failed = True
            elif "MD_INI| MD initialization" in line:
                initial, failed = not failed, False
            elif "PROGRAM STARTED AT" in line:
                if initial is not None and not flags:
                    flags[0] = initial  # a fresh run stopped before its first step
                initial, failed = None, False
            else:
                m = _MD_STEP.match(line)
                if m:
                    step = int(m.group(1))
                    if initial is not None and step - 1 not in flags:
                        flags[step - 1] = initial
                    initial = None
                    flags[step] = not failed
                    failed = False
    if initial is not None and not flags:
        flags[0] = initial
    return flags


def format_extxyz_frame(symbols, positions, forces, energy, cell, info: dict) -> str:
    """One frame of extended XYZ, as ASE reads it (energy and forces become calculator results).

    Written by hand because ase.io.write's extxyz writer dominated the conversion time
    (benchmarks/convert.py); tests check that ase.io.read returns the same numbers.
    """
    lattice = " ".join(f"{x:.8f}" for x in np.asarray(cell).ravel())
    extras = " ".join(f"{k}={_fmt_info(v)}" for k, v in info.items())
    head = (
        f'{len(symbols)}\nLattice="{lattice}" Properties=species:S:1:pos:R:3:forces:R:3 '
        f'energy={energy:.10f} {extras} pbc="F F F"\n'
    )
    body = "".join(
        f"{s:<2s} {x:16.10f} {y:16.10f} {z:16.10f} {fx:18.12f} {fy:18.12f} {fz:18.12f}\n"
        for s, (x, y, z), (fx, fy, fz) in zip(symbols, positions.tolist(), forces.tolist())
    )
    return head + body


def _fmt_info(v):
    if isinstance(v, bool):
        return "T" if v else "F"
    if isinstance(v, str):
        return f'"{v}"' if (" " in v or not v) else v
    if isinstance(v, float):
        return repr(float(v))  # a numpy float's repr is np.float64(...)
    return str(v)


def run_cell(run_dir, project: str):
    """The CP2K box (Angstrom) from the run's restart file or input, else None."""
    run_dir = Path(run_dir)
    for cand in [run_dir / f"{project}-1.restart", *sorted(run_dir.glob("*.inp"))]:
        if cand.is_file():
            text = cand.read_text(errors="replace")
            m = re.search(r"^\s*ABC\s+(?:\[\w+\]\s+)?([-\d.Ee+]+)\s+([-\d.Ee+]+)\s+([-\d.Ee+]+)", text, re.M)
            if m:
                return np.diag([float(x) for x in m.groups()])
    return None


def run_temperature(run_dir, project: str):
    """The thermostat temperature (K) from the run's input or restart file, else None."""
    run_dir = Path(run_dir)
    for cand in [*sorted(run_dir.glob("*.inp")), run_dir / f"{project}-1.restart"]:
        if cand.is_file():
            m = re.search(r"^\s*TEMPERATURE\s+(?:\[K\]\s+)?([-\d.Ee+]+)", cand.read_text(errors="replace"), re.M)
            if m:
                return float(m.group(1))
    return None


def convert_run(
    run_dir,
    out_fh,
    *,
    run: str | None = None,
    temperature: float | None = None,
    project: str | None = None,
    allow_truncated: bool = True,
) -> dict:
    """Write one run's frames as extxyz to the open file ``out_fh``; return a summary."""
    run_dir = Path(run_dir)
    project = project or find_project(run_dir)
    temperature = temperature if temperature is not None else run_temperature(run_dir, project)
    cell = run_cell(run_dir, project)
    run = run or run_dir.name
    skip = _superseded(run_dir, project)
    dropped = len(skip)
    log_path = find_log(run_dir, project)
    scf = scf_convergence(log_path) if log_path else {}
    n_unconverged = n_unknown = 0
    source = (fr for i, fr in enumerate(iter_run_frames(run_dir, project, allow_truncated)) if i not in skip)
    n = 0
    symbols0 = None
    first_step = last_step = None
    for step, time, energy, symbols, pos, frc in source:
        if symbols0 is None:
            symbols0, first_step = symbols, step
        elif symbols != symbols0:
            raise TrajectoryError(f"{run_dir}: atoms change between frames (step {step})")
        if last_step is not None and step <= last_step:
            raise TrajectoryError(f"{run_dir}: steps not increasing at step {step}")
        last_step = step
        if not (np.isfinite(energy) and np.all(np.isfinite(frc)) and np.all(np.isfinite(pos))):
            raise TrajectoryError(f"{run_dir}: non-finite value at step {step}")
        c = cell if cell is not None else np.zeros((3, 3))
        info = {
            "run": run,
            "temperature": float(temperature) if temperature is not None else -1.0,
            "step": int(step),
            "time": float(time),
        }
        # unflagged when the log says nothing of this step: unknown is not "not converged"
        if step in scf:
            info["scf_converged"] = scf[step]
            n_unconverged += not scf[step]
        else:
            n_unknown += 1
        out_fh.write(format_extxyz_frame(symbols, pos, frc, energy, c, info))
        n += 1
    if n == 0:
        raise TrajectoryError(f"{run_dir}: no complete frames")
    if dropped:
        log.warning("%s: %d frame(s) written twice (resumed run); kept the later copy of each", run_dir, dropped)
    if n_unconverged:
        log.warning(
            "%s: %d of %d frames have an SCF that did not converge (%s); flagged scf_converged=F, "
            "dropped before the split unless selection.drop_unconverged_scf is false",
            run_dir,
            n_unconverged,
            n,
            log_path,
        )
    if n_unknown:
        log.warning(
            "%s: SCF convergence of %d of %d frames unknown (%s); they are not flagged",
            run_dir,
            n_unknown,
            n,
            f"no record of their steps in {log_path}" if log_path else "no CP2K log found",
        )
    log.info("%s: %d frames, steps %s..%s, T=%s K", run_dir, n, first_step, last_step, temperature)
    return {
        "run": run,
        "frames": n,
        "duplicates_dropped": dropped,
        "temperature": temperature,
        "project": project,
        "scf_not_converged_frames": n_unconverged,
        "scf_unknown_frames": n_unknown,
        "log": str(log_path) if log_path else None,
    }


def _superseded(run_dir, project) -> set[int]:
    """File positions of frames written again later (a run resumed from an older restart
    file repeats steps): each step keeps its last copy. A cheap first pass over comment
    lines, so that the conversion itself still streams."""
    steps = []
    with open(Path(run_dir) / f"{project}-pos-1.xyz") as fh:
        for line in fh:
            if line.lstrip().startswith("i ="):
                m = _COMMENT.search(line)
                if m:
                    steps.append(int(m.group(1)))
    last = {step: i for i, step in enumerate(steps)}
    return {i for i, step in enumerate(steps) if last[step] != i}


def convert_runs(run_dirs, out_path, *, runs=None, temperatures=None, allow_truncated: bool = True) -> list[dict]:
    """Convert several CP2K MD runs into one extxyz data set (written atomically)."""
    summaries = []
    with atomic_open(out_path) as fh:
        for i, run_dir in enumerate(run_dirs):
            summaries.append(
                convert_run(
                    run_dir,
                    fh,
                    run=runs[i] if runs else None,
                    temperature=temperatures[i] if temperatures else None,
                    allow_truncated=allow_truncated,
                )
            )
    return summaries


def read_velocities(run_dir, equilibration_fs: float = 0.0):
    """CP2K's velocities of an MD run (PROJECT-vel-1.xyz, Bohr per atomic time unit) in A/fs,
    after ``equilibration_fs``; with the symbols, positions of the same steps and time step.
    Read from CP2K's own file: the data set keeps positions and forces only."""
    run_dir = Path(run_dir)
    project = find_project(run_dir)
    pos = {f.step: f for f in iter_xyz_frames(run_dir / f"{project}-pos-1.xyz", allow_truncated=True)}
    steps, times, vels = [], [], []
    symbols = None
    for f in iter_xyz_frames(run_dir / f"{project}-vel-1.xyz", allow_truncated=True):
        if steps and f.step <= steps[-1]:  # a resumed run repeats steps: keep the later copy
            k = steps.index(f.step)
            del steps[k:], times[k:], vels[k:]
        steps.append(f.step)
        times.append(f.time)
        vels.append(f.values * AU_VELOCITY_TO_ANGSTROM_PER_FS)
        symbols = f.symbols
    keep = [i for i, t in enumerate(times) if t - times[0] >= equilibration_fs]
    dt = float(np.median(np.diff(times))) if len(times) > 1 else float("nan")
    return {
        "symbols": symbols,
        "velocities": np.array([vels[i] for i in keep]),
        "positions": [pos[steps[i]].values if steps[i] in pos else None for i in keep],
        "timestep_fs": dt,
    }
