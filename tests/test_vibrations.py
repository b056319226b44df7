"""Normal modes, VDOS and relaxation (qdff.validation.vibrations) on analytic potentials; CP2K's
vibrational analysis with real CP2K xTB on a small cluster."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms, units
from ase.calculators.emt import EMT
from ase.cluster import Icosahedron
from ase.io import read
from ase.optimize import BFGS
from ase.vibrations import Vibrations

from qdff.validation import vibrations as vib

DATA = Path(__file__).parent / "data"


def _signed(freqs) -> np.ndarray:
    """ase.vibrations' complex frequencies as real numbers, imaginary ones negative."""
    f = np.asarray(freqs)
    return np.sort(np.where(np.abs(f.imag) > 0, -np.abs(f.imag), f.real))


@pytest.fixture(scope="module")
def emt_cluster():
    """Cu13 icosahedron relaxed under EMT (a free cluster at its minimum)."""
    a = Icosahedron("Cu", 2)
    a.center(vacuum=6.0)
    a.calc = EMT()
    BFGS(a, logfile=None).run(fmax=1e-5)
    a.calc = None
    return a


def test_modes_reproduce_ase_vibrations(emt_cluster, tmp_path):
    res = vib.normal_modes(emt_cluster, EMT(), delta=0.01, cache_dir=tmp_path / "cache")
    a = emt_cluster.copy()
    a.calc = EMT()
    ref = Vibrations(a, name=str(tmp_path / "ase"), delta=0.01, nfree=2)
    ref.run()
    direct = _signed(ref.get_frequencies())
    n = len(a)
    assert len(res["frequencies_cm1"]) == 3 * n - 6 and res["n_rigid"] == 6
    # the unprojected spectrum is ase.vibrations' own
    np.testing.assert_allclose(np.sort(res["all_cm1"]), direct, atol=1e-6)
    # the 6 modes of smallest |frequency| are the rigid-body ones, near zero
    small = direct[np.argsort(np.abs(direct))]
    assert np.all(np.abs(small[:6]) < 5.0) and np.abs(small[6]) > 50.0
    assert max(abs(f) for f in res["rigid_cm1"]) < 5.0
    # the projected vibrations agree with the other 3N-6 to within 1 cm^-1
    np.testing.assert_allclose(res["frequencies_cm1"], np.sort(small[6:]), atol=1.0)
    assert res["n_imaginary"] == 0 and res["asymmetry"] < 1e-6
    # a rerun reads ase.vibrations' cache: no new force call
    t0 = time.perf_counter()
    again = vib.normal_modes(emt_cluster, _NoCalls(), delta=0.01, cache_dir=tmp_path / "cache")
    assert again["frequencies_cm1"] == res["frequencies_cm1"] and time.perf_counter() - t0 < 5


class _NoCalls(EMT):
    def calculate(self, *args, **kwargs):  # pragma: no cover - must not be reached
        raise AssertionError("the cached displacements were computed again")


def test_modes_from_hessian_of_a_rotated_copy(emt_cluster):
    """Frequencies do not depend on the orientation; the rigid-body projection is exact."""
    a = emt_cluster.copy()
    h1 = vib.hessian_ase(a, EMT())
    b = a.copy()
    b.rotate(37, (1, 2, 3), center="COM")
    h2 = vib.hessian_ase(b, EMT())
    f1 = vib.modes_from_hessian(a, h1)["frequencies_cm1"]
    f2 = vib.modes_from_hessian(b, h2)["frequencies_cm1"]
    np.testing.assert_allclose(f1, f2, atol=0.05)


def test_compare_modes(emt_cluster):
    h = vib.hessian_ase(emt_cluster, EMT())
    ref = vib.modes_from_hessian(emt_cluster, h)
    soft = vib.modes_from_hessian(emt_cluster, 0.81 * h)  # every frequency 10 % lower
    c = vib.compare_modes(ref, soft)
    f = np.asarray(ref["frequencies_cm1"])
    assert c["n_modes"] == len(f)
    assert c["frequency_mae_cm1"] == pytest.approx(0.1 * np.mean(f), rel=1e-6)
    assert c["frequency_mean_signed_error_cm1"] < 0 and c["n_imaginary_model"] == 0
    same = vib.compare_modes(ref, ref)
    assert same["frequency_mae_cm1"] == 0.0


def _harmonic_velocities(freq_cm1: float, dt_fs: float, steps: int, n_atoms: int = 3, seed: int = 0):
    """Velocities of independent 3D harmonic oscillators of one frequency, random phases."""
    rng = np.random.default_rng(seed)
    omega = 2 * np.pi * freq_cm1 / vib.CM1_PER_INV_FS  # rad/fs
    t = np.arange(steps)[:, None, None] * dt_fs
    phase = rng.uniform(0, 2 * np.pi, size=(1, n_atoms, 3))
    amp = rng.uniform(0.5, 1.5, size=(1, n_atoms, 3)) * 0.01
    return amp * np.cos(omega * t + phase)


