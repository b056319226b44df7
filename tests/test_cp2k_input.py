import pytest
from ase import Atoms
from cp2k_input_tools.parser import CP2KInputParserSimplified

from qdff import elements
from qdff.cp2k import input as ci
from qdff.structure.build import cut_cluster, put_in_box


@pytest.fixture
def cluster():
    return put_in_box(cut_cluster("CdSe", "zincblende", 3), 6.0)


def parse(text):
    import io

    return CP2KInputParserSimplified(key_trafo=str.lower).parse(io.StringIO(text))


@pytest.mark.parametrize("preset", ci.PRESETS)
def test_presets_render_and_parse_back(cluster, preset):
    tree = ci.build_input(
        cluster, preset=preset, run_type="MD", project="md", temperature=450.0, steps=7, timestep_fs=0.5, print_every=3
    )
    parsed = parse(ci.render(tree))
    md = parsed["motion"]["md"]
    assert md["ensemble"].upper() == "NVT" and md["steps"] == 7 and md["timestep"] == 0.5
    assert md["temperature"] == 450.0
    assert md["thermostat"]["type"].upper() == "CSVR"
    for what in ("trajectory", "forces", "restart"):
        assert parsed["motion"]["print"][what]["each"]["md"] == 3
    assert parsed["force_eval"]["subsys"]["cell"]["periodic"].upper() == "NONE"
    dft = parsed["force_eval"]["dft"]
    if preset == "xtb":
        assert dft["qs"]["method"].lower() == "xtb"
        # CP2K's atomic-charge check is left at its default (on)
        assert "check_atomic_charges" not in {k.lower() for k in dft["qs"].get("xtb", {})}
        assert "kind" not in parsed["force_eval"]["subsys"]
    else:
        # free-boundary wavelet solver: MT would need a box twice the cluster's extent
        assert dft["poisson"]["poisson_solver"].upper() == "WAVELET"
        if preset == "hle17":
            # its own section (libxc's MGGA_XC_HLE17); no D3 parameters exist for HLE17
            assert set(dft["xc"]["xc_functional"]) == {"mgga_xc_hle17"} and "vdw_potential" not in dft["xc"]
        else:
            assert dft["xc"]["vdw_potential"]["pair_potential"]["type"].upper() == "DFTD3"
        kinds = parsed["force_eval"]["subsys"]["kind"]
        assert set(kinds) == {"Cd", "Se"}
        assert kinds["Cd"] == {"basis_set": "DZVP-MOLOPT-SR-GTH", "potential": "GTH-PBE-q12"}
        assert (dft["mgrid"]["cutoff"], dft["mgrid"]["rel_cutoff"]) == {
            "pbe-fast": (200, 30),
            "pbe": (400, 50),
            "hle17": (300, 40),
        }[preset]


def test_overrides_replace_preset_values(cluster):
    tree = ci.build_input(
        cluster,
        preset="pbe",
        run_type="MD",
        project="md",
        temperature=300,
        overrides={"force_eval": {"dft": {"mgrid": {"cutoff": 550}}}, "global": {"print_level": "medium"}},
    )
    parsed = parse(ci.render(tree))
    assert parsed["force_eval"]["dft"]["mgrid"]["cutoff"] == 550
    assert parsed["force_eval"]["dft"]["mgrid"]["rel_cutoff"] == 50  # untouched
    assert parsed["global"]["print_level"].upper() == "MEDIUM"


def test_unknown_override_keyword_names_its_path():
    with pytest.raises(ci.CP2KInputError, match=r"cp2k\.overrides\.force_eval\.dft\.mgird"):
        ci.check_tree({"force_eval": {"dft": {"mgird": {"cutoff": 1}}}})


def test_restart_file_adds_ext_restart(cluster):
    tree = ci.build_input(
        cluster, preset="xtb", run_type="MD", project="md", temperature=300, restart_file="md-1.restart"
    )
    assert parse(ci.render(tree))["ext_restart"]["restart_file_name"] == "md-1.restart"


def test_geo_opt_input(cluster):
    parsed = parse(ci.render(ci.build_input(cluster, preset="xtb", run_type="GEO_OPT", project="r", max_iter=17)))
    assert parsed["global"]["run_type"].upper() == "GEO_OPT"
    assert parsed["motion"]["geo_opt"]["max_iter"] == 17


def test_charge_multiplicity_parity_checked(cluster):
    with pytest.raises(elements.ElementError, match="multiplicity"):
        ci.build_input(cluster, preset="xtb", run_type="MD", project="md", temperature=300, multiplicity=2)
    tree = ci.build_input(cluster, preset="xtb", run_type="MD", project="md", temperature=300, charge=1, multiplicity=2)
    assert parse(ci.render(tree))["force_eval"]["dft"]["uks"] is True


def test_unknown_element_is_an_error():
    atoms = Atoms("CdXe", positions=[[0, 0, 0], [3, 0, 0]])
    atoms.center(vacuum=5)
    with pytest.raises(elements.ElementError, match="'Xe'"):
        ci.build_input(atoms, preset="pbe", run_type="MD", project="md", temperature=300)


def test_installed_cp2k_has_every_element_basis_and_potential():
    if elements.cp2k_data_dir() is None:
        pytest.fail("CP2K data files not found: run `make setup`")
    elements.check_cp2k_data(list(elements.ELEMENT_SETTINGS))


def test_missing_basis_is_named(tmp_path):
    (tmp_path / "BASIS_MOLOPT").write_text("Cd DZVP-MOLOPT-SR-GTH\n")
    (tmp_path / "GTH_POTENTIALS").write_text("Cd GTH-PBE-q12\n")
    with pytest.raises(elements.ElementError, match=r"element Se.*BASIS_MOLOPT"):
        elements.check_cp2k_data(["Cd", "Se"], tmp_path)


def test_geometry_optimiser_is_limited_memory_for_large_clusters(cluster):
    small = ci.build_input(cluster, preset="xtb", run_type="GEO_OPT", project="relax")
    assert small["motion"]["geo_opt"]["optimizer"] == "BFGS"
    big = cluster.repeat((3, 3, 3))  # > 100 atoms
    big.center(vacuum=5.0)
    tree = ci.build_input(big, preset="xtb", run_type="GEO_OPT", project="relax")
    assert len(big) > 100 and tree["motion"]["geo_opt"]["optimizer"] == "LBFGS"
