"""A job stopped with SIGTERM stops the child process it started (CP2K, a training command)."""

import os
import subprocess
import sys
import textwrap
import time

import psutil
import pytest
from conftest import ROOT


def test_sigterm_to_the_job_stops_its_child_process(tmp_path):
    # a job that runs a long child through qdff's CP2K runner (the "CP2K" here is `sleep`);
    # SIGTERM to the job must end the child too, not leave it running (it would go on
    # writing into the directory the job's rerun resumes from)
    script = tmp_path / "job.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            sys.path.insert(0, {str(ROOT)!r})
            from pathlib import Path
            from qdff.cp2k.run import run_cp2k
            run_cp2k(["bash", "-c", "sleep 60", "bash"], Path({str(tmp_path)!r}), "x", 1)
            """
        )
    )
    job = subprocess.Popen([sys.executable, str(script)])
    pid_file = tmp_path / "x.pid"
    deadline = time.time() + 30
    while not pid_file.is_file() and time.time() < deadline:
        time.sleep(0.1)
    child = int(pid_file.read_text())
    assert psutil.pid_exists(child)
    os.kill(job.pid, 15)
    assert job.wait(timeout=30) == 128 + 15
    proc = psutil.Process(child) if psutil.pid_exists(child) else None
    assert proc is None or proc.status() == psutil.STATUS_ZOMBIE, "the child outlived the job"


def test_a_cp2k_left_running_in_the_run_directory_refuses_a_second_one(tmp_path):
    # a "CP2K" (sleep, started under the name cp2k.psmp) still running in the directory with its
    # PID file there: a rerun must not start a second one writing into the same files
    from qdff.cp2k.run import CP2KError, run_cp2k, running_in

    fake = tmp_path / "cp2k.psmp"
    fake.symlink_to("/bin/sleep")
    left = subprocess.Popen([str(fake), "60"], cwd=tmp_path)
    try:
        (tmp_path / "x.pid").write_text(f"{left.pid}\n")
        assert running_in(tmp_path / "x.pid", tmp_path) == left.pid
        with pytest.raises(CP2KError, match=f"PID {left.pid}.* still running in"):
            run_cp2k(["true"], tmp_path, "x", 1)
        assert (tmp_path / "x.pid").read_text().strip() == str(left.pid)  # not overwritten
        # the same PID file once that process has ended (or for a process elsewhere): no objection
        assert running_in(tmp_path / "x.pid", tmp_path.parent) is None
    finally:
        left.kill()
        left.wait()
    assert running_in(tmp_path / "x.pid", tmp_path) is None
