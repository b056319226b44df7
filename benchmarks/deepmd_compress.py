"""A compressed DeePMD-kit model against the same model uncompressed (backends.deepmd.compress).

    python benchmarks/deepmd_compress.py MODEL_DIR FRAMES.extxyz [--frames 10] [--lammps-frames 3] \
        [--time STRUCTURE.xyz ...] [--steps 300] [--threads 1] [--workdir benchmarks/out/deepmd_compress]

MODEL_DIR: a qdff DeePMD model (model.json). Its frozen model (``uncompressed_model_file``, or
``model_file`` when it was exported uncompressed) is copied to the working directory and
compressed there with qdff's own step (:func:`qdff.training.backends.deepmd.compress`, timed).
Then, on ``--frames`` frames spread evenly over FRAMES (clusters, not periodic):

1. ASE (deepmd.calculator.DP through qdff's load_calculator): the largest absolute
   differences of energy (eV) and force components (eV/A) compressed against uncompressed;
2. LAMMPS (pair_style deepmd, qdff.validation.lammps.run, a 0-step run) on the first
   ``--lammps-frames`` frames, compressed and uncompressed, with a neighbour skin of 2 A (qdff's)
   and of 0: each against ASE's uncompressed model (an old DeePMD-kit bug gave compressed
   se_e2_a models wrong forces in LAMMPS for sparse systems, through neighbour lists that
   include the skin and are not sorted);
3. with ``--time``: seconds per Langevin MD step in ASE (time.perf_counter over ``--steps``
   steps after 5 unmeasured ones, torch on ``--threads`` threads) of both models on each
   structure given, and the hours a nanosecond (10^6 steps of 1 fs) takes at that rate.

Writes ``compress.json`` in the working directory.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from ase.io import read  # noqa: E402

from qdff.data import dataset  # noqa: E402
from qdff.fileio import read_json, write_json  # noqa: E402
from qdff.training.backends import common, deepmd  # noqa: E402
from qdff.training.models import calculator_from_meta  # noqa: E402
from qdff.units import hours_per_ns  # noqa: E402


def compressed_copy(model_dir: Path, work: Path, threads: int) -> tuple[Path, float]:
    """The model of ``model_dir`` in ``work``, with its frozen file and a compressed one made here."""
    meta = read_json(model_dir / "model.json")
    frozen = meta.get("uncompressed_model_file", meta["model_file"])
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    shutil.copyfile(model_dir / frozen, work / deepmd.MODEL_FILE)
    seconds = deepmd.compress(work, common.thread_env(threads))
    meta.update(
        model_file=deepmd.COMPRESSED_FILE,
        compressed=True,
        uncompressed_model_file=deepmd.MODEL_FILE,
        compress_wall_s=seconds,
    )
    write_json(work / "model.json", meta)
    return work, seconds


def both(model_dir: Path):
    meta = read_json(model_dir / "model.json")
    plain = {**meta, "model_file": meta["uncompressed_model_file"]}
    return calculator_from_meta(model_dir, meta, "cpu"), calculator_from_meta(model_dir, plain, "cpu")


def predict(calc, atoms):
    a = atoms.copy()
    a.calc = calc
    return a.get_potential_energy(), a.get_forces()


def seconds_per_step(calc, atoms, steps: int) -> float:
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    a = atoms.copy()
    a.pbc = False
    a.calc = calc
    MaxwellBoltzmannDistribution(a, temperature_K=300.0, rng=np.random.default_rng(1))
    dyn = Langevin(a, 1.0 * units.fs, temperature_K=300.0, friction=0.01, fixcm=False, rng=np.random.default_rng(2))
    dyn.run(5)  # model loading and first calls
    t0 = time.perf_counter()
    dyn.run(steps)
    return (time.perf_counter() - t0) / steps


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("frames", type=Path)
    ap.add_argument("--frames", dest="n_frames", type=int, default=10)
    ap.add_argument("--lammps-frames", type=int, default=3)
    ap.add_argument("--time", nargs="*", type=Path, default=[])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workdir", type=Path, default=Path("benchmarks/out/deepmd_compress"))
    a = ap.parse_args(argv)

    import torch

    torch.set_num_threads(a.threads)
    model, compress_s = compressed_copy(a.model_dir, a.workdir / "model", a.threads)
    sizes = {f: (model / f).stat().st_size / 1e6 for f in (deepmd.MODEL_FILE, deepmd.COMPRESSED_FILE)}
    print(f"compressed in {compress_s:.1f} s; sizes (MB): {sizes}", flush=True)
    comp, plain = both(model)
    every = dataset.read_frames(a.frames)
    frames = [every[int(i)] for i in np.unique(np.linspace(0, len(every) - 1, a.n_frames).round())]
    de, df, f_scale, ase_plain = [], [], [], []
    for atoms in frames:
        ec, fc = predict(comp, atoms)
        ep, fp = predict(plain, atoms)
        ase_plain.append((ep, fp))
        de.append(abs(ec - ep))
        df.append(np.abs(fc - fp).max())
        f_scale.append(np.abs(fp).max())
    out = {
        "model_dir": str(a.model_dir),
        "frames_file": str(a.frames),
        "atoms": len(frames[0]),
        "compress_wall_s": compress_s,
        "size_MB": sizes,
        "ase": {
            "frames": len(frames),
            "max_abs_energy_diff_eV": float(max(de)),
            "max_abs_force_diff_eV_per_A": float(max(df)),
            "max_abs_force_eV_per_A": float(max(f_scale)),
        },
    }
    print(f"ASE, {len(frames)} frames of {len(frames[0])} atoms: {json.dumps(out['ase'])}", flush=True)
    try:
        from qdff.validation import lammps

        if a.lammps_frames < 1:
            raise RuntimeError("--lammps-frames 0")

        rows = []
        for skin in (2.0, 0.0):
            for which in (deepmd.COMPRESSED_FILE, deepmd.MODEL_FILE):
                e_d, f_d = [], []
                for k, atoms in enumerate(frames[: a.lammps_frames]):
                    r = lammps.run(
                        model, atoms, a.workdir / f"lmp-{which}-{skin:g}-{k}", steps=0, skin=skin, model_file=which
                    )
                    ep, fp = ase_plain[k]
                    e_d.append(abs(r["energy_eV"] - ep))
                    f_d.append(np.abs(r["forces_eV_per_A"] - fp).max())
                row = {
                    "model_file": which,
                    "skin_A": skin,
                    "frames": len(e_d),
                    "max_abs_energy_diff_vs_ase_uncompressed_eV": float(max(e_d)),
                    "max_abs_force_diff_vs_ase_uncompressed_eV_per_A": float(max(f_d)),
                }
                rows.append(row)
                print(f"LAMMPS {json.dumps(row)}", flush=True)
        out["lammps"] = rows
    except Exception as exc:  # no lmp or plugin here: the ASE part is still a result
        out["lammps_error"] = f"{type(exc).__name__}: {exc}"
        print(f"LAMMPS not measured: {out['lammps_error']}", flush=True)
    timings = []
    for path in a.time:
        atoms = read(path)
        row = {"structure": str(path), "atoms": len(atoms), "steps": a.steps, "threads": a.threads}
        for label, calc in (("compressed", comp), ("uncompressed", plain)):
            s = seconds_per_step(calc, atoms, a.steps)
            row[f"{label}_s_per_step"] = s
            row[f"{label}_hours_per_ns"] = hours_per_ns(s)
        row["speed_up"] = row["uncompressed_s_per_step"] / row["compressed_s_per_step"]
        timings.append(row)
        print(f"ASE timing {json.dumps(row)}", flush=True)
    out["timings"] = timings
    write_json(a.workdir / "compress.json", out)
    print(json.dumps({"result": str(a.workdir / "compress.json")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
