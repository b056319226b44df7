"""ML-MD with a trained model: does the force field keep the cluster and its bonds together?

Low test errors do not guarantee stable MD. Each model runs thermostatted MD (by default CSVR,
the AIMD's thermostat, with the AIMD's time constant; ASE, or for DeePMD-kit models LAMMPS with
``mlmd.engine: lammps``) from an AIMD frame at each AIMD temperature (and at stress
temperatures above them), several seeds, then an NVE segment. A run is judged unstable by the
same criteria at every temperature (:mod:`qdff.validation.stability` says why these), and
stopped (in LAMMPS: ended at that frame), when

- a value is not finite, or the calculator fails;
- an atom's nearest neighbour moves farther than ``bond_factor`` times the largest
  nearest-neighbour distance seen in AIMD (an atom leaving), or two atoms come closer
  than half the smallest AIMD distance (a collapse);
- the temperature exceeds :data:`qdff.validation.stability.BLOWUP_FACTOR` x the target;
- with ``bond_check``: a bond of the start frame stays beyond its element pair's break
  distance (the first minimum of the AIMD pair-distance distribution) for ``bond_break_fs``.
  The first criteria alone use one global distance: for CsPbBr3, 1.5 x 4.2 A (the Cs-Br and
  Br-Br nearest neighbours), so a Pb-Br bond of 3 A could stretch to 5 A unnoticed.

Structural fidelity is recorded beside the verdict and never makes one: bonds broken and formed
relative to the start frame against the most the AIMD shows relative to the same frame, and
coordination numbers. Bonds (:func:`bond_cutoffs`): the element pairs bonded in the AIMD, by
ASE's covalent radii (1.2 x their sum, the criterion of :mod:`qdff.structure.sites`, met in at
least half the frames; never two cations), each with its own cutoff of ``bond_cutoff_factor``
(1.25) x the median AIMD bond length of that pair: between the first and second shells of the
materials here (bulk Cd-Se 2.62 -> 3.3 A, second shell 5.0 A; Pb-Br 2.94 -> 3.7 A, next 6.6 A;
Cs-Br 4.15 -> 5.2 A, next 7.2 A), taken from the AIMD rather than the bulk because surface
bonds of small clusters differ from bulk ones.

An unstable model is a result, not an error: the pipeline goes on and reports it.
"""

from __future__ import annotations

import logging
import os
import platform
import time

import numpy as np
from ase import units
from ase.constraints import FixCom
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import Stationary, ZeroRotation
from ase.md.verlet import VelocityVerlet
from ase.neighborlist import natural_cutoffs
from scipy.spatial.distance import pdist

from ..data.dataset import evenly_spaced
from .stability import (  # noqa: F401
    BLOWUP_FACTOR,
    BOND_REFERENCE_FRAMES,
    StretchedBonds,
    Undercoordinated,
    break_distances,
    degrees_of_freedom,
    pair_index,
    pair_name,
)

try:  # ASE >= 3.29
    from ase.md.velocitydistribution import thermalize_momenta
except ImportError:  # pragma: no cover - older ASE
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta

log = logging.getLogger(__name__)

# the covalent-radius criterion of qdff.structure.sites, which decides which element pairs bond
COVALENT_FACTOR = 1.2


def nn_distances(positions: np.ndarray) -> np.ndarray:
    d = np.linalg.norm(positions[:, None, :] - positions[None, :, :], axis=-1)
    np.fill_diagonal(d, np.inf)
    return d.min(axis=1)


def reference_limits(frames) -> dict:
    """Largest nearest-neighbour and smallest pair distance over AIMD frames (Angstrom)."""
    nn_max = max(float(nn_distances(a.positions).max()) for a in frames)
    pair_min = min(float(nn_distances(a.positions).min()) for a in frames)
    return {"nn_max": nn_max, "pair_min": pair_min}


def check_frame(atoms, energy: float, limits: dict, bond_factor: float) -> str | None:
    """Why this frame is unstable (not finite, an atom leaving, a collapse), or None."""
    if not (np.isfinite(energy) and np.all(np.isfinite(atoms.positions))):
        return "non-finite energy or positions"
    nn = nn_distances(atoms.positions)
    if nn.max() > bond_factor * limits["nn_max"]:
        i = int(nn.argmax())
        return (
            f"atom {i} ({atoms[i].symbol}) is {nn.max():.2f} A from its nearest neighbour, more than "
            f"{bond_factor} x the AIMD maximum {limits['nn_max']:.2f} A"
        )
    if nn.min() < 0.5 * limits["pair_min"]:
        return f"two atoms {nn.min():.2f} A apart, less than half the AIMD minimum {limits['pair_min']:.2f} A"
    return None


