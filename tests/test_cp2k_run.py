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
from ase.io import read

from qdff import config
from qdff.cp2k import output as cp2k_output
from qdff.cp2k import run as cp2k_run
from qdff.structure.build import cut_cluster, put_in_box

pytestmark = [pytest.mark.cp2k, pytest.mark.slow]
QDFF = str(Path(sys.executable).parent / "qdff")


def test_pbe_fast_md_runs_real_dft(tmp_path, cp2k_available):
    """Two MD steps of PBE-D3/DZVP on Cd2Se2 (about 75 s on 2 cores): the DFT path works."""
    cfg = config.validate(
        {
            "name": "dft",
            "structure": {"n_pairs": 2, "vacuum": 5.0},
            "cp2k": {"preset": "pbe-fast", "threads": 2},
            "aimd": {"temperatures": [300], "steps": 2},
        }
    )
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
    cfg_path.write_text(
        yaml.safe_dump(
            {
                "name": "kill",
                "structure": {"n_pairs": 6},
                "aimd": {"temperatures": [500], "steps": 400, "print_every": 1},
            }
        )
    )
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
    # from md-1.restart, or from its backup when the kill hit the restart file's rewrite
    # (qdff.cp2k.run.restart_file): either way at the step the complete one recorded
    assert any(
        f"resuming from {work / name} at step {killed_at}" in done.stderr
        for name in ("md-1.restart", "md-1.restart.bak-1")
    ), done.stderr[-3000:]
    out = cp2k_output.convert_runs([work], tmp_path / "frames.extxyz")
    steps = [a.info["step"] for a in read(tmp_path / "frames.extxyz", ":")]
    assert steps == list(range(401)), "frames lost or duplicated across the restart"
    ener = cp2k_output.read_ener(work / "md-1.ener")
    assert list(ener["step"]) == list(range(401))
    assert out[0]["frames"] == 401


def test_exit_status_in_words_names_a_probable_out_of_memory_kill():
    from qdff.cp2k.run import RunResult, explain_exit

    # a process killed by the kernel's OOM killer shows up as -9 (Popen) or 137 (a shell)
    for rc in (-9, 137):
        text = explain_exit(RunResult(rc, 21500.4), mem_mb=16000)
        assert "SIGKILL" in text and "probably out of memory" in text
        assert "peak memory seen 21500 MB" in text and "cp2k.mem_mb is 16000 MB" in text
    assert explain_exit(RunResult(1, 300.0)) == "exit 1"  # CP2K's own abort: its message says why
    assert "not measured" in explain_exit(RunResult(-15, None))


def test_run_cp2k_samples_the_memory_of_the_process_tree(tmp_path):
    """The peak covers child processes (MPI ranks under mpirun), not only the launcher."""
    import sys

    from qdff.cp2k.run import run_cp2k

    # a launcher whose child holds ~200 MB; the launcher itself holds almost nothing
    child = "import time; b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(3)"
    script = tmp_path / "launcher.py"
    script.write_text(f"import subprocess, sys; sys.exit(subprocess.call([sys.executable, '-c', {child!r}]))\n")
    (tmp_path / "x.inp").write_text("")
    res = run_cp2k([sys.executable, str(script)], tmp_path, "x", 1)
    assert res.returncode == 0
    assert res.peak_mb is not None and res.peak_mb > 200


def test_a_run_that_cannot_fit_in_cp2k_mem_mb_stops_before_cp2k_starts(tmp_path, caplog):
    """The 149-atom dot at `pbe` needs gigabytes of grids: with the 2000 MB default the
    run must stop in preflight with the key to change, not be killed after the set-up."""
    from qdff import config
    from qdff.cp2k import run as cp2k_run
    from qdff.structure import build as structures

    atoms = structures.put_in_box(
        read(next(Path(structures.__file__).parent.parent.glob("data/structures/Cd68Se55Cl26*.xyz"))), 6.0
    )
    cfg = config.validate({"name": "big", "structure": {"source": "file", "file": "x.xyz"}, "cp2k": {"preset": "pbe"}})
    with pytest.raises(
        cp2k_run.CP2KError, match=r"cp2k.mem_mb: CP2K needs about \d+ MB .* more than cp2k.mem_mb = 2000 MB"
    ):
        cp2k_run.run_md(atoms, cfg, 300.0, tmp_path / "run", tmp_path / "run.json")
    assert not (tmp_path / "run" / "md.inp").exists()  # nothing was started
    cfg["cp2k"]["mem_mb"] = 64000
    est = cp2k_run.check_memory(atoms, cfg)
    # grid points grow as (box * sqrt(cutoff))^3: 400 Ry in a 30.6 A box
    assert est["grid"][0] >= 360 and est["mem_mb"] > 10000
    # every MPI rank holds its own base
    cfg["cp2k"]["command"] = "mpirun -np 4 cp2k.psmp"
    assert "lower bound" not in caplog.text
    assert cp2k_run.check_memory(atoms, cfg)["mem_mb"] > est["mem_mb"] + 3 * 150
    # ... and says that with several ranks on a big grid it is a lower bound (measured with 2)
    assert "CP2K memory estimate for 4 MPI ranks is a lower bound" in caplog.text
    cfg["cp2k"]["preset"] = "xtb"
    assert cp2k_run.check_memory(atoms, cfg)["grid"] is None  # xTB has no plane-wave grid


