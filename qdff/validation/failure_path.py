"""Is an ML-MD failure the model's error or the physics? The reference method along the path.

The ML-MD verdict (qdff.validation.stability) calls a trajectory unstable when an atom stays
less coordinated than its element ever is in the AIMD. An AIMD of a picosecond need not have
visited every surface event the reference method allows, so a failure can be the model's
error (the reference pulls the atoms back) or a real event the AIMD was too short to show
(the reference lets them go). Labelling the recorded frames before the failure with the
reference method tells the two apart: along the path, the reference's energy and the force on
the lost neighbour, against the model's.

Measured use (2026-12-07, docs/benchmarks.md): on the 149-atom Cd68Se55Cl26 at GFN1-xTB the
model let a Cd leave a surface Se (2.9 to 4.4 Angstrom) with next to no restoring force, where
CP2K pulled it back with 0.2-0.35 eV/A and put the path up to 0.9 eV above the model's; in a
second failure of the same model both pulled the Cd back alike and CP2K's path went 1 eV
downhill: not shown to be the model's error.
"""

from __future__ import annotations

import numpy as np

from .stability import coordination_within, pair_name


def path_frames(trajectory, seed: int, failure_time_fs: float, span_fs: float) -> list:
    """The recorded frames of ``seed`` within ``span_fs`` before its failure, in time order
    (``info["seed"]``, ``info["time"]`` as the ML-MD recorder writes them)."""
    start = float(failure_time_fs) - float(span_fs)
    out = [
        a
        for a in trajectory
        if int(a.info.get("seed", 0)) == int(seed) and start <= float(a.info["time"]) <= float(failure_time_fs)
    ]
    if len(out) < 2:
        raise ValueError(
            f"seed {seed}: {len(out)} recorded frame(s) between {start:.0f} and {failure_time_fs:.0f} fs; "
            "need at least 2 (a longer span, or ML-MD recorded more often)"
        )
    return sorted(out, key=lambda a: float(a.info["time"]))


def lost_neighbour(frames, breaks: dict[str, float], least: dict[str, int]) -> tuple[int, int]:
    """(atom, neighbour): the atom of the last frame least coordinated relative to its element's
    AIMD floor ``least`` (neighbours within ``breaks``, as the verdict counts them), and its
    neighbour of the first frame that ended farthest away."""
    symbols = frames[0].get_chemical_symbols()
    floor = np.array([least.get(s, 0) for s in symbols])
    cn_end = coordination_within(frames[-1].positions, symbols, breaks)
    deficit = floor - cn_end
    atom = int(np.argmax(deficit))
    if deficit[atom] <= 0:
        raise ValueError("no atom of the last frame is below its element's least AIMD coordination")
    first = frames[0]
    others = np.array([j for j in range(len(first)) if j != atom])
    names = [pair_name(symbols[atom], symbols[j]) for j in others]
    limit = np.array([breaks.get(n, 0.0) for n in names])
    near = others[first.get_distances(atom, others) < limit]
    if not len(near):
        raise ValueError(f"{symbols[atom]} {atom} has no neighbour within the break distances in the first frame")
    return atom, int(near[np.argmax(frames[-1].get_distances(atom, near))])


def compare(reference_frames, model_forces, model_energies, atom: int, neighbour: int) -> dict:
    """Reference (frames carrying its energies and forces) against the model along the path.
    Per frame: the atom-neighbour distance, each method's energy relative to the path's first
    frame (eV), each method's force on the neighbour along the bond (eV/A; negative pulls it
    back toward ``atom``), the force RMSE over all atoms and the force error on the neighbour
    (meV/A). The summary: the largest excess of the reference's path energy over the model's,
    and the mean radial forces."""
    rows = []
    e_ref0 = e_ml0 = None
    for a, f_ml, e_ml in zip(reference_frames, model_forces, model_energies, strict=True):
        f_ref = a.get_forces()
        e_ref = float(a.get_potential_energy())
        if e_ref0 is None:
            e_ref0, e_ml0 = e_ref, float(e_ml)
        bond = a.positions[neighbour] - a.positions[atom]
        r = float(np.linalg.norm(bond))
        u = bond / r
        rows.append(
            {
                "time_fs": float(a.info.get("time", np.nan)),
                "distance_A": r,
                "energy_reference_eV": e_ref - e_ref0,
                "energy_model_eV": float(e_ml) - e_ml0,
                "radial_force_reference_eV_per_A": float(f_ref[neighbour] @ u),
                "radial_force_model_eV_per_A": float(np.asarray(f_ml)[neighbour] @ u),
                "force_rmse_meV_per_A": 1000 * float(np.sqrt(np.mean((np.asarray(f_ml) - f_ref) ** 2))),
                "neighbour_force_error_meV_per_A": 1000
                * float(np.linalg.norm(np.asarray(f_ml)[neighbour] - f_ref[neighbour])),
            }
        )
    excess = [x["energy_reference_eV"] - x["energy_model_eV"] for x in rows]
    k = int(np.argmax(excess))
    return {
        "atom": int(atom),
        "neighbour": int(neighbour),
        "symbols": [reference_frames[0].get_chemical_symbols()[i] for i in (atom, neighbour)],
        "frames": len(rows),
        "distance_A": [rows[0]["distance_A"], rows[-1]["distance_A"]],
        "energy_excess_max_eV": excess[k],
        "energy_excess_max_time_fs": rows[k]["time_fs"],
        "radial_force_reference_mean_eV_per_A": float(np.mean([x["radial_force_reference_eV_per_A"] for x in rows])),
        "radial_force_model_mean_eV_per_A": float(np.mean([x["radial_force_model_eV_per_A"] for x in rows])),
        "force_rmse_mean_meV_per_A": float(np.mean([x["force_rmse_meV_per_A"] for x in rows])),
        "neighbour_force_error_mean_meV_per_A": float(np.mean([x["neighbour_force_error_meV_per_A"] for x in rows])),
        "rows": rows,
    }
