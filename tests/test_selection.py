import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from qdff import config
from qdff.data import dataset
from qdff.selection import frames as selection


def make_frames(runs=("300K", "600K"), n=50, seed=0, dt_fs=1.0):
    """``n`` frames per run, ``dt_fs`` apart in MD time."""
    rng = np.random.default_rng(seed)
    frames = []
    for run in runs:
        for step in range(n):
            a = Atoms("Cd2Se2", positions=rng.normal(size=(4, 3)) * 2)
            a.calc = SinglePointCalculator(a, energy=-100.0 + rng.normal(), forces=rng.normal(size=(4, 3)))
            a.info.update(run=run, step=step, time=step * dt_fs, temperature=300.0)
            frames.append(a)
    return frames


def _times(frames, idx, run):
    return [frames[i].info["time"] for i in idx if frames[i].info["run"] == run]


def _sel(**over):
    """A full selection block: schema defaults with ``over`` on top."""
    # the synthetic runs here are tens of fs long: gaps below the config check's floor
    return config.validate({"name": "x", "structure": {}, "selection": {"allow_short_gap": True, **over}})["selection"]


def test_blocks_are_contiguous_in_time_with_gaps():
    frames = make_frames(n=100)
    split = selection.split_blocks(frames, test_fraction=0.2, valid_fraction=0.1, gap_fs=5.0)
    for run in ("300K", "600K"):
        assert _times(frames, split["test"], run) == [float(t) for t in range(80, 100)]
        # 5 fs dropped, then 10 fs of validation, 5 fs dropped, the rest is the pool
        assert _times(frames, split["valid"], run) == [float(t) for t in range(65, 75)]
        assert _times(frames, split["pool"], run) == [float(t) for t in range(0, 60)]
        assert split["blocks"][run] == {
            "role": "train",
            "pool_fs": [0.0, 59.0],
            "valid_fs": [65.0, 74.0],
            "test_fs": [80.0, 99.0],
        }


def test_gap_is_time_not_frames():
    """The same 1 ps run written every 0.5 fs or every 1 fs: the same time blocks."""
    fine, coarse = make_frames(n=2000, dt_fs=0.5), make_frames(n=1000, dt_fs=1.0)
    a = selection.split_blocks(fine, 0.2, 0.1, gap_fs=100.0)
    b = selection.split_blocks(coarse, 0.2, 0.1, gap_fs=100.0)
    assert a["blocks"]["300K"]["valid_fs"][0] == b["blocks"]["300K"]["valid_fs"][0] == 800.0 - 100.0 - 100.0
    assert a["blocks"]["300K"]["test_fs"][0] == b["blocks"]["300K"]["test_fs"][0] == 800.0
    for split, frames in ((a, fine), (b, coarse)):
        gap = min(_times(frames, split["valid"], "300K")) - max(_times(frames, split["pool"], "300K"))
        assert 100.0 < gap <= 101.0
    assert len(a["pool"]) == 2 * len(b["pool"])  # twice the frames in the same time


@pytest.mark.parametrize("method", selection.METHODS)
def test_no_frame_within_gap_of_another_block(method):
    gap = 7.0
    frames = make_frames(n=120, dt_fs=0.5)
    sel = _sel(
        method=method,
        n_train=30,
        n_valid=10,
        test_fraction=0.25,
        valid_fraction=0.1,
        gap_fs=gap,
        equilibration_fs=5.0,
        seed=1,
        descriptor={"kind": "distances"},
    )
    idx = selection.split_and_select(frames, sel)
    assert len(idx["train"]) == 30 and len(set(idx["train"])) == 30
    assert len(idx["valid"]) == 10
    assert set(idx["train"]) <= set(idx["pool"]) and set(idx["valid"]) <= set(idx["valid_block"])
    for run in ("300K", "600K"):
        train, valid = _times(frames, idx["train"], run), _times(frames, idx["valid"], run)
        test = _times(frames, idx["test"], run)
        assert train and valid and test
        assert min(abs(v - t) for v in valid for t in train) > gap
        assert min(abs(s - t) for s in test for t in train + valid) > gap
        assert min(train) >= 5.0  # equilibration skipped
    # validation frames spread over both runs' validation blocks, not drawn from the pool
    assert {frames[i].info["run"] for i in idx["valid"]} == {"300K", "600K"}


