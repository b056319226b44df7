"""Descriptors, FPS/k-means/DBSCAN selection, the configuration map and the learning-curve
summary, on small synthetic clusters (no CP2K, no training)."""

import json
import os
import subprocess

import numpy as np
import pytest
import yaml
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from conftest import BIN, ROOT

from qdff import config
from qdff.data import dataset
from qdff.selection import confmap, descriptors, learning_curve
from qdff.selection import frames as selection
from qdff.steps import select

SOAP = {
    "kind": "soap",
    "soap": {"r_cut": 4.0, "n_max": 2, "l_max": 2, "sigma": 0.5},
    "distances": {"r_max": 6.0, "bins": 8},
}
DIST = dict(SOAP, kind="distances")


def sel_config(**over) -> dict:
    """A full ``selection`` block: schema defaults with ``over`` on top."""
    # the synthetic runs here are tens of fs long: gaps below the config check's floor
    return config.validate({"name": "t", "structure": {}, "selection": {"allow_short_gap": True, **over}})["selection"]


def cluster_frames(runs=(("300K", 300.0, 0.05), ("600K", 600.0, 0.25)), n=40, seed=0):
    """Cd3Se3 ring-ish clusters vibrating around one geometry; hotter runs move more."""
    rng = np.random.default_rng(seed)
    base = np.array([[0, 0, 0], [2.6, 0, 0], [3.9, 2.2, 0], [2.6, 4.4, 0], [0, 4.4, 0], [-1.3, 2.2, 0]], float)
    frames = []
    for run, t, amp in runs:
        for step in range(n):
            a = Atoms("CdSeCdSeCdSe", positions=base + rng.normal(scale=amp, size=base.shape))
            f = rng.normal(size=(6, 3)) * (1 + (t > 400))
            a.calc = SinglePointCalculator(a, energy=-10.0 + rng.normal(), forces=f)
            a.info.update(run=run, step=step, time=float(step), temperature=t)
            frames.append(a)
    return frames


# --- FPS ---------------------------------------------------------------------------------

SQUARE = np.array([[0, 0], [1, 0], [0, 1], [1, 1], [0.5, 0.5], [0.1, 0]], float)


def test_fps_picks_the_known_answer():
    # from a corner: the opposite corner, then the two others (tie: lower index), then the centre
    assert selection.fps(SQUARE, 5, start=0) == [0, 3, 1, 2, 4]
    # default start: the row farthest from the mean (a corner; the lowest index among ties)
    assert selection.fps(SQUARE, 1) == [3]


def test_fps_force_weights_prefer_heavy_frames():
    w = np.ones(len(SQUARE))
    w[4] = 10.0  # the centre (squared distance 0.5 from corner 0, against 2 for corner 3) weighs 10x
    assert selection.fps(SQUARE, 3, start=0, weights=w) == [0, 4, 1]


def _plain_fps(X, n, start):
    chosen = [start]
    d = ((X - X[start]) ** 2).sum(1)
    while len(chosen) < n:
        i = int(np.argmax(d))
        chosen.append(i)
        d = np.minimum(d, ((X - X[i]) ** 2).sum(1))
    return chosen


@pytest.mark.parametrize("block", [1, 3, 32])
def test_lazy_fps_equals_plain_fps(block):
    X = np.random.default_rng(1).normal(size=(700, 6))
    assert selection.fps(X, 60, start=5, block=block) == _plain_fps(X, 60, 5)


def test_fps_with_copies_still_returns_distinct_rows():
    X = np.repeat(SQUARE[:2], 4, axis=0)  # two distinct rows, four times each
    out = selection.fps(X, 5, start=0)
    assert len(set(out)) == 5


# --- other methods ------------------------------------------------------------------------


def test_near_duplicates_keep_the_first_of_each_group():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 5))
    X = np.vstack([X, X[[3, 7]] + 1e-4, X[[3]] - 1e-4])  # rows 30, 32 copy 3; 31 copies 7
    keep = selection.near_duplicates(X, 1e-3)
    assert keep[:30].all() and not keep[30:].any()
    assert selection.near_duplicates(X, 0).all()