def test_mpi_ranks_of_the_cp2k_command(monkeypatch):
    from qdff.cp2k.run import mpi_ranks

    monkeypatch.delenv("SLURM_NTASKS", raising=False)
    assert mpi_ranks("cp2k.psmp") == 1
    assert mpi_ranks("mpirun -np 8 cp2k.psmp") == 8
    assert mpi_ranks("srun cp2k.psmp") == 1
    monkeypatch.setenv("SLURM_NTASKS", "32")
    assert mpi_ranks("srun cp2k.psmp") == 32
    assert mpi_ranks("/usr/bin/srun --mpi=pmix cp2k.psmp") == 32


def test_a_restart_file_truncated_by_a_kill_falls_back_to_its_backup(tmp_path, cp2k_available):
    """A SIGKILL while CP2K rewrites md-1.restart left 46 bytes of it (seen in a test run);
    the run must still count its frames and resume from the previous step's backup."""
    atoms = put_in_box(read(Path(__file__).parent / "data/Cd6Se6_xtb_relaxed.extxyz"), 8.0)
    cfg = config.validate({"name": "t", "structure": {"n_pairs": 6}, "aimd": {"temperatures": [300], "steps": 5}})
    cp2k_run.run_md(atoms, cfg, 300.0, tmp_path, tmp_path / "run.json")
    assert cp2k_run.restart_file(tmp_path) == (tmp_path / "md-1.restart", 5)
    main = tmp_path / "md-1.restart"
    main.write_text(main.read_text()[:46])  # as the kill left it
    assert cp2k_run.restart_file(tmp_path) == (tmp_path / "md-1.restart.bak-1", 4)
    cfg["aimd"]["steps"] = 8
    summary = cp2k_run.run_md(atoms, cfg, 300.0, tmp_path, tmp_path / "run.json")
    assert summary["steps_done"] == 8
    out = cp2k_output.convert_runs([tmp_path], tmp_path / "frames.extxyz")
    assert out[0]["frames"] == 9  # steps 0-8, step 5 written twice and kept once


def test_md_with_changed_settings_starts_afresh_and_more_steps_extend_it(tmp_path, cp2k_available, caplog):
    """Raising aimd.steps continues a finished run; a changed seed (or level of theory,
    temperature, time step, start) does not continue a trajectory made with the old one."""
    import logging

    atoms = read(Path(__file__).parent / "data" / "Cd6Se6_xtb_relaxed.extxyz")
    atoms.set_pbc(False)

    def md(steps, seed):
        cfg = config.validate(
            {"name": "ext", "structure": {"n_pairs": 6}, "aimd": {"temperatures": [300], "steps": steps, "seed": seed}}
        )
        cp2k_run.run_md(atoms, cfg, 300.0, tmp_path, tmp_path / "run.json")
        return cp2k_output.read_ener(tmp_path / "md-1.ener")

    first = md(3, seed=1)
    with caplog.at_level(logging.INFO, logger="qdff"):
        longer = md(5, seed=1)
    assert "resuming from" in caplog.text and "other settings" not in caplog.text
    assert list(longer["step"]) == list(range(6))
    assert np.allclose(
        longer["potential"][:4], first["potential"], rtol=0, atol=1e-6
    )  # the first steps kept as they were
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="qdff"):
        other = md(5, seed=2)
    assert "other settings (seed changed)" in caplog.text and "resuming from" not in caplog.text
    assert list(other["step"]) == list(range(6))
    assert not np.allclose(other["potential"][1:], longer["potential"][1:], rtol=0, atol=1e-5)  # other velocities
    (old,) = (tmp_path / "superseded").glob("*/md-1.ener")
    assert np.allclose(cp2k_output.read_ener(old)["potential"], longer["potential"], rtol=0, atol=1e-6)


def test_progress_of_a_resumed_md_waits_for_its_own_first_step(tmp_path, caplog):
    """A resumed run's .ener still ends with the killed run's steps (CP2K rewrites those past
    the restart): the progress line must not report them as this run's step and ETA."""
    ener = tmp_path / "md-1.ener"
    row = "{:d} {:d}.0 0.1 300.0 -1.0 -1.0 {:.1f}\n"
    ener.write_text("".join(row.format(s, s, 9.0) for s in range(6)))  # killed after step 5
    progress = cp2k_run._Progress(ener, total=10, every_s=0.0)
    with ener.open("a") as fh:  # the restart was at step 4: step 5 again, same step count
        fh.write(row.format(5, 5, 2.0))
    with caplog.at_level("INFO", logger="qdff.cp2k.run"):
        progress()
        assert not caplog.records
        with ener.open("a") as fh:
            fh.write(row.format(6, 6, 2.0))
        progress()
    (rec,) = caplog.records
    # this run's two steps (5 again, 6) at 2 s each, not the killed run's 9 s
    assert rec.getMessage() == "MD step 6/10, 2.00 s/step, T=300 K, ETA 8 s"
