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
    base = Atoms(
        "Cu4Au2", positions=[[0, 0, 0], [2.5, 0, 0], [0, 2.5, 0], [2.5, 2.5, 0], [1.2, 1.2, 2.0], [1.3, 1.2, -2.0]]
    )
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
    for name in ("sevennet0", "chgnet"):
        universal.check_elements(name, ["Cd", "Se", "Cl", "In", "P", "Pb", "Cs", "Br"])
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
        cfg = qconfig.validate(
            {
                "name": "x",
                "structure": {},
                "backends": {backend: {"enabled": True}},
                "active_learning": {"enabled": True, "backend": backend},
            }
        )
        assert cfg["active_learning"]["backend"] == backend


def test_chgnet_runs_offline_on_a_free_cluster_in_a_vacuum_box(monkeypatch):
    """CHGNet 0.3.0 from chgnet's wheel through qdff: a free cluster (pbc=False) gets chgnet's
    own calculator's forces and energy for the same cluster in a periodic box, does not feel
    its periodic images (a 40 A box gives the same), and float64 defaults (nequip's) do not
    break it."""
    import torch
    from chgnet.model import CHGNet
    from chgnet.model.dynamics import CHGNetCalculator

    from qdff.training.backends.common import torch_default_dtype

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    checkpoint = universal._checkpoint_path("chgnet")
    a = Atoms("Cd2Se2", positions=[[0, 0, 0], [2.6, 0, 0], [0, 2.6, 0], [2.6, 2.6, 0.3]], pbc=False)

    def boxed(edge):
        b = a.copy()
        b.set_cell([edge] * 3)
        b.center()
        b.pbc = True
        return b

    qdff_edge = np.ptp(a.positions, axis=0).max() + universal.CHGNET_VACUUM_A  # the box qdff uses
    with torch_default_dtype(torch.float32):
        own = CHGNetCalculator(model=CHGNet.load(model_name="0.3.0", verbose=False), use_device="cpu")
        results = {}
        for edge in (qdff_edge, 40.0):
            b = boxed(edge)
            b.calc = own
            results[edge] = b.get_forces(), b.get_potential_energy()
    f_own, e_own = results[qdff_edge]
    # no image interaction left (6 A cutoff): equal to float32 rounding, since positions near
    # 14 and 20 A round differently (~1e-6 A) and forces follow to ~2e-5 eV/A (measured)
    np.testing.assert_allclose(results[40.0][0], f_own, atol=1e-4)
    assert np.abs(f_own).max() > 0.1 and np.abs(f_own.sum(axis=0)).max() < 1e-4

    with torch_default_dtype(torch.float64):  # as nequip leaves it
        a.calc = universal.chgnet_calculator(checkpoint, "cpu")
        f, e = a.get_forces(), a.get_potential_energy()
        assert torch.get_default_dtype() == torch.float64
    assert a.pbc.tolist() == [False] * 3 and f.dtype == np.float64
    np.testing.assert_allclose(f, f_own, atol=1e-6)
    assert e == pytest.approx(e_own, abs=1e-6)
    with pytest.raises(ValueError, match="CHGNet baseline: .* periodic"):
        b = boxed(30.0)
        b.calc = universal.chgnet_calculator(checkpoint, "cpu")
        b.get_forces()
