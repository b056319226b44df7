"""Validation metrics: pair-distance overlap, surface/core classification, errors by site and temperature."""

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from conftest import jiggled

from qdff.structure import sites
from qdff.structure.build import cut_cluster
from qdff.validation import evaluate, rdf


@pytest.fixture(scope="module")
def cluster():
    return cut_cluster("CdSe", "zincblende", 40)


def _timed(frames, spacing_fs: float, **info) -> list:
    for k, a in enumerate(frames):
        a.info.update(time=spacing_fs * k, **info)
    return frames


def test_pair_distance_overlap_drops_for_an_expanded_cluster(cluster):
    frames = _timed(jiggled(cluster, 24, 0.05, 0), 2.0, run="300K")
    model = _timed(jiggled(cluster, 12, 0.05, 5), 2.0, seed=1)
    same = rdf.compare(frames, model, r_max=8.0, bins=160)
    assert set(same["overlap"]) == {"Cd-Cd", "Cd-Se", "Se-Se"}
    assert same["curve"] == "pair-distance distribution (unit area)"
    # each unit-area curve really has unit area
    edges = np.asarray(same["edges"])
    assert np.sum(same["reference"]["Cd-Se"]) * (edges[1] - edges[0]) == pytest.approx(1.0)

    expanded = []
    for a in model:
        b = a.copy()
        b.positions = b.positions.mean(axis=0) + 1.10 * (b.positions - b.positions.mean(axis=0))
        expanded.append(b)
    shifted = rdf.compare(frames, expanded, r_max=8.0, bins=160)
    assert all(v < 0.8 for v in shifted["overlap"].values())
    assert shifted["overlap_min"] == min(shifted["overlap"].values())
    assert set(shifted["below_reference_interval"]) == set(shifted["overlap"])  # far below the AIMD's own spread
    # a slightly hotter copy of the same structure overlaps much more than the expanded one
    warm = rdf.compare(frames, _timed(jiggled(cluster, 12, 0.08, 1), 2.0), r_max=8.0, bins=160)
    assert shifted["overlap_min"] < warm["overlap_min"] < same["overlap_min"] < 1.0


def test_blocks_and_the_null_pairs_of_the_aimd(cluster):
    """40 AIMD frames, one 20-frame seed: blocks of 5 frames (the most of which the AIMD holds
    8); the null is the 28 - 7 = 21 pairs of AIMD blocks that are not neighbours; the seed's
    statistic is the mean overlap of its 4 blocks against each of the 8 AIMD blocks."""
    aimd = _timed(jiggled(cluster, 40, 0.08, 0), 2.0, run="300K")
    model = _timed(jiggled(cluster, 20, 0.08, 3), 2.0, seed=0)
    res = rdf.compare(aimd, model, r_max=8.0, bins=80)
    assert res["frames_per_block"] == 5 and res["calibrated"] and "block_note" not in res
    assert res["reference_blocks"] == 8 and res["reference_pairs"] == 21 and res["reference_pairs_non_adjacent"]
    assert res["model_blocks"] == 4 and res["model_frames_compared"] == 20 and res["reference_frames_compared"] == 40
    edges = np.asarray(res["edges"])
    for p, score in res["overlap"].items():
        ref = [rdf.pair_distributions(aimd[i : i + 5], 8.0, 80)[p] for i in range(0, 40, 5)]
        ml = [rdf.pair_distributions(model[i : i + 5], 8.0, 80)[p] for i in range(0, 20, 5)]
        assert score == pytest.approx(np.mean([rdf.overlap(m, r, edges) for m in ml for r in ref]), abs=1e-12)
        null = [rdf.overlap(ref[i], ref[j], edges) for i in range(8) for j in range(i + 2, 8)]
        assert res["reference_overlap"][p] == pytest.approx(np.mean(null), abs=1e-12)
        assert res["reference_interval"][p] == pytest.approx([min(null), max(null)])
    # an AIMD of 30 frames cannot hold 8 blocks of 5: blocks as long as the seed, said so
    short = rdf.compare(aimd[:30], model[:10], r_max=8.0, bins=80)
    assert not short["calibrated"] and "uncalibrated" in short["block_note"]
    assert short["frames_per_block"] == 10 and short["reference_blocks"] == 3 and short["reference_pairs"] == 1
    # two blocks: no pair of non-neighbours, the neighbours it is
    two = rdf.compare(aimd[:20], model[:10], r_max=8.0, bins=80)
    assert two["reference_pairs"] == 1 and not two["reference_pairs_non_adjacent"]


