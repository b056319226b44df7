"""Importing a group's existing data (config ``data``, ``qdff import``): extxyz in Orchestr.AI's
format and CP2K run directories into the canonical data set; bad input refused naming the file
and frame, with nothing written. Fast: the frames are those of the real 7-frame CP2K run in
tests/data/cp2k_md_scf (Cd6Se6, GFN1-xTB, 1 fs apart), rewritten by the tests."""

from pathlib import Path

import numpy as np
import pytest
from ase import units
from ase.io import read

from qdff import cli, config
from qdff.cp2k import output as cp2k_output
from qdff.data import dataset
from qdff.data.imports import DataImportError, import_data, run_labels

RUN = Path(__file__).resolve().parent / "data/cp2k_md_scf"


@pytest.fixture(scope="module")
def md_frames(tmp_path_factory):
    """(symbols, positions, forces eV/A, energy eV) of each frame of the CP2K fixture."""
    out = tmp_path_factory.mktemp("md") / "frames.extxyz"
    cp2k_output.convert_runs([RUN], out)
    return [(a.get_chemical_symbols(), a.positions, a.get_forces(), a.get_potential_energy()) for a in read(out, ":")]


def write_orchestrai(path, frames, *, e_scale=1.0, f_scale=1.0, symbols=None, header_extra=""):
    """Frames exactly as Orchestr.AI writes them (energy eV, forces eV/A, trailing `- centered`);
    the numbers divided by ``e_scale`` / ``f_scale`` to write them in other units."""
    lines = []
    for syms, pos, frc, energy in frames:
        syms = symbols or syms
        lines.append(f"{len(syms)}")
        lines.append(
            'Lattice="23.55 0.0 0.0 0.0 23.55 0.0 0.0 0.0 23.55" Properties=species:S:1:pos:R:3:forces:R:3 '
            f'pbc="F F F" energy={energy / e_scale:.6f}{header_extra} - centered'
        )
        for s, x, f in zip(syms, pos, frc / f_scale):
            lines.append(f"{s} {x[0]:.8f} {x[1]:.8f} {x[2]:.8f} {f[0]:.8f} {f[1]:.8f} {f[2]:.8f}")
    Path(path).write_text("\n".join(lines) + "\n")
    return path


def data_cfg(paths, **kw):
    """The ``data`` block with the schema's defaults filled in, as config.validate fills it (its
    pipeline checks of imported data, e.g. that the temperatures are known, are
    tests/test_import_dag.py's: the import itself accepts frames of unknown temperature)."""
    block = {"source": "extxyz", "paths": [str(p) for p in paths], "level_of_theory": "GFN1-xTB", **kw}
    defaults = {k: v["default"] for k, v in config.load_schema()["properties"]["data"]["properties"].items()}
    return defaults | block


def test_orchestrai_format_is_imported_as_it_is(md_frames, tmp_path):
    src = write_orchestrai(tmp_path / "cdse_300K.xyz", md_frames)
    out = tmp_path / "frames.extxyz"
    s = import_data(data_cfg([src], temperature=300), out)
    frames = dataset.read_frames(out)  # the canonical reader accepts it
    assert s["frames"] == len(frames) == 7 and s["compositions"] == {"Cd6Se6": 7}
    src_s = s["sources"][0]
    assert src_s["units_checked"] == {"forces": True, "energy": True}
    assert src_s["ignored_info_keys"] == ["-", "centered"]  # ASE 3.29 reads `- centered` as two flags
    assert src_s["trajectory"] is False and src_s["time_fs"] is None
    for a, (syms, pos, frc, energy) in zip(frames, md_frames):
        assert a.get_chemical_symbols() == syms
        assert a.get_potential_energy() == pytest.approx(energy, abs=1e-6)
        assert np.allclose(a.get_forces(), frc, atol=1e-8) and np.allclose(a.positions, pos, atol=1e-8)
        assert a.get_forces().dtype == np.float64
    info = frames[3].info
    assert info["run"] == "cdse_300K" and info["source"] == str(src) and info["level_of_theory"] == "GFN1-xTB"
    assert info["composition"] == "Cd6Se6" and info["temperature"] == 300.0
    assert info["step"] == 3 and "time" not in info and info["trajectory"] is False
    assert "centered" not in info and "-" not in info


def test_hartree_units_are_converted_once(md_frames, tmp_path):
    src = write_orchestrai(tmp_path / "ha.xyz", md_frames, e_scale=units.Hartree, f_scale=units.Hartree / units.Bohr)
    out = tmp_path / "frames.extxyz"
    import_data(data_cfg([src], energy_unit="Ha", forces_unit="Ha/Bohr"), out)
    frames = dataset.read_frames(out)
    for a, (_, _, frc, energy) in zip(frames, md_frames):
        assert a.get_potential_energy() == pytest.approx(energy, abs=1e-4)  # 6 decimals of Ha written
        assert np.allclose(a.get_forces(), frc, atol=1e-6)
    assert frames[0].info["temperature"] == -1.0  # none given: unknown


