"""Real CP2K runs: the DFT path (pbe-fast) and resuming a killed MD run."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase.io import read, write

from qdff import config, cp2k_output, cp2k_run
from qdff.structures import cut_cluster, put_in_box

pytestmark = [pytest.mark.cp2k, pytest.mark.slow]
QDFF = str(Path(sys.executable).parent / "qdff")


def test_pbe_fast_md_runs_real_dft(tmp_path, cp2k_available):
    """Two MD steps of PBE-D3/DZVP on Cd2Se2 (about 75 s on 2 cores): the DFT path works."""
    cfg = config.validate({
        "name": "dft", "structure": {"n_pairs": 2, "vacuum": 5.0},
        "cp2k": {"preset": "pbe-fast", "threads": 2},
        "aimd": {"temperatures": [300], "steps": 2},
    })
    atoms = put_in_box(cut_cluster("CdSe", "zincblende", 2), 5.0)
    summary = cp2k_run.run_md(atoms, cfg, 300.0, tmp_path, tmp_path / "run.json")
    assert summary["steps_done"] == 2
    out = cp2k_output.convert_runs([tmp_path], tmp_path / "frames.extxyz")
    frames = read(tmp_path / "frames.extxyz", ":")
    assert out[0]["frames"] == 3
    e = frames[-1].get_potential_energy()
    # PBE total energy of Cd2Se2 with GTH-PBE pseudopotentials: about -3017 eV (-110.87 Ha)
    assert -3100 < e < -2900
    assert np.isfinite(frames[-1].get_forces()).all()
    assert "PBE" in (tmp_path / "md.inp").read_text()


def _wait_for_steps(ener, n, timeout):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if ener.is_file():
            lines = [l for l in ener.read_text().splitlines() if l.strip() and not l.startswith("#")]
            if len(lines) > n:
                return
        time.sleep(0.5)
    raise AssertionError(f"CP2K did not reach step {n} in {timeout} s")


def test_killed_md_resumes_without_lost_or_duplicated_frames(tiny_pipeline, tmp_path):
    relaxed = tiny_pipeline["workdir"] / "results/tiny/relax/relaxed.extxyz"
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(yaml.safe_dump({
        "name": "kill", "structure": {"n_pairs": 6},
        "aimd": {"temperatures": [500], "steps": 400, "print_every": 1},
    }))
    work = tmp_path / "run"
    cmd = [QDFF, "aimd", str(cfg_path), str(relaxed), "-t", "500", "-w", str(work)]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait_for_steps(work / "md-1.ener", 60, timeout=240)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # qdff and CP2K together, as a scheduler would
        proc.wait()
    killed_at = cp2k_run.completed_steps(work)
    assert 0 < killed_at < 400
    assert not (work / "run.json").exists()  # nothing claims to be finished
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"resuming from {work / 'md-1.restart'} at step {killed_at}" in done.stderr
    out = cp2k_output.convert_runs([work], tmp_path / "frames.extxyz")
    steps = [a.info["step"] for a in read(tmp_path / "frames.extxyz", ":")]
    assert steps == list(range(401)), "frames lost or duplicated across the restart"
    ener = cp2k_output.read_ener(work / "md-1.ener")
    assert list(ener["step"]) == list(range(401))
    assert out[0]["frames"] == 401
