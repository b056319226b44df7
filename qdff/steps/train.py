"""Steps of rules/train.smk: train a backend on a split (or fit a zero-shot baseline's shift)."""
from __future__ import annotations

from pathlib import Path

from ..data import dataset
from ..fileio import read_json


def train_model(cfg: dict, backend: str, split_dir, workdir, model_dir) -> Path:
    """Train ``backend``; for a zero-shot baseline (config baselines) only its energy shift is fitted."""
    params = cfg["backends"][backend] if backend in cfg["backends"] else {}
    return train_on_split(backend, params, split_dir, workdir, model_dir, gate=cfg["training"])


def train_on_split(backend: str, params: dict, split_dir, workdir, model_dir, gate: dict) -> Path:
    """Train ``backend`` on the train/valid files and reference energies of a split directory;
    ``gate``: the usefulness thresholds of :func:`qdff.training.backends.common.check_useful`."""
    from ..training import backends

    split_dir = Path(split_dir)
    files = [split_dir / "train.extxyz", split_dir / "valid.extxyz"]
    train, valid = (dataset.read_frames(f) for f in files)
    refs = read_json(split_dir / "selection.json")["reference_energies"]
    return backends.get(backend).train(train, valid, refs, params, workdir, model_dir, data_files=files, gate=gate)

