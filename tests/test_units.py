import pytest

from qdff import units


def test_hartree_in_ev_matches_codata():
    # CODATA 2014 (used by ase.units): 1 Eh = 27.21138602 eV
    assert units.HARTREE_TO_EV == pytest.approx(27.211386, abs=1e-5)


def test_bohr_in_angstrom():
    assert units.BOHR_TO_ANGSTROM == pytest.approx(0.52917721, abs=1e-7)


def test_force_unit_hartree_per_bohr_in_ev_per_angstrom():
    # 1 Eh/a0 = 51.422067 eV/A
    assert units.HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM == pytest.approx(51.42207, abs=1e-4)
    assert units.hartree_per_bohr_to_ev_per_angstrom(2.0) == pytest.approx(102.84414, abs=2e-4)


def test_atomic_time_in_fs():
    assert units.AU_TIME_TO_FS == pytest.approx(0.0241888, abs=1e-6)
