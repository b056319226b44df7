"""Running CP2K: geometry optimisation and restartable NVT MD, with progress in the log.

A run directory holds CP2K's own files. If ``PROJECT-1.restart`` is there (a killed or
failed earlier attempt), the run continues from it for the remaining steps, and CP2K
appends to the existing trajectory; nothing already computed is thrown away. Raising
aimd.steps extends a finished run the same way. ``md-settings.json`` records what the frames
depend on (level of theory, temperature, time step, seed, starting structure): a run whose
settings changed is not continued but moved to ``superseded/``, so one trajectory never mixes
two levels of theory or two thermostats.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
from ase import Atoms
from ase.io import read, write

from .. import elements
from ..fileio import atomic_open, atomic_path, move_aside, write_json
from ..fingerprints import frame_sha256
from ..processes import terminate_raises
from . import input as cp2k_input
from .output import read_ener, scf_convergence

log = logging.getLogger(__name__)

MD_PROJECT = "md"
RELAX_PROJECT = "relax"


class CP2KError(RuntimeError):
    pass


def settings(structure: dict, cp2k: dict, launch, aimd: dict | None = None) -> dict:
    """The config-shaped dict this module's functions read (``cfg["structure"]``, ``["cp2k"]``,
    ``["aimd"]``), from the parts a rule passes: ``structure`` (charge, multiplicity), ``cp2k``
    (what CP2K computes: preset, overrides, ...) and ``launch`` (how it runs: command, threads,
    memory, on_failure, check_memory), and ``aimd`` for MD."""
    out = {"structure": dict(structure), "cp2k": {**cp2k, **launch}}
    if aimd is not None:
        out["aimd"] = dict(aimd)
    return out


def command(cfg) -> list[str]:
    cmd = shlex.split(cfg["cp2k"]["command"])
    if not cmd:
        raise CP2KError("cp2k.command is empty")
    return cmd


def error_lines(out_file: Path, n: int = 25) -> str:
    """The lines of CP2K's output that explain an abort (its ABORT box), else its tail.

    When CP2K died before writing its output (MPI start-up, missing library), the
    launcher's messages in the ``.stdout`` file next to it are shown instead.
    """
    lines = out_file.read_text(errors="replace").splitlines() if out_file.is_file() else []
    if not any(l.strip() for l in lines):
        stdout = out_file.with_suffix(".stdout")
        tail = stdout.read_text(errors="replace").splitlines()[-n:] if stdout.is_file() else []
        return f"{out_file} is empty; CP2K's terminal output ({stdout}):\n" + "\n".join(tail)
    for i in range(len(lines) - 1, -1, -1):
        if "ABORT" in lines[i] or "[ABORT]" in lines[i]:
            lo = max(0, i - 8)
            return "\n".join(lines[lo : i + 8])
    warn = [l for l in lines if "SCF run NOT converged" in l or "WARNING" in l]
    tail = lines[-n:]
    return "\n".join((warn[-5:] + ["..."] if warn else []) + tail)


@dataclass
class RunResult:
    returncode: int
    #: the largest resident memory of CP2K's process tree seen while it ran (sum over its
    #: ranks when they run on this node), MB; None if it could not be sampled
    peak_mb: float | None


def _tree_rss_mb(proc: psutil.Process) -> float:
    """Resident memory of ``proc`` and its descendants, MB (10^6 bytes, as Snakemake's mem_mb)."""
    total = 0
    try:
        tree = [proc, *proc.children(recursive=True)]
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0.0
    for p in tree:
        try:
            total += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total / 1e6


def running_in(pid_file: Path, workdir: Path) -> int | None:
    """The PID in ``pid_file`` when that process is still a CP2K running in ``workdir`` (not a
    recycled PID): a CP2K left behind by a job killed without a chance to stop it."""
    try:
        pid = int(pid_file.read_text().split()[0])
        proc = psutil.Process(pid)
        if "cp2k" not in proc.name() or Path(proc.cwd()).resolve() != Path(workdir).resolve():
            return None
        # a CP2K killed a moment ago (with its job, by a scheduler) takes a little while to go,
        # and may stay a zombie where nobody reaps it: neither is running
        deadline = time.time() + 10
        while time.time() < deadline:
            if not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE:
                return None
            time.sleep(0.2)
        return pid
    except (OSError, ValueError, IndexError, psutil.Error):
        return None


def run_cp2k(cmd, workdir: Path, out_name: str, threads: int, progress=None) -> RunResult:
    """Run CP2K on ``out_name.inp`` in ``workdir``, sampling the memory of its process tree.
    Refused while a CP2K of an earlier job still runs there (its PID file says so): two CP2K
    appending to one trajectory corrupt it (measured: a Snakemake killed with SIGKILL left its
    job's CP2K running, and the rerun started a second one in the same directory)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    full = cmd + ["-i", f"{out_name}.inp", "-o", f"{out_name}.log"]
    pid_file = workdir / f"{out_name}.pid"
    other = running_in(pid_file, workdir)
    if other is not None:
        raise CP2KError(
            f"a CP2K (PID {other}) is still running in {workdir}, left by an earlier job: stop it "
            f"(kill {other}) and rerun; two CP2K writing into one run directory corrupt its trajectory"
        )
    log.info("running in %s: %s", workdir, shlex.join(full))
    peak = None
    with open(workdir / f"{out_name}.stdout", "a") as stdout:
        proc = subprocess.Popen(full, cwd=workdir, stdout=stdout, stderr=subprocess.STDOUT, env=env)
        # the launched process's PID while it runs, so that a user (or a test) can stop this
        # run and no other CP2K on the machine
        pid_file.write_text(f"{proc.pid}\n")
        try:
            watched = psutil.Process(proc.pid)
        except psutil.NoSuchProcess:
            watched = None
        try:
            with terminate_raises():
                while proc.poll() is None:
                    if watched is not None:
                        peak = max(peak or 0.0, _tree_rss_mb(watched))
                    time.sleep(1)
                    if progress:
                        progress()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            pid_file.unlink(missing_ok=True)
    if progress:
        progress()
    if peak is not None:
        log.info("CP2K peak memory (resident, all processes on this node): %.0f MB", peak)
    return RunResult(proc.returncode, peak)


def explain_exit(result: RunResult, mem_mb: int | None = None) -> str:
    """What CP2K's exit status means, in words: a kill by signal is most often the kernel's
    out-of-memory killer (or the batch system's memory limit), which leaves no message."""
    rc = result.returncode
    sig = -rc if rc < 0 else (rc - 128 if rc > 128 else None)
    if sig is None:
        return f"exit {rc}"
    try:
        name = signal.Signals(sig).name
    except ValueError:
        name = f"signal {sig}"
    text = f"killed by {name}"
    if sig in (signal.SIGKILL, signal.SIGTERM):
        peak = f"{result.peak_mb:.0f} MB" if result.peak_mb is not None else "not measured"
        limit = f"; cp2k.mem_mb is {mem_mb} MB" if mem_mb else ""
        text += (
            f": probably out of memory (the kernel's OOM killer, or the batch system's memory "
            f"limit, sends {name} without a message); peak memory seen {peak}{limit}. Raise "
            "cp2k.mem_mb and run on a node with more memory or more MPI ranks, or lower the "
            "cutoff or the vacuum (structure.vacuum)"
        )
    return text


def check_cp2k_available(cfg) -> None:
    exe = command(cfg)
    import shutil

    if not any(shutil.which(part) for part in exe):
        raise CP2KError(
            f"cp2k.command: none of {exe} is on PATH; install CP2K (apt-get install cp2k) or set cp2k.command"
        )


def preflight(atoms: Atoms, cfg) -> None:
    """Checks before CP2K starts: elements known, basis/potential installed, electron parity."""
    symbols = atoms.get_chemical_symbols()
    elements.settings_for(symbols)
    if cfg["cp2k"]["preset"] != "xtb":
        elements.check_cp2k_data(symbols)
    s = cfg["structure"]
    elements.check_multiplicity(symbols, s["charge"], s["multiplicity"])
    cp2k_input.check_tree(cfg["cp2k"]["overrides"])
    check_memory(atoms, cfg)


def mpi_ranks(command: str) -> int:
    """MPI processes the CP2K command starts: ``-n``/``-np N`` of mpirun, or Slurm's task count
    for srun inside a job; 1 otherwise."""
    parts = shlex.split(command)
    for flag in ("-np", "-n", "--ntasks", "--np"):
        if flag in parts[:-1]:
            try:
                return max(int(parts[parts.index(flag) + 1]), 1)
            except ValueError:
                pass
    if parts and Path(parts[0]).name == "srun":
        try:
            return max(int(os.environ.get("SLURM_NTASKS", "1")), 1)
        except ValueError:
            return 1
    return 1


def check_memory(atoms: Atoms, cfg) -> dict:
    """Refuse to start a CP2K run whose estimated memory exceeds ``cp2k.mem_mb``.

    On a cluster ``mem_mb`` is the job's memory limit: a run above it is killed by the batch
    system, usually after the expensive set-up. The estimate is the grid model of
    :func:`qdff.cp2k.input.estimate_memory_mb` (within 5% of the measured peaks of three runs), with a 15% margin.
    """
    c = cfg["cp2k"]
    tree = cp2k_input.build_input(
        atoms,
        preset=c["preset"],
        run_type="ENERGY_FORCE",
        project="estimate",
        charge=cfg["structure"]["charge"],
        multiplicity=cfg["structure"]["multiplicity"],
        overrides=c["overrides"],
    )
    ranks = mpi_ranks(c["command"])
    est = cp2k_input.estimate_memory_mb(atoms, tree, ranks=ranks)
    need = est["mem_mb"] * cp2k_input.MEMORY_MARGIN
    grid = "x".join(map(str, est["grid"])) if est["grid"] else "none (xTB)"
    log.info(
        "CP2K memory estimate: %.0f MB (finest grid %s, box %s A, %d MPI rank(s)); cp2k.mem_mb is %d MB",
        est["mem_mb"],
        grid,
        " x ".join(f"{x:.1f}" for x in atoms.cell.lengths()),
        ranks,
        c["mem_mb"],
    )
    if ranks > 1 and est["grid"]:
        # the per-rank term is fitted on one-process runs; a second rank cost far more on a big grid
        log.warning(
            "CP2K memory estimate for %d MPI ranks is a lower bound: measured with 2 ranks, the 149-atom "
            "Cd68Se55Cl26 at pbe (375^3 grid) took 9257 MiB per process, 19.4 GB in all, against an "
            "estimate of 14.7 GB (README, CP2K memory and time at pbe)",
            ranks,
        )
    if c["check_memory"] and need > c["mem_mb"]:
        raise CP2KError(
            f"cp2k.mem_mb: CP2K needs about {need:.0f} MB for this run (estimate {est['mem_mb']:.0f} MB + "
            f"{cp2k_input.MEMORY_MARGIN - 1:.0%}: finest grid {grid} points "
            f"for a {atoms.cell.lengths()[0]:.1f} A box at preset {c['preset']}, {ranks} MPI rank(s)), more than cp2k.mem_mb = "
            f"{c['mem_mb']} MB; a job above its memory limit is killed. Raise cp2k.mem_mb (and use a node "
            "that has it), or lower structure.vacuum or the cutoff; cp2k.check_memory: false skips this check"
        )
    return est


def _geo_opt(
    atoms: Atoms, cfg, workdir, project: str, *, max_force: float | None = None, what: str, reuse: bool = False
) -> tuple[Atoms, bool, float | None]:
    """One CP2K GEO_OPT of ``atoms`` in ``workdir`` under ``project`` (MAX_FORCE ``max_force``
    Hartree/Bohr, CP2K's default when None). ``reuse``: skip the run when its input is
    unchanged and its log complete. Returns the last geometry, whether CP2K reported
    convergence, and the seconds it ran (None when reused). ``what`` names it in errors."""
    s, c = cfg["structure"], cfg["cp2k"]
    tree = cp2k_input.build_input(
        atoms,
        preset=c["preset"],
        run_type="GEO_OPT",
        project=project,
        charge=s["charge"],
        multiplicity=s["multiplicity"],
        max_iter=c["relax_max_iter"],
        overrides=c["overrides"],
        max_force=max_force,
    )
    text = cp2k_input.render(tree)
    inp, out, traj = (workdir / f"{project}{x}" for x in (".inp", ".log", "-pos-1.xyz"))
    seconds = None
    done = (
        reuse
        and inp.is_file()
        and inp.read_text() == text
        and out.is_file()
        and traj.is_file()
        and "PROGRAM ENDED AT" in out.read_text(errors="replace")
    )
    if not done:
        traj.unlink(missing_ok=True)  # a GEO_OPT is cheap: start it afresh
        with atomic_open(inp) as fh:
            fh.write(text)
        t0 = time.time()
        res = run_cp2k(command(cfg), workdir, project, c["threads"])
        seconds = time.time() - t0
        if res.returncode != 0:
            raise CP2KError(
                f"CP2K {what} failed ({explain_exit(res, c['mem_mb'])}) in {workdir}; from {out}:\n{error_lines(out)}"
            )
    converged = "GEOMETRY OPTIMIZATION COMPLETED" in out.read_text(errors="replace")
    return read(traj, index=-1), converged, seconds


def relax(atoms: Atoms, cfg, workdir, out_path) -> Atoms:
    """GEO_OPT at the configured level of theory; the last geometry is written to ``out_path``."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    preflight(atoms, cfg)
    check_cp2k_available(cfg)
    relaxed, converged, seconds = _geo_opt(atoms, cfg, workdir, RELAX_PROJECT, what="geometry optimisation")
    relaxed.set_cell(atoms.cell)
    relaxed.set_pbc(False)
    relaxed.info = dict(atoms.info)
    relaxed.info.update(relaxed=True, relax_converged=converged)
    if not converged:
        log.warning(
            "geometry optimisation did not converge in %d steps; using its last geometry", cfg["cp2k"]["relax_max_iter"]
        )
    log.info("relaxation took %.1f s", seconds)
    with atomic_path(out_path, suffix=".extxyz") as tmp:
        write(tmp, relaxed, format="extxyz")
    return relaxed


def restart_file(workdir, project: str = MD_PROJECT) -> tuple[Path | None, int]:
    """CP2K's latest complete restart file in ``workdir`` and the steps it has completed.

    CP2K rewrites ``PROJECT-1.restart`` in place every step; a kill during that write leaves
    it truncated (measured: 46 bytes after a SIGKILL). It keeps the previous one as
    ``.bak-1`` (PRINT/RESTART/BACKUP_COPIES 1), which is used then. (None, 0) if neither is
    complete.
    """
    main = Path(workdir) / f"{project}-1.restart"
    for f in (main, main.with_name(main.name + ".bak-1")):
        if not f.is_file():
            continue
        text = f.read_text(errors="replace")
        m = re.search(r"^\s*STEP_START_VAL\s+(\d+)", text, re.M)
        if m and re.search(r"^\s*&END\s+MOTION", text, re.M | re.I):
            return f, int(m.group(1))
    return None, 0


def completed_steps(workdir, project: str = MD_PROJECT) -> int:
    """Steps CP2K has completed according to its latest complete restart file (0 if none)."""
    return restart_file(workdir, project)[1]


def _steps_written(workdir, project: str = MD_PROJECT) -> int:
    """The last step in CP2K's .ener file: the frames on disk, whatever the restart file says."""
    ener = Path(workdir) / f"{project}-1.ener"
    try:
        e = read_ener(ener)
        return int(e["step"][-1]) if len(e["step"]) else 0
    except Exception:  # missing or being written
        return 0


class _Progress:
    """Logs step, seconds per step and ETA from CP2K's .ener file while it runs. A resumed run
    logs nothing until CP2K appends its first line: until then the .ener's last line is the
    killed run's, and its step and ETA would be stale."""

    def __init__(self, ener: Path, total: int, every_s: float = 30.0):
        self.ener, self.total, self.every_s = ener, total, every_s
        self.last_log = 0.0
        try:
            self.lines_before = len(read_ener(ener)["step"]) if ener.is_file() else 0
        except Exception:  # a line cut by the kill: at worst one stale report
            self.lines_before = 0

    def __call__(self):
        now = time.time()
        if now - self.last_log < self.every_s or not self.ener.is_file():
            return
        try:
            e = read_ener(self.ener)
        except Exception:  # being written
            return
        if len(e["step"]) == 0:
            return
        new = len(e["step"]) - self.lines_before
        if new <= 0:
            return
        step = int(e["step"][-1])
        per_step = float(e["seconds"][-min(5, new) :].mean())  # this run's steps only
        eta = per_step * max(self.total - step, 0)
        log.info(
            "MD step %d/%d, %.2f s/step, T=%.0f K, ETA %.0f s", step, self.total, per_step, e["temperature"][-1], eta
        )
        self.last_log = now


MD_SETTINGS = "md-settings.json"


def md_settings(atoms: Atoms, cfg, temperature: float) -> dict:
    """What an MD run's frames depend on, apart from how many steps it runs."""
    s, c, md = cfg["structure"], cfg["cp2k"], cfg["aimd"]
    out = {
        "temperature": float(temperature),
        "preset": c["preset"],
        "overrides": c["overrides"],
        "charge": s["charge"],
        "multiplicity": s["multiplicity"],
        "timestep_fs": md["timestep_fs"],
        "print_every": md["print_every"],
        "thermostat_timecon_fs": md["thermostat_timecon_fs"],
        "seed": md["seed"],
        "start_sha256": frame_sha256(atoms),
    }
    return json.loads(json.dumps(out, sort_keys=True, default=str))


def _set_aside_md(workdir: Path, recorded: dict, now: dict) -> None:
    """Move an MD run made with other settings to ``superseded/`` (kept, never continued)."""
    files = [*workdir.glob(f"{MD_PROJECT}-*"), *(workdir / f"{MD_PROJECT}.{x}" for x in ("log", "stdout"))]
    # the settings record last: a move killed halfway leaves the rest still marked as another run's
    files = sorted((f for f in files if f.is_file()), key=lambda f: f.name == MD_SETTINGS)
    dest = move_aside(files, workdir)
    changed = sorted(k for k in set(recorded) | set(now) if recorded.get(k) != now.get(k))
    log.warning(
        "%s: the MD there was run with other settings (%s changed); moved to %s and starting afresh",
        workdir,
        ", ".join(changed),
        dest,
    )


def run_md(atoms: Atoms, cfg, temperature: float, workdir, summary_path) -> dict:
    """NVT MD at ``temperature``; resumes from the restart file in ``workdir`` if present and
    made with the same settings (:func:`md_settings`)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    preflight(atoms, cfg)
    check_cp2k_available(cfg)
    s, c, md = cfg["structure"], cfg["cp2k"], cfg["aimd"]
    total = md["steps"]
    settings_now = md_settings(atoms, cfg, temperature)
    settings_file = workdir / MD_SETTINGS
    done = completed_steps(workdir)
    if done > 0 and settings_file.is_file():
        recorded = json.loads(settings_file.read_text())
        if recorded != settings_now:
            _set_aside_md(workdir, recorded, settings_now)
            done = 0
    elif done > 0:
        log.info("%s: no %s (a run from before qdff recorded it); continuing it as it is", workdir, MD_SETTINGS)
    write_json(settings_file, settings_now)
    restart = None
    peak_mb = None
    if done >= total:
        log.info("%s: all %d steps already done", workdir, total)
    else:
        if done > 0:
            restart = restart_file(workdir)[0].name
            log.info("resuming from %s at step %d of %d", workdir / restart, done, total)
        tree = cp2k_input.build_input(
            atoms,
            preset=c["preset"],
            run_type="MD",
            project=MD_PROJECT,
            charge=s["charge"],
            multiplicity=s["multiplicity"],
            temperature=temperature,
            steps=total - done,
            timestep_fs=md["timestep_fs"],
            print_every=md["print_every"],
            thermostat_timecon_fs=md["thermostat_timecon_fs"],
            seed=md["seed"],
            overrides=c["overrides"],
            restart_file=restart,
        )
        cp2k_input.write_input(workdir / f"{MD_PROJECT}.inp", tree)
        t0 = time.time()
        res = run_cp2k(
            command(cfg), workdir, MD_PROJECT, c["threads"], _Progress(workdir / f"{MD_PROJECT}-1.ener", total)
        )
        peak_mb = res.peak_mb
        out = workdir / f"{MD_PROJECT}.log"
        # the frames on disk count, even when the kill truncated the restart file
        now_done = max(completed_steps(workdir), _steps_written(workdir))
        if res.returncode != 0:
            msg = (
                f"CP2K MD at {temperature:g} K failed ({explain_exit(res, c['mem_mb'])}) after step "
                f"{now_done} of {total}; "
                f"frames so far are kept in {workdir}. From {out}:\n{error_lines(out)}"
            )
            if c["on_failure"] == "keep" and now_done > 0:
                log.error(msg)
                log.warning("cp2k.on_failure=keep: going on with the %d steps written", now_done)
            else:
                raise CP2KError(msg)
        log.info("MD at %g K: %d steps in %.0f s", temperature, now_done - done, time.time() - t0)
    ener = read_ener(workdir / f"{MD_PROJECT}-1.ener")
    # CP2K goes on after an SCF that hit its iteration limit; such forces are unreliable
    # (steps, from the parser the converter uses: with an OUTER_SCF one step can print the
    # failure more than once)
    unconverged = (
        sum(not ok for ok in scf_convergence(workdir / "md.log").values()) if (workdir / "md.log").is_file() else 0
    )
    if unconverged:
        log.warning(
            "MD at %g K: %d steps whose SCF did NOT converge (see %s); their forces are unreliable: "
            "relax first, or raise cp2k.overrides force_eval.dft.scf.max_scf",
            temperature,
            unconverged,
            workdir / "md.log",
        )
    # CP2K's step 0 reports 0 s; step 1 carries the start-up (SCF from scratch)
    first = float(ener["seconds"][1]) if len(ener["seconds"]) > 1 else None
    later = ener["seconds"][2:] if len(ener["seconds"]) > 2 else ener["seconds"][1:]
    summary = {
        "temperature": temperature,
        "steps_requested": total,
        "steps_done": int(ener["step"][-1]) if len(ener["step"]) else 0,
        "seconds_per_step_median": float(_median(later)),
        "seconds_first_step": first,
        "preset": c["preset"],
        "level_of_theory": cp2k_input.LEVEL_OF_THEORY[c["preset"]],
        "project": MD_PROJECT,
        "n_atoms": len(atoms),
        "scf_not_converged": unconverged,
        "threads": c["threads"],
        "command": c["command"],
        # what CP2K itself reports using (ranks, threads, CPU, host): the speed comparison
        **parallel_setup(workdir / f"{MD_PROJECT}.log"),
        "peak_memory_mb": peak_mb,  # of this invocation; None when nothing was left to run
        "mem_mb_requested": c["mem_mb"],
        "seed": md["seed"],  # CP2K's GLOBAL%SEED: the thermostat's random numbers
    }
    write_json(summary_path, summary)
    return summary


_SETUP = {
    "mpi_ranks": (re.compile(r"GLOBAL\| Total number of message passing processes\s+(\d+)"), int),
    "threads_per_rank": (re.compile(r"GLOBAL\| Number of threads for this process\s+(\d+)"), int),
    "cpu_model": (re.compile(r"GLOBAL\| CPU model name\s+(.+?)\s*$"), str),
    "host": (re.compile(r"PROGRAM STARTED ON\s+(\S+)"), str),
}


def parallel_setup(log_path) -> dict:
    """MPI ranks, OpenMP threads per rank, CPU model and host from the header of CP2K's log
    (the last invocation's, for a resumed run); keys missing where the log does not say."""
    out: dict = {}
    path = Path(log_path)
    if not path.is_file():
        return out
    with open(path, errors="replace") as fh:
        for line in fh:
            if "GLOBAL|" in line or "PROGRAM STARTED ON" in line:
                for key, (pattern, cast) in _SETUP.items():
                    m = pattern.search(line)
                    if m:
                        out[key] = cast(m.group(1))
    return out


def _median(x):
    return float(np.median(x)) if len(x) else float("nan")


VIB_PROJECT = "vib"
VIB_RELAX_PROJECT = "vib_relax"
_VIB_FREQ = re.compile(r"^\s*VIB\|\s*Frequency \(cm\^-1\)(.*)$")


def read_vib_frequencies(log_path) -> list[float]:
    """The frequencies CP2K's VIBRATIONAL_ANALYSIS prints (``VIB|Frequency (cm^-1)`` lines,
    three per line, imaginary ones negative), cm^-1, in CP2K's order (ascending); the last
    analysis of the log when it holds several."""
    blocks: list[list[float]] = []
    current: list[float] | None = None
    with open(log_path, errors="replace") as fh:
        for line in fh:
            if "NORMAL MODES - CARTESIAN DISPLACEMENTS" in line:
                current = []
                blocks.append(current)
                continue
            m = _VIB_FREQ.match(line)
            if m and current is not None:
                current.extend(float(x) for x in m.group(1).split())
    return blocks[-1] if blocks else []


def read_hessian(path, atoms: Atoms):
    """The Cartesian Hessian [eV/A^2] (3N x 3N, as CP2K computed it: not symmetrised) from
    VIBRATIONAL_ANALYSIS's ``PROJECT-Hessian-1.hess``.

    The file is Fortran unformatted (a 4-byte length before and after each record), one
    record of 3N float64 per coordinate, atom-major (x, y, z of atom 1, ...). CP2K 2023.1
    writes the mass-weighted Hessian in atomic units (Hartree / (Bohr^2 m_e)) times 1e6:
    measured on Cd6Se6 at xTB, where column 1 divided by the central difference of
    CP2K's own forces gives 1e6 / sqrt(m_i m_j) and the frequencies from it match the
    ``VIB|`` lines (tests/test_vibrations.py). Masses are ASE's (CP2K's differ by < 1e-4).
    """
    import struct

    from ase import units

    data = Path(path).read_bytes()
    rows, off = [], 0
    while off < len(data):
        (n,) = struct.unpack("<i", data[off : off + 4])
        rows.append(np.frombuffer(data[off + 4 : off + 4 + n], dtype="<f8"))
        (n2,) = struct.unpack("<i", data[off + 4 + n : off + 8 + n])
        if n != n2:
            raise CP2KError(f"{path}: not a Fortran unformatted file (record markers {n} and {n2})")
        off += n + 8
    n3 = 3 * len(atoms)
    H = np.array(rows)
    if H.shape != (n3, n3):
        raise CP2KError(f"{path}: a {H.shape} matrix for {len(atoms)} atoms (expected {n3} x {n3})")
    m_au = np.repeat(atoms.get_masses(), 3) * (units._amu / units._me)
    H_au = H * 1e-6 * np.sqrt(np.outer(m_au, m_au))  # Hartree / Bohr^2
    return H_au * units.Hartree / units.Bohr**2


def _vib_complete(workdir: Path) -> bool:
    log_file = workdir / f"{VIB_PROJECT}.log"
    if not log_file.is_file() or not (workdir / f"{VIB_PROJECT}-Hessian-1.hess").is_file():
        return False
    text = log_file.read_text(errors="replace")
    return "PROGRAM ENDED AT" in text and "VIB|Frequency" in text


def vibrational_analysis(atoms: Atoms, cfg, workdir, *, max_force: float | None = 1e-5, dx_bohr: float = 0.01) -> dict:
    """CP2K's normal modes of ``atoms`` at the configured level of theory, in ``workdir``.

    First a GEO_OPT to ``max_force`` Hartree/Bohr from ``atoms`` (the pipeline's relaxation
    stops at CP2K's default 4.5e-4, where a soft cluster can still show imaginary modes:
    Cd6Se6 at xTB one of -34 cm^-1, gone at 1e-5; None skips it), then VIBRATIONAL_ANALYSIS
    (6N force evaluations) on its minimum. Restartable by being cheap: each step is skipped
    when its output is complete and its input unchanged (CP2K cannot resume a vibrational
    analysis part-way). Returns the minimum (ASE Atoms), the Hessian [eV/A^2], CP2K's
    printed frequencies [cm^-1] and timings.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    preflight(atoms, cfg)
    check_cp2k_available(cfg)
    s, c = cfg["structure"], cfg["cp2k"]
    timings: dict = {}
    minimum = atoms.copy()
    relax_converged = None
    if max_force is not None:
        last, relax_converged, seconds = _geo_opt(
            atoms,
            cfg,
            workdir,
            VIB_RELAX_PROJECT,
            max_force=max_force,
            reuse=True,
            what="geometry optimisation before the vibrational analysis",
        )
        if seconds is not None:
            timings["relax_s"] = seconds
        if not relax_converged:
            log.warning(
                "GEO_OPT to MAX_FORCE %g did not converge in %d steps: normal modes of its last geometry",
                max_force,
                c["relax_max_iter"],
            )
        minimum.positions = last.positions
    tree = cp2k_input.build_input(
        minimum,
        preset=c["preset"],
        run_type="VIBRATIONAL_ANALYSIS",
        project=VIB_PROJECT,
        charge=s["charge"],
        multiplicity=s["multiplicity"],
        overrides=c["overrides"],
        vib_dx_bohr=dx_bohr,
    )
    text = cp2k_input.render(tree)
    inp = workdir / f"{VIB_PROJECT}.inp"
    if inp.is_file() and inp.read_text() == text and _vib_complete(workdir):
        log.info("%s: vibrational analysis already complete, not rerun", workdir)
    else:
        for stale in (workdir / f"{VIB_PROJECT}.log", workdir / f"{VIB_PROJECT}-Hessian-1.hess"):
            stale.unlink(missing_ok=True)
        inp.write_text(text)
        t0 = time.time()
        res = run_cp2k(command(cfg), workdir, VIB_PROJECT, c["threads"])
        timings["vibrational_analysis_s"] = time.time() - t0
        out = workdir / f"{VIB_PROJECT}.log"
        if res.returncode != 0 or not _vib_complete(workdir):
            raise CP2KError(
                f"CP2K vibrational analysis failed ({explain_exit(res, c['mem_mb'])}) in {workdir}; "
                f"from {out}:\n{error_lines(out)}"
            )
        log.info(
            "vibrational analysis of %d atoms (%d force evaluations) took %.1f s",
            len(minimum),
            6 * len(minimum),
            timings["vibrational_analysis_s"],
        )
    minimum.info.update(relaxed=True, relax_converged=relax_converged if relax_converged is not None else True)
    return {
        "minimum": minimum,
        "hessian_eV_per_A2": read_hessian(workdir / f"{VIB_PROJECT}-Hessian-1.hess", minimum),
        "cp2k_frequencies_cm1": read_vib_frequencies(workdir / f"{VIB_PROJECT}.log"),
        "max_force_Ha_per_bohr": max_force,
        "relax_converged": relax_converged,
        "dx_bohr": dx_bohr,
        "preset": c["preset"],
        "level_of_theory": cp2k_input.LEVEL_OF_THEORY[c["preset"]],
        "seconds": timings,
    }
