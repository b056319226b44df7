"""SchNetPack, NequIP and Allegro: a real tiny training each on frames of a real CP2K
(GFN1-xTB) MD of Cd6Se6, exported, reloaded through qdff.models.load_calculator."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qdff import config, cp2k_output, cp2k_run, dataset
from qdff.backends import BACKENDS, get
from qdff.backends.common import TrainingError, zero_force_rms
from qdff.fileio import read_json
from qdff.models import load_calculator
from qdff.structures import build_structure, put_in_box

pytestmark = [pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[1]

# the smallest models that still learn something in a few epochs on 2 cores
TINY = {
    "schnetpack": {"n_atom_basis": 16, "n_interactions": 2, "n_rbf": 10, "epochs": 25, "batch_size": 4, "lr": 0.005},
    "nequip": {"num_layers": 1, "num_features": 8, "radial_mlp_width": 16, "epochs": 12, "batch_size": 4, "lr": 0.01},
    "allegro": {"num_layers": 1, "num_scalar_features": 8, "num_tensor_features": 4, "epochs": 12, "batch_size": 4,
                "lr": 0.01},
}


def _cfg(**backends):
    cfg = config.validate({"name": "bk", "structure": {"n_pairs": 6, "vacuum": 6.0},
                           "aimd": {"temperatures": [600], "steps": 70, "print_every": 1},
                           "backends": backends})
    return cfg


@pytest.fixture(scope="module")
def frames(tmp_path_factory, cp2k_available):
    """71 frames of a real 70-step GFN1-xTB MD of Cd6Se6 at 600 K (about 30 s on 2 cores)."""
    work = tmp_path_factory.mktemp("md")
    cfg = _cfg()
    atoms = put_in_box(build_structure(cfg), cfg["structure"]["vacuum"])
    cp2k_run.run_md(atoms, cfg, 600.0, work / "run", work / "run.json")
    cp2k_output.convert_runs([work / "run"], work / "frames.extxyz")
    frames = dataset.read_frames(work / "frames.extxyz")
    assert len(frames) == 71
    train, valid = frames[5::2], frames[6::4]  # skip the first steps from the unrelaxed cut
    return {"train": train, "valid": valid, "refs": dataset.fit_reference_energies(train)}


@pytest.fixture(scope="module")
def trained(frames, tmp_path_factory):
    """Each new backend trained once (shared by the tests below)."""
    out = {}
    for name, tiny in TINY.items():
        work = tmp_path_factory.mktemp(name)
        params = _cfg(**{name: tiny})["backends"][name]
        meta = get(name).train(frames["train"], frames["valid"], frames["refs"], params, work / "train", work / "model")
        out[name] = meta
    return out


@pytest.mark.parametrize("name", list(TINY))
def test_tiny_training_exports_a_model_that_beats_zero_forces(name, frames, trained):
    meta_path = trained[name]
    meta = read_json(meta_path)
    assert meta["backend"] == name
    assert (meta_path.parent / meta["model_file"]).stat().st_size > 1000
    assert meta["type_map"] == ["Cd", "Se"] and meta["n_train"] == len(frames["train"])
    assert meta["reference_energies"] == frames["refs"]
    prov = meta["provenance"]
    assert prov["device"] == "cpu" and prov["training_wall_s"] > 0 and prov["backend_version"]
    assert len(meta_path.parent.joinpath("progress.jsonl").read_text().splitlines()) == TINY[name]["epochs"]

    calc = load_calculator(meta_path.parent)
    train = frames["train"]
    e_pred, f_pred = [], []
    for a in train:
        b = a.copy()
        b.calc = calc
        e_pred.append(b.get_potential_energy())
        f = b.get_forces()
        assert f.shape == (len(a), 3) and f.dtype == np.float64 and np.isfinite(f).all()
        f_pred.append(f)
    e_pred = np.array(e_pred)
    e_ref = dataset.energies(train)
    assert np.isfinite(e_pred).all()
    # total energies (about -600 eV for Cd6Se6 in GFN1-xTB): reference energies added back
    assert np.abs(e_pred - e_ref).max() / len(train[0]) < 0.1, "energies off by more than 0.1 eV/atom"
    f_ref = np.concatenate([a.get_forces() for a in train])
    rmse = float(np.sqrt(np.mean((np.concatenate(f_pred) - f_ref) ** 2)))
    assert rmse < 0.9 * zero_force_rms(train), f"{name}: force RMSE {rmse:.3f} does not beat zero forces"


def test_absurd_learning_rate_is_reported_as_divergence(frames, tmp_path):
    params = _cfg(schnetpack={**TINY["schnetpack"], "epochs": 3, "lr": 1.0e4})["backends"]["schnetpack"]
    with pytest.raises(TrainingError, match="SchNetPack training diverged"):
        get("schnetpack").train(frames["train"], frames["valid"], frames["refs"], params, tmp_path / "w",
                                tmp_path / "model")
    assert not (tmp_path / "model" / "model.json").exists()


def test_all_backends_are_wired_into_the_workflow(tmp_path):
    """Dry run with every backend enabled: rules, per-backend conda envs and wildcards resolve."""
    assert set(BACKENDS) == {"deepmd", "schnetpack", "nequip", "allegro"}
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"name": "dry", "structure": {"n_pairs": 6}}))
    proc = subprocess.run([str(Path(sys.executable).parent / "snakemake"), "-s", str(ROOT / "Snakefile"), "-d",
                           str(tmp_path), "--configfile", str(cfg), "-n", "--quiet", "rules"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for backend in BACKENDS:
        assert "train_model" in proc.stdout
    out = subprocess.run([str(Path(sys.executable).parent / "snakemake"), "-s", str(ROOT / "Snakefile"), "-d",
                          str(tmp_path), "--configfile", str(cfg), "-n", "--dry-run", "--printshellcmds"],
                         capture_output=True, text=True, timeout=300).stdout
    for backend in BACKENDS:
        assert f"results/dry/models/{backend}/model.json" in out
