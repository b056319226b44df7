"""What all backends share: subprocess runs with streamed logs, data hashing, provenance."""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import platform
import subprocess
import time
from pathlib import Path

log = logging.getLogger(__name__)


class TrainingError(RuntimeError):
    pass


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def zero_force_rms(frames) -> float:
    """RMS of the force components: the error of a model predicting zero force."""
    import numpy as np

    return float(np.sqrt(np.mean(np.concatenate([a.get_forces() for a in frames]) ** 2)))


def check_curve(name: str, source, rows, f_val: float | None, e_val: float | None, force_rms: float,
                unit: str = "step", hint: str = "lower the learning rate or check the data") -> None:
    """Fail on a diverged training: a non-finite loss in ``rows`` ((step, losses) pairs), or
    final validation errors far worse than trivial models (forces: 3x the zero-force RMS
    ``force_rms``; energy: 1 eV/atom). ``None`` skips a check the backend cannot provide."""
    for step, values in rows:
        if any(not math.isfinite(float(v)) for v in values):
            raise TrainingError(f"{name} training diverged: non-finite loss at {unit} {step} in {source}")
    if f_val is not None and not f_val <= 3 * force_rms:
        raise TrainingError(
            f"{name} training diverged: final validation force RMSE {f_val:.3g} eV/A is more than 3x "
            f"the zero-force baseline {force_rms:.3g} eV/A ({source}); {hint}"
        )
    if e_val is not None and not e_val <= 1.0:
        raise TrainingError(f"{name} training diverged: final validation energy RMSE {e_val:.3g} eV/atom ({source}); {hint}")


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


def file_sha256(*paths) -> str:
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def thread_env(threads: int) -> dict:
    t = str(threads)
    return dict(os.environ, OMP_NUM_THREADS=t, MKL_NUM_THREADS=t,
                DP_INTRA_OP_PARALLELISM_THREADS=t, DP_INTER_OP_PARALLELISM_THREADS="1")


def run_streamed(cmd: list[str], cwd: Path, env: dict, what: str, on_line=None) -> None:
    """Run ``cmd``, copying its output line by line to the log; fail with its last lines."""
    log.info("%s: %s (in %s)", what, " ".join(cmd), cwd)
    tail: list[str] = []
    t0 = time.time()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    try:
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
