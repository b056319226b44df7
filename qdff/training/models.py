"""One loader for every exported model: an ASE calculator that returns total energies.

Backends are trained on energies minus per-element reference energies; the calculator
returned here adds them back (:class:`~qdff.training.reference_shift.ReferenceShiftedCalculator`),
so energies from every backend compare directly with the DFT data set.
"""

from __future__ import annotations

from pathlib import Path

from ..fileio import read_json
from .reference_shift import ReferenceShiftedCalculator, shifted_calculator


def load_calculator(path, device: str | None = None) -> ReferenceShiftedCalculator:
    """ASE calculator for the exported model at ``path`` (its directory or ``model.json``)."""
    path = Path(path)
    model_dir = path.parent if path.is_file() else path
    meta_path = model_dir / "model.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path}: no exported model here (model.json is written last by training)")
    return calculator_from_meta(model_dir, read_json(meta_path), device)


def calculator_from_meta(model_dir, meta: dict, device: str | None = None) -> ReferenceShiftedCalculator:
    """The calculator of the model in ``model_dir`` described by ``meta`` (model.json's
    content), through its backend's ``calculator``."""
    from . import backends

    return shifted_calculator(backends.get(meta["backend"]).calculator, model_dir, meta, device)
