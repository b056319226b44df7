import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from qdff import config, dataset, selection


def make_frames(runs=("300K", "600K"), n=50, seed=0):
    rng = np.random.default_rng(seed)
    frames = []
    for run in runs:
        for step in range(n):
            a = Atoms("Cd2Se2", positions=rng.normal(size=(4, 3)) * 2)
            a.calc = SinglePointCalculator(a, energy=-100.0 + rng.normal(), forces=rng.normal(size=(4, 3)))
            a.info.update(run=run, step=step, time=float(step), temperature=300.0)
            frames.append(a)
    return frames


def test_held_out_block_is_the_end_of_each_run_with_gap():
    frames = make_frames()
    pool, test = selection.split_pool_test(frames, test_fraction=0.2, gap_frames=5)
    for run in ("300K", "600K"):
        p = [frames[i].info["step"] for i in pool if frames[i].info["run"] == run]
        t = [frames[i].info["step"] for i in test if frames[i].info["run"] == run]
        assert t == list(range(40, 50))
        assert max(p) == 34  # 5 frames gap before the held-out block
        assert max(p) + 5 < min(t)


@pytest.mark.parametrize("method", selection.METHODS)
def test_no_held_out_frame_in_training(method):
    frames = make_frames()
    sel = {"method": method, "n_train": 30, "n_valid": 10, "test_fraction": 0.25, "gap_frames": 3,
           "equilibration_fs": 5.0, "seed": 1, "descriptor": {"kind": "distances"}}
    sel = config.validate({"name": "x", "structure": {}, "selection": sel})["selection"]  # defaults filled
    idx = selection.split_and_select(frames, sel)
    assert len(idx["train"]) == 30 and len(set(idx["train"])) == 30
    assert len(idx["valid"]) == 10
    assert not set(idx["train"]) & set(idx["test"])
    assert not set(idx["valid"]) & set(idx["test"])
    assert not set(idx["train"]) & set(idx["valid"])
    assert set(idx["train"]) <= set(idx["pool"])
    assert all(frames[i].info["step"] >= 5 for i in idx["train"])  # equilibration skipped


def test_random_selection_is_deterministic_under_seed():
    pool = list(range(100))
    assert selection.select(pool, 10, "random", 3) == selection.select(pool, 10, "random", 3)
    assert selection.select(pool, 10, "random", 3) != selection.select(pool, 10, "random", 4)


def test_stride_spreads_over_pool():
    assert selection.select(list(range(10)), 4, "stride") == [0, 3, 6, 9]


def test_too_small_pool_is_reported():
    frames = make_frames(n=4)
    with pytest.raises(selection.SelectionError, match="too few"):
        selection.split_pool_test(frames, 0.5, gap_frames=5)


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
