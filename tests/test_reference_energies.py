"""Several compositions in one data set (issue 30): per-element reference energies fitted across
compositions (identifiable only when the composition matrix has full column rank), and held-out
errors per system in the evaluation output and the report. Fast: frames written by the test with
known per-element energies, a model that is a formula, no training."""

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.singlepoint import SinglePointCalculator

from qdff.data import dataset
from qdff.report import render
from qdff.validation import evaluate

#: the known per-element references the frames are written with, eV
REFS = {"Cd": -1322.25, "Se": -255.75, "Cl": -410.5}


def _cluster(symbols, seed):
    rng = np.random.default_rng(seed)
    pos = np.array([[2.6 * (i % 3), 2.6 * ((i // 3) % 3), 2.6 * (i // 9)] for i in range(len(symbols))], float)
    return Atoms(symbols, positions=pos + rng.normal(0, 0.05, pos.shape))


def _frames(composition: dict, n: int, seed: int, noise_eV: float = 0.002):
    """``n`` frames of one composition: energy = sum of REFS + a zero-mean frame-to-frame part."""
    rng = np.random.default_rng(seed)
    symbols = [el for el, k in composition.items() for _ in range(k)]
    out = []
    for i in range(n):
        a = _cluster(symbols, seed * 100 + i)
        e = sum(REFS[s] for s in symbols) + rng.normal(0, noise_eV)
        a.calc = SinglePointCalculator(a, energy=e, forces=rng.normal(0, 0.5, (len(a), 3)))
        out.append(a)
    noise = np.array([a.get_potential_energy() for a in out]) - sum(REFS[s] for s in symbols)
    for a in out:  # make the noise exactly zero-mean per composition: the fit then recovers REFS exactly
        a.calc.results["energy"] -= noise.mean()
    return out


def test_two_compositions_recover_the_per_element_references():
    frames = _frames({"Cd": 2, "Se": 2}, 6, 1) + _frames({"Cd": 3, "Se": 1}, 5, 2)
    fit = dataset.fit_reference_energies_report(frames)
    assert fit["identifiable"] is True and fit["rank"] == 2
    assert fit["compositions"] == {"Cd2Se2": 6, "Cd3Se": 5}
    for el in ("Cd", "Se"):
        assert fit["reference_energies"][el] == pytest.approx(REFS[el], abs=1e-6)
    assert "full rank 2" in fit["note"]
    assert dataset.fit_reference_energies(frames) == fit["reference_energies"]
    assert max(fit["residual_rmse_meV_per_atom"].values()) < 2.0  # only the 2 meV frame noise is left


def test_one_composition_keeps_the_minimum_norm_fit_and_says_so():
    frames = _frames({"Cd": 2, "Se": 2}, 6, 3)
    fit = dataset.fit_reference_energies_report(frames)
    assert fit["identifiable"] is False and fit["rank"] == 1
    assert "not identifiable" in fit["note"]
    # today's behaviour: the minimum-norm solution (equal split for equal counts), the mean energy reproduced
    X = dataset.composition_matrix(frames, ["Cd", "Se"])
    expected = np.linalg.lstsq(X, dataset.energies(frames), rcond=None)[0]
    assert [fit["reference_energies"][el] for el in ("Cd", "Se")] == pytest.approx(expected)
    mean_e = float(np.mean(dataset.energies(frames)))
    assert sum(fit["reference_energies"][s] for s in frames[0].get_chemical_symbols()) == pytest.approx(mean_e)


def test_proportional_compositions_are_not_identifiable():
    frames = _frames({"Cd": 2, "Se": 2}, 3, 4) + _frames({"Cd": 3, "Se": 3}, 3, 5)
    fit = dataset.fit_reference_energies_report(frames)
    assert fit["identifiable"] is False and fit["rank"] == 1 and len(fit["compositions"]) == 2


def test_three_elements_need_three_independent_compositions():
    two = _frames({"Cd": 2, "Se": 2}, 3, 6) + _frames({"Cd": 2, "Se": 1, "Cl": 2}, 3, 7)
    assert dataset.fit_reference_energies_report(two)["identifiable"] is False
    three = two + _frames({"Cd": 3, "Se": 2, "Cl": 1}, 3, 8)
    fit = dataset.fit_reference_energies_report(three)
    assert fit["identifiable"] is True and fit["rank"] == 3
    for el in REFS:
        assert fit["reference_energies"][el] == pytest.approx(REFS[el], abs=1e-6)


class _RefModel(Calculator):
    """A "model": the fitted references plus a per-element offset (eV per atom of ``bias``), zero forces."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, refs, bias):
        super().__init__()
        self.refs, self.bias = refs, bias

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        syms = atoms.get_chemical_symbols()
        self.results = {
            "energy": sum(self.refs[s] + self.bias.get(s, 0.0) for s in syms),
            "forces": np.zeros((len(atoms), 3)),
        }


def test_held_out_errors_per_system_in_evaluation_and_report(tmp_path):
    frames = _frames({"Cd": 2, "Se": 2}, 4, 9) + _frames({"Cd": 3, "Se": 1}, 3, 10)
    for a in frames:
        a.info["temperature"] = 300.0
    refs = dataset.fit_reference_energies(frames)
    # 10 meV per Cd atom too high: +5 meV/atom on Cd2Se2, +7.5 meV/atom on Cd3Se
    model = _RefModel(refs, {"Cd": 0.010})
    m = evaluate.evaluate(model, frames, backend="toy", max_frames=100, parity_path=tmp_path / "p.png")
    assert m["n_frames_system_Cd2Se2"] == 4 and m["n_frames_system_Cd3Se"] == 3
    assert m["energy_mean_signed_error_meV_per_atom_system_Cd2Se2"] == pytest.approx(5.0, abs=0.1)
    assert m["energy_mean_signed_error_meV_per_atom_system_Cd3Se"] == pytest.approx(7.5, abs=0.1)
    for sys_, part in (("Cd2Se2", frames[:4]), ("Cd3Se", frames[4:])):
        f = np.concatenate([a.get_forces() for a in part]).ravel()
        rms = 1e3 * np.sqrt(np.mean(f**2))  # zero predicted forces: the error is the baseline
        assert m[f"force_rmse_meV_per_A_system_{sys_}"] == pytest.approx(rms)
        assert m[f"baseline_zero_force_rmse_meV_per_A_system_{sys_}"] == pytest.approx(rms)
    # the report's tables: one row per backend and system, a column per system in the breakdown
    cols, rows = render.system_table([m])
    assert [r[1] for r in rows] == ["Cd2Se2", "Cd3Se"] and rows[0][6] == "+5.00"
    bcols, _ = render.breakdown_table([m])
    assert "Cd2Se2" in bcols and "Cd3Se" in bcols
    evaluate.errors_plot(m, "toy", tmp_path / "e.png")
    assert (tmp_path / "e.png").stat().st_size > 0
    # one composition: no per-system keys, no table
    one = evaluate.evaluate(model, frames[:4], backend="toy", max_frames=100, parity_path=tmp_path / "q.png")
    assert not any(k.startswith("n_frames_system_") for k in one)
    assert render.system_table([one])[1] == []


def test_selection_json_records_the_fit_across_compositions(tmp_path):
    """select_frames on a data set of two time-ordered runs, one per composition: selection.json
    holds the recovered references and says they are identifiable."""
    from qdff.steps.select import select_frames

    frames = []
    for run, comp, seed in (("a", {"Cd": 2, "Se": 2}, 11), ("b", {"Cd": 3, "Se": 1}, 12)):
        for i, a in enumerate(_frames(comp, 30, seed)):
            a.info.update(run=run, step=i, time=float(i), temperature=300.0)
            frames.append(a)
    data = tmp_path / "frames.extxyz"
    dataset.write_frames(data, frames)
    sel = {
        "method": "random",
        "n_train": 10,
        "n_valid": 2,
        "test_fraction": 0.2,
        "valid_fraction": 0.1,
        "gap_fs": 2,
        "equilibration_fs": 0,
        "seed": 0,
        "dedupe_tolerance": 0,
        "drop_unconverged_scf": True,
        "split": "auto",
        "split_clusters": 5,
        "descriptor": {"kind": "soap"},
    }
    s = select_frames(data, tmp_path / "split", selection=sel, reference_energies="fit", test_runs=[], test_seed=None)
    fit = s["reference_energies_fit"]
    assert fit["identifiable"] is True and set(fit["compositions"]) == {"Cd2Se2", "Cd3Se"}
    assert fit["held_out_only_compositions"] == []
    for el in ("Cd", "Se"):
        assert s["reference_energies"][el] == pytest.approx(REFS[el], abs=0.01)  # train frames only: 2 meV noise
