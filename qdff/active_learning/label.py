"""CP2K labels for the committee's candidates: one job evaluates all frames of an iteration.

CP2K's ``MD ENSEMBLE REFTRAJ`` reads the frames from an xyz file and computes energy and
forces of each, writing them as an MD run would (``label-pos-1.xyz``, ``label-frc-1.xyz``),
so our own CP2K parser, with all its checks, converts them. One CP2K process for all frames
also starts each SCF from the previous frame's wavefunction instead of from scratch.

Resuming: a killed job leaves ``part-1/`` with the frames finished so far. The rerun counts
them and starts ``part-2/`` at the next frame (REFTRAJ's FIRST_SNAPSHOT), so no finished
frame is computed twice. Frames whose SCF did not converge are dropped and counted. A part is
resumed only if the positions CP2K wrote are those of the frames asked for now: parts left by
other frames (the same iteration explored again after its inputs changed) are moved to
``superseded/`` instead of lending their energies and forces to the new frames.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from ..cp2k import input as cp2k_input
from ..cp2k import run as cp2k_run
from ..cp2k.output import TrajectoryError, iter_run_frames
from ..data import dataset
from ..fileio import atomic_open, move_aside, read_json, write_json

log = logging.getLogger(__name__)

PROJECT = "label"
_OUTER_END = re.compile(r"outer SCF loop (converged|FAILED)")


def write_reftraj(frames, path) -> None:
    """The frames as CP2K's REFTRAJ reads them: xyz with CP2K's own ``i = ...`` title lines
    (a blank title makes CP2K compare atom 2 with the wrong line and abort)."""
    with atomic_open(path) as fh:
        for i, a in enumerate(frames, 1):
            fh.write(f"{len(a)}\n i = {i}, time = {float(i):.3f}, E = 0.0\n")
            for s, p in zip(a.get_chemical_symbols(), a.positions):
                fh.write(f"{s:<3s} {p[0]:20.12f} {p[1]:20.12f} {p[2]:20.12f}\n")


def reftraj_input(first: Atoms, cfg, first_snapshot: int, last_snapshot: int) -> dict:
    s, c = cfg["structure"], cfg["cp2k"]
    tree = cp2k_input.build_input(
        first,
        preset=c["preset"],
        run_type="MD",
        project=PROJECT,
        charge=s["charge"],
        multiplicity=s["multiplicity"],
        temperature=300.0,
        steps=last_snapshot - first_snapshot + 1,
        seed=cfg["aimd"]["seed"],
        overrides=c["overrides"],
    )
    md = tree["motion"]["md"]
    for key in ("thermostat", "temperature", "angvel_zero"):
        md.pop(key, None)
    md["ensemble"] = "REFTRAJ"
    md["reftraj"] = {
        "traj_file_name": "../frames.xyz",
        "eval_energy_forces": True,
        "eval_forces": True,
        "first_snapshot": first_snapshot,
        "last_snapshot": last_snapshot,
    }
    tree["motion"]["print"].pop("velocities", None)
    return tree


def scf_converged(log_path: Path) -> list[bool]:
    """One flag per evaluated frame, in order: did its (outer) SCF converge?"""
    if not log_path.is_file():
        return []
    with open(log_path, errors="replace") as fh:
        return [m.group(1) == "converged" for line in fh if (m := _OUTER_END.search(line))]


# A candidate CP2K itself refuses from a fresh guess (xTB aborts on atomic charges outside
# its chemical range) is dropped, as DP-GEN drops failed fp tasks up to its ratio_failed;
# more than this fraction of aborted frames is an error
MAX_ABORTED_FRACTION = 0.2
ABORTED = "aborted.json"

# CP2K writes REFTRAJ positions with 10 decimals (Angstrom); frames an MD step apart differ
# by far more than this
SAME_FRAME_TOL_A = 1e-4


def _part_frames(part: Path) -> list:
    """(energy, forces, positions) of the complete frames of one part directory, in order."""
    if not (part / f"{PROJECT}-frc-1.xyz").is_file():
        return []
    try:
        return [(e, f, x) for _, _, e, _, x, f in iter_run_frames(part, PROJECT, allow_truncated=True)]
    except TrajectoryError as exc:
        raise TrajectoryError(f"{part}: {exc}") from None


def _same_positions(x, atoms) -> bool:
    x = np.asarray(x)
    return x.shape == atoms.positions.shape and np.abs(x - atoms.positions).max() < SAME_FRAME_TOL_A


def _same_frames(done: list, frames, first: int) -> bool:
    """Are the frames of a part (from frame index ``first``) the positions of ``frames``?"""
    return all(_same_positions(x, a) for (_, _, x), a in zip(done, frames[first:]))


def _cp2k_aborted(part: Path) -> bool:
    """Did CP2K stop with its own ABORT banner (an input or a frame it refuses)?"""
    log_path = part / f"{PROJECT}.log"
    return log_path.is_file() and "[ABORT]" in log_path.read_text(errors="replace")


def _abort_matches(part: Path, frames, i: int) -> bool:
    """No abort recorded in ``part``, or one recorded for frame ``i`` of these ``frames``."""
    if not (part / ABORTED).is_file():
        return True
    rec = read_json(part / ABORTED)
    return rec.get("frame") == i + 1 and i < len(frames) and _same_positions(rec.get("positions"), frames[i])


def _aborted_frame(frames, i: int) -> tuple:
    """The placeholder of frame ``i``, on which CP2K aborted: never labelled, dropped."""
    return (float("nan"), np.full((len(frames[i]), 3), np.nan), False)


def _set_aside(parts: list[Path], workdir: Path) -> None:
    """Move parts computed for other frames to ``superseded/`` (kept, never resumed)."""
    dest = move_aside(parts, workdir)
    log.warning(
        "%s: %s hold(s) labels of other frames than those asked for now (the candidates changed); "
        "moved to %s and not reused",
        workdir,
        ", ".join(p.name for p in parts),
        dest,
    )


def label_frames(frames, cfg, workdir, out, summary_out, temperatures=None) -> dict:
    """CP2K energies and forces of ``frames`` (written to ``out`` as extxyz, frames with an
    unconverged SCF left out); the counts to ``summary_out``."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    n = len(frames)
    results: list = []  # (energy, forces, converged) per frame, in frame order
    aborted: list[int] = []  # frames (0-based) on which CP2K aborted
    t0 = time.time()
    if n:
        cp2k_run.preflight(frames[0], cfg)
        cp2k_run.check_cp2k_available(cfg)
        write_reftraj(frames, workdir / "frames.xyz")
        parts = sorted(workdir.glob("part-*"), key=lambda p: int(p.name.split("-")[1]))
        for j, part in enumerate(parts):
            done = _part_frames(part)
            if not _same_frames(done, frames, len(results)) or not _abort_matches(
                part, frames, len(results) + len(done)
            ):
                _set_aside(parts[j:], workdir)
                parts = parts[:j]
                break
            flags = scf_converged(part / f"{PROJECT}.log")
            results += [(e, f, flags[k] if k < len(flags) else True) for k, (e, f, _) in enumerate(done)]
            if (part / ABORTED).is_file():
                results.append(_aborted_frame(frames, len(results)))
                aborted.append(len(results) - 1)
        if results:
            log.info(
                "resuming labelling at frame %d of %d: %d frame(s) already labelled in %s",
                len(results) + 1,
                n,
                len(results),
                ", ".join(p.name for p in parts),
            )
        while len(results) < n:
            k = len(parts) + 1
            part = workdir / f"part-{k}"
            part.mkdir(exist_ok=True)
            first = len(results) + 1
            ref = frames[first - 1].copy()
            cp2k_input.write_input(part / f"{PROJECT}.inp", reftraj_input(ref, cfg, first, n))
            log.info("CP2K labels frames %d-%d of %d in %s", first, n, n, part)
            res = cp2k_run.run_cp2k(cp2k_run.command(cfg), part, PROJECT, cfg["cp2k"]["threads"])
            done = _part_frames(part)
            flags = scf_converged(part / f"{PROJECT}.log")
            results += [(e, f, flags[j] if j < len(flags) else True) for j, (e, f, _) in enumerate(done)]
            parts.append(part)
            if 0 < res.returncode < 128 and len(results) < n and _cp2k_aborted(part):
                i = len(results)
                error = cp2k_run.error_lines(part / f"{PROJECT}.log")
                if done:
                    # CP2K's own abort (not a kill) on a frame whose SCF started from the previous
                    # frame's wavefunction: measured on the 149-atom dot, the same frame converged
                    # from a fresh guess, so retry it as the first frame of a new part
                    log.warning(
                        "CP2K aborted on frame %d of %d, its SCF started from frame %d's wavefunction; "
                        "retrying it from a fresh guess. From %s:\n%s",
                        i + 1,
                        n,
                        i,
                        part / f"{PROJECT}.log",
                        error,
                    )
                    continue
                # aborted from a fresh guess too: drop the frame, go on with the next
                write_json(part / ABORTED, {"frame": i + 1, "positions": frames[i].positions.tolist(), "error": error})
                log.warning(
                    "CP2K aborted on frame %d of %d from a fresh guess (dropped; see %s):\n%s",
                    i + 1,
                    n,
                    part / f"{PROJECT}.log",
                    error,
                )
                results.append(_aborted_frame(frames, i))
                aborted.append(i)
                if len(aborted) > MAX_ABORTED_FRACTION * n:
                    raise cp2k_run.CP2KError(
                        f"CP2K aborted on {len(aborted)} of {n} frames (frames {[k + 1 for k in aborted]}), more than "
                        f"{MAX_ABORTED_FRACTION:.0%}: the candidates or the CP2K settings are broken. See the label.log "
                        f"files in {workdir}"
                    )
                continue
            if res.returncode != 0:
                raise cp2k_run.CP2KError(
                    f"CP2K labelling failed ({cp2k_run.explain_exit(res, cfg['cp2k']['mem_mb'])}) after {len(results)} of {n} frames; they are kept in "
                    f"{workdir} and a rerun continues from frame {len(results) + 1}. From {part / (PROJECT + '.log')}:\n"
                    + cp2k_run.error_lines(part / f"{PROJECT}.log")
                )
        results = results[:n]
    labelled, dropped = [], []
    for i, (a, (energy, forces, ok)) in enumerate(zip(frames, results)):
        if not ok or not np.isfinite(energy) or not np.isfinite(forces).all():
            dropped.append(i)
            continue
        b = a.copy()
        b.calc = SinglePointCalculator(b, energy=float(energy), forces=np.asarray(forces, dtype=np.float64))
        b.info = dict(a.info, labelled_by="cp2k", level_of_theory=cp2k_input.LEVEL_OF_THEORY[cfg["cp2k"]["preset"]])
        labelled.append(b)
    unconverged = [i for i in dropped if i not in aborted]
    if unconverged:
        log.warning("dropped %d labelled frame(s) whose SCF did not converge: %s", len(unconverged), unconverged)
    dataset.write_frames(out, labelled)
    summary = {
        "frames": n,
        "labelled": len(labelled),
        "scf_not_converged": len(unconverged),
        "cp2k_aborted": len(aborted),
        "dropped_frames": dropped,
        "wall_s": round(time.time() - t0, 1),
        "preset": cfg["cp2k"]["preset"],
        "level_of_theory": cp2k_input.LEVEL_OF_THEORY[cfg["cp2k"]["preset"]],
    }
    if temperatures is not None:
        summary["per_temperature"] = {
            str(t): int(sum(1 for b in labelled if b.info.get("temperature") == t)) for t in sorted(set(temperatures))
        }
    write_json(summary_out, summary)
    log.info("labelled %d of %d frame(s) with CP2K in %.0f s", len(labelled), n, time.time() - t0)
    return summary
