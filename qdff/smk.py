"""Glue for Snakemake scripts: log to the rule's log file, the rule's params as the step's
keyword arguments, clear failures.

The convention (tests/test_rules.py checks it for every rule): a rule's script is
``smk.run(snakemake, step, files...)``; the step gets the rule's ``params:`` as keyword-only
arguments, and nothing else of the config. The config was validated (defaults filled) when
the Snakefile loaded (rules/common.smk), so what a rule declares is what its step reads."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

from . import logs


class Launch(Mapping):
    """Settings that say how a job runs, not what it computes (CP2K's command, threads, memory,
    what to do on a failure): a rule passes them to its step as a param, and they are no
    rerun trigger. Snakemake records and compares only the params it can represent (builtin
    types) and skips the others, which a Launch is not (tests/test_rules.py checks this
    against the installed Snakemake): moving a project to a cluster with another
    cp2k.command re-runs no AIMD."""

    def __init__(self, values: Mapping):
        self._values = dict(values)

    def __getitem__(self, key):
        return self._values[key]

    def __iter__(self):
        return iter(self._values)

    def __len__(self):
        return len(self._values)

    def __repr__(self):
        return f"Launch({self._values!r})"


def start(snakemake) -> dict:
    """Set up logging to ``snakemake.log[0]`` and the threads of torch and BLAS; the rule's
    params as a dict."""
    logs.setup(snakemake.log[0] if snakemake.log else None)
    logging.getLogger("qdff").info("rule %s, wildcards %s", snakemake.rule, dict(snakemake.wildcards))
    _limit_threads(snakemake.threads)
    return dict(snakemake.params.items())


def _limit_threads(threads: int) -> None:
    """Torch and BLAS in this job use the rule's threads, not every core: beside other jobs,
    oversubscribed small models run many times slower. Set before torch is imported (it
    reads these at import), so rules that never import torch pay nothing."""
    t = str(max(1, int(threads)))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = t
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(t))


def run(snakemake, step, *args, **kwargs):
    """Call ``step(*args, **kwargs, **params)`` with the rule's params; log any exception with
    its message before failing the job."""
    params = start(snakemake)
    try:
        return step(*args, **kwargs, **params)
    except Exception as exc:
        logging.getLogger("qdff").error("%s: %s", type(exc).__name__, exc)
        print(f"qdff error in rule {snakemake.rule}: {exc}", file=sys.stderr)
        raise