def test_equal_frame_counts_and_a_fair_reference_interval(cluster):
    """ML-MD written every 10 fs for 3 ps, AIMD every 2 fs for 0.8 ps: both thinned to 10 fs,
    compared in blocks of equal size, short enough that the AIMD holds 8 of them; an
    independent sample of the same distribution (a perfect model) is inside."""
    aimd = _timed(jiggled(cluster, 400, 0.08, 1), 2.0, run="300K")
    model = _timed(jiggled(cluster, 300, 0.08, 101), 10.0, seed=3)
    res = rdf.compare(aimd, model, r_max=8.0, bins=80)
    assert res["spacing_fs"] == 10.0 and res["n_reference_frames"] == 80 and res["n_model_frames"] == 300
    n = res["frames_per_block"]
    assert n == 10 and res["block_fs"] == 100.0 and res["reference_frames_compared"] == 80
    assert res["model_frames_compared"] == res["model_blocks"] * n
    assert res["model_blocks"] == 30 and res["reference_blocks"] == 8 and res["reference_pairs"] == 21
    assert res["seeds"][0]["frames"] == 300 and res["seeds"][0]["blocks"] == 30
    for p, score in res["overlap"].items():
        lo, hi = res["reference_interval"][p]
        assert lo < score < hi, (p, score, lo, hi)
    assert res["below_reference_interval"] == []


def _correlated_trajectory(atoms, n: int, sigma: float, corr: float, seed: int) -> list:
    """``n`` frames of ``atoms`` vibrating about its positions with Gaussian displacements
    (``sigma`` A per component), correlated from frame to frame (AR(1), ``corr``): an AIMD-like
    trajectory whose neighbouring frames are alike."""
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=sigma, size=atoms.positions.shape)
    out = []
    for _ in range(n):
        x = corr * x + np.sqrt(1 - corr**2) * rng.normal(scale=sigma, size=x.shape)
        a = atoms.copy()
        a.positions += x
        out.append(a)
    return out


