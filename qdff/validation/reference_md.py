"""The reference as a model (the null test of every verdict): CP2K's own MD at the data's level
of theory, run through exactly the ML-MD protocol of :func:`qdff.validation.mlmd.run` and judged
by the same recorder.

Why CP2K's own MD and not CP2K driven step by step through ASE: on the demo cluster at xTB,
CP2K's MD takes about 0.05 s per step where an ASE round trip through ``cp2k_shell`` took 0.27 s
per force call (shared notes, measured 2026-12-05); the protocol is the same either way.

What is identical to a model's run: the start frame, the initial velocities (drawn by ASE from
the same seed, with the same centre-of-mass and rotation removal, and handed to CP2K in
SUBSYS/VELOCITY), the thermostat and its time constant, the thermostatted steps, the NVE steps
after them, the frames recorded every ``record_every`` steps and every check the recorder makes.
What is not: the thermostat's random numbers (CP2K's own, from GLOBAL%SEED = the run's seed).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from ase import units
from ase.md.velocitydistribution import Stationary, ZeroRotation

from ..cp2k import input as cp2k_input
from ..cp2k import output as cp2k_output
from ..cp2k import run as cp2k_run
from ..fileio import atomic_path, read_json, write_json
from ..fingerprints import settings_sha256
from .mlmd import _Recorder, degrees_of_freedom, thermalize_momenta

log = logging.getLogger(__name__)

NVT_PROJECT, NVE_PROJECT = "nvt", "nve"
# ASE velocity (Angstrom per ASE time unit) -> CP2K's SUBSYS/VELOCITY unit (Bohr per atomic
# time unit)
_ASE_TO_AU_VELOCITY = units.fs / units.Bohr * (units._aut * 1e15)


def level_of_theory(preset: str) -> str:
    return cp2k_input.LEVEL_OF_THEORY[preset]


def initial_velocities(start, temperature: float, seed: int) -> np.ndarray:
    """The velocities :func:`qdff.validation.mlmd.run` starts a model's run with (ASE units)."""
    atoms = start.copy()
    rng = np.random.default_rng(seed)
    thermalize_momenta(atoms, temperature_K=temperature, rng=rng)
    Stationary(atoms)
    ZeroRotation(atoms)
    return atoms.get_velocities()


def md_input(
    start,
    *,
    preset: str,
    structure: dict,
    overrides: dict | None,
    temperature: float,
    steps: int,
    timestep_fs: float,
    record_every: int,
    thermostat: str,
    thermostat_timecon_fs: float,
    seed: int,
    velocities=None,
    ensemble: str = "NVT",
    project: str = NVT_PROJECT,
    restart_file: str | None = None,
) -> dict:
    """CP2K's MD input of one segment of the protocol: the thermostatted one (``ensemble`` NVT:
    CSVR or Langevin as ``thermostat``) from ``velocities``, or the NVE one from the thermostatted
    segment's ``restart_file`` (positions, velocities and step counter)."""
    tree = cp2k_input.build_input(
        start,
        preset=preset,
        run_type="MD",
        project=project,
        charge=structure["charge"],
        multiplicity=structure["multiplicity"],
        temperature=temperature,
        steps=steps,
        timestep_fs=timestep_fs,
        print_every=record_every,
        thermostat_timecon_fs=thermostat_timecon_fs,
        seed=seed,
        overrides=overrides,
        restart_file=restart_file,
    )
    md = tree["motion"]["md"]
    if ensemble == "NVE":
        md["ensemble"] = "NVE"
        md.pop("thermostat", None)
    elif thermostat == "langevin":
        # CP2K's Langevin: GAMMA in 1/fs, the inverse of the time constant as in ASE's
        md["ensemble"] = "LANGEVIN"
        md.pop("thermostat", None)
        md["langevin"] = {"gamma": 1.0 / float(thermostat_timecon_fs)}
    elif thermostat != "csvr":
        raise ValueError(f"unknown thermostat {thermostat!r}")
    if velocities is not None:
        v = np.asarray(velocities) * _ASE_TO_AU_VELOCITY
        # one line per atom: cp2k-input-tools joins a list of VELOCITY's default keyword into one
        # line (its XML does not mark it repeatable, unlike COORD's), so the lines go as one value
        lines = [f"{a:.12e} {b:.12e} {c:.12e}" for a, b, c in v]
        tree["force_eval"]["subsys"]["velocity"] = {"*": "\n".join(lines)}
    return tree


def _temperature(kinetic_eV, ndof: int) -> float:
    """The kinetic energy as a temperature with the degrees of freedom a model's run counts
    (qdff.validation.mlmd.degrees_of_freedom; under CSVR CP2K's own count, 3N - 6)."""
    return float(2.0 * kinetic_eV / (ndof * units.kB))


