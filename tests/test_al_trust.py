"""Active learning's calibration, trust levels, minimum-distance filter, stop rule, temperature
ladder and committee data (unit tests on hand-made numbers, no training)."""

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from conftest import jiggled

from qdff import config
from qdff.active_learning import calibration, loop, trust
from qdff.data import dataset


def test_conformal_scale_covers_the_level_on_a_hand_made_set():
    # ten frames whose error/deviation ratios are 1..10: at the 90 % level the scale is the
    # ceil(11 x 0.9) = 10th smallest ratio; at 50 % the 6th
    dev = np.full(10, 0.1)
    err = 0.1 * np.arange(1, 11)
    assert calibration.conformal_scale(dev, err, 0.9) == pytest.approx(10.0)
    assert calibration.conformal_scale(dev, err, 0.5) == pytest.approx(6.0)
    assert calibration.coverage(6.0, dev, err) == pytest.approx(0.6)
    # too few frames for the level: no finite scale can promise it
    assert calibration.conformal_scale(dev[:3], err[:3], 0.9) == np.inf


def test_calibration_recovers_a_known_error_to_deviation_ratio():
    # errors are 3x the deviation times noise in [0.5, 1.5]: the 90 % scale lies near 3 x 1.4,
    # the held-out half is covered at about the level, and RMSE = 3 x RMS deviation on average
    rng = np.random.default_rng(0)
    dev = rng.uniform(0.05, 0.5, size=20000)
    err = 3.0 * dev * rng.uniform(0.5, 1.5, size=20000)
    fit = calibration.fit(dev, err, dev, err, level=0.9)
    assert fit["scale"] == pytest.approx(4.2, rel=0.03)
    assert fit["coverage_holdout"] == pytest.approx(0.9, abs=0.015)
    assert fit["rms_scale"] == pytest.approx(3.0 * np.sqrt(np.mean(rng.uniform(0.5, 1.5, 10**6) ** 2)), rel=0.03)
    assert fit["spearman"] > 0.8
    assert calibration.predicted_rmse(2.0, [0.1, 0.1]) == pytest.approx(0.2)


def test_errors_of_forces_per_frame():
    pred = np.zeros((1, 2, 3))
    ref = np.array([[[0.3, 0.4, 0.0], [0.0, 0.0, 1.2]]])
    assert calibration.max_atomic_error(pred, ref) == pytest.approx([1.2])
    assert calibration.frame_rmse(pred, ref) == pytest.approx([np.sqrt((0.09 + 0.16 + 1.44) / 6)])


def test_adaptive_lower_level_follows_a_moving_quantile():
    # a committee whose deviation floor halves each iteration: the level follows it, damped
    floors = [np.linspace(0, 0.4, 101), np.linspace(0, 0.2, 101), np.linspace(0, 0.1, 101)]
    levels, prev = [], None
    for f in floors:
        prev = trust.adaptive_lower(f, 0.9, prev, 0.5)
        levels.append(prev)
    assert levels == pytest.approx([0.36, 0.27, 0.18])
    assert trust.adaptive_lower(floors[2], 0.9, 0.5, 0.0) == pytest.approx(0.09)  # no smoothing


def test_minimum_distance_filter_and_classes():
    a = Atoms("CdSeSe", positions=[[0, 0, 0], [2.6, 0, 0], [0, 4.0, 0]])
    floors = trust.shortest_distances([a])
    assert floors == pytest.approx({"Cd-Se": 2.6, "Se-Se": np.hypot(2.6, 4.0)})  # one Cd: no Cd-Cd pair
    squeezed = a.copy()
    squeezed.positions[1, 0] = 2.0  # Cd-Se at 2.0 A < 0.85 x 2.6 = 2.21 A
    assert trust.physical(a, floors, 0.85) and not trust.physical(squeezed, floors, 0.85)
    devi = np.array([0.05, 0.3, 0.9, 0.9, 0.3])
    ok = np.array([True, True, True, False, False])
    assert list(trust.classify(devi, 0.1, 0.6, ok)) == ["accurate", "candidate", "beyond", "failed", "failed"]


