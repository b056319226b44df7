"""SevenNet fine-tuned on the system's split (``backends.sevenn``): SevenNet-0, shipped in the
sevenn wheel, or a user's checkpoint (``foundation``), trained further through sevenn's own
entry point (``sevenn train input.yaml``, its ``fine_tune`` preset); ``from_scratch: true``
trains the same architecture from random weights instead, for comparison.

Energies: the labels are the data's total energies minus a per-element shift fitted, as for
the zero-shot baseline (:func:`qdff.training.backends.universal.fit_shift`), on the training frames
against the foundation model's own energies, so that fine-tuning starts where the foundation
model already is and only learns the difference (without it, the xTB or PBE-D3 energy
reference of the data, tens of eV per atom away from MPtrj's, would dominate the first
epochs). From scratch, the labels are the split's reference-subtracted energies, as for the
other backends. The shift is added back by :class:`qdff.training.reference_shift.ReferenceShiftedCalculator`.

Loss: sevenn's MSE of the energy per atom plus ``force_loss_weight`` x the MSE of the force
components, with force_loss_weight = forces_weight / energy_weight: the same meaning of the
weights as every other backend (qdff/training/backends/presets.py). The fine_tune preset's Huber loss
is not used, for that reason.

SevenNet models compute in float32 (the package has no float64 mode); energies and forces
are returned as float64 arrays.
"""

from __future__ import annotations

import csv
import logging
import math
import re
import shutil
import time
from pathlib import Path

import yaml

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

MODEL_FILE = "checkpoint_best.pth"
CURVE = "lc.csv"
BEFORE = "lc.before-resume.csv"  # the epochs of a killed run, up to the checkpoint resumed from
_EPOCH = re.compile(r"^\s*Epoch (\d+) elapsed: (\d+):(\d+):([\d.]+)")


def _bin() -> str:
    import sys

    exe = Path(sys.executable).with_name("sevenn")
    return str(exe) if exe.is_file() else "sevenn"


def _version() -> str:
    from importlib.metadata import version

    return version("sevenn")


def foundation_path(name: str) -> Path:
    """The foundation checkpoint: a name sevenn knows (``7net-0``: in its wheel) or a file."""
    if Path(name).is_file():
        return Path(name).resolve()
    from sevenn.util import pretrained_name_to_path

    try:
        return Path(pretrained_name_to_path(name))
    except Exception as exc:  # sevenn raises a bare ValueError or tries a download
        raise ValueError(
            f"backends.sevenn.foundation: {name!r} is neither a file nor a checkpoint shipped with sevenn ({exc})"
        ) from None


def input_yaml(p: dict, workdir: Path, foundation: Path | None, resume_from: Path | None) -> dict:
    """sevenn's input: its fine_tune preset's model block, our data, loss and schedule."""
    import subprocess

    preset = yaml.safe_load(
        subprocess.run([_bin(), "preset", "fine_tune"], capture_output=True, text=True, check=True).stdout
    )
    train = preset["train"]
    train.update(
        random_seed=p["seed"],
        is_train_stress=False,
        epoch=p["epochs"],
        loss="mse",
        loss_param={},
        optimizer="adam",
        optim_param={"lr": p["lr"]},
        scheduler="exponentiallr",
        scheduler_param={"gamma": p["lr_gamma"]},
        force_loss_weight=p["forces_weight"] / p["energy_weight"],
        per_epoch=p["checkpoint_every"],
        error_record=[["Energy", "RMSE"], ["Force", "RMSE"], ["TotalLoss", "None"]],
    )
    train.pop("stress_loss_weight", None)
    cont = {}
    if resume_from is not None:
        # a killed run: weights, optimiser, scheduler and epoch count of its last checkpoint
        cont = {
            "checkpoint": str(resume_from),
            "reset_optimizer": False,
            "reset_scheduler": False,
            "reset_epoch": False,
        }
    elif foundation is not None:
        cont = {"checkpoint": str(foundation), "reset_optimizer": True, "reset_scheduler": True, "reset_epoch": True}
    if cont:
        train["continue"] = cont
    else:
        train.pop("continue", None)
    data = preset["data"]
    data.update(
        batch_size=p["batch_size"],
        load_trainset_path=[str(workdir / "data" / "train.extxyz")],
        load_validset_path=[str(workdir / "data" / "valid.extxyz")],
    )
    data.pop("load_testset_path", None)
    data.pop("data_divide_ratio", None)
    return {"model": preset["model"], "train": train, "data": data}


