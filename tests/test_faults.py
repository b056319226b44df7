"""Faults injected into real runs: each ends in a clear error or a clean continuation."""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from ase.io import read
from conftest import ROOT, snakemake

from qdff import config
from qdff.cp2k import output as cp2k_output
from qdff.cp2k import run as cp2k_run

pytestmark = pytest.mark.slow

# caps of the event-driven waits below (seconds): 3x the worst case measured with the other core
# busy (see the test)
CKPT_WAIT_S = 300
RESUME_S = 600


def _kill_cp2k_after(workdir: Path, steps: int, timeout: float = 720):
    """Kill the CP2K process this test started (as the OOM killer would) once it has written
    ``steps`` steps: by the PID qdff records in md.pid, and only if that process is a child
    of this test process, so that no other CP2K on the machine is touched."""
    state = {"killed": None}

    def watch():
        ener, pid_file = workdir / "md-1.ener", workdir / "md.pid"
        t0 = time.time()
        while time.time() - t0 < timeout:
            if ener.is_file() and len(ener.read_text().splitlines()) > steps + 1 and pid_file.is_file():
                pid = int(pid_file.read_text())
                if _parent_pid(pid) == os.getpid():
                    os.kill(pid, signal.SIGKILL)
                    state["killed"] = pid
                return
            time.sleep(0.3)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t, state


def _parent_pid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])  # the field after the (command name) is the state, then ppid


@pytest.mark.parametrize("policy", ["fail", "keep"])
def test_crashed_cp2k_fails_clearly_or_keeps_frames(tiny_pipeline, tmp_path, policy):
    atoms = read(tiny_pipeline["workdir"] / "results/tiny/relax/relaxed.extxyz")
    atoms.set_pbc(False)
    cfg = config.validate(
        {
            "name": "crash",
            "structure": {"n_pairs": 6},
            "cp2k": {"on_failure": policy},
            "aimd": {"temperatures": [400], "steps": 1000},
        }
    )
    work = tmp_path / "run"
    watcher, killed = _kill_cp2k_after(work, 40)
    if policy == "fail":
        with pytest.raises(
            cp2k_run.CP2KError,
            match=r"CP2K MD at 400 K failed \(killed by SIGKILL: probably out of memory .*peak memory seen \d+ MB; cp2k.mem_mb is \d+ MB.*\) after step \d+ of 1000; frames so far are kept",
        ):
            cp2k_run.run_md(atoms, cfg, 400.0, work, work / "run.json")
        assert not (work / "run.json").exists()
    else:
        summary = cp2k_run.run_md(atoms, cfg, 400.0, work, work / "run.json")
        assert 40 <= summary["steps_done"] < 1000
    watcher.join()
    assert killed["killed"], "the watcher did not find this test's CP2K"
    # the frames written before the crash are on disk and convert cleanly
    out = cp2k_output.convert_runs([work], tmp_path / "frames.extxyz")
    assert out[0]["frames"] >= 41


def test_changing_one_value_reruns_only_what_depends_on_it(tiny_pipeline, tmp_path):
    work = tiny_pipeline["workdir"]
    base = yaml.safe_load((ROOT / "tests/configs/tiny.yaml").read_text())

    def dry_run(change):
        cfg = yaml.safe_load(yaml.safe_dump(base))
        for path, value in change.items():
            node = cfg
            *parents, last = path.split(".")
            for p in parents:
                node = node.setdefault(p, {})
            node[last] = value
        f = tmp_path / "changed.yaml"
        f.write_text(yaml.safe_dump(cfg))
        proc = snakemake(work, "--profile", str(ROOT / "profiles/local"), "-n", configfile=f)
        return proc.stdout

    out = dry_run({"selection.seed": 7})
    for rule in ("select_frames", "train_model", "evaluate_model", "render_report"):
        assert f"rule {rule}:" in out or f"localrule {rule}:" in out, (rule, out[-3000:])
    for rule in ("relax_structure", "run_aimd", "convert_trajectory"):
        assert f"rule {rule}:" not in out, (rule, out[-3000:])
    # resources and launch command are not physics: nothing to do
    out = dry_run({"cp2k.mem_mb": 9999, "cp2k.command": "srun cp2k.psmp", "backends.deepmd.threads": 1})
    assert "Nothing to be done" in out, out[-3000:]