def test_stop_rule_has_three_endings():
    base = dict(
        predicted_rmse=50.0,
        target=60.0,
        all_stable=True,
        all_temperatures=True,
        evaluations=900,
        budget=1000,
        iteration=1,
        max_iterations=4,
    )
    assert trust.stop_reason(**base) == "converged"
    assert trust.stop_reason(**base | {"all_stable": False}) is None  # an unstable trajectory: go on
    assert trust.stop_reason(**base | {"all_temperatures": False}) is None  # the ladder is not done
    assert trust.stop_reason(**base | {"predicted_rmse": 70.0}) is None
    assert trust.stop_reason(**base | {"predicted_rmse": 70.0, "evaluations": 1000}) == "budget"
    assert trust.stop_reason(**base | {"predicted_rmse": np.nan, "iteration": 4}) == "iterations"
    assert trust.stop_reason(**base | {"predicted_rmse": 70.0, "budget": None, "evaluations": 10**6}) is None
    assert set(trust.ENDINGS) == {"converged", "budget", "iterations"}


def _cfg(**al):
    return config.validate(
        {
            "name": "t",
            "structure": {"n_pairs": 6},
            "aimd": {"temperatures": [300, 500]},
            "active_learning": {"enabled": True, "extra_temperatures": [750, 900], **al},
            # stand-in calculators explore here: the ASE loop runs them (auto would take a
            # DeePMD-kit committee to LAMMPS, which needs a real model file)
            "mlmd": {"engine": "ase"},
        }
    )


def test_temperature_ladder_adds_a_temperature_after_a_stable_iteration():
    cfg = _cfg()
    assert loop.ladder(cfg, None) == [300.0, 500.0]

    def explored(temps, stable):
        return {
            "per_temperature": {f"{t:g}": {"trajectories": 2, "stable_trajectories": 2 if stable else 1} for t in temps}
        }

    assert loop.ladder(cfg, explored([300, 500], True)) == [300.0, 500.0, 750.0]
    assert loop.ladder(cfg, explored([300, 500], False)) == [300.0, 500.0]  # not yet
    assert loop.ladder(cfg, explored([300, 500, 750, 900], True)) == [300.0, 500.0, 750.0, 900.0]
    assert loop.ladder(_cfg(temperature_ladder=False), None) == [300.0, 500.0, 750.0, 900.0]


def test_stability_above_the_aimd_is_reported_not_deciding_unless_required():
    """Above the hottest AIMD the verdict's reference is that run's, which CP2K itself fails
    (the null test at 750 K): an unstable 750 K trajectory neither blocks convergence nor the
    ladder's next rung by default, and does with stability_above_aimd: required."""
    per_t = {
        "300": {"trajectories": 2, "stable_trajectories": 2, "judged": True},
        "500": {"trajectories": 2, "stable_trajectories": 2, "judged": True},
        "750": {"trajectories": 2, "stable_trajectories": 0, "judged": False},
    }
    assert loop.stable_where_judged(per_t, _cfg())
    assert not loop.stable_where_judged(per_t, _cfg(stability_above_aimd="required"))
    assert loop.ladder(_cfg(), {"per_temperature": per_t}) == [300.0, 500.0, 750.0, 900.0]
    assert loop.ladder(_cfg(stability_above_aimd="required"), {"per_temperature": per_t}) == [300.0, 500.0, 750.0]
    # an AIMD temperature always decides
    per_t["500"]["stable_trajectories"] = 1
    assert not loop.stable_where_judged(per_t, _cfg())
    with pytest.raises(config.ConfigError, match="stability_above_aimd"):
        _cfg(stability_above_aimd="ignored")


def test_held_back_labels_are_spread_over_the_pick_order():
    assert loop.held_back(10, 0.2) == [2, 7]
    assert loop.held_back(5, 0.2) == [2]
    assert loop.held_back(5, 0.0) == [] and loop.held_back(0, 0.2) == []


