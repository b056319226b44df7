"""backends.deepmd.compress: a tiny DeePMD-kit model trained, frozen and compressed by qdff
(dp --pt compress); the compressed file is model.json's model_file, the frozen one stays beside
it, and both give the same energies and forces on a free cluster, in ASE and in LAMMPS (with
qdff's 2 A neighbour skin and with none: an old DeePMD-kit bug gave compressed se_e2_a models
wrong forces in LAMMPS for sparse systems, through unsorted neighbour lists with the skin).
Without compression the frozen model is exported as before; a failed compression says how to
go without it."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from ase.calculators.lj import LennardJones
from ase.calculators.singlepoint import SinglePointCalculator
from conftest import jiggled

from qdff import config
from qdff.data import dataset
from qdff.fileio import read_json
from qdff.structure.build import cut_cluster
from qdff.training.backends import common, deepmd
from qdff.training.models import calculator_from_meta, load_calculator

# Largest differences compressed - uncompressed measured (benchmarks/deepmd_compress.py; CPU,
# float64): 1.8e-13 eV/A and 4.5e-13 eV on 20 held-out Cd16Se13Cl6 frames of the demo's model,
# 1.0e-12 eV/A on frames squeezed or shaken beyond its training range (nearest pair 1.70 A), in
# ASE and in LAMMPS alike, with and without the skin. The tolerances allow 1000x that for
# other CPUs' and BLAS's rounding, and are still far below any physical difference (a wrong
# tabulation or neighbour list is off by 1e-3 eV/A or more).
E_TOL_EV = 1e-9
F_TOL_EV_PER_A = 1e-9


def _frames():
    """12 frames of Cd6Se6 with Lennard-Jones labels (only a model to compress is wanted here),
    shaken by 0.08 A; the last two shaken by 0.3 A, beyond the training frames' distances."""
    lj = LennardJones(sigma=2.3, epsilon=0.3, rc=8.0, smooth=True)
    cluster = cut_cluster("CdSe", "zincblende", 6)
    out = []
    for a in jiggled(cluster, 10, 0.08, seed=4) + jiggled(cluster, 2, 0.3, seed=5):
        a.calc = lj
        e, f = a.get_potential_energy(), a.get_forces()
        a.calc = SinglePointCalculator(a, energy=e, forces=f)
        out.append(a)
    return out


def _params(**kw):
    tiny = {"steps": 20, "disp_freq": 10, "descriptor_neurons": [8, 16], "fitting_neurons": [16, 16], "threads": 1}
    return config.validate({"name": "c", "structure": {}, "backends": {"deepmd": {**tiny, **kw}}})["backends"]["deepmd"]


@pytest.fixture(scope="module")
def compressed(tmp_path_factory):
    """A 20-step DeePMD model trained, frozen and compressed by qdff (the default): about 30 s on
    2 cores. Its gate is timing_only: 20 steps make no useful model and need not."""
    work = tmp_path_factory.mktemp("compress")
    frames = _frames()
    refs = dataset.fit_reference_energies(frames[:8])
    meta = deepmd.train(
        frames[:8], frames[8:10], refs, _params(), work / "train", work / "model", gate=common.TIMING_ONLY
    )
    return {"model": meta.parent, "work": work, "frames": frames, "refs": refs}


def _ef(calc, atoms):
    a = atoms.copy()
    a.calc = calc
    return a.get_potential_energy(), a.get_forces()


@pytest.mark.slow
def test_compressed_model_is_deployed_and_agrees_with_the_frozen_one_in_ase_and_lammps(compressed, tmp_path):
    model = compressed["model"]
    meta = read_json(model / "model.json")
    assert meta["compressed"] is True and meta["model_file"] == "model-compressed.pth"
    assert meta["uncompressed_model_file"] == "model.pth" and meta["compress_wall_s"] > 0
    assert (model / "model.pth").is_file() and (model / "model-compressed.pth").is_file()
    assert not list(model.glob(".*")), "a temporary file was left behind"
    comp = load_calculator(model, device="cpu")  # what evaluation, ML-MD and active learning load
    plain = calculator_from_meta(model, {**meta, "model_file": meta["uncompressed_model_file"]}, "cpu")
    reference = []
    for atoms in compressed["frames"]:
        (ec, fc), (ep, fp) = _ef(comp, atoms), _ef(plain, atoms)
        assert abs(ec - ep) < E_TOL_EV and np.abs(fc - fp).max() < F_TOL_EV_PER_A
        reference.append((ep, fp))
    assert np.abs(reference[-1][1]).max() > 0.01  # forces to compare, not agreement at zero

    from qdff.validation import lammps

    try:
        lammps.lmp_executable(), lammps.plugin_path()
    except lammps.LammpsError as exc:
        pytest.skip(f"LAMMPS part: no lmp or pair_style deepmd here ({exc})")
    # the cluster in a box with rcut + 4 A of vacuum: Cd6Se6 spans about 7 A, so with rcut 6
    # some pairs are beyond the cutoff but within cutoff + skin (in LAMMPS's neighbour list)
    for skin in (2.0, 0.0):
        for k in (0, len(compressed["frames"]) - 1):
            out = lammps.run(model, compressed["frames"][k], tmp_path / f"lmp-{skin:g}-{k}", steps=0, skin=skin)
            ep, fp = reference[k]
            assert abs(out["energy_eV"] - ep) < E_TOL_EV, (skin, k)
            assert np.abs(out["forces_eV_per_A"] - fp).max() < F_TOL_EV_PER_A, (skin, k)
            assert "model-compressed.pth" in (tmp_path / f"lmp-{skin:g}-{k}/in.lammps").read_text()