def bond_cutoffs(frames, factor: float = 1.25, max_frames: int = BOND_REFERENCE_FRAMES) -> dict[str, float]:
    """Bond cutoff (Angstrom) per bonded element pair ("Cd-Se": 3.3, ...) from AIMD frames:
    ``factor`` x the median length of that pair's bonds (distances within 1.2 x the sum of
    the covalent radii); a pair counts as bonded when at least half the frames have such a
    bond, so that a rare close contact does not make one, and never when both are cations
    (qdff.structure.build.FORMAL_CHARGES): the Cs-Cs distance of CsPbBr3, 5.87 A, lies right at
    1.2 x twice caesium's covalent radius, 5.86 A."""
    from ..structure.build import FORMAL_CHARGES

    frames = evenly_spaced(frames, max_frames)
    symbols = frames[0].get_chemical_symbols()
    _, _, names = pair_index(symbols)
    radii = np.asarray(natural_cutoffs(frames[0]))
    i, j = np.triu_indices(len(symbols), k=1)
    covalent = COVALENT_FACTOR * (radii[i] + radii[j])
    out = {}
    d_all = np.stack([pdist(a.positions) for a in frames])  # (frames, pairs)
    for name in sorted(set(names)):
        a, b = name.split("-")
        if FORMAL_CHARGES.get(a, 0) > 0 and FORMAL_CHARGES.get(b, 0) > 0:
            continue  # cations repel: their close contacts (Cd-Cd, Cs-Cs) are no bonds
        m = names == name
        d = d_all[:, m]
        bonded = d < covalent[m]
        if bonded.any(axis=1).mean() >= 0.5:
            out[str(name)] = float(factor * np.median(d[bonded]))
    return out


class BondGraph:
    """Bonds of a frame under per-pair cutoffs, compared with a start frame's bonds."""

    def __init__(self, symbols, cutoffs: dict[str, float], start_positions):
        self.symbols = np.asarray(symbols)
        self.cutoffs = dict(cutoffs)
        self.i, self.j, names = pair_index(symbols)
        # pairs of elements that do not bond get a cutoff of 0: never bonded
        self.cut = np.array([self.cutoffs.get(n, 0.0) for n in names])
        self.names = names
        self.start = self.bonded(start_positions)
        self.elements = sorted(set(symbols))

    def bonded(self, positions) -> np.ndarray:
        return pdist(np.asarray(positions)) < self.cut

    def changes(self, positions) -> dict:
        """Bonds broken and formed relative to the start frame, and one as an example:
        {"broken", "formed", "worst"}."""
        d = pdist(np.asarray(positions))
        now = d < self.cut
        broken, formed = self.start & ~now, now & ~self.start
        ratio = d / np.where(self.cut > 0, self.cut, 1.0)
        k = None
        if broken.any():  # the most stretched broken bond, else the shortest new one
            k = int(np.flatnonzero(broken)[np.argmax(ratio[broken])])
        elif formed.any():
            k = int(np.flatnonzero(formed)[np.argmin(ratio[formed])])
        worst = ""
        if k is not None:
            i, j = self.i[k], self.j[k]
            worst = (
                f"{self.symbols[i]} {i} - {self.symbols[j]} {j} {'broken' if broken.any() else 'formed'} "
                f"at {d[k]:.2f} A (cutoff {self.cut[k]:.2f} A)"
            )
        return {"broken": int(broken.sum()), "formed": int(formed.sum()), "worst": worst}

    def coordination(self, positions) -> dict[str, float]:
        """Mean number of bonds per atom of each element."""
        now = self.bonded(positions)
        cn = np.bincount(self.i[now], minlength=len(self.symbols)) + np.bincount(
            self.j[now], minlength=len(self.symbols)
        )
        return {el: float(cn[self.symbols == el].mean()) for el in self.elements}

    def baseline(self, frames) -> dict:
        """What the AIMD frames themselves show relative to the same start frame: the most
        bonds broken and formed in any frame, and the mean and spread (standard deviation
        over frames) of each element's coordination number."""
        broken, formed, cns = [], [], []
        for a in frames:
            c = self.changes(a.positions)
            broken.append(c["broken"])
            formed.append(c["formed"])
            cns.append(self.coordination(a.positions))
        return {
            "broken_max": int(max(broken)),
            "formed_max": int(max(formed)),
            "broken_mean": float(np.mean(broken)),
            "formed_mean": float(np.mean(formed)),
            "coordination": {
                el: [float(np.mean([c[el] for c in cns])), float(np.std([c[el] for c in cns]))] for el in self.elements
            },
            "frames": len(frames),
        }


