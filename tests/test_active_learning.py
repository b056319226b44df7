"""Active learning: model deviation, trust window, candidate choice, stop rule (unit tests);
CP2K labelling that resumes after a kill; and a real 2-iteration loop (real CP2K xTB, real
DeePMD-kit committee of 2) that grows the training set and writes the report section."""

import json
import logging
import os
import re
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase import Atoms
from ase.io import read
from conftest import ROOT, jiggled, snakemake

from qdff import config
from qdff.active_learning import deviation, label, loop

DATA = ROOT / "tests/data"


def test_model_deviation_matches_a_hand_computed_example():
    # two models, one frame of two atoms: atom 0 differs by (0.2, 0, 0) between the models, so
    # each is 0.1 from the mean: sqrt(mean over models of |F - <F>|^2) = 0.1; atom 1 by (0, 0.6, 0.8)
    # (length 1.0): 0.5. Energies -10.0 and -10.4 eV: std 0.2 eV over 2 atoms = 0.1 eV/atom.
    forces = np.array([[[[0.1, 0, 0], [0, 0.3, 0.4]]], [[[-0.1, 0, 0], [0, -0.3, -0.4]]]])
    d = deviation.model_deviation(np.array([[-10.0], [-10.4]]), forces, n_atoms=2)
    assert d["max_devi_f"] == pytest.approx([0.5])
    assert d["avg_devi_f"] == pytest.approx([0.3])
    assert d["devi_e"] == pytest.approx([0.1])
    assert d["spread"] == pytest.approx(np.array([[0.1, 0.5]]))


def test_exactly_max_labels_distinct_candidates():
    rng = np.random.default_rng(1)
    rows = list(range(0, 200, 3))
    X = rng.normal(size=(200, 5))
    picked = deviation.pick_candidates(rows, X, 12)
    assert len(picked) == len(set(picked)) == 12 and set(picked) <= set(rows)
    # fewer candidates than the budget: all of them
    assert sorted(deviation.pick_candidates(rows[:5], X, 12)) == sorted(rows[:5])


def test_picks_come_before_a_failure_first_then_candidates_then_beyond():
    frames = [Atoms("Cd", info={}) for _ in range(8)]
    frames[6].info["before_failure"] = True
    frames[7].info["before_failure"] = True
    classes = np.array(["accurate", "candidate", "candidate", "beyond", "beyond", "failed", "accurate", "failed"])
    X = np.arange(8, dtype=float)[:, None]

    def X_of(rows):
        return X[rows]

    # the frame before a failure that is itself unphysical (7) is never picked
    assert loop.pick(classes, frames, X_of, 3) == ([6, 1, 2], {6})
    picked, for_failure = loop.pick(classes, frames, X_of, 10)
    assert sorted(picked) == [1, 2, 3, 4, 6] and for_failure == {6}
    assert loop.pick(classes, frames, X_of, 1) == ([6], {6})


def test_label_before_failure_false_picks_no_frame_for_being_before_a_failure():
    frames = [Atoms("Cd", info={}) for _ in range(4)]
    frames[3].info["before_failure"] = 1
    classes = np.array(["candidate", "accurate", "accurate", "accurate"])
    X = np.arange(4, dtype=float)[:, None]
    assert loop.pick(classes, frames, lambda rows: X[rows], 3) == ([3, 0], {3})
    # the key was documented but ignored before: now false means the committee alone picks,
    # and no frame is recorded as picked for a failure
    assert loop.pick(classes, frames, lambda rows: X[rows], 3, before_failure=False) == ([0], set())