def segment_frames(workdir, project: str) -> list:
    """A segment's frames in step order, each step once: a resumed segment repeats the steps
    after its restart point, and the last occurrence counts, as in read_ener."""
    by_step = {
        f.step: f for f in cp2k_output.iter_xyz_frames(Path(workdir) / f"{project}-pos-1.xyz", allow_truncated=True)
    }
    return [by_step[k] for k in sorted(by_step)]


def _segment(cp2k: dict, tree: dict, workdir: Path, project: str) -> tuple[dict, list, float]:
    """Runs one CP2K MD segment; its .ener columns, its frames and its wall time."""
    cp2k_input.write_input(workdir / f"{project}.inp", tree)
    t0 = time.perf_counter()
    res = cp2k_run.run_cp2k(cp2k_run.command({"cp2k": cp2k}), workdir, project, cp2k["threads"])
    wall = time.perf_counter() - t0
    ener_file = workdir / f"{project}-1.ener"
    if not ener_file.is_file():
        raise cp2k_run.CP2KError(
            f"CP2K MD ({project}) in {workdir} wrote no energies ({cp2k_run.explain_exit(res, cp2k.get('mem_mb'))}):\n"
            f"{cp2k_run.error_lines(workdir / f'{project}.log')}"
        )
    ener = cp2k_output.read_ener(ener_file)
    frames = segment_frames(workdir, project)
    if res.returncode != 0:
        # CP2K failing on a distorted geometry is judged like a model whose calculator fails
        log.warning(
            "CP2K MD (%s) in %s stopped (%s) after step %d",
            project,
            workdir,
            cp2k_run.explain_exit(res, cp2k.get("mem_mb")),
            int(ener["step"][-1]) if len(ener["step"]) else 0,
        )
    return ener, frames, wall


