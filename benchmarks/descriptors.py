"""Benchmark: streamed, cached SOAP descriptors (qdff.selection.descriptors.compute_file) against
dscribe computing every frame at once in memory (read all frames, one ``SOAP.create``
call, then the same per-element averaging).

The data: 10^4 frames (default) of the 149-atom Cd68Se55Cl26 cluster shipped in
qdff/data/structures, each with random displacements (0.1 A), written as extxyz. Each
side runs in its own process; the script prints frames/s and peak memory (VmHWM from
/proc/self/status) of both, their ratios, and checks that the descriptors agree.

    .venv/bin/python benchmarks/descriptors.py [--frames 10000] [--workdir /tmp/qdff-bench-desc]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
STRUCTURE = ROOT / "qdff/data/structures/Cd68Se55Cl26_HLE17_20ang_opt.xyz"
PARAMS = {
    "kind": "soap",
    "soap": {"r_cut": 5.0, "n_max": 4, "l_max": 3, "sigma": 0.5},
    "distances": {"r_max": 8.0, "bins": 32},
}


def make_frames(path: Path, n: int, seed: int = 0) -> None:
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import read, write

    base = read(STRUCTURE)
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        a = base.copy()
        a.positions += rng.normal(scale=0.1, size=a.positions.shape)
        a.calc = SinglePointCalculator(a, energy=0.0, forces=np.zeros((len(a), 3)))
        a.info.update(run="300K", step=i, time=float(i), temperature=300.0)
        frames.append(a)
    write(path, frames, format="extxyz")


def vmhwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(which: str, data: Path, out: Path) -> None:
    from qdff.selection import descriptors

    t0 = time.perf_counter()
    if which == "qdff":
        descriptors.compute_file(data, out, PARAMS)
        X = np.load(out)
    else:
        from ase.io import read

        frames = read(data, index=":", format="extxyz")
        species = descriptors._species_order({s for a in frames for s in a.get_chemical_symbols()})
        soap = descriptors._soap(species, PARAMS["soap"])
        per_atom = soap.create(frames)  # (frames, atoms, features): everything in memory
        numbers = frames[0].get_atomic_numbers()
        from ase.data import atomic_numbers

        X = np.concatenate([per_atom[:, numbers == atomic_numbers[el]].mean(axis=1) for el in species], axis=1)
        np.save(out, X.astype(np.float32))
    dt = time.perf_counter() - t0
    print(json.dumps({"seconds": dt, "frames": len(X), "vmhwm_mb": vmhwm_mb()}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=10_000)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/qdff-bench-desc"))
    ap.add_argument("--child", choices=["qdff", "dscribe"])
    a = ap.parse_args()
    data = a.workdir / f"frames_{a.frames}.extxyz"
    if a.child:
        return child(a.child, data, a.workdir / f"{a.child}.npy")
    a.workdir.mkdir(parents=True, exist_ok=True)
    if not data.is_file():
        print(f"writing {a.frames} frames of {STRUCTURE.name} to {data} ...", flush=True)
        make_frames(data, a.frames)
    for f in a.workdir.glob("qdff.*"):
        f.unlink()  # no cache reuse: measure the computation
    res = {}
    for which in ("qdff", "dscribe"):
        proc = subprocess.run(
            [sys.executable, __file__, "--frames", str(a.frames), "--workdir", str(a.workdir), "--child", which],
            capture_output=True,
            text=True,
            check=True,
        )
        res[which] = json.loads(proc.stdout.strip().splitlines()[-1])
        r = res[which]
        print(
            f"{which:8s}: {r['frames'] / r['seconds']:7.1f} frames/s ({r['seconds']:.1f} s), peak memory {r['vmhwm_mb']:.0f} MB",
            flush=True,
        )
    Xa = np.load(a.workdir / "qdff.npy")
    Xb = np.load(a.workdir / "dscribe.npy")
    assert np.allclose(Xa, Xb, rtol=1e-4, atol=1e-6), "descriptors differ"
    q, d = res["qdff"], res["dscribe"]
    print(
        f"ratio dscribe-all-at-once / qdff: time {d['seconds'] / q['seconds']:.2f}x, "
        f"peak memory {d['vmhwm_mb'] / q['vmhwm_mb']:.1f}x; descriptors agree"
    )


if __name__ == "__main__":
    main()