def _tiny_cfg(**deepmd):
    cfg = config.load(ROOT / "tests/configs/tiny.yaml")
    cfg["backends"]["deepmd"].update(deepmd)
    return cfg


# A learning rate that overflows float64 in the first update (weights of ~1e200 make losses of
# ~1e400 = inf): a divergence on every run, unlike a merely large rate that only sometimes blows up
OVERFLOWING_LR = {"start_lr": 1.0e200, "stop_lr": 1.0e199}


def test_diverging_training_fails_and_exports_nothing(tiny_pipeline, tmp_path):
    from qdff.steps import train
    from qdff.training.backends.common import TrainingError

    split = tiny_pipeline["workdir"] / "results/tiny/split"
    cfg = _tiny_cfg(steps=200, disp_freq=50, threads=1, **OVERFLOWING_LR)
    with pytest.raises(TrainingError, match="DeePMD training diverged: non-finite"):
        train.train_model(
            "deepmd",
            **train.train_params(cfg, "deepmd"),
            workdir=tmp_path / "work",
            split_dir=split,
            model_dir=tmp_path / "model",
        )
    assert not (tmp_path / "model" / "model.json").exists()


def test_useless_model_fails_the_gate_naming_both_numbers_and_exports_nothing(tiny_pipeline, tmp_path):
    """A finished, finite model that is no better than predicting zero force (here: a gate
    no short training can pass, 5% of the baseline) is refused with both numbers."""
    from qdff.steps import train
    from qdff.training.backends.common import TrainingError

    split = tiny_pipeline["workdir"] / "results/tiny/split"
    cfg = _tiny_cfg(steps=100, disp_freq=50, threads=1, compress=False)
    cfg["training"]["max_force_rmse_ratio"] = 0.05
    with pytest.raises(
        TrainingError,
        match=r"DeePMD model is not useful: force RMSE [\d.]+ meV/A on the 20 validation "
        r"frames against [\d.]+ meV/A for predicting zero force \(ratio 0\.\d\d > "
        r"training\.max_force_rmse_ratio 0\.05\)",
    ):
        train.train_model(
            "deepmd",
            **train.train_params(cfg, "deepmd"),
            workdir=tmp_path / "work",
            split_dir=split,
            model_dir=tmp_path / "model",
        )
    assert not (tmp_path / "model" / "model.json").exists() and not (tmp_path / "model" / "model.pth").exists()


