"""Validation metrics: RDF overlap, surface/core classification, errors by site and temperature."""
import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from conftest import jiggled
from qdff import evaluate, rdf, sites
from qdff.structures import cut_cluster


@pytest.fixture(scope="module")
def cluster():
    return cut_cluster("CdSe", "zincblende", 40)


def test_rdf_overlap_is_one_for_identical_frames_and_drops_when_shifted(cluster):
    frames = jiggled(cluster, 12, 0.05, 0)
    same = rdf.compare(frames, frames, r_max=8.0, bins=160)
    assert set(same["overlap"]) == {"Cd-Cd", "Cd-Se", "Se-Se"}
    assert all(v == pytest.approx(1.0, abs=1e-9) for v in same["overlap"].values())
    assert 0.5 < same["reference_halves_overlap_min"] < 1.0  # two samples of the same distribution
    # each unit-area curve really has unit area
    edges = np.asarray(same["edges"])
    assert np.sum(same["reference"]["Cd-Se"]) * (edges[1] - edges[0]) == pytest.approx(1.0)

    expanded = []
    for a in frames:
        b = a.copy()
        b.positions = b.positions.mean(axis=0) + 1.10 * (b.positions - b.positions.mean(axis=0))
        expanded.append(b)
    shifted = rdf.compare(frames, expanded, r_max=8.0, bins=160)
    assert all(v < 0.8 for v in shifted["overlap"].values())
    assert shifted["overlap_min"] == min(shifted["overlap"].values())
    # a slightly hotter copy of the same structure overlaps much more than the expanded one
    warm = rdf.compare(frames, jiggled(cluster, 12, 0.08, 1), r_max=8.0, bins=160)
    assert shifted["overlap_min"] < warm["overlap_min"] < 1.0


def test_rdf_pairs_exclude_self_distance():
    a = Atoms("Cd2", positions=[[0, 0, 0], [0, 0, 2.5]])
    g = rdf.pair_rdfs([a, a], r_max=4.0, bins=40)
    edges = np.asarray(g["edges"])
    r = 0.5 * (edges[1:] + edges[:-1])
    assert r[np.argmax(g["Cd-Cd"])] == pytest.approx(2.5, abs=0.1)


def test_sites_core_has_bulk_coordination_surface_less(cluster):
    cn = sites.hetero_coordination(cluster)
    cls = sites.classify(cluster, "CdSe")
    assert set(cls) == {"core", "surface"}
    assert np.all(cn[cls == "core"] == 4) and np.all(cn[cls == "surface"] < 4)
    # the core sits inside: closer to the centre on average than the surface
    r = np.linalg.norm(cluster.positions - cluster.positions.mean(axis=0), axis=1)
    assert r[cls == "core"].mean() < r[cls == "surface"].mean()
    # a passivant that is not part of the material is a ligand
    with_cl = cluster + Atoms("Cl", positions=[cluster.positions[np.argmax(r)] + [0, 0, 2.4]])
    assert sites.classify(with_cl, "CdSe")[-1] == "ligand"
    # a core-like count made up with a ligand does not make a surface cation core
    surface_cd = [k for k in range(len(cluster)) if cls[k] == "surface" and cluster[k].symbol == "Cd" and cn[k] == 3][0]
    d = cluster.positions[surface_cd] - cluster.positions.mean(axis=0)
    capped = cluster + Atoms("Cl", positions=[cluster.positions[surface_cd] + 2.45 * d / np.linalg.norm(d)])
    assert sites.hetero_coordination(capped)[surface_cd] == 4
    assert sites.classify(capped, "CdSe")[surface_cd] == "surface"
    with pytest.raises(ValueError, match="no bulk coordination known for material 'GaAs'"):
        sites.classify(cluster, "GaAs")


def test_breakdown_by_site_and_temperature(cluster):
    frames = jiggled(cluster, 6, 0.05, 2)
    rng = np.random.default_rng(3)
    for k, a in enumerate(frames):
        a.info["temperature"] = 300.0 if k < 3 else 600.0
        a.calc = SinglePointCalculator(a, energy=-100.0, forces=rng.normal(size=(len(a), 3)))
    cls = sites.classify(frames[0], "CdSe")
    # a model exact in the core and off by 1 eV/A (each component) on the surface
    f_pred = []
    for a in frames:
        f = a.get_forces().copy()
        f[sites.classify(a, "CdSe") == "surface"] += 1.0
        f_pred.append(f)
    e_pred = np.full(len(frames), -100.0)
    out = evaluate.breakdown(frames, e_pred, f_pred, "CdSe")
    assert out["force_rmse_meV_per_A_site_core"] == pytest.approx(0.0)
    assert out["force_rmse_meV_per_A_site_surface"] == pytest.approx(1000.0)
    assert out["atom_fraction_site_surface"] == pytest.approx(np.mean(cls == "surface"), abs=0.05)
    assert {"force_rmse_meV_per_A_T_300K", "force_rmse_meV_per_A_T_600K",
            "energy_rmse_meV_per_atom_T_600K"} <= set(out)
