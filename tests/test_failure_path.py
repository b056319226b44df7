"""qdff.validation.failure_path: the reference method along an ML-MD failure."""

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.lj import LennardJones
from ase.calculators.singlepoint import SinglePointCalculator

from qdff.validation import failure_path

BREAKS = {"Cd-Se": 3.3}
LEAST = {"Se": 3, "Cd": 1}


def _path(seed=5, times=range(0, 110, 10)):
    """An Se with three Cd at 2.6 A; Cd 3 leaves it from 2.6 to 4.0 A over the path."""
    frames = []
    for k, t in enumerate(times):
        r = 2.6 + 1.4 * k / (len(times) - 1)
        a = Atoms(
            "SeCd3",
            positions=[[0, 0, 0], [2.6, 0, 0], [0, 2.6, 0], [0, 0, r]],
        )
        a.info.update(seed=seed, time=float(t))
        frames.append(a)
    return frames


def test_path_frames_are_one_seed_before_its_failure_in_time_order():
    traj = _path(seed=4) + list(reversed(_path(seed=5)))
    got = failure_path.path_frames(traj, seed=5, failure_time_fs=100.0, span_fs=40.0)
    assert [a.info["time"] for a in got] == [60.0, 70.0, 80.0, 90.0, 100.0]
    assert {a.info["seed"] for a in got} == {5}
    with pytest.raises(ValueError, match="seed 7: 0 recorded frame"):
        failure_path.path_frames(traj, seed=7, failure_time_fs=100.0, span_fs=40.0)


def test_the_lost_neighbour_is_the_one_that_left_the_under_coordinated_atom():
    frames = _path()
    assert failure_path.lost_neighbour(frames, BREAKS, LEAST) == (0, 3)
    # the start of the path alone: nobody below the AIMD's least coordination
    with pytest.raises(ValueError, match="no atom of the last frame is below"):
        failure_path.lost_neighbour(frames[:2], BREAKS, LEAST)


def test_a_binding_reference_against_a_model_that_lets_go():
    # reference: Lennard-Jones with its minimum at 2.6 A (it pulls Cd 3 back); model: no forces
    lj = LennardJones(sigma=2.6 / 2 ** (1 / 6), epsilon=0.5, rc=10.0, smooth=False)
    ref = []
    for a in _path():
        b = a.copy()
        b.calc = lj
        e, f = b.get_potential_energy(), b.get_forces()
        b.calc = SinglePointCalculator(b, energy=e, forces=f)
        ref.append(b)
    zeros = [np.zeros((4, 3))] * len(ref)
    out = failure_path.compare(ref, zeros, [0.0] * len(ref), atom=0, neighbour=3)
    rows = out["rows"]
    assert out["symbols"] == ["Se", "Cd"] and out["frames"] == 11
    assert out["distance_A"] == pytest.approx([2.6, 4.0])
    # the reference pulls Cd 3 back all along the path (beyond the Se-Cd minimum, and the other
    # two Cd attract it too); the model does not
    assert all(x["radial_force_reference_eV_per_A"] < -0.1 for x in rows)
    assert all(x["radial_force_model_eV_per_A"] == 0.0 for x in rows)
    # the reference's path climbs, the model's is flat: the excess is the reference's rise
    rise = ref[-1].get_potential_energy() - ref[0].get_potential_energy()
    assert rise > 0.2
    assert out["energy_excess_max_eV"] == pytest.approx(max(x["energy_reference_eV"] for x in rows))
    assert out["radial_force_model_mean_eV_per_A"] == 0.0
    assert out["neighbour_force_error_mean_meV_per_A"] > 100