def test_members_see_their_own_subsample_and_as_many_steps_per_frame():
    frames = list(range(100))
    a, b = loop.subsample(frames, 0.8, 1), loop.subsample(frames, 0.8, 1001)
    assert len(a) == len(b) == 80 and a == sorted(a) and a != b
    assert loop.subsample(frames, 1.0, 1) == frames
    cfg = _cfg()
    cfg["backends"]["deepmd"]["steps"] = 1000
    cfg["selection"]["n_train"] = 200
    assert loop.member_params(cfg, 0, 300)["steps"] == 1500  # 1.5x the frames: 1.5x the steps
    assert loop.member_params(cfg, 0, 100)["steps"] == 1000  # never fewer than configured
    assert loop.member_params(cfg, 2, 300)["seed"] == loop.member_params(cfg, 0, 300)["seed"] + 2000
    cfg["active_learning"]["steps_scale"] = "fixed"
    assert loop.member_params(cfg, 0, 300)["steps"] == 1000


def test_warm_start_is_for_deepmd_committees_only():
    assert _cfg(warm_start=True)["active_learning"]["warm_start"]  # the default backend is deepmd
    with pytest.raises(config.ConfigError, match="active_learning.warm_start"):
        config.validate(
            {
                "name": "t",
                "structure": {"n_pairs": 6},
                "backends": {"sevenn": {"enabled": True}},
                "active_learning": {"enabled": True, "backend": "sevenn", "warm_start": True},
            }
        )


def test_label_coverage_checks_the_calibration_on_the_labels_it_bought(tmp_path):
    # two labelled frames: member 0 was off by 0.2 and by 1.0 eV/A on one atom, the committee
    # deviated by 0.1 on both: a scale of 3 covers the first only
    frames = []
    for k, off in enumerate([0.2, 1.0]):
        a = Atoms("CdSe", positions=[[0, 0, 0], [2.6, 0, 0]])
        ref = np.zeros((2, 3))
        a.calc = SinglePointCalculator(a, energy=-1.0, forces=ref)
        pred = ref.copy()
        pred[0, 0] = off
        a.arrays["member0_forces"] = pred
        a.info.update(deviation=0.1, rms_devi_f=0.05, run="al0", step=k)
        frames.append(a)
    dataset.write_frames(tmp_path / "labelled.extxyz", frames)
    out = loop.label_coverage(tmp_path / "labelled.extxyz", scale=3.0, rms_scale=2.0)
    assert out["frames"] == 2 and out["coverage"] == pytest.approx(0.5)
    assert out["predicted_force_rmse_meV_per_A"] == pytest.approx(100.0)
    assert out["true_force_rmse_meV_per_A"] == pytest.approx(1000 * np.sqrt((0.04 / 6 + 1.0 / 6) / 2))


def test_extend_holds_labels_back_for_calibration_and_drops_the_committee_forces(tmp_path):
    base = jiggled(Atoms("CdSe", positions=[[0, 0, 0], [2.6, 0, 0]]), 8, 0.05, seed=2)
    for k, a in enumerate(base):
        a.calc = SinglePointCalculator(a, energy=-1.0 - 0.01 * k, forces=np.zeros((2, 3)))
        a.info.update(run="r", step=k)
    dataset.write_frames(tmp_path / "train.extxyz", base[:3])
    dataset.write_frames(tmp_path / "valid.extxyz", base[3:4])
    for a in base[4:]:
        a.arrays["member0_forces"] = np.ones((2, 3))
    dataset.write_frames(tmp_path / "labelled.extxyz", base[4:])
    n = loop.extend_training_set(
        tmp_path / "train.extxyz",
        tmp_path / "labelled.extxyz",
        tmp_path / "next.extxyz",
        previous_calibration=tmp_path / "valid.extxyz",
        out_calibration=tmp_path / "calib.extxyz",
        holdout_fraction=0.25,
    )
    train, calib = dataset.read_frames(tmp_path / "next.extxyz"), dataset.read_frames(tmp_path / "calib.extxyz")
    assert n == len(train) == 3 + 3 and len(calib) == 1 + 1
    assert not {a.info["step"] for a in train} & {a.info["step"] for a in calib}
    assert all("member0_forces" not in a.arrays for a in train + calib)