def test_failure_path_frames_spread_over_the_span_before_the_failure_and_share_the_budget():
    def trajectory(n, every=10):
        return [Atoms("Cd", info={"time": float(every * k)}) for k in range(n)]

    # one frame: the last before the failure, as before
    t = trajectory(50)
    loop.mark_failure_path(t, 1, 300.0)
    assert [k for k, a in enumerate(t) if a.info.get("before_failure")] == [48]
    # four over the 300 fs before the failure at 490 fs: 190-480 fs, evenly, the last ranked first
    t = trajectory(50)
    loop.mark_failure_path(t, 4, 300.0)
    marked = {k: a.info["before_failure"] for k, a in enumerate(t) if a.info.get("before_failure")}
    assert marked == {48: 1, 38: 2, 29: 3, 19: 4}
    assert min(t[k].info["time"] for k in marked) >= 490 - 300
    # a trajectory shorter than the span: no more frames than it has, never the failing frame
    t = trajectory(3)
    loop.mark_failure_path(t, 8, 300.0)
    assert [a.info.get("before_failure") for a in t] == [2, 1, None]
    # two failures and a budget of 3: each failure's last frame first, then the next rank
    a, b = trajectory(50), trajectory(50)
    loop.mark_failure_path(a, 4, 300.0)
    loop.mark_failure_path(b, 4, 300.0)
    frames = a + b
    classes = np.array(["accurate"] * len(frames))
    picked, for_failure = loop.pick(classes, frames, lambda rows: np.zeros((len(rows), 1)), 3)
    assert picked == [48, 98, 38] and for_failure == {48, 98, 38}


def test_exploration_temperatures_add_the_stress_temperature():
    cfg = config.validate(
        {
            "name": "t",
            "structure": {"n_pairs": 6},
            "aimd": {"temperatures": [300, 600]},
            "active_learning": {"enabled": True},
        }
    )
    assert loop.exploration_temperatures(cfg) == [300.0, 600.0, 900.0]
    cfg["active_learning"]["extra_temperatures"] = [450]
    assert loop.exploration_temperatures(cfg) == [300.0, 450.0, 600.0]


def test_config_refuses_a_disabled_committee_backend_and_an_empty_trust_window():
    base = {"name": "t", "structure": {"n_pairs": 6}}
    with pytest.raises(config.ConfigError, match="active_learning.backend: 'nequip' is not enabled"):
        config.validate(
            {
                **base,
                "backends": {"nequip": {"enabled": False}},
                "active_learning": {"enabled": True, "backend": "nequip"},
            }
        )
    with pytest.raises(config.ConfigError, match="active_learning.trust_hi"):
        config.validate(
            {**base, "active_learning": {"enabled": True, "trust_levels": "fixed", "trust_lo": 0.5, "trust_hi": 0.2}}
        )


@pytest.mark.cp2k
@pytest.mark.slow
def test_killed_labelling_resumes_without_relabelling_finished_frames(cp2k_available, tmp_path, caplog):
    start = read(DATA / "Cd6Se6_xtb_relaxed.extxyz", format="extxyz")
    start.set_pbc(False)
    frames = jiggled(start, 8, 0.03, seed=2)
    for a in frames:
        a.info["temperature"] = 300.0
    cfg = config.validate({"name": "lab", "structure": {"n_pairs": 6}})
    work = tmp_path / "cp2k"
    state = {}

    def kill_after(n_frames, timeout=600):
        # this test's own CP2K only: the PID qdff records, if it is our child
        frc, pid_file = work / "part-1" / "label-frc-1.xyz", work / "part-1" / "label.pid"
        t0 = time.time()
        while time.time() - t0 < timeout:
            if frc.is_file() and frc.read_text().count(" i = ") >= n_frames + 1 and pid_file.is_file():
                pid = int(pid_file.read_text())
                if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1] == str(os.getpid()):
                    os.kill(pid, signal.SIGKILL)
                    state["killed"] = pid
                return
            time.sleep(0.1)

    t = threading.Thread(target=kill_after, args=(3,), daemon=True)
    t.start()
    with pytest.raises(
        Exception, match=r"CP2K labelling failed \(killed by SIGKILL: probably out of memory.*\) after \d of 8 frames"
    ):
        label.label_frames(frames, cfg, work, tmp_path / "labelled.extxyz", tmp_path / "labels.json")
    t.join()
    assert state.get("killed")
    assert not (tmp_path / "labels.json").exists()
    part1 = (work / "part-1" / "label-frc-1.xyz").read_text()
    done_before = part1.count(" i = ")
    with caplog.at_level(logging.INFO, logger="qdff"):
        s = label.label_frames(frames, cfg, work, tmp_path / "labelled.extxyz", tmp_path / "labels.json")
    assert (work / "part-1" / "label-frc-1.xyz").read_text() == part1  # finished frames not recomputed
    assert "resuming labelling at frame" in caplog.text
    part2 = (work / "part-2" / "label-frc-1.xyz").read_text().count(" i = ")
    assert s["frames"] == 8 and s["labelled"] + s["scf_not_converged"] == 8
    assert 8 - 1 <= done_before + part2 <= 8 + 1  # a frame cut by the kill is redone once
    out = read(tmp_path / "labelled.extxyz", ":")
    assert len(out) == s["labelled"]
    # GFN1-xTB total energy of Cd6Se6, about -694 eV, for every frame; forces finite
    assert all(-720 < a.get_potential_energy() < -670 for a in out)
    assert all(np.isfinite(a.get_forces()).all() for a in out)


