"""Glue for Snakemake scripts: log to the rule's log file, validated config, clear failures."""
from __future__ import annotations

import logging
import sys

from . import config as qconfig
from . import logs


def start(snakemake) -> dict:
    """Set up logging to ``snakemake.log[0]`` and return the validated config."""
    logs.setup(snakemake.log[0] if snakemake.log else None)
    logging.getLogger("qdff").info("rule %s, wildcards %s", snakemake.rule, dict(snakemake.wildcards))
    return qconfig.validate(dict(snakemake.config))


def run(snakemake, fn) -> None:
    """Call ``fn(cfg)``; log any exception with its message before failing the job."""
    cfg = start(snakemake)
    try:
        fn(cfg)
    except Exception as exc:
        logging.getLogger("qdff").error("%s: %s", type(exc).__name__, exc)
        print(f"qdff error in rule {snakemake.rule}: {exc}", file=sys.stderr)
        raise
