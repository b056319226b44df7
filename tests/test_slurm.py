"""The cluster profile against a real Slurm: CP2K jobs in `cpu`, training in `gpu`."""

import re
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
            rule.pop("gres", None)  # no GPU in this machine's gpu partition ...
            if "gpu" in rule:
                rule["gpu"] = 0  # ... so the rule's gpu=1 is overridden here
            if "tasks" in rule:
                rule["tasks"] = 2  # the node has 2 cores
        (tmp_path / "profile").mkdir()
        (tmp_path / "profile/config.yaml").write_text(yaml.safe_dump(profile))
        work = tmp_path / "work"
        work.mkdir()
        cmd = [
            str(Path(sys.executable).parent / "snakemake"),
            "-s",
            str(ROOT / "Snakefile"),
            "-d",
            str(work),
            "--profile",
            str(tmp_path / "profile"),
            # through training (CP2K on the cpu partition, the training on the gpu one): the
            # stages after it are the same rules as locally and would double this test's time
            "results/slurm/evaluation/deepmd/metrics.json",
            "--configfile",
            str(ROOT / "tests/configs/slurm.yaml"),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=cluster.env, timeout=1500)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-6000:]
        assert (work / "results/slurm/evaluation/deepmd/metrics.json").is_file()
        completed = {j["jobid"]: j for j in cluster.jobs()}  # sacct -c: job-completion records
        held = cluster.controller_jobs()  # scontrol: the same jobs with the rule in the comment
        print("Slurm records (scontrol comment | sacct -c partition, state):")
        for j in held:
            c = completed.get(j["jobid"], {})
            print(f"  {j['jobid']:>4} {j['comment']:<45} | {c.get('partition')} {c.get('state')}")
        assert held and all(completed[j["jobid"]]["state"] == "COMPLETED" for j in held), (held, completed)
        by_rule = {}
        for j in held:
            rule = re.match(r"rule_(.+?)(?:_wildcards|$)", j["comment"])
            assert rule, j
            by_rule.setdefault(rule.group(1), []).append(completed[j["jobid"]]["partition"])
        assert by_rule.get("run_aimd") == ["cpu"], by_rule
        assert by_rule.get("relax_structure") == ["cpu"], by_rule
        assert by_rule.get("train_model") == ["gpu"], by_rule
    finally:
        cluster.stop()