def test_two_compositions_and_a_time_ordered_file(md_frames, tmp_path):
    a = write_orchestrai(tmp_path / "a.xyz", md_frames, header_extra=" time=0.0")
    # per-frame times: rewrite the header of each frame
    text = a.read_text().split("\n")
    k = 0
    for i, line in enumerate(text):
        if "time=0.0" in line:
            text[i] = line.replace("time=0.0", f"time={2.0 * k}")
            k += 1
    a.write_text("\n".join(text))
    # a second composition: the first Se of four frames relabelled Cl (the checks see the same numbers)
    b = write_orchestrai(tmp_path / "b.xyz", [(["Cl", *f[0][1:]], *f[1:]) for f in md_frames[:4]])
    out = tmp_path / "frames.extxyz"
    s = import_data(data_cfg([a, b]), out)
    assert s["compositions"] == {"Cd6Se6": 7, "Cd6ClSe5": 4}
    sa, sb = s["sources"]
    assert sa["trajectory"] is True and sa["time_fs"] == [0.0, 12.0] and sa["compositions"] == {"Cd6Se6": 7}
    assert sb["trajectory"] is False and sb["compositions"] == {"Cd6ClSe5": 4}
    frames = dataset.read_frames(out)
    assert [f.info["run"] for f in frames] == ["a"] * 7 + ["b"] * 4
    assert frames[2].info["time"] == 4.0


def _refused(tmp_path, src, match, **kw):
    out = tmp_path / "frames.extxyz"
    with pytest.raises(DataImportError, match=match) as exc:
        import_data(data_cfg([src], **kw), out)
    assert not out.exists() and not list(tmp_path.glob(".frames*"))  # nothing written, no temporary left
    assert str(src) in str(exc.value)
    return str(exc.value)


def test_frames_without_forces_are_refused(md_frames, tmp_path):
    src = write_orchestrai(tmp_path / "x.xyz", md_frames)
    text = src.read_text().split("\n")
    n = len(md_frames[0][0])
    # frame 2 written without its forces column
    start = 2 * (n + 2)
    text[start + 1] = text[start + 1].replace(":forces:R:3", "")
    for i in range(start + 2, start + 2 + n):
        text[i] = " ".join(text[i].split()[:4])
    src.write_text("\n".join(text))
    msg = _refused(tmp_path, src, "frame 2: no forces 'forces'")
    assert "per-atom columns there: none" in msg


def test_a_missing_energy_key_names_the_keys_there(md_frames, tmp_path):
    src = write_orchestrai(tmp_path / "x.xyz", md_frames)
    msg = _refused(tmp_path, src, "frame 0: no energy 'REF_energy'", energy_key="REF_energy")
    assert "header keys there: -, centered, energy" in msg


@pytest.mark.parametrize("what", ["energy", "forces"])
def test_non_finite_values_are_refused(md_frames, tmp_path, what):
    frames = [list(f) for f in md_frames]
    if what == "energy":
        frames[4][3] = float("nan")
    else:
        frames[4][2] = frames[4][2].copy()
        frames[4][2][1, 0] = np.inf
    src = write_orchestrai(tmp_path / "x.xyz", frames)
    _refused(tmp_path, src, f"frame 4: non-finite {what}")


def test_forces_in_hartree_per_bohr_declared_ev_per_angstrom_are_refused(md_frames, tmp_path):
    src = write_orchestrai(tmp_path / "x.xyz", md_frames, f_scale=units.Hartree / units.Bohr)
    _refused(tmp_path, src, r"frame \d: the median RMS force component .* 0\.00\d+ eV/A .*Ha/Bohr read as eV/A")
    # the escape hatch for frames that are right
    import_data(data_cfg([src], check_units=False), tmp_path / "frames.extxyz")


def test_energies_in_hartree_declared_ev_are_refused(md_frames, tmp_path):
    src = write_orchestrai(tmp_path / "x.xyz", md_frames, e_scale=units.Hartree)
    msg = _refused(tmp_path, src, r"frame 0: energy differences between neighbouring frames are 0\.03")
    assert "energy_unit eV" in msg


