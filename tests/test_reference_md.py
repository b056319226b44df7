"""The reference as a model (qdff.validation.reference_md): CP2K's own MD under the ML-MD protocol,
the null test of every verdict. Real CP2K (GFN1-xTB) on Cd6Se6."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from ase import units
from ase.io import read

from qdff import config
from qdff.cp2k import output as cp2k_output
from qdff.cp2k import run as cp2k_run
from qdff.structure.build import put_in_box
from qdff.validation import mlmd, reference_md

pytestmark = [pytest.mark.cp2k, pytest.mark.slow]

DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="module")
def setup(tmp_path_factory, cp2k_available):
    cfg = config.validate(
        {
            "name": "ref",
            "structure": {"n_pairs": 6, "vacuum": 7.0},
            "cp2k": {"preset": "xtb", "threads": 1},
            "aimd": {"temperatures": [300]},
        }
    )
    # the zinc-blende cut after 40 GFN1-xTB relaxation steps (tests/data, see test_backends): from
    # the unrelaxed cut CP2K needs 20-60 s per step for the first ten steps, most of this file's time
    start = put_in_box(read(DATA / "Cd6Se6_xtb_relaxed.extxyz", format="extxyz"), 7.0)
    # stand-ins for the AIMD frames that judge the run: small displacements of the start
    rng = np.random.default_rng(0)
    aimd = []
    for _ in range(30):
        a = start.copy()
        a.positions += rng.normal(scale=0.05, size=a.positions.shape)
        aimd.append(a)
    work = tmp_path_factory.mktemp("reference")
    traj: list = []
    summary = reference_md.run(
        start,
        aimd,
        cp2k=cfg["cp2k"],
        structure=cfg["structure"],
        workdir=work / "md",
        temperature=300.0,
        steps=20,
        nve_steps=20,
        record_every=5,
        seed=7,
        trajectory=traj,
        **mlmd.protocol(cfg["mlmd"]),
    )
    return {"cfg": cfg, "start": start, "work": work, "summary": summary, "traj": traj}


def test_the_reference_starts_from_the_models_velocities(setup):
    """CP2K's step-0 velocities are those a model's run starts with (same seed, ASE's draw, the
    centre of mass and rotation removed); its kinetic energy agrees to CP2K's masses, which
    differ from ASE's in the fifth digit."""
    v = reference_md.initial_velocities(setup["start"], 300.0, 7)
    vel = next(cp2k_output.iter_xyz_frames(setup["work"] / "md" / "nvt-vel-1.xyz"))
    assert vel.step == 0
    v_au = np.asarray(vel.values)
    expected = v * units.fs / units.Bohr * (units._aut * 1e15)
    assert np.abs(v_au - expected).max() < 1e-6 * np.abs(expected).max()
    a = setup["start"].copy()
    a.set_velocities(v)
    ener = cp2k_output.read_ener(setup["work"] / "md" / "nvt-1.ener")
    assert ener["step"][0] == 0
    assert ener["kinetic"][0] == pytest.approx(a.get_kinetic_energy(), rel=1e-3)


def test_the_references_energy_and_forces_are_the_pipelines_cp2k(setup, tmp_path):
    """Step 0 of the reference MD against the pipeline's own CP2K at the same geometry: the
    first frame of an AIMD run (qdff.cp2k.run.run_md, converted as the data set is): energy to
    1e-6 eV/atom, forces to 1e-4 eV/A."""
    start = setup["start"]
    cfg = {**setup["cfg"], "aimd": {**setup["cfg"]["aimd"], "steps": 1}}
    cp2k_run.run_md(start, cfg, 300.0, tmp_path / "aimd", tmp_path / "aimd" / "run.json")
    cp2k_output.convert_runs([tmp_path / "aimd"], tmp_path / "frames.extxyz")
    sp = read(tmp_path / "frames.extxyz", index=0, format="extxyz")
    assert sp.info["step"] == 0
    ener = cp2k_output.read_ener(setup["work"] / "md" / "nvt-1.ener")
    assert abs(ener["potential"][0] - sp.get_potential_energy()) / len(start) < 1e-6
    frc = next(cp2k_output.iter_xyz_frames(setup["work"] / "md" / "nvt-frc-1.xyz"))
    assert frc.step == 0
    forces = np.asarray(frc.values) * units.Hartree / units.Bohr
    assert np.abs(forces - sp.get_forces()).max() < 1e-4


