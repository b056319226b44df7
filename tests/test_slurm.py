"""The cluster profile against a real Slurm: CP2K jobs in `cpu`, training in `gpu`."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from slurm_cluster import SlurmCluster, SlurmUnavailable

pytestmark = pytest.mark.slow

# The only differences between the production profile and the test profile, on purpose
# small: this machine's GPU partition has no GPU (so no gres request), there is no
# accounting database (so no account and squeue polling), and status checks start soon.
TEST_PROFILE_PATCH = {
    "slurm-no-account": True,
    "slurm-status-command": "squeue",
    "slurm-init-seconds-before-status-checks": 5,
    "jobs": 4,
}


def test_profile_routes_jobs_by_partition(tmp_path):
    cluster = SlurmCluster(tmp_path / "slurm")
    try:
        cluster.start()
    except SlurmUnavailable as exc:
        cluster.stop()
        pytest.skip(f"Slurm cannot run here: {exc}")
    try:
        profile = yaml.safe_load((ROOT / "profiles/cluster/config.yaml").read_text())
        assert profile["set-resources"]["train_model"]["gpu"] == 1  # production keeps the GPU request
        profile.update(TEST_PROFILE_PATCH)
        for rule in profile["set-resources"].values():
            rule.pop("gres", None)
            rule.pop("gpu", None)
            rule.pop("mpi", None)
            if "tasks" in rule:
                rule["tasks"] = 1
        (tmp_path / "profile").mkdir()
        (tmp_path / "profile/config.yaml").write_text(yaml.safe_dump(profile))
        work = tmp_path / "work"
        work.mkdir()
        cmd = [str(Path(sys.executable).parent / "snakemake"), "-s", str(ROOT / "Snakefile"), "-d", str(work),
               "--profile", str(tmp_path / "profile"), "--configfile", str(ROOT / "tests/configs/slurm.yaml")]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=cluster.env, timeout=1500)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-6000:]
        assert (work / "results/slurm/report.html").is_file()
        jobs = cluster.jobs()
        print("Slurm records (sacct -c):")
        for j in jobs:
            print(f"  {j['jobid']:>4} {j['name']:<40} {j['partition']:<5} {j['state']}")
        by_rule = {}
        for line in cluster.job_comments():
            pass
        rules_seen = {}
        for j in jobs:
            for rule in ("run_aimd", "relax_structure", "train_model", "select_frames"):
                if rule in j["name"] or rule in _job_comment(cluster, j["jobid"]):
                    rules_seen.setdefault(rule, []).append(j)
        assert all(j["state"] == "COMPLETED" for j in jobs), jobs
        assert rules_seen.get("run_aimd") and all(j["partition"] == "cpu" for j in rules_seen["run_aimd"]), jobs
        assert rules_seen.get("train_model") and all(j["partition"] == "gpu" for j in rules_seen["train_model"]), jobs
    finally:
        cluster.stop()


def _job_comment(cluster, jobid):
    for line in cluster.job_comments():
        if f"JobId={jobid} " in line:
            return line
    return ""
