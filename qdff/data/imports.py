"""Importing data a QD group already has (config ``data``) into the canonical data set.

Two kinds of source: CP2K MD run directories, read by :mod:`qdff.cp2k.output`'s converter
(resumed runs, repeated steps, a truncated last frame and SCF flags handled there, not
here), and extended XYZ files (e.g. Orchestr.AI's), read with ``ase.io.read``. Units are
converted once, here, with ``ase.units``; every frame is stamped with ``source`` (its file
or directory), ``run`` (one label per path), ``step``/``time`` where known, ``temperature``
(-1: unknown, the converter's convention), ``level_of_theory``, ``composition`` and
``trajectory`` (whether ``time`` orders its run). The output is one extxyz written as the
converter writes it (:func:`qdff.cp2k.output.format_extxyz_frame`), atomically, and only
after every frame of every path has passed the checks: bad input raises
:class:`DataImportError` naming the file and frame and leaves nothing behind.
"""

from __future__ import annotations

import logging
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import units
from ase.io import read

from ..cp2k.output import TrajectoryError, convert_run, format_extxyz_frame
from ..elements import ELEMENT_SETTINGS
from ..fileio import atomic_open
from .dataset import hill_formula, read_frames

log = logging.getLogger(__name__)

#: energy units (config ``data.energy_unit``) in eV
ENERGY_UNITS = {
    "eV": 1.0,
    "Ha": units.Hartree,
    "Ry": units.Rydberg,
    "kcal/mol": units.kcal / units.mol,
    "kJ/mol": units.kJ / units.mol,
}
#: force units (config ``data.forces_unit``) in eV/Angstrom
FORCES_UNITS = {
    "eV/A": 1.0,
    "Ha/Bohr": units.Hartree / units.Bohr,
    "Ry/Bohr": units.Rydberg / units.Bohr,
    "kcal/mol/A": units.kcal / units.mol,
    "kJ/mol/A": units.kJ / units.mol,
}

# Force scale. Measured on qdff's GFN1-xTB AIMD (results/cdse-demo*/dataset/frames.extxyz, frames
# every 2 fs, and tests/data/cp2k_md_scf): the median over frames of the RMS force component is
# 0.25 eV/A (Cd6Se6, 300 K), 0.38 (Cd6Se6, 600 K), 0.26 (Cd16Se13Cl6, 300 K), 0.34 (500 K). It
# grows as sqrt(T), so even 10 K would give ~0.05. The same forces in Ha/Bohr read as eV/A are
# 51x smaller (0.005-0.007), in eV/A read as Ha/Bohr 51x larger (13-20). The median, not each
# frame: an MD run may start from a relaxed structure whose first frame has RMS 0.000.
MIN_RMS_FORCE = 0.02  # eV/A
MAX_RMS_FORCE = 5.0  # eV/A

# Energy scale. |E|/atom cannot tell units apart: GFN1-xTB gives -58 eV/atom (CdSe), GTH-PBE
# about -760 eV/atom = -28 Ha/atom, all-electron DFT thousands of Ha/atom, and energies
# referenced to free atoms a few eV/atom; in eV or in Ha these ranges overlap. What does not
# depend on the level of theory is that the forces are minus the energy's gradient: between two
# nearby frames dE = -(F_a + F_b)/2 . dx (trapezoid rule). The least-squares slope of the
# energy differences over that work is 1.000 on the demo data sets at 2 fs between frames,
# 0.998-1.013 at 20 fs and 0.94-0.99 at 50 fs (subsampled; the largest atomic displacement
# between frames then 0.2-0.4 A). Energies in Ha read as eV give 0.037, in kcal/mol read as eV
# 23, Ry for Ha 0.5; per-atom energies 1/N. Frames farther apart than MAX_PAIR_DISPLACEMENT
# (the trapezoid rule no longer holds) or of different atoms are not paired.
MAX_PAIR_DISPLACEMENT = 0.3  # A, the largest atomic displacement between paired frames
MIN_PAIRS = 3
WORK_SLOPE_RANGE = (2 / 3, 1.5)

