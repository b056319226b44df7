"""Total energies from a backend's calculator: the per-element reference energies added back.

Backends are trained on energies minus per-element reference energies;
:class:`ReferenceShiftedCalculator` adds them back, so that energies from every backend
compare directly with the DFT data set. It knows no backend: a backend's own export check
wraps its calculator here (:func:`shifted_calculator`), and :mod:`qdff.training.models`
finds the backend of a saved model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from .device import device as pick_device


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


def shifted_calculator(calculator, model_dir, meta: dict, device: str | None = None) -> ReferenceShiftedCalculator:
    """The model in ``model_dir`` described by ``meta`` (model.json's content) through
    ``calculator``, its backend's ``calculator(model_dir, meta, device)``, returning total energies."""
    inner = calculator(Path(model_dir), meta, pick_device(device))
    return ReferenceShiftedCalculator(inner, meta["reference_energies"], backend=meta["backend"])
