"""Structural fidelity (qdff.validation.fidelity) on hand-made trajectories: persistent bond
changes, ligand hops apart, and the AIMD's block-bootstrap interval."""

import numpy as np
from ase import Atoms

from qdff.validation import fidelity

CUT = {"Cd-Se": 3.0, "Cd-Cl": 3.0}


def _dimer(distances, dt_fs=10.0, key="seed", label=0, symbols="CdSe"):
    return [
        Atoms(symbols, positions=[[0, 0, 0], [d, 0, 0]], info={"time": k * dt_fs, key: label})
        for k, d in enumerate(distances)
    ]


def _changes(frames, persist_frames=20):
    s = fidelity.frame_series(frames, CUT, persist_frames, fidelity.ligand_elements(frames[0].get_chemical_symbols()))
    return s["changes"].sum(), s["ligand_changes"].sum()


def test_a_bond_flickering_across_its_cutoff_is_no_change():
    # 2.9 / 3.1 A about a 3.0 A cutoff every 10 fs, and 190 fs out and back: each shorter than 200 fs
    flicker = [2.9, 3.1] * 30
    excursion = [2.6] * 10 + [3.4] * 19 + [2.6] * 30
    assert _changes(_dimer(flicker)) == (0, 0)
    assert _changes(_dimer(excursion)) == (0, 0)


def test_a_bond_that_breaks_and_stays_broken_is_one_change():
    broken = [2.6] * 10 + [3.5] * 40
    assert _changes(_dimer(broken)) == (1, 0)
    # at the end of a run, too short to be confirmed: not counted (nor its frames in the rate)
    assert _changes(_dimer([2.6] * 40 + [3.5] * 10)) == (0, 0)


def test_a_chloride_hopping_between_cadmiums_is_a_ligand_hop_counted_apart():
    # Cd at 0 and 5 A; the Cl goes from 2.5 A off the first to 2.5 A off the second and stays
    xs = [2.5] * 10 + list(np.linspace(2.5, 7.5, 6)) + [7.5] * 40
    frames = [
        Atoms("CdCdCl", positions=[[0, 0, 0], [5, 0, 0], [x - 2.5, 1.0, 0]], info={"time": 10.0 * k})
        for k, x in enumerate(xs)
    ]
    assert fidelity.ligand_elements(frames[0].get_chemical_symbols()) == {"Cl"}
    assert _changes(frames) == (0, 2)  # one bond broken, one formed


def test_ligand_elements_follow_the_site_classes():
    assert fidelity.ligand_elements(["Cd", "Se", "Cl"]) == {"Cl"}
    assert fidelity.ligand_elements(["Pb", "Se", "Cl"]) == {"Cl"}
    assert fidelity.ligand_elements(["Cs", "Pb", "Br"]) == set()  # Br is the lattice's anion here


def _telegraph(n, mean_hold, rng):
    """Bond length switching between 2.6 and 3.6 A, holding each state an exponential time of
    ``mean_hold`` frames (at least 8: longer than the persistence), with 0.05 A noise."""
    out, bonded = [], True
    while len(out) < n:
        hold = max(8, int(rng.exponential(mean_hold)))
        out += [2.6 if bonded else 3.6] * hold
        bonded = not bonded
    return np.asarray(out[:n]) + rng.normal(0, 0.05, n)


def _seeds(mean_hold, rng, n=300, count=3):
    return [a for s in range(count) for a in _dimer(_telegraph(n, mean_hold, rng), label=s)]


