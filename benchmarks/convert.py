"""Benchmark: `qdff convert` against dpdata's `cp2k/aimd_output` reader on the same trajectory.

Makes a large CP2K MD output directory (default 10^4 frames of the 149-atom Cd68Se55Cl26
cluster) from a real CP2K run: two GFN1-xTB MD steps are run, then the last frame of
positions and forces is repeated with small random perturbations. dpdata's
``cp2k/aimd_output`` format is provided by the cp2kdata plugin (the test extra); dpdata's
original reader cannot parse CP2K 2023 MD logs.
Each reader runs in its own process; the script prints wall times, peak RSS and ratios.

    .venv/bin/python benchmarks/convert.py [--frames 10000] [--workdir /tmp/qdff-bench]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
STRUCTURE = ROOT / "qdff/data/structures/Cd68Se55Cl26_HLE17_20ang_opt.xyz"


def real_cp2k_run(work: Path) -> Path:
    from ase.io import read

    from qdff.cp2k import input as cp2k_input
    from qdff.structure.build import put_in_box

    run = work / "seed_run"
    if (run / "md.log").is_file() and "PROGRAM ENDED" in (run / "md.log").read_text():
        return run
    run.mkdir(parents=True, exist_ok=True)
    atoms = put_in_box(read(STRUCTURE), 8.0)
    tree = cp2k_input.build_input(
        atoms,
        preset="xtb",
        run_type="MD",
        project="md",
        temperature=300.0,
        steps=2,
        # MEDIUM: cp2kdata (dpdata's CP2K MD reader) needs it to read the log header
        overrides={"global": {"print_level": "MEDIUM"}},
    )
    cp2k_input.write_input(run / "md.inp", tree)
    print(f"running CP2K (GFN1-xTB, {len(atoms)} atoms, 2 MD steps) in {run} ...", flush=True)
    subprocess.run(
        ["cp2k.psmp", "-i", "md.inp", "-o", "md.log"],
        cwd=run,
        check=True,
        env=dict(os.environ, OMP_NUM_THREADS="2"),
        stdout=subprocess.DEVNULL,
    )
    return run


def _frames(path: Path):
    lines = path.read_text().splitlines(keepends=True)
    n = int(lines[0])
    return [lines[i : i + n + 2] for i in range(0, len(lines), n + 2)]


def make_large(seed: Path, out: Path, n_frames: int, rng) -> Path:
    """A CP2K MD directory of ``n_frames`` frames: the seed run's last frame, perturbed.

    Positions and forces go to the xyz files (both readers take them from there), the
    .ener file is extended to match, and the seed run's log (MEDIUM print level) and
    input are copied as they are.
    """
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    pos, frc = _frames(seed / "md-pos-1.xyz")[-1], _frames(seed / "md-frc-1.xyz")[-1]
    ener_lines = (seed / "md-1.ener").read_text().splitlines(keepends=True)
    natoms = int(pos[0])
    energy = float(pos[1].split("E =")[1])
    x0 = np.array([l.split()[1:4] for l in pos[2:]], dtype=float)
    f0 = np.array([l.split()[1:4] for l in frc[2:]], dtype=float)
    symbols = [l.split()[0] for l in pos[2:]]

    def block(values, step):
        body = "".join(f"{s:>3s} {x:20.10f} {y:20.10f} {z:20.10f}\n" for s, (x, y, z) in zip(symbols, values))
        return f"{natoms:8d}\n i = {step:8d}, time = {float(step):12.3f}, E = {energy:24.10f}\n" + body

    with (
        open(out / "md-pos-1.xyz", "w") as fp,
        open(out / "md-frc-1.xyz", "w") as ff,
        open(out / "md-1.ener", "w") as fe,
    ):
        fe.write(ener_lines[0])
        last = ener_lines[-1].split()
        for step in range(n_frames):
            fp.write(block(x0 + rng.normal(scale=0.01, size=x0.shape), step))
            ff.write(block(f0 + rng.normal(scale=1e-4, size=f0.shape), step))
            fe.write(f"{step:10d} {float(step):20.6f} " + " ".join(f"{float(v):20.9f}" for v in last[2:]) + "\n")
    for name in ("md.inp", "md.log"):
        shutil.copy(seed / name, out / name)
    return out


def measure(code: str) -> tuple[float, float, str]:
    """Run ``code`` in a fresh Python; return (seconds, peak RSS in MiB, its stdout).

    Peak RSS is the child's own VmHWM from /proc (getrusage's ru_maxrss would include
    this parent's RSS, which a child inherits at fork).
    """
    probe = (
        "\nimport re as _re\nprint('VMHWM', _re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))"
    )
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code + probe], capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"benchmark child failed: {code}\n{proc.stderr[-2000:]}")
    lines = proc.stdout.strip().splitlines()
    peak_kib = int(lines[-1].split()[1])
    return dt, peak_kib / 1024, lines[-2] if len(lines) > 1 else ""


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=10_000)
    ap.add_argument("--workdir", default="/tmp/qdff-bench")
    args = ap.parse_args()
    work = Path(args.workdir)
    rng = np.random.default_rng(0)
    seed = real_cp2k_run(work)
    results = {}
    for n in sorted({max(args.frames // 10, 1), args.frames}):
        big = make_large(seed, work / f"traj_{n}", n, rng)
        ours = measure(
            "from qdff.cp2k.output import convert_runs;"
            f"print(convert_runs([{str(big)!r}], {str(work / 'out.extxyz')!r})[0]['frames'])"
        )
        theirs = measure(
            "import dpdata;"
            f"s=dpdata.LabeledSystem({str(big)!r}, fmt='cp2k/aimd_output', cp2k_output_name='md.log');print(len(s))"
        )
        results[n] = (ours, theirs)
        print(
            f"{n:>6d} frames: qdff convert {ours[0]:7.1f} s, {ours[1]:6.0f} MiB peak ({ours[2]} frames)"
            f" | dpdata cp2k/aimd_output {theirs[0]:7.1f} s, {theirs[1]:6.0f} MiB peak ({theirs[2]} frames)"
        )
    n = args.frames
    (o, t) = results[n]
    print(f"speed ratio (dpdata time / qdff time) at {n} frames: {t[0] / o[0]:.1f}x")
    print(f"peak memory at {n} frames: qdff {o[1]:.0f} MiB, dpdata {t[1]:.0f} MiB")
    small = min(results)
    if small != n:
        print(
            f"qdff peak memory {small} -> {n} frames: {results[small][0][1]:.0f} -> {o[1]:.0f} MiB"
            f" (dpdata {results[small][1][1]:.0f} -> {t[1]:.0f} MiB)"
        )


if __name__ == "__main__":
    main()
