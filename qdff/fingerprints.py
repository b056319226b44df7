"""Hashes that decide whether finished or half-finished work is reused: a file's bytes, a
start frame, and a run's settings with its start frame. A resumed job continues only work whose
hash matches; anything else is redone (or set aside), so a changed setting never survives as a
stale result."""

from __future__ import annotations

import hashlib
import json

import numpy as np


def file_sha256(*paths) -> str:
    """One hash of the bytes of ``paths``, in the order given."""
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def frame_sha256(atoms) -> str:
    """A frame's elements, positions and cell, rounded to 1e-6 Angstrom (below that, arithmetic
    noise; a frame written to text and read back can still differ in the last digit kept, so
    resumes compare frames read from the same file)."""
    h = hashlib.sha256()
    h.update(" ".join(atoms.get_chemical_symbols()).encode())
    h.update(np.round(np.asarray(atoms.positions, dtype=float), 6).tobytes())
    h.update(np.round(np.asarray(atoms.cell, dtype=float), 6).tobytes())
    return h.hexdigest()


def settings_sha256(settings: dict, start=None) -> str:
    """Settings (JSON-able; anything else by its ``str``), with the start frame they run from."""
    physics = dict(settings) if start is None else dict(settings, start_sha256=frame_sha256(start))
    return hashlib.sha256(json.dumps(physics, sort_keys=True, default=str).encode()).hexdigest()
