"""What all backends share: subprocess runs with streamed logs, data hashing, provenance."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path

from ...fileio import atomic_path, write_json
from ...fingerprints import file_sha256
from ...processes import terminate_raises

log = logging.getLogger(__name__)


class TrainingError(RuntimeError):
    pass


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@contextlib.contextmanager
def torch_default_dtype(dtype):
    """Run a block with torch's default dtype set to ``dtype``, and restore it afterwards.

    nequip sets the process-wide default to float64 when it loads or trains a model (its
    global state), and SchNetPack and SevenNet then build float64 tensors against their
    float32 weights ("Float did not match Double"): every backend that needs float32 asks
    for it around its own work instead of relying on what ran before in the process."""
    import torch

    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def publish_model(source: Path, dest: Path, missing: str) -> None:
    """Copy the model file a trainer wrote (``source``) to ``dest`` in the model directory,
    atomically: a job killed during the copy never leaves a file that looks like a finished
    model. ``TrainingError("<missing> (<source>)")`` when the trainer wrote none."""
    source, dest = Path(source), Path(dest)
    if not source.is_file():
        raise TrainingError(f"{missing} ({source})")
    with atomic_path(dest) as tmp:
        shutil.copyfile(source, tmp)


def write_shifted_extxyz(
    frames, shift: dict, path: Path, energy_key: str | None = None, forces_key: str | None = None
) -> None:
    """The training frames as a trainer's extxyz: positions, the energy minus ``shift`` (eV per
    element) and the forces, nothing else. Without keys the labels are ASE's own energy and
    forces (sevenn reads those); MACE reads plain ``energy``/``forces`` keys as something
    else, so it gets named keys (``REF_energy`` in info, ``REF_forces`` in arrays)."""
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    out = []
    for a in frames:
        b = a.copy()
        b.calc = None
        b.info = {}
        b.arrays = {k: v for k, v in b.arrays.items() if k in ("numbers", "positions")}
        e = float(a.get_potential_energy()) - sum(shift[s] for s in a.get_chemical_symbols())
        if energy_key:
            b.info[energy_key] = e
            b.arrays[forces_key] = a.get_forces()
        else:
            b.calc = SinglePointCalculator(b, energy=e, forces=a.get_forces())
        out.append(b)
    path.parent.mkdir(parents=True, exist_ok=True)
    write(path, out, format="extxyz")


def epoch_logger(label: str, total: int, pattern, first_epoch: int = 1):
    """A line handler for run_streamed: logs "<label> epoch i/total, [loss x, ]s per epoch, ETA"
    for each line ``pattern`` matches (group 1: the epoch, counted from ``first_epoch``;
    a group named loss, if the pattern has one). The rate counts from the first epoch seen, so a
    resumed training's ETA is not skewed by the epochs it skipped."""
    state = {"t0": time.time(), "first": None}

    def on_line(line: str) -> None:
        m = pattern.search(line)
        if not m:
            return
        epoch = int(m.group(1)) + 1 - first_epoch
        state["first"] = state["first"] or epoch
        per = (time.time() - state["t0"]) / (epoch - state["first"] + 1)
        loss = m.groupdict().get("loss")
        log.info(
            "%s epoch %d/%d, %s%.1f s per epoch, ETA %.0f s",
            label,
            epoch,
            total,
            f"loss {loss}, " if loss is not None else "",
            per,
            per * (total - epoch),
        )

    return on_line


def zero_force_rms(frames) -> float:
    """RMS of the force components: the error of a model predicting zero force."""
    import numpy as np

    return float(np.sqrt(np.mean(np.concatenate([a.get_forces() for a in frames]) ** 2)))


def check_curve(
    name: str, source, rows, unit: str = "step", hint: str = "lower the learning rate or check the data"
) -> None:
    """Fail on a diverged training: a non-finite loss in ``rows`` ((step, losses) pairs).
    Whether the finished model is any use is judged on all validation frames by
    :func:`check_useful`, against baselines of those frames."""
    for step, values in rows:
        if any(not math.isfinite(float(v)) for v in values):
            raise TrainingError(f"{name} training diverged: non-finite loss at {unit} {step} in {source}; {hint}")


# Defaults of the config block ``training`` (qdff/schemas/config.schema.yaml documents them).
DEFAULT_GATE = {"max_force_rmse_ratio": 1.0, "max_energy_rmse_ratio": 10.0, "energy_floor_meV_per_atom": 5.0}
# Above this many times the zero-force baseline a model is not merely useless: its weights
# blew up (the absolute check the curve check used to make, now on all validation frames).
DIVERGED_FORCE_RATIO = 3.0
#: the gate of a model trained for a moment only to measure its cost (benchmarks/speed_vs_dft.py):
#: neither checked for usefulness nor for divergence; model.json says so
TIMING_ONLY = {"timing_only": True}