def test_vdos_harmonic_oscillator_peaks_at_its_frequency():
    freq = 210.0  # cm^-1, the CdSe LO phonon region
    v = _harmonic_velocities(freq, dt_fs=1.0, steps=4000)
    res = vib.vdos(v, ["Cd", "Se", "Se"], [112.4, 79.0, 79.0], timestep_fs=1.0)
    for el in ("all", "Cd", "Se"):
        assert abs(vib.peak_cm1(res, el) - freq) <= res["resolution_cm1"]
    f = np.asarray(res["frequency_cm1"])
    area = np.trapezoid(res["all"], f) if hasattr(np, "trapezoid") else np.trapz(res["all"], f)
    assert area == pytest.approx(1.0, rel=1e-6)
    # a different oscillator overlaps little, the same one (other phases) fully
    other = vib.vdos(_harmonic_velocities(320.0, 1.0, 4000), ["Cd", "Se", "Se"], [112.4, 79.0, 79.0], 1.0)
    same = vib.vdos(_harmonic_velocities(freq, 1.0, 4000, seed=5), ["Cd", "Se", "Se"], [112.4, 79.0, 79.0], 1.0)
    assert vib.vdos_overlap(res, same)["all"] > 0.95
    assert vib.vdos_overlap(res, other)["all"] < 0.05
    assert set(vib.vdos_overlap(res, same)) == {"all", "Cd", "Se"}


def test_vdos_of_emt_md_matches_normal_modes(emt_cluster):
    """NVE MD at low temperature: the VDOS lies where the harmonic frequencies are."""
    from ase.md.velocitydistribution import Stationary, ZeroRotation
    from ase.md.verlet import VelocityVerlet

    from qdff.validation.mlmd import thermalize_momenta

    a = emt_cluster.copy()
    a.calc = EMT()
    thermalize_momenta(a, temperature_K=20, rng=np.random.default_rng(1))
    Stationary(a)
    ZeroRotation(a)
    dyn = VelocityVerlet(a, 2.0 * units.fs)
    vels = []
    for _ in range(1500):
        dyn.run(1)
        vels.append(a.get_velocities() * units.fs)  # A/fs
    res = vib.vdos(np.array(vels), a.get_chemical_symbols(), a.get_masses(), timestep_fs=2.0)
    freqs = vib.normal_modes(emt_cluster, EMT())["frequencies_cm1"]
    f = np.asarray(res["frequency_cm1"])
    s = np.asarray(res["all"])
    inside = (f > min(freqs) - 30) & (f < max(freqs) + 30)
    trap = np.trapezoid if hasattr(np, "trapezoid") else np.trapz
    assert trap(s[inside], f[inside]) > 0.9


def test_relaxation_returns_to_the_minimum(emt_cluster):
    rattled = emt_cluster.copy()
    rattled.rattle(0.05, seed=3)
    assert vib.aligned_rmsd(emt_cluster, rattled) > 0.03
    relaxed, s = vib.relax(rattled, EMT(), fmax=1e-4)
    assert s["converged"] and s["optimizer"] == "BFGS"
    assert vib.aligned_rmsd(emt_cluster, relaxed) < 0.01
    report, structures = vib.relaxation_report(emt_cluster, EMT(), fmax=1e-3, perturbations=2, rattle_A=0.05)
    assert len(report["runs"]) == 3 and len(structures) == 3
    assert report["rmsd_max_A"] < 0.01 and not report["different_minimum_any"]
    assert abs(report["energy_difference_meV_per_atom"]) < 0.01
    assert "Cu-Cu" in report["runs"][0]["bonds"]


def test_alignment_is_invariant_to_rotation_and_translation(emt_cluster):
    moved = emt_cluster.copy()
    moved.rotate(123, (0.3, -1, 2), center="COM")
    moved.translate((1.5, -2.0, 0.7))
    assert vib.aligned_rmsd(emt_cluster, moved) < 1e-6
    distorted = emt_cluster.copy()
    distorted.rattle(0.02, seed=1)
    rmsd = vib.aligned_rmsd(emt_cluster, distorted)
    assert rmsd > 0.01
    distorted.rotate(-71, (2, 1, -0.5), center="COM")
    distorted.translate((-3.0, 0.4, 2.2))
    assert vib.aligned_rmsd(emt_cluster, distorted) == pytest.approx(rmsd, abs=1e-9)
    with pytest.raises(ValueError):
        vib.aligned_rmsd(emt_cluster, Atoms("Cu2", positions=[[0, 0, 0], [0, 0, 2.5]]))