@pytest.mark.slow
def test_compress_false_exports_the_frozen_model_and_a_rerun_drops_the_compressed_one(
    compressed, tmp_path, monkeypatch
):
    """The training of the fixture again with compress: false in a copy of its directories
    (dp train and freeze replaced by the fixture's outputs: what is tested is the export)."""
    work, model = tmp_path / "train", tmp_path / "model"
    shutil.copytree(compressed["work"] / "train", work)
    shutil.copytree(compressed["model"], model)  # a model exported with compression before
    calls = []

    def fake(cmd, cwd, env, what, on_line=None):
        calls.append(what)
        assert what != "dp --pt compress", "compressed although backends.deepmd.compress is false"

    monkeypatch.setattr(deepmd, "run_streamed", fake)
    frames = compressed["frames"]
    meta = read_json(
        deepmd.train(
            frames[:8],
            frames[8:10],
            compressed["refs"],
            _params(compress=False),
            work,
            model,
            gate=common.TIMING_ONLY,
        )
    )
    assert calls == ["dp --pt train", "dp --pt freeze"]
    assert meta["compressed"] is False and meta["model_file"] == "model.pth" and "uncompressed_model_file" not in meta
    assert not (model / "model-compressed.pth").exists()  # the earlier run's, removed
    e, f = _ef(load_calculator(model, device="cpu"), frames[0])
    assert np.isfinite(e) and np.isfinite(f).all()


@pytest.mark.slow
def test_a_failed_compression_says_how_to_go_without(tmp_path):
    (tmp_path / "model.pth").write_bytes(b"not a model")
    with pytest.raises(common.TrainingError, match=r"compression failed in .* \(set backends\.deepmd\.compress: false"):
        deepmd.compress(tmp_path, common.thread_env(1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pth"]  # no partial output


@pytest.mark.slow
def test_deepmd_trains_on_two_compositions_in_one_data_set(tmp_path):
    """A data set of two clusters (Cd6Se6 and Cd13Se13, Lennard-Jones labels): DeePMD gets one
    npy system per atom sequence, trains on both (about 15 s) and its model evaluates both."""
    lj = LennardJones(sigma=2.3, epsilon=0.3, rc=8.0, smooth=True)
    frames = []
    for n_pairs, seed in ((6, 11), (13, 12)):
        for a in jiggled(cut_cluster("CdSe", "zincblende", n_pairs), 6, 0.08, seed=seed):
            a.calc = lj
            e, f = a.get_potential_energy(), a.get_forces()
            a.calc = SinglePointCalculator(a, energy=e, forces=f)
            frames.append(a)
    sizes = {len(a) for a in frames}
    assert len(sizes) == 2
    train = frames[:5] + frames[6:11]
    valid = [frames[5], frames[11]]
    refs = dataset.fit_reference_energies(train)
    meta = deepmd.train(
        train, valid, refs, _params(compress=False), tmp_path / "train", tmp_path / "model", gate=common.TIMING_ONLY
    )
    jdata = read_json(tmp_path / "train/input.json")["training"]
    assert jdata["training_data"]["systems"] == ["data/train/sys000", "data/train/sys001"]
    assert len(jdata["validation_data"]["systems"]) == 2
    assert read_json(meta)["n_train"] == 10
    calc = load_calculator(meta.parent)
    for a in valid:
        e, f = _ef(calc, a)
        assert np.isfinite(e) and f.shape == (len(a), 3) and np.isfinite(f).all()
        # the per-element references are added back: total energies, not the model's residual
        assert abs(e - a.get_potential_energy()) / len(a) < 1.0
