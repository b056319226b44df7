import numpy as np
import pytest
from ase.io import write

from qdff import config, structures


@pytest.mark.parametrize("n", [3, 6, 13])
def test_cut_is_stoichiometric_and_sane(n):
    atoms = structures.cut_cluster("CdSe", "zincblende", n)
    syms = atoms.get_chemical_symbols()
    assert syms.count("Cd") == n and syms.count("Se") == n
    d = atoms.get_all_distances()
    d[np.diag_indices_from(d)] = np.inf
    # zinc-blende CdSe nearest neighbour: a*sqrt(3)/4 = 2.62 A
    assert d.min() == pytest.approx(6.052 * np.sqrt(3) / 4, abs=0.01)


def test_wurtzite_cut():
    atoms = structures.cut_cluster("CdSe", "wurtzite", 8)
    assert atoms.get_chemical_formula() == "Cd8Se8"


def test_build_from_config_puts_cluster_in_vacuum_box():
    cfg = config.validate({"name": "x", "structure": {"n_pairs": 6, "vacuum": 7.0}})
    atoms = structures.build_structure(cfg)
    assert not atoms.pbc.any()
    span = atoms.positions.max(axis=0) - atoms.positions.min(axis=0)
    assert np.allclose(atoms.cell.lengths(), span + 14.0)


def test_import_from_file(tmp_path):
    atoms = structures.cut_cluster("CdSe", "zincblende", 3)
    write(tmp_path / "in.xyz", atoms)
    cfg = config.validate({"name": "x", "structure": {"source": "file", "file": str(tmp_path / "in.xyz")}})
    assert structures.build_structure(cfg).get_chemical_formula() == "Cd3Se3"


def test_missing_file_is_named(tmp_path):
    cfg = config.validate({"name": "x", "structure": {"source": "file", "file": str(tmp_path / "nope.xyz")}})
    with pytest.raises(structures.StructureError, match="nope.xyz"):
        structures.build_structure(cfg)
