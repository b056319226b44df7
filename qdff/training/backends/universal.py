"""Zero-shot baselines: universal pretrained potentials, used as they ship, beside the models
trained on the system's data (config ``baselines``). Nothing is trained. The only fit is a
per-element reference energy shift on the training frames: a universal model's absolute
energies follow its own training data's reference (PBE/PBE+U total energies of Materials
Project structures), not the CP2K level of the data set, so without a shift its energy
error would be a constant offset that says nothing about the potential energy surface.
Forces are the model's own.

Only potentials whose weights ship inside their wheel run here (no download at run time):
SevenNet-0 (sevenn 0.13.0, MIT licence) and CHGNet 0.3.0 (chgnet 0.4.2, modified BSD licence).
Measured in development against CP2K PBE on Cd16Se13Cl6: zero-shot force RMSE 129 meV/A
(SevenNet-0) and 256 meV/A (CHGNet) against a zero-force 780 meV/A.
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
        "model_file": "checkpoint.pth",
    },
    "chgnet": {
        "package": "chgnet",
        "checkpoint": "0.3.0",
        "label": "CHGNet 0.3.0",
        "trained_on": "PBE/PBE+U (Materials Project trajectories, MPtrj)",
        "licence": "modified BSD (chgnet)",
        # the same MPtrj elements
        "elements": list(range(1, 84)) + list(range(89, 95)),
        "model_file": "checkpoint.pth.tar",
    },
}

#: CHGNet only takes periodic structures (pymatgen's): a free cluster is put in a cubic box
#: with this much vacuum between images, over four times its 6 A atom-graph cutoff and the 25 A the
#: development notes found enough (forces equal those of a 40 A box; tests/test_baselines.py)
CHGNET_VACUUM_A = 25.0


def _checkpoint_path(name: str) -> Path:
    """The checkpoint file as the package ships it (no download)."""
    if UNIVERSAL[name]["package"] == "chgnet":
        import chgnet

        shipped = sorted(
            (Path(chgnet.__file__).parent / "pretrained" / UNIVERSAL[name]["checkpoint"]).glob("*.pth.tar")
        )
        if len(shipped) != 1:
            raise FileNotFoundError(
                f"chgnet {_version('chgnet')}: expected one shipped {UNIVERSAL[name]['checkpoint']} "
                f"checkpoint, found {[str(p) for p in shipped]}"
            )
        return shipped[0]
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
        raise ValueError(
            f"baselines: {name} ({UNIVERSAL[name]['label']}) was not trained on {', '.join(missing)}; "
            f"remove it from baselines for this system"
        )


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
    from ..errors import error_metrics, predict
    from ..reference_shift import shifted_calculator

    spec = UNIVERSAL[name]
    check_elements(name, train_frames[0].get_chemical_symbols())
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    src = _checkpoint_path(name)
    shutil.copyfile(src, model_dir / spec["model_file"])
    meta = {
        "backend": name,
        "kind": "zero-shot",
        "label": spec["label"],
        "trained_on": spec["trained_on"],
        "model_file": spec["model_file"],
        "reference_energies": {},
    }
    inner = shifted_calculator(calculator, model_dir, meta)
    fit_frames = train_frames
    meta["reference_energies"] = fit_shift(inner.inner, fit_frames)
    log.info(
        "%s: reference shift fitted on %d training frames: %s",
        spec["label"],
        len(fit_frames),
        ", ".join(f"{k} {v:.4f} eV" for k, v in meta["reference_energies"].items()),
    )
    calc = shifted_calculator(calculator, model_dir, meta)
    e, f, _ = predict(calc, valid_frames)
    m = error_metrics(valid_frames, e, f)
    log.info(
        "%s zero-shot on the %d validation frames: force RMSE %.1f meV/A (zero-force %.1f), energy RMSE %.2f meV/atom",
        spec["label"],
        len(valid_frames),
        m["force_rmse_meV_per_A"],
        m["baseline_zero_force_rmse_meV_per_A"],
        m["energy_rmse_meV_per_atom"],
    )
    meta["validation_check"] = {
        k: m[k]
        for k in ("force_rmse_meV_per_A", "baseline_zero_force_rmse_meV_per_A", "energy_rmse_meV_per_atom")
        if k in m
    }
    prov = common.provenance(
        name, _version(spec["package"]), {"checkpoint": spec["checkpoint"], **params}, data_files, time.time() - t0
    )
    prov.update(
        kind="zero-shot",
        checkpoint_sha256=common.file_sha256(model_dir / spec["model_file"]),
        checkpoint_shipped_as=str(src.relative_to(src.parents[2])),
        licence=spec["licence"],
        trained_on=spec["trained_on"],
        shift_frames=len(fit_frames),
    )
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


def chgnet_calculator(checkpoint, device: str = "cpu", version: str = "0.3.0"):
    """chgnet's own ASE calculator for ``checkpoint``, for free clusters: each structure is
    evaluated in a cubic periodic box with :data:`CHGNET_VACUUM_A` of vacuum (CHGNet builds its
    graphs from pymatgen's periodic structures), energies and forces only (no stress: a box
    of vacuum has none worth computing), in float32 (its weights' dtype) whatever torch's
    default dtype is in this process (see common.torch_default_dtype)."""
    import torch
    from chgnet.model import CHGNet
    from chgnet.model.dynamics import CHGNetCalculator

    class BoxedCHGNetCalculator(CHGNetCalculator):
        implemented_properties = ("energy", "free_energy", "forces")

        def calculate(self, atoms=None, properties=None, system_changes=None):
            atoms = atoms if atoms is not None else self.atoms
            if atoms.pbc.any():
                raise ValueError(
                    "CHGNet baseline: qdff puts free clusters (pbc=False) in a box; "
                    f"this structure is periodic along {atoms.pbc.tolist()}"
                )
            boxed = atoms.copy()
            boxed.calc = None
            extent = boxed.positions.max(axis=0) - boxed.positions.min(axis=0)
            boxed.set_cell([float(extent.max()) + CHGNET_VACUUM_A] * 3)
            boxed.center()
            boxed.pbc = True
            with common.torch_default_dtype(torch.float32):
                super().calculate(boxed, properties, system_changes, task="ef")
            # ASE compares the next call's atoms with these: the caller's, not the boxed copy
            self.atoms = atoms.copy()
            self.results = {
                k: np.asarray(v, dtype=np.float64) if k == "forces" else float(v)
                for k, v in self.results.items()
                if k in ("energy", "free_energy", "forces")
            }

    with common.torch_default_dtype(torch.float32):
        # mlp_out_bias False as CHGNet.load sets it for 0.3.0 (True only for 0.2.0)
        model = CHGNet.from_file(str(checkpoint), mlp_out_bias=version == "0.2.0", version=version)
        return BoxedCHGNetCalculator(model=model, use_device=device, on_isolated_atoms="ignore")


def calculator(model_dir: Path, meta: dict, device: str):
    path = Path(model_dir) / meta["model_file"]
    if UNIVERSAL[meta["backend"]]["package"] == "chgnet":
        return chgnet_calculator(path, device, UNIVERSAL[meta["backend"]]["checkpoint"])
    return sevennet_calculator(path, device)
