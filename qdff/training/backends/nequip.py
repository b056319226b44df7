"""NequIP (0.19+) through its own command line: ``nequip-train`` with a hydra config, then
``nequip-package build`` to export the deployable ``.nequip.zip``.

Data: one extxyz file per split, labels are energies minus the per-element reference
energies (float64), read by nequip's ``ASEDataModule``. The ASE calculator is
``NequIPCalculator`` loading the package in eager mode (``nequip-compile`` to TorchScript
is refused on torch >= 2.10, and AOTInductor needs a C compiler and minutes per model).

Allegro (:mod:`qdff.training.backends.allegro`) runs the same flow with another ``model`` block:
everything but :func:`model_block` lives here, parametrised by a :class:`Flavour`.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from ...data.dataset import reference_energy
from ...fileio import atomic_path
from .common import (
    TrainingError,
    check_curve,
    device,
    export_metadata,
    fingerprint,
    frames_digest,
    provenance,
    run_streamed,
    same_run,
    thread_env,
)
from .progress import read_progress

log = logging.getLogger(__name__)

MODEL_FILE = "model.nequip.zip"
PROGRESS = "progress.jsonl"
# metrics logged on the validation set at each epoch, read back for the divergence check
MONITOR = "val0_epoch/weighted_sum"


@dataclass(frozen=True)
class Flavour:
    name: str  # backend name in model.json
    label: str  # in messages
    model_block: Callable[[dict, list[str]], dict]
    version: Callable[[], str]


def _bin(name: str) -> str:
    """A console script next to this Python (a venv's bin/ need not be on PATH)."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else name


def write_extxyz(frames, refs: dict, path: Path) -> None:
    """Frames with reference-shifted energies as plain ``energy``/``forces`` (float64)."""
    out = []
    for a in frames:
        b = Atoms(a.numbers, positions=a.positions, cell=a.cell, pbc=a.pbc)
        b.calc = SinglePointCalculator(
            b,
            energy=float(a.get_potential_energy() - reference_energy(a, refs)),
            forces=a.get_forces().astype("float64"),
        )
        out.append(b)
    with atomic_path(path, suffix=".extxyz") as tmp:
        write(tmp, out, format="extxyz")


def model_block(p: dict, type_map: list[str]) -> dict:
    """The NequIP GNN (message passing, equivariant convolutions)."""
    return {
        "_target_": "nequip.model.NequIPGNNModel",
        "seed": p["seed"],
        "model_dtype": "float32",
        "type_names": type_map,
        "r_max": p["cutoff"],
        "num_bessels": p["num_bessels"],
        "polynomial_cutoff_p": 6,
        "num_layers": p["num_layers"],
        "l_max": p["l_max"],
        "parity": True,
        "num_features": p["num_features"],
        "radial_mlp_depth": 2,
        "radial_mlp_width": p["radial_mlp_width"],
        "avg_num_neighbors": "${training_data_stats:num_neighbors_mean}",
        "per_type_energy_scales": "${training_data_stats:per_type_forces_rms}",
        "per_type_energy_shifts": "${training_data_stats:per_atom_energy_mean}",
        "per_type_energy_scales_trainable": False,
        "per_type_energy_shifts_trainable": False,
        **_zbl(p, type_map),
    }


def _zbl(p: dict, type_map: list[str]) -> dict:
    # ZBL core repulsion as a prior: keeps atoms apart in ML-MD where data are missing
    if not p["zbl"]:
        return {}
    return {
        "pair_potential": {"_target_": "nequip.nn.pair_potential.ZBL", "units": "metal", "chemical_species": type_map}
    }


def config(p: dict, type_map: list[str], workdir: Path, flavour: Flavour) -> dict:
    """The hydra config for ``nequip-train`` (format of nequip 0.19's configs/tutorial.yaml)."""
    dev = device()
    metrics = {
        "_target_": "nequip.train.EnergyForceMetrics",
        "coeffs": {"per_atom_energy_rmse": p["energy_weight"], "forces_rmse": p["forces_weight"]},
    }
    return {
        "run": ["train"],
        "data": {
            "_target_": "nequip.data.datamodule.ASEDataModule",
            "seed": p["seed"],
            "train_file_path": str(workdir / "data" / "train.extxyz"),
            "val_file_path": str(workdir / "data" / "valid.extxyz"),
            "transforms": [
                {"_target_": "nequip.data.transforms.ChemicalSpeciesToAtomTypeMapper", "model_type_names": type_map},
                {"_target_": "nequip.data.transforms.NeighborListTransform", "r_max": p["cutoff"]},
            ],
            # no worker processes: the data are small, and forked workers multiply memory
            "train_dataloader": {
                "_target_": "torch.utils.data.DataLoader",
                "batch_size": p["batch_size"],
                "num_workers": 0,
                "shuffle": True,
            },
            "val_dataloader": {"_target_": "torch.utils.data.DataLoader", "batch_size": 16, "num_workers": 0},
            "stats_manager": {
                "_target_": "nequip.data.CommonDataStatisticsManager",
                "type_names": type_map,
                "dataloader_kwargs": {"batch_size": 16},
            },
        },
        "trainer": {
            "_target_": "lightning.Trainer",
            "accelerator": "gpu" if dev == "cuda" else "cpu",
            "devices": 1,
            "max_epochs": p["epochs"],
            "enable_checkpointing": True,
            "enable_progress_bar": False,  # tqdm's carriage returns make an unreadable log
            "enable_model_summary": False,
            "log_every_n_steps": 1,
            "logger": {
                "_target_": "lightning.pytorch.loggers.CSVLogger",
                "save_dir": str(workdir),
                "name": "lightning_logs",
                "version": 0,
            },
            "callbacks": [
                {
                    "_target_": "lightning.pytorch.callbacks.ModelCheckpoint",
                    "monitor": MONITOR,
                    "dirpath": str(workdir / "checkpoints"),
                    "filename": "best",
                    "save_last": True,
                },
                {
                    "_target_": "qdff.training.backends.progress.epoch_progress",
                    "path": str(workdir / PROGRESS),
                    "max_epochs": p["epochs"],
                    "package": "lightning",
                    "echo": True,
                },
                *(
                    [
                        {
                            "_target_": "lightning.pytorch.callbacks.EarlyStopping",
                            "monitor": MONITOR,
                            "patience": p["early_stopping_patience"],
                        }
                    ]
                    if p["early_stopping_patience"]
                    else []
                ),
            ],
        },
        "training_module": {
            # the plain module, not EMALightningModule: an EMA with the usual decay (0.999)
            # would export nearly the initial weights after a short training
            "_target_": "nequip.train.NequIPLightningModule",
            # MSE of E/N (per_atom_energy) and of the force components, coefficients normalised
            # to sum 1: energy_weight:forces_weight is the energy:force ratio of every backend
            "loss": {
                "_target_": "nequip.train.EnergyForceLoss",
                "per_atom_energy": True,
                "coeffs": {"total_energy": p["energy_weight"], "forces": p["forces_weight"]},
            },
            "val_metrics": metrics,
            "train_metrics": metrics,
            "optimizer": {"_target_": "torch.optim.Adam", "lr": p["lr"]},
            "lr_scheduler": {
                "scheduler": {
                    "_target_": "torch.optim.lr_scheduler.ReduceLROnPlateau",
                    "factor": 0.5,
                    "patience": p["lr_patience"],
                    "min_lr": p["lr"] * 1e-3,
                },
                "monitor": MONITOR,
                "interval": "epoch",
                "frequency": 1,
            },
            "model": flavour.model_block(p, type_map),
        },
        "global_options": {"allow_tf32": False},
    }


def train_flavour(
    flavour: Flavour, train_frames, valid_frames, refs: dict, params: dict, workdir, model_dir, data_files=(), gate=None
) -> Path:
    workdir, model_dir = Path(workdir).resolve(), Path(model_dir)
    workdir.mkdir(parents=True, exist_ok=True)
    type_map = sorted(refs)
    p = params
    cfg = config(p, type_map, workdir, flavour)
    ckpt_dir = workdir / "checkpoints"
    fp = fingerprint(cfg, refs, frames_digest(train_frames, valid_frames))
    resume = same_run(workdir, fp) and (ckpt_dir / "last.ckpt").is_file()
    if not resume:
        for old in (ckpt_dir, workdir / "lightning_logs", workdir / "outputs"):
            shutil.rmtree(old, ignore_errors=True)
        (workdir / PROGRESS).unlink(missing_ok=True)
        write_extxyz(train_frames, refs, workdir / "data" / "train.extxyz")
        write_extxyz(valid_frames, refs, workdir / "data" / "valid.extxyz")
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    env = thread_env(p["threads"])
    t0 = time.time()
    cmd = [_bin("nequip-train"), "-cp", str(workdir), "-cn", "config.yaml", f"hydra.run.dir={workdir / 'outputs'}"]
    if resume:
        # nequip's restart: training state from the last checkpoint, same config
        log.info("resuming %s training from %s", flavour.label, ckpt_dir / "last.ckpt")
        cmd.append(f"++ckpt_path={ckpt_dir / 'last.ckpt'}")
    run_streamed(cmd, workdir, env, "nequip-train")

    curve = read_progress(workdir / PROGRESS)
    if not curve:
        raise TrainingError(f"{flavour.label} recorded no epoch ({workdir / PROGRESS})")
    last = curve[-1]
    hint = f"lower backends.{flavour.name}.lr, train longer, or check the data"
    check_curve(
        flavour.label,
        workdir / PROGRESS,
        [(r["epoch"], [v for k, v in r.items() if "loss" in k]) for r in curve],
        unit="epoch",
        hint=hint,
    )
    best = ckpt_dir / "best.ckpt"
    if not best.is_file():
        raise TrainingError(f"{flavour.label} saved no checkpoint ({best})")
    package = workdir / MODEL_FILE
    package.unlink(missing_ok=True)
    run_streamed([_bin("nequip-package"), "build", str(best), str(package)], workdir, env, "nequip-package build")
    wall = time.time() - t0
    model_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(model_dir / MODEL_FILE, suffix=".zip") as tmp:
        shutil.copyfile(package, tmp)
    shutil.copyfile(workdir / "config.yaml", model_dir / "config.yaml")
    shutil.copyfile(workdir / PROGRESS, model_dir / PROGRESS)
    meta = {
        "backend": flavour.name,
        "model_file": MODEL_FILE,
        "reference_energies": refs,
        "type_map": type_map,
        "n_train": len(train_frames),
        "n_valid": len(valid_frames),
        "epochs_done": last["epoch"],
        "provenance": provenance(flavour.name, flavour.version(), params, data_files, wall),
    }
    out = export_metadata(model_dir, meta, valid_frames, gate, flavour.label, hint, calculator=load_package)
    log.info("%s model exported to %s (%.0f s)", flavour.label, model_dir, wall)
    return out


def load_package(model_dir: Path, meta: dict, device: str):
    from nequip.integrations.ase import NequIPCalculator

    return NequIPCalculator._from_saved_model(
        str(Path(model_dir) / meta["model_file"]), device=device, chemical_species_to_atom_type_map=True
    )


def _version() -> str:
    import nequip

    return nequip.__version__


FLAVOUR = Flavour("nequip", "NequIP", model_block, _version)


def train(train_frames, valid_frames, refs: dict, params: dict, workdir, model_dir, data_files=(), gate=None) -> Path:
    """Train, package, check (``gate``: see :func:`common.check_useful`) and export; return
    the path of ``model.json`` in ``model_dir``."""
    return train_flavour(FLAVOUR, train_frames, valid_frames, refs, params, workdir, model_dir, data_files, gate)


def calculator(model_dir: Path, meta: dict, device: str):
    return load_package(model_dir, meta, device)
