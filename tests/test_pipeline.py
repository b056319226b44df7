"""End to end: the real pipeline (real CP2K xTB, real DeePMD-kit) on tests/configs/tiny.yaml."""

import json
import re

import pytest
from conftest import ROOT, snakemake

pytestmark = pytest.mark.slow

DECLARED = [
    "results/tiny/structure.extxyz",
    "results/tiny/relax/relaxed.extxyz",
    "results/tiny/aimd/300K/md.inp",
    "results/tiny/aimd/300K/run.json",
    "results/tiny/aimd/600K/run.json",
    "results/tiny/dataset/frames.extxyz",
    "results/tiny/dataset/conversion.json",
    "results/tiny/split/train.extxyz",
    "results/tiny/split/valid.extxyz",
    "results/tiny/split/test.extxyz",
    "results/tiny/split/selection.json",
    "results/tiny/models/deepmd/model.json",
    "results/tiny/models/deepmd/model.pth",
    "results/tiny/models/deepmd/model-compressed.pth",  # backends.deepmd.compress (default): model_file
    "results/tiny/evaluation/deepmd/metrics.json",
    "results/tiny/evaluation/deepmd/parity.png",
    "results/tiny/evaluation/metrics.csv",
    "results/tiny/mlmd/deepmd/300K/summary.json",
    "results/tiny/mlmd/deepmd/600K/trajectory.extxyz",
    "results/tiny/evaluation/deepmd/errors.png",
    "results/tiny/validation/deepmd/300K/rdf.json",
    "results/tiny/validation/deepmd/600K/rdf.png",
    "results/tiny/report.html",
    # the zero-shot baseline (baselines' default), through the same rules as the model
    "results/tiny/models/sevennet0/model.json",
    "results/tiny/evaluation/sevennet0/metrics.json",
    "results/tiny/mlmd/sevennet0/300K/summary.json",
    "results/tiny/validation/sevennet0/600K/rdf.json",
    "results/tiny/vibrations/sevennet0/modes.json",
    "results/index.html",
]


def test_every_declared_output_exists(tiny_pipeline):
    work = tiny_pipeline["workdir"]
    missing = [p for p in DECLARED if not (work / p).is_file() or (work / p).stat().st_size == 0]
    assert not missing
    # every rule left a log and a benchmark
    for rule in (
        "build_structure",
        "relax_structure",
        "run_aimd",
        "convert_trajectory",
        "select_frames",
        "train_model",
        "evaluate_model",
        "run_mlmd",
        "run_reference_md",
        "compare_rdfs",
        "collect_metrics",
        "render_report",
    ):
        assert list((work / "logs" / rule).glob("*.log")), rule
        assert list((work / "results/benchmarks" / rule).glob("*.tsv")), rule


def test_model_beats_zero_force_baseline_on_held_out_frames(tiny_pipeline):
    m = json.loads((tiny_pipeline["workdir"] / "results/tiny/evaluation/deepmd/metrics.json").read_text())
    assert m["n_frames"] >= 40
    # measured ratios: 0.47-0.63 over DeePMD seeds 1-5 on one AIMD data set, 0.72 on another
    # (the chaotic tiny MD differs between machines), with the old split whose pool ran up to
    # 5 frames before the test block; with the time-block split (pool | 10 fs | validation |
    # 10 fs | test) 200-step runs left a 110 fs pool and gave 0.91, 400-step runs give 0.67.
    # 0.85 leaves a margin above the worst
    assert m["force_rmse_meV_per_A"] < 0.85 * m["baseline_zero_force_rmse_meV_per_A"], m


def test_mlmd_verdict_in_metrics_and_report(tiny_pipeline):
    work = tiny_pipeline["workdir"]
    summary = json.loads((work / "results/tiny/mlmd/deepmd/300K/summary.json").read_text())
    assert isinstance(summary["stable"], bool) and summary["steps_run"] > 0
    assert summary["stable"] or summary["reason"]
    row = json.loads((work / "results/tiny/evaluation/metrics.json").read_text())[0]
    assert "300 K:" in row["mlmd_verdicts"] and "600 K:" in row["mlmd_verdicts"]
    html = (work / "results/tiny/report.html").read_text()
    assert "ML-MD stability" in html
    # the criterion the run was judged by (mlmd.bond_criterion, default undercoordinated) is the one described
    assert "fewer neighbours within the break distances than any atom of its element" in html
    assert "a bond of the start frame stays beyond its break distance" not in html


