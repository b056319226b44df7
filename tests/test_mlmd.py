"""ML-MD stability verdict: a sane potential passes, a broken one is flagged."""
import numpy as np
import pytest
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.lj import LennardJones

from conftest import jiggled
from qdff import mlmd
from qdff.structures import cut_cluster


def _lj_for(atoms):
    # minimum of the LJ pair potential at the crystal nearest-neighbour distance
    d0 = mlmd.nn_distances(atoms.positions).min()
    return LennardJones(sigma=d0 / 2 ** (1 / 6), epsilon=0.5, rc=10.0, smooth=True)


class FlippedForces(Calculator):
    """A deliberately broken model: the forces of a good one with the sign flipped."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        a = self.atoms.copy()
        a.calc = self.inner
        self.results = {"energy": -a.get_potential_energy(), "forces": -a.get_forces()}


@pytest.fixture
def cluster():
    return cut_cluster("CdSe", "zincblende", 6)


def _reference(cluster, n=20, scale=0.05):
    return jiggled(cluster, n, scale, seed=0)


def test_good_potential_is_stable(cluster):
    s = mlmd.run(_lj_for(cluster), cluster, _reference(cluster), temperature=300, steps=300, timestep_fs=1.0,
                 friction_per_fs=0.02, bond_factor=1.5, seed=1)
    assert s["stable"], s["reason"]
    assert s["steps_run"] == 300


def test_flipped_forces_are_flagged_unstable(cluster):
    traj = []
    s = mlmd.run(FlippedForces(_lj_for(cluster)), cluster, _reference(cluster), temperature=300, steps=2000,
                 timestep_fs=1.0, friction_per_fs=0.02, bond_factor=1.5, seed=1, trajectory=traj)
    assert not s["stable"]
    assert s["steps_run"] < 2000  # stopped early
    assert "nearest neighbour" in s["reason"] or "apart" in s["reason"] or "non-finite" in s["reason"]


def test_check_frame_reasons(cluster):
    limits = mlmd.reference_limits([cluster])
    assert mlmd.check_frame(cluster, -1.0, limits, 1.5) is None
    far = cluster.copy()
    far.positions[0] += [20.0, 0, 0]
    assert "nearest neighbour" in mlmd.check_frame(far, -1.0, limits, 1.5)
    assert "non-finite" in mlmd.check_frame(cluster, float("nan"), limits, 1.5)


class ScaledForces(FlippedForces):
    """Forces 1.3 x the gradient of the energy: not conservative, so NVE drifts."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        Calculator.calculate(self, atoms, properties, system_changes)
        a = self.atoms.copy()
        a.calc = self.inner
        self.results = {"energy": a.get_potential_energy(), "forces": 1.3 * a.get_forces()}


def test_nve_drift_small_for_conservative_forces_large_otherwise(cluster):
    kw = dict(temperature=300, steps=100, timestep_fs=1.0, friction_per_fs=0.02, bond_factor=1.5, seed=1,
              nve_steps=400)
    good = mlmd.run(_lj_for(cluster), cluster, _reference(cluster), **kw)
    bad = mlmd.run(ScaledForces(_lj_for(cluster)), cluster, _reference(cluster), **kw)
    assert good["stable"] and np.isfinite(good["nve_drift_meV_per_atom_per_ps"])
    assert abs(bad["nve_drift_meV_per_atom_per_ps"]) > 10 * abs(good["nve_drift_meV_per_atom_per_ps"]), (good, bad)