def test_proportional_quota():
    assert selection.proportional_quota([50, 30, 20], 10) == [5, 3, 2]
    q = selection.proportional_quota([7, 1, 1, 1], 5)
    assert sum(q) == 5 and q[0] >= 3 and all(0 <= a <= b for a, b in zip(q, [7, 1, 1, 1]))


def test_dbscan_finds_two_basins_and_samples_both():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 0.1, size=(60, 3)), rng.normal(5, 0.1, size=(40, 3))])
    labels, eps = selection.dbscan_labels(X, "auto", 5, 3)
    assert len(set(labels) - {-1}) == 2 and eps > 0
    picked = selection.dbscan_select(X, 10, seed=1, min_samples=5, n_components=3)
    assert sum(i < 60 for i in picked) == 6 and sum(i >= 60 for i in picked) == 4


@pytest.mark.filterwarnings("ignore:Number of distinct clusters")  # the copies are the point
def test_kmeans_gives_distinct_frames_even_with_copies():
    X = np.repeat(np.random.default_rng(0).normal(size=(5, 3)), 6, axis=0)
    out = selection.kmeans_select(X, 8, seed=0)
    assert len(out) == 8 and len(set(out)) == 8


@pytest.mark.parametrize("method", selection.METHODS)
def test_every_method_returns_n_distinct_pool_frames(method):
    frames = cluster_frames()
    sel = sel_config(
        method=method, n_train=20, n_valid=5, test_fraction=0.25, gap_fs=3, descriptor=DIST, dedupe_tolerance=0.0
    )
    X = descriptors.compute(frames, sel["descriptor"])
    idx = selection.split_and_select(frames, sel, descriptors=X)
    train = idx["train"]
    assert len(train) == 20 and len(set(train)) == 20
    assert set(train) <= set(idx["pool"])
    assert not set(train) & set(idx["test"]) and not set(idx["valid"]) & set(idx["test"])
    again = selection.split_and_select(frames, sel, descriptors=X)
    assert again["train"] == train  # deterministic under the seed
    # the held-out block is the end of each run, validation and pool blocks lie gap_fs before it
    for run in ("300K", "600K"):
        assert min(frames[i].info["step"] for i in idx["test"] if frames[i].info["run"] == run) == 30


def test_fps_covers_the_hot_run_more_than_random():
    frames = cluster_frames()
    X = descriptors.compute(frames, SOAP)
    hot = {i for i, a in enumerate(frames) if a.info["run"] == "600K"}
    picks = {
        m: selection.split_and_select(
            frames, sel_config(method=m, n_train=10, n_valid=5, descriptor=SOAP, gap_fs=2), X
        )["train"]
        for m in ("fps", "random")
    }
    # the hot run spreads far wider in configuration space: FPS draws nearly all from it
    assert len(hot & set(picks["fps"])) >= 8
    assert len(hot & set(picks["fps"])) > len(hot & set(picks["random"]))


def test_near_duplicate_frames_leave_the_pool():
    frames = cluster_frames(n=30)
    copy = frames[2].copy()
    copy.positions += 1e-5
    copy.calc = SinglePointCalculator(copy, energy=0.0, forces=np.zeros((6, 3)))
    copy.info.update(run="300K", step=2.5, time=2.5, temperature=300.0)
    frames.insert(3, copy)
    sel = sel_config(method="random", n_train=10, n_valid=5, gap_fs=3, descriptor=DIST, dedupe_tolerance=0.01)
    idx = selection.split_and_select(frames, sel)
    assert idx["near_duplicates"] == 1 and 3 not in idx["pool"] and 2 in idx["pool"]
    sel["dedupe_tolerance"] = 0.0
    idx = selection.split_and_select(frames, sel)
    assert idx["near_duplicates"] == 0 and 3 in idx["pool"]


# --- descriptors ----------------------------------------------------------------------------