def test_validation_metrics_rdf_sites_speed(tiny_pipeline):
    work = tiny_pipeline["workdir"]
    row = json.loads((work / "results/tiny/evaluation/metrics.json").read_text())[0]
    # Cd6Se6 has no atom with bulk (4-fold) coordination: all surface
    assert row["atom_fraction_site_surface"] == 1.0 and "force_rmse_meV_per_A_site_core" not in row
    assert row["force_rmse_meV_per_A_T_300K"] > 0 and row["force_rmse_meV_per_A_T_600K"] > 0
    rdf = json.loads((work / "results/tiny/validation/deepmd/300K/rdf.json").read_text())
    assert set(rdf["overlap"]) == {"Cd-Cd", "Cd-Se", "Se-Se"}
    assert all(0.0 <= v <= 1.0 for v in rdf["overlap"].values())
    assert row["pair_distance_overlap_min"] <= min(rdf["overlap"].values())
    # ML-MD of a 12-atom cluster is faster than CP2K xTB steps of the same cluster
    assert row["speedup_vs_cp2k"] > 1.0
    html = (work / "results/tiny/report.html").read_text()
    for section in (
        'id="breakdown"',
        'id="speed"',
        'id="mlmd"',
        "pair-distance overlap",
        'alt="pair-distance distributions deepmd 600K"',
        "ML-MD against CP2K GFN1-xTB",
    ):
        assert section in html


def test_vibrations_section(tiny_pipeline):
    """tiny.yaml switches the vibrations rules on: CP2K's modes, the model's against them,
    ML relaxations and VDOS, and the report's section shows the same numbers."""
    vib = tiny_pipeline["workdir"] / "results/tiny/vibrations"
    cp2k = json.loads((vib / "cp2k/modes.json").read_text())
    assert cp2k["relax_converged"] and len(cp2k["frequencies_cm1"]) == 3 * 12 - 6  # free cluster: 3N - 6
    modes = json.loads((vib / "deepmd/modes.json").read_text())
    c = modes["comparison"]
    assert c["n_modes"] == 30 and 0.0 < c["frequency_mae_cm1"] <= c["frequency_max_error_cm1"]
    relax = json.loads((vib / "deepmd/relax.json").read_text())
    assert len(relax["runs"]) == 2 and relax["rmsd_A"] >= 0.0
    vdos = json.loads((vib / "deepmd/300K/vdos.json").read_text())
    assert set(vdos["overlap"]) == {"all", "Cd", "Se"} and set(vdos["aimd_self_overlap"]) == set(vdos["overlap"])
    assert all(0.0 <= x <= 1.0 for x in [*vdos["overlap"].values(), *vdos["aimd_self_overlap"].values()])
    html = (tiny_pipeline["workdir"] / "results/tiny/report.html").read_text()
    table = html[html.index('id="vib-modes"') :]
    table = table[: table.index("</table>")]
    assert f"<td>{c['frequency_mae_cm1']:.1f}</td>" in table
    relax_table = html[html.index('id="vib-relax"') :]
    assert f"<td>{relax['rmsd_A']:.3f}</td>" in relax_table[: relax_table.index("</table>")]
    vdos_table = html[html.index('id="vib-vdos"') :]
    assert (
        f"all {vdos['overlap']['all']:.2f} ({vdos['aimd_self_overlap']['all']:.2f})"
        in vdos_table[: vdos_table.index("</table>")]
    )
    assert 'alt="normal-mode spectra, CP2K and each model"' in html and 'alt="VDOS deepmd 600K"' in html
    # tiny.yaml's 200 ML steps give a lag of 50 fs, a 333 cm^-1 resolution: the report warns
    assert vdos["aimd"]["resolution_cm1"] > 300 and 'id="vdos-coarse"' in html


def test_zero_shot_baseline_is_evaluated_like_the_models(tiny_pipeline):
    """SevenNet-0 as shipped: its shift fitted on the training frames only, its errors on the
    same held-out frames as DeePMD's, and the report names it zero-shot with its training level."""
    work = tiny_pipeline["workdir"]
    meta = json.loads((work / "results/tiny/models/sevennet0/model.json").read_text())
    assert meta["kind"] == "zero-shot" and set(meta["reference_energies"]) == {"Cd", "Se"}
    from qdff.training.backends.common import file_sha256

    assert meta["provenance"]["checkpoint_sha256"] == file_sha256(work / "results/tiny/models/sevennet0/checkpoint.pth")
    rows = {r["backend"]: r for r in json.loads((work / "results/tiny/evaluation/metrics.json").read_text())}
    assert rows["sevennet0"]["n_frames"] == rows["deepmd"]["n_frames"]
    assert (
        rows["sevennet0"]["baseline_zero_force_rmse_meV_per_A"] == rows["deepmd"]["baseline_zero_force_rmse_meV_per_A"]
    )
    assert rows["sevennet0"]["force_rmse_meV_per_A"] > 0
    html = (work / "results/tiny/report.html").read_text()
    assert 'id="zero-shot-note"' in html and "the data are not PBE" in html
    assert "zero-shot: SevenNet-0 (11Jul2024), trained on PBE/PBE+U" in html


