"""The report's recommendation (qdff.validation.recommend) on hand-made metrics rows."""

from __future__ import annotations

from qdff.validation.recommend import check_row, recommend


def _run(T, seeds=3, unstable=0):
    return {
        "temperature": T,
        "stress": False,
        "stable": unstable == 0,
        "seeds": list(range(seeds)),
        "unstable_seeds": unstable,
    }


def _row(backend, f, *, stable=True, outside=(), useful=True, unstable_at_500=0):
    return {
        "backend": backend,
        "force_rmse_meV_per_A": f,
        "baseline_zero_force_rmse_meV_per_A": 350.0,
        "energy_useful_T_300K": useful,
        "energy_useful_T_500K": True,
        "mlmd_stable": stable and not unstable_at_500,
        "mlmd_per_temperature": [_run(300), _run(500, unstable=unstable_at_500)],
        "pair_distance_outside": list(outside),
        "mlmd_seconds_per_step": 0.1,
    }


def _reference(stable=True, outside=()):
    row = _row("reference", None, stable=stable, outside=outside)
    for k in (
        "force_rmse_meV_per_A",
        "baseline_zero_force_rmse_meV_per_A",
        "energy_useful_T_300K",
        "energy_useful_T_500K",
    ):
        row.pop(k)
    row["reference"] = True
    return row


def test_lowest_force_error_among_the_models_that_pass_every_check():
    rows = [
        _row("deepmd", 90.0),
        _row("sevenn", 40.0, unstable_at_500=1),  # most accurate, but one seed fails at 500 K
        _row("nequip", 60.0),
        _reference(),
    ]
    rec = recommend(rows)
    assert rec["recommended"] == "nequip"
    assert rec["broken"] == []
    by = {m["backend"]: m for m in rec["models"]}
    assert not by["sevenn"]["passes"] and by["sevenn"]["checks"]["stability"] is False
    assert "2/3 at 500 K" in by["sevenn"]["stability_text"]
    assert "nequip" in rec["sentence"] and "null test" in rec["sentence"]
    assert "reference" not in by


def test_each_check_fails_a_model_for_its_own_reason():
    assert check_row(_row("a", 400.0))["checks"]["forces"] is False
    assert check_row(_row("a", 50.0, useful=False))["reasons"]["energies"].endswith("300 K")
    assert check_row(_row("a", 50.0, outside=["Cd-Se 300 K"]))["checks"]["pair distances"] is False
    assert all(check_row(_row("a", 50.0))["checks"].values())


def test_a_check_the_reference_fails_is_broken_and_held_against_no_model():
    rows = [_row("deepmd", 90.0, outside=["Cd-Cd 500 K"]), _reference(outside=["Cd-Cd 500 K"])]
    rec = recommend(rows)
    assert rec["broken"] == ["pair distances"]
    assert rec["recommended"] == "deepmd"
    assert "broken" in rec["sentence"]


def test_a_model_without_ml_md_is_not_validated_and_none_passing_says_why():
    zero = _row("sevennet0", 300.0)
    for k in ("mlmd_stable", "mlmd_per_temperature", "pair_distance_outside"):
        zero.pop(k)
    rows = [zero, _row("deepmd", 90.0, stable=False)]
    rec = recommend(rows, zero_shot={"sevennet0"})
    assert rec["recommended"] is None
    by = {m["backend"]: m for m in rec["models"]}
    assert by["sevennet0"]["zero_shot"] and by["sevennet0"]["not_run"] == ["stability", "pair distances"]
    assert "No model passes" in rec["sentence"] and "deepmd: unstable" in rec["sentence"]


def test_the_mean_over_training_seeds_decides():
    a, b = _row("deepmd", 50.0), _row("nequip", 60.0)
    a["force_rmse_meV_per_A_mean"], b["force_rmse_meV_per_A_mean"] = 70.0, 61.0
    assert recommend([a, b])["recommended"] == "nequip"


def test_the_report_opens_with_the_recommendation(tmp_path):
    from qdff import config
    from qdff.report import render as report

    png = tmp_path / "aimd.png"
    report.aimd_overview_plot({}, png)
    rows = [_row("deepmd", 90.0), _row("sevenn", 40.0), _reference()]
    rows[1]["force_rmse_meV_per_A_mean"], rows[1]["force_rmse_meV_per_A_std"], rows[1]["n_models"] = 41.0, 2.5, 3
    report.render_report(
        config.validate({"name": "x", "structure": {}}),
        aimd_plot=png,
        aimd_summaries=[],
        selection={"method": "fps", "test_fraction": 0.2},
        metrics=rows,
        parity_plots={},
        models={},
        out_path=tmp_path / "report.html",
    )
    html = (tmp_path / "report.html").read_text()
    first = html[html.index('<h2 id="summary">') : html.index('<h2 id="comparison">')]
    assert "Use sevenn" in first and "41.0 ± 2.5" in first
    assert '<tr class="recommended"><td><b>sevenn (recommended)</b>' in first
    assert "reference (CP2K itself: the null test)" in first and "the null test passes" in first
    assert "12% of zero force" in first  # 41 of 350
