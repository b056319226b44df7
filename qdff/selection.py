"""Held-out split by time and selection of training/validation frames.

Neighbouring AIMD frames are nearly identical, so a random split leaks test frames
into training. The held-out test set is the final time block of every run, with a gap
of dropped frames before it, set aside before any selection; selection only ever sees
the earlier part of each run (the training pool).
"""
from __future__ import annotations

import logging
from collections import defaultdict

import numpy as np

log = logging.getLogger(__name__)

METHODS = ("random", "stride")


class SelectionError(ValueError):
    pass


def split_pool_test(frames, test_fraction: float, gap_frames: int = 0, equilibration_fs: float = 0.0):
    """Indices (pool, test) of ``frames``: per run, the last ``test_fraction`` by time is test."""
    by_run = defaultdict(list)
    for i, a in enumerate(frames):
        by_run[a.info.get("run", "run")].append(i)
    pool, test = [], []
    for run, idx in by_run.items():
        idx = sorted(idx, key=lambda i: frames[i].info.get("time", i))
        t0 = frames[idx[0]].info.get("time", 0.0)
        idx = [i for i in idx if frames[i].info.get("time", 0.0) - t0 >= equilibration_fs]
        n = len(idx)
        n_test = max(1, int(round(test_fraction * n)))
        n_pool = n - n_test - gap_frames
        if n_pool < 1:
            raise SelectionError(
                f"run {run}: {n} frames after equilibration are too few for test_fraction={test_fraction} "
                f"and gap_frames={gap_frames}; run longer AIMD or lower them"
            )
        pool += idx[:n_pool]
        test += idx[n - n_test :]
    return sorted(pool), sorted(test)


def select(pool: list[int], n: int, method: str, seed: int = 0) -> list[int]:
    """Pick ``n`` distinct indices from ``pool`` by ``method``."""
    pool = list(pool)
    if n > len(pool):
        raise SelectionError(f"cannot select {n} frames from a pool of {len(pool)}")
    if method == "random":
        rng = np.random.default_rng(seed)
        return sorted(int(i) for i in rng.choice(pool, size=n, replace=False))
    if method == "stride":
        pos = np.linspace(0, len(pool) - 1, n).round().astype(int)
        return [pool[p] for p in pos]
    raise SelectionError(f"selection.method {method!r} unknown; choose from {', '.join(METHODS)}")


def split_and_select(frames, sel: dict) -> dict:
    """Indices of train, valid and test frames following the ``selection`` config block."""
    pool, test = split_pool_test(frames, sel["test_fraction"], sel["gap_frames"], sel["equilibration_fs"])
    n_train, n_valid = sel["n_train"], sel["n_valid"]
    if n_train + n_valid > len(pool):
        scale = len(pool) / (n_train + n_valid)
        new_train, new_valid = max(1, int(n_train * scale)), max(1, int(n_valid * scale))
        if new_train + new_valid > len(pool):
            raise SelectionError(f"training pool has only {len(pool)} frames; need at least 2")
        log.warning(
            "selection: pool has %d frames, fewer than n_train+n_valid=%d; using %d train, %d valid",
            len(pool), n_train + n_valid, new_train, new_valid,
        )
        n_train, n_valid = new_train, new_valid
    train = select(pool, n_train, sel["method"], sel["seed"])
    rest = sorted(set(pool) - set(train))
    valid = select(rest, n_valid, "random", sel["seed"] + 1)
    assert not (set(train) & set(test)) and not (set(valid) & set(test)) and not (set(train) & set(valid))
    return {"pool": pool, "train": train, "valid": valid, "test": test}