class _Monitor:
    """Per recorded frame: bond changes and coordination (structural fidelity, recorded against
    the AIMD's, never a verdict), and the gross bond criterion of
    :class:`qdff.validation.stability.StretchedBonds` (a verdict when ``judge``)."""

    def __init__(self, graph: BondGraph | None, baseline: dict | None, judge: bool, stretched=None, gross=None):
        self.graph, self.baseline, self.judge, self.stretched = graph, baseline, judge, stretched
        # the gross criterion that judges, where it is not the stretched bonds themselves
        self.gross = gross
        self.broken, self.formed, self.cn = [], [], []
        self.beyond = 0  # checks at which the graph changed more than the AIMD's

    def __call__(self, atoms, time_fs: float) -> str | None:
        if self.graph is None:
            return None
        c = self.graph.changes(atoms.positions)
        self.broken.append(c["broken"])
        self.formed.append(c["formed"])
        self.cn.append(self.graph.coordination(atoms.positions))
        atoms.info.update(bonds_broken=c["broken"], bonds_formed=c["formed"])
        b = self.baseline
        if c["broken"] > b["broken_max"] or c["formed"] > b["formed_max"]:
            self.beyond += 1
        why = self.stretched(atoms.positions, time_fs) if self.stretched is not None else None
        if self.gross is not None:
            why = self.gross(atoms.positions, time_fs)
        return why if self.judge else None

    def summary(self) -> dict:
        if self.graph is None:
            return {}
        els = self.graph.elements
        st = self.stretched
        return {
            "bond_cutoffs": self.graph.cutoffs,
            "bonds_start": int(self.graph.start.sum()),
            "bonds_broken_max": int(max(self.broken, default=0)),
            "bonds_formed_max": int(max(self.formed, default=0)),
            "bonds_broken_mean": float(np.mean(self.broken)) if self.broken else float("nan"),
            "bonds_formed_mean": float(np.mean(self.formed)) if self.formed else float("nan"),
            "bond_checks_beyond_aimd": self.beyond,
            "bond_checks": len(self.broken),
            "coordination": {el: float(np.mean([c[el] for c in self.cn])) if self.cn else float("nan") for el in els},
            "aimd_bonds_broken_max": self.baseline["broken_max"],
            "aimd_bonds_formed_max": self.baseline["formed_max"],
            "aimd_coordination": self.baseline["coordination"],
            "aimd_baseline_frames": self.baseline["frames"],
            "bond_check": self.judge,
            "bond_criterion": "undercoordinated" if self.gross is not None else "stretched",
            "aimd_least_coordination": self.gross.min_cn if self.gross is not None else None,
            # episodes below that floor however short, and the time judged (stability.episode_rate_interval)
            "below_floor_episodes": self.gross.episodes if self.gross is not None else None,
            "below_floor_observed_fs": self.gross.observed_fs if self.gross is not None else None,
            "bond_break_distances": st.breaks if st is not None else {},
            "bond_break_fs": st.break_fs if st is not None else None,
            "longest_stretch_fs": st.longest_fs if st is not None else 0.0,
        }


def energy_stats(time_fs, energy_eV, n_atoms: int) -> dict:
    """Drift (slope of a straight-line fit, meV/atom/ps) and fluctuation (standard
    deviation about that line, meV/atom) of a total or conserved energy series."""
    t = np.asarray(time_fs, dtype=np.float64) / 1000.0
    e = np.asarray(energy_eV, dtype=np.float64)
    ok = np.isfinite(t) & np.isfinite(e)
    t, e = t[ok], e[ok]
    if len(t) < 3 or np.ptp(t) == 0:
        return {"drift_meV_per_atom_per_ps": float("nan"), "std_meV_per_atom": float("nan")}
    slope, intercept = np.polyfit(t, e, 1)
    resid = e - (slope * t + intercept)
    return {
        "drift_meV_per_atom_per_ps": float(1e3 * slope / n_atoms),
        "std_meV_per_atom": float(1e3 * np.std(resid) / n_atoms),
    }


# backends whose models qdff runs in LAMMPS (qdff.validation.lammps; README, "Models in LAMMPS")
LAMMPS_BACKENDS = ("deepmd",)


def engine_for(cfg: dict, backend: str) -> str:
    """Where ``backend``'s ML-MD runs: LAMMPS when ``mlmd.engine`` is lammps and LAMMPS can run
    this backend's models, else qdff's ASE loop."""
    return engine(cfg["mlmd"]["engine"], backend)


def engine(requested: str, backend: str) -> str:
    """The engine that runs ``backend``'s ML-MD when ``requested`` (mlmd.engine) is asked for:
    "auto" is LAMMPS for the backends it runs where ``lmp`` and DeePMD-kit's plugin are
    installed (``make setup``; not the conda environments) and torch sees no GPU, else ASE."""
    if requested == "auto":
        if backend not in LAMMPS_BACKENDS:
            return "ase"
        from ..training.device import device
        from . import lammps

        # measured faster than the ASE loop on CPU only; on a GPU the ASE loop runs the model there
        why = "a GPU: the model runs on it in ASE" if device() != "cpu" else lammps.unavailable()
        if why is None:
            return "lammps"
        log.info("mlmd.engine is auto: %s ML-MD runs in ASE, LAMMPS cannot run here (%s)", backend, why)
        return "ase"
    if requested == "lammps":
        if backend in LAMMPS_BACKENDS:
            return "lammps"
        log.info(
            "mlmd.engine is lammps, but qdff runs only %s models in LAMMPS: %s runs in ASE",
            ", ".join(LAMMPS_BACKENDS),
            backend,
        )
    return "ase"


