"""Zero-shot baselines: universal pretrained potentials, used as they ship, beside the models
trained on the system's data (config ``baselines``). Nothing is trained. The only fit is a
per-element reference energy shift on the training frames: a universal model's absolute
energies follow its own training data's reference (PBE/PBE+U total energies of Materials
Project structures), not the CP2K level of the data set, so without a shift its energy
error would be a constant offset that says nothing about the potential energy surface.
Forces are the model's own.

Only potentials whose weights ship inside their wheel run here (no download at run time):
SevenNet-0 (sevenn 0.13.0, MIT licence; ../shared/notes measured its zero-shot force RMSE
against CP2K PBE on Cd16Se13Cl6 at 129 meV/A against a zero-force 780 meV/A).
"""
from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import numpy as np

from ...fileio import write_json
from . import common

log = logging.getLogger(__name__)

#: name in ``baselines`` -> how to load it and what it was trained on (said in the report)
UNIVERSAL = {
    "sevennet0": {
        "package": "sevenn",
        "checkpoint": "7net-0",
        "label": "SevenNet-0 (11Jul2024)",
        "trained_on": "PBE/PBE+U (Materials Project trajectories, MPtrj)",
        "licence": "MIT (sevenn)",
        # elements of MPtrj that SevenNet-0 was trained on: 1-83 and 89-94
        "elements": list(range(1, 84)) + list(range(89, 95)),
    },
}


def _checkpoint_path(name: str) -> Path:
    from sevenn.util import pretrained_name_to_path

    return Path(pretrained_name_to_path(UNIVERSAL[name]["checkpoint"]))


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def check_elements(name: str, symbols) -> None:
    """Fail, naming ``baselines``, when the potential was not trained on an element."""
    from ase.data import atomic_numbers

    missing = sorted({s for s in symbols if atomic_numbers[s] not in UNIVERSAL[name]["elements"]})
    if missing:
        raise ValueError(f"baselines: {name} ({UNIVERSAL[name]['label']}) was not trained on {', '.join(missing)}; "
                         f"remove it from baselines for this system")


def fit_shift(calc, frames) -> dict[str, float]:
    """Per-element energies that, added to the model's, best fit the frames' total energies
    (least squares on composition of E_data - E_model; minimum norm with one composition,
    as :func:`qdff.data.dataset.fit_reference_energies`)."""
    from ...data.dataset import composition_matrix

    elements = sorted({s for a in frames for s in a.get_chemical_symbols()})
    resid = []
    for a in frames:
        b = a.copy()
        b.calc = calc
        resid.append(float(a.get_potential_energy()) - float(b.get_potential_energy()))
    coef, *_ = np.linalg.lstsq(composition_matrix(frames, elements), np.asarray(resid), rcond=None)
    return {el: float(c) for el, c in zip(elements, coef)}


def train(name: str, train_frames, valid_frames, params: dict, workdir, model_dir, data_files=()) -> Path:
    """No training: copy the shipped checkpoint into ``model_dir``, fit the reference shift
    on the training frames, and write ``model.json`` (last). The validation errors are
    logged and recorded, not gated: a baseline is reported whatever it scores."""
    from ...validation.evaluate import error_metrics, predict
    from ..models import calculator_from_meta

    spec = UNIVERSAL[name]
    check_elements(name, train_frames[0].get_chemical_symbols())
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    src = _checkpoint_path(name)
    shutil.copyfile(src, model_dir / "checkpoint.pth")
    meta = {"backend": name, "kind": "zero-shot", "label": spec["label"], "trained_on": spec["trained_on"],
            "model_file": "checkpoint.pth", "reference_energies": {}}
    inner = calculator_from_meta(model_dir, meta)
    fit_frames = train_frames
    meta["reference_energies"] = fit_shift(inner.inner, fit_frames)
    log.info("%s: reference shift fitted on %d training frames: %s", spec["label"], len(fit_frames),
             ", ".join(f"{k} {v:.4f} eV" for k, v in meta["reference_energies"].items()))
    calc = calculator_from_meta(model_dir, meta)
    e, f, _ = predict(calc, valid_frames)
    m = error_metrics(valid_frames, e, f)
    log.info("%s zero-shot on the %d validation frames: force RMSE %.1f meV/A (zero-force %.1f), energy RMSE %.2f meV/atom",
             spec["label"], len(valid_frames), m["force_rmse_meV_per_A"], m["baseline_zero_force_rmse_meV_per_A"],
             m["energy_rmse_meV_per_atom"])
    meta["validation_check"] = {k: m[k] for k in ("force_rmse_meV_per_A", "baseline_zero_force_rmse_meV_per_A",
                                                  "energy_rmse_meV_per_atom") if k in m}
    prov = common.provenance(name, _version(spec["package"]), {"checkpoint": spec["checkpoint"], **params},
                             data_files, time.time() - t0)
    prov.update(kind="zero-shot", checkpoint_sha256=common.file_sha256(model_dir / "checkpoint.pth"),
                checkpoint_shipped_as=str(src.relative_to(src.parents[2])), licence=spec["licence"],
                trained_on=spec["trained_on"], shift_frames=len(fit_frames))
    meta["provenance"] = prov
    write_json(model_dir / "model.json", meta)
    return model_dir / "model.json"


def sevennet_calculator(checkpoint, device: str = "cpu"):
    """sevenn's own ASE calculator for ``checkpoint``, built and run in float32 (its weights'
    dtype) whatever torch's default dtype is in this process (see common.torch_default_dtype)."""
    import torch
    from sevenn.calculator import SevenNetCalculator

    class Float32SevenNetCalculator(SevenNetCalculator):
        def calculate(self, *args, **kwargs):
            with common.torch_default_dtype(torch.float32):
                return super().calculate(*args, **kwargs)

    with common.torch_default_dtype(torch.float32):
        return Float32SevenNetCalculator(str(checkpoint), device=device)


def calculator(model_dir: Path, meta: dict, device: str):
    return sevennet_calculator(Path(model_dir) / meta["model_file"], device)