def test_a_bad_model_fails_the_pair_distance_comparison_and_says_why(cluster):
    """One synthetic trajectory (correlated frames, 2 fs apart): its first 1000 frames are the
    AIMD, three later contiguous blocks of 50 frames are three seeds of a perfect model. The
    AIMD holds 20 blocks of 50 frames: 190 pairs, 171 of them not neighbours. The same seeds
    with every bond stretched 5 % (positions scaled about the centroid) or with their
    displacements from the mean structure doubled (a model too soft) fail, each flagged for
    what is wrong with it. How often the perfect model passes over many trajectory seeds is
    measured by benchmarks/rdf_spread.py --synthetic."""
    traj = _timed(_correlated_trajectory(cluster, 1200, 0.06, 0.8, 7), 2.0)
    aimd = [a for a in traj[:1000]]
    for a in aimd:
        a.info["run"] = "300K"

    def seeds(transform=None):
        out = []
        for s, start in enumerate((1020, 1075, 1130)):
            for a in traj[start : start + 50]:
                b = a.copy()
                if transform is not None:
                    b.positions = transform(b.positions)
                b.info.update(time=a.info["time"] - start * 2.0, seed=s)
                out.append(b)
        return out

    mean = np.mean([a.positions for a in aimd], axis=0)
    good = rdf.compare(aimd, seeds(), r_max=8.0, bins=80)
    assert good["frames_per_block"] == 50 and good["reference_pairs"] == 171 and good["seeds_scored"] == 3
    assert "block_note" not in good
    for p in good["overlap"]:
        lo, hi = good["overlap_range"][p]
        assert lo <= good["overlap"][p] <= hi
        assert good["reference_overlap_lowest"][p] <= good["reference_interval"][p][0] < good["overlap"][p]
        assert good["wasserstein_A"][p] > 0 and good["reference_wasserstein_range_A"][p][0] > 0
        assert good["verdict"][p].startswith(f"{good['seeds_inside'][p]} of 3 seeds inside")
    assert good["below_reference_interval"] == []
    assert all(k == 3 for k in good["seeds_inside"].values()), good["seeds_inside"]

    stretched = rdf.compare(aimd, seeds(lambda x: x.mean(axis=0) + 1.05 * (x - x.mean(axis=0))), r_max=8.0, bins=80)
    soft = rdf.compare(aimd, seeds(lambda x: mean + 2.0 * (x - mean)), r_max=8.0, bins=80)
    for bad in (stretched, soft):
        assert "Cd-Se" in bad["below_reference_interval"]
        assert bad["seeds_inside"]["Cd-Se"] == 0
        assert bad["verdict"]["Cd-Se"].startswith("0 of 3 seeds inside")
        assert bad["wasserstein_A"]["Cd-Se"] > bad["reference_wasserstein_range_A"]["Cd-Se"][1]
        assert bad["overlap"]["Cd-Se"] < good["overlap"]["Cd-Se"]
    # what is wrong: the bonds are longer / the first shell is broader
    assert any(f.startswith("first shell longer") for f in stretched["flags"]["Cd-Se"])
    assert "first shell longer" in stretched["verdict"]["Cd-Se"]
    assert stretched["first_shell"]["Cd-Se"]["model_shift_A"] == pytest.approx(0.05 * 2.63, abs=0.03)
    assert any(f.startswith("first shell broader") for f in soft["flags"]["Cd-Se"])
    assert soft["first_shell"]["Cd-Se"]["model_spread_ratio"] > 1.5

    # an independent AIMD run scored as a null: a perfect model's value
    other = _timed(_correlated_trajectory(cluster, 200, 0.06, 0.8, 8), 2.0, run="300K-b")
    null = rdf.compare(aimd, seeds(), r_max=8.0, bins=80, independent=other)["independent"]
    assert null["blocks"] == 4 and set(null["overlap"]) == set(good["overlap"])
    assert all(null["overlap"][p] > stretched["overlap"][p] for p in null["overlap"])


def test_first_peak_position_and_width_of_a_known_distribution():
    edges = np.linspace(0.0, 8.0, 801)
    r = 0.5 * (edges[1:] + edges[:-1])
    # a first shell at 2.6 A (sigma 0.1) smaller than the second shell at 4.3 A
    curve = 0.4 * np.exp(-0.5 * ((r - 2.6) / 0.1) ** 2) / 0.1 + 0.6 * np.exp(-0.5 * ((r - 4.3) / 0.15) ** 2) / 0.15
    peak = rdf.first_peak(curve, edges)
    assert peak["position_A"] == pytest.approx(2.6, abs=0.005)
    assert peak["fwhm_A"] == pytest.approx(2 * np.sqrt(2 * np.log(2)) * 0.1, rel=0.02)
    # from frames: a Cd-Se dimer whose bond length is drawn from N(2.6 A, 0.08 A)
    rng = np.random.default_rng(0)
    frames = [Atoms("CdSe", positions=[[0, 0, 0], [0, 0, d]]) for d in rng.normal(2.6, 0.08, 4000)]
    p = rdf.compare(frames, frames[:100], r_max=4.0, bins=200)["first_peak"]["reference"]["Cd-Se"]
    assert p["position_A"] == pytest.approx(2.6, abs=0.02)
    assert p["fwhm_A"] == pytest.approx(2 * np.sqrt(2 * np.log(2)) * 0.08, rel=0.1)


def test_pair_distributions_exclude_self_distance():
    a = Atoms("Cd2", positions=[[0, 0, 0], [0, 0, 2.5]])
    g = rdf.pair_distributions([a, a], r_max=4.0, bins=40)
    edges = np.asarray(g["edges"])
    r = 0.5 * (edges[1:] + edges[:-1])
    assert r[np.argmax(g["Cd-Cd"])] == pytest.approx(2.5, abs=0.1)


