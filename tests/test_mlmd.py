"""ML-MD stability verdict: a sane potential passes, a broken one is flagged."""

import numpy as np
import pytest
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.lj import LennardJones
from conftest import jiggled

from qdff.structure.build import cut_cluster
from qdff.validation import mlmd


def _lj_for(atoms):
    # minimum of the LJ pair potential at the crystal nearest-neighbour distance
    d0 = mlmd.nn_distances(atoms.positions).min()
    return LennardJones(sigma=d0 / 2 ** (1 / 6), epsilon=0.5, rc=10.0, smooth=True)


class FlippedForces(Calculator):
    """A deliberately broken model: the forces of a good one with the sign flipped."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        a = self.atoms.copy()
        a.calc = self.inner
        self.results = {"energy": -a.get_potential_energy(), "forces": -a.get_forces()}


@pytest.fixture
def cluster():
    return cut_cluster("CdSe", "zincblende", 6)


def _reference(cluster, n=20, scale=0.05):
    return jiggled(cluster, n, scale, seed=0)


def test_good_potential_is_stable(cluster):
    s = mlmd.run(
        _lj_for(cluster),
        cluster,
        _reference(cluster),
        temperature=300,
        steps=300,
        timestep_fs=1.0,
        thermostat="langevin",
        thermostat_timecon_fs=50.0,
        bond_factor=1.5,
        seed=1,
    )
    assert s["stable"], s["reason"]
    assert s["steps_run"] == 300


def test_flipped_forces_are_flagged_unstable(cluster):
    traj = []
    s = mlmd.run(
        FlippedForces(_lj_for(cluster)),
        cluster,
        _reference(cluster),
        temperature=300,
        steps=2000,
        timestep_fs=1.0,
        thermostat="langevin",
        thermostat_timecon_fs=50.0,
        bond_factor=1.5,
        seed=1,
        trajectory=traj,
    )
    assert not s["stable"]
    assert s["steps_run"] < 2000  # stopped early
    assert any(w in s["reason"] for w in ("nearest neighbour", "apart", "non-finite", "temperature"))


def test_check_frame_reasons(cluster):
    limits = mlmd.reference_limits([cluster])
    assert mlmd.check_frame(cluster, -1.0, limits, 1.5) is None
    far = cluster.copy()
    far.positions[0] += [20.0, 0, 0]
    assert "nearest neighbour" in mlmd.check_frame(far, -1.0, limits, 1.5)
    assert "non-finite" in mlmd.check_frame(cluster, float("nan"), limits, 1.5)


class ScaledForces(FlippedForces):
    """Forces 1.3 x the gradient of the energy: not conservative, so NVE drifts."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        Calculator.calculate(self, atoms, properties, system_changes)
        a = self.atoms.copy()
        a.calc = self.inner
        self.results = {"energy": a.get_potential_energy(), "forces": 1.3 * a.get_forces()}


def test_nve_drift_small_for_conservative_forces_large_otherwise(cluster):
    kw = dict(
        temperature=300,
        steps=100,
        timestep_fs=1.0,
        thermostat="langevin",
        thermostat_timecon_fs=50.0,
        bond_factor=1.5,
        seed=1,
        nve_steps=400,
    )
    good = mlmd.run(_lj_for(cluster), cluster, _reference(cluster), **kw)
    bad = mlmd.run(ScaledForces(_lj_for(cluster)), cluster, _reference(cluster), **kw)
    assert good["stable"] and np.isfinite(good["nve_drift_meV_per_atom_per_ps"])
    assert abs(bad["nve_drift_meV_per_atom_per_ps"]) > 10 * abs(good["nve_drift_meV_per_atom_per_ps"]), (good, bad)


