"""Imported data in the pipeline (issue 30): a config holding only `name:` and `data:` dry-runs to a
report with an import job and no structure build, relaxation or AIMD; its temperatures come from the
data; the checks that need a trajectory or CP2K are refused or skipped; the split of frames that are
no trajectory. The example data (tests/data/cdse_orchestrai_example.xyz) are the 7 frames of the real
CP2K GFN1-xTB run in tests/data/cp2k_md_scf (Cd6Se6, 1 fs apart) written in Orchestr.AI's format."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from qdff import config
from qdff.selection import frames as frame_selection

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config/cdse-import-example.yaml"
DATA = ROOT / "tests/data/cdse_orchestrai_example.xyz"
BIN = Path(sys.executable).parent
NO_JOBS = ("run_aimd", "run_test_aimd", "relax_structure", "build_structure", "write_cp2k_input", "convert_trajectory")


def _split_files(tmp_path, n=3):
    """The example's 7 frames cut into ``n`` files (a curated set from several sources)."""
    lines = DATA.read_text().splitlines()
    frames = [lines[i : i + 14] for i in range(0, len(lines), 14)]
    paths = []
    for k in range(n):
        p = tmp_path / f"part{k}.xyz"
        p.write_text("\n".join(line for f in frames[k::n] for line in f) + "\n")
        paths.append(str(p))
    return paths


def _jobs(out: str) -> dict:
    """rule -> count from a dry run's job table."""
    jobs, table = {}, False
    for line in out.splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            table = True
        elif table and len(parts) == 2 and parts[1].isdigit():
            if parts[0] == "total":
                break
            jobs[parts[0]] = int(parts[1])
    return jobs


def test_data_only_configs_dry_run_without_aimd(tmp_path):
    """`snakemake -n`: the example (a trajectory) and a curated set of 3 files (no trajectory)."""
    curated = tmp_path / "curated.yaml"
    cfg = yaml.safe_load(EXAMPLE.read_text())
    cfg["name"] = "curated"
    cfg["data"] = {
        "source": "extxyz",
        "paths": _split_files(tmp_path),
        "level_of_theory": "GFN1-xTB",
        "temperature": 300,
    }
    curated.write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    procs = {}
    for path in (EXAMPLE, curated):
        work = tmp_path / f"work-{path.stem}"
        work.mkdir()
        cmd = [str(BIN / "snakemake"), "-n", "-s", str(ROOT / "Snakefile"), "-d", str(work)]
        cmd += ["--configfile", str(path), "--cores", "1"]
        procs[path] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    out = {p: proc.communicate(timeout=300)[0] for p, proc in procs.items()}
    for p, proc in procs.items():
        assert proc.returncode == 0, out[p][-3000:]
    example, cur = _jobs(out[EXAMPLE]), _jobs(out[curated])
    for jobs in (example, cur):
        assert jobs.get("import_data") == 1 and jobs.get("structure_from_data") == 1, jobs
        assert not set(NO_JOBS) & set(jobs), jobs
        assert jobs.get("render_report") == 1 and jobs.get("train_model") == 1
    # a trajectory: ML-MD at the data's 300 K and the stress temperature, compared with the data
    assert example["run_mlmd"] == 2 and example["compare_rdfs"] == 1
    # no trajectory: ML-MD at 300 K only, no pair-distance comparison, and the log says why
    assert cur["run_mlmd"] == 1 and "compare_rdfs" not in cur
    assert "imported frames are no trajectory" in out[curated]
    assert "dataset/frames.extxyz" in out[EXAMPLE] and str(DATA) in out[EXAMPLE]  # the data file is an input


def _cfg(**data):
    block = {"source": "extxyz", "paths": [str(DATA)], "level_of_theory": "GFN1-xTB", **data}
    return {"name": "x", "data": block}


def test_temperatures_come_from_the_data():
    cfg = config.validate(_cfg(temperature=300, trajectory=True, timestep_fs=1.0))
    assert cfg["aimd"]["temperatures"] == [300.0]
    assert cfg["structure"]["source"] == "data" and cfg["mlmd"]["reference"] is False
    with pytest.raises(config.ConfigError, match=r"data.temperature: .*cdse_orchestrai_example.xyz: frame 0"):
        config.validate(_cfg())
    with pytest.raises(config.ConfigError, match="aimd.temperatures: .*leave aimd.temperatures out"):
        config.validate(_cfg(temperature=300) | {"aimd": {"temperatures": [600]}})


def test_header_temperatures_are_read(tmp_path):
    src = tmp_path / "t.xyz"
    text = DATA.read_text().replace(" - centered", " temperature=450 - centered")
    src.write_text(text)
    cfg = config.validate({"name": "x", "data": {"source": "extxyz", "paths": [str(src)], "level_of_theory": "x"}})
    assert cfg["aimd"]["temperatures"] == [450.0]
    assert cfg["mlmd"]["stress_temperatures"] == []  # no trajectory: no stress runs
    assert not config.data_trajectory(cfg)


