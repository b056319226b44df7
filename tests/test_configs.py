"""Every example config dry-runs through Snakemake, and each material's builds as described."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from qdff import config
from qdff.structure import build as structures

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "config").glob("*.yaml"))
BIN = Path(sys.executable).parent


def test_every_config_dry_runs(tmp_path):
    """`snakemake -n` of every config/*.yaml: the DAG resolves from each config alone.

    Run concurrently (Snakemake's start-up dominates, about 4 s of CPU each): about 30 s
    for all on 2 cores."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    procs = {}
    for path in CONFIGS:
        work = tmp_path / path.stem
        work.mkdir()
        procs[path] = subprocess.Popen(
            [
                str(BIN / "snakemake"),
                "-n",
                "-s",
                str(ROOT / "Snakefile"),
                "-d",
                str(work),
                "--configfile",
                str(path),
                "--cores",
                "1",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
    failed = []
    for path, proc in procs.items():
        out, err = proc.communicate(timeout=600)
        cfg = config.load(path)
        name = cfg["name"]
        # a config importing its data runs no AIMD: import_data instead (tests/test_import_dag.py)
        runs = "import_data" if config.imported(cfg) else "run_aimd"
        if proc.returncode != 0 or f"results/{name}/structure.json" not in out or runs not in out:
            failed.append(f"{path.name} (exit {proc.returncode}):\n{out[-2000:]}\n{err[-2000:]}")
    assert not failed, "\n\n".join(failed)


# config -> the composition its header comment promises (cation-rich cuts with bridging X since
# issue #13 item 1: cdse-wz and pbse-production changed, cspbbr3-production is a CsBr-terminated cube)
COMPOSITIONS = {
    "cdse-cd68-xtb.yaml": "Cd68Cl26Se55",
    "cdse-cd68-al.yaml": "Cd68Cl26Se55",
    "cdse-cd68-hle17.yaml": "Cd68Cl26Se55",
    "cdse-zb-small.yaml": "Cd16Cl6Se13",
    "cdse-wz-small.yaml": "Cd13Cl6Se10",
    "inp-small.yaml": "Cl9In16P13",
    "pbse-small.yaml": "Pb19Se19",
    "cspbbr3-small.yaml": "Br12Cs4Pb4",
    "cdse-zb-production.yaml": "Cd92Cl18Se83",
    "cdse-wz-production.yaml": "Cd93Cl30Se78",
    "inp-production.yaml": "Cl33In79P68",
    "pbse-production.yaml": "Cl70Pb79Se44",
    "cspbbr3-production.yaml": "Br108Cs54Pb27",
    "demo.yaml": "Cd16Cl6Se13",
    "demo-cd6se6.yaml": "Cd6Se6",
    "demo-full.yaml": "Cd6Se6",
    "cdse-al.yaml": "Cd6Se6",
    "cdse-zb-al.yaml": "Cd16Cl6Se13",
    "cdse-zb-passive.yaml": "Cd16Cl6Se13",
}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_builds_its_documented_neutral_cluster(path):
    cfg = config.load(path)
    if cfg["structure"]["source"] == "data":
        pytest.skip("the structure is the imported data's first frame (tests/test_import_dag.py)")
    summary: dict = {}
    atoms = structures.build_structure(cfg, summary)
    assert atoms.get_chemical_formula() == COMPOSITIONS[path.name]
    assert summary["net_formal_charge"] == cfg["structure"]["charge"] == 0
    assert COMPOSITIONS[path.name] in summary["formula"]