@pytest.mark.parametrize("params", [SOAP, DIST], ids=["soap", "distances"])
def test_descriptors_invariant_and_size_independent(params):
    a = cluster_frames(n=1)[0]
    rot = a.copy()
    rot.rotate(37, "z")
    rot.rotate(71, "x")
    rot.translate([3.0, -1.0, 2.0])
    two = a.copy() + a.copy()  # two copies far apart: twice the atoms, the same environments
    two.positions[6:] += 100.0
    X = descriptors.compute([a, rot, two], params)
    assert np.allclose(X[0], X[1], atol=1e-6)
    if params["kind"] == "soap":  # per-element averages: the same for one or two copies
        assert np.allclose(X[0], X[2], atol=1e-6)
    assert X.shape[1] == len(descriptors.feature_names(["Cd", "Se"], params))


def test_descriptors_streamed_cached_and_reused(tmp_path, monkeypatch):
    frames = cluster_frames(n=7)
    data = tmp_path / "frames.extxyz"
    dataset.write_frames(data, frames)
    out = tmp_path / "sel" / "descriptors.npy"
    meta = descriptors.compute_file(data, out, SOAP, chunk_frames=3)  # chunks of 3: 5 chunks
    X, meta2 = descriptors.load(out)
    assert X.dtype == np.float32 and X.shape == (14, meta["n_features"])
    assert np.allclose(X, descriptors.compute(frames, SOAP), atol=1e-5)
    assert meta2["keys"][7] == ["600K", 0] and meta2["temperatures"][7] == 600.0
    # same settings, same data: no recomputation
    monkeypatch.setattr(descriptors, "_block", lambda *a, **k: pytest.fail("recomputed"))
    descriptors.compute_file(data, out, SOAP)
    monkeypatch.undo()
    # other settings: recomputed
    descriptors.compute_file(data, out, DIST)
    assert descriptors.load(out)[1]["params"]["kind"] == "distances"


def test_select_frames_uses_the_cache(tmp_path):
    frames = cluster_frames(n=30)
    data = tmp_path / "frames.extxyz"
    dataset.write_frames(data, frames + frames[:2])  # two exact duplicates
    cfg = config.validate(
        {
            "name": "t",
            "structure": {},
            "selection": {"n_train": 12, "n_valid": 4, "gap_fs": 2, "allow_short_gap": True, "descriptor": SOAP},
        }
    )
    select.compute_descriptors(data, tmp_path / "d.npy", descriptor=cfg["selection"]["descriptor"])
    s = select.select_frames(data, tmp_path / "split", tmp_path / "d.npy", **select.select_params(cfg))
    assert s["method"] == "fps" and s["n_train"] == 12 and s["duplicates_dropped"] == 2
    direct = select.select_frames(data, tmp_path / "split2", **select.select_params(cfg))  # computed in memory instead
    assert direct["train_steps"] == s["train_steps"]
    assert not {tuple(x) for x in s["train_steps"]} & {tuple(x) for x in s["test_steps"]}


# --- scaling of the descriptors --------------------------------------------------------------


def test_noise_level_channel_does_not_steer_fps():
    """A channel with variance 1e-12 (a SOAP radial channel no neighbour reaches) must not
    weigh like real structure: per-feature unit variance made it as large as the others."""
    rng = np.random.default_rng(3)
    real = rng.normal(size=(80, 5)) * [1.0, 0.5, 0.3, 2.0, 1.0]
    noise = 1e-6 * rng.normal(size=(80, 1))  # variance 1e-12
    X = np.hstack([real[:, :3], noise, real[:, 3:]])
    blocks = np.array([0, 0, 0, 0, 1, 1])
    Xs = descriptors.standardize(X, blocks)
    assert Xs[:, 3].var() < 1e-9 * Xs.var(axis=0).max()
    clean = descriptors.standardize(np.delete(X, 3, axis=1), np.delete(blocks, 3))
    assert selection.fps(Xs, 20) == selection.fps(clean, 20)
    # what unit variance per feature did: the noise channel as large as any other
    unit = (X - X.mean(axis=0)) / X.std(axis=0)
    assert unit[:, 3].var() == pytest.approx(1.0) and selection.fps(unit, 20) != selection.fps(clean, 20)