def check_useful(name: str, calc, valid_frames, gate: dict | None = None, hint: str = "check the data") -> dict:
    """Errors of the trained model ``calc`` (an ASE calculator returning total energies) on
    every validation frame, against the trivial models of the same frames. Forces: a model
    whose force RMSE is more than ``max_force_rmse_ratio`` times the zero-force RMSE (the RMS
    of the reference forces) is not useful. Energies, judged per AIMD temperature
    (``info['temperature']``; all frames as one group where none carries one): at each
    temperature T, the standard deviation of the per-atom energy error with its mean offset
    removed must be at most ``max_energy_rmse_ratio`` times the mean-energy baseline of T (the
    RMS of the reference per-atom energies of T's frames about their own mean), or than that
    times ``energy_floor_meV_per_atom``, whichever is larger. A constant offset is not judged
    (it changes neither forces nor MD; it is reported), and the offset between temperatures
    does not inflate the baseline. A model failing a rule, or that predicts non-finite numbers,
    raises :class:`TrainingError` naming both numbers (and T). Returns the figures, for the
    model's metadata. A ``timing_only`` gate (:data:`TIMING_ONLY`) skips the check and says so."""
    import numpy as np

    from ..errors import error_metrics, predict

    g = {**DEFAULT_GATE, **(gate or {})}
    if g.get("timing_only"):
        log.warning("%s: timing only, the model is not checked for usefulness or divergence", name)
        return {
            "skipped": "timing only: trained for a moment to measure its cost, not a useful model",
            "n_frames": len(valid_frames),
        }
    e_pred, f_pred, _ = predict(calc, valid_frames)
    finite = bool(np.isfinite(e_pred).all() and all(np.isfinite(f).all() for f in f_pred))
    m = error_metrics(valid_frames, e_pred, f_pred) if finite else {}
    f_rmse, f_base = m.get("force_rmse_meV_per_A", math.nan), m.get("baseline_zero_force_rmse_meV_per_A", math.nan)
    e_rmse, e_base = (
        m.get("energy_rmse_meV_per_atom", math.nan),
        m.get("baseline_mean_energy_rmse_meV_per_atom", math.nan),
    )
    # (label, error std with the mean offset removed, mean-energy baseline) per temperature
    groups = [
        (
            k[len("energy_error_std_meV_per_atom_T_") :].replace("K", " K"),
            v,
            m[k.replace("energy_error_std", "baseline_mean_energy_rmse")],
        )
        for k, v in m.items()
        if k.startswith("energy_error_std_meV_per_atom_T_")
    ] or [("all temperatures", m.get("energy_error_std_meV_per_atom", math.nan), e_base)]
    where = f"on the {len(valid_frames)} validation frames"
    if not finite or not f_rmse <= DIVERGED_FORCE_RATIO * f_base:
        what = (
            "non-finite predictions"
            if not finite
            else (
                f"force RMSE {f_rmse:.1f} meV/A, more than {DIVERGED_FORCE_RATIO:g}x the zero-force baseline {f_base:.1f} meV/A"
            )
        )
        raise TrainingError(f"{name} training diverged: {what} {where}; {hint}")
    if not f_rmse <= g["max_force_rmse_ratio"] * f_base:
        raise TrainingError(
            f"{name} model is not useful: force RMSE {f_rmse:.1f} meV/A {where} against {f_base:.1f} meV/A for "
            f"predicting zero force (ratio {f_rmse / f_base:.2f} > training.max_force_rmse_ratio "
            f"{g['max_force_rmse_ratio']:g}); {hint}"
        )
    # a spread of per-atom energies below the floor (a short run at one temperature: 1.8-2.7
    # meV/atom measured) is the thermal noise of a few frames, not a bar a force field must clear
    for label, e_std, base in groups:
        e_bar = max(base, g["energy_floor_meV_per_atom"])
        if not e_std <= g["max_energy_rmse_ratio"] * e_bar:
            raise TrainingError(
                f"{name} model is not useful: at {label}, energy error std (mean offset removed) {e_std:.2f} "
                f"meV/atom {where} against {base:.2f} meV/atom for predicting the mean energy per atom of "
                f"{label} (floor training.energy_floor_meV_per_atom {g['energy_floor_meV_per_atom']:g}; ratio "
                f"{e_std / e_bar:.2f} > training.max_energy_rmse_ratio {g['max_energy_rmse_ratio']:g}); {hint}"
            )
    out = {
        "n_frames": len(valid_frames),
        "force_rmse_meV_per_A": f_rmse,
        "baseline_zero_force_rmse_meV_per_A": f_base,
        "energy_rmse_meV_per_atom": e_rmse,
        "energy_mean_signed_error_meV_per_atom": m["energy_mean_signed_error_meV_per_atom"],
        "energy_error_std_meV_per_atom": m["energy_error_std_meV_per_atom"],
        # about one mean pooled over all temperatures; the gate uses the per-temperature ones
        "baseline_mean_energy_rmse_meV_per_atom": e_base,
        **{k: v for k, v in m.items() if k.startswith(("energy_error_std_meV_per_atom_T_", "baseline_mean_energy_"))},
        **g,
    }
    log.info(
        "%s on %d validation frames: force RMSE %.1f meV/A (zero-force %.1f), energy RMSE %.2f meV/atom, "
        "error std (mean offset removed) per temperature %s: passes the usefulness gate",
        name,
        len(valid_frames),
        f_rmse,
        f_base,
        e_rmse,
        ", ".join(f"{lab}: {e_std:.2f} against the mean-energy baseline {base:.2f}" for lab, e_std, base in groups),
    )
    return out