def test_one_exploration_calibrates_ladders_and_picks_within_the_budget(tmp_path, monkeypatch):
    """loop.explore end to end with a committee of three Lennard-Jones potentials (epsilons
    0.30, 0.33, 0.36; the labels are those of 0.30): calibration on the validation frames,
    the adaptive lower level, the ladder's first rung, the stop rule and the CP2K budget."""
    from ase.calculators.lj import LennardJones

    from qdff.structure.build import cut_cluster

    def lj(eps):
        return LennardJones(sigma=2.3, epsilon=eps, rc=8.0, smooth=True)

    frames = []
    for k, a in enumerate(jiggled(cut_cluster("CdSe", "zincblende", 6), 22, 0.08, seed=3)):
        a.calc = lj(0.30)
        e, f = a.get_potential_energy(), a.get_forces()
        a.calc = SinglePointCalculator(a, energy=e, forces=f)
        a.info.update(temperature=300.0 if k % 2 else 500.0, run=f"aimd{k % 2}", step=k)
        frames.append(a)
    dataset.write_frames(tmp_path / "train.extxyz", frames[:12])
    dataset.write_frames(tmp_path / "valid.extxyz", frames[12:])  # 10
    committee = [lj(e) for e in (0.30, 0.33, 0.36)]
    monkeypatch.setattr(loop, "_calculators", lambda dirs: committee)
    cfg = _cfg(
        explore_steps=40, record_every=10, trajectories_per_temperature=1, max_labels=6, max_cp2k_evaluations=1003
    )
    cfg["mlmd"]["bond_check"] = False
    files = [tmp_path / f for f in ("dev.csv", "cand.extxyz", "explore.json")]
    out = loop.explore(
        cfg,
        0,
        [tmp_path / "m0"] * 3,
        tmp_path / "train.extxyz",
        tmp_path / "valid.extxyz",
        *files,
        evaluations_before=1000,
    )
    assert out["temperatures"] == [300.0, 500.0] and not out["all_temperatures"]  # the ladder's first rung
    # 10 validation frames: enough for a finite conformal scale at the 90 % level (9 at least)
    assert out["calibration"]["frames"] == 10 and 0 < out["calibration"]["scale"] < np.inf
    assert out["trust_lo"] == pytest.approx(out["trust_lo_error"] / out["calibration"]["scale"])
    assert out["stop_reason"] is None and not out["last_iteration"]
    assert out["picked"] <= 3  # the budget leaves 3 CP2K evaluations
    picked = loop.read_xyz_frames(files[1], labelled=False)
    assert len(picked) == out["picked"] and all(a.arrays["member0_forces"].shape == (len(a), 3) for a in picked)
    # the budget is spent: the loop ends without labels
    out = loop.explore(
        cfg,
        1,
        [tmp_path / "m0"] * 3,
        tmp_path / "train.extxyz",
        tmp_path / "valid.extxyz",
        *files,
        previous_summary=files[2],
        evaluations_before=1003,
    )
    assert out["stop_reason"] == "budget" and out["picked"] == 0 and out["last_iteration"]


