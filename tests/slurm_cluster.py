"""A real single-node Slurm (Debian's slurm-wlm + munge) started and stopped by the tests.

Daemons run without systemd; state, spool, pid and log files live in a temporary
directory. Two partitions, ``cpu`` (default) and ``gpu``, on the one node ``localhost``;
job completion is logged to a text file so that ``sacct -c`` can show each job's
partition and state without an accounting database.

Two facts about snakemake-executor-plugin-slurm shape this (measured, see README):
the job-step plugin drops SLURM_CONF before its inner ``srun``, so the configuration
is also written to Slurm's default path /etc/slurm/slurm.conf (only when none exists,
and removed afterwards); and without an accounting database ``sacct`` polling never
sees the job finish, so the test profile polls with ``squeue``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path

DEFAULT_CONF = Path("/etc/slurm/slurm.conf")


class SlurmUnavailable(RuntimeError):
    pass


def _which(*names):
    for n in names:
        p = shutil.which(n) or (f"/usr/sbin/{n}" if Path(f"/usr/sbin/{n}").exists() else None)
        if not p:
            raise SlurmUnavailable(
                f"{n} not installed (Debian packages slurm-wlm and munge; `make setup` installs them)"
            )
    return True


def _munge_works() -> bool:
    try:
        m = subprocess.run(["munge", "-n"], capture_output=True, timeout=10)
        if m.returncode != 0:
            return False
        u = subprocess.run(["unmunge"], input=m.stdout, capture_output=True, timeout=10)
        return u.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class SlurmCluster:
    def __init__(self, root: Path, cpus: int = 2, memory_mb: int = 16000):
        self.root = Path(root)
        self.cpus, self.memory_mb = cpus, memory_mb
        self.conf = self.root / "slurm.conf"
        self.jobcomp = self.root / "jobcomp.txt"
        self.started: list[tuple[str, Path | int]] = []
        self.wrote_default_conf = False

    @property
    def env(self) -> dict:
        return dict(os.environ, SLURM_CONF=str(self.conf))

    def write_conf(self) -> None:
        for d in ("state", "spool", "log", "run"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        r = self.root
        self.conf.write_text(f"""\
ClusterName=qdfftest
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc={self.jobcomp}
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/run/slurmctld.pid
SlurmdPidFile={r}/run/slurmd.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
MinJobAge=3600
ReturnToService=2
SchedulerType=sched/backfill
# Debian's Open MPI (CP2K's MPI) launched under srun needs PMIx from Slurm
MpiDefault=pmix
NodeName=localhost NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.memory_mb} State=UNKNOWN
PartitionName=cpu Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=localhost Default=NO MaxTime=INFINITE State=UP
""")

    def start(self) -> None:
        _which("slurmctld", "slurmd", "munged", "sbatch", "squeue", "sacct")
        if os.geteuid() != 0:
            raise SlurmUnavailable("starting slurmctld/slurmd/munged needs root")
        self.write_conf()
        if DEFAULT_CONF.exists() and DEFAULT_CONF.read_text() != self.conf.read_text():
            raise SlurmUnavailable(f"{DEFAULT_CONF} exists already; not overwriting a real Slurm configuration")
        DEFAULT_CONF.parent.mkdir(parents=True, exist_ok=True)
        if not DEFAULT_CONF.exists():
            shutil.copy(self.conf, DEFAULT_CONF)
            self.wrote_default_conf = True
        if not _munge_works():
            munge = pwd.getpwnam("munge")
            for d in ("/run/munge", "/var/log/munge", "/var/lib/munge"):
                Path(d).mkdir(parents=True, exist_ok=True)
                os.chown(d, munge.pw_uid, munge.pw_gid)
            subprocess.run(["runuser", "-u", "munge", "--", "/usr/sbin/munged"], check=True, timeout=30)
            self.started.append(("munged", Path("/run/munge/munged.pid")))
            for _ in range(50):
                if _munge_works():
                    break
                time.sleep(0.2)
            else:
                raise SlurmUnavailable("munged started but munge/unmunge do not work")
        subprocess.run(["/usr/sbin/slurmctld", "-f", str(self.conf)], check=True, env=self.env, timeout=60)
        self.started.append(("slurmctld", self.root / "run/slurmctld.pid"))
        subprocess.run(
            ["/usr/sbin/slurmd", "-f", str(self.conf), "-N", "localhost"], check=True, env=self.env, timeout=60
        )
        self.started.append(("slurmd", self.root / "run/slurmd.pid"))
        self.wait_idle()

    def wait_idle(self, timeout: float = 60) -> None:
        t0 = time.time()
        while time.time() - t0 < timeout:
            p = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, env=self.env)
            states = set(p.stdout.split())  # one line per partition
            if p.returncode == 0 and states and states <= {"idle", "mixed"}:
                return
            time.sleep(1)
        log = self.root / "log/slurmctld.log"
        raise SlurmUnavailable(
            f"Slurm node not idle after {timeout} s: {p.stdout} {p.stderr}\n"
            + (log.read_text()[-2000:] if log.exists() else "")
        )

    def jobs(self) -> list[dict]:
        """Finished jobs from Slurm's own job-completion records (``sacct -c``)."""
        p = subprocess.run(
            ["sacct", "-c", "-P", "-n", "--format=JobID,JobName,Partition,State,ExitCode"],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=30,
        )
        if p.returncode != 0:
            raise RuntimeError(f"sacct -c failed: {p.stderr}")
        rows = []
        for line in p.stdout.splitlines():
            parts = line.split("|")
            if len(parts) >= 4:
                rows.append(dict(zip(["jobid", "name", "partition", "state", "exit"], parts)))
        return rows

    def controller_jobs(self) -> list[dict]:
        """Jobs the controller still holds (MinJobAge keeps finished ones), with their comment.

        The executor plugin names jobs by run id and puts the rule in ``--comment``;
        ``sacct -c`` (the job-completion file) has no comment, ``scontrol`` does.
        """
        p = subprocess.run(["scontrol", "show", "job", "-o"], capture_output=True, text=True, env=self.env, timeout=30)
        rows = []
        for line in p.stdout.splitlines():
            fields = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
            if "JobId" in fields:
                rows.append(
                    {
                        "jobid": fields["JobId"],
                        "partition": fields.get("Partition"),
                        "state": fields.get("JobState"),
                        "comment": fields.get("Comment", ""),
                    }
                )
        return rows

    def stop(self) -> None:
        for _name, pidref in reversed(self.started):
            pid = None
            if isinstance(pidref, Path) and pidref.exists():
                try:
                    pid = int(pidref.read_text().split()[0])
                except (ValueError, IndexError):
                    pid = None
            if pid:
                try:
                    os.kill(pid, signal.SIGTERM)
                    for _ in range(50):
                        os.kill(pid, 0)
                        time.sleep(0.1)
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.started.clear()
        if self.wrote_default_conf and DEFAULT_CONF.exists():
            DEFAULT_CONF.unlink()
