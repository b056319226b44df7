"""DeePMD-kit through its PyTorch backend: ``dp --pt train``, ``dp --pt freeze``, then
(``backends.deepmd.compress``, on by default) ``dp --pt compress``.

Data go through dpdata's ``deepmd/npy`` writer with ``nopbc`` (the clusters are not
periodic); labels are energies minus the per-element reference energies, in float64.
The exported model is model.json's ``model_file``: the compressed ``model-compressed.pth``
(the embedding nets tabulated as piecewise polynomials), or the frozen ``model.pth`` with
compression off; the frozen one stays beside the compressed one (``uncompressed_model_file``).
Everything that uses a model (evaluation, ASE and LAMMPS ML-MD, active learning) opens
``model_file``, through ``deepmd.calculator.DP`` or ``pair_style deepmd``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from ...data.dataset import reference_energy
from ...fileio import atomic_path
from .common import TrainingError, check_curve, export_metadata, file_sha256, provenance, run_streamed, thread_env

log = logging.getLogger(__name__)

MODEL_FILE = "model.pth"
COMPRESSED_FILE = "model-compressed.pth"
HINT = "lower backends.deepmd.start_lr, train longer, or check the data"


def _dp() -> str:
    """The ``dp`` next to this Python (a venv's bin/ need not be on PATH under Snakemake)."""
    here = Path(sys.executable).parent / "dp"
    return str(here) if here.exists() else "dp"


def write_npy(frames, refs: dict, type_map: list[str], out_dir: Path) -> list[Path]:
    """DeePMD's npy systems of ``frames``: one system holds frames with the same atoms in the
    same order, so a data set of several compositions (imported frames of two clusters) becomes
    one system per atom sequence, ``out_dir/sys000``, ``sys001``, ... (DeePMD trains on all of
    them); frames of one sequence are ``out_dir`` itself. Returns the system folders."""
    import dpdata

    groups: dict[tuple, list] = {}
    for a in frames:
        groups.setdefault(tuple(a.get_chemical_symbols()), []).append(a)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    dirs = [out_dir] if len(groups) == 1 else [out_dir / f"sys{k:03d}" for k in range(len(groups))]
    for (symbols, group), where in zip(groups.items(), dirs):
        types = np.array([type_map.index(s) for s in symbols])
        data = {
            "atom_names": list(type_map),
            "atom_numbs": [int((types == i).sum()) for i in range(len(type_map))],
            "atom_types": types,
            "orig": np.zeros(3),
            "cells": np.array(
                [a.cell.array if a.cell.rank == 3 else np.eye(3) * 100.0 for a in group], dtype=np.float64
            ),
            "coords": np.array([a.positions for a in group], dtype=np.float64),
            "energies": np.array(
                [a.get_potential_energy() - reference_energy(a, refs) for a in group], dtype=np.float64
            ),
            "forces": np.array([a.get_forces() for a in group], dtype=np.float64),
            "nopbc": True,
        }
        dpdata.LabeledSystem(data=data).to("deepmd/npy", str(where), set_size=len(group))
    return dirs


def input_json(
    p: dict, type_map: list[str], n_train: int, train_systems=("data/train",), valid_systems=("data/valid",)
) -> dict:
    steps = p["steps"]
    return {
        "model": {
            "type_map": type_map,
            "descriptor": {
                "type": "se_e2_a",
                "rcut": p["rcut"],
                "rcut_smth": p["rcut_smth"],
                "sel": "auto",
                "neuron": p["descriptor_neurons"],
                "axis_neuron": p["axis_neuron"],
                "resnet_dt": False,
                "seed": p["seed"],
            },
            "fitting_net": {"neuron": p["fitting_neurons"], "resnet_dt": True, "seed": p["seed"]},
        },
        "learning_rate": {
            "type": "exp",
            "decay_steps": max(1, min(5000, steps // 20)),
            "start_lr": p["start_lr"],
            "stop_lr": p["stop_lr"],
        },
        # DeePMD's legacy ener loss weighs the total-energy MSE by pref_e / N, i.e. N pref_e on
        # the per-atom energy: N:1 against forces. With intensive_ener_virial it divides by N^2
        # (deepmd/pt/loss/ener.py), so pref_e weighs the MSE of E/N as energy_weight does in
        # every backend, and the energy:force ratio no longer grows with the cluster
        "loss": {
            "type": "ener",
            "intensive_ener_virial": True,
            "start_pref_e": p["start_energy_weight"],
            "limit_pref_e": p["energy_weight"],
            "start_pref_f": p["start_forces_weight"],
            "limit_pref_f": p["forces_weight"],
            "start_pref_v": 0.0,
            "limit_pref_v": 0.0,
        },
        "training": {
            "training_data": {"systems": [str(d) for d in train_systems], "batch_size": p["batch_size"]},
            "validation_data": {"systems": [str(d) for d in valid_systems], "batch_size": 1, "numb_btch": 1},
            "numb_steps": steps,
            "seed": p["seed"],
            "disp_file": "lcurve.out",
            "disp_freq": min(p["disp_freq"], steps),
            # checkpoints every tenth of the run (at most every 1000 steps): a killed
            # training resumes from the last one
            "save_freq": max(1, min(1000, steps // 10)),
            "save_ckpt": "model.ckpt",
        },
    }


def check_lcurve(path: Path) -> None:
    """Fail on a diverged training: a non-finite loss in DeePMD's learning curve."""
    if not path.is_file():
        raise TrainingError(f"DeePMD wrote no learning curve ({path})")
    lines = [l for l in path.read_text().splitlines() if l.strip()]
    header = next((l for l in lines if l.startswith("# step")), None)
    rows = [l.split() for l in lines if not l.startswith("#")]
    if header is None or not rows:
        raise TrainingError(f"{path}: no training steps recorded")
    check_curve("DeePMD", path, [(row[0], row[1:]) for row in rows], hint=HINT)


def train(train_frames, valid_frames, refs: dict, params: dict, workdir, model_dir, data_files=(), gate=None) -> Path:
    """Train, freeze, check (``gate``: see :func:`common.check_useful`) and export; return the path of ``model.json`` in ``model_dir``."""
    import deepmd

    workdir, model_dir = Path(workdir), Path(model_dir)
    workdir.mkdir(parents=True, exist_ok=True)
    type_map = sorted(refs)
    systems = {
        part: [d.relative_to(workdir) for d in write_npy(frames, refs, type_map, workdir / "data" / part)]
        for part, frames in (("train", train_frames), ("valid", valid_frames))
    }
    cfg = input_json(params, type_map, len(train_frames), systems["train"], systems["valid"])
    init = Path(params["init_model"]) if params.get("init_model") else None
    if init is not None:
        # a warm start loads the previous weights: their shapes must match, so the neighbour
        # numbers are the previous model's rather than "auto" on the grown data
        cfg["model"]["descriptor"]["sel"] = json.loads((init.parent / "out.json").read_text())["model"]["descriptor"][
            "sel"
        ]
    (workdir / "input.json").write_text(json.dumps(cfg, indent=2))
    env = thread_env(params["threads"])
    t0 = time.time()
    cmd = [_dp(), "--pt", "train", "input.json"]
    ckpt = workdir / "model.ckpt.pt"
    # resume only a training of the same settings on the same data
    fingerprint = hashlib.sha256(
        (
            json.dumps(cfg, sort_keys=True)
            + file_sha256(*sorted((workdir / "data").rglob("*.npy")))
            + (file_sha256(init) if init is not None else "")
        ).encode()
    ).hexdigest()
    fp_file = workdir / "fingerprint"
    same = fp_file.is_file() and fp_file.read_text().strip() == fingerprint
    if same and ckpt.exists() and (workdir / "checkpoint").exists():
        # a killed training: continue from its last checkpoint rather than start over
        log.info("resuming DeePMD training from %s", ckpt.resolve())
        cmd += ["--restart", str(ckpt.resolve())]
    else:
        for old in [*workdir.glob("model.ckpt*.pt"), workdir / "checkpoint", workdir / "lcurve.out"]:
            old.unlink(missing_ok=True)
        fp_file.write_text(fingerprint + "\n")
        if init is not None:
            log.info("warm start: DeePMD training starts from the weights of %s", init)
            cmd += ["--init-model", str(init)]

    nan_lines: list[str] = []

    def watch(line: str) -> None:  # DeePMD stops itself on a NaN loss: say it diverged
        if "NaN detected" in line:
            nan_lines.append(" ".join(line.split("DEEPMD", 1)[-1].split()))

    try:
        run_streamed(cmd, workdir, env, "dp --pt train", on_line=watch)
    except TrainingError as exc:
        if nan_lines:
            raise TrainingError(
                f"DeePMD training diverged: non-finite loss ({nan_lines[-1]}) in {workdir}; {HINT}"
            ) from exc
        raise
    check_lcurve(workdir / "lcurve.out")
    run_streamed([_dp(), "--pt", "freeze", "-o", MODEL_FILE], workdir, env, "dp --pt freeze")
    wall = time.time() - t0
    compress_s = compress(workdir, env) if params.get("compress", True) else None
    model_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(model_dir / MODEL_FILE, suffix=".pth") as tmp:
        shutil.copyfile(workdir / MODEL_FILE, tmp)
    if compress_s is None:
        (model_dir / COMPRESSED_FILE).unlink(missing_ok=True)  # of an earlier run with compression on
    else:
        with atomic_path(model_dir / COMPRESSED_FILE, suffix=".pth") as tmp:
            shutil.copyfile(workdir / COMPRESSED_FILE, tmp)
    shutil.copyfile(workdir / "input.json", model_dir / "input.json")
    if (workdir / "lcurve.out").exists():
        shutil.copyfile(workdir / "lcurve.out", model_dir / "lcurve.out")
    if params.get("keep_checkpoint"):
        # the weights and settings a warm start of the next active-learning iteration begins from
        shutil.copyfile(ckpt.resolve(), model_dir / "model.ckpt.pt")
        shutil.copyfile(workdir / "out.json", model_dir / "out.json")
    meta = {
        "backend": "deepmd",
        "model_file": MODEL_FILE if compress_s is None else COMPRESSED_FILE,
        "compressed": compress_s is not None,
        **({} if compress_s is None else {"uncompressed_model_file": MODEL_FILE, "compress_wall_s": compress_s}),
        "reference_energies": refs,
        "type_map": type_map,
        "n_train": len(train_frames),
        "n_valid": len(valid_frames),
        "provenance": provenance("deepmd", deepmd.__version__, params, data_files, wall),
    }
    try:  # the gate judges the model that is deployed: the compressed one where there is one
        out = export_metadata(model_dir, meta, valid_frames, gate, "DeePMD", HINT, calculator=calculator)
    except TrainingError:
        (model_dir / MODEL_FILE).unlink(missing_ok=True)  # export_metadata removed model_file only
        raise
    log.info("DeePMD model exported to %s (%.0f s)", model_dir, wall)
    return out


def compress(workdir: Path, env: dict) -> float:
    """``dp --pt compress`` of the frozen ``model.pth`` in ``workdir`` into ``model-compressed.pth``
    there (written under a temporary name and renamed when complete, so a killed run never
    leaves a file that looks compressed); returns its wall seconds. A failure (a DeePMD-kit
    built without its custom operators, a descriptor it cannot tabulate) is a TrainingError
    that says how to go without: no silent fall-back to the uncompressed model."""
    t0 = time.time()
    try:
        # dp's -o must end in .pth (it picks the backend by suffix): the temporary name does
        with atomic_path(workdir / COMPRESSED_FILE, suffix=".pth") as tmp:
            run_streamed(
                [_dp(), "--pt", "compress", "-i", MODEL_FILE, "-o", tmp.name], workdir, env, "dp --pt compress"
            )
            if not tmp.is_file() or tmp.stat().st_size == 0:
                raise TrainingError(f"dp --pt compress wrote no model ({tmp})")
    except TrainingError as exc:
        raise TrainingError(
            f"DeePMD model compression failed in {workdir} (set backends.deepmd.compress: false to deploy the "
            f"uncompressed model: the same model, slower MD): {exc}"
        ) from exc
    seconds = time.time() - t0
    log.info("DeePMD model compressed in %.1f s", seconds)
    return seconds


def calculator(model_dir: Path, meta: dict, device: str):
    from deepmd.calculator import DP

    return DP(model=str(model_dir / meta["model_file"]))
