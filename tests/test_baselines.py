"""Zero-shot baselines (qdff.training.backends.universal): the energy shift, element coverage, config."""
import numpy as np
import pytest
from ase import Atoms
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from qdff import config as qconfig
from qdff.training.backends import universal


def _labelled(atoms, energy, forces):
    a = atoms.copy()
    a.calc = SinglePointCalculator(a, energy=energy, forces=forces)
    return a


def test_fit_shift_recovers_a_constant_reference_per_atom():
    rng = np.random.default_rng(0)
    base = Atoms("Cu4Au2", positions=[[0, 0, 0], [2.5, 0, 0], [0, 2.5, 0], [2.5, 2.5, 0], [1.2, 1.2, 2.0], [1.3, 1.2, -2.0]])
    frames = []
    for _ in range(4):
        a = base.copy()
        a.positions += rng.normal(scale=0.05, size=a.positions.shape)
        a.calc = EMT()
        # the "data": EMT plus a constant 1.5 eV per atom (another energy reference)
        frames.append(_labelled(a, a.get_potential_energy() + 1.5 * len(a), a.get_forces()))
    shift = universal.fit_shift(EMT(), frames)
    # one composition: only the total per frame is determined; it is 1.5 eV per atom
    assert shift["Cu"] * 4 + shift["Au"] * 2 == pytest.approx(1.5 * 6, abs=1e-9)


def test_an_element_the_potential_was_not_trained_on_is_refused():
    universal.check_elements("sevennet0", ["Cd", "Se", "Cl", "In", "P", "Pb", "Cs", "Br"])
    with pytest.raises(ValueError, match="baselines: sevennet0 .* was not trained on Am"):
        universal.check_elements("sevennet0", ["Cd", "Am"])


def test_baselines_key_is_validated():
    cfg = qconfig.validate({"name": "x", "structure": {}})
    assert cfg["baselines"] == ["sevennet0"]
    with pytest.raises(qconfig.ConfigError, match="baselines"):
        qconfig.validate({"name": "x", "structure": {}, "baselines": ["mace-mp-0"]})


def test_sevennet0_runs_offline_on_a_free_cluster(tmp_path, monkeypatch):
    """The shipped checkpoint loads with no network and gives finite forces for pbc=False,
    through qdff's calculator the same as through sevenn's own, even after something in the
    process (nequip does, when it loads a model) set torch's default dtype to float64."""
    import torch
    from sevenn.calculator import SevenNetCalculator

    from qdff.training.backends.common import torch_default_dtype

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    a = Atoms("Cd2Se2", positions=[[0, 0, 0], [2.6, 0, 0], [0, 2.6, 0], [2.6, 2.6, 0.3]])
    checkpoint = universal._checkpoint_path("sevennet0")
    with torch_default_dtype(torch.float32):
        a.calc = SevenNetCalculator(str(checkpoint), device="cpu")
        f_own, e_own = a.get_forces(), a.get_potential_energy()
    assert f_own.shape == (4, 3) and np.isfinite(f_own).all() and np.isfinite(e_own)
    assert np.abs(f_own.sum(axis=0)).max() < 1e-4  # no net force on a free cluster

    b = a.copy()
    with torch_default_dtype(torch.float64):  # as nequip leaves it
        b.calc = universal.sevennet_calculator(checkpoint, "cpu")
        f, e = b.get_forces(), b.get_potential_energy()
        assert torch.get_default_dtype() == torch.float64  # restored after each call
    np.testing.assert_allclose(f, f_own, atol=1e-6)
    assert e == pytest.approx(e_own, abs=1e-6)


def test_active_learning_accepts_the_new_backends():
    for backend in ("mace", "sevenn"):
        cfg = qconfig.validate({"name": "x", "structure": {}, "backends": {backend: {"enabled": True}},
                                "active_learning": {"enabled": True, "backend": backend}})
        assert cfg["active_learning"]["backend"] == backend