def test_duplicates_are_dropped_and_counted_or_refused_when_strict(md_frames, tmp_path, caplog):
    src = write_orchestrai(tmp_path / "x.xyz", [*md_frames, md_frames[2], md_frames[5]])
    out = tmp_path / "frames.extxyz"
    s = import_data(data_cfg([src]), out)
    assert s["frames"] == 7 and s["duplicates_dropped"] == 2 and s["sources"][0]["duplicates_dropped"] == 2
    assert "dropped 2 duplicate frame(s)" in caplog.text
    out.unlink()
    _refused(tmp_path, src, r"frame 7: the same positions as .*x\.xyz: frame 2", strict=True)


def test_an_element_unknown_to_qdff_is_refused(md_frames, tmp_path):
    frames = [(["Xe", *f[0][1:]], *f[1:]) for f in md_frames]
    src = write_orchestrai(tmp_path / "x.xyz", frames)
    _refused(tmp_path, src, "frame 0: element.* Xe unknown to qdff")


def test_a_later_bad_file_leaves_no_output(md_frames, tmp_path):
    good = write_orchestrai(tmp_path / "good.xyz", md_frames)
    bad = write_orchestrai(tmp_path / "bad.xyz", md_frames, e_scale=units.Hartree)
    out = tmp_path / "frames.extxyz"
    with pytest.raises(DataImportError, match="bad.xyz"):
        import_data(data_cfg([good, bad]), out)
    assert not out.exists()


def test_cp2k_directory_import_reproduces_the_converter(tmp_path):
    ref = tmp_path / "convert.extxyz"
    cp2k_output.convert_runs([RUN], ref)
    out = tmp_path / "import.extxyz"
    cfg = config.validate(
        {
            "name": "x",
            "structure": {},
            "data": {"source": "cp2k", "paths": [str(RUN)], "level_of_theory": "GFN1-xTB"},
        }
    )
    s = import_data(cfg["data"], out)
    assert s["sources"][0]["scf_not_converged_frames"] == 1 and s["compositions"] == {"Cd6Se6": 7}
    # the same numbers, byte for byte: only the header's new keys differ
    ref_lines, out_lines = ref.read_text().splitlines(), out.read_text().splitlines()
    assert len(ref_lines) == len(out_lines)
    for r, o in zip(ref_lines, out_lines):
        if r.startswith("Lattice="):
            assert o.startswith(r.removesuffix(' pbc="F F F"'))
            assert 'source="' not in o and f"source={RUN}" in o and "composition=Cd6Se6" in o
        else:
            assert r == o
    a, b = read(ref, ":"), read(out, ":")
    for x, y in zip(a, b):
        assert {k: y.info[k] for k in x.info} == x.info
        assert y.info["level_of_theory"] == "GFN1-xTB" and y.info["trajectory"] is True


def test_config_requires_level_of_theory_for_an_import():
    for source in ("cp2k", "extxyz"):
        with pytest.raises(config.ConfigError, match="data.level_of_theory: required when data.source is"):
            config.validate({"name": "x", "structure": {}, "data": {"source": source, "paths": ["a"]}})
    with pytest.raises(config.ConfigError, match="data.paths: required"):
        config.validate({"name": "x", "structure": {}, "data": {"source": "extxyz", "level_of_theory": "PBE"}})
    with pytest.raises(config.ConfigError, match="data.energy_unit: applies to source 'extxyz' only"):
        config.validate(
            {
                "name": "x",
                "structure": {},
                "data": {"source": "cp2k", "paths": ["a"], "level_of_theory": "PBE", "energy_unit": "Ha"},
            }
        )
    with pytest.raises(config.ConfigError, match="data.paths: a path is listed twice"):
        config.validate(
            {"name": "x", "structure": {}, "data": {"source": "cp2k", "paths": ["a", "a"], "level_of_theory": "PBE"}}
        )
    assert config.validate({"name": "x", "structure": {}})["data"]["source"] == "aimd"


def test_run_labels_are_unique(tmp_path):
    (tmp_path / "run.1").mkdir()
    paths = [tmp_path / "a/frames.xyz", tmp_path / "b/frames.xyz", tmp_path / "run.1", tmp_path / "c.extxyz"]
    assert run_labels(paths) == ["a-frames", "b-frames", "run.1", "c"]


def test_cli_import_prints_a_summary_per_source(md_frames, tmp_path, capsys):
    src = write_orchestrai(tmp_path / "orch.xyz", md_frames)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"name: x\nstructure: {{}}\ndata:\n  source: extxyz\n  paths: [{src}]\n  level_of_theory: GFN1-xTB\n"
        "  temperature: 300\n"
    )
    out = tmp_path / "frames.extxyz"
    assert cli.main(["import", str(cfg), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "orch (" in text and "7 frames of Cd6Se6 x 7; T 300 K; not a trajectory" in text
    assert f"wrote {out}: 7 frames (Cd6Se6 x 7), GFN1-xTB" in text
