"""Steps of rules/aimd.smk: the CP2K MD input of a temperature, and the AIMD run itself."""
from __future__ import annotations

from ..cp2k import input as cp2k_input, run as cp2k_run
from ..data import dataset


def write_cp2k_input(cfg: dict, structure, temperature: float, out) -> None:
    """The MD input of one temperature (what ``run_aimd`` runs when starting afresh)."""
    atoms = dataset.read_structure(structure)
    cp2k_run.preflight(atoms, cfg)
    s, c, md = cfg["structure"], cfg["cp2k"], cfg["aimd"]
    tree = cp2k_input.build_input(
        atoms, preset=c["preset"], run_type="MD", project=cp2k_run.MD_PROJECT,
        charge=s["charge"], multiplicity=s["multiplicity"], temperature=temperature,
        steps=md["steps"], timestep_fs=md["timestep_fs"], print_every=md["print_every"],
        thermostat_timecon_fs=md["thermostat_timecon_fs"], seed=md["seed"], overrides=c["overrides"],
    )
    cp2k_input.write_input(out, tree)


def run_aimd(cfg: dict, structure, temperature: float, workdir, summary, seed=None) -> dict:
    """NVT AIMD at ``temperature``; ``seed`` replaces aimd.seed (the independent test run of
    aimd.test_seed: other initial velocities and thermostat noise, all else the same)."""
    if seed is not None:
        cfg = {**cfg, "aimd": {**cfg["aimd"], "seed": int(seed)}}
    return cp2k_run.run_md(dataset.read_structure(structure), cfg, temperature, workdir, summary)

