"""How far an atom's k-th nearest partner strays: CP2K's own MD (a null test's seeds) beside a
model's ML-MD from the same start frame, over the same time window, and the AIMD.

    python benchmarks/shell_distances.py results/<system> --null-test DIR --mlmd TRAJECTORY.extxyz \
        [--element Se --partner Cd --k 3] [--until 700] [--every 10] [--atoms 107 143 ...]

The under-coordination verdict fires when an atom keeps fewer than k partners within the break
distance (k: the least its element has in the AIMD); before it fires, the k-th partner drifts
out. Per run (each CP2K seed of ``--null-test``'s ``<T>K/seed*``, each seed of the model's
trajectory, the AIMD after selection.equilibration_fs), over recorded frames every ``--every``
fs up to ``--until`` fs: the median, 99th percentile and largest k-th partner distance over
every atom of ``--element`` and frame, and for ``--atoms`` (default: the five with the longest
in the AIMD) each one's mean and largest. A model whose runs stretch those sites further than
CP2K's from the same start, in the same time, is softer there; a few seeds of each make this a
comparison of spreads, not a verdict.

A second table counts, per run, the episodes in which an atom has fewer neighbours within the
break distances than any atom of its element in the AIMD (the under-coordination verdict's
floor and distances, computed as the verdict computes them), however short: the verdict fires
on the first that lasts ``mlmd.bond_break_fs``; the short ones show whether the reference
itself visits that state and how soon it leaves it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ase.io import read  # noqa: E402

from qdff import config as qconfig  # noqa: E402
from qdff.cp2k import run as cp2k_run  # noqa: E402
from qdff.data import dataset  # noqa: E402
from qdff.validation import mlmd, reference_md, stability  # noqa: E402


def kth_partner(positions, atoms_idx, partner_idx, k: int) -> np.ndarray:
    """Distance from each atom of ``atoms_idx`` to its k-th nearest atom of ``partner_idx``."""
    d = np.linalg.norm(positions[atoms_idx][:, None] - positions[partner_idx][None], axis=-1)
    return np.sort(d, axis=1)[:, k - 1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path, help="results/<system> of a finished run (its data set)")
    ap.add_argument("--config", type=Path, required=True)
    ap.add_argument("--null-test", type=Path, required=True, help="benchmarks/null_test.py's --out")
    ap.add_argument("--mlmd", type=Path, required=True, help="a model's ML-MD trajectory.extxyz (seeds in info)")
    ap.add_argument("--temperature", type=float, default=300.0)
    ap.add_argument("--element", default="Se")
    ap.add_argument("--partner", default="Cd")
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--until", type=float, default=700.0, help="fs from the start frame")
    ap.add_argument("--every", type=int, default=10, help="fs between the frames compared")
    ap.add_argument("--atoms", type=int, nargs="*", default=None)
    a = ap.parse_args(argv)
    cfg = qconfig.load(a.config)
    start = read(a.null_test / f"start_{a.temperature:g}K.extxyz")
    sym = np.array(start.get_chemical_symbols())
    mine, partner = np.flatnonzero(sym == a.element), np.flatnonzero(sym == a.partner)
    runs: dict[str, np.ndarray] = {}
    positions: dict[str, list] = {}  # every recorded frame of each run in the window, for the episodes
    for w in sorted((a.null_test / f"{a.temperature:g}K").glob("seed*")):
        if not (w / f"{cp2k_run.MD_PROJECT}-pos-1.xyz").is_file():
            continue
        frames = [
            (f.step, f.values)
            for f in reference_md.segment_frames(w, cp2k_run.MD_PROJECT)
            if 0 < f.step <= a.until and f.step % a.every == 0
        ]
        runs[f"CP2K {w.name}"] = np.array([kth_partner(p, mine, partner, a.k) for _, p in frames])
        positions[f"CP2K {w.name}"] = frames
    traj = read(a.mlmd, ":")
    for s in sorted({int(t.info["seed"]) for t in traj}):
        frames = [
            (float(t.info["time"]), t.positions)
            for t in traj
            if int(t.info["seed"]) == s and 0 < t.info["time"] <= a.until and round(t.info["time"]) % a.every == 0
        ]
        runs[f"model seed{s}"] = np.array([kth_partner(p, mine, partner, a.k) for _, p in frames])
        positions[f"model seed{s}"] = frames
    aimd = dataset.equilibrated(
        dataset.at_temperature(dataset.read_frames(a.results / "dataset/frames.extxyz"), a.temperature),
        cfg["selection"]["equilibration_fs"],
    )
    aimd = [f for f in aimd if round(float(f.info["time"])) % a.every == 0]
    ref = np.array([kth_partner(f.positions, mine, partner, a.k) for f in aimd])
    t_aimd = [float(aimd[0].info["time"]), float(aimd[-1].info["time"])]
    runs[f"AIMD {t_aimd[0]:g}-{t_aimd[1]:g} fs"] = ref
    positions[f"AIMD {t_aimd[0]:g}-{t_aimd[1]:g} fs"] = [(float(f.info["time"]), f.positions) for f in aimd]
    sites = a.atoms or [int(mine[i]) for i in np.argsort(ref.max(axis=0))[::-1][:5]]
    col = [int(np.flatnonzero(mine == s)[0]) for s in sites]
    print(
        f"{a.results.name}: distance of each {a.element} to its {a.k}. nearest {a.partner} [A], frames every "
        f"{a.every} fs up to {a.until:g} fs from the null test's start frame ({a.temperature:g} K); AIMD: "
        f"{t_aimd[0]:g}-{t_aimd[1]:g} fs"
    )
    print(
        f"{'run':24s} {'frames':>6s} {'median':>6s} {'p99':>6s} {'max':>6s} | " + " ".join(f"{s:>11d}" for s in sites)
    )
    print(f"{'':24s} {'':>6s} {'':>6s} {'':>6s} {'':>6s} | " + " ".join(f"{'mean/max':>11s}" for _ in sites))
    for name, v in runs.items():
        if not len(v):
            continue
        print(
            f"{name:24s} {len(v):6d} {np.median(v):6.3f} {np.percentile(v, 99):6.3f} {v.max():6.3f} | "
            + " ".join(f"{v[:, c].mean():5.2f}/{v[:, c].max():5.2f}" for c in col)
        )
    print_episodes(cfg, a, start, positions)
    return 0


def print_episodes(cfg, a, start, positions: dict[str, list]) -> None:
    """Per run: the episodes below the under-coordination floor, however short (see the module)."""
    reference = dataset.read_frames(a.null_test / f"reference_{a.temperature:g}K.extxyz")
    breaks = stability.break_distances(reference, mlmd.bond_cutoffs(reference, cfg["mlmd"]["bond_cutoff_factor"]))
    floor = stability.Undercoordinated(start.get_chemical_symbols(), breaks, reference, cfg["mlmd"]["bond_break_fs"])
    print(
        f"\nbelow the floor (fewer neighbours within {breaks} than any atom of its element in the verdict's "
        f"AIMD frames: {floor.min_cn}), every episode however short; a frame every "
        f"{a.every} fs; the verdict fires at {cfg['mlmd']['bond_break_fs']:g} fs"
    )
    print(f"{'run':24s} {'ps':>5s} {'episodes':>8s} {'per ps':>6s} {'>=50 fs':>7s} {'longest fs':>10s}  atoms")
    for name, frames in positions.items():
        if not frames:
            continue
        traj = []
        for t, p in frames:
            x = start.copy()
            x.positions, x.info = p, {"time": float(t)}
            traj.append(x)
        eps = stability.undercoordinated_stretches(traj, reference, breaks, 0.0)
        ps = (frames[-1][0] - frames[0][0] + a.every) / 1000.0
        print(
            f"{name:24s} {ps:5.2f} {len(eps):8d} {len(eps) / ps:6.1f} {sum(e['lasted_fs'] >= 50 for e in eps):7d} "
            f"{max((e['lasted_fs'] for e in eps), default=0):10.0f}  "
            + " ".join(sorted({f"{e['element']}{e['atom']}" for e in eps}))
        )


if __name__ == "__main__":
    sys.exit(main())
