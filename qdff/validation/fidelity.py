"""Structural fidelity of ML-MD against the AIMD: graded (inside / above / below the AIMD's
interval), never a verdict. Whether a run is *unstable* is :mod:`qdff.validation.stability`'s
question; this module only says how far a stable-or-not run's structure and bond dynamics sit
from the AIMD's at the same temperature.

Measured over a list of frames, equally spaced in time, with the bond cutoffs the ML-MD
recorder uses (:func:`qdff.validation.mlmd.bond_cutoffs`, ``bond_cutoffs`` in the summary):

- the **rate of bond changes** per ps: a bond changes when it switches state (bonded: closer
  than its pair's cutoff) and stays switched for ``persistence_fs`` (the criterion of
  :class:`qdff.validation.stability.StretchedBonds`: the new state at every frame from its
  first for at least that long), so that a bond flickering across its cutoff counts nothing.
  Bonds of a ligand atom (:func:`ligand_elements`: the atoms :func:`qdff.structure.sites.classify`
  calls ligands, e.g. the Cl of a CdSe/Cl dot) are counted apart, as **ligand hops**: a Cl moving
  from one Cd to another is two changes, one bond broken and one formed;
- the mean **coordination number** of each element (bonds per atom, as
  :meth:`qdff.validation.mlmd.BondGraph.coordination`);
- the mean **bond length** of each bonded element pair (distances below the cutoff).

The AIMD's value comes with an interval from a **moving-block bootstrap**: contiguous blocks of
``block_fs`` drawn with replacement (start anywhere within one run, never across runs or gaps),
``RESAMPLES`` times with a fixed seed, the 2.5-97.5 percentiles of the resampled means. Blocks,
not single frames: successive frames are correlated over a vibration period and bond states over
longer, so resampling frames one by one would give an interval far too narrow. Each resample
holds as many frames as the ML-MD it is compared with (its seeds together), so that the interval
is the spread of the AIMD's own value over as much time as the ML-MD had.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.spatial.distance import pdist

from .stability import Persistence, pair_index

#: halide ligands: the ligand elements where no material of qdff.structure.crystals matches
HALIDES = ("F", "Cl", "Br", "I")
#: block length of the bootstrap (fs). Bond states of a small cluster stay correlated over
#: hundreds of fs, so blocks shorter than that give intervals too narrow; blocks near the AIMD's
#: length leave too few distinct ones. Measured on the demo's results (Cd6Se6, 1.4 ps AIMD per
#: temperature, 10 fs frames), CP2K's own MD through the ML-MD protocol had 4 of its 8
#: coordination and bond-length values outside the AIMD interval with 200 fs blocks, 2 with
#: 400 fs (both at an end of it), 4 with 700 fs
BLOCK_FS = 400.0
RESAMPLES = 1000
SEED = 0
PERCENTILES = (2.5, 97.5)


def ligand_elements(symbols) -> set[str]:
    """Elements whose bonds are ligand bonds: not of the material the elements name
    (qdff.structure.sites, its "ligand" class), else the halides present."""
    from ..structure import crystals, sites

    material = sites.resolve_material(symbols)
    if material is not None:
        return set(symbols) - set(crystals.MATERIALS[material].species)
    return set(symbols) & set(HALIDES)


def persistent_onsets(states: np.ndarray, persist_frames: int) -> np.ndarray:
    """(frames, pairs) bool: True at the frame where a confirmed change starts. A pair's state
    changes when it differs from its last confirmed state (the first frame's at first) at every
    frame from f to f + ``persist_frames``; a return before that was a flicker."""
    state = states[0].copy()
    changed = Persistence(states.shape[1])  # time in frames
    onset = np.zeros_like(states, dtype=bool)
    for f in range(1, len(states)):
        diff = states[f] != state
        lasted = changed.update(diff, f)
        done = diff & (lasted >= persist_frames)
        onset[(f - lasted[done]).astype(int), np.flatnonzero(done)] = True
        state[done] = states[f][done]
        changed.reset(done)  # the new state is the reference now
    return onset


def frame_series(frames, cutoffs: dict[str, float], persist_frames: int, ligands: set[str]) -> dict:
    """Per-frame quantities of one contiguous trajectory: ``changes`` and ``ligand_changes``
    (confirmed changes starting at each frame, over the frames where a change can still be
    confirmed: 1 .. n - 1 - persist_frames), ``coordination`` {element: per frame}, and
    ``bond_length_A`` {pair: per-frame mean over its bonds, nan without one}."""
    symbols = np.asarray(frames[0].get_chemical_symbols())
    i, j, names = pair_index(symbols)
    cut = np.array([cutoffs.get(n, 0.0) for n in names])
    keep = cut > 0
    i, j, names, cut = i[keep], j[keep], names[keep], cut[keep]
    dist = np.stack([pdist(a.positions)[keep] for a in frames])
    states = dist < cut
    onset = persistent_onsets(states, persist_frames)[1 : len(frames) - persist_frames]
    lig = np.isin(symbols[i], list(ligands)) | np.isin(symbols[j], list(ligands))
    n = len(symbols)
    cn = np.stack([np.bincount(i[s], minlength=n) + np.bincount(j[s], minlength=n) for s in states])
    with warnings.catch_warnings():  # a frame without a bond of a pair: nan, skipped later
        warnings.simplefilter("ignore", RuntimeWarning)
        lengths = {
            str(p): np.nanmean(np.where(states[:, names == p], dist[:, names == p], np.nan), axis=1)
            for p in sorted(set(names))
        }
    return {
        "changes": onset[:, ~lig].sum(axis=1).astype(float),
        "ligand_changes": onset[:, lig].sum(axis=1).astype(float),
        "coordination": {str(el): cn[:, symbols == el].mean(axis=1) for el in sorted(set(symbols))},
        "bond_length_A": lengths,
    }


def _columns(series: dict, spacing_fs: float) -> dict[str, tuple[np.ndarray, float]]:
    """Flat per-frame columns of :func:`frame_series`, each with the factor that turns its
    mean into the reported value (per frame -> per ps for the rates)."""
    per_ps = 1000.0 / spacing_fs
    out = {
        "bond_changes_per_ps": (series["changes"], per_ps),
        "ligand_bond_changes_per_ps": (series["ligand_changes"], per_ps),
    }
    out |= {f"coordination/{el}": (v, 1.0) for el, v in series["coordination"].items()}
    out |= {f"bond_length_A/{p}": (v, 1.0) for p, v in series["bond_length_A"].items()}
    return out


def _mean(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else float("nan")


def block_interval(segments: list[np.ndarray], block: int, n_frames: int, resamples: int = RESAMPLES, seed: int = SEED):
    """[low, high] percentiles (:data:`PERCENTILES`) of the mean of ``n_frames`` frames drawn as
    contiguous blocks of ``block`` frames, with replacement, each starting anywhere inside one
    segment (never across two); None when no segment holds a block."""
    starts = [(k, s) for k, seg in enumerate(segments) for s in range(len(seg) - block + 1)]
    if not starts or n_frames < 1:
        return None
    draws = max(1, math.ceil(n_frames / block))
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for r in range(resamples):
        picked = rng.integers(len(starts), size=draws)
        x = np.concatenate([segments[starts[p][0]][starts[p][1] : starts[p][1] + block] for p in picked])
        means[r] = _mean(x[:n_frames])
    means = means[np.isfinite(means)]
    if not means.size:
        return None
    return [float(v) for v in np.percentile(means, PERCENTILES)]


def grade(value: float, interval) -> str | None:
    """ "inside", "above" or "below" the interval; None without one."""
    if interval is None or value is None or not np.isfinite(value):
        return None
    lo, hi = interval
    return "below" if value < lo else "above" if value > hi else "inside"


def measure(trajs: list[list], cutoffs: dict, spacing_fs: float, persistence_fs: float, ligands: set) -> dict:
    """Per-frame columns of each trajectory (lists of frames), keyed as :func:`_columns`."""
    p = max(0, math.ceil(persistence_fs / spacing_fs - 1e-9))
    out: dict = {}
    for t in trajs:
        if len(t) < 2:
            continue
        for key, (col, factor) in _columns(frame_series(t, cutoffs, p, ligands), spacing_fs).items():
            out.setdefault(key, ([], factor))[0].append(col)
    return out


def values(columns: dict) -> dict[str, float]:
    """The value of each column over all its trajectories together."""
    return {k: _mean(np.concatenate(cols)) * f if cols else float("nan") for k, (cols, f) in columns.items()}


def contiguous(frames, key: str, spacing_fs: float | None = None) -> tuple[list[list], float]:
    """``frames`` split by ``info[key]`` (AIMD runs, ML-MD seeds) into trajectories in time
    order, thinned to ``spacing_fs`` (default: their own) and cut where frames are missing (a
    dropped unconverged SCF step), since a change and its persistence are counted in frames."""
    from .rdf import _spacing, _trajectories

    trajs = _trajectories(frames, key)
    spacing = spacing_fs or _spacing(trajs)
    out = []
    for t in trajs:
        stride = max(1, round(spacing / _spacing([t])))
        times = np.array([float(a.info.get("time", k)) for k, a in enumerate(t)])[::stride]
        t = t[::stride]
        edges = [0, *(np.flatnonzero(np.diff(times) > 1.5 * spacing) + 1), len(t)]
        out += [t[a:b] for a, b in zip(edges[:-1], edges[1:]) if b > a]
    return out, spacing


def _nest(flat: dict) -> dict:
    """{"coordination/Cd": x} -> {"coordination": {"Cd": x}}."""
    out: dict = {}
    for k, v in flat.items():
        head, _, tail = k.partition("/")
        if tail:
            out.setdefault(head, {})[tail] = v
        else:
            out[head] = v
    return out


def _reference(columns: dict, key: str, n_frames: int, block: int, resamples: int) -> tuple[float, list | None]:
    cols, factor = columns[key]
    interval = block_interval(cols, block, n_frames, resamples)
    value = values({key: columns[key]})[key]
    return value, None if interval is None else [v * factor for v in interval]


def compare(
    model,
    cutoffs: dict[str, float],
    *,
    aimd=None,
    independent=None,
    persistence_fs: float,
    block_fs: float = BLOCK_FS,
    resamples: int = RESAMPLES,
) -> dict:
    """Structural fidelity of ML-MD frames ``model`` (seeds told apart by ``info["seed"]``)
    against the AIMD frames at the same temperature ``aimd`` (runs by ``info["run"]``; None:
    a stress temperature, values without a reference) and, where given, an ``independent``
    AIMD run graded as if it were a model. All are thinned to the coarsest spacing of the
    three, so changes are counted at the same lags. Per quantity: ``mlmd_mean`` (over seeds),
    ``mlmd_seeds``, ``mlmd_range``, ``aimd``, ``aimd_interval``, ``grade`` and, with an
    independent run, ``independent`` and ``independent_grade``."""
    from .rdf import _spacing, _trajectories

    groups = {"seed": model, "run": aimd or []}
    spacing = max(_spacing(_trajectories(f, k)) for k, f in groups.items() if f)
    if independent:
        spacing = max(spacing, _spacing(_trajectories(independent, "run")))
    seeds = [contiguous(s, "seed", spacing)[0] for s in _trajectories(model, "seed")]
    symbols = model[0].get_chemical_symbols()
    ligands = ligand_elements(symbols)
    per_seed = [values(measure(s, cutoffs, spacing, persistence_fs, ligands)) for s in seeds]
    model_cols = measure([t for s in seeds for t in s], cutoffs, spacing, persistence_fs, ligands)
    block = max(1, round(block_fs / spacing))
    refs = {}
    for name, frames in (("aimd", aimd), ("independent", independent)):
        if frames:
            refs[name] = measure(contiguous(frames, "run", spacing)[0], cutoffs, spacing, persistence_fs, ligands)
    flat = {}
    for key, (cols, _) in model_cols.items():
        if key == "ligand_bond_changes_per_ps" and not ligands:
            continue
        seed_vals = [v[key] for v in per_seed if np.isfinite(v.get(key, np.nan))]
        e = {
            "mlmd_mean": float(np.mean(seed_vals)) if seed_vals else float("nan"),
            "mlmd_seeds": seed_vals,
            "mlmd_range": [min(seed_vals), max(seed_vals)] if seed_vals else None,
        }
        if "aimd" in refs and key in refs["aimd"]:
            # the interval of the AIMD's value over as many frames as the ML-MD seeds hold together
            e["aimd"], e["aimd_interval"] = _reference(refs["aimd"], key, sum(map(len, cols)), block, resamples)
            e["grade"] = grade(e["mlmd_mean"], e["aimd_interval"])
            if "independent" in refs and key in refs["independent"]:
                e["independent"] = values({key: refs["independent"][key]})[key]
                n_ind = sum(map(len, refs["independent"][key][0]))
                e["independent_interval"] = _reference(refs["aimd"], key, n_ind, block, resamples)[1]
                e["independent_grade"] = grade(e["independent"], e["independent_interval"])
        flat[key] = e
    return {
        "quantities": _nest(flat),
        "ligand_elements": sorted(ligands),
        "persistence_fs": float(persistence_fs),
        "spacing_fs": float(spacing),
        "block_fs": float(block * spacing),
        "resamples": resamples,
        "bootstrap_seed": SEED,
        "percentiles": list(PERCENTILES),
        "seeds": len(seeds),
        "mlmd_frames": sum(len(t) for s in seeds for t in s),
        "aimd_frames": sum(len(t) for t in contiguous(aimd, "run", spacing)[0]) if aimd else 0,
        "independent_frames": sum(len(t) for t in contiguous(independent, "run", spacing)[0]) if independent else 0,
        "note": "" if aimd else "stress temperature: no AIMD at this temperature to compare with",
    }
