"""The report's interactive figures (qdff.report.interactive): what each Plotly specification holds."""

import json

import numpy as np

from qdff.report import interactive
from qdff.validation import mlmd


def test_mlmd_series_are_thinned_evenly_and_keep_the_last_point():
    times = list(np.arange(1, 5001) * 0.5)
    s = mlmd.series(times, [300.0] * 5000, list(np.linspace(-10, -9, 5000)), max_points=100)
    assert len(s["time_fs"]) == 100 and s["time_fs"][0] == 0.5 and s["time_fs"][-1] == 2500.0
    assert s["epot_eV"][-1] == -9.0
    assert mlmd.series([], [], []) == {"time_fs": [], "temperature_K": [], "epot_eV": []}


def test_mlmd_figure_has_one_line_per_temperature_and_seed_relative_to_its_start():
    run = {"seed": 1, "series": {"time_fs": [1.0, 2.0], "temperature_K": [290.0, 310.0], "epot_eV": [-5.0, -4.5]}}
    summaries = {"300K": {"runs": [run, {**run, "seed": 2}]}, "600K": {"runs": [{**run, "series": None}]}}
    series = interactive.mlmd_series(summaries)
    assert list(series) == ["300K, seed 1", "300K, seed 2"]  # a run without a series is left out
    fig = interactive.time_series_figure(series, "t")
    temps = [d for d in fig["data"] if d["yaxis"] == "y"]
    pots = [d for d in fig["data"] if d["yaxis"] == "y2"]
    assert len(temps) == len(pots) == 2 and pots[0]["y"] == [0.0, 0.5]
    json.dumps(fig)


def test_learning_curve_figure_has_both_metrics_per_method_on_log_axes():
    rows = [
        {"method": m, "n_train": str(n), "force_rmse_meV_per_A": str(100 / n), "energy_rmse_meV_per_atom": str(1 / n)}
        for m in ("fps", "random")
        for n in (10, 40, 20)
    ]
    fig = interactive.learning_curve_figure(rows, {"target_error": 5.0, "target_n": 20})
    assert [d["name"] for d in fig["data"]] == ["fps", "fps", "random", "random"]
    assert fig["data"][0]["x"] == [10, 20, 40] and fig["data"][0]["y"] == [10.0, 5.0, 2.5]  # sorted by frames
    assert fig["layout"]["xaxis"]["type"] == fig["layout"]["yaxis2"]["type"] == "log"
    assert fig["layout"]["shapes"][0]["y0"] == 5.0
    json.dumps(fig)


def test_map_figure_has_a_trace_per_role_and_a_hover_text_per_point():
    rng = np.random.default_rng(0)
    role = np.array(["pool"] * 6 + ["train"] * 3 + ["test"] * 2)
    keys = [("r0", i) for i in range(len(role))]
    fig = interactive.map_figure(
        rng.normal(size=(len(role), 2)),
        np.full(len(role), 300.0),
        "temperature (K)",
        role,
        np.array([0] * 10 + [-1]),
        keys,
        [300.0] * len(role),
        "map",
    )
    names = {d["name"]: d for d in fig["data"]}
    assert set(names) == {"other frames", "training", "held-out (test)"}
    assert len(names["training"]["x"]) == 3 and names["training"]["marker"]["symbol"] == "circle"
    assert names["held-out (test)"]["text"][-1] == "run r0, step 10, 300 K, test, noise"
    assert sum(len(d["x"]) for d in fig["data"]) == len(role)
    json.dumps(fig)