#: info keys an imported frame carries; an extxyz's other header keys are not kept
_KEPT_INFO = ("run", "temperature", "step", "time", "scf_converged")


class DataImportError(ValueError):
    """Input data that cannot be imported as they are: names the file and the frame."""


@dataclass
class ImportedFrame:
    symbols: list
    positions: np.ndarray  # Angstrom
    forces: np.ndarray  # eV/Angstrom
    energy: float  # eV
    cell: np.ndarray
    info: dict
    where: str  # "PATH: frame I", for messages


def import_data(data_cfg: dict, out_path) -> dict:
    """Import every path of the config's ``data`` block into one canonical extxyz at ``out_path``.

    Returns a summary: per source (path, run, frames, compositions, temperatures, time order,
    duplicates dropped) and for the whole data set (frames and compositions)."""
    source = data_cfg["source"]
    if source not in ("cp2k", "extxyz"):
        raise DataImportError(f"data.source is {source!r}: nothing to import (qdff runs the AIMD itself)")
    reader = read_cp2k_run if source == "cp2k" else read_extxyz
    paths = [resolve_path(p) for p in data_cfg["paths"]]
    frames, extras = [], []
    for path, run in zip(paths, run_labels(paths)):
        got, extra = reader(path, run, data_cfg)
        frames.extend(got)
        extras.append((path, run, extra))
    frames, dropped = drop_duplicates(frames, strict=data_cfg.get("strict", False))
    sources = [
        _source_summary(path, run, [f for f in frames if f.info["source"] == str(path)], extra)
        | {"duplicates_dropped": dropped.get(str(path), 0)}
        for path, run, extra in extras
    ]
    # only now, every path read and checked: an error above leaves no output behind
    with atomic_open(out_path) as fh:
        for f in frames:
            fh.write(format_extxyz_frame(f.symbols, f.positions, f.forces, f.energy, f.cell, f.info))
    return {
        "output": str(out_path),
        "frames": len(frames),
        "level_of_theory": data_cfg["level_of_theory"],
        "compositions": dict(Counter(f.info["composition"] for f in frames)),
        "duplicates_dropped": sum(dropped.values()),
        "sources": sources,
    }


def resolve_path(path) -> Path:
    """A ``data.paths`` entry as given (relative to the working directory); a relative path
    that does not exist there is also looked for under the project (the directory holding the
    qdff package), as ``structure.file`` is, so that the shipped example data
    (tests/data/...) are found when Snakemake runs with ``--directory`` elsewhere."""
    path = Path(path)
    if path.exists() or path.is_absolute():
        return path
    shipped = Path(__file__).resolve().parents[2] / path
    return shipped if shipped.exists() else path


def input_files(data_cfg: dict) -> list[str]:
    """The files an import reads, for a rule's input (a changed file re-runs the import): an
    extxyz path itself, every file of a CP2K run directory."""
    out = []
    for p in map(resolve_path, data_cfg["paths"]):
        out += sorted(str(f) for f in p.iterdir() if f.is_file()) if p.is_dir() else [str(p)]
    return out