def test_diverging_backend_fails_alone_and_other_backends_finish(tiny_pipeline, tmp_path):
    """One backend diverges: its rule fails with the message, no model of it appears, and
    (with --keep-going, as in the profiles) another backend is trained and evaluated."""
    src, work = tiny_pipeline["workdir"], tmp_path / "w"
    # the finished upstream stages with their timestamps and Snakemake's records, so that
    # only training and what follows it runs here
    shutil.copytree(
        src / "results/tiny",
        work / "results/tiny",
        ignore=shutil.ignore_patterns(
            "models", "training", "evaluation", "mlmd", "validation", "report*", "benchmarks"
        ),
    )
    shutil.copytree(src / ".snakemake/metadata", work / ".snakemake/metadata")
    raw = yaml.safe_load((ROOT / "tests/configs/tiny.yaml").read_text())
    raw["backends"]["deepmd"].update(steps=200, disp_freq=50, **OVERFLOWING_LR)
    raw["backends"]["schnetpack"] = {
        "enabled": True,
        "n_atom_basis": 16,
        "n_interactions": 2,
        "n_rbf": 10,
        "epochs": 5,
        "batch_size": 8,
        "lr": 0.005,
    }
    cfg_file = tmp_path / "two.yaml"
    cfg_file.write_text(yaml.safe_dump(raw))
    targets = [f"results/tiny/evaluation/{b}/metrics.json" for b in ("deepmd", "schnetpack")]
    proc = snakemake(work, *targets, "--profile", str(ROOT / "profiles/local"), configfile=cfg_file, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "rule run_aimd" not in out and "rule select_frames" not in out  # upstream reused
    assert "DeePMD training diverged" in (work / "logs/train_model/tiny_deepmd.log").read_text()
    assert not (work / "results/tiny/models/deepmd/model.json").exists()
    assert (work / "results/tiny/models/schnetpack/model.json").is_file()
    assert (work / "results/tiny/evaluation/schnetpack/metrics.json").is_file()


def test_killed_training_resumes_from_checkpoint(tiny_pipeline, tmp_path):
    split = tiny_pipeline["workdir"] / "results/tiny/split"
    cfg_file = tmp_path / "c.yaml"
    raw = yaml.safe_load((ROOT / "tests/configs/tiny.yaml").read_text())
    # a checkpoint every 60 steps (a tenth of the run), logged at the same steps; 1 thread:
    # 2 threads on a loaded 2-core machine are many times slower
    raw["backends"]["deepmd"].update(steps=600, disp_freq=60, threads=1, compress=False)  # compression: its own test
    cfg_file.write_text(yaml.safe_dump(raw))
    work, model = tmp_path / "work", tmp_path / "model"
    cmd = [
        str(Path(sys.executable).parent / "qdff"),
        "train",
        str(cfg_file),
        "--split",
        str(split),
        "-w",
        str(work),
        "-o",
        str(model),
    ]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        t0 = time.time()

        # cap: 3x the worst time to this checkpoint measured with the other core busy
        # DeePMD writes model.ckpt-N.pt, then points the model.ckpt.pt link at it: the link,
        # not the file, says checkpoint N is complete (a kill between the two resumes from the
        # previous one, as it should; waiting for the file alone made this test race)
        def linked_step() -> int:
            link = work / "model.ckpt.pt"
            try:
                return int(os.readlink(link).rsplit("-", 1)[1].split(".")[0]) if link.is_symlink() else -1
            except (OSError, ValueError, IndexError):
                return -1

        while linked_step() < 120:
            assert time.time() - t0 < CKPT_WAIT_S and proc.poll() is None, "no checkpoint appeared"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the process group this test started
        proc.wait()
    assert not (model / "model.json").exists()  # nothing that looks finished
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=RESUME_S)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming DeePMD training from" in done.stderr
    steps = [
        int(l.split()[0]) for l in (work / "lcurve.out").read_text().splitlines() if l.strip() and not l.startswith("#")
    ]
    restarts = [b for a, b in zip(steps, steps[1:]) if b <= a]  # where the second run began
    assert restarts and all(r >= 120 for r in restarts), steps  # from the checkpoint, not step 1
    assert steps.count(1) + steps.count(0) == 1 and steps[-1] == 600, steps
    assert (model / "model.json").exists() and (model / "model.pth").exists()


def test_exploding_mlmd_is_recorded_unstable_and_report_builds(tiny_pipeline, tmp_path):
    from test_mlmd import FlippedForces

    from qdff.data import dataset
    from qdff.fileio import write_json
    from qdff.steps import evaluate, report
    from qdff.training.models import load_calculator
    from qdff.validation import mlmd

    res = tiny_pipeline["workdir"] / "results/tiny"
    test_frames = dataset.read_frames(res / "split/test.extxyz")
    broken = FlippedForces(load_calculator(res / "models/deepmd"))  # the real model, forces flipped
    summary = mlmd.run(
        broken,
        test_frames[0],
        test_frames,
        temperature=300.0,
        steps=3000,
        timestep_fs=1.0,
        thermostat="langevin",
        thermostat_timecon_fs=100.0,
        bond_factor=1.5,
        seed=1,
    )
    assert not summary["stable"] and summary["reason"]
    summary["backend"] = "deepmd"
    write_json(tmp_path / "mlmd.json", summary)
    evaluate.collect_metrics(
        [res / "evaluation/deepmd/metrics.json"],
        tmp_path / "metrics.json",
        tmp_path / "metrics.csv",
        mlmd_files=[tmp_path / "mlmd.json"],
    )
    cfg = config.load(ROOT / "tests/configs/tiny.yaml")
    report.write_report(
        cfg,
        aimd_dirs=[res / "aimd/300K"],
        aimd_summaries=[res / "aimd/300K/run.json"],
        selection_file=res / "split/selection.json",
        metrics_file=tmp_path / "metrics.json",
        parity_plots={"deepmd": res / "evaluation/deepmd/parity.png"},
        model_dirs={"deepmd": res / "models/deepmd"},
        aimd_plot=tmp_path / "aimd.png",
        out=tmp_path / "report.html",
    )
    html = (tmp_path / "report.html").read_text()
    assert "UNSTABLE" in html and "300 K" in html