def test_report_section_shows_calibration_trust_levels_and_the_stop_reason():
    from qdff.report.render import _env

    cal = {"scale": 4.53, "level": 0.9, "frames": 20, "coverage_holdout": 1.0, "spearman": 0.82, "rms_scale": 3.3}
    row = {
        "iteration": 0,
        "train_frames": 100,
        "cp2k_evaluations_before": 1000,
        "labels_requested": 50,
        "labels_added": 50,
        "labels_scf_failed": 0,
        "picked_before_failure": 3,
        "picked_beyond": 0,
        "temperatures": [300.0, 500.0],
        "calibration": cal,
        "label_check": {
            "frames": 50,
            "coverage": 0.62,
            "predicted_force_rmse_meV_per_A": 150.0,
            "true_force_rmse_meV_per_A": 190.0,
        },
        "trust_lo": 0.134,
        "trust_hi": 0.6,
        "trust_lo_error": 0.606,
        "trust_hi_error": 2.72,
        "accurate_fraction": 0.345,
        "candidate_fraction": 0.655,
        "beyond_fraction": 0.0,
        "failed_fraction": 0.0,
        "per_temperature": {"300": {"accurate_fraction": 0.4, "stable_trajectories": 1, "trajectories": 2}},
        "predicted_force_rmse_meV_per_A": 157.3,
        "target_force_rmse_meV_per_A": 83.4,
        "force_rmse_meV_per_A": 140.0,
        "force_rmse_by_T": {"300K": 120.0},
        "energy_rmse_meV_per_atom": 3.0,
        "stop_reason": "budget",
        "labels_learnt": {
            "frames": 50,
            "trained_on": 40,
            "held_back": 10,
            "force_rmse_before_meV_per_A": 92.0,
            "force_rmse_trained_on_meV_per_A": 89.0,
            "force_rmse_held_back_meV_per_A": 89.4,
            "learnt": False,
        },
    }
    al = {
        "members": 4,
        "backend": "deepmd",
        "subsample": 0.8,
        "trust_levels": "adaptive",
        "aimd_steps": 1000,
        "cp2k_evaluations_total": 1200,
        "converged": False,
        "stop_reason": "budget",
        "stop_reason_text": trust.ENDINGS["budget"],
        "final_iteration": 0,
        "seed": None,
        "iterations": [row],
    }
    html = (
        _env()
        .get_template("active_learning_section.html.j2")
        .render(al=al, al_plot=None, al_calibration=[], level_of_theory="GFN1-xTB")
    )
    assert "each on its own 80 % subsample" in html and "the CP2K budget" in html
    assert "4.53 (90 %, 20 frames); 100 % / 62 % of 50" in html  # scale, held-out and label coverage
    assert "0.134 (0.61) / 0.600 (2.72)" in html  # trust levels as deviation and calibrated error
    assert "157.3 / 83.4 / 140.0" in html and "predicted 150.0, true 190.0" in html
    assert "3 before a failure" in html and "<td>budget</td>" in html
    assert "92.0 before, now 89.0 trained on (40) / 89.4 held back (10) <b>not learnt</b>" in html


def test_labels_learnt_tells_a_model_that_fits_its_labels_from_one_that_cannot(tmp_path):
    # ten labels of zero force; member 0 before them was off by 0.1 eV/A on every component
    frames = jiggled(Atoms("CdSe", positions=[[0, 0, 0], [2.6, 0, 0]]), 10, 0.05, seed=3)
    for k, a in enumerate(frames):
        a.calc = SinglePointCalculator(a, energy=-1.0, forces=np.zeros((2, 3)))
        a.info.update(run="r", step=k)
        a.arrays["member0_forces"] = np.full((2, 3), 0.1)
    dataset.write_frames(tmp_path / "labelled.extxyz", frames)
    held = loop.held_back(10, 0.2)
    assert len(held) == 2
    # learnt: 0.01 eV/A on the labels it trained on, 0.08 on those held back
    after = np.array([np.full((2, 3), 0.08 if k in held else 0.01) for k in range(10)])
    r = loop.labels_learnt(loop.read_xyz_frames(tmp_path / "labelled.extxyz"), after, 0.2)
    assert (r["frames"], r["trained_on"], r["held_back"]) == (10, 8, 2)
    assert r["force_rmse_before_meV_per_A"] == pytest.approx(100.0)
    assert r["force_rmse_trained_on_meV_per_A"] == pytest.approx(10.0)
    assert r["force_rmse_held_back_meV_per_A"] == pytest.approx(80.0)
    assert r["learnt"]
    # not learnt: as far off on the labels it trained on as on those it never saw
    r = loop.labels_learnt(loop.read_xyz_frames(tmp_path / "labelled.extxyz"), np.full((10, 2, 3), 0.09), 0.2)
    assert r["force_rmse_trained_on_meV_per_A"] == pytest.approx(r["force_rmse_held_back_meV_per_A"])
    assert not r["learnt"]