class _Recorder:
    """What every engine does at a recorded frame: the stability checks, the temperature and
    energy series, and the trajectory snapshot; and, from them, the run's summary."""

    def __init__(
        self,
        start,
        reference_frames,
        *,
        temperature: float,
        seed: int,
        timestep_fs: float,
        bond_factor: float,
        bond_check: bool,
        monitor_bonds: bool | None,
        bond_cutoff_factor: float,
        bond_break_fs: float,
        trajectory: list | None,
        bond_criterion: str = "undercoordinated",
    ):
        if monitor_bonds is None:
            monitor_bonds = bond_check
        self.temperature, self.seed, self.timestep_fs, self.bond_factor = temperature, seed, timestep_fs, bond_factor
        self.n_atoms = len(start)
        self.limits = reference_limits(reference_frames)
        self.graph = self.baseline = None
        stretched = gross = None
        if bond_check or monitor_bonds:
            cutoffs = bond_cutoffs(reference_frames, bond_cutoff_factor)
            self.graph = BondGraph(start.get_chemical_symbols(), cutoffs, start.positions)
            self.baseline = self.graph.baseline(reference_frames)
            breaks = break_distances(reference_frames, cutoffs)
            stretched = StretchedBonds(start.get_chemical_symbols(), start.positions, cutoffs, breaks, bond_break_fs)
            if bond_criterion == "undercoordinated":
                # the verdict: an atom less coordinated than its element ever is in the AIMD;
                # stretched bonds are then recorded (longest stretch), not judged
                gross = Undercoordinated(start.get_chemical_symbols(), breaks, reference_frames, bond_break_fs)
        self.monitor = _Monitor(self.graph, self.baseline, bond_check, stretched, gross)
        self.trajectory = trajectory
        self.temps, self.epots, self.times = [], [], []
        self.nve_times, self.nve_etot, self.nve_temps = [], [], []
        self.thermostat_steps = self.nve_done = 0  # the last recorded step of each segment
        self.break_fs, self.hot_since = float(bond_break_fs), None

    def _blowup(self, temperature_now: float, time_fs: float) -> str | None:
        """A temperature above BLOWUP_FACTOR x the target for bond_break_fs: a spike that the
        thermostat takes back (an exothermic rearrangement of a small cluster) is none."""
        if temperature_now <= BLOWUP_FACTOR * self.temperature:
            self.hot_since = None
            return None
        if self.hot_since is None:
            self.hot_since = time_fs
        if time_fs - self.hot_since >= self.break_fs:
            return (
                f"temperature {temperature_now:.0f} K, above {BLOWUP_FACTOR:g} x the target {self.temperature:g} K "
                f"for {time_fs - self.hot_since:.0f} fs"
            )
        return None

    def langevin(self, atoms, step: int, epot: float, temperature_now: float) -> str | None:
        """Record a frame of the thermostatted run; why it is unstable, or None."""
        self.thermostat_steps = step
        reason = (
            check_frame(atoms, epot, self.limits, self.bond_factor)
            or self._blowup(temperature_now, step * self.timestep_fs)
            or self.monitor(atoms, step * self.timestep_fs)
        )
        self.temps.append(float(temperature_now))
        self.epots.append(float(epot))
        self.times.append(step * self.timestep_fs)
        if self.trajectory is not None:
            snap = atoms.copy()
            snap.calc = None
            snap.set_constraint()
            snap.info.update(step=step, time=step * self.timestep_fs, temperature=self.temperature, seed=self.seed)
            self.trajectory.append(snap)
        return f"step {step}: {reason}" if reason else None

    def nve(self, atoms, step: int, epot: float, etot: float, temperature_now: float) -> str | None:
        """Record a frame of the NVE segment (``step`` counted from its start)."""
        self.nve_done = step
        why = (
            check_frame(atoms, epot, self.limits, self.bond_factor)
            # no blow-up check here: without a thermostat, heating is the drift reported below
            or self.monitor(atoms, (self.thermostat_steps + step) * self.timestep_fs)
        )
        if why:
            return f"NVE step {step}: {why}"
        self.nve_times.append(step * self.timestep_fs)
        self.nve_etot.append(float(etot))
        self.nve_temps.append(float(temperature_now))
        return None

    def summary(
        self,
        *,
        steps: int,
        done: int,
        reason: str | None,
        seconds_per_step: float,
        nve_steps: int,
        nve_reason: str | None = None,
        engine: str = "ase",
    ) -> dict:
        """The run's summary; ``reason``: why the thermostatted run failed, ``nve_reason``: why
        the NVE segment after it did (None: it did not)."""
        nve = {
            "nve_drift_meV_per_atom_per_ps": float("nan"),
            "nve_energy_std_meV_per_atom": float("nan"),
            "nve_temperature_mean": float("nan"),
        }
        if reason is None and nve_steps > 0 and nve_reason is None:
            stats = energy_stats(self.nve_times, self.nve_etot, self.n_atoms)
            nve = {
                "nve_drift_meV_per_atom_per_ps": stats["drift_meV_per_atom_per_ps"],
                "nve_energy_std_meV_per_atom": stats["std_meV_per_atom"],
                "nve_temperature_mean": float(np.mean(self.nve_temps)) if self.nve_temps else float("nan"),
            }
        reason = reason or nve_reason
        summary = {
            "temperature": self.temperature,
            "seed": self.seed,
            "engine": engine,
            "steps_requested": steps,
            "steps_run": done,
            "stable": reason is None,
            "reason": reason or "",
            # when the run failed: the thermostatted steps it completed (and those of NVE), in fs
            "failure_time_fs": None if reason is None else float((done + self.nve_done) * self.timestep_fs),
            "seconds_per_step": seconds_per_step,
            "temperature_mean": float(np.mean(self.temps)) if self.temps else float("nan"),
            "epot_first": self.epots[0] if self.epots else float("nan"),
            "epot_last": self.epots[-1] if self.epots else float("nan"),
            "reference_nn_max": self.limits["nn_max"],
            "reference_pair_min": self.limits["pair_min"],
            "bond_factor": self.bond_factor,
            "nve_steps": nve_steps if reason is None else 0,
            **nve,
            **self.monitor.summary(),
            "series": series(self.times, self.temps, self.epots),
        }
        if np.isfinite(summary["nve_drift_meV_per_atom_per_ps"]):
            log.info(
                "NVE segment of %d steps: total-energy drift %.3f meV/atom/ps, std %.3f meV/atom, T %.0f K",
                nve_steps,
                summary["nve_drift_meV_per_atom_per_ps"],
                summary["nve_energy_std_meV_per_atom"],
                summary["nve_temperature_mean"],
            )
        if self.graph is not None:
            log.info(
                "bonds relative to the start frame: at most %d broken, %d formed (AIMD: %d, %d)",
                summary["bonds_broken_max"],
                summary["bonds_formed_max"],
                self.baseline["broken_max"],
                self.baseline["formed_max"],
            )
        log.info(
            "%s at %g K (seed %d): %s after %d of %d steps (%.4f s/step)%s",
            # the reference MD (engine "cp2k") goes through the same recorder
            "CP2K MD" if engine == "cp2k" else f"ML-MD ({engine})",
            self.temperature,
            self.seed,
            "stable" if summary["stable"] else "UNSTABLE",
            done,
            steps,
            seconds_per_step,
            f": {reason}" if reason else "",
        )
        return summary


