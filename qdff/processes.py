"""Child processes (CP2K, the training command lines) that end with the job that started them."""

from __future__ import annotations

import contextlib
import signal
import threading


class Terminated(SystemExit):
    """The job got SIGTERM (Snakemake stopping its jobs, scancel, a user's kill)."""


def _raise(signum, frame):
    raise Terminated(128 + signum)


@contextlib.contextmanager
def terminate_raises():
    """While the block runs, SIGTERM raises :class:`Terminated` instead of ending Python at
    once, so that the caller's ``except BaseException`` stops its child process first: else a
    killed job leaves CP2K running, writing into the directory its rerun resumes from
    (measured: a Snakemake run stopped with SIGTERM left its CP2K AIMD going). Outside the main
    thread signals cannot be caught and the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
