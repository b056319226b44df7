"""Steps of rules/aimd.smk: the CP2K MD input of a temperature, and the AIMD run itself."""

from __future__ import annotations

from ..cp2k import input as cp2k_input
from ..cp2k import run as cp2k_run
from ..data import dataset


def write_cp2k_input(
    structure_file, out, *, temperature: float, structure: dict, cp2k: dict, aimd: dict, launch
) -> None:
    """The MD input of one temperature (what ``run_aimd`` runs when starting afresh)."""
    atoms = dataset.read_structure(structure_file)
    cp2k_run.preflight(atoms, cp2k_run.settings(structure, cp2k, launch))
    tree = cp2k_input.build_input(
        atoms,
        preset=cp2k["preset"],
        run_type="MD",
        project=cp2k_run.MD_PROJECT,
        charge=structure["charge"],
        multiplicity=structure["multiplicity"],
        temperature=temperature,
        steps=aimd["steps"],
        timestep_fs=aimd["timestep_fs"],
        print_every=aimd["print_every"],
        thermostat_timecon_fs=aimd["thermostat_timecon_fs"],
        seed=aimd["seed"],
        overrides=cp2k["overrides"],
    )
    cp2k_input.write_input(out, tree)


def run_aimd(
    structure_file,
    summary,
    *,
    temperature: float,
    workdir,
    structure: dict,
    cp2k: dict,
    aimd: dict,
    launch,
    seed: int | None = None,
) -> dict:
    """NVT AIMD at ``temperature``; ``seed`` replaces aimd.seed (the independent test run of
    aimd.test_seed: other initial velocities and thermostat noise, all else the same)."""
    if seed is not None:
        aimd = {**aimd, "seed": int(seed)}
    return cp2k_run.run_md(
        dataset.read_structure(structure_file),
        cp2k_run.settings(structure, cp2k, launch, aimd),
        temperature,
        workdir,
        summary,
    )