def test_blocks_weigh_equally_whatever_their_scale():
    rng = np.random.default_rng(4)
    X = np.hstack([10 * rng.normal(size=(50, 4)), 0.1 * rng.normal(size=(50, 2))])  # variances 10^4 apart
    Xs = descriptors.standardize(X, [0, 0, 0, 0, 1, 1])
    v = Xs.var(axis=0)
    assert v[:4].sum() == pytest.approx(v[4:].sum()) == pytest.approx(3.0)  # 6 features, 2 blocks
    assert np.allclose(Xs.mean(axis=0), 0.0)
    # within a block the channels keep their relative size
    assert v[0] / v[1] == pytest.approx(X[:, 0].var() / X[:, 1].var())
    # a constant block stays zero; a block at noise level (under the floor) is not raised to the others
    Y = np.hstack([X, np.ones((50, 1)), 1e-9 * rng.normal(size=(50, 1))])
    Ys = descriptors.standardize(Y, [0, 0, 0, 0, 1, 1, 2, 3])
    assert np.all(Ys[:, 6] == 0) and Ys[:, 7].var() < 1e-6 * Ys[:, :4].var(axis=0).sum()


def test_feature_blocks_follow_the_soap_and_histogram_layout():
    """Block labels line up with dscribe's columns: in a cluster without Cl every column of a
    block that involves Cl (as centre or neighbour) is zero, and no other block is all zero."""
    species = ["Cd", "Se", "Cl"]
    X = descriptors.compute(cluster_frames(n=3)[:3], SOAP, species=species)
    blocks = descriptors.feature_blocks(species, SOAP)
    assert blocks.shape == (X.shape[1],) and len(np.unique(blocks)) == 3 * 6  # 3 centres x 6 pairs
    ordered = ["Cl", "Cd", "Se"]  # by atomic number, as the descriptors order them
    pairs = [(a, b) for i, a in enumerate(ordered) for b in ordered[i:]]
    for b in np.unique(blocks):
        centre, pair = ordered[b // 6], pairs[b % 6]
        zero = np.all(X[:, blocks == b] == 0)
        assert zero == ("Cl" in (centre, *pair)), (centre, pair)
    assert np.array_equal(descriptors.feature_blocks(["Cd", "Se"], DIST), np.repeat([0, 1, 2], 8))


def test_distance_histogram_tails_do_not_steer_fps():
    """Real descriptors: the histogram bins below the shortest Cd-Se distance hold only Gaussian
    tails (variance 1e-90 to 1e-10 of the largest); FPS must pick as if they were not there."""
    frames = cluster_frames(n=30)
    params = dict(DIST, distances={"r_max": 8.0, "bins": 32})  # the schema's defaults
    X = descriptors.compute(frames, params)
    blocks = descriptors.feature_blocks(["Cd", "Se"], params)
    var = X.var(axis=0)
    tails = (var > 0) & (var < 1e-10 * var.max())
    assert tails.sum() >= 3
    picks = selection.fps(descriptors.standardize(X, blocks), 15)
    assert picks == selection.fps(descriptors.standardize(X[:, ~tails], blocks[~tails]), 15)
    std = X.std(axis=0)
    std[std == 0] = 1
    assert selection.fps((X - X.mean(axis=0)) / std, 15) != picks  # per-feature unit variance


def test_fps_selection_is_not_moved_by_noise_in_the_tails():
    """Through the selection itself: noise of 10^-6 of the largest channel's spread added to the
    tail bins leaves the FPS training frames as they were (per-feature scaling made that noise
    as large as the real structure, and FPS followed it)."""
    frames = cluster_frames(n=30)
    params = dict(DIST, distances={"r_max": 8.0, "bins": 32})
    X = descriptors.compute(frames, params)
    var = X.var(axis=0)
    tails = (var > 0) & (var < 1e-10 * var.max())
    noisy = X.copy()
    noisy[:, tails] += 1e-6 * np.sqrt(var.max()) * np.random.default_rng(5).normal(size=(len(X), tails.sum()))
    sel = sel_config(method="fps", n_train=10, n_valid=5, gap_fs=2, descriptor=params, dedupe_tolerance=0)
    assert (
        selection.split_and_select(frames, sel, noisy)["train"] == selection.split_and_select(frames, sel, X)["train"]
    )


# --- map ------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["tsne", "pca"])
def test_map_files_on_small_data(tmp_path, method):
    frames = cluster_frames(n=25)
    data = tmp_path / "frames.extxyz"
    dataset.write_frames(data, frames)
    cfg = config.validate(
        {
            "name": "t",
            "structure": {},
            "selection": {
                "n_train": 8,
                "n_valid": 4,
                "gap_fs": 2,
                "allow_short_gap": True,
                "descriptor": DIST,
                "map": {"method": method, "max_points": 30},
            },
        }
    )
    select.compute_descriptors(data, tmp_path / "d.npy", descriptor=cfg["selection"]["descriptor"])
    select.select_frames(data, tmp_path / "split", tmp_path / "d.npy", **select.select_params(cfg))
    info = select.map_configurations(
        tmp_path / "d.npy",
        tmp_path / "split/selection.json",
        tmp_path / "map.png",
        tmp_path / "map.html",
        tmp_path / "map.json",
        selection=cfg["selection"],
    )
    assert (tmp_path / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (tmp_path / "map.html").read_text()
    assert 30 <= info["n_plotted"] <= 38  # 30 evenly spread, plus training frames not among them
    assert html.count("<title>") == info["n_plotted"]
    assert html.count("train, ") == 8 and "run 600K, step" in html
    assert "<script" not in html and "src=" not in html and "http://www.w3.org/2000/svg" in html
    if method == "tsne":  # the report section built from these files
        from qdff.report import render as report
        from qdff.selection import report as selection_report

        ctx = selection_report.context(
            tmp_path / "split/selection.json",
            tmp_path / "map.png",
            tmp_path / "map.html",
            tmp_path / "map.json",
            lc_csv=tmp_path / "absent.csv",
        )
        page = report._env().get_template("selection_section.html.j2").render(**ctx)
        assert ctx["sel_lc_rows"] is None and "Learning curves" not in page
        # the interactive (plotly) map with every plotted frame, the PNG for print; no SVG twice
        assert 'src="data:image/png;base64,' in page and 'data-target="fig-map"' in page and "<svg" not in page
        spec = info["figure"]
        assert sum(len(d["x"]) for d in spec["data"]) == info["n_plotted"]
        assert sum(len(d["x"]) for d in spec["data"] if d["name"] == "training") == 8
        assert f"{info['n_basins']} DBSCAN basin" in page and "fps" in page


def test_roles_from_selection_summary():
    r = confmap.roles(
        [("a", 1), ("a", 2), ("b", 1), ("b", 9)],
        {"train_steps": [["a", 1]], "valid_steps": [["b", 1]], "test_steps": [["b", 9]]},
    )
    assert list(r) == ["train", "pool", "valid", "test"]


# --- learning curve -------------------------------------------------------------------------


def test_frames_needed_interpolates_on_the_curve():
    sizes = [25, 50, 100, 200]
    target = 51.2
    # crosses between 50 (64) and 100 (50): log-log interpolation
    n = learning_curve.frames_needed(sizes, [90, 64, 50, 40], target)
    assert n == pytest.approx(50 * 2 ** (np.log(51.2 / 64) / np.log(50 / 64)))
    assert 90 < n < 95
    assert learning_curve.frames_needed(sizes, [100, 80, 64, 51.2], target) == 200
    assert learning_curve.frames_needed(sizes, [40, 30, 20, 10], target) == 25
    assert learning_curve.frames_needed(sizes, [99, 98, 97, 96], target) is None


def test_learning_curve_summary_and_files(tmp_path):
    rows = []
    for method, errs in (("random", [100, 80, 64, 51.2]), ("fps", [90, 64, 50, 40]), ("kmeans", [99, 98, 97, 96])):
        for n, e in zip([25, 50, 100, 200], errs):
            f = tmp_path / f"{method}_{n}.json"
            f.write_text(
                json.dumps(
                    {
                        "method": method,
                        "n_train": n,
                        "force_rmse_meV_per_A": e,
                        "energy_rmse_meV_per_atom": e / 10,
                        "force_max_error_meV_per_A": 5 * e,
                        "force_mae_meV_per_A": e / 2,
                        "energy_mae_meV_per_atom": e / 20,
                        "n_valid_frames": 20,
                    }
                )
            )
            rows.append(f)
    s = learning_curve.collect(rows, tmp_path / "lc.csv", tmp_path / "lc.png", tmp_path / "summary.json")
    assert s["target_n"] == 200 and s["target_error"] == 51.2
    assert s["methods"]["random"]["frames_needed"] == 200
    assert s["methods"]["fps"]["frames_needed"] == pytest.approx(93.6, abs=0.1)
    assert s["methods"]["kmeans"]["frames_needed"] == "not reached"
    assert json.loads((tmp_path / "summary.json").read_text()) == s
    assert (tmp_path / "lc.csv").read_text().count("\n") == 13
    assert (tmp_path / "lc.png").stat().st_size > 1000
    from qdff.report import render as report
    from qdff.selection import report as selection_report

    ctx = selection_report.context(
        lc_csv=tmp_path / "lc.csv", lc_png=tmp_path / "lc.png", lc_summary=tmp_path / "summary.json"
    )
    page = report._env().get_template("selection_section.html.j2").render(**ctx)
    assert "<td>fps</td><td>94</td><td>0.47</td>" in page and "not reached" in page
    assert page.count("<tr>") == 1 + 3 + 1 + 12  # two headers, 3 summary rows, 12 curve rows
    # the interactive learning curve: force and energy per method, every point of the table
    assert 'data-target="fig-learning-curve"' in page
    assert sum(len(d["x"]) for d in ctx["sel_lc_fig"]["data"]) == 2 * 12


def test_point_config_changes_only_method_and_size():
    cfg = config.validate({"name": "t", "structure": {}, "selection": {"learning_curve": {"deepmd_steps": 77}}})
    p = learning_curve.point_config(cfg, "kmeans", 33)
    assert p["selection"]["method"] == "kmeans" and p["selection"]["n_train"] == 33
    assert cfg["selection"]["method"] == "fps"  # the original is untouched
    assert learning_curve.deepmd_params(cfg)["steps"] == 77
    assert learning_curve.deepmd_params(cfg)["rcut"] == cfg["backends"]["deepmd"]["rcut"]


# --- config and wiring ----------------------------------------------------------------------


def test_selection_schema_defaults_and_errors():
    s = sel_config()
    assert s["method"] == "fps" and s["descriptor"]["kind"] == "soap" and s["dbscan"]["eps"] == "auto"
    assert s["learning_curve"]["enabled"] is False and s["map"]["enabled"] is True
    assert sel_config(dbscan={"eps": 0.3})["dbscan"]["eps"] == 0.3
    with pytest.raises(config.ConfigError, match="selection.dbscan.eps"):
        sel_config(dbscan={"eps": "big"})
    with pytest.raises(config.ConfigError, match="allowed values"):
        sel_config(method="best")


def test_learning_curve_rules_dry_run(tmp_path):
    cfg = yaml.safe_load((ROOT / "tests/configs/tiny.yaml").read_text())
    cfg["selection"]["learning_curve"] = {"enabled": True, "methods": ["random", "fps"], "sizes": [20, 40]}
    f = tmp_path / "lc.yaml"
    f.write_text(yaml.safe_dump(cfg))
    proc = subprocess.run(
        [
            str(BIN / "snakemake"),
            "-s",
            str(ROOT / "Snakefile"),
            "-d",
            str(tmp_path),
            "--configfile",
            str(f),
            "--cores",
            "2",
            "-n",
            "--quiet",
            "rules",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    counts = {
        rule: int(n)
        for rule, n in (
            line.split()[:2] for line in out.splitlines() if len(line.split()) == 2 and line.split()[1].isdigit()
        )
    }
    assert counts["train_learning_curve_point"] == 4 and counts["select_learning_curve_frames"] == 4
    assert counts["plot_learning_curve"] == 1 and counts["map_configurations"] == 1
    assert counts["compute_descriptors"] == 1
