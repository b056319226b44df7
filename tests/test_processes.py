"""A job stopped with SIGTERM stops the child process it started (CP2K, a training command)."""

import os
import subprocess
import sys
import textwrap
import time

import psutil
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
