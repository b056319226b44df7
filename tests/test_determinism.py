"""Same config, same versions, same numbers: the seeds of CP2K's thermostat, the selection and
the training are used, and a rerun reproduces the results exactly on CPU."""

import json

import numpy as np
import pytest
from ase.io import read
from conftest import ROOT

from qdff import config
from qdff.cp2k import output as cp2k_output
from qdff.cp2k import run as cp2k_run
from qdff.selection import frames as selection

pytestmark = pytest.mark.slow


def _md(tiny_pipeline, tmp_path, name, seed):
    atoms = read(tiny_pipeline["workdir"] / "results/tiny/relax/relaxed.extxyz")
    atoms.set_pbc(False)
    cfg = config.validate(
        {
            "name": "det",
            "structure": {"n_pairs": 6},
            "aimd": {"temperatures": [300], "steps": 8, "print_every": 1, "seed": seed},
        }
    )
    summary = cp2k_run.run_md(atoms, cfg, 300.0, tmp_path / name, tmp_path / f"{name}.json")
    assert summary["seed"] == seed
    e = cp2k_output.read_ener(tmp_path / name / "md-1.ener")
    return np.column_stack([e[k] for k in ("kinetic", "temperature", "potential")])


def test_cp2k_thermostat_seed_reproduces_the_trajectory(tiny_pipeline, tmp_path):
    a, b = _md(tiny_pipeline, tmp_path, "a", 11), _md(tiny_pipeline, tmp_path, "b", 11)
    np.testing.assert_array_equal(a, b)
    c = _md(tiny_pipeline, tmp_path, "c", 12)  # another seed: other random velocities
    assert not np.allclose(a[1:], c[1:])


def test_selection_is_reproducible_under_its_seed():
    X = np.random.default_rng(0).normal(size=(300, 8))
    pool = list(range(300))
    for method in ("random", "fps", "kmeans"):
        first = selection.select(pool, 20, method, seed=5, X=X)
        assert first == selection.select(pool, 20, method, seed=5, X=X), method
    assert selection.select(pool, 20, "random", seed=5) != selection.select(pool, 20, "random", seed=6)


def test_a_deepmd_training_run_twice_gives_the_same_errors(tiny_pipeline, tmp_path):
    """DeePMD-kit on CPU with its seeds and one thread: bit-identical learning curves and
    validation errors. (Two threads may reorder floating-point reductions.)"""
    from qdff.steps import train

    split = tiny_pipeline["workdir"] / "results/tiny/split"
    cfg = config.load(ROOT / "tests/configs/tiny.yaml")
    cfg["backends"]["deepmd"].update(steps=200, disp_freq=50, threads=1, compress=False)  # compression: its own test
    runs = []
    for name in ("one", "two"):
        meta = train.train_model(
            "deepmd",
            **train.train_params(cfg, "deepmd"),
            workdir=tmp_path / name / "work",
            split_dir=split,
            model_dir=tmp_path / name / "model",
        )
        runs.append(json.loads(meta.read_text()))
        assert runs[-1]["provenance"]["config"]["seed"] == cfg["backends"]["deepmd"]["seed"]
    assert runs[0]["validation_check"] == runs[1]["validation_check"]
    curves = [(tmp_path / n / "work/lcurve.out").read_text() for n in ("one", "two")]
    strip = [[l.split()[:-1] for l in c.splitlines() if not l.startswith("#")] for c in curves]  # last column: lr
    assert strip[0] == strip[1]
