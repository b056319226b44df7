"""Training backends. Each adapter writes its native input from the common split,
runs the backend's own trainer and exports a deployable model with a ``model.json``
metadata file that :func:`qdff.training.models.load_calculator` understands. Zero-shot baselines
(universal pretrained potentials, config ``baselines``) go through the same interface
(:mod:`qdff.training.backends.universal`)."""

import importlib
from types import SimpleNamespace

BACKENDS = ("deepmd", "schnetpack", "nequip", "allegro", "mace", "sevenn")
#: universal pretrained potentials usable as zero-shot baselines (universal.UNIVERSAL's keys)
BASELINES = ("sevennet0", "chgnet")


def get(name: str):
    if name in BASELINES:
        from . import universal

        return SimpleNamespace(
            train=lambda train, valid, refs, params, workdir, model_dir, data_files=(), gate=None: universal.train(
                name, train, valid, params, workdir, model_dir, data_files
            ),
            calculator=universal.calculator,
        )
    if name not in BACKENDS:
        raise ValueError(f"backend {name!r} unknown; available: {', '.join(BACKENDS + BASELINES)}")
    # imported on demand: each backend's packages live in its own environment
    return importlib.import_module(f"{__name__}.{name}")