class Springs(Calculator):
    """Every atom on a harmonic spring to its own anchor point (an Einstein solid): a model
    that holds any structure it is given, here one with a Pb-Br bond pulled 2 A long."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, anchors, k=3.0):
        super().__init__()
        self.anchors, self.k = np.asarray(anchors), k

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        u = self.atoms.positions - self.anchors
        self.results = {"energy": 0.5 * self.k * float(np.sum(u**2)), "forces": -self.k * u}


def _stretched_pb_br():
    """Cs4Pb4Br12 and spring anchors with one terminal Br moved 2 A away from its Pb."""
    qd = cut_cluster("CsPbBr3", "perovskite", 4)
    s = np.array(qd.get_chemical_symbols())
    d = qd.get_all_distances()
    br = next(k for k in np.flatnonzero(s == "Br") if np.sum((s == "Pb") & (d[k] < 3.5)) == 1)
    pb = int(np.flatnonzero((s == "Pb") & (d[br] < 3.5))[0])
    anchors = qd.positions.copy()
    u = anchors[br] - anchors[pb]
    anchors[br] += 2.0 * u / np.linalg.norm(u)
    return qd, anchors, br, pb


def test_one_broken_bond_is_flagged_though_no_atom_leaves():
    """Old behaviour: stable (the Br's nearest neighbour stays within 1.5 x the AIMD's largest
    nearest-neighbour distance, 6.2 A for CsPbBr3). Now the broken Pb-Br bond is caught."""
    qd, anchors, br, pb = _stretched_pb_br()
    aimd = jiggled(qd, 30, 0.05, seed=0)
    far = qd.copy()
    far.positions = anchors
    limits = mlmd.reference_limits(aimd)
    assert mlmd.check_frame(far, 0.0, limits, 1.5) is None  # the global criterion sees nothing
    kw = dict(
        temperature=300,
        steps=600,
        timestep_fs=1.0,
        thermostat="langevin",
        thermostat_timecon_fs=50.0,
        bond_factor=1.5,
        seed=1,
    )
    old = mlmd.run(Springs(anchors), qd, aimd, **kw)
    assert old["stable"]
    new = mlmd.run(Springs(anchors), qd, aimd, bond_check=True, bond_criterion="stretched", **kw)
    assert not new["stable"] and "beyond its break distance" in new["reason"]
    # the default criterion sees it too: the Pb has lost a neighbour no Pb of the AIMD lacks
    default = mlmd.run(Springs(anchors), qd, aimd, bond_check=True, **kw)
    assert not default["stable"] and "neighbour(s) within the break distances for 200 fs" in default["reason"]
    # the verdict came only after the bond had stayed out for bond_break_fs (200 fs by default)
    assert 200 <= new["failure_time_fs"] <= 400, new["failure_time_fs"]
    assert f"Pb {pb} - Br {br}" in new["reason"] or f"Br {br} - Pb {pb}" in new["reason"]
    assert new["aimd_bonds_broken_max"] == 0 and new["bonds_broken_max"] >= 1
    assert set(new["bond_cutoffs"]) == {"Br-Pb", "Br-Cs"}  # Cs-Cs at 5.87 A: two cations, no bond
    assert new["bond_cutoffs"]["Br-Pb"] == pytest.approx(1.25 * 2.94, abs=0.05)
    # monitored without judging (a stress temperature): reported, not unstable
    watched = mlmd.run(Springs(anchors), qd, aimd, monitor_bonds=True, **kw)
    assert watched["stable"] and watched["bonds_broken_max"] >= 1 and watched["bond_checks_beyond_aimd"] > 0


def test_a_model_that_keeps_the_structure_keeps_its_bonds():
    qd = cut_cluster("CsPbBr3", "perovskite", 4)
    s = mlmd.run(
        Springs(qd.positions),
        qd,
        jiggled(qd, 30, 0.05, seed=0),
        temperature=300,
        steps=300,
        timestep_fs=1.0,
        thermostat="langevin",
        thermostat_timecon_fs=50.0,
        bond_factor=1.5,
        seed=1,
        bond_check=True,
        nve_steps=100,
    )
    assert s["stable"], s["reason"]
    assert s["bonds_broken_max"] == 0 and s["bonds_formed_max"] == 0
    assert s["coordination"]["Pb"] == pytest.approx(s["aimd_coordination"]["Pb"][0])
    assert np.isfinite(s["nve_temperature_mean"]) and np.isfinite(s["nve_energy_std_meV_per_atom"])


def test_bond_cutoffs_counts_and_coordination_of_a_pbbr6_octahedron():
    from ase import Atoms

    octa = Atoms("PbBr6", positions=[[0, 0, 0], [3, 0, 0], [-3, 0, 0], [0, 3, 0], [0, -3, 0], [0, 0, 3], [0, 0, -3]])
    cut = mlmd.bond_cutoffs([octa], factor=1.25)
    assert cut == {"Br-Pb": pytest.approx(3.75)}  # Br-Br at 4.24 A is not a bond (covalent radii)
    graph = mlmd.BondGraph(octa.get_chemical_symbols(), cut, octa.positions)
    assert int(graph.start.sum()) == 6
    assert graph.coordination(octa.positions) == {"Br": pytest.approx(1.0), "Pb": pytest.approx(6.0)}
    long = octa.copy()
    long.positions[5] = [0, 0, 5.0]
    c = graph.changes(long.positions)
    assert (c["broken"], c["formed"]) == (1, 0) and "Br 5" in c["worst"] and "5.00 A" in c["worst"]
    assert graph.coordination(long.positions) == {"Br": pytest.approx(5 / 6), "Pb": pytest.approx(5.0)}
    # formed: counted against a start frame that lacked the bond
    assert mlmd.BondGraph(octa.get_chemical_symbols(), cut, long.positions).changes(octa.positions)["formed"] == 1
    base = graph.baseline([octa, long, long, octa])
    assert (base["broken_max"], base["formed_max"]) == (1, 0)
    assert base["coordination"]["Pb"] == pytest.approx([5.5, 0.5])


def test_energy_stats_of_a_known_series():
    t = np.arange(0.0, 1000.0, 1.0)  # fs
    e = 2.0 + 0.05 * t / 1000 + 0.01 * np.cos(2 * np.pi * t / 100.0)  # eV: 50 meV/ps and a 10 meV wobble
    s = mlmd.energy_stats(t, e, n_atoms=10)
    assert s["drift_meV_per_atom_per_ps"] == pytest.approx(5.0, rel=0.01)
    assert s["std_meV_per_atom"] == pytest.approx(1e3 * 0.01 / np.sqrt(2) / 10, rel=0.02)
    assert np.isnan(mlmd.energy_stats(t[:2], e[:2], 10)["drift_meV_per_atom_per_ps"])


def test_seeds_combine_into_one_verdict():
    qd = cut_cluster("CdSe", "zincblende", 6)
    ref = _reference(qd)
    kw = dict(
        temperature=300,
        steps=50,
        timestep_fs=1.0,
        thermostat="langevin",
        thermostat_timecon_fs=50.0,
        bond_factor=1.5,
        nve_steps=40,
        monitor_bonds=True,
    )
    runs = [mlmd.run(_lj_for(qd), qd, ref, seed=s, **kw) for s in (1, 2)]
    runs[1] = dict(runs[1], stable=False, reason="step 50: made up")
    c = mlmd.combine(runs)
    assert c["seeds"] == [1, 2] and not c["stable"]
    assert c["reason"] == "1 of 2 seeds: seed 2 at 0 fs: step 50: made up"
    assert c["unstable_seeds"] == 1 and c["steps_run"] == 100 and len(c["runs"]) == 2
    assert c["bonds_broken_max"] == max(r["bonds_broken_max"] for r in runs)
    # episodes below the coordination floor and the time judged add up over the seeds
    assert c["below_floor_observed_fs"] == sum(r["below_floor_observed_fs"] for r in runs) > 0
    assert c["below_floor_episodes"] == sum(r["below_floor_episodes"] for r in runs)
    drifts = [abs(r["nve_drift_meV_per_atom_per_ps"]) for r in runs]
    assert np.all(np.isfinite(drifts)) and abs(c["nve_drift_meV_per_atom_per_ps"]) == max(drifts)


def test_mlmd_temperatures_add_a_stress_temperature():
    from qdff import config

    cfg = config.validate({"name": "x", "structure": {}, "aimd": {"temperatures": [300, 600]}})
    assert config.mlmd_temperatures(cfg) == {300.0: False, 600.0: False, 900.0: True}
    cfg = config.validate(
        {"name": "x", "structure": {}, "aimd": {"temperatures": [300]}, "mlmd": {"stress_temperatures": []}}
    )
    assert config.mlmd_temperatures(cfg) == {300.0: False}
    with pytest.raises(config.ConfigError, match="mlmd.stress_temperatures"):
        config.validate(
            {"name": "x", "structure": {}, "aimd": {"temperatures": [300, 600]}, "mlmd": {"stress_temperatures": [500]}}
        )


# an mlmd config block's judging settings, as the schema's defaults would fill them
PROTOCOL = {
    "timestep_fs": 1.0,
    "thermostat": "langevin",
    "thermostat_timecon_fs": 50.0,
    "bond_factor": 1.5,
    "bond_check": False,
    "bond_cutoff_factor": 1.25,
    "bond_break_fs": 200.0,
}


def _bond_track(distances, dt_fs=10.0, break_fs=200.0):
    """Feed a two-atom Cd-Se 'trajectory' of the given bond lengths to StretchedBonds (break
    distance 3.6 A): the first verdict and when it came, or (None, None)."""
    from qdff.validation.stability import StretchedBonds

    start = np.array([[0.0, 0.0, 0.0], [2.7, 0.0, 0.0]])
    tracker = StretchedBonds(["Cd", "Se"], start, {"Cd-Se": 3.3}, {"Cd-Se": 3.6}, break_fs)
    for k, d in enumerate(distances):
        why = tracker(np.array([[0.0, 0.0, 0.0], [d, 0.0, 0.0]]), k * dt_fs)
        if why:
            return why, k * dt_fs
    return None, None


def test_a_bond_flickering_across_its_break_distance_is_not_broken():
    # 1 ps of a bond jumping between 3.5 and 3.7 A every 10 fs: never out for long
    flicker = [3.5 if k % 2 else 3.7 for k in range(100)]
    assert _bond_track(flicker) == (None, None)
    # out for 190 fs, back for one frame, out again for 190 fs: still no break
    assert _bond_track([2.7] + [3.8] * 20 + [3.0] + [3.8] * 20) == (None, None)


def test_a_bond_stretched_past_its_break_distance_for_300_fs_is_broken():
    why, when = _bond_track([2.7] * 5 + [3.9] * 30)  # out from 50 fs on, for 300 fs
    assert why and "Cd 0 - Se 1 beyond its break distance for 200 fs" in why and "3.60 A" in why
    assert when == 250.0  # 200 fs after it first went out


def test_an_atom_below_the_aimds_coordination_for_200_fs_is_flagged_a_bond_hop_is_not():
    """The candidate gross criterion: Se-Cd-Se-Cd chain (every Cd and Se with 1-2 neighbours in
    the 'AIMD'); the end Se hopping to the other end keeps one neighbour (no flag), the end Se
    flying off for 300 fs has none (flagged 200 fs after it left)."""
    from ase import Atoms

    from qdff.validation.stability import Undercoordinated

    chain = np.array([[0.0, 0, 0], [2.6, 0, 0], [5.2, 0, 0], [7.8, 0, 0]])
    aimd = [Atoms("SeCdSeCd", positions=chain + 0.05 * k) for k in range(5)]
    breaks = {"Cd-Se": 3.4}

    def first_flag(end_positions, dt_fs=10.0):
        check = Undercoordinated(["Se", "Cd", "Se", "Cd"], breaks, aimd, 200.0)
        for k, p0 in enumerate(end_positions):
            why = check(np.r_[[p0], chain[1:]], k * dt_fs)
            if why:
                return why, k * dt_fs
        return None, None

    assert check_min(aimd, breaks) == {"Se": 1, "Cd": 1}
    hop = [[0.0, 0, 0]] * 5 + [[10.4, 0, 0]] * 40  # bonded to Cd 3 instead of Cd 1: still one neighbour
    assert first_flag(hop) == (None, None)
    gone = [[0.0, 0, 0]] * 5 + [[-5.0, 0, 0]] * 30  # no neighbour from 50 fs on
    why, when = first_flag(gone)
    assert why.startswith("Se 0 has 0 neighbour(s)") and when == 250.0


def check_min(aimd, breaks):
    from qdff.validation.stability import Undercoordinated

    return Undercoordinated(aimd[0].get_chemical_symbols(), breaks, aimd, 200.0).min_cn


def test_break_distance_is_the_first_minimum_or_the_middle_of_a_gap():
    from qdff.validation.stability import first_minimum

    rng = np.random.default_rng(0)
    overlapping = np.r_[rng.normal(2.7, 0.1, 5000), rng.normal(3.6, 0.2, 3000)]
    peak, minimum = first_minimum(overlapping)
    assert peak == pytest.approx(2.7, abs=0.03) and 2.95 < minimum < 3.2
    # shells that no frame crosses: the middle of the gap, not the end of the first peak's tail
    gap = np.r_[rng.normal(2.7, 0.05, 5000), rng.normal(4.6, 0.05, 4000)]
    assert 3.4 < first_minimum(gap)[1] < 3.9
    assert first_minimum([3.0] * 5) is None  # too few distances


def _recorder(cluster):
    return mlmd._Recorder(
        cluster, _reference(cluster), temperature=300.0, seed=1, **mlmd.protocol(PROTOCOL, recorder_only=True)
    )


def test_temperature_blow_up_and_csvr_thermostat(cluster):
    kw = dict(temperature=300, steps=2000, timestep_fs=1.0, bond_factor=1.5, seed=1, thermostat_timecon_fs=50.0)
    # an Einstein solid of the cluster: at its minimum, so the thermostat alone sets the temperature
    s = mlmd.run(Springs(cluster.positions, k=1.0), cluster, _reference(cluster), thermostat="csvr", **kw)
    assert s["stable"], s["reason"]
    assert 240 < s["temperature_mean"] < 360  # 12 atoms: a wide canonical spread about 300 K
    lj = _lj_for(cluster)
    rec = _recorder(cluster)
    hot = [
        rec.langevin(cluster.copy(), step, 0.0, t) for step, t in ((10, 850.0), (20, 950.0), (219, 950.0), (220, 950.0))
    ]
    assert hot[0] is None and hot[1] is None and hot[2] is None  # hot for 199 fs: a spike so far
    assert "temperature 950 K" in hot[3] and "for 200 fs" in hot[3]
    rec2 = _recorder(cluster)
    spikes = [rec2.langevin(cluster.copy(), 10 * k, 0.0, 950.0 if k % 5 else 300.0) for k in range(1, 60)]
    assert not any(spikes)  # hot again and again, never for 200 fs: the thermostat takes it back
    with pytest.raises(ValueError, match="mlmd.thermostat"):
        mlmd.run(lj, cluster, _reference(cluster), thermostat="berendsen", **kw)


def test_csvr_holds_the_kinetic_energy_of_3n_minus_6_degrees_of_freedom_as_cp2k():
    """A free cluster under CSVR keeps zero momentum and rotation, so its kinetic energy has
    3N - 6 degrees of freedom (CP2K's count for the AIMD); ASE's Bussi counted 3N - 3 (FixCom)
    and held a 12-atom cluster 10 % hotter. A 13-atom Lennard-Jones cluster, 20 ps, fixed seed."""
    from ase.calculators.lj import LennardJones
    from ase.cluster import Icosahedron
    from ase.constraints import FixCom

    atoms = Icosahedron("Ar", 2)  # 13 atoms
    atoms.calc = LennardJones(sigma=3.4, epsilon=0.0104, rc=10.0)
    rng = np.random.default_rng(1)
    mlmd.thermalize_momenta(atoms, temperature_K=40.0, rng=rng)
    mlmd.Stationary(atoms)
    mlmd.ZeroRotation(atoms)
    atoms.set_constraint(FixCom())
    dyn = mlmd.thermostatted(atoms, "csvr", 40.0, 5.0, 100.0, rng)
    ndof = mlmd.degrees_of_freedom(len(atoms), "csvr")
    assert ndof == 33 and mlmd.degrees_of_freedom(len(atoms), "langevin") == 36
    temps = []
    for _ in range(4000):
        dyn.run(1)
        temps.append(mlmd.temperature_of(atoms, ndof))
    assert np.mean(temps[400:]) == pytest.approx(40.0, rel=0.04)


@pytest.mark.parametrize("criterion", ["stretched", "undercoordinated"])
def test_the_recorder_judges_by_the_configured_bond_criterion(criterion):
    """The same frames: a Se-Cd-Se-Cd chain whose end Se moves to 6 A from its Cd for 300 fs
    (beyond the break distance, the middle of the chain's gap between 2.6 and 7.8 A; bond_factor
    3 keeps it from counting as leaving). Its bond of the
    start frame is stretched (unstable by "stretched") and it has no neighbour left, fewer than
    any Se in the AIMD (unstable by "undercoordinated", which names the atom)."""
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    from qdff.validation.mlmd import _Recorder

    chain = np.array([[0.0, 0, 0], [2.6, 0, 0], [5.2, 0, 0], [7.8, 0, 0]])
    rng = np.random.default_rng(1)
    aimd = [Atoms("SeCdSeCd", positions=chain + rng.normal(scale=0.08, size=chain.shape)) for _ in range(60)]
    for a in aimd:
        a.calc = SinglePointCalculator(a, energy=0.0, forces=np.zeros((4, 3)))
    rec = _Recorder(
        aimd[0],
        aimd,
        temperature=300.0,
        seed=1,
        timestep_fs=1.0,
        bond_factor=3.0,
        bond_check=True,
        monitor_bonds=True,
        bond_cutoff_factor=1.25,
        bond_break_fs=200.0,
        trajectory=None,
        bond_criterion=criterion,
    )
    atoms = aimd[0].copy()
    why = None
    for step in range(10, 400, 10):
        atoms.positions = chain.copy()
        if step >= 50:
            atoms.positions[0] = [-3.4, 0, 0]  # 6 A from Cd 1
        why = why or rec.langevin(atoms, step, 0.0, 300.0)
    assert why, "the run should be unstable"
    if criterion == "stretched":
        assert "bond Se 0 - Cd 1 beyond its break distance" in why
    else:
        assert "Se 0 has 0 neighbour(s) within the break distances for 200 fs" in why