def _latest_checkpoint(workdir: Path) -> Path | None:
    ckpts = sorted(workdir.glob("checkpoint_[0-9]*.pth"), key=lambda f: int(re.findall(r"\d+", f.stem)[-1]))
    return ckpts[-1] if ckpts else None


def read_curve(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path) as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def _write_curve(rows: list[dict], path: Path) -> None:
    if not rows:
        path.unlink(missing_ok=True)
        return
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def train(train_frames, valid_frames, refs: dict, params: dict, workdir, model_dir, data_files=(), gate=None) -> Path:
    """Fine-tune (or train from scratch), check (``gate``) and export; return model.json's path."""
    from . import universal

    p = params
    workdir, model_dir = Path(workdir).resolve(), Path(model_dir)
    workdir.mkdir(parents=True, exist_ok=True)
    foundation = None if p["from_scratch"] else foundation_path(p["foundation"])
    t0 = time.time()
    if foundation is not None:
        shift = universal.fit_shift(universal.sevennet_calculator(foundation, "cpu"), train_frames)
        log.info(
            "energy shift against the foundation model, fitted on %d training frames: %s",
            len(train_frames),
            ", ".join(f"{k} {v:.4f} eV" for k, v in shift.items()),
        )
    else:
        shift = dict(refs)
    fp = fingerprint(hyperparameters(p), shift, str(foundation), frames_digest(train_frames, valid_frames))
    latest = _latest_checkpoint(workdir)
    resume = same_run(workdir, fp) and latest is not None
    if not resume:
        for old in [
            *workdir.glob("checkpoint_*.pth"),
            workdir / CURVE,
            workdir / BEFORE,
            workdir / "sevenn_data",
            workdir / "log.sevenn",
        ]:
            shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)
        for part, frames in (("train", train_frames), ("valid", valid_frames)):
            write_shifted_extxyz(frames, shift, workdir / "data" / f"{part}.extxyz")
    else:
        log.info("resuming SevenNet training from %s", latest)
        # sevenn writes a new lc.csv from the resumed epoch on: keep the rows up to the checkpoint
        upto = int(re.findall(r"\d+", latest.stem)[-1])
        rows = [r for r in read_curve(workdir / BEFORE) + read_curve(workdir / CURVE) if r["epoch"] <= upto]
        _write_curve(rows, workdir / BEFORE)
        (workdir / CURVE).unlink(missing_ok=True)
    cfg = input_yaml(p, workdir, foundation, latest if resume else None)
    (workdir / "input.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))

    progress = epoch_logger("SevenNet", p["epochs"], _EPOCH)

    run_streamed(
        [_bin(), "train", str(workdir / "input.yaml"), "-s"],
        workdir,
        thread_env(p["threads"]),
        "sevenn train",
        on_line=progress,
    )
    curve = (read_curve(workdir / BEFORE) if resume else []) + read_curve(workdir / CURVE)
    if not curve:
        raise TrainingError(f"SevenNet recorded no epoch ({workdir / CURVE})")
    hint = "lower backends.sevenn.lr, train longer, or check the data"
    check_curve(
        "SevenNet",
        workdir / CURVE,
        [(int(r["epoch"]), [v for k, v in r.items() if k != "epoch"]) for r in curve],
        unit="epoch",
        hint=hint,
    )
    best = workdir / MODEL_FILE
    publish_model(best, model_dir / MODEL_FILE, "SevenNet saved no best checkpoint")
    wall = time.time() - t0
    shutil.copyfile(workdir / "input.yaml", model_dir / "input.yaml")
    prov = provenance("sevenn", _version(), params, data_files, wall)
    prov.update(
        mode="from scratch" if foundation is None else "fine-tuned",
        foundation=None if foundation is None else p["foundation"],
        foundation_sha256=None if foundation is None else file_sha256(foundation),
        float_precision="float32 (sevenn computes in single precision)",
    )
    meta = {
        "backend": "sevenn",
        "model_file": MODEL_FILE,
        "reference_energies": shift,
        "n_train": len(train_frames),
        "n_valid": len(valid_frames),
        "epochs_done": int(curve[-1]["epoch"]),
        "final_valid_force_rmse_eV_per_A": curve[-1].get("validset_Force_RMSE", math.nan),
        "provenance": prov,
    }
    out = export_metadata(model_dir, meta, valid_frames, gate, "SevenNet", hint, calculator=calculator)
    log.info("SevenNet model exported to %s (%.0f s)", model_dir, wall)
    return out


def calculator(model_dir: Path, meta: dict, device: str):
    from . import universal

    return universal.sevennet_calculator(Path(model_dir) / meta["model_file"], device)
