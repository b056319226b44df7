from pathlib import Path

import numpy as np
import pytest
from ase.io import write

from qdff import config
from qdff.structure import build as structures

ROOT = Path(__file__).resolve().parents[1]


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
    # a cube (CP2K's wavelet solver) with the vacuum along the longest extent
    assert np.allclose(atoms.cell.lengths(), span.max() + 14.0)


def test_import_from_file(tmp_path):
    atoms = structures.cut_cluster("CdSe", "zincblende", 3)
    write(tmp_path / "in.xyz", atoms)
    cfg = config.validate({"name": "x", "structure": {"source": "file", "file": str(tmp_path / "in.xyz")}})
    assert structures.build_structure(cfg).get_chemical_formula() == "Cd3Se3"


def test_missing_file_is_named(tmp_path):
    cfg = config.validate({"name": "x", "structure": {"source": "file", "file": str(tmp_path / "nope.xyz")}})
    with pytest.raises(structures.StructureError, match="nope.xyz"):
        structures.build_structure(cfg)


def test_imported_structure_gets_the_same_summary_as_the_built_one(tmp_path):
    """Old behaviour: an imported file's summary had no surface count ('None surface atoms')."""
    built = {}
    cfg = config.validate(
        {
            "name": "x",
            "structure": {
                "material": "InP",
                "builder": "zincblende-cut",
                "diameter": 10,
                "centre": "anion",
                "passivate": "Cl",
            },
        }
    )
    write(tmp_path / "in.xyz", structures.build_structure(cfg, built))
    imported = {}
    # structure.material left at its default (CdSe): the file's elements say InP
    structures.build_structure(
        config.validate({"name": "x", "structure": {"source": "file", "file": str(tmp_path / "in.xyz")}}), imported
    )
    assert imported["site_material"] == built["site_material"] == "InP"
    for key in ("n_surface", "n_core", "n_ligand", "passivants", "net_formal_charge", "bulk_coordination"):
        assert imported[key] == built[key], key
    assert imported["n_surface"] == 24 and imported["passivants"] == {"Cl": 9}


def test_report_structure_table_and_metrics_agree_on_surface_atoms():
    """The same frame, imported: the report's structure rows and the metrics' site fractions
    come from one classification. Old behaviour: the summary of an imported dot had no surface
    count, and built summaries and metrics used different cutoffs (1.15 x bulk bond against
    1.2 x covalent radii: 10 of 12 against 100% surface on the demo)."""
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import read

    from qdff.report import render as report
    from qdff.validation import evaluate

    path = ROOT / "qdff/data/structures/Pb79Se44Cl70_PBE_14ang_OPT.xyz"
    summary = {}
    structures.build_structure(
        config.validate({"name": "x", "structure": {"source": "file", "file": str(path)}}), summary
    )
    frame = read(path)
    frame.calc = SinglePointCalculator(frame, energy=-1.0, forces=np.zeros((len(frame), 3)))
    metrics = evaluate.breakdown([frame], [-1.0], [np.zeros((len(frame), 3))], "CdSe")  # the config's default material
    for c in ("surface", "core", "ligand"):
        assert summary[f"n_{c}"] == pytest.approx(metrics[f"atom_fraction_site_{c}"] * summary["n_atoms"])
    rows = report.structure_site_rows(summary, [metrics])
    assert rows[0][1] == "66 / 57 / 70 of 193 (34% surface)"
    assert rows[1][1] == "34% / 30% / 36%"


def test_box_is_cubic_with_the_vacuum_on_every_side():
    """CP2K's wavelet solver (the DFT presets) aborts on non-cubic cells."""
    from ase import Atoms

    from qdff.structure.build import put_in_box

    a = put_in_box(Atoms("Cd2Se2", positions=[[0, 0, 0], [2.6, 0, 0], [1.3, 2.2, 0], [1.3, 0.7, 2.1]]), 5.0)
    lengths = a.cell.lengths()
    assert np.allclose(lengths, lengths[0]) and np.isclose(lengths[0], 2.6 + 10.0)
    gap_lo, gap_hi = a.positions.min(axis=0), lengths - a.positions.max(axis=0)
    assert (gap_lo >= 5.0 - 1e-9).all() and (gap_hi >= 5.0 - 1e-9).all()


def test_a_shipped_structure_is_found_from_another_working_directory(tmp_path, monkeypatch):
    """structure.file: qdff/data/structures/... read with Snakemake's --directory elsewhere."""
    from qdff.structure.build import StructureError, read_structure

    monkeypatch.chdir(tmp_path)
    atoms = read_structure("qdff/data/structures/Cd68Se55Cl26_HLE17_20ang_opt.xyz")
    assert atoms.get_chemical_formula() == "Cd68Cl26Se55"
    with pytest.raises(StructureError, match=r"structure.file: nothere\.xyz does not exist \(relative to "):
        read_structure("nothere.xyz")