@pytest.mark.cp2k
@pytest.mark.slow
def test_a_frame_cp2k_aborts_on_is_dropped_and_the_rest_labelled(cp2k_available, tmp_path, caplog):
    """xTB can abort on a frame (atomic charges outside its range: a candidate of the 149-atom
    dot did so from the previous frame's wavefunction and converged from a fresh guess; Cd6Se6
    squeezed to 0.6 of its size aborts from both): the frame is retried from a fresh guess,
    then dropped, and the next ones labelled; too many such frames fail."""
    start = read(DATA / "Cd6Se6_xtb_relaxed.extxyz", format="extxyz")
    start.set_pbc(False)
    bad = start.copy()
    bad.positions = bad.positions.mean(0) + 0.6 * (bad.positions - bad.positions.mean(0))
    good = jiggled(start, 5, 0.03, seed=5)
    frames = [good[0], good[1], bad, good[2], good[3], good[4]]
    cfg = config.validate({"name": "lab", "structure": {"n_pairs": 6}, "cp2k": {"threads": 1}})
    with caplog.at_level(logging.INFO, logger="qdff"):
        s = label.label_frames(frames, cfg, tmp_path / "w", tmp_path / "out.extxyz", tmp_path / "s.json")
    assert "CP2K aborted on frame 3 of 6, its SCF started from frame 2's wavefunction; retrying" in caplog.text
    assert "CP2K aborted on frame 3 of 6 from a fresh guess (dropped" in caplog.text
    assert "Atomic charges outside" in caplog.text
    assert sorted(q.name for q in (tmp_path / "w").glob("part-*")) == ["part-1", "part-2", "part-3"]
    assert s["labelled"] == 5 and s["cp2k_aborted"] == 1 and s["dropped_frames"] == [2]
    out = read(tmp_path / "out.extxyz", ":")
    assert [np.allclose(a.positions, f.positions) for a, f in zip(out, [*frames[:2], *frames[3:]])] == [True] * 5
    # a rerun finds every frame done (the aborted one included) and runs no CP2K
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="qdff"):
        again = label.label_frames(frames, cfg, tmp_path / "w", tmp_path / "again.extxyz", tmp_path / "a.json")
    assert "6 frame(s) already labelled" in caplog.text and "CP2K labels frames" not in caplog.text
    assert again["labelled"] == 5 and again["dropped_frames"] == [2]
    with pytest.raises(Exception, match=r"CP2K aborted on 1 of 3 frames \(frames \[1\]\), more than 20%"):
        label.label_frames([bad, bad.copy(), good[0]], cfg, tmp_path / "w2", tmp_path / "x.extxyz", tmp_path / "x.json")


