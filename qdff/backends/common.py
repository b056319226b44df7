"""What all backends share: subprocess runs with streamed logs, data hashing, provenance."""
from __future__ import annotations

import hashlib
import logging
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