THERMOSTATS = ("csvr", "langevin")


def temperature_of(atoms, ndof: int) -> float:
    """The instantaneous temperature with ``ndof`` kinetic degrees of freedom (K)."""
    return float(2.0 * atoms.get_kinetic_energy() / (ndof * units.kB))


def thermostatted(atoms, thermostat: str, temperature: float, timestep_fs: float, timecon_fs: float, rng):
    """ASE's dynamics for ``thermostat`` ("csvr": Bussi, or "langevin") at ``temperature`` with
    time constant ``timecon_fs`` (Langevin: friction 1/``timecon_fs``); the centre of mass is
    held by the atoms' FixCom constraint."""
    if thermostat == "csvr":
        from ase.md.bussi import Bussi

        dyn = Bussi(atoms, timestep_fs * units.fs, temperature_K=temperature, taut=timecon_fs * units.fs, rng=rng)
        # the target kinetic energy and the noise of 3N - 6 degrees of freedom, as CP2K's CSVR
        # (ASE's Bussi takes the constraints' count, 3N - 3 with FixCom): degrees_of_freedom
        dyn.ndof = degrees_of_freedom(len(atoms), "csvr")
        dyn.target_kinetic_energy = 0.5 * dyn.temp * dyn.ndof
        return dyn
    if thermostat == "langevin":
        return Langevin(
            atoms,
            timestep_fs * units.fs,
            temperature_K=temperature,
            friction=1.0 / (timecon_fs * units.fs),
            fixcm=False,
            rng=rng,
        )
    raise ValueError(f"mlmd.thermostat: {thermostat!r} is none of {', '.join(THERMOSTATS)}")