def test_sites_core_has_bulk_coordination_surface_less(cluster):
    cn = sites.hetero_coordination(cluster)
    cls = sites.classify(cluster, "CdSe")
    assert set(cls) == {"core", "surface"}
    assert np.all(cn[cls == "core"] == 4) and np.all(cn[cls == "surface"] < 4)
    # the core sits inside: closer to the centre on average than the surface
    r = np.linalg.norm(cluster.positions - cluster.positions.mean(axis=0), axis=1)
    assert r[cls == "core"].mean() < r[cls == "surface"].mean()
    # a passivant that is not part of the material is a ligand
    with_cl = cluster + Atoms("Cl", positions=[cluster.positions[np.argmax(r)] + [0, 0, 2.4]])
    assert sites.classify(with_cl, "CdSe")[-1] == "ligand"
    # a core-like count made up with a ligand does not make a surface cation core
    surface_cd = [k for k in range(len(cluster)) if cls[k] == "surface" and cluster[k].symbol == "Cd" and cn[k] == 3][0]
    d = cluster.positions[surface_cd] - cluster.positions.mean(axis=0)
    capped = cluster + Atoms("Cl", positions=[cluster.positions[surface_cd] + 2.45 * d / np.linalg.norm(d)])
    assert sites.hetero_coordination(capped)[surface_cd] == 4
    assert sites.classify(capped, "CdSe")[surface_cd] == "surface"
    with pytest.raises(ValueError, match="no bulk coordination known for material 'GaAs'"):
        sites.classify(cluster, "GaAs")


def test_breakdown_by_site_and_temperature(cluster):
    frames = jiggled(cluster, 6, 0.05, 2)
    rng = np.random.default_rng(3)
    for k, a in enumerate(frames):
        a.info["temperature"] = 300.0 if k < 3 else 600.0
        a.calc = SinglePointCalculator(a, energy=-100.0, forces=rng.normal(size=(len(a), 3)))
    cls = sites.classify(frames[0], "CdSe")
    # a model exact in the core and off by 1 eV/A (each component) on the surface
    f_pred = []
    for a in frames:
        f = a.get_forces().copy()
        f[sites.classify(a, "CdSe") == "surface"] += 1.0
        f_pred.append(f)
    e_pred = np.full(len(frames), -100.0)
    out = evaluate.breakdown(frames, e_pred, f_pred, "CdSe")
    assert out["force_rmse_meV_per_A_site_core"] == pytest.approx(0.0)
    assert out["force_rmse_meV_per_A_site_surface"] == pytest.approx(1000.0)
    assert out["atom_fraction_site_surface"] == pytest.approx(np.mean(cls == "surface"), abs=0.05)
    assert {"force_rmse_meV_per_A_T_300K", "force_rmse_meV_per_A_T_600K", "energy_rmse_meV_per_atom_T_600K"} <= set(out)


CP2K_LOG_HEAD = """\
  **** **** ******  **  PROGRAM STARTED AT               2026-12-02 04:26:30.367
 ***** ** ***  *** **   PROGRAM STARTED ON                                 node07
 GLOBAL| Run type                                                             MD
 GLOBAL| Total number of message passing processes                             2
 GLOBAL| Number of threads for this process                                    2
 GLOBAL| CPU model name                                                 AMD EPYC
"""


def _speed_case(tmp_path, hardware: dict):
    """A CP2K run (2 ranks x 2 threads, 0.08 s/step, conserved quantity drifting by a known
    1 meV/atom/ps) and one ML-MD run at the same temperature (0.01 s/step) on ``hardware``."""
    from qdff.cp2k.run import parallel_setup
    from qdff.fileio import write_json
    from qdff.steps import evaluate
    from qdff.units import HARTREE_TO_EV

    run = tmp_path / "aimd/300K"
    run.mkdir(parents=True)
    (run / "md.log").write_text(CP2K_LOG_HEAD)
    t = np.arange(0.0, 1001.0, 10.0)
    conserved = (-50.0 + 12 * 1e-3 * t / 1000) / HARTREE_TO_EV  # 12 atoms: 1 meV/atom/ps, in Hartree
    with open(run / "md-1.ener", "w") as fh:
        fh.write("# Step Nr. Time[fs] Kin.[a.u.] Temp[K] Pot.[a.u.] Cons Qty[a.u.] UsedTime[s]\n")
        for k, (ti, c) in enumerate(zip(t, conserved)):
            fh.write(f"{k} {ti} 0.01 300.0 {c - 0.01} {c} 0.08\n")
    write_json(
        run / "run.json",
        {
            "temperature": 300.0,
            "seconds_per_step_median": 0.08,
            "n_atoms": 12,
            "project": "md",
            "threads": 2,
            "preset": "xtb",
            **parallel_setup(run / "md.log"),
        },
    )
    write_json(tmp_path / "metrics_deepmd.json", {"backend": "deepmd", "force_rmse_meV_per_A": 100.0})
    write_json(
        tmp_path / "mlmd.json",
        {
            "backend": "deepmd",
            "temperature": 300.0,
            "stable": True,
            "reason": "",
            "seconds_per_step": 0.01,
            "nve_drift_meV_per_atom_per_ps": 0.5,
            "hardware": hardware,
        },
    )
    rows = evaluate.collect_metrics(
        [tmp_path / "metrics_deepmd.json"],
        tmp_path / "metrics.json",
        tmp_path / "m.csv",
        mlmd_files=[tmp_path / "mlmd.json"],
        aimd_files=[run / "run.json"],
    )
    return rows[0], run