def test_checks_needing_cp2k_or_a_trajectory_are_refused():
    with pytest.raises(config.ConfigError, match="active_learning.enabled .*need CP2K.*cp2k: block"):
        config.validate(_cfg(temperature=300) | {"active_learning": {"enabled": True}})
    with pytest.raises(config.ConfigError, match="mlmd.reference: .*not one"):
        config.validate(_cfg(temperature=300) | {"mlmd": {"reference": True}})
    with pytest.raises(config.ConfigError, match="mlmd.reference need CP2K"):
        config.validate(_cfg(temperature=300, trajectory=True, timestep_fs=1.0) | {"mlmd": {"reference": True}})
    ok = config.validate(
        _cfg(temperature=300, trajectory=True, timestep_fs=1.0) | {"mlmd": {"reference": True}, "cp2k": {}}
    )
    assert config.reference_md(ok)
    with pytest.raises(config.ConfigError, match="selection.split: 'file' .*needs 3 or more"):
        config.validate(_cfg(temperature=300) | {"selection": {"split": "file"}})
    with pytest.raises(config.ConfigError, match=r"config error at structure: required"):
        config.validate({"name": "x"})


def _frames(n, runs=None):
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        a = Atoms("CdSe", positions=[[0, 0, 0], [2.6 + 0.1 * rng.standard_normal(), 0, 0]])
        a.calc = SinglePointCalculator(a, energy=-1.0, forces=np.zeros((2, 3)))
        a.info.update(run=runs[i] if runs else "set", step=i)
        out.append(a)
    return out


SEL = {
    "test_fraction": 0.2,
    "valid_fraction": 0.1,
    "gap_fs": 500,
    "equilibration_fs": 0,
    "method": "random",
    "n_train": 5,
    "n_valid": 2,
    "seed": 0,
    "dedupe_tolerance": 0,
    "split": "auto",
    "split_clusters": 5,
}


def test_split_by_file_holds_whole_files_out():
    runs = [f"f{i % 4}" for i in range(40)]
    idx = frame_selection.split_and_select(_frames(40, runs), SEL)
    assert idx["split"]["kind"] == "file" and "cannot promise" in idx["split"]["note"]
    role = {i: part for part in ("pool", "valid_block", "test") for i in idx[part]}
    for r in set(runs):  # every file in one part only
        assert len({role[i] for i in range(40) if runs[i] == r}) == 1
    assert idx["test"] and idx["valid"] and idx["train"]


def test_split_by_clusters_holds_whole_clusters_out(monkeypatch):
    """Five well-separated blobs of 10 frames (made-up descriptors): test and validation get whole blobs."""
    from qdff.selection import descriptors

    X = np.concatenate([np.random.default_rng(k).normal(10 * k, 0.1, (10, 4)) for k in range(5)])
    monkeypatch.setattr(descriptors, "feature_blocks", lambda species, d: None)  # one block of 4 features
    idx = frame_selection.split_and_select(_frames(50), SEL | {"descriptor": {"kind": "distances"}}, descriptors=X)
    assert idx["split"]["kind"] == "clusters" and "cannot promise" in idx["split"]["note"]
    pool_blobs = {i // 10 for i in idx["pool"]}
    for part in ("test", "valid_block"):
        assert idx[part] and len(idx[part]) % 10 == 0
        assert not {i // 10 for i in idx[part]} & pool_blobs


def test_structure_from_data(tmp_path):
    from qdff.data.imports import import_data
    from qdff.steps.structure import structure_from_data

    cfg = config.validate(_cfg(temperature=300))
    frames = tmp_path / "frames.extxyz"
    import_data(cfg["data"], frames)
    s = structure_from_data(
        frames, tmp_path / "structure.extxyz", tmp_path / "structure.json", structure=cfg["structure"]
    )
    assert s["formula"] == "Cd6Se6" and s["n_atoms"] == 12 and s["source"] == str(DATA)
    assert json.loads((tmp_path / "structure.json").read_text())["from_data"].startswith("first frame")


def test_cp2k_directory_import_through_the_dag_reproduces_convert(tmp_path):
    """The pipeline's import_data job on a CP2K run directory (data.source cp2k) writes the frames
    `qdff convert` writes for it: the same numbers and info, only the import's header keys added."""
    from ase.io import read

    run = ROOT / "tests/data/cp2k_md_scf"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {"name": "cp2kimp", "data": {"source": "cp2k", "paths": [str(run)], "level_of_theory": "GFN1-xTB"}}
        )
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    ref = tmp_path / "convert.extxyz"
    conv = subprocess.Popen([str(BIN / "qdff"), "convert", str(run), "-o", str(ref)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    target = "results/cp2kimp/dataset/frames.extxyz"
    cmd = [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path / "work")]
    cmd += ["--configfile", str(cfg), "--cores", "1", target]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    out = conv.communicate(timeout=300)[0]
    assert conv.returncode == 0, out[-2000:]
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    got = tmp_path / "work" / target
    a, b = read(ref, ":"), read(got, ":")
    assert len(a) == len(b) == 7
    for x, y in zip(a, b):
        assert y.get_chemical_symbols() == x.get_chemical_symbols()
        assert np.array_equal(y.positions, x.positions) and np.array_equal(y.get_forces(), x.get_forces())
        assert y.get_potential_energy() == x.get_potential_energy()
        assert {k: y.info[k] for k in x.info} == x.info
        assert y.info["level_of_theory"] == "GFN1-xTB" and y.info["composition"] == "Cd6Se6"
    summary = json.loads((tmp_path / "work/results/cp2kimp/dataset/import.json").read_text())
    assert summary["frames"] == 7 and summary["compositions"] == {"Cd6Se6": 7}