def _nve(atoms, steps: int, timestep_fs: float, record_every: int, rec: _Recorder, ndof: int) -> str | None:
    """NVE segment: drift and fluctuation of the total energy and the mean temperature. A
    force field whose forces are not the gradient of its energy, or that needs a smaller
    time step, shows it here. Returns why it is unstable, or None."""
    dyn = VelocityVerlet(atoms, timestep_fs * units.fs)
    for step in range(1, steps + 1):
        try:
            dyn.run(1)
            epot = float(atoms.get_potential_energy())
        except Exception as exc:
            return f"NVE step {step}: calculator failed: {type(exc).__name__}: {exc}"
        if step % record_every == 0 or step == steps:
            reason = rec.nve(atoms, step, epot, epot + float(atoms.get_kinetic_energy()), temperature_of(atoms, ndof))
            if reason:
                return reason
    return None


def run(
    calc,
    start,
    reference_frames,
    *,
    temperature: float,
    steps: int,
    timestep_fs: float,
    thermostat_timecon_fs: float,
    bond_factor: float,
    seed: int,
    record_every: int = 10,
    trajectory: list | None = None,
    nve_steps: int = 0,
    bond_check: bool = False,
    bond_cutoff_factor: float = 1.25,
    bond_break_fs: float = 200.0,
    bond_criterion: str = "undercoordinated",
    monitor_bonds: bool | None = None,
    thermostat: str = "csvr",
) -> dict:
    """Thermostatted MD in ASE (``thermostat``: "csvr", ASE's Bussi, the AIMD's canonical
    sampling through velocity rescaling; or "langevin"; time constant ``thermostat_timecon_fs``,
    for Langevin the inverse friction), then (if stable) ``nve_steps`` of NVE; returns a summary
    with ``stable`` and, if not, ``reason`` and ``failure_time_fs``.

    ``reference_frames``: the AIMD frames at this temperature (the limits, bond cutoffs and
    the AIMD's own bond changes relative to ``start`` come from them). ``bond_check``: judge
    the bond graph too (see the module docstring); ``monitor_bonds`` (default: as
    ``bond_check``) records bond changes and coordination without judging them (stress
    temperatures, where no AIMD shows what to expect)."""
    rec = _Recorder(
        start,
        reference_frames,
        temperature=temperature,
        seed=seed,
        timestep_fs=timestep_fs,
        bond_factor=bond_factor,
        bond_check=bond_check,
        monitor_bonds=monitor_bonds,
        bond_cutoff_factor=bond_cutoff_factor,
        bond_break_fs=bond_break_fs,
        bond_criterion=bond_criterion,
        trajectory=trajectory,
    )
    atoms = start.copy()
    atoms.calc = calc
    atoms.set_pbc(False)
    rng = np.random.default_rng(seed)
    thermalize_momenta(atoms, temperature_K=temperature, rng=rng)
    Stationary(atoms)
    ZeroRotation(atoms)
    atoms.set_constraint(FixCom())  # a free cluster: no centre-of-mass drift
    dyn = thermostatted(atoms, thermostat, temperature, timestep_fs, thermostat_timecon_fs, rng)
    ndof = degrees_of_freedom(len(atoms), thermostat)
    reason, done = None, 0
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        try:
            dyn.run(1)
            epot = float(atoms.get_potential_energy())
        except Exception as exc:  # a model that fails on a distorted geometry is unstable too
            reason = f"calculator failed at step {step}: {type(exc).__name__}: {exc}"
            break
        done = step
        if step % record_every == 0 or step == steps:
            reason = rec.langevin(atoms, step, epot, temperature_of(atoms, ndof))
            if reason:
                break
    wall = time.perf_counter() - t0
    nve_reason = None
    if reason is None and nve_steps > 0:
        nve_reason = _nve(atoms, nve_steps, timestep_fs, record_every, rec, ndof)
    return rec.summary(
        steps=steps,
        done=done,
        reason=reason,
        seconds_per_step=wall / max(done, 1),
        nve_steps=nve_steps,
        nve_reason=nve_reason,
    )