def scan(data_cfg: dict) -> list[dict]:
    """What the configuration needs to know of each path before any import, cheaply (extxyz:
    the header lines only; CP2K: the input's TEMPERATURE): per path its ``temperatures``
    (data.temperature for frames that carry none), the first ``unknown_temperature`` frame (or
    None) and whether it is a ``trajectory``. Raises :class:`DataImportError` for a path that
    does not exist or cannot be scanned."""
    from ..cp2k.output import find_project, run_temperature

    default_t = data_cfg.get("temperature")
    out = []
    for given in data_cfg["paths"]:
        path = resolve_path(given)
        if not path.exists():
            raise DataImportError(f"{given}: no such {'directory' if data_cfg['source'] == 'cp2k' else 'file'}")
        if data_cfg["source"] == "cp2k":
            try:
                t = run_temperature(path, find_project(path))
            except TrajectoryError as exc:
                raise DataImportError(str(exc)) from None
            t = t if t is not None else default_t
            out.append(
                {
                    "path": str(path),
                    "temperatures": [] if t is None else [float(t)],
                    "unknown_temperature": None if t is not None else "the CP2K input (no TEMPERATURE)",
                    "trajectory": True,
                }
            )
            continue
        temps, unknown, timed, n = set(), None, False, 0
        for i, header in enumerate(_extxyz_headers(path)):
            n += 1
            timed = timed or "time" in header or "step" in header
            if "temperature" in header:
                try:
                    temps.add(float(header["temperature"]))
                except (TypeError, ValueError):
                    raise DataImportError(
                        f"{path}: frame {i}: temperature {header['temperature']!r} is not a number"
                    ) from None
            elif default_t is not None:
                temps.add(float(default_t))
            elif unknown is None:
                unknown = f"frame {i}"
        if not n:
            raise DataImportError(f"{path}: no frames")
        trajectory = data_cfg.get("trajectory", "auto")
        out.append(
            {
                "path": str(path),
                "temperatures": sorted(temps),
                "unknown_temperature": unknown,
                "trajectory": timed if trajectory == "auto" else bool(trajectory),
            }
        )
    return out


def _extxyz_headers(path):
    """The parsed comment line of every frame of an extended XYZ file, its atom lines skipped."""
    from ase.io.extxyz import key_val_str_to_dict

    with open(path) as fh:
        i = 0
        while True:
            line = fh.readline()
            if not line:
                return
            if not line.strip():
                continue
            try:
                n = int(line.split()[0])
            except ValueError:
                raise DataImportError(
                    f"{path}: frame {i}: expected an atom count, read {line.strip()[:40]!r}"
                ) from None
            header = fh.readline()
            try:
                yield key_val_str_to_dict(header)
            except Exception as exc:  # ASE raises several kinds on a malformed header
                raise DataImportError(f"{path}: frame {i}: unreadable extxyz header: {exc}") from exc
            for _ in range(n):
                fh.readline()
            i += 1


def run_labels(paths) -> list[str]:
    """One run label per path: the file's stem or the directory's name; where two paths share
    it, their parent directory's name is put in front, and an index where even that repeats."""
    labels = [p.name if p.is_dir() else p.stem for p in paths]
    counts = Counter(labels)
    labels = [f"{p.parent.name}-{lab}" if counts[lab] > 1 else lab for p, lab in zip(paths, labels)]
    counts = Counter(labels)
    return [f"{lab}-{i}" if counts[lab] > 1 else lab for i, lab in enumerate(labels)]


def _stamp(frame_info: dict, *, path, data_cfg, symbols, trajectory: bool) -> dict:
    # Python scalars: ASE reads header values as numpy ones, whose repr is np.float64(...)
    info = {k: np.asarray(frame_info[k]).item() for k in _KEPT_INFO if k in frame_info}
    info.update(
        source=str(path),
        level_of_theory=data_cfg["level_of_theory"],
        composition=hill_formula(symbols),
        trajectory=trajectory,
    )
    return info


def _check_elements(symbols, where: str) -> None:
    unknown = sorted(set(symbols) - set(ELEMENT_SETTINGS))
    if unknown:
        raise DataImportError(
            f"{where}: element(s) {', '.join(unknown)} unknown to qdff (known: {', '.join(sorted(ELEMENT_SETTINGS))}); "
            "add them to qdff/elements.py"
        )


def _check_finite(f: ImportedFrame) -> None:
    # a NaN label turns every training loss into NaN (dataset.read_frames refuses it later, too)
    for name, value in (("energy", f.energy), ("forces", f.forces), ("positions", f.positions)):
        if not np.all(np.isfinite(value)):
            raise DataImportError(f"{f.where}: non-finite {name} (NaN or inf)")


# ---------------------------------------------------------------- CP2K run directories