@pytest.mark.cp2k
@pytest.mark.slow
def test_labels_left_by_other_frames_are_set_aside_not_reused(cp2k_available, tmp_path, caplog):
    """An iteration explored again (its inputs changed) finds the parts its earlier candidates
    left: their energies must not be given to the new frames (found on the 149-atom dot, where
    50 stale labels were attached to 50 new frames in 1.5 s)."""
    start = read(DATA / "Cd6Se6_xtb_relaxed.extxyz", format="extxyz")
    start.set_pbc(False)
    old, new = jiggled(start, 2, 0.03, seed=3), jiggled(start, 2, 0.03, seed=4)
    cfg = config.validate({"name": "lab", "structure": {"n_pairs": 6}})
    label.label_frames(old, cfg, tmp_path / "w", tmp_path / "old.extxyz", tmp_path / "old.json")
    with caplog.at_level(logging.INFO, logger="qdff"):
        label.label_frames(new, cfg, tmp_path / "w", tmp_path / "new.extxyz", tmp_path / "new.json")
    assert "labels of other frames" in caplog.text and "resuming labelling" not in caplog.text
    assert len(list((tmp_path / "w" / "superseded").glob("*/part-1"))) == 1
    label.label_frames(new, cfg, tmp_path / "fresh", tmp_path / "fresh.extxyz", tmp_path / "fresh.json")
    got, fresh, stale = (read(tmp_path / f"{k}.extxyz", ":") for k in ("new", "fresh", "old"))
    assert len(got) == len(fresh) == 2
    for g, f, o in zip(got, fresh, stale):
        assert np.allclose(g.positions, f.positions)
        assert abs(g.get_potential_energy() - f.get_potential_energy()) < 1e-4
        assert np.abs(g.get_forces() - f.get_forces()).max() < 1e-3
        assert abs(g.get_potential_energy() - o.get_potential_energy()) > 1e-3  # the jiggles differ
    # the same frames again: resumed, nothing recomputed
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="qdff"):
        label.label_frames(new, cfg, tmp_path / "w", tmp_path / "again.extxyz", tmp_path / "again.json")
    assert "2 frame(s) already labelled" in caplog.text and "labels of other frames" not in caplog.text