def run_lammps(
    model_dir,
    start,
    reference_frames,
    *,
    workdir,
    temperature: float,
    steps: int,
    timestep_fs: float,
    thermostat_timecon_fs: float,
    bond_factor: float,
    seed: int,
    record_every: int = 10,
    trajectory: list | None = None,
    nve_steps: int = 0,
    bond_check: bool = False,
    bond_cutoff_factor: float = 1.25,
    bond_break_fs: float = 200.0,
    bond_criterion: str = "undercoordinated",
    monitor_bonds: bool | None = None,
    thermostat: str = "csvr",
    threads: int = 1,
) -> dict:
    """The same run as :func:`run` with a DeePMD-kit model in LAMMPS (``mlmd.engine: lammps``):
    fix nve with fix temp/csvr (or fix langevin) of time constant ``thermostat_timecon_fs``,
    then NVE, in ``lmp``
    in ``workdir`` (its input and log stay there). LAMMPS runs every step; the same checks then
    judge the frames it recorded every ``record_every`` steps, and the run counts as ending at
    the first frame that fails. LAMMPS stops early only when the temperature passes
    qdff.validation.lammps.HALT_FACTOR x the target (a model that blew up)."""
    from . import lammps

    rec = _Recorder(
        start,
        reference_frames,
        temperature=temperature,
        seed=seed,
        timestep_fs=timestep_fs,
        bond_factor=bond_factor,
        bond_check=bond_check,
        monitor_bonds=monitor_bonds,
        bond_cutoff_factor=bond_cutoff_factor,
        bond_break_fs=bond_break_fs,
        bond_criterion=bond_criterion,
        trajectory=trajectory,
    )
    md = lammps.md(
        model_dir,
        start,
        workdir,
        temperature=temperature,
        steps=steps,
        nve_steps=nve_steps,
        timestep_fs=timestep_fs,
        thermostat=thermostat,
        thermostat_timecon_fs=thermostat_timecon_fs,
        seed=seed,
        record_every=record_every,
        threads=threads,
    )
    atoms = start.copy()
    atoms.calc = None
    atoms.set_pbc(False)
    reason, done = None, 0
    for step, positions in md["frames"]:
        if step == 0 or step > steps:
            continue
        th = md["thermo"].get(step)
        if th is None:  # a frame without its thermo row: lmp stopped between writing the two
            break
        atoms.positions = positions
        done = step
        reason = rec.langevin(atoms, step, th["pe"], th["temp"])
        if reason:
            break
    last = max((s for s, _ in md["frames"] if s in md["thermo"]), default=0)
    if reason is None:
        if last < steps and md["error"]:
            reason = f"LAMMPS stopped after step {last}: {md['error']}"
        else:
            done = steps
    nve_reason = None
    if reason is None and nve_steps > 0:
        for step, positions in md["frames"]:
            if step <= steps:
                continue
            th = md["thermo"].get(step)
            if th is None:
                break
            atoms.positions = positions
            nve_reason = rec.nve(atoms, step - steps, th["pe"], th["etotal"], th["temp"])
            if nve_reason:
                break
        if nve_reason is None and last < steps + nve_steps and md["error"]:
            nve_reason = f"NVE: LAMMPS stopped after step {last - steps}: {md['error']}"
    out = rec.summary(
        steps=steps,
        done=done,
        reason=reason,
        seconds_per_step=md["seconds_per_step"],
        nve_steps=nve_steps,
        nve_reason=nve_reason,
        engine="lammps",
    )
    out["lammps_version"] = md["lammps_version"]
    return out


SERIES_POINTS = 2000


def series(times, temps, epots, max_points: int = SERIES_POINTS) -> dict:
    """The thermostatted run's recorded temperature and potential energy against time, evenly
    thinned to at most ``max_points`` (the report's time-series figure), the last point kept."""
    idx = np.unique(np.linspace(0, len(times) - 1, min(len(times), max_points)).astype(int)) if times else []
    return {
        "time_fs": [round(float(times[i]), 3) for i in idx],
        "temperature_K": [round(float(temps[i]), 2) for i in idx],
        "epot_eV": [float(epots[i]) for i in idx],
    }


def _total(runs: list[dict], key: str):
    """The sum of ``key`` over the runs; None when a run lacks it (not judged by that criterion)."""
    vals = [r.get(key) for r in runs]
    return None if any(v is None for v in vals) else sum(vals)


def combine(runs: list[dict]) -> dict:
    """One summary of several seeds' runs at one temperature: stable only if every run is;
    the worst figure of each check; every run under ``runs``."""
    first = runs[0]

    def worst(key, fn=max):
        vals = [r[key] for r in runs if key in r and np.isfinite(r[key])]
        return fn(vals) if vals else float("nan")

    failed = [r for r in runs if not r["stable"]]
    steps_run = sum(r["steps_run"] for r in runs)
    # k of n seeds, each failure with its time: one seed's failure is a rate, not a certainty
    reason = ""
    if failed:
        reason = f"{len(failed)} of {len(runs)} seeds: " + "; ".join(
            f"seed {r['seed']} at {r.get('failure_time_fs') or 0:.0f} fs: {r['reason']}" for r in failed
        )
    out = {
        "temperature": first["temperature"],
        "seeds": [r["seed"] for r in runs],
        "engine": first.get("engine", "ase"),
        "steps_requested": first["steps_requested"],
        "steps_run": steps_run,
        "stable": not failed,
        "reason": reason,
        "unstable_seeds": len(failed),
        "failure_times_fs": [r.get("failure_time_fs") for r in failed],
        # over all seeds: every episode below the coordination floor in all the time judged
        "below_floor_episodes": _total(runs, "below_floor_episodes"),
        "below_floor_observed_fs": _total(runs, "below_floor_observed_fs"),
        # wall time per step over all steps of all seeds
        "seconds_per_step": sum(r["seconds_per_step"] * max(r["steps_run"], 1) for r in runs) / max(steps_run, 1),
        "temperature_mean": worst("temperature_mean", lambda v: float(np.mean(v))),
        "reference_nn_max": first["reference_nn_max"],
        "reference_pair_min": first["reference_pair_min"],
        "bond_factor": first["bond_factor"],
        "nve_steps": min(r["nve_steps"] for r in runs),
        "nve_drift_meV_per_atom_per_ps": worst("nve_drift_meV_per_atom_per_ps", lambda v: max(v, key=abs)),
        "nve_energy_std_meV_per_atom": worst("nve_energy_std_meV_per_atom"),
        "nve_temperature_mean": worst("nve_temperature_mean", lambda v: float(np.mean(v))),
        "runs": runs,
    }
    if "bonds_start" in first:
        out.update(
            {
                k: first[k]
                for k in (
                    "bond_cutoffs",
                    "bonds_start",
                    "aimd_bonds_broken_max",
                    "aimd_bonds_formed_max",
                    "aimd_coordination",
                    "aimd_baseline_frames",
                    "bond_check",
                    "bond_break_distances",
                    "bond_break_fs",
                )
            }
        )
        out.update(
            bonds_broken_max=max(r["bonds_broken_max"] for r in runs),
            bonds_formed_max=max(r["bonds_formed_max"] for r in runs),
            bond_checks_beyond_aimd=sum(r["bond_checks_beyond_aimd"] for r in runs),
            longest_stretch_fs=max(r.get("longest_stretch_fs", 0.0) for r in runs),
        )
        els = first["coordination"]
        out["coordination"] = {el: float(np.nanmean([r["coordination"][el] for r in runs])) for el in els}
    return out


