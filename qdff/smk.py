"""Glue for Snakemake scripts: log to the rule's log file, validated config, clear failures."""
from __future__ import annotations

import logging
import os
import sys

from . import config as qconfig
from . import logs


def start(snakemake) -> dict:
    """Set up logging to ``snakemake.log[0]`` and return the validated config."""
    logs.setup(snakemake.log[0] if snakemake.log else None)
    logging.getLogger("qdff").info("rule %s, wildcards %s", snakemake.rule, dict(snakemake.wildcards))
    _limit_threads(snakemake.threads)
    return qconfig.validate(dict(snakemake.config))


def _limit_threads(threads: int) -> None:
    """Torch and BLAS in this job use the rule's threads, not every core: beside other jobs,
    oversubscribed small models run many times slower. Set before torch is imported (it
    reads these at import), so rules that never import torch pay nothing."""
    t = str(max(1, int(threads)))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = t
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(t))


def run(snakemake, fn) -> None:
    """Call ``fn(cfg)``; log any exception with its message before failing the job."""
    cfg = start(snakemake)
    try:
        fn(cfg)
    except Exception as exc:
        logging.getLogger("qdff").error("%s: %s", type(exc).__name__, exc)
        print(f"qdff error in rule {snakemake.rule}: {exc}", file=sys.stderr)
        raise