def test_the_reference_runs_the_whole_protocol_and_is_judged_like_a_model(setup):
    s = setup["summary"]
    assert s["engine"] == "cp2k"
    assert s["steps_run"] == 20 and s["nve_steps"] == 20
    assert s["stable"], s["reason"]
    # frames every record_every steps of the thermostatted segment, as a model's run records them
    assert [a.info["step"] for a in setup["traj"]] == [5, 10, 15, 20]
    assert all(a.info["seed"] == 7 for a in setup["traj"])
    # the NVE segment continued from the thermostatted one's end (restart), CP2K's conserved
    # quantity recorded over its 20 steps
    assert np.isfinite(s["nve_drift_meV_per_atom_per_ps"])
    nve = cp2k_output.read_ener(setup["work"] / "md" / "nve-1.ener")
    assert nve["step"][0] == 21 and nve["step"][-1] == 40


def _short_run(setup, seed: int) -> dict:
    """The keywords of a short thermostatted run at 300 K, frames every 2 steps, no NVE."""
    return dict(
        cp2k=setup["cfg"]["cp2k"],
        structure=setup["cfg"]["structure"],
        temperature=300.0,
        nve_steps=0,
        record_every=2,
        seed=seed,
        **mlmd.protocol(setup["cfg"]["mlmd"]),
    )


def test_a_killed_job_does_not_run_a_finished_seed_again(setup, tmp_path):
    """run_seed reuses a seed's summary and frames: the job resumes at the first seed not done."""
    kw = _short_run(setup, seed=11) | {"steps": 4}
    first: list = []
    s1 = reference_md.run_seed(
        setup["start"], [setup["start"]] * 3, workdir=tmp_path / "seed11", trajectory=first, **kw
    )
    inp = tmp_path / "seed11" / "nvt.inp"
    stamp = inp.stat().st_mtime_ns
    again: list = []
    s2 = reference_md.run_seed(
        setup["start"], [setup["start"]] * 3, workdir=tmp_path / "seed11", trajectory=again, **kw
    )
    assert inp.stat().st_mtime_ns == stamp  # CP2K not run again
    assert s2["steps_run"] == s1["steps_run"] == 4 and len(again) == len(first) == 2
    assert np.allclose(again[-1].positions, first[-1].positions)
    # the judging changed (another bond criterion): the stale verdict is not reused; the frames,
    # which do not depend on it, are judged again without running CP2K
    changed: list = []
    s3 = reference_md.run_seed(
        setup["start"],
        [setup["start"]] * 3,
        workdir=tmp_path / "seed11",
        trajectory=changed,
        **(kw | {"bond_criterion": "stretched"}),
    )
    assert s3["settings_key"] != s2["settings_key"] and s3["bond_criterion"] == "stretched"
    assert inp.stat().st_mtime_ns == stamp and len(changed) == 2
    # the MD changed (another thermostat time constant): CP2K runs again, the old segment set aside
    s4 = reference_md.run_seed(
        setup["start"],
        [setup["start"]] * 3,
        workdir=tmp_path / "seed11",
        trajectory=[],
        **(kw | {"thermostat_timecon_fs": 2 * kw["thermostat_timecon_fs"]}),
    )
    assert inp.stat().st_mtime_ns != stamp and s4["steps_run"] == 4
    assert list((tmp_path / "seed11" / "superseded").glob("*/nvt-1.ener"))


def test_a_seed_killed_midway_resumes_from_cp2ks_restart_file(setup, tmp_path):
    """A 149-atom seed at xTB takes hours: a killed job continues it from CP2K's restart file."""
    kw = _short_run(setup, seed=13)
    ref = [setup["start"]] * 3
    work = tmp_path / "seed13"
    # what a job killed after step 6 leaves, with the restart file cut by the kill: the last
    # complete one is the backup, at step 4, two steps behind the frames on disk
    reference_md.run(setup["start"], ref, workdir=work, steps=6, trajectory=[], **kw)
    (work / "nvt-1.restart").write_text("truncated")
    traj: list = []
    s = reference_md.run(setup["start"], ref, workdir=work, steps=12, trajectory=traj, **kw)
    inp = (work / "nvt.inp").read_text().upper()
    assert "EXT_RESTART" in inp and re.search(r"\bSTEPS\s+8\b", inp)  # 12 - 4 steps, not 12
    assert s["steps_run"] == 12 and s["stable"], s["reason"]
    # every step once: the steps after the restart point (5, 6) are the resumed run's
    assert [a.info["step"] for a in traj] == [2, 4, 6, 8, 10, 12]
    assert list(cp2k_output.read_ener(work / "nvt-1.ener")["step"]) == list(range(13))
    # another seed in the same folder is not continued from this one's restart
    s2 = reference_md.run(setup["start"], ref, workdir=work, steps=4, trajectory=[], **(kw | {"seed": 14}))
    assert "EXT_RESTART" not in (work / "nvt.inp").read_text().upper() and s2["steps_run"] == 4
