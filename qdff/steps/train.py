"""Steps of rules/train.smk: train a backend on a split (or fit a zero-shot baseline's shift)."""

from __future__ import annotations

import logging
from pathlib import Path

from ..data import dataset
from ..fileio import read_json

log = logging.getLogger(__name__)


def train_params(cfg: dict, backend: str) -> dict:
    """:func:`train_model`'s config arguments from a whole validated config (as rules/train.smk
    declares them, with the rule's threads): for callers without Snakemake (the ``qdff``
    command, tests)."""
    from ..config import hyperparameters, training_gate

    block = cfg["backends"].get(backend, {})
    return {"threads": block.get("threads", 1), "backend_config": hyperparameters(block), "gate": training_gate(cfg)}


def train_model(
    backend: str, *, threads: int, backend_config: dict, gate: dict, workdir, split_dir, model_dir, replica: int = 0
) -> Path:
    """Train ``backend`` with its hyperparameters (``backend_config``: backends.<name> without
    resource keys) on ``threads``; ``gate``: the usefulness thresholds (config training). For a
    zero-shot baseline (config baselines: no hyperparameters) only its energy shift is fitted.
    ``replica`` k > 0 (config training.seeds): the same training with the seed of model k
    (:func:`qdff.training.with_seed`)."""
    from ..training import with_seed

    if replica and not backend_config:
        raise ValueError(f"{backend}: a zero-shot baseline is not trained, so it has no replicas")
    if replica:
        backend_config = with_seed(backend_config, replica)
        log.info("%s, model %d of training.seeds: seed %d", backend, replica, backend_config["seed"])
    params = {**backend_config, "threads": threads} if backend_config else {}
    return train_on_split(backend, params, split_dir, workdir, model_dir, gate=gate)


def train_on_split(backend: str, params: dict, split_dir, workdir, model_dir, gate: dict) -> Path:
    """Train ``backend`` on the train/valid files and reference energies of a split directory;
    ``gate``: the usefulness thresholds of :func:`qdff.training.backends.common.check_useful`."""
    from ..training import backends

    split_dir = Path(split_dir)
    files = [split_dir / "train.extxyz", split_dir / "valid.extxyz"]
    train, valid = (dataset.read_frames(f) for f in files)
    refs = read_json(split_dir / "selection.json")["reference_energies"]
    return backends.get(backend).train(train, valid, refs, params, workdir, model_dir, data_files=files, gate=gate)
