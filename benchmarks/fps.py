"""Benchmark: qdff.selection.frames.fps against scikit-matter's FPS (skmatter.sample_selection.FPS).

Both select the same number of rows from the same random descriptors, starting from the
same row; the script prints both wall times and their ratio and checks that the selected
indices are identical. scikit-matter is the `bench` extra (pip install -e .[bench]).

    .venv/bin/python benchmarks/fps.py [--frames 100000] [--features 200] [--select 1000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=100_000)
    ap.add_argument("--features", type=int, default=200)
    ap.add_argument("--select", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    from skmatter.sample_selection import FPS

    from qdff.selection.frames import fps

    X = np.random.default_rng(a.seed).normal(size=(a.frames, a.features))
    print(f"{a.frames} x {a.features} random descriptors (float64), selecting {a.select} from row 0", flush=True)

    t0 = time.perf_counter()
    ours = fps(X, a.select, start=0)
    t_ours = time.perf_counter() - t0
    print(f"qdff.selection.frames.fps:       {t_ours:8.2f} s", flush=True)

    t0 = time.perf_counter()
    peer = FPS(n_to_select=a.select, initialize=0).fit(X).selected_idx_
    t_peer = time.perf_counter() - t0
    print(f"skmatter.sample_selection.FPS:   {t_peer:8.2f} s", flush=True)

    same = [int(i) for i in peer] == ours
    print(f"ratio skmatter / qdff: {t_peer / t_ours:.1f}x; identical indices: {same}")
    assert same, "selected indices differ"


if __name__ == "__main__":
    main()