@pytest.mark.cp2k
@pytest.mark.slow
def test_cp2k_vibrational_analysis_of_cd6se6(tmp_path, cp2k_available):
    """CP2K xTB on Cd6Se6 (about 25 s on one core): a tight GEO_OPT, then CP2K's own
    finite-difference Hessian. It is symmetric to finite-difference accuracy, has 6
    near-zero rigid-body modes (a free cluster), 3N-6 real vibrations that match CP2K's
    printed ones, and a rerun computes nothing."""
    from qdff import config
    from qdff.cp2k import run as cp2k_run

    cfg = config.validate(
        {
            "name": "vib",
            "structure": {"n_pairs": 6},
            "cp2k": {"preset": "xtb", "threads": 1},
            "aimd": {"temperatures": [300]},
        }
    )
    start = read(DATA / "Cd6Se6_xtb_relaxed.extxyz")
    t0 = time.perf_counter()
    res = cp2k_run.vibrational_analysis(start, cfg, tmp_path, max_force=1e-5)
    wall = time.perf_counter() - t0
    n = len(start)
    H = res["hessian_eV_per_A2"]
    assert H.shape == (3 * n, 3 * n) and np.isfinite(H).all()
    # symmetric to finite-difference accuracy (CP2K does not symmetrise what it writes)
    asym = np.abs(H - H.T).max() / np.abs(H).max()
    assert 0 < asym < 1e-2
    modes = vib.modes_from_hessian(res["minimum"], H)
    assert modes["asymmetry"] == pytest.approx(asym)
    # unprojected: the 6 smallest |frequencies| are the rigid-body modes, well below the vibrations
    full = np.asarray(modes["all_cm1"])
    small = np.sort(np.abs(full))
    assert np.all(small[:6] < 10.0), small[:8]
    assert max(abs(f) for f in modes["rigid_cm1"]) < 10.0
    # CP2K prints 3N-6 vibrations (rigid body projected out); ours agree, all real at the tight minimum
    printed = np.asarray(res["cp2k_frequencies_cm1"])
    assert len(printed) == 3 * n - 6 == len(modes["frequencies_cm1"])
    np.testing.assert_allclose(modes["frequencies_cm1"], printed, atol=0.5)
    assert printed.min() > 0 and modes["n_imaginary"] == 0
    # Cd-Se stretches of a small cluster: a few hundred cm^-1 at most (bulk LO phonon 210 cm^-1)
    assert 150 < printed.max() < 400
    assert res["relax_converged"]
    print(
        f"Cd6Se6 xTB: {printed.min():.1f}..{printed.max():.1f} cm^-1, asymmetry {asym:.1e}, "
        f"rigid |f| <= {max(abs(f) for f in modes['rigid_cm1']):.1f} cm^-1, {res['seconds']}, wall {wall:.1f} s"
    )
    # a rerun finds complete outputs: skipped
    t0 = time.perf_counter()
    again = cp2k_run.vibrational_analysis(start, cfg, tmp_path, max_force=1e-5)
    assert again["seconds"] == {} and time.perf_counter() - t0 < 10
    np.testing.assert_array_equal(again["hessian_eV_per_A2"], H)


def test_vibrational_analysis_input_is_valid_cp2k():
    """The VIBRATIONAL_ANALYSIS input and the tight GEO_OPT render against CP2K's input
    specification (cp2k-input-tools)."""
    from qdff.cp2k import input as cp2k_input

    a = read(DATA / "Cd6Se6_xtb_relaxed.extxyz")
    text = cp2k_input.render(
        cp2k_input.build_input(a, preset="xtb", run_type="VIBRATIONAL_ANALYSIS", project="vib", vib_dx_bohr=0.02)
    )
    assert "RUN_TYPE VIBRATIONAL_ANALYSIS" in text and "DX 0.02" in text
    assert "FULLY_PERIODIC .FALSE." in text and "&HESSIAN ON" in text
    geo = cp2k_input.render(cp2k_input.build_input(a, preset="xtb", run_type="GEO_OPT", project="r", max_force=1e-5))
    assert "MAX_FORCE 1e-05" in geo
    with pytest.raises(cp2k_input.CP2KInputError):
        cp2k_input.build_input(a, preset="xtb", run_type="BAND", project="x")


def test_internal_velocities_remove_translation_and_rigid_rotation_only():
    from qdff.validation.vibrations import internal_velocities

    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, 3)) * 2.0
    m = np.array([112.4, 79.0, 112.4, 79.0, 35.5])
    omega, vcm = np.array([0.01, -0.02, 0.005]), np.array([0.003, 0.0, -0.001])
    rigid = vcm + np.cross(omega, x - np.average(x, axis=0, weights=m))
    assert np.abs(internal_velocities([rigid], [x], m)).max() < 1e-12
    # an internal motion (zero momentum and angular momentum) is kept as it is
    d = np.zeros((2, 3))
    d[0, 0], d[1, 0] = 0.01 / m[0], -0.01 / m[1]
    pair = np.array([[0.0, 0.0, 0.0], [2.6, 0.0, 0.0]])
    out = internal_velocities([d + rigid[:2] * 0], [pair], m[:2])
    assert np.allclose(out[0], d, atol=1e-12)
