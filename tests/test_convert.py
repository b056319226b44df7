"""The CP2K parser on files that a real CP2K run in this test session wrote."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.io import read

from qdff.cp2k import output as cp2k_output
from qdff.units import HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM, HARTREE_TO_EV

pytestmark = pytest.mark.slow


def raw_first_frame(path):
    lines = Path(path).read_text().splitlines()
    n = int(lines[0])
    energy = float(lines[1].split("E =")[1])
    values = np.array([[float(x) for x in l.split()[1:4]] for l in lines[2 : 2 + n]])
    return energy, values


def test_convert_units_and_metadata(md_run_dir, tmp_path):
    out = tmp_path / "run.extxyz"
    summary = cp2k_output.convert_runs([md_run_dir], out, runs=["300K"], temperatures=[300.0])
    frames = read(out, ":")
    ener = cp2k_output.read_ener(md_run_dir / "md-1.ener")
    assert summary[0]["frames"] == len(frames) == len(ener["step"]) == 401
    e_raw, f_raw = raw_first_frame(md_run_dir / "md-frc-1.xyz")
    _, x_raw = raw_first_frame(md_run_dir / "md-pos-1.xyz")
    a = frames[0]
    assert a.get_potential_energy() == pytest.approx(e_raw * HARTREE_TO_EV, abs=1e-6)
    assert np.allclose(a.get_forces(), f_raw * HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM, atol=1e-8)
    assert np.allclose(a.positions, x_raw, atol=1e-9)  # positions already in Angstrom
    # energies agree with CP2K's .ener file (potential energy column), frame by frame
    e = np.array([f.get_potential_energy() for f in frames])
    assert np.allclose(e, ener["potential"], atol=1e-5)
    steps = [f.info["step"] for f in frames]
    assert steps == list(range(401))
    assert frames[10].info["time"] == pytest.approx(10.0)
    assert frames[10].info["run"] == "300K" and frames[10].info["temperature"] == 300.0
    assert not frames[0].pbc.any()
    assert frames[0].get_forces().dtype == np.float64


def test_cross_check_with_dpdata(md_run_dir, tmp_path):
    """Same energies, forces and positions as dpdata reading the same run.

    dpdata's original cp2k/aimd_output reader cannot parse CP2K 2023's MD log layout
    and points to cp2kdata, whose plugin (installed with the test extra) registers
    itself as dpdata's ``cp2k/aimd_output`` format; that is the reader used here.
    """
    import dpdata

    out = tmp_path / "run.extxyz"
    cp2k_output.convert_runs([md_run_dir], out)
    ours = read(out, ":")
    theirs = dpdata.LabeledSystem(str(md_run_dir), fmt="cp2k/aimd_output", cp2k_output_name="md.log")
    n = min(len(ours), len(theirs))
    assert n >= len(ours) - 1
    # dpdata may reorder atoms: match them on the first frame's coordinates
    d = np.linalg.norm(theirs["coords"][0][:, None, :] - ours[0].positions[None, :, :], axis=2)
    order = d.argmin(axis=1)
    assert sorted(order) == list(range(len(ours[0])))
    e_ours = np.array([a.get_potential_energy() for a in ours[:n]])
    assert np.allclose(e_ours, theirs["energies"][:n], atol=1e-4)
    f_ours = np.array([a.get_forces()[order] for a in ours[:n]])
    assert np.allclose(f_ours, theirs["forces"][:n], atol=1e-4)
    x_ours = np.array([a.positions[order] for a in ours[:n]])
    assert np.allclose(x_ours, theirs["coords"][:n], atol=1e-5)


def _copy_run(src, dst):
    dst.mkdir()
    for f in ("md-pos-1.xyz", "md-frc-1.xyz", "md-1.ener", "md.inp"):
        shutil.copy(src / f, dst / f)
    return dst


def test_truncated_last_frame_is_dropped_with_a_warning_or_refused(md_run_dir, tmp_path, caplog):
    run = _copy_run(md_run_dir, tmp_path / "run")
    pos = run / "md-pos-1.xyz"
    text = pos.read_text()
    pos.write_text(text[: len(text) - 40])  # cut the last frame mid-line
    with pytest.raises(cp2k_output.TrajectoryError, match=r"md-pos-1.xyz: frame 400"):
        cp2k_output.convert_runs([run], tmp_path / "strict.extxyz", allow_truncated=False)
    assert not (tmp_path / "strict.extxyz").exists()  # nothing that looks finished
    out = cp2k_output.convert_runs([run], tmp_path / "lenient.extxyz", allow_truncated=True)
    assert out[0]["frames"] == 400
    assert "dropping incomplete last frame 400" in caplog.text


def test_mismatched_frame_counts_are_named(md_run_dir, tmp_path):
    run = _copy_run(md_run_dir, tmp_path / "run")
    frc = run / "md-frc-1.xyz"
    lines = frc.read_text().splitlines(keepends=True)
    n = int(lines[0]) + 2
    frc.write_text("".join(lines[: len(lines) - 5 * n]))  # five frames fewer
    with pytest.raises(cp2k_output.TrajectoryError, match=r"md-pos-1.xyz has 5 more frame"):
        cp2k_output.convert_runs([run], tmp_path / "x.extxyz")


def test_repeated_steps_from_a_resume_keep_the_later_copy(md_run_dir, tmp_path, caplog):
    run = _copy_run(md_run_dir, tmp_path / "run")
    for name in ("md-pos-1.xyz", "md-frc-1.xyz"):
        lines = (run / name).read_text().splitlines(keepends=True)
        n = int(lines[0]) + 2
        # frames 150..160 written again, as after a restart from an older restart file
        (run / name).write_text("".join(lines[: 161 * n] + lines[150 * n : 161 * n] + lines[161 * n :]))
    out = cp2k_output.convert_runs([run], tmp_path / "x.extxyz")
    assert out[0]["frames"] == 401 and out[0]["duplicates_dropped"] == 11
    steps = [a.info["step"] for a in read(tmp_path / "x.extxyz", ":")]
    assert steps == list(range(401))


def test_cli_convert_detects_project(md_run_dir, tmp_path):
    out = tmp_path / "cli.extxyz"
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "qdff"), "convert", str(md_run_dir), "-o", str(out)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "401 frames (project md, T=300.0 K)" in proc.stdout
    assert len(read(out, ":")) == 401


def test_cli_convert_error_on_empty_dir(tmp_path):
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "qdff"), "convert", str(tmp_path), "-o", str(tmp_path / "o.extxyz")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert "no CP2K trajectory" in proc.stderr