def read_cp2k_run(path, run: str, data_cfg: dict):
    """One CP2K MD run directory through the converter (:func:`qdff.cp2k.output.convert_run`),
    into a temporary extxyz read back here: its frames, stamped, and the converter's counts."""
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="qdff-import-") as tmp:
        tmp_file = Path(tmp) / "run.extxyz"
        try:
            with open(tmp_file, "w") as fh:
                summary = convert_run(path, fh, run=run)
        except (TrajectoryError, FileNotFoundError) as exc:
            raise DataImportError(f"{path}: {exc}") from exc
        atoms_list = read_frames(tmp_file)
    frames = []
    for atoms in atoms_list:
        info = dict(atoms.info)
        if info.get("temperature", -1.0) == -1.0 and data_cfg.get("temperature") is not None:
            info["temperature"] = float(data_cfg["temperature"])  # the CP2K input does not say
        symbols = atoms.get_chemical_symbols()
        f = ImportedFrame(
            symbols,
            atoms.positions,
            atoms.calc.results["forces"],
            float(atoms.calc.results["energy"]),
            atoms.cell.array,
            _stamp(info, path=path, data_cfg=data_cfg, symbols=symbols, trajectory=True),
            f"{path}: step {info.get('step')}",
        )
        _check_elements(f.symbols, f.where)
        frames.append(f)
    # the converter's own counts (SCF flags, steps written twice), not its frame count
    return frames, {k: summary[k] for k in ("project", "scf_not_converged_frames", "scf_unknown_frames", "log")} | {
        "steps_written_twice": summary["duplicates_dropped"]
    }


# ---------------------------------------------------------------- extended XYZ files


def read_extxyz(path, run: str, data_cfg: dict):
    """One extended XYZ file: its frames in eV and eV/A, stamped and checked, and what the
    summary says of its units and the header keys not kept."""
    path = Path(path)
    if not path.is_file():
        raise DataImportError(f"{path}: no such file")
    try:
        atoms_list = read(path, index=":", format="extxyz")
    except Exception as exc:  # ASE raises several kinds (ValueError, IndexError, XYZError)
        raise DataImportError(f"{path}: not readable as extended XYZ: {exc}") from exc
    if not atoms_list:
        raise DataImportError(f"{path}: no frames")
    e_unit = ENERGY_UNITS[data_cfg.get("energy_unit", "eV")]
    f_unit = FORCES_UNITS[data_cfg.get("forces_unit", "eV/A")]
    trajectory, times, steps = time_axis(atoms_list, path, data_cfg)
    frames, ignored = [], set()
    for i, atoms in enumerate(atoms_list):
        where = f"{path}: frame {i}"
        symbols = atoms.get_chemical_symbols()
        _check_elements(symbols, where)
        info = {"run": run, "temperature": _temperature(atoms, where, data_cfg), "step": steps[i]}
        if trajectory:
            info["time"] = times[i]
        ignored |= set(atoms.info) - set(_KEPT_INFO)
        f = ImportedFrame(
            symbols,
            np.array(atoms.positions, dtype=np.float64),
            _forces(atoms, data_cfg.get("forces_key", "forces"), where) * f_unit,
            _energy(atoms, data_cfg.get("energy_key", "energy"), where) * e_unit,
            np.array(atoms.cell.array, dtype=np.float64),
            _stamp(info, path=path, data_cfg=data_cfg, symbols=symbols, trajectory=trajectory),
            where,
        )
        _check_finite(f)
        frames.append(f)
    if any(a.pbc.any() for a in atoms_list):
        log.warning("%s: periodic frames; imported as clusters (non-periodic), as qdff treats every QD", path)
    checked = {"forces": False, "energy": False}
    if data_cfg.get("check_units", True):
        check_force_scale(frames, path, data_cfg.get("forces_unit", "eV/A"))
        checked = {"forces": True, "energy": check_energy_scale(frames, path, data_cfg.get("energy_unit", "eV"))}
    return frames, {
        "energy_unit": data_cfg.get("energy_unit", "eV"),
        "forces_unit": data_cfg.get("forces_unit", "eV/A"),
        "units_checked": checked,
        "ignored_info_keys": sorted(ignored),
    }


