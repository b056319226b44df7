"""The report's context lines and figure grids (qdff.report.render, qdff.validation.evaluate, qdff.report.plotgrid)."""

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from qdff.report import render as report
from qdff.report.plotgrid import grid
from qdff.validation import evaluate


def _frame(e_per_atom, fmax):
    a = Atoms("Cd2", positions=[[0, 0, 0], [2.5, 0, 0]])
    a.calc = SinglePointCalculator(a, energy=2 * e_per_atom, forces=np.array([[fmax, 0, 0], [-fmax, 0, 0]]))
    return a


def test_held_out_frames_beyond_the_training_range_are_counted():
    train = [_frame(-1.00, 0.5), _frame(-0.99, 0.3)]
    test = [_frame(-0.995, 0.1), _frame(-0.98, 0.7), _frame(-1.02, 0.2)]
    out = evaluate.outside_training_range(test, evaluate.training_range(train))
    assert out["test_energy_outside_training_fraction"] == 2 / 3
    assert abs(out["test_energy_above_training_meV_per_atom"] - 10.0) < 1e-9
    assert abs(out["test_energy_below_training_meV_per_atom"] - 20.0) < 1e-9
    # force components: 6 per frame, 18 in all; only +-0.7 lie beyond [-0.5, 0.5]
    assert out["test_force_outside_training_fraction"] == 2 / 18


def test_offset_note_only_when_the_error_is_mostly_a_constant():
    offset = {
        "backend": "a",
        "energy_mean_signed_error_meV_per_atom": 5.8,
        "energy_rmse_meV_per_atom": 6.0,
        "energy_mae_meV_per_atom": 5.9,
    }
    spread = {
        "backend": "b",
        "energy_mean_signed_error_meV_per_atom": 0.5,
        "energy_rmse_meV_per_atom": 6.0,
        "energy_mae_meV_per_atom": 4.0,
    }
    notes = report.metric_notes([offset, spread])
    assert len(notes) == 1 and notes[0].startswith("a: the energy error is mostly one constant offset")
    ahead = {**spread, "test_energy_outside_training_fraction": 0.5, "test_energy_above_training_meV_per_atom": 6.0}
    assert "50% of the held-out frames lie outside" in report.metric_notes([ahead])[0]


def test_grid_wraps_at_three_panels_per_row():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = grid(plt, 7)
    shape = fig.axes[0].get_gridspec().get_geometry()
    assert shape == (3, 3) and len(axes) == 7 and all(ax.get_visible() for ax in axes)
    assert sum(ax.get_visible() for ax in fig.axes) == 7
    plt.close(fig)


def test_the_model_row_says_trained_fine_tuned_or_zero_shot():
    assert report.model_kind({"backend": "deepmd", "provenance": {}}) == "trained on this data set"
    assert (
        report.model_kind({"backend": "sevenn", "provenance": {"mode": "fine-tuned", "foundation": "7net-0"}})
        == "fine-tuned on this data set from 7net-0"
    )
    assert (
        report.model_kind({"backend": "mace", "provenance": {"foundation_model": "/data/mace-mp-0-medium.model"}})
        == "fine-tuned on this data set from mace-mp-0-medium.model"
    )
    assert (
        report.model_kind({"backend": "sevenn", "provenance": {"mode": "from scratch", "foundation": None}})
        == "trained on this data set"
    )
    assert (
        report.model_kind(
            {"backend": "chgnet", "kind": "zero-shot", "label": "CHGNet 0.3.0", "trained_on": "PBE/PBE+U (MPtrj)"}
        )
        == "zero-shot: CHGNet 0.3.0, trained on PBE/PBE+U (MPtrj); not trained here"
    )


def test_energy_table_per_temperature_with_its_baseline_and_verdict():
    m = {
        "backend": "deepmd",
        "n_frames_T_600K": 40,
        "energy_rmse_meV_per_atom_T_600K": 9.0,
        "energy_mean_signed_error_meV_per_atom_T_600K": -8.0,
        "energy_error_std_meV_per_atom_T_600K": 4.12,
        "baseline_mean_energy_rmse_meV_per_atom_T_600K": 3.5,
        "energy_useful_T_600K": False,
        "n_frames_T_300K": 40,
        "energy_rmse_meV_per_atom_T_300K": 2.0,
        "energy_mean_signed_error_meV_per_atom_T_300K": 1.0,
        "energy_error_std_meV_per_atom_T_300K": 1.73,
        "baseline_mean_energy_rmse_meV_per_atom_T_300K": 2.1,
        "energy_useful_T_300K": True,
    }
    cols, rows = report.energy_table([m])
    assert (
        cols[5] == "E error std, mean offset removed [meV/atom]" and cols[6] == "mean-energy baseline at T [meV/atom]"
    )
    # 300 K before 600 K (numeric order), every number labelled by its column
    assert rows == [
        ["deepmd", "300 K", "40", "2.00", "+1.00", "1.73", "2.10", "useful"],
        ["deepmd", "600 K", "40", "9.00", "-8.00", "4.12", "3.50", "NOT useful"],
    ]
    assert report.energy_verdict(m) == "300 K: useful; 600 K: NOT useful"
    assert report.energy_verdict({"backend": "x"}) is None
    labels = {k: label for k, label, _ in report.METRIC_COLUMNS}
    assert labels["energy_error_std_meV_per_atom"] == "E error std, mean offset removed [meV/atom]"
    assert "one mean over all temperatures" in labels["baseline_mean_energy_rmse_meV_per_atom"]


def test_the_mlmd_table_gives_the_failure_rate_interval_of_its_seeds():
    """k of n seeds is a rate measured on n runs: the table says how loosely n bounds it."""
    from qdff.report.render import mlmd_rows
    from qdff.validation.stability import episode_rate_interval, failure_rate_interval

    per_t = [
        {"temperature": 300.0, "stable": True, "seeds": [3, 4, 5], "unstable_seeds": 0},
        {
            "temperature": 450.0,
            "stable": False,
            "reason": "2 of 6 seeds: ...",
            "seeds": list(range(6)),
            "unstable_seeds": 2,
        },
        {"temperature": 600.0, "stable": False, "reason": "...", "seeds": [1]},  # no count recorded: the verdict's
    ]
    # every episode below the coordination floor over all seeds' time: a rate with its Poisson interval
    per_t[1].update(below_floor_episodes=3, below_floor_observed_fs=9800.0)
    rows = mlmd_rows([{"backend": "deepmd", "mlmd_per_temperature": per_t}])
    assert [r[3] for r in rows] == [
        "3: 0 unstable (failure rate 0-71 %, 95 % CI)",
        "6: 2 unstable (failure rate 4-78 %, 95 % CI); below the floor 3 times in 9.8 ps (0.06-0.89 per ps, 95 % CI)",
        "1: 1 unstable (failure rate 3-100 %, 95 % CI)",
    ]
    # the exact interval covers the observed rate and widens as seeds get fewer
    lo, hi = failure_rate_interval(2, 6)
    assert lo < 2 / 6 < hi
    assert failure_rate_interval(0, 10)[1] < failure_rate_interval(0, 3)[1]
    lo, hi = episode_rate_interval(3, 9.8)
    assert lo < 3 / 9.8 < hi and episode_rate_interval(0, 2.0)[0] == 0.0
    assert episode_rate_interval(0, 10.0)[1] < episode_rate_interval(0, 2.0)[1]
