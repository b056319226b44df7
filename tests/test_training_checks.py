"""The usefulness gate every trained model passes before export, on hand-made models whose
errors are known: one that reproduces the labels, one that knows nothing, one that blows up."""

import math

import numpy as np
import pytest
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.lj import LennardJones
from ase.calculators.singlepoint import SinglePointCalculator
from conftest import jiggled

from qdff.data import dataset
from qdff.structure.build import cut_cluster
from qdff.training.backends.common import DEFAULT_GATE, TrainingError, check_useful


@pytest.fixture(scope="module")
def frames():
    """20 labelled frames of Cd6Se6 (Lennard-Jones labels: only their numbers matter here)."""
    lj = LennardJones(sigma=2.3, epsilon=0.3, rc=8.0, smooth=True)
    out = []
    for a in jiggled(cut_cluster("CdSe", "zincblende", 6), 20, 0.08, seed=4):
        a.calc = lj
        e, f = a.get_potential_energy(), a.get_forces()
        a.calc = SinglePointCalculator(a, energy=e, forces=f)
        out.append(a)
    return out


class Table(Calculator):
    """A model that answers from a table: for the frame at index i of ``frames`` it returns
    the labels of frame ``pick(i)``, scaled; so its errors follow from the labels."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, frames, pick=lambda i: i, f_scale=1.0, e_shift=0.0, nan=False):
        super().__init__()
        self.frames, self.pick, self.f_scale, self.e_shift, self.nan = frames, pick, f_scale, e_shift, nan

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        i = next(k for k, a in enumerate(self.frames) if np.array_equal(a.positions, self.atoms.positions))
        src = self.frames[self.pick(i) % len(self.frames)]
        f = self.f_scale * src.get_forces()
        self.results = {"energy": src.get_potential_energy() + self.e_shift, "forces": f * np.nan if self.nan else f}


def _baselines(frames):
    f = np.concatenate([a.get_forces() for a in frames])
    e = np.array([a.get_potential_energy() / len(a) for a in frames])
    return 1e3 * np.sqrt(np.mean(f**2)), 1e3 * np.std(e)


def test_a_model_that_reproduces_the_labels_passes_with_its_figures(frames):
    out = check_useful("Table", Table(frames), frames)
    f_base, e_base = _baselines(frames)
    assert out["force_rmse_meV_per_A"] == pytest.approx(0, abs=1e-9)
    assert out["baseline_zero_force_rmse_meV_per_A"] == pytest.approx(f_base)
    assert out["baseline_mean_energy_rmse_meV_per_atom"] == pytest.approx(e_base)
    assert out["n_frames"] == 20 and out["max_force_rmse_ratio"] == DEFAULT_GATE["max_force_rmse_ratio"]


def test_a_model_of_other_frames_is_not_useful_and_the_message_names_both_numbers(frames):
    # another frame's forces: uncorrelated with the truth, so the RMSE is about sqrt(2) times
    # the zero-force baseline, between the usefulness limit (1x) and divergence (3x)
    useless = Table(frames, pick=lambda i: i + 7)
    f_base, _ = _baselines(frames)
    with pytest.raises(
        TrainingError,
        match=r"Table model is not useful: force RMSE [\d.]+ meV/A on the 20 validation "
        r"frames against [\d.]+ meV/A for predicting zero force \(ratio 1\.\d\d > "
        r"training\.max_force_rmse_ratio 1\)",
    ) as err:
        check_useful("Table", useless, frames, hint="train longer")
    assert f"{f_base:.1f} meV/A" in str(err.value) and str(err.value).endswith("train longer")
    # a looser gate lets the same model through
    check_useful("Table", useless, frames, {"max_force_rmse_ratio": 2.0, "max_energy_rmse_ratio": 1e6})


def test_an_energy_offset_passes_and_energy_scatter_is_judged_against_the_spread_of_per_atom_energies(frames):
    """The energy rule judges the error with its mean offset removed (a constant energy per atom
    changes neither forces nor MD) against the spread of the per-atom energies (these frames
    carry no temperature: one group)."""
    _, e_base = _baselines(frames)
    n = len(frames[0])
    # an offset of 20x the spread per atom: RMSE 20x, error std 0: passes a 0.1x gate
    shifted = Table(frames, e_shift=20 * e_base * 1e-3 * n)
    out = check_useful("Table", shifted, frames, {"max_energy_rmse_ratio": 0.1, "energy_floor_meV_per_atom": 0.0})
    assert out["energy_rmse_meV_per_atom"] == pytest.approx(20 * e_base)
    assert out["energy_mean_signed_error_meV_per_atom"] == pytest.approx(20 * e_base)
    assert out["energy_error_std_meV_per_atom"] == pytest.approx(0, abs=1e-6)
    # another frame's energies (and forces): an error std about sqrt(2) the spread
    other = Table(frames, pick=lambda i: i + 7)
    e_ref = np.array([a.get_potential_energy() / n for a in frames])
    ratio = 1e3 * np.std(np.roll(e_ref, -7) - e_ref) / e_base
    assert ratio > 1.0
    gate = {"max_force_rmse_ratio": math.inf, "energy_floor_meV_per_atom": 0.0}
    with pytest.raises(
        TrainingError,
        match=r"Table model is not useful: at all temperatures, energy error std \(mean offset removed\) [\d.]+ meV/atom "
        r"on the 20 validation frames against [\d.]+ meV/atom for predicting the mean energy per atom of all "
        rf"temperatures \(floor training\.energy_floor_meV_per_atom 0; ratio {ratio:.2f} > "
        r"training\.max_energy_rmse_ratio 1\)",
    ):
        check_useful("Table", other, frames, {**gate, "max_energy_rmse_ratio": 1.0})
    check_useful("Table", other, frames, gate)  # the default 10x lets it through
    # a floor above the spread: the same model is judged against the floor instead
    floor = 4 * e_base
    out = check_useful(
        "Table", other, frames, {**gate, "max_energy_rmse_ratio": 1.0, "energy_floor_meV_per_atom": floor}
    )
    assert out["energy_floor_meV_per_atom"] == floor


@pytest.mark.parametrize("model", ["nan", "huge"])
def test_non_finite_or_exploded_predictions_are_a_divergence_whatever_the_gate(frames, model):
    calc = Table(frames, nan=True) if model == "nan" else Table(frames, f_scale=-5.0)
    loose = {"max_force_rmse_ratio": math.inf, "max_energy_rmse_ratio": math.inf}
    with pytest.raises(
        TrainingError,
        match="Table training diverged: "
        + ("non-finite predictions" if model == "nan" else r"force RMSE [\d.]+ meV/A, more than 3x the zero-force"),
    ):
        check_useful("Table", calc, frames, loose)


def test_a_timing_only_gate_skips_the_checks_and_says_so(frames, caplog):
    """benchmarks/speed_vs_dft.py trains models for a moment to time them: they are neither
    useful nor checked, and their metadata says so (no error figures that could be quoted)."""
    from qdff.training.backends.common import TIMING_ONLY

    out = check_useful("Table", Table(frames, f_scale=-5.0), frames, TIMING_ONLY)
    assert out == {
        "skipped": "timing only: trained for a moment to measure its cost, not a useful model",
        "n_frames": len(frames),
    }
    assert "timing only" in caplog.text


def test_non_finite_labels_are_refused_before_training_naming_file_and_frame(frames, tmp_path):
    bad = [a.copy() for a in frames]
    for a, b in zip(bad, frames):
        a.calc = SinglePointCalculator(a, energy=b.get_potential_energy(), forces=b.get_forces().copy())
    bad[3].calc.results["forces"][2, 1] = np.nan
    dataset.write_frames(tmp_path / "train.extxyz", bad)
    with pytest.raises(ValueError, match=r"train\.extxyz: frame 3 has a non-finite force"):
        dataset.read_frames(tmp_path / "train.extxyz")


def test_epoch_logger_logs_progress_with_an_eta_from_the_first_epoch_seen(caplog):
    import logging
    import re

    from qdff.training.backends.common import epoch_logger

    on_line = epoch_logger("MACE", 10, re.compile(r"Epoch (\d+): .*loss=(?P<loss>[-+0-9.eE]+)"), first_epoch=0)
    with caplog.at_level(logging.INFO, logger="qdff.training.backends.common"):
        on_line("INFO: Epoch 4: head: Default, loss=0.0123, RMSE_E_per_atom=1.0")  # resumed: epoch 5 of 10
        on_line("a line of something else")
        on_line("INFO: Epoch 5: head: Default, loss=0.0100")
    msgs = [r.getMessage() for r in caplog.records]
    assert len(msgs) == 2 and msgs[0].startswith("MACE epoch 5/10, loss 0.0123, ") and "ETA" in msgs[1]
    assert msgs[1].startswith("MACE epoch 6/10, loss 0.0100")


def test_shifted_extxyz_holds_shifted_energies_and_forces_under_the_keys_asked(tmp_path):
    from ase import Atoms
    from ase.io import read

    from qdff.training.backends.common import write_shifted_extxyz

    a = Atoms("Cd2Se", positions=[[0, 0, 0], [2.6, 0, 0], [0, 2.6, 0]])
    f = np.arange(9.0).reshape(3, 3)
    a.calc = SinglePointCalculator(a, energy=-10.0, forces=f)
    a.info["temperature"] = 300.0
    shift = {"Cd": -2.0, "Se": -1.5}
    write_shifted_extxyz([a], shift, tmp_path / "plain.extxyz")
    write_shifted_extxyz([a], shift, tmp_path / "named.extxyz", "REF_energy", "REF_forces")
    plain = read(tmp_path / "plain.extxyz")
    assert plain.get_potential_energy() == pytest.approx(-4.5) and np.allclose(plain.get_forces(), f)
    assert "temperature" not in plain.info
    named = read(tmp_path / "named.extxyz")
    assert named.info["REF_energy"] == pytest.approx(-4.5) and np.allclose(named.arrays["REF_forces"], f)
    assert named.calc is None or "energy" not in named.calc.results