@pytest.mark.cp2k
@pytest.mark.slow
def test_two_iteration_loop_grows_the_training_set_and_reports(tiny_pipeline, tmp_path):
    """tests/configs/tiny-al.yaml on the upstream results of the tiny pipeline: a seed
    exploration with SevenNet-0, then the committee loop."""
    src, work = tiny_pipeline["workdir"], tmp_path / "w"
    shutil.copytree(
        src / "results/tiny",
        work / "results/tiny",
        ignore=shutil.ignore_patterns(
            "models", "training", "evaluation", "mlmd", "validation", "report*", "benchmarks", "learning_curve"
        ),
    )
    shutil.copytree(src / ".snakemake/metadata", work / ".snakemake/metadata")
    cfg = ROOT / "tests/configs/tiny-al.yaml"
    proc = snakemake(work, "--profile", str(ROOT / "profiles/local"), configfile=cfg)
    out = proc.stdout + proc.stderr
    assert "rule run_aimd" not in out  # upstream reused
    al = work / "results/tiny/al"
    summary = json.loads((al / "summary.json").read_text())
    its = summary["iterations"]
    assert [r["iteration"] for r in its] == list(range(len(its))) and 1 <= len(its) <= 2
    n0 = its[0]["train_frames"]
    for prev, r in zip(its, its[1:]):
        # the new labels, less those held back to calibrate the next committee (1 in 5)
        assert r["train_frames"] == prev["train_frames"] + prev["labels_added"] - len(
            loop.held_back(prev["labels_added"], 0.2)
        )
    assert sum(r["labels_added"] for r in its) > 0, "no CP2K labels"
    # each iteration after the first says whether member 0 learnt the labels before it
    assert its[0]["labels_learnt"] is None
    for prev, r in zip(its, its[1:]):
        assert r["labels_learnt"]["frames"] == prev["labels_added"]
    assert all(r["labels_requested"] <= 5 for r in its)
    # the seed exploration with SevenNet-0 (explore_with) labelled frames for iteration 0
    seed = summary["seed"]
    assert seed["explore_with"] == "sevennet0" and 0 < seed["labels_requested"] <= 5 and seed["labels_added"] > 0
    assert summary["cp2k_evaluations_total"] == (
        summary["aimd_steps"] + seed["labels_requested"] + sum(r["labels_requested"] for r in its)
    )
    # 2 runs of 400 steps, 80 selected frames (tests/configs/tiny-al.yaml), and the seed's labels
    assert n0 == 80 + seed["labels_added"] - len(loop.held_back(seed["labels_added"], 0.2))
    assert summary["aimd_steps"] == 800
    assert its[0]["cp2k_evaluations_before"] == 800 + seed["labels_requested"]
    # the held-out frames never enter training
    test_keys = {(a.info["run"], a.info["step"]) for a in read(work / "results/tiny/split/test.extxyz", ":")}
    last_train = al / f"iter{len(its) - 1}" / "train.extxyz"
    if last_train.is_file():
        assert not test_keys & {(a.info.get("run"), a.info.get("step")) for a in read(last_train, ":")}
    # the system's deepmd model is member 0 of the final iteration, and the report shows the loop
    meta = json.loads((work / "results/tiny/models/deepmd/model.json").read_text())
    assert meta["active_learning"]["from"].endswith(f"iter{summary['final_iteration']}/committee/m0")
    html = (work / "results/tiny/report.html").read_text()
    assert 'id="active-learning"' in html and "Spearman" in html and "CP2K force evaluations" in html
    assert 'id="al-seed"' in html and "zero-shot <b>sevennet0</b>" in html
    table = (al / "iter0/explore/deviations.csv").read_text().splitlines()
    assert table[0].startswith("iteration,temperature,trajectory,step,max_devi_f")
    # the ladder's first rung: the AIMD temperatures
    assert {line.split(",")[1] for line in table[1:]} == {"300.0", "600.0"}
    # every iteration is calibrated and says why the loop ended or went on; the last one ends it
    for r in its:
        assert r["calibration"]["frames"] >= 20 and r["trust_lo"] > 0 and r["temperatures"][:2] == [300.0, 600.0]
    assert its[-1]["stop_reason"] in ("converged", "iterations") and summary["stop_reason"] == its[-1]["stop_reason"]
    assert "ends the loop" in html and "calibration: scale" in html
    if len(its) == 2:
        # iteration 1's members started from iteration 0's weights, and saw 80 % of the frames
        log = (work / "logs/train_committee_member/tiny_iter1_m1.log").read_text()
        assert "warm start" in log and f"of {its[1]['train_frames']} training frames" in log
    # one more iteration allowed: no earlier iteration explores again (only the last one's stop
    # rule depends on max_iterations)
    more = yaml.safe_load(cfg.read_text())
    more["active_learning"]["max_iterations"] += 1
    (tmp_path / "more.yaml").write_text(yaml.safe_dump(more))
    dry = snakemake(work, "--profile", str(ROOT / "profiles/local"), "-n", configfile=tmp_path / "more.yaml").stdout
    again = re.findall(r"checkpoint explore_committee:.*?wildcards: system=tiny, i=(\d+)", dry, re.S)
    assert set(again) <= {str(len(its) - 1)}, dry[-3000:]