def _render(tmp_path, row, run):
    from qdff import config
    from qdff.fileio import read_json
    from qdff.report import render as report

    cfg = config.validate({"name": "x", "structure": {}})
    report.aimd_overview_plot({"300K": run / "md-1.ener"}, tmp_path / "aimd.png")
    report.render_report(
        cfg,
        aimd_plot=tmp_path / "aimd.png",
        aimd_summaries=[read_json(run / "run.json")],
        selection={"method": "fps", "test_fraction": 0.2},
        metrics=[row],
        parity_plots={},
        models={},
        out_path=tmp_path / "report.html",
    )
    html = (tmp_path / "report.html").read_text()
    return html[html.index('<h2 id="speed-section">Speed') : html.index('<h2 id="per-backend">Per backend')]


def test_parallel_setup_is_read_from_the_cp2k_log(tmp_path):
    from qdff.cp2k.run import parallel_setup

    (tmp_path / "md.log").write_text(CP2K_LOG_HEAD + CP2K_LOG_HEAD.replace("node07", "node08"))  # a resumed run
    assert parallel_setup(tmp_path / "md.log") == {
        "host": "node08",
        "mpi_ranks": 2,
        "threads_per_rank": 2,
        "cpu_model": "AMD EPYC",
    }
    assert parallel_setup(tmp_path / "missing.log") == {}


def test_speed_per_core_second_with_hardware_and_level_of_theory(tmp_path):
    """Old behaviour: one wall-clock ratio, 'Speed against DFT' (for xTB too) and 'on this
    machine' whatever the hardware."""
    row, run = _speed_case(
        tmp_path,
        {"host": "node07", "device": "cpu", "torch_threads": 1, "cpu_model": "AMD EPYC", "device_name": "AMD EPYC"},
    )
    assert row["speedup_vs_cp2k"] == pytest.approx(8.0)
    assert row["cp2k_cores"] == 4 and row["mlmd_cores"] == 1
    assert row["speedup_per_core_vs_cp2k"] == pytest.approx(32.0)  # 0.08 s x 4 cores against 0.01 s x 1 core
    assert row["same_hardware"] and "2 MPI rank(s) x 2 thread(s)" in row["cp2k_hardware"]
    assert row["cp2k_conserved_drift_meV_per_atom_per_ps"] == pytest.approx(1.0, rel=1e-6)
    speed = _render(tmp_path, row, run)
    assert "ML-MD against CP2K GFN1-xTB" in speed and "against DFT" not in speed and "this machine" not in speed
    assert "32×" in speed and "8×" in speed and "same host" in speed


def test_speed_on_a_gpu_says_the_hardware_differs(tmp_path):
    row, run = _speed_case(
        tmp_path,
        {
            "host": "gpu01",
            "device": "cuda",
            "device_name": "NVIDIA H200",
            "torch_threads": 4,
            "cpu_model": "Intel Xeon",
        },
    )
    assert row["speedup_vs_cp2k"] == pytest.approx(8.0) and not row["same_hardware"]
    assert "speedup_per_core_vs_cp2k" not in row and row["mlmd_cores"] is None
    speed = _render(tmp_path, row, run)
    assert "NVIDIA H200" in speed and "different hardware" in speed and "– (GPU)" in speed
    assert "this machine" not in speed and "against DFT" not in speed


