"""Energy errors a scientist can defend, on hand-made numbers: the mean offset apart from the
error that matters for MD, and mean-energy baselines per temperature that the offset between
temperatures does not inflate (issue 32)."""

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.singlepoint import SinglePointCalculator

from qdff.training.backends.common import TrainingError, check_useful
from qdff.training.errors import energy_by_temperature, energy_useful, error_metrics

N = 4  # atoms per frame


def frames_at(per_atom: dict) -> list:
    """Frames of N atoms with the given per-atom energies (eV) per temperature, zero forces."""
    out = []
    for t, energies in per_atom.items():
        for e in energies:
            # positions differ per frame: an ASE calculator reuses its results for unchanged atoms
            a = Atoms("Cd2Se2", positions=np.arange(3 * N, dtype=float).reshape(N, 3) * 2.5 + 0.01 * len(out))
            a.info.update(temperature=float(t), i=len(out))
            a.calc = SinglePointCalculator(a, energy=N * e, forces=np.zeros((N, 3)))
            out.append(a)
    return out


# 300 K: per-atom energies -1.000 +- 0.002 eV; 600 K: -0.960 +- 0.004 eV (40 meV/atom higher)
TWO_T = {300: [-1.002, -0.998, -1.002, -0.998], 600: [-0.964, -0.956, -0.964, -0.956]}


def _e(frames):
    return np.array([a.get_potential_energy() for a in frames])


def _metrics(frames, e_pred):
    return error_metrics(frames, e_pred, [np.zeros((N, 3)) for _ in frames])


def test_a_constant_offset_has_error_std_zero_and_a_nonzero_rmse():
    frames = frames_at(TWO_T)
    m = _metrics(frames, _e(frames) + N * 0.010)  # +10 meV/atom on every frame
    assert m["energy_rmse_meV_per_atom"] == pytest.approx(10.0)
    assert m["energy_mean_signed_error_meV_per_atom"] == pytest.approx(10.0)
    assert m["energy_error_std_meV_per_atom"] == pytest.approx(0.0, abs=1e-9)
    for t in ("300K", "600K"):
        assert m[f"energy_rmse_meV_per_atom_T_{t}"] == pytest.approx(10.0)
        assert m[f"energy_error_std_meV_per_atom_T_{t}"] == pytest.approx(0.0, abs=1e-9)
        assert m[f"energy_useful_T_{t}"] is True


def test_per_temperature_baselines_are_not_inflated_by_the_offset_between_temperatures():
    frames = frames_at(TWO_T)
    m = _metrics(frames, _e(frames))
    assert m["baseline_mean_energy_rmse_meV_per_atom_T_300K"] == pytest.approx(2.0)
    assert m["baseline_mean_energy_rmse_meV_per_atom_T_600K"] == pytest.approx(4.0)
    # the pooled baseline (one mean over both temperatures) is mostly their 40 meV/atom offset
    assert m["baseline_mean_energy_rmse_meV_per_atom"] == pytest.approx(np.sqrt(20.0**2 + (4 + 16) / 2))
    assert m["n_frames_T_300K"] == 4 and m["n_frames_T_600K"] == 4


def test_a_model_that_only_knows_the_temperature_is_not_useful_at_either():
    """Predicting each temperature's mean energy beats the pooled baseline tenfold, but it is
    exactly the per-temperature baseline: no energy resolution within a temperature."""
    frames = frames_at(TWO_T)
    means = {300: -1.0, 600: -0.96}
    e_pred = np.array([N * means[int(a.info["temperature"])] for a in frames])
    m = _metrics(frames, e_pred)
    assert m["energy_rmse_meV_per_atom"] < m["baseline_mean_energy_rmse_meV_per_atom"] / 5
    for t, base in (("300K", 2.0), ("600K", 4.0)):
        assert m[f"energy_error_std_meV_per_atom_T_{t}"] == pytest.approx(base)
        assert m[f"energy_useful_T_{t}"] is False
    # half the scatter at 600 K only: useful there, not at 300 K
    e_half = e_pred.copy()
    hot = np.array([a.info["temperature"] == 600 for a in frames])
    e_half[hot] = (_e(frames)[hot] + e_pred[hot]) / 2
    m = _metrics(frames, e_half)
    assert m["energy_error_std_meV_per_atom_T_600K"] == pytest.approx(2.0)
    assert m["energy_useful_T_600K"] is True and m["energy_useful_T_300K"] is False


def test_the_verdict_is_strict_and_needs_two_frames():
    assert energy_useful(1.9, 2.0) and not energy_useful(2.0, 2.0)
    one = frames_at({300: [-1.0]})
    assert energy_by_temperature(one, _e(one))["energy_useful_T_300K"] is None
    # frames without a temperature get no per-temperature keys
    plain = frames_at({300: [-1.0, -0.99]})
    for a in plain:
        del a.info["temperature"]
    assert energy_by_temperature(plain, _e(plain)) == {}