def test_too_short_run_names_the_key():
    frames = make_frames(n=40)  # 40 fs
    with pytest.raises(selection.SelectionError, match=r"selection\.gap_fs.*run 300K spans 40 fs"):
        selection.split_blocks(frames, 0.2, 0.1, gap_fs=20.0)
    with pytest.raises(selection.SelectionError, match=r"selection\.gap_fs"):
        selection.split_and_select(frames, _sel(method="random", gap_fs=500))


def test_independent_run_is_the_whole_test_set():
    frames = make_frames(runs=("300K", "300K-test"), n=100)
    sel = _sel(method="random", n_train=20, n_valid=5, gap_fs=10.0, valid_fraction=0.1, equilibration_fs=5.0)
    idx = selection.split_and_select(frames, sel, test_runs=["300K-test"])
    assert {frames[i].info["run"] for i in idx["test"]} == {"300K-test"}
    assert {frames[i].info["run"] for i in idx["train"] + idx["valid"] + idx["pool"]} == {"300K"}
    # the independent run starts from the same structure: equilibration and one gap dropped
    assert _times(frames, idx["test"], "300K-test") == [float(t) for t in range(15, 100)]
    # the training run (95 fs after equilibration) ends with its validation block, no test block
    assert _times(frames, idx["valid_block"], "300K") == [float(t) for t in range(91, 100)]
    assert max(_times(frames, idx["pool"], "300K")) == 80.0
    with pytest.raises(selection.SelectionError, match="aimd.test_seed.*600K-test"):
        selection.split_and_select(frames, sel, test_runs=["600K-test"])


def test_old_gap_frames_key_says_what_replaces_it():
    with pytest.raises(config.ConfigError, match=r"selection\.gap_frames.*renamed: use selection\.gap_fs"):
        _sel(gap_frames=10)


def test_test_and_validation_fractions_must_leave_a_pool():
    with pytest.raises(config.ConfigError, match="selection.valid_fraction"):
        _sel(test_fraction=0.6, valid_fraction=0.4)


def test_random_selection_is_deterministic_under_seed():
    pool = list(range(100))
    assert selection.select(pool, 10, "random", 3) == selection.select(pool, 10, "random", 3)
    assert selection.select(pool, 10, "random", 3) != selection.select(pool, 10, "random", 4)


def test_stride_spreads_over_pool():
    assert selection.select(list(range(10)), 4, "stride") == [0, 3, 6, 9]


def test_reference_energy_fit_and_shift():
    frames = make_frames()
    refs = dataset.fit_reference_energies(frames)
    shifted = [a.get_potential_energy() - dataset.reference_energy(a, refs) for a in frames]
    assert abs(np.mean(shifted)) < 1e-9  # the large constant is gone
    assert set(refs) == {"Cd", "Se"}


def test_duplicates_removed():
    frames = make_frames(n=5)
    frames, dropped = dataset.dedupe_frames(frames + frames[:3])
    assert dropped == 3 and len(frames) == 10


def test_learning_curve_point_is_judged_on_validation_frames_never_test(tmp_path, monkeypatch):
    """The learning curve compares selection methods: on the validation frames, so that the
    test frames stay out of every choice (the split directory here has no test file at all)."""
    from ase.calculators.calculator import Calculator, all_changes

    from qdff.selection import learning_curve
    from qdff.steps import select
    from qdff.training import models

    class Zero(Calculator):
        implemented_properties = ["energy", "forces"]

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            self.results = {"energy": -100.0, "forces": np.zeros((len(atoms), 3))}

    split = tmp_path / "split"
    valid = make_frames(runs=("300K",), n=7)
    dataset.write_frames(split / "valid.extxyz", valid)
    trained = []
    monkeypatch.setattr(select, "train_on_split", lambda backend, params, split_dir, *a, **k: trained.append(backend))
    monkeypatch.setattr(models, "load_calculator", lambda model_dir: Zero())
    cfg = config.validate({"name": "x", "structure": {}})
    m = select.train_learning_curve_point(
        "fps",
        5,
        tmp_path / "m.json",
        threads=1,
        deepmd=config.hyperparameters(learning_curve.deepmd_params(cfg)),
        evaluation=cfg["evaluation"],
        workdir=tmp_path / "w",
        split_dir=split,
        model_dir=tmp_path / "m",
    )
    assert trained == ["deepmd"] and m["n_valid_frames"] == 7
    rms = np.sqrt(np.mean(np.concatenate([a.get_forces() for a in valid]) ** 2)) * 1000
    assert m["force_rmse_meV_per_A"] == pytest.approx(rms)  # zero forces against the validation labels