def test_every_undercoordinated_stretch_of_a_run_is_counted_not_only_the_first():
    """Three Cd-Se dimers' worth of AIMD fix the floor (one neighbour); in the run atom 1 leaves
    twice for 300 fs and once for 100 fs: two stretches of at least 200 fs, the second still
    under way at the end; the 100 fs flicker is none."""
    from ase import Atoms

    from qdff.validation.stability import Undercoordinated, undercoordinated_stretches

    def frame(d, t=None):
        a = Atoms("CdSe", positions=[[0, 0, 0], [d, 0, 0]])
        if t is not None:
            a.info["time"] = t
        return a

    aimd = [frame(2.6 + 0.05 * k) for k in range(3)]
    breaks = {"Cd-Se": 3.5}
    far = {*range(100, 400, 100), *range(600, 700, 100), *range(900, 1200, 100)}  # fs beyond 3.5 A
    traj = [frame(5.0 if t in far else 2.7, t) for t in range(0, 1200, 100)]
    got = undercoordinated_stretches(traj, aimd, breaks, 200.0)
    # both atoms lose their only neighbour: atom 0 (Cd) and atom 1 (Se), twice each
    assert [(s["atom"], s["from_fs"], s["to_fs"], s["lasted_fs"], s["ongoing"]) for s in got] == [
        (0, 100.0, 300.0, 200.0, False),
        (1, 100.0, 300.0, 200.0, False),
        (0, 900.0, 1100.0, 200.0, True),
        (1, 900.0, 1100.0, 200.0, True),
    ]
    assert all(s["neighbours_min"] == 0 for s in got)
    # the verdict's first failure is the first stretch's
    check = Undercoordinated(["Cd", "Se"], breaks, aimd, 200.0)
    first = next(r for a in traj if (r := check(a.positions, a.info["time"])))
    assert first.startswith("Cd 0 has 0 neighbour(s) within the break distances for 200 fs")
    # the verdict also counts every episode below the floor, the flicker too: 3 per atom, in the
    # 12 frames' 1200 fs
    check = Undercoordinated(["Cd", "Se"], breaks, aimd, 200.0)
    for a in traj:
        check(a.positions, a.info["time"])
    assert (check.episodes, check.observed_fs) == (6, 1200.0)


def test_the_coordination_floor_comes_from_the_same_aimd_frames_whoever_thins_them():
    """The recorder's verdict judged against at most BOND_REFERENCE_FRAMES evenly spaced AIMD
    frames; a benchmark that recomputed it from all of a long AIMD's frames got a lower floor
    from a frame the verdict never saw, and passed a run the verdict fails. A 1001-frame AIMD of
    a Cd-Se dimer, apart in its frame 1 only (not one of the 500): the floor is one neighbour
    either way, and a run apart for 300 fs fails it either way."""
    from ase import Atoms

    from qdff.data.dataset import evenly_spaced
    from qdff.validation.stability import BOND_REFERENCE_FRAMES, Undercoordinated, undercoordinated_by_seed

    def frame(d, t=None):
        a = Atoms("CdSe", positions=[[0, 0, 0], [d, 0, 0]])
        if t is not None:
            a.info.update(time=float(t), seed=7)
        return a

    aimd = [frame(5.0 if k == 1 else 2.6) for k in range(1001)]
    thinned = evenly_spaced(aimd, BOND_REFERENCE_FRAMES)
    assert len(thinned) == BOND_REFERENCE_FRAMES and not any(a is aimd[1] for a in thinned)
    breaks = {"Cd-Se": 3.5}
    assert Undercoordinated(["Cd", "Se"], breaks, aimd, 200.0).min_cn == {"Cd": 1, "Se": 1}
    assert Undercoordinated(["Cd", "Se"], breaks, thinned, 200.0).min_cn == {"Cd": 1, "Se": 1}
    run = [frame(5.0 if t >= 100 else 2.6, t) for t in range(0, 500, 50)]
    for reference in (aimd, thinned):
        assert undercoordinated_by_seed(run, reference, breaks, 200.0)[7].startswith("Cd 0 has 0 neighbour(s)")
