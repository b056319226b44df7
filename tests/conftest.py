"""Shared fixtures. The slow ones run real CP2K and real DeePMD-kit once per session."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def jiggled(atoms, n: int, scale: float, seed: int = 0) -> list:
    """``n`` copies of ``atoms`` with Gaussian displacements (Angstrom): a stand-in for MD frames."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        a = atoms.copy()
        a.positions += rng.normal(scale=scale, size=a.positions.shape)
        out.append(a)
    return out


def snakemake(workdir, *args, configfile=ROOT / "tests/configs/tiny.yaml", check=True, timeout=1800):
    cmd = [
        str(BIN / "snakemake"),
        "-s",
        str(ROOT / "Snakefile"),
        "-d",
        str(workdir),
        "--configfile",
        str(configfile),
        "--cores",
        "2",
        *args,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-5000:]}\n{proc.stderr[-5000:]}")
    return proc


@pytest.fixture(scope="session")
def cp2k_available():
    if not shutil.which("cp2k.psmp"):
        pytest.fail("cp2k.psmp not on PATH: run `make setup` (installs Debian's cp2k)")
    return True


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory, cp2k_available):
    """The whole pipeline, real CP2K and DeePMD, on tests/configs/tiny.yaml (about 3 minutes)."""
    work = tmp_path_factory.mktemp("tiny")
    proc = snakemake(work, "--profile", str(ROOT / "profiles/local"))
    return {"workdir": work, "stdout": proc.stdout, "stderr": proc.stderr}


@pytest.fixture(scope="session")
def md_run_dir(tiny_pipeline):
    """A CP2K MD output directory written by a real run in this test session."""
    return tiny_pipeline["workdir"] / "results/tiny/aimd/300K"
