"""The hle17 preset with the real CP2K (Debian 2023.1, libxc 5.2.3): CP2K accepts the input
(``--check``, under a second) and evaluates the functional: one single point of H2Se through
qdff's own labelling path (CP2K REFTRAJ, forces parsed), kept small (3 atoms, 100 Ry, EPS_SCF
1e-4, a 7 A cube; the preset's own 300 Ry is its working setting, this only proves CP2K runs HLE17)."""

import subprocess

import numpy as np
import pytest
from ase import Atoms

from qdff import config
from qdff.active_learning.label import label_frames
from qdff.cp2k import input as ci

pytestmark = pytest.mark.cp2k

#: the smallest input that still runs HLE17 with the preset's basis, potentials and solver
SMALL = {
    "force_eval": {
        "dft": {
            "mgrid": {"cutoff": 100, "rel_cutoff": 20},
            "scf": {"eps_scf": 1e-4, "outer_scf": {"eps_scf": 1e-4}},
        }
    }
}


def _h2se(box=7.0):
    a = Atoms("SeH2", positions=[[0, 0, 0], [1.47, 0, 0], [-0.05, 1.46, 0]], cell=[box] * 3)
    a.center()
    return a


def test_cp2k_accepts_the_hle17_input(tmp_path, cp2k_available):
    tree = ci.build_input(_h2se(), preset="hle17", run_type="MD", project="md", temperature=300.0, steps=1)
    text = ci.render(tree)
    # the form this CP2K runs: HLE17 as its own section (the &LIBXC FUNCTIONAL form aborts)
    assert "&MGGA_XC_HLE17" in text and "LIBXC" not in text and "DZVP-MOLOPT-SR-GTH" in text
    (tmp_path / "md.inp").write_text(text)
    res = subprocess.run(["cp2k.psmp", "--check", "md.inp"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "SUCCESS" in res.stdout, res.stdout[-2000:]
    assert "HLE17/DZVP-MOLOPT-SR-GTH" in ci.LEVEL_OF_THEORY["hle17"]


def test_hle17_single_point_gives_forces(tmp_path, cp2k_available):
    cfg = config.validate(
        {
            "name": "hle17",
            "structure": {"n_pairs": 1},
            "cp2k": {"preset": "hle17", "threads": 1, "overrides": SMALL},
        }
    )
    frame = _h2se()
    s = label_frames([frame], cfg, tmp_path / "label", tmp_path / "out.extxyz", tmp_path / "s.json")
    assert s["labelled"] == 1 and s["scf_not_converged"] == 0
    assert "HLE17" in s["level_of_theory"]
    assert "&MGGA_XC_HLE17" in (tmp_path / "label/part-1/label.inp").read_text()
    from qdff.data import dataset

    (b,) = dataset.read_frames(tmp_path / "out.extxyz")
    f = b.get_forces()
    assert f.shape == (3, 3) and np.isfinite(f).all() and np.abs(f).max() > 1e-3
    # valence energy of H2Se (8 electrons, GTH pseudopotentials): -11.10 Ha (-302 eV) at 300 Ry
    # in an 8.5 A cube (measured); the small grid here shifts it by well under 1 Ha
    assert -330 < b.get_potential_energy() < -275