def run(
    start,
    reference_frames,
    *,
    cp2k: dict,
    structure: dict,
    workdir,
    temperature: float,
    steps: int,
    timestep_fs: float,
    thermostat_timecon_fs: float,
    bond_factor: float,
    seed: int,
    record_every: int = 10,
    trajectory: list | None = None,
    nve_steps: int = 0,
    bond_check: bool = False,
    bond_cutoff_factor: float = 1.25,
    bond_break_fs: float = 200.0,
    bond_criterion: str = "undercoordinated",
    monitor_bonds: bool | None = None,
    thermostat: str = "csvr",
) -> dict:
    """CP2K's MD of ``start`` under the protocol of :func:`qdff.validation.mlmd.run` (same
    keywords) with ``cp2k`` (preset, overrides, and the launch settings: command, threads,
    mem_mb) and ``structure`` (charge, multiplicity); returns the same summary, engine "cp2k".
    The segments' files stay in ``workdir``."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    rec = _Recorder(
        start,
        reference_frames,
        temperature=temperature,
        seed=seed,
        timestep_fs=timestep_fs,
        bond_factor=bond_factor,
        bond_check=bond_check,
        monitor_bonds=monitor_bonds,
        bond_cutoff_factor=bond_cutoff_factor,
        bond_break_fs=bond_break_fs,
        bond_criterion=bond_criterion,
        trajectory=trajectory,
    )
    common = dict(
        preset=cp2k["preset"],
        structure=structure,
        overrides=cp2k.get("overrides"),
        temperature=temperature,
        timestep_fs=timestep_fs,
        record_every=record_every,
        thermostat=thermostat,
        thermostat_timecon_fs=thermostat_timecon_fs,
        seed=seed,
    )
    done_before = _resumable_steps(workdir, _md_key(start, common), steps)
    if done_before >= steps:
        log.info("%s: the thermostatted segment's %d steps are on disk from an earlier job", workdir, steps)
        ener = cp2k_output.read_ener(workdir / f"{NVT_PROJECT}-1.ener")
        frames, wall = segment_frames(workdir, NVT_PROJECT), float(np.sum(ener["seconds"]))
        done_before = 0  # the wall time above is every step's
    elif done_before > 0:
        restart = cp2k_run.restart_file(workdir, NVT_PROJECT)[0].name
        log.info(
            "%s: resuming the thermostatted segment from %s at step %d of %d", workdir, restart, done_before, steps
        )
        tree = md_input(start, steps=steps - done_before, restart_file=restart, **common)
        ener, frames, wall = _segment(cp2k, tree, workdir, NVT_PROJECT)
    else:
        tree = md_input(start, steps=steps, velocities=initial_velocities(start, temperature, seed), **common)
        ener, frames, wall = _segment(cp2k, tree, workdir, NVT_PROJECT)
    ndof = degrees_of_freedom(len(start), thermostat)
    temp_at = {int(s): _temperature(k, ndof) for s, k in zip(ener["step"], ener["kinetic"])}
    epot_at = dict(zip(ener["step"].tolist(), ener["potential"]))
    atoms = start.copy()
    reason, done = None, 0
    for f in frames:
        if f.step == 0 or f.step not in epot_at:
            continue
        atoms.positions = f.values
        done = f.step
        reason = rec.langevin(atoms, f.step, float(epot_at[f.step]), float(temp_at[f.step]))
        if reason:
            break
    if reason is None and done < steps:
        reason = f"CP2K stopped at step {done} of {steps}: {cp2k_run.error_lines(workdir / f'{NVT_PROJECT}.log', 5)}"
    seconds_per_step = wall / max(done - min(done_before, done), 1)
    nve_reason = None
    if reason is None and nve_steps > 0:
        tree = md_input(
            start,
            steps=nve_steps,
            ensemble="NVE",
            project=NVE_PROJECT,
            restart_file=f"{NVT_PROJECT}-1.restart",
            **common,
        )
        ener, frames, _ = _segment(cp2k, tree, workdir, NVE_PROJECT)
        # the NVE restart continues CP2K's step counter: steps counted here from its start
        by_step = {int(s): k for k, s in enumerate(ener["step"])}
        nve_done = 0
        for f in frames:
            k = by_step.get(f.step)
            if k is None or f.step <= steps:
                continue
            atoms.positions = f.values
            nve_done = f.step - steps
            nve_reason = rec.nve(
                atoms,
                nve_done,
                float(ener["potential"][k]),
                float(ener["potential"][k] + ener["kinetic"][k]),
                _temperature(ener["kinetic"][k], ndof),
            )
            if nve_reason:
                break
        if nve_reason is None and nve_done < nve_steps:
            nve_reason = f"CP2K's NVE segment stopped at step {nve_done} of {nve_steps}"
    return rec.summary(
        steps=steps,
        done=done,
        reason=reason,
        seconds_per_step=seconds_per_step,
        nve_steps=nve_steps,
        nve_reason=nve_reason,
        engine="cp2k",
    )


MD_SETTINGS = "nvt-settings.json"


def _md_key(start, common: dict) -> str:
    """What the thermostatted segment's frames depend on (``common``: md_input's settings but
    the steps; and the start frame), not how many steps it runs nor how they are judged, as one
    hash."""
    return settings_sha256(common, start)[:16]


def _resumable_steps(workdir: Path, key: str, steps: int) -> int:
    """Steps of the thermostatted segment an earlier, killed job left in ``workdir`` that this
    one continues (CP2K's latest complete restart file), and records ``key`` for the next job.
    A segment of other settings, or one that ran past ``steps`` (its restart would hand the NVE
    segment the wrong frame), is moved to ``superseded/`` and the segment starts afresh: 0."""
    from ..fileio import move_aside

    record = workdir / MD_SETTINGS
    done = cp2k_run.restart_file(workdir, NVT_PROJECT)[1]
    same = record.is_file() and read_json(record).get("key") == key
    old = [f for f in workdir.iterdir() if f.is_file() and f.name.startswith((f"{NVT_PROJECT}-", f"{NVE_PROJECT}-"))]
    if old and not (same and 0 < done <= steps):
        # the settings record last: a move killed halfway leaves the rest still marked as another run's
        dest = move_aside(sorted(old, key=lambda f: f.name == MD_SETTINGS), workdir)
        log.info("%s: an earlier segment of other settings or length moved to %s", workdir, dest)
        done = 0
    write_json(record, {"key": key})
    return done if same else 0


def _settings_key(start, kw: dict) -> str:
    """What a seed's result depends on: the start frame and every setting but how CP2K is
    launched (command, threads, memory), as one hash."""
    physics = {k: v for k, v in kw.items() if k != "cp2k"}
    physics["cp2k"] = {k: kw.get("cp2k", {}).get(k) for k in ("preset", "overrides")}
    return settings_sha256(physics, start)[:16]


def run_seed(start, reference_frames, *, workdir, trajectory: list, **kw) -> dict:
    """:func:`run` of one seed, resumable: a seed whose summary (and frames) are in ``workdir``
    from an earlier, killed job is not run again."""
    from ase.io import read

    workdir = Path(workdir)
    done, frames = workdir / "summary.json", workdir / "frames.extxyz"
    key = _settings_key(start, kw)
    if done.is_file() and frames.is_file():
        old = read_json(done)
        if old.get("settings_key") == key:
            log.info("%s: seed %d already run, reusing its summary", workdir, kw["seed"])
            if frames.stat().st_size:
                trajectory.extend(read(frames, index=":", format="extxyz"))
            return old
        # the protocol or its judging changed (e.g. mlmd.bond_criterion): a stale verdict must not survive
        log.info("%s: seed %d was run with other settings; running it again", workdir, kw["seed"])
    mine: list = []
    summary = run(start, reference_frames, workdir=workdir, trajectory=mine, **kw)
    summary["settings_key"] = key
    with atomic_path(frames, suffix=".extxyz") as tmp:
        from ase.io import write

        write(tmp, mine, format="extxyz") if mine else Path(tmp).write_text("")
    write_json(done, summary)
    trajectory.extend(mine)
    return summary