def test_test_seed_runs_an_independent_aimd_that_only_the_test_set_reads(tmp_path, monkeypatch):
    import json
    import subprocess
    import sys
    from pathlib import Path

    from qdff.cp2k import run as cp2k_run
    from qdff.steps import aimd, select

    root = Path(__file__).resolve().parents[1]
    cfg_file = tmp_path / "c.json"
    cfg_file.write_text(
        json.dumps({"name": "dry", "structure": {"n_pairs": 6}, "aimd": {"temperatures": [300, 600], "test_seed": 7}})
    )
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "snakemake"),
            "-s",
            str(root / "Snakefile"),
            "-d",
            str(tmp_path),
            "--configfile",
            str(cfg_file),
            "-n",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for t in ("300K", "600K"):
        assert f"results/dry/aimd_test/{t}/run.json" in proc.stdout
    # the test run is the training run's settings with the other seed
    seen = []
    monkeypatch.setattr(cp2k_run, "run_md", lambda atoms, cfg, *a: seen.append(cfg["aimd"]["seed"]))
    monkeypatch.setattr(aimd.dataset, "read_structure", lambda path: None)
    cfg = config.validate({"name": "x", "structure": {}, "aimd": {"seed": 1, "test_seed": 7}})
    kw = dict(temperature=300.0, workdir=tmp_path, structure=cfg["structure"], cp2k=cfg["cp2k"], launch=cfg["cp2k"])
    aimd.run_aimd("s.extxyz", tmp_path / "r.json", aimd=cfg["aimd"], seed=cfg["aimd"]["test_seed"], **kw)
    aimd.run_aimd("s.extxyz", tmp_path / "r.json", aimd=cfg["aimd"], **kw)
    assert seen == [7, 1]
    # the split of such a data set: every test frame from the independent run
    data = tmp_path / "frames.extxyz"
    dataset.write_frames(data, make_frames(runs=("300K", "300K-test"), n=120))
    cfg = config.validate(
        {
            "name": "x",
            "structure": {},
            "aimd": {"temperatures": [300], "test_seed": 7},
            "selection": {"method": "random", "n_train": 20, "n_valid": 5, "gap_fs": 10, "allow_short_gap": True},
        }
    )
    s = select.select_frames(data, tmp_path / "split", **select.select_params(cfg))
    assert {run for run, _ in s["test_steps"]} == {"300K-test"}
    assert {run for run, _ in s["train_steps"] + s["valid_steps"]} == {"300K"}
    assert s["blocks"]["300K-test"]["role"] == "test" and s["test_seed"] == 7


def test_a_run_still_drifting_after_equilibration_is_flagged_before_training(caplog):
    # the same frames, energies stationary (noise only) or rising along the run as a dot warming
    # from its minimum does (measured: Cd68Se55Cl26 at 300 K, +10 meV/atom over 600 fs of xTB AIMD)
    stationary = make_frames(runs=("300K",), n=200, dt_fs=5.0)
    drifting = make_frames(runs=("300K",), n=200, dt_fs=5.0)
    for k, a in enumerate(drifting):
        a.calc.results["energy"] += 0.5 * k  # eV: 100 eV over the run, against noise of 1 eV
    sel = _sel(gap_fs=50, equilibration_fs=0, n_train=20, n_valid=5, method="random")
    with caplog.at_level("WARNING"):
        calm = selection.split_and_select(stationary, sel)
    assert calm["held_out_beyond_pool"]["300K"]["fraction"] < 0.5
    assert "still drifts" not in caplog.text
    with caplog.at_level("WARNING"):
        idx = selection.split_and_select(drifting, sel)
    row = idx["held_out_beyond_pool"]["300K"]
    assert row["fraction"] == 1.0 and row["held_out_mean_minus_pool_mean_meV_per_atom"] > 0
    assert "run 300K" in caplog.text and "selection.equilibration_fs" in caplog.text