class Lookup(Calculator):
    """Energies from a table indexed by the frame's ``info['i']``; zero forces."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, energies):
        super().__init__()
        self.energies = energies

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.results = {"energy": float(self.energies[self.atoms.info["i"]]), "forces": np.zeros((len(atoms), 3))}


def test_the_usefulness_gate_judges_energies_per_temperature_without_the_offset():
    frames = frames_at(TWO_T)
    strict = {"max_energy_rmse_ratio": 1.0, "energy_floor_meV_per_atom": 0.0}
    # a 50 meV/atom offset: RMSE 12x the 300 K baseline, error std 0: passes even a strict gate
    out = check_useful("Lookup", Lookup(_e(frames) + N * 0.050), frames, strict)
    assert out["energy_rmse_meV_per_atom"] == pytest.approx(50.0)
    assert out["energy_error_std_meV_per_atom_T_300K"] == pytest.approx(0.0, abs=1e-9)
    assert out["baseline_mean_energy_rmse_meV_per_atom_T_600K"] == pytest.approx(4.0)
    # the temperature-only model: under the pooled baseline, at the per-temperature one: refused
    # by a gate below 1x, naming the temperature and both numbers
    means = {300: -1.0, 600: -0.96}
    e_pred = np.array([N * means[int(a.info["temperature"])] for a in frames])
    with pytest.raises(
        TrainingError,
        match=r"Lookup model is not useful: at 300 K, energy error std \(mean offset removed\) 2\.00 meV/atom on "
        r"the 8 validation frames against 2\.00 meV/atom for predicting the mean energy per atom of 300 K "
        r"\(floor training\.energy_floor_meV_per_atom 0; ratio 1\.00 > training\.max_energy_rmse_ratio 0\.9\)",
    ):
        check_useful("Lookup", Lookup(e_pred), frames, {**strict, "max_energy_rmse_ratio": 0.9})
    check_useful("Lookup", Lookup(e_pred), frames, {**strict, "max_energy_rmse_ratio": 1.01})  # std == baseline


def test_force_rmse_interval_from_time_blocks():
    """Blocks of 60 fs resampled within each run: the interval brackets the RMSE and spans the
    blocks' own RMSEs; without times there is no interval (not one from frames one by one)."""
    from qdff.training.errors import force_rmse_interval

    frames, pred = [], []
    for run in ("300K", "500K"):
        for k in range(60):  # 120 fs per run at 2 fs: 2 blocks each
            a = Atoms("Cd2Se2", positions=np.arange(3 * N, dtype=float).reshape(N, 3) * 2.5)
            a.info.update(run=run, time=100.0 + 2.0 * k)
            a.calc = SinglePointCalculator(a, energy=0.0, forces=np.zeros((N, 3)))
            frames.append(a)
            # error 0.1 eV/A in the first block of each run, 0.3 in the second
            pred.append(np.full((N, 3), 0.1 if k < 30 else 0.3))
    out = force_rmse_interval(frames, pred)
    assert out["rmse_interval_blocks"] == 4
    lo, hi = out["rmse_interval_force_meV_per_A"]
    rmse = 1e3 * np.sqrt((0.1**2 + 0.3**2) / 2)
    assert 100.0 <= lo < rmse < hi <= 300.0
    assert out == force_rmse_interval(frames, pred)  # seeded: the same interval every time
    for a in frames:
        del a.info["time"]
    assert force_rmse_interval(frames, pred) == {}


def test_evaluation_with_time_blocks_writes_its_plots_and_the_interval(tmp_path):
    """The whole evaluation (metrics, parity and error plots) on frames with run and time, as
    the pipeline's held-out frames carry them: the interval is in the metrics, beside the
    per-element and per-temperature errors the error plot draws."""
    from qdff.validation.evaluate import evaluate

    class Offset(Calculator):
        implemented_properties = ["energy", "forces"]

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            k = int(round(self.atoms.positions[0, 2] * 100))
            self.results = {"energy": -4.0 + 0.001 * k, "forces": np.full((N, 3), 0.05 * (1 + k % 3))}

    frames = []
    for run, t_k in (("300K", 300.0), ("500K", 500.0)):
        for k in range(40):
            a = Atoms("Cd2Se2", positions=np.arange(3 * N, dtype=float).reshape(N, 3) * 2.5)
            a.positions[0, 2] = 0.01 * len(frames)
            a.info.update(run=run, temperature=t_k, time=200.0 + 2.0 * k)
            a.calc = SinglePointCalculator(a, energy=-4.0, forces=np.zeros((N, 3)))
            frames.append(a)
    m = evaluate(
        Offset(), frames, backend="x", max_frames=100, parity_path=tmp_path / "p.png", errors_path=tmp_path / "e.png"
    )
    lo, hi = m["rmse_interval_force_meV_per_A"]
    assert lo <= m["force_rmse_meV_per_A"] <= hi and m["rmse_interval_blocks"] == 4
    assert (tmp_path / "p.png").stat().st_size > 0 and (tmp_path / "e.png").stat().st_size > 0
