"""Peak memory and seconds per MD step of CP2K for one structure at one preset.

    python benchmarks/cp2k_memory.py STRUCTURE.xyz --preset pbe --vacuum 6 --steps 2 \
        --command "cp2k.psmp" --threads 2 --workdir /tmp/pbe149

Writes the input qdff would write (same preset, same box rule), runs CP2K through qdff's
runner (which samples the resident memory of CP2K's whole process tree), and prints the
peak, the grid qdff's estimate assumed, and CP2K's own seconds per step from its .ener file.
The peer is qdff's own estimate (qdff.cp2k.input.estimate_memory_mb): the ratio says how
far the estimate is from what CP2K used.
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path

from ase.io import read

from qdff.cp2k import input as cp2k_input
from qdff.cp2k import run as cp2k_run
from qdff.cp2k.output import read_ener
from qdff.structure import build as structures


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("structure")
    ap.add_argument("--preset", default="pbe", choices=cp2k_input.PRESETS)
    ap.add_argument("--vacuum", type=float, default=6.0, help="Angstrom on each side (structure.vacuum)")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--charge", type=int, default=0)
    ap.add_argument("--command", default="cp2k.psmp")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workdir", default="cp2k-memory")
    a = ap.parse_args(argv)

    atoms = structures.put_in_box(read(a.structure), a.vacuum)
    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    tree = cp2k_input.build_input(
        atoms, preset=a.preset, run_type="MD", project="md", charge=a.charge, temperature=300.0, steps=a.steps
    )
    cp2k_input.write_input(work / "md.inp", tree)
    est = cp2k_input.estimate_memory_mb(atoms, tree)
    print(f"{len(atoms)} atoms, box {' x '.join(f'{x:.1f}' for x in atoms.cell.lengths())} A, preset {a.preset}")
    print(f"qdff estimate: {est['mem_mb']:.0f} MB (finest grid {est['grid']}, {est['points'] / 1e6:.1f} M points)")
    t0 = time.time()
    res = cp2k_run.run_cp2k(shlex.split(a.command), work, "md", a.threads)
    wall = time.time() - t0
    e = read_ener(work / "md-1.ener") if (work / "md-1.ener").is_file() else {"seconds": []}
    secs = [float(x) for x in e["seconds"]]
    out = {
        "atoms": len(atoms),
        "preset": a.preset,
        "vacuum": a.vacuum,
        "command": a.command,
        "threads": a.threads,
        "returncode": res.returncode,
        "peak_mb": res.peak_mb,
        "estimate_mb": est["mem_mb"],
        "grid": est["grid"],
        "seconds_per_step": secs,
        "wall_s": wall,
    }
    print(json.dumps(out, indent=1))
    if res.peak_mb:
        print(f"peak {res.peak_mb:.0f} MB, estimate/peak = {est['mem_mb'] / res.peak_mb:.2f}")
    (work / "benchmark.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