def test_snakemake_report_builds(tiny_pipeline):
    work = tiny_pipeline["workdir"]
    snakemake(work, "--report", str(work / "snakemake-report.zip"))
    import zipfile

    names = zipfile.ZipFile(work / "snakemake-report.zip").namelist()
    assert any(n.endswith("parity.png") for n in names) and any(n.endswith("rdf.png") for n in names)


def test_held_out_frames_are_not_in_training(tiny_pipeline):
    sel = json.loads((tiny_pipeline["workdir"] / "results/tiny/split/selection.json").read_text())
    train = {tuple(x) for x in sel["train_steps"]}
    test = {tuple(x) for x in sel["test_steps"]}
    assert not train & test
    for run in ("300K", "600K"):
        assert max(s for r, s in train if r == run) < min(s for r, s in test if r == run)


def test_aimd_progress_is_logged(tiny_pipeline):
    log = (tiny_pipeline["workdir"] / "logs/run_aimd/tiny_300K.log").read_text()
    assert re.search(r"MD step \d+/400, [\d.]+ s/step, T=\d+ K, ETA \d+ s", log)


def test_report_says_level_of_theory_and_has_metrics(tiny_pipeline):
    html = (tiny_pipeline["workdir"] / "results/tiny/report.html").read_text()
    assert "GFN1-xTB" in html
    assert 'id="metrics"' in html and '<th class="backend">deepmd</th>' in html
    # the first screen: which model to use, every check per model, the reference as the null test
    first = html[html.index('<h2 id="summary">') : html.index('<h2 id="comparison">')]
    assert 'id="recommendation"' in first and "reference (CP2K itself: the null test)" in first
    assert "time blocks)" in first  # the held-out force RMSE's interval
    assert html.count("data:image/png;base64,") >= 2
    # self-contained: nothing loaded from the network (an SVG namespace URI is not a fetch); the
    # markup is checked without the embedded plotly.js, whose strings name plotly's web pages
    # (that nothing is fetched at run time is the browser test's, with the network blocked)
    markup = re.sub(r"<script>.*?</script>", "", html, flags=re.S)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", markup)
    assert "<script src" not in html and "@import" not in markup
    # keys tiny.yaml leaves out take the schema defaults, not the demo config's values
    assert "Demo: Cd16Se13Cl6" not in html
    index = (tiny_pipeline["workdir"] / "results/index.html").read_text()
    assert 'href="tiny/report.html"' in index
    # the cross-system index: composition, level of theory, best trained backend, the zero-shot one apart
    assert "Cd6Se6 (12 atoms, CdSe)" in index and "GFN1-xTB" in index
    assert "F RMSE [meV/Å]: deepmd" in index and "sevennet0 F RMSE" in index


def test_second_run_has_nothing_to_do(tiny_pipeline):
    proc = snakemake(tiny_pipeline["workdir"], "--profile", str(ROOT / "profiles/local"), "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_the_reference_runs_as_a_model_and_passes_the_stability_checks(tiny_pipeline):
    """The null test end to end (mlmd.reference auto: on at xtb): CP2K's own MD under the ML-MD
    protocol, at every ML-MD temperature including the stress one, judged stable in every seed,
    and a column of the metrics table and the report."""
    work = tiny_pipeline["workdir"]
    for T in ("300K", "600K", "900K"):
        s = json.loads((work / f"results/tiny/mlmd/reference/{T}/summary.json").read_text())
        assert s["engine"] == "cp2k" and len(s["seeds"]) == 2
        assert s["stable"], f"the reference is UNSTABLE at {T}: {s['reason']}"
    rows = json.loads((work / "results/tiny/evaluation/metrics.json").read_text())
    ref = next(r for r in rows if r["backend"] == "reference")
    assert ref["mlmd_stable"] and "force_rmse_meV_per_A" not in ref
    assert (work / "results/tiny/validation/reference/300K/rdf.json").is_file()
    html = (work / "results/tiny/report.html").read_text()
    assert 'id="reference-note"' in html and "CP2K MD under the ML-MD protocol" in html
