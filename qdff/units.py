"""Unit conversions at the file boundary (CP2K atomic units -> eV, Angstrom, fs).

qdff works in eV, Angstrom, fs and K internally. CP2K writes energies in Hartree,
forces in Hartree/Bohr and velocities in Bohr/atomic-time-unit; these factors are
the only place where that is converted, and they come from ``ase.units`` (CODATA)
rather than being typed in by hand.
"""

from ase import units

#: 1 Hartree in eV
HARTREE_TO_EV: float = units.Hartree
#: 1 Bohr in Angstrom
BOHR_TO_ANGSTROM: float = units.Bohr
#: 1 Hartree/Bohr in eV/Angstrom
HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM: float = units.Hartree / units.Bohr
#: 1 atomic unit of time in fs
AU_TIME_TO_FS: float = units._aut * 1e15
#: 1 atomic unit of velocity (Bohr per atomic time unit) in Angstrom/fs
AU_VELOCITY_TO_ANGSTROM_PER_FS: float = BOHR_TO_ANGSTROM / AU_TIME_TO_FS


def hartree_per_bohr_to_ev_per_angstrom(value):
    return value * HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM


def hours_per_ns(seconds_per_step: float, timestep_fs: float = 1.0) -> float:
    """Wall hours of a nanosecond of MD (10^6 / timestep_fs steps) at this many seconds per step."""
    return seconds_per_step * 1e6 / timestep_fs / 3600.0