def test_bootstrap_interval_holds_the_same_process_and_grades_others_above_and_below():
    rng = np.random.default_rng(7)
    aimd = _dimer(_telegraph(4000, 60, rng), key="run", label="300K")
    # blocks of 1.5 ps, longer than the process's mean hold of 600 fs: shorter blocks than the
    # correlation time make the interval too narrow (measured: 500 fs blocks held this process's
    # coordination in 41 of 60 trajectories, 1.5 ps blocks in 52)
    kw = dict(aimd=aimd, persistence_fs=50.0, block_fs=1500.0, resamples=400)
    same = fidelity.compare(
        _seeds(60, rng), CUT, independent=_dimer(_telegraph(900, 60, rng), key="run", label="x"), **kw
    )
    fast = fidelity.compare(_seeds(12, rng), CUT, **kw)
    rigid = fidelity.compare([a for s in range(3) for a in _dimer([2.6] * 300, label=s)], CUT, **kw)
    rate = same["quantities"]["bond_changes_per_ps"]
    lo, hi = rate["aimd_interval"]
    # about one change per 600 fs: 1.7 per ps
    assert 1.2 < rate["aimd"] < 2.2 and lo < rate["aimd"] < hi
    assert rate["grade"] == "inside" and rate["independent_grade"] == "inside"
    assert len(rate["mlmd_seeds"]) == 3 and rate["mlmd_range"][0] <= rate["mlmd_mean"] <= rate["mlmd_range"][1]
    assert fast["quantities"]["bond_changes_per_ps"]["grade"] == "above"
    assert rigid["quantities"]["bond_changes_per_ps"]["grade"] == "below"
    assert rigid["quantities"]["coordination"]["Cd"]["grade"] == "above"  # always bonded: 1 against about 0.5
    assert same["quantities"]["coordination"]["Cd"]["grade"] == "inside"
    assert "ligand_bond_changes_per_ps" not in same["quantities"]  # no ligand in a CdSe dimer
    assert same["block_fs"] == 1500.0 and same["spacing_fs"] == 10.0


def test_a_stress_temperature_has_values_but_no_interval():
    out = fidelity.compare(_dimer([2.6] * 10 + [3.5] * 40), CUT, persistence_fs=200.0)
    rate = out["quantities"]["bond_changes_per_ps"]
    assert rate["mlmd_mean"] > 0 and "grade" not in rate and "stress temperature" in out["note"]


def test_the_mlmd_step_grades_against_the_aimd_and_the_independent_run_and_metrics_carry_it():
    from qdff.config import test_run_label
    from qdff.steps.mlmd import structural_fidelity
    from qdff.validation.metrics import _mlmd_rows

    rng = np.random.default_rng(3)
    aimd = _dimer(_telegraph(2000, 60, rng), key="run", label="300K")
    independent = _dimer(_telegraph(600, 60, rng), key="run", label=test_run_label(300.0))
    traj = [a for s in (4, 5) for a in _dimer([2.6] * 400, label=s)]  # a model whose bond never breaks
    runs = [{"seed": s, "stable": True} for s in (4, 5)]
    summary = {"bond_cutoffs": {"Cd-Se": 3.0}, "reference_temperature": 300.0, "runs": runs, "stable": True}
    fid = structural_fidelity(summary | {"stress": False}, traj, aimd + independent, 50.0)
    rate = fid["quantities"]["bond_changes_per_ps"]
    assert fid["aimd_frames"] == 2000 and fid["independent_frames"] == 600 and fid["seeds"] == 2
    assert rate["grade"] == "below" and rate["independent_grade"] == "inside"
    stress = structural_fidelity(summary | {"stress": True}, traj, aimd + independent, 50.0)
    assert stress["aimd_frames"] == 0 and "grade" not in stress["quantities"]["bond_changes_per_ps"]

    row = {}
    run = {"temperature": 300.0, "stable": True, "seconds_per_step": 0.1, "structural_fidelity": fid}
    _mlmd_rows(row, [run, {**run, "temperature": 450.0, "stress": True, "structural_fidelity": stress}], {})
    assert row["mlmd_bond_changes_per_ps_300K"] == 0.0 and row["mlmd_bond_changes_per_ps_grade_300K"] == "below"
    assert "bond changes per ps below" in row["mlmd_fidelity_outside_300K"]
    assert "coordination Cd above" in row["mlmd_fidelity_outside_300K"]
    assert "mlmd_fidelity_outside_450K" not in row and "mlmd_bond_changes_per_ps_grade_450K" not in row
    assert row["mlmd_per_temperature"][0]["structural_fidelity"] is fid