def hardware(device: str | None = None) -> dict:
    """Where ML-MD runs: host, CPU, torch threads, and the torch device (the one
    qdff.training.models.load_calculator picks unless told: qdff.training.device.device), with
    the GPU's name if any."""
    from ..training.device import device as pick_device

    info = {"host": platform.node(), "cpu_model": cpu_model(), "cpu_count": os.cpu_count()}
    try:
        import torch

        dev = pick_device(device)
        info.update(torch_threads=int(torch.get_num_threads()), device=dev)
        if dev.startswith("cuda"):
            info["device_name"] = torch.cuda.get_device_name(torch.device(dev))
    except ImportError:  # pragma: no cover - every backend needs torch
        info.update(torch_threads=None, device=device or "cpu")
    info.setdefault("device_name", info["cpu_model"])
    return info


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def protocol(mlmd: dict, recorder_only: bool = False) -> dict:
    """The keywords of :func:`run` and :func:`run_lammps` (or, ``recorder_only``, of the recorder
    alone) that come from an ``mlmd`` config block, as every caller passes them: validation,
    active-learning exploration, the benchmarks. Bond changes are always recorded."""
    judge = {
        "timestep_fs": mlmd["timestep_fs"],
        "bond_factor": mlmd["bond_factor"],
        "bond_check": mlmd["bond_check"],
        "monitor_bonds": True,
        "bond_cutoff_factor": mlmd["bond_cutoff_factor"],
        "bond_break_fs": mlmd["bond_break_fs"],
        "bond_criterion": mlmd.get("bond_criterion", "undercoordinated"),
    }
    if recorder_only:
        return judge | {"trajectory": None}
    return judge | {"thermostat": mlmd["thermostat"], "thermostat_timecon_fs": mlmd["thermostat_timecon_fs"]}


def validation_protocol(mlmd: dict, temperature: float) -> dict:
    """:func:`protocol` with the run's length and recording from the same ``mlmd`` block
    (steps, record_every, nve_steps), at ``temperature``: every keyword of a validation run but
    its seed and trajectory. One function for a model's run (qdff.steps.mlmd.run_mlmd) and the
    reference's (run_reference_md), because the null test holds only if the two are the same."""
    return protocol(mlmd) | dict(
        temperature=temperature, steps=mlmd["steps"], record_every=mlmd["record_every"], nve_steps=mlmd["nve_steps"]
    )


def run_model(
    requested_engine: str, backend: str, model_dir, start, reference_frames, *, workdir, calc=None, **protocol
) -> dict:
    """ML-MD of the model in ``model_dir`` with the engine :func:`engine` picks for
    ``requested_engine`` (mlmd.engine): the one entry
    point of validation (qdff.steps.mlmd) and active-learning exploration. ``protocol``: the
    keywords of :func:`run` (temperature, steps, seed, ...). In LAMMPS, the run's input and log
    stay in ``workdir``; in ASE, ``calc`` (the model's calculator, when the caller runs it many
    times) saves loading the model again."""
    if engine(requested_engine, backend) == "lammps":
        import torch

        return run_lammps(
            model_dir, start, reference_frames, workdir=workdir, threads=torch.get_num_threads(), **protocol
        )
    if calc is None:
        from ..training.models import load_calculator

        calc = load_calculator(model_dir)
    return run(calc, start, reference_frames, **protocol)