def test_seed_exploration_with_one_model_picks_distinct_frames_by_fps(tmp_path):
    """explore_with: one model explores; at most max_labels of its frames are picked, all
    distinct, from its own trajectories."""
    from ase.calculators.lj import LennardJones
    from ase.calculators.singlepoint import SinglePointCalculator

    from qdff.data import dataset
    from qdff.structure.build import cut_cluster

    cfg = config.load(ROOT / "tests/configs/tiny-al.yaml")
    cfg["active_learning"].update(explore_with="sevennet0", explore_steps=60, record_every=5, max_labels=4)
    lj = LennardJones(sigma=2.3, epsilon=0.3, rc=8.0, smooth=True)
    frames = []
    for k, a in enumerate(jiggled(cut_cluster("CdSe", "zincblende", 6), 12, 0.05, seed=1)):
        a.calc = lj
        e, f = a.get_potential_energy(), a.get_forces()
        a.calc = SinglePointCalculator(a, energy=e, forces=f)
        a.info.update(temperature=300.0 if k < 6 else 600.0, run=f"aimd{k // 6}", step=k)
        frames.append(a)
    dataset.write_frames(tmp_path / "train.extxyz", frames)
    out = loop.explore_with_baseline(
        cfg,
        None,
        tmp_path / "train.extxyz",
        tmp_path / "frames.csv",
        tmp_path / "candidates.extxyz",
        tmp_path / "explore.json",
        calc=lj,
    )
    per_t = out["per_temperature"]
    assert set(per_t) == {"300", "600", "900"}  # the AIMD temperatures and tiny-al's stress temperature
    assert out["frames_explored"] == sum(s["frames"] for s in per_t.values()) > 4
    picked = read(tmp_path / "candidates.extxyz", ":")
    assert len(picked) == out["picked"] == 4
    keys = [(a.info["run"], a.info["step"]) for a in picked]
    assert len(set(keys)) == 4 and all(r.startswith("seed-") for r, _ in keys)
    rows = (tmp_path / "frames.csv").read_text().splitlines()
    assert rows[0] == "temperature,trajectory,step,picked" and len(rows) == out["frames_explored"] + 1
    assert sum(int(r.split(",")[-1]) for r in rows[1:]) == 4
    assert json.loads((tmp_path / "explore.json").read_text())["explore_with"] == "sevennet0"


def test_explore_with_must_name_a_baseline_of_the_config():
    base = {"name": "x", "structure": {}, "active_learning": {"enabled": True, "explore_with": "sevennet0"}}
    assert config.validate(json.loads(json.dumps(base)))["active_learning"]["explore_with"] == "sevennet0"
    with pytest.raises(config.ConfigError, match=r"active_learning\.explore_with: 'sevennet0' is not in baselines"):
        config.validate({**json.loads(json.dumps(base)), "baselines": []})


def test_exploration_in_lammps_runs_each_trajectory_in_its_own_folder(tmp_path, monkeypatch):
    """mlmd.engine: lammps: member 0's model explores through mlmd.run_lammps (here a stand-in
    that runs the same ML-MD in ASE with Lennard-Jones), one working folder per trajectory."""
    from ase.calculators.lj import LennardJones

    from qdff.structure.build import cut_cluster
    from qdff.validation import mlmd

    cfg = config.load(ROOT / "tests/configs/tiny-al.yaml")
    cfg["mlmd"]["engine"] = "lammps"
    cfg["active_learning"].update(explore_steps=20, record_every=5, trajectories_per_temperature=2)
    lj = LennardJones(sigma=2.3, epsilon=0.3, rc=8.0, smooth=True)
    aimd = []
    for k, a in enumerate(jiggled(cut_cluster("CdSe", "zincblende", 6), 8, 0.05, seed=1)):
        a.info.update(temperature=300.0 if k < 4 else 600.0, run=f"aimd{k // 4}", step=k)
        aimd.append(a)
    calls = []

    def fake_run_lammps(model_dir, start, reference, *, workdir, threads, **kw):
        calls.append((model_dir, Path(workdir), kw["temperature"]))
        return mlmd.run(lj, start, reference, **kw)

    monkeypatch.setattr(mlmd, "run_lammps", fake_run_lammps)
    explored, per_t, _ = loop._explore_trajectories(
        None,
        aimd,
        cfg,
        seed_offset=0,
        al_iteration=0,
        run_prefix="al0",
        model_dir=tmp_path / "m0",
        workdir=tmp_path / "lmp",
    )
    temps = loop.exploration_temperatures(cfg)
    assert len(calls) == 2 * len(temps) and {c[0] for c in calls} == {tmp_path / "m0"}
    assert sorted(str(c[1].relative_to(tmp_path / "lmp")) for c in calls) == sorted(
        f"{T:g}K-{j}" for T in temps for j in range(2)
    )
    assert explored and all(a.info["run"].startswith("al0-") for a in explored)
    assert mlmd.engine_for(cfg, cfg["active_learning"]["backend"]) == "lammps"  # tiny-al's committee is DeePMD