def _energy(atoms, key: str, where: str) -> float:
    """The frame's energy under ``key``: a calculator result (where ASE puts the standard
    ``energy``) or a header value (any other key)."""
    results = atoms.calc.results if atoms.calc is not None else {}
    value = results.get(key, atoms.info.get(key))
    if value is None:
        there = sorted({*(k for k, v in results.items() if np.ndim(v) == 0), *atoms.info})
        raise DataImportError(
            f"{where}: no energy {key!r} (data.energy_key); header keys there: {', '.join(there) or 'none'}"
        )
    try:
        return float(value)
    except (TypeError, ValueError):
        raise DataImportError(f"{where}: energy {key!r} is not a number ({value!r})") from None


def _forces(atoms, key: str, where: str) -> np.ndarray:
    """The frame's forces under ``key``: a calculator result (``forces``) or a per-atom column."""
    results = atoms.calc.results if atoms.calc is not None else {}
    value = results.get(key, atoms.arrays.get(key))
    if value is None:
        columns = sorted(k for k in atoms.arrays if k not in ("numbers", "positions"))
        raise DataImportError(
            f"{where}: no forces {key!r} (data.forces_key); per-atom columns there: {', '.join(columns) or 'none'}"
            " besides species and positions; a force field cannot be trained without forces"
        )
    value = np.array(value, dtype=np.float64)
    if value.shape != (len(atoms), 3):
        raise DataImportError(f"{where}: forces {key!r} have shape {value.shape}, expected ({len(atoms)}, 3)")
    return value


def _temperature(atoms, where: str, data_cfg: dict) -> float:
    if "temperature" in atoms.info:
        try:
            return float(atoms.info["temperature"])
        except (TypeError, ValueError):
            raise DataImportError(f"{where}: temperature {atoms.info['temperature']!r} is not a number") from None
    t = data_cfg.get("temperature")
    return float(t) if t is not None else -1.0


def time_axis(atoms_list, path, data_cfg: dict):
    """(trajectory, times in fs or None, steps) of one file's frames.

    A trajectory's time comes from each frame's ``time`` (fs), else ``step`` x timestep_fs,
    else frame index x timestep_fs, and must increase. Frames that are not a trajectory get
    their index in the file as ``step``: a label (dataset.dedupe_frames keys on run and step),
    not a time."""
    has_time = ["time" in a.info for a in atoms_list]
    has_step = ["step" in a.info for a in atoms_list]
    trajectory = data_cfg.get("trajectory", "auto")
    if trajectory == "auto":
        trajectory = any(has_time) or any(has_step)
    n = len(atoms_list)
    if not trajectory:
        return False, None, list(range(n))
    for flags, key in ((has_time, "time"), (has_step, "step")):
        if any(flags) and not all(flags):
            i = flags.index(False)
            raise DataImportError(f"{path}: frame {i} has no {key!r} while other frames of the file have one")
    dt = data_cfg.get("timestep_fs")
    steps = [int(a.info["step"]) for a in atoms_list] if all(has_step) else list(range(n))
    if all(has_time):
        times = [float(a.info["time"]) for a in atoms_list]
    elif dt is not None:
        times = [s * float(dt) for s in steps]
    else:
        raise DataImportError(
            f"{path}: frame 0: a trajectory whose frames carry no 'time'; set data.timestep_fs "
            "(fs between steps, or between frames where they carry no 'step'), or data.trajectory: false"
        )
    for i in range(1, n):
        if not times[i] > times[i - 1]:
            raise DataImportError(
                f"{path}: frame {i}: time {times[i]:g} fs does not follow frame {i - 1}'s {times[i - 1]:g} fs; "
                "a trajectory's times must increase (several runs in one file? one file per run, "
                "or data.trajectory: false)"
            )
    return True, times, steps