def export_metadata(
    model_dir: Path, meta: dict, valid_frames, gate: dict | None, label: str, hint: str, *, calculator
) -> Path:
    """Check the exported model on the validation frames (:func:`check_useful`), then write
    ``model.json`` (last: its presence marks a complete, checked export). A model that fails
    the check is removed and no model.json is written. ``calculator``: the backend's own
    ``calculator(model_dir, meta, device)``, which loads the model."""
    from ..reference_shift import shifted_calculator

    model_dir = Path(model_dir)
    calc = shifted_calculator(calculator, model_dir, meta)
    try:
        meta["validation_check"] = check_useful(label, calc, valid_frames, gate, hint)
    except TrainingError:
        (model_dir / meta["model_file"]).unlink(missing_ok=True)
        raise
    write_json(model_dir / "model.json", meta)
    return model_dir / "model.json"


def fingerprint(*parts, files=()) -> str:
    """Hash of settings and data: a killed training is resumed only when both are unchanged."""
    h = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode())
    if files:
        h.update(file_sha256(*files).encode())
    return h.hexdigest()


def frames_digest(*frame_lists) -> str:
    """Hash of the atoms, positions and labels of frame lists (for :func:`fingerprint`)."""
    import numpy as np

    h = hashlib.sha256()
    for frames in frame_lists:
        h.update(str(len(frames)).encode())
        for a in frames:
            for arr in (a.numbers, a.positions, a.get_forces(), [a.get_potential_energy()]):
                h.update(np.ascontiguousarray(arr, dtype=np.float64).tobytes())
    return h.hexdigest()


def same_run(workdir: Path, fp: str) -> bool:
    """True when ``workdir`` holds a training of fingerprint ``fp``; else record ``fp`` there."""
    fp_file = Path(workdir) / "fingerprint"
    if fp_file.is_file() and fp_file.read_text().strip() == fp:
        return True
    fp_file.write_text(fp + "\n")
    return False


def thread_env(threads: int) -> dict:
    t = str(threads)
    return dict(
        os.environ,
        OMP_NUM_THREADS=t,
        MKL_NUM_THREADS=t,
        DP_INTRA_OP_PARALLELISM_THREADS=t,
        DP_INTER_OP_PARALLELISM_THREADS="1",
    )


def run_streamed(cmd: list[str], cwd: Path, env: dict, what: str, on_line=None) -> None:
    """Run ``cmd``, copying its output line by line to the log; fail with its last lines."""
    log.info("%s: %s (in %s)", what, " ".join(cmd), cwd)
    tail: list[str] = []
    t0 = time.time()
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    try:
        with terminate_raises():
            for line in proc.stdout:
                line = line.rstrip()
                tail = (tail + [line])[-30:]
                log.info("  | %s", line)
                if on_line:
                    on_line(line)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    rc = proc.wait()
    if rc != 0:
        raise TrainingError(f"{what} failed (exit {rc}) in {cwd}; last output:\n" + "\n".join(tail))
    log.info("%s finished in %.0f s", what, time.time() - t0)


def provenance(backend: str, version: str, config: dict, data_files, wall_s: float) -> dict:
    import torch

    return {
        "backend": backend,
        "backend_version": version,
        "torch_version": torch.__version__,
        "config": config,
        "training_data_sha256": file_sha256(*data_files),
        "training_wall_s": round(wall_s, 1),
        "device": device(),
        "host": platform.node(),
        "python": platform.python_version(),
    }
