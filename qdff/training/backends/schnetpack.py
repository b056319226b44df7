"""SchNetPack 2.1 with a PaiNN representation, trained in this process through its Python
API and a (pytorch_)Lightning trainer.

Data: one ASE database (``ASEAtomsData``, units declared as eV and Angstrom) holding the
training then the validation frames, and ``split.npz`` naming which is which. Labels are
energies minus the per-element reference energies, in float64 in the database.
The exported model is the whole ``torch.nn.Module`` saved by SchNetPack's
``ModelCheckpoint`` (best validation loss), used through ``SpkCalculator``.

schnetpack 2.1.1 predates torch 2.6; :func:`qdff.training.backends.spk_compat.apply` holds the
shims we need (in our process only, nothing in site-packages is edited).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from pathlib import Path

import numpy as np

from ...config import hyperparameters
from ...data.dataset import reference_energy
from .common import (
    TrainingError,
    check_curve,
    device,
    export_metadata,
    fingerprint,
    frames_digest,
    provenance,
    publish_model,
    same_run,
    torch_default_dtype,
)
from .progress import epoch_progress, read_progress
from .spk_compat import apply as _compat  # the name the Makefile's setup check and the tests call

log = logging.getLogger(__name__)

MODEL_FILE = "model.pt"
PROGRESS = "progress.jsonl"
HINT = "lower backends.schnetpack.lr, train longer, or check the data"


def write_db(train_frames, valid_frames, refs: dict, path: Path, split_file: Path) -> None:
    """ASE database of all frames (train first) and the split file AtomsDataModule reads."""
    from schnetpack.data import ASEAtomsData

    for p in (path, split_file):
        if p.exists():
            p.unlink()
    db = ASEAtomsData.create(str(path), distance_unit="Ang", property_unit_dict={"energy": "eV", "forces": "eV/Ang"})
    frames = list(train_frames) + list(valid_frames)
    props = [
        {
            "energy": np.array([a.get_potential_energy() - reference_energy(a, refs)], dtype=np.float64),
            "forces": np.asarray(a.get_forces(), dtype=np.float64),
        }
        for a in frames
    ]
    db.add_systems(props, [a.copy() for a in frames])
    n_train = len(train_frames)
    np.savez(
        split_file,
        train_idx=np.arange(n_train),
        val_idx=np.arange(n_train, len(frames)),
        test_idx=np.array([], dtype=int),
    )


def _model(p: dict):
    import schnetpack as spk
    import schnetpack.transform as trn

    cutoff = p["cutoff"]
    painn = spk.representation.PaiNN(
        n_atom_basis=p["n_atom_basis"],
        n_interactions=p["n_interactions"],
        radial_basis=spk.nn.GaussianRBF(n_rbf=p["n_rbf"], cutoff=cutoff),
        cutoff_fn=spk.nn.CosineCutoff(cutoff),
    )
    return spk.model.NeuralNetworkPotential(
        representation=painn,
        input_modules=[spk.atomistic.PairwiseDistances()],
        output_modules=[
            spk.atomistic.Atomwise(n_in=p["n_atom_basis"], output_key="energy"),
            spk.atomistic.Forces(energy_key="energy", force_key="forces"),
        ],
        # the mean energy per atom removed from the labels (RemoveOffsets) is added back
        postprocessors=[trn.CastTo64(), trn.AddOffsets("energy", add_mean=True, add_atomrefs=False)],
    )


def _task(model, p: dict):
    """The training task. Loss: energy_weight x MSE(E/N) + forces_weight x MSE(force
    components), the energy per atom as in every backend (see :mod:`.spk_task`)."""
    import schnetpack as spk
    import torch
    import torchmetrics

    from .spk_task import PerAtomOutput, PerAtomTask

    def output(cls, name, weight):
        return cls(
            name=name,
            loss_fn=torch.nn.MSELoss(),
            loss_weight=weight,
            metrics={"MAE": torchmetrics.MeanAbsoluteError(), "RMSE": torchmetrics.MeanSquaredError(squared=False)},
        )

    return PerAtomTask(
        model=model,
        outputs=[
            output(PerAtomOutput, "energy", p["energy_weight"]),
            output(spk.task.ModelOutput, "forces", p["forces_weight"]),
        ],
        optimizer_cls=torch.optim.AdamW,
        optimizer_args={"lr": p["lr"]},
        # torch's own scheduler: schnetpack's subclass passes the removed `verbose` argument
        scheduler_cls=torch.optim.lr_scheduler.ReduceLROnPlateau,
        scheduler_args={"factor": 0.5, "patience": p["lr_patience"], "min_lr": p["lr"] * 1e-3},
        scheduler_monitor="val_loss",
    )


def _early_stopping(p: dict) -> list:
    """Lightning's EarlyStopping on the validation loss (the validation block's frames), if asked for."""
    import pytorch_lightning as pl

    if not p["early_stopping_patience"]:
        return []
    return [pl.callbacks.EarlyStopping(monitor="val_loss", mode="min", patience=p["early_stopping_patience"])]


def _datamodule(db: Path, split_file: Path, p: dict, n_train: int, n_valid: int):
    import schnetpack.transform as trn
    from schnetpack.data import AtomsDataModule

    return AtomsDataModule(
        str(db),
        batch_size=p["batch_size"],
        num_train=n_train,
        num_val=n_valid,
        split_file=str(split_file),
        distance_unit="Ang",
        property_units={"energy": "eV", "forces": "eV/Ang"},
        transforms=[
            trn.ASENeighborList(cutoff=p["cutoff"]),
            trn.RemoveOffsets("energy", remove_mean=True, remove_atomrefs=False),
            trn.CastTo32(),
        ],
        # no worker processes: the data are small, and forked workers multiply memory
        num_workers=0,
        num_val_workers=0,
        num_test_workers=0,
        pin_memory=False,
    )


def train(train_frames, valid_frames, refs: dict, params: dict, workdir, model_dir, data_files=(), gate=None) -> Path:
    """Train PaiNN, check it (``gate``: see :func:`common.check_useful`) and export; return the path of ``model.json`` in ``model_dir``."""
    _compat()
    import pytorch_lightning as pl
    import schnetpack as spk
    import torch

    workdir, model_dir = Path(workdir).resolve(), Path(model_dir)
    workdir.mkdir(parents=True, exist_ok=True)
    type_map = sorted(refs)
    p = params
    t0 = time.time()
    db, split_file = workdir / "data.db", workdir / "split.npz"
    ckpt_dir, best = workdir / "checkpoints", workdir / "best_model.pt"
    settings = {k: v for k, v in hyperparameters(p).items() if k != "enabled"}
    fp = fingerprint(settings, refs, frames_digest(train_frames, valid_frames))
    resume = same_run(workdir, fp) and (ckpt_dir / "last.ckpt").is_file()
    if not resume:
        for old in (ckpt_dir, workdir / "lightning_logs"):
            shutil.rmtree(old, ignore_errors=True)
        for old in (best, workdir / PROGRESS):
            old.unlink(missing_ok=True)
        write_db(train_frames, valid_frames, refs, db, split_file)

    pl.seed_everything(p["seed"], workers=True)
    fit_kwargs = {}
    if resume:
        log.info("resuming SchNetPack training from %s", ckpt_dir / "last.ckpt")
        fit_kwargs["ckpt_path"] = str(ckpt_dir / "last.ckpt")
        # our own checkpoint, which pickles the task's hyperparameters (modules)
        fit_kwargs["weights_only"] = False
    threads_before = torch.get_num_threads()
    # SchNetPack builds float32 tensors assuming torch's default dtype is float32; nequip,
    # once imported in the same process (e.g. its ASE calculator), sets it to float64
    try:
        torch.set_num_threads(p["threads"])
        with torch_default_dtype(torch.float32):
            trainer = pl.Trainer(
                max_epochs=p["epochs"],
                accelerator="gpu" if device() == "cuda" else "cpu",
                devices=1,
                default_root_dir=str(workdir),
                enable_progress_bar=False,  # tqdm's carriage returns make an unreadable log
                enable_model_summary=False,
                logger=pl.loggers.CSVLogger(str(workdir), name="lightning_logs", version=0),
                log_every_n_steps=1,
                callbacks=[
                    spk.train.ModelCheckpoint(
                        model_path=str(best),
                        dirpath=str(ckpt_dir),
                        filename="best",
                        save_top_k=1,
                        save_last=True,
                        monitor="val_loss",
                    ),
                    epoch_progress(workdir / PROGRESS, p["epochs"], package="pytorch_lightning"),
                    *_early_stopping(p),
                ],
            )
            # schnetpack's data module drops a "splitting.lock" in the working directory
            with contextlib.chdir(workdir):
                trainer.fit(
                    _task(_model(p), p),
                    datamodule=_datamodule(db, split_file, p, len(train_frames), len(valid_frames)),
                    **fit_kwargs,
                )
    finally:
        torch.set_num_threads(threads_before)

    curve = read_progress(workdir / PROGRESS)
    if not curve:
        raise TrainingError(f"SchNetPack recorded no epoch ({workdir / PROGRESS})")
    last = curve[-1]
    check_curve(
        "SchNetPack",
        workdir / PROGRESS,
        [(r["epoch"], [v for k, v in r.items() if "loss" in k]) for r in curve],
        unit="epoch",
        hint=HINT,
    )
    publish_model(best, model_dir / MODEL_FILE, "SchNetPack saved no model")
    wall = time.time() - t0
    shutil.copyfile(workdir / PROGRESS, model_dir / PROGRESS)
    meta = {
        "backend": "schnetpack",
        "model_file": MODEL_FILE,
        "cutoff": p["cutoff"],
        "reference_energies": refs,
        "type_map": type_map,
        "n_train": len(train_frames),
        "n_valid": len(valid_frames),
        "epochs_done": last["epoch"],
        "provenance": provenance("schnetpack", spk.__version__, params, data_files, wall),
    }
    out = export_metadata(model_dir, meta, valid_frames, gate, "SchNetPack", HINT, calculator=calculator)
    log.info("SchNetPack model exported to %s (%.0f s)", model_dir, wall)
    return out


def calculator(model_dir: Path, meta: dict, device: str):
    _compat()
    import schnetpack.transform as trn
    import torch
    from ase.calculators.calculator import all_changes
    from schnetpack.interfaces import SpkCalculator
    from schnetpack.utils.compatibility import load_model

    class _Calculator(SpkCalculator):
        def _load_model(self, model_file):
            # our own file of a whole pickled module: torch >= 2.6 refuses it by default
            return load_model(model_file, device=torch.device("cpu"), weights_only=False).to(torch.float64).eval()

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            # one model call gives both (forces are the energy's gradient); SpkCalculator
            # would otherwise run the model again when forces follow an energy request
            super().calculate(atoms, ["energy", "forces"], system_changes)

    return _Calculator(
        model_file=str(Path(model_dir) / meta["model_file"]),
        neighbor_list=trn.ASENeighborList(cutoff=meta["cutoff"]),
        energy_key="energy",
        force_key="forces",
        # SpkCalculator's default energy unit is kcal/mol
        energy_unit="eV",
        position_unit="Ang",
        device=device,
        dtype=torch.float64,
    )