def check_force_scale(frames, path, unit: str) -> None:
    """Refuse forces whose median RMS component is implausible for thermal frames in eV/A
    (see MIN_RMS_FORCE): most likely a wrong data.forces_unit."""
    rms = np.array([np.sqrt(np.mean(f.forces**2)) for f in frames])
    k = int(np.argsort(rms)[len(rms) // 2])
    med = float(rms[k])
    if MIN_RMS_FORCE <= med <= MAX_RMS_FORCE:
        return
    hint = (
        "forces in Ha/Bohr read as eV/A look like this (51x too small)"
        if med < MIN_RMS_FORCE
        else "forces in eV/A read as Ha/Bohr look like this (51x too large)"
    )
    raise DataImportError(
        f"{path}: frame {k}: the median RMS force component of the file's frames is {med:.4g} eV/A after "
        f"conversion from {unit}, outside {MIN_RMS_FORCE}-{MAX_RMS_FORCE} eV/A (thermal QD frames: 0.25-0.38 "
        f"eV/A at 300-600 K); {hint}. Set data.forces_unit, or data.check_units: false if the frames are "
        "right (e.g. near a minimum)"
    )


def check_energy_scale(frames, path, unit: str) -> bool:
    """Refuse energies whose differences between nearby frames do not match the work of the
    forces (see WORK_SLOPE_RANGE); False where no such pairs exist (the unit is then unchecked)."""
    d_e, work, first = [], [], None
    for i, (a, b) in enumerate(zip(frames, frames[1:])):
        if a.symbols != b.symbols:
            continue
        dx = b.positions - a.positions
        if np.linalg.norm(dx, axis=1).max() > MAX_PAIR_DISPLACEMENT:
            continue
        d_e.append(b.energy - a.energy)
        work.append(-0.5 * float(np.sum((a.forces + b.forces) * dx)))
        first = i if first is None else first
    d_e, work = np.array(d_e), np.array(work)
    if len(work) < MIN_PAIRS or not work @ work > 0:
        log.warning(
            "%s: energy unit (%s) not checked: fewer than %d pairs of neighbouring frames within %g A "
            "of each other to compare energy differences with the work of the forces",
            path,
            unit,
            MIN_PAIRS,
            MAX_PAIR_DISPLACEMENT,
        )
        return False
    slope = float(d_e @ work / (work @ work))
    lo, hi = WORK_SLOPE_RANGE
    if not lo <= slope <= hi:
        raise DataImportError(
            f"{path}: frame {first}: energy differences between neighbouring frames are {slope:.3g} x the work "
            f"of the forces (least squares over {len(work)} pairs; 1.00 where energy and forces agree); "
            f"data.energy_unit {unit} does not fit data.forces_unit, or the energies are not those the forces "
            "derive from (energies in Ha read as eV give 0.037, per-atom energies 1/N). Set data.energy_unit, "
            "or data.check_units: false"
        )
    return True


# ---------------------------------------------------------------- the whole data set


def drop_duplicates(frames, strict: bool = False):
    """Frames whose positions (and atoms) equal an earlier frame's, within a file or across
    files, dropped with a warning that counts them, or an error with ``strict``. Returns the
    frames kept and {source: frames dropped}. Positions are compared at 1e-8 A, as in
    :func:`qdff.data.dataset.dedupe_frames`."""
    seen: dict = {}
    kept, dropped = [], Counter()
    for f in frames:
        key = (tuple(f.symbols), np.round(f.positions / 1e-8).astype(np.int64).tobytes())
        if key in seen:
            if strict:
                raise DataImportError(
                    f"{f.where}: the same positions as {seen[key]} (a duplicate frame; data.strict is true)"
                )
            dropped[f.info["source"]] += 1
            continue
        seen[key] = f.where
        kept.append(f)
    for source, n in dropped.items():
        log.warning("%s: dropped %d duplicate frame(s) (positions equal to an earlier frame's)", source, n)
    return kept, dict(dropped)


def _source_summary(path, run: str, frames, extra: dict | None = None) -> dict:
    times = [f.info["time"] for f in frames if "time" in f.info]
    out = dict(extra or {})
    out.update(
        source=str(path),
        run=run,
        frames=len(frames),
        compositions=dict(Counter(f.info["composition"] for f in frames)),
        temperatures=sorted({f.info["temperature"] for f in frames}),
        trajectory=bool(frames and frames[0].info["trajectory"]),
        time_fs=[min(times), max(times)] if times else None,
    )
    return out
