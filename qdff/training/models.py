"""One loader for every exported model: an ASE calculator that returns total energies.

Backends are trained on energies minus per-element reference energies; the calculator
returned here adds them back, so energies from every backend compare directly with
the DFT data set.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from ..fileio import read_json


class ReferenceShiftedCalculator(Calculator):
    """Wrap a backend calculator; add sum of per-element reference energies to its energy."""

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, inner, reference_energies: dict, backend: str = "", **kwargs):
        super().__init__(**kwargs)
        self.inner = inner
        self.reference_energies = dict(reference_energies)
        self.backend = backend

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        a = self.atoms.copy()
        a.calc = self.inner
        shift = sum(self.reference_energies[s] for s in a.get_chemical_symbols())
        energy = float(a.get_potential_energy()) + shift
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": np.asarray(a.get_forces(), dtype=np.float64),
        }


def _device(device: str | None) -> str:
    if device:
        return device
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


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
    content), also before model.json is written (the usefulness check at export)."""
    from . import backends

    inner = backends.get(meta["backend"]).calculator(Path(model_dir), meta, _device(device))
    return ReferenceShiftedCalculator(inner, meta["reference_energies"], backend=meta["backend"])
