"""MACE (mace-torch 0.3.16) trained through its own entry point, ``mace_run_train``.

mace-torch declares e3nn==0.4.4, which breaks nequip 0.19 (e3nn 0.6): it is installed with
``pip install --no-deps`` beside e3nn 0.6.0, with its real runtime dependencies in the
``mace`` extra (pyproject.toml; measured to build, train and evaluate with e3nn 0.6.0).

Labels: from scratch, the split's energies minus its per-element reference energies, with
zero isolated-atom energies (``--E0s``), as for the other backends. With
``foundation_model: PATH`` (naive fine-tuning of a downloaded MACE-MP file or of a model
trained before), the energies are taken relative to a per-element shift fitted on the
training frames against the foundation model's own energies, the foundation's E0s are kept
(``--E0s foundation``) and training starts from its weights (``--multiheads_finetuning
False``: no replay data, which would need the foundation's training set).

Loss: MACE's ``weighted`` loss, energy_weight x MSE of the energy per atom + forces_weight x
MSE of the force components: the meaning of the weights in every backend. The model is
trained and evaluated in float64.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import time
from pathlib import Path

from ...config import hyperparameters
from .common import (
    TrainingError,
    check_curve,
    epoch_logger,
    export_metadata,
    file_sha256,
    fingerprint,
    frames_digest,
    provenance,
    publish_model,
    run_streamed,
    same_run,
    thread_env,
    write_shifted_extxyz,
)

log = logging.getLogger(__name__)

MODEL_FILE = "model.mace"
NAME = "qdff"
_EPOCH = re.compile(r"Epoch (\d+): .*loss=(?P<loss>[-+0-9.eEnaNinf]+)")


def _bin(name: str) -> str:
    import sys

    exe = Path(sys.executable).with_name(name)
    return str(exe) if exe.is_file() else name


def _version() -> str:
    from importlib.metadata import version

    return version("mace-torch")


def command(p: dict, workdir: Path, type_map: list[str], device: str, foundation: Path | None) -> list[str]:
    from ase.data import atomic_numbers

    cmd = [
        _bin("mace_run_train"),
        f"--name={NAME}",
        f"--train_file={workdir / 'data/train.extxyz'}",
        f"--valid_file={workdir / 'data/valid.extxyz'}",
        "--energy_key=REF_energy",
        "--forces_key=REF_forces",
        "--loss=weighted",
        f"--energy_weight={p['energy_weight']}",
        f"--forces_weight={p['forces_weight']}",
        f"--batch_size={p['batch_size']}",
        f"--valid_batch_size={p['batch_size']}",
        f"--max_num_epochs={p['epochs']}",
        f"--lr={p['lr']}",
        f"--patience={p['patience']}",
        f"--seed={p['seed']}",
        "--default_dtype=float64",
        f"--device={device}",
        "--eval_interval=1",
        "--restart_latest",
        f"--checkpoints_dir={workdir / 'checkpoints'}",
        f"--model_dir={workdir}",
        f"--log_dir={workdir / 'logs'}",
        f"--results_dir={workdir / 'results'}",
        "--num_workers=0",
    ]
    if foundation is not None:
        cmd += [f"--foundation_model={foundation}", "--multiheads_finetuning=False", "--E0s=foundation"]
    else:
        e0 = "{" + ", ".join(f"{atomic_numbers[s]}: 0.0" for s in type_map) + "}"
        cmd += [
            "--model=MACE",
            f"--E0s={e0}",
            f"--r_max={p['r_max']}",
            f"--num_channels={p['num_channels']}",
            f"--max_L={p['max_L']}",
            f"--correlation={p['correlation']}",
            f"--num_interactions={p['num_interactions']}",
            "--scaling=rms_forces_scaling",
        ]
    return cmd


def read_curve(workdir: Path) -> list[dict]:
    """Per-epoch validation records of results/*_train.txt (JSON lines, mode "eval")."""
    rows = []
    for f in sorted((workdir / "results").glob("*_train.txt")):
        for line in f.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                if r.get("mode") == "eval" and r.get("epoch") is not None:
                    rows.append(r)
    return rows


def train(train_frames, valid_frames, refs: dict, params: dict, workdir, model_dir, data_files=(), gate=None) -> Path:
    """Train (or fine-tune), check (``gate``) and export; return model.json's path."""
    from . import common, universal

    p = params
    workdir, model_dir = Path(workdir).resolve(), Path(model_dir)
    workdir.mkdir(parents=True, exist_ok=True)
    type_map = sorted(refs)
    foundation = Path(p["foundation_model"]).resolve() if p["foundation_model"] else None
    if foundation is not None and not foundation.is_file():
        raise TrainingError(
            f"backends.mace.foundation_model: {foundation} is not a file (download MACE-MP on a machine "
            "with internet and point this key at it; see README)"
        )
    t0 = time.time()
    if foundation is not None:
        from mace.calculators import MACECalculator

        shift = universal.fit_shift(
            MACECalculator(model_paths=str(foundation), device="cpu", default_dtype="float64"), train_frames
        )
        log.info(
            "energy shift against the foundation model, fitted on %d training frames: %s",
            len(train_frames),
            ", ".join(f"{k} {v:.4f} eV" for k, v in shift.items()),
        )
    else:
        shift = dict(refs)
    device = common.device()
    fp = fingerprint(
        hyperparameters(p),
        shift,
        None if foundation is None else file_sha256(foundation),
        frames_digest(train_frames, valid_frames),
    )
    resume = same_run(workdir, fp) and any((workdir / "checkpoints").glob("*.pt"))
    if resume:
        log.info("resuming MACE training from the latest checkpoint in %s", workdir / "checkpoints")
    else:
        for old in ("checkpoints", "logs", "results", "data"):
            shutil.rmtree(workdir / old, ignore_errors=True)
        for old in workdir.glob(f"{NAME}*.model"):
            old.unlink()
        for part, frames in (("train", train_frames), ("valid", valid_frames)):
            write_shifted_extxyz(frames, shift, workdir / "data" / f"{part}.extxyz", "REF_energy", "REF_forces")

    # MACE counts epochs from 0
    progress = epoch_logger("MACE", p["epochs"], _EPOCH, first_epoch=0)

    run_streamed(
        command(p, workdir, type_map, device, foundation),
        workdir,
        thread_env(p["threads"]),
        "mace_run_train",
        on_line=progress,
    )
    curve = read_curve(workdir)
    if not curve:
        raise TrainingError(f"MACE recorded no epoch ({workdir / 'results'})")
    hint = "lower backends.mace.lr, train longer, or check the data"
    check_curve(
        "MACE",
        workdir / "results",
        [(r["epoch"], [r["loss"], r.get("rmse_f", 0.0)]) for r in curve],
        unit="epoch",
        hint=hint,
    )
    model = workdir / f"{NAME}.model"
    publish_model(model, model_dir / MODEL_FILE, "MACE wrote no model")
    wall = time.time() - t0
    prov = provenance("mace", _version(), params, data_files, wall)
    prov.update(
        mode="from scratch" if foundation is None else "fine-tuned (naive)",
        foundation_model=None if foundation is None else str(foundation),
        foundation_sha256=None if foundation is None else file_sha256(foundation),
    )
    best = min(curve, key=lambda r: r["loss"])
    meta = {
        "backend": "mace",
        "model_file": MODEL_FILE,
        "reference_energies": shift,
        "type_map": type_map,
        "n_train": len(train_frames),
        "n_valid": len(valid_frames),
        "epochs_done": int(curve[-1]["epoch"]) + 1,
        "best_valid_force_rmse_meV_per_A": 1e3 * best.get("rmse_f", math.nan),
        "provenance": prov,
    }
    out = export_metadata(model_dir, meta, valid_frames, gate, "MACE", hint, calculator=calculator)
    log.info("MACE model exported to %s (%.0f s)", model_dir, wall)
    return out


def calculator(model_dir: Path, meta: dict, device: str):
    from mace.calculators import MACECalculator

    return MACECalculator(model_paths=str(Path(model_dir) / meta["model_file"]), device=device, default_dtype="float64")
