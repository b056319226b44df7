"""Logging set-up shared by the command line and the Snakemake scripts."""

from __future__ import annotations

import logging
import sys


def setup(log_file=None, level=logging.INFO) -> None:
    """Log to ``log_file`` (a Snakemake rule's log) when given, else to stderr."""
    handlers = [logging.FileHandler(log_file, mode="a")] if log_file else [logging.StreamHandler(sys.stderr)]
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
        handlers=handlers,
        force=True,
    )
    logging.captureWarnings(True)
