"""Element-pair distance distributions of ML-MD against AIMD, compared fairly.

A free cluster has no volume, so g(r) (pair density over the ideal-gas density) is not
defined; what is compared here is the **pair-distance distribution**: per element pair, the
histogram of all interatomic distances, normalised to unit area. The overlap score of two
such curves is 1 - (1/2) * integral |P1 - P2| dr: 1 for identical distributions, 0 for
distributions that do not overlap at all. Beside it, the Wasserstein (earth mover's)
distance of the two sets of pair distances (below ``r_max``), in Angstrom: how far the
distances would have to move, 0 for identical sets.

Both scores depend on how many frames, and how correlated, each side averages, so the AIMD's
self-agreement is measured exactly as a model is: both trajectories are thinned to the same
time step; one ML-MD seed is one contiguous block of ``n`` frames (its length, cut to what
the AIMD holds two blocks of); it is scored against the AIMD's final contiguous block of
``n`` frames; the AIMD's own agreement is the same score between disjoint pairs of
contiguous, non-overlapping ``n``-frame AIMD blocks (block q with block q + m/2 of m: as
many pairs as the AIMD holds, each block in one pair). A seed is inside the AIMD interval of
an element pair when its overlap is not below the interval's lower end, the ``quantile``
(0.1) of the AIMD pairs' overlaps taken as one of them: the lowest pair of up to ten. With
k pairs a perfect model's seed falls below the lowest by chance about once in k + 1, so the
number of pairs is reported, and the verdict is per seed: k of n seeds inside. A model
identical to the AIMD block before the final one scores exactly that pair's overlap (a
model compared with all AIMD frames pooled could score more: the pooled curve would contain
the model's own frames). Where a model is off, the first shell (distances below the first
minimum of the AIMD's distribution) says how: its mean distance and spread against the
AIMD's, beside how much the AIMD's own block pairs differ in them.
"""

from __future__ import annotations

import itertools
import logging

import numpy as np
from scipy.signal import find_peaks, peak_widths
from scipy.spatial.distance import pdist
from scipy.stats import wasserstein_distance

from .stability import first_minimum

log = logging.getLogger(__name__)

CURVE = "pair-distance distribution (unit area)"


def element_pairs(symbols) -> list[tuple[str, str]]:
    elements = sorted(set(symbols))
    return list(itertools.combinations_with_replacement(elements, 2))


def _check_same_atoms(frames) -> list[str]:
    symbols = frames[0].get_chemical_symbols()
    if any(a.get_chemical_symbols() != symbols for a in frames):
        raise ValueError("frames of a pair-distance distribution must all have the same atoms in the same order")
    return symbols


def frame_counts(frames, r_max: float, bins: int) -> tuple[np.ndarray, dict]:
    """Edges and, per element pair, the distance histogram of every frame (frames x bins)."""
    symbols = np.asarray(_check_same_atoms(frames))
    edges = np.linspace(0.0, r_max, bins + 1)
    dr = edges[1] - edges[0]
    i, j = np.triu_indices(len(symbols), k=1)
    d = np.stack([pdist(a.positions) for a in frames])  # (frames, atom pairs)
    rows = np.repeat(np.arange(len(frames)), d.shape[1]).reshape(d.shape)
    out = {}
    for a, b in element_pairs(symbols):
        m = ((symbols[i] == a) & (symbols[j] == b)) | ((symbols[i] == b) & (symbols[j] == a))
        k = np.floor(d[:, m] / dr).astype(np.int64)
        ok = k < bins
        flat = rows[:, m][ok] * bins + k[ok]
        out[f"{a}-{b}"] = np.bincount(flat, minlength=len(frames) * bins).reshape(len(frames), bins).astype(np.float64)
    return edges, out


def frame_distances(frames, r_max: float) -> dict:
    """Per element pair, the distances (A) below ``r_max`` of every frame: {"Cd-Se": [array per frame]}."""
    symbols = np.asarray(_check_same_atoms(frames))
    i, j = np.triu_indices(len(symbols), k=1)
    d = np.stack([pdist(a.positions) for a in frames])
    out = {}
    for a, b in element_pairs(symbols):
        m = ((symbols[i] == a) & (symbols[j] == b)) | ((symbols[i] == b) & (symbols[j] == a))
        out[f"{a}-{b}"] = [row[row < r_max] for row in d[:, m]]
    return out


def normalised(counts, edges) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum() * (edges[1] - edges[0])
    return counts / total if total > 0 else counts


def pair_distributions(frames, r_max: float, bins: int) -> dict:
    """Unit-area pair-distance distribution per element pair: {"edges": [...], "Cd-Se": [...], ...}."""
    edges, counts = frame_counts(frames, r_max, bins)
    return {"edges": edges.tolist(), **{p: normalised(c.sum(axis=0), edges).tolist() for p, c in counts.items()}}


def overlap(g1, g2, edges) -> float:
    """1 - half the integrated absolute difference of two unit-area curves."""
    dr = float(edges[1] - edges[0])
    return float(1.0 - 0.5 * np.sum(np.abs(np.asarray(g1) - np.asarray(g2))) * dr)


def first_peak(curve, edges, min_height: float = 0.25) -> dict:
    """Position (Angstrom, parabola through the highest bin and its neighbours) and full width
    at half maximum of the first peak at least ``min_height`` x the curve's maximum."""
    g = np.asarray(curve, dtype=np.float64)
    edges = np.asarray(edges)
    dr = float(edges[1] - edges[0])
    nan = {"position_A": float("nan"), "fwhm_A": float("nan")}
    if not np.any(g > 0):
        return nan
    peaks, _ = find_peaks(np.concatenate([[0.0], g, [0.0]]), height=min_height * g.max())
    if not len(peaks):
        return nan
    k = int(peaks[0]) - 1
    shift = 0.0
    if 0 < k < len(g) - 1:
        y0, y1, y2 = g[k - 1], g[k], g[k + 1]
        denom = y0 - 2 * y1 + y2
        shift = 0.5 * (y0 - y2) / denom if denom != 0 else 0.0
    position = float(edges[0] + (k + 0.5 + shift) * dr)
    # half of the peak's height above zero (not of its prominence above the trough that
    # follows): the trough between shells of a hot cluster is not empty
    width = peak_widths(
        g, [k], rel_height=0.5, prominence_data=(np.array([g[k]]), np.array([0]), np.array([len(g) - 1]))
    )[0][0]
    return {"position_A": position, "fwhm_A": float(width * dr)}


def _trajectories(frames, key: str) -> list[list]:
    """``frames`` split into trajectories by ``info[key]`` (runs, seeds), each in time order."""
    groups: dict = {}
    for k, a in enumerate(frames):
        groups.setdefault(a.info.get(key, ""), []).append((float(a.info.get("time", k)), a))
    return [[a for _, a in sorted(g, key=lambda x: x[0])] for g in groups.values()]


def _spacing(trajs) -> float:
    steps = [np.diff([float(a.info.get("time", k)) for k, a in enumerate(t)]) for t in trajs if len(t) > 1]
    steps = np.concatenate(steps) if steps else np.array([1.0])
    steps = steps[steps > 0]
    return float(np.median(steps)) if len(steps) else 1.0


def _thin(trajs, own: float, common: float) -> list[list]:
    stride = max(1, int(round(common / own)))
    return [t[::stride] for t in trajs]


def _block_size(test_lengths, ref_lengths) -> int:
    """Frames per block: as many as the longest ML-MD trajectory (one seed) has, but at most so
    many that the AIMD holds two blocks."""
    n = max(test_lengths, default=0)
    while n > 0 and sum(L // n for L in ref_lengths) < 2:
        n -= 1
    return n


def _blocks(trajs, n: int) -> list[list[int]]:
    """Consecutive blocks of ``n`` frame indices (into the trajectories concatenated), taken
    from the end of each trajectory: the start of a run is the least equilibrated part."""
    out, offset = [], 0
    for t in trajs:
        L = len(t)
        for s in range(L - (L // n) * n, L, n):
            out.append(list(range(offset + s, offset + s + n)))
        offset += L
    return out


def _disjoint_pairs(blocks: list) -> list[tuple]:
    """Disjoint pairs of blocks, each block in one pair at most, block q with block q + m/2 (as
    far apart in time as the blocks allow); of an odd count, the earliest block is left out."""
    h, start = len(blocks) // 2, len(blocks) % 2
    return [(blocks[start + q], blocks[start + h + q]) for q in range(h)]


def _low(values, q: float) -> float:
    """The ``q`` quantile of ``values`` as one of them (the lowest of up to 1/q values)."""
    return float(np.percentile(values, 100 * q, method="lower"))


def _shell_stats(d, cut) -> tuple[float, float]:
    d = d[d < cut] if cut is not None else d
    return (float(np.mean(d)), float(np.std(d))) if d.size > 1 else (float("nan"), float("nan"))


def compare(reference_frames, test_frames, r_max: float, bins: int, *, independent=None, quantile: float = 0.1) -> dict:
    """Pair-distance distributions of both frame sets and, per element pair, the overlap score and
    Wasserstein distance of every ML-MD seed against the AIMD, beside the same figures of pairs
    of disjoint contiguous AIMD blocks of the seed's frame count (see the module docstring).
    Frames carry ``info["time"]`` (fs; else their index) and ``info["run"]`` (AIMD) or
    ``info["seed"]`` (ML-MD) to tell trajectories apart. ``independent``: frames of an AIMD run
    independent of ``reference_frames`` at the same temperature (another seed), scored as a
    model: what a perfect model scores (a null value). ``quantile``: the lower end of the AIMD
    interval, as a quantile of its block pairs' overlaps (the lowest of up to 1/quantile pairs)."""
    ref_trajs, test_trajs = _trajectories(reference_frames, "run"), _trajectories(test_frames, "seed")
    ind_trajs = _trajectories(independent, "run") if independent else []
    s_ref, s_test = _spacing(ref_trajs), _spacing(test_trajs)
    s_ind = _spacing(ind_trajs) if ind_trajs else 0.0
    spacing = max(s_ref, s_test, s_ind)
    ref_trajs, test_trajs = _thin(ref_trajs, s_ref, spacing), _thin(test_trajs, s_test, spacing)
    ind_trajs = _thin(ind_trajs, s_ind, spacing) if ind_trajs else []
    ref = [a for t in ref_trajs for a in t]
    test = [a for t in test_trajs for a in t]
    edges, ref_counts = frame_counts(ref, r_max, bins)
    _, test_counts = frame_counts(test, r_max, bins)
    pairs = list(ref_counts)
    longest_seed = max(len(t) for t in test_trajs)
    n = _block_size([len(t) for t in test_trajs], [len(t) for t in ref_trajs])
    out = {
        "curve": CURVE,
        "edges": edges.tolist(),
        "reference": {p: normalised(ref_counts[p].sum(axis=0), edges).tolist() for p in pairs},
        "model": {p: normalised(test_counts[p].sum(axis=0), edges).tolist() for p in pairs},
        "n_reference_frames": len(ref),
        "n_model_frames": len(test),
        "n_seeds": len(test_trajs),
        "spacing_fs": spacing,
        "frames_per_block": n,
        "block_fs": n * spacing,
    }
    out["first_peak"] = {
        "reference": {p: first_peak(out["reference"][p], edges) for p in pairs},
        "model": {p: first_peak(out["model"][p], edges) for p in pairs},
    }
    if n < 2:
        out.update(overlap={}, overlap_min=float("nan"), note="too few AIMD frames for two blocks")
        return out
    if n < longest_seed:
        out["block_note"] = (
            f"blocks cut to {n} frames: the AIMD ({len(ref)} frames) holds fewer than two blocks of "
            f"the longest seed's {longest_seed} frames; each seed is scored as the mean of its {n}-frame blocks"
        )
    ref_d, test_d = frame_distances(ref, r_max), frame_distances(test, r_max)
    cuts = {}
    for p in pairs:
        fm = first_minimum(np.concatenate(ref_d[p]), r_max)
        cuts[p] = fm[1] if fm is not None and fm[1] > fm[0] else None
    longest = int(np.argmax([len(t) for t in ref_trajs]))

    def curve(counts, idx):
        return normalised(counts[idx].sum(axis=0), edges)

    def dists(d, idx):
        return np.concatenate([d[i] for i in idx])

    def score(counts, d, idx, target) -> dict:
        """Overlap, Wasserstein distance and first-shell mean and spread of the frames ``idx``
        (of ``counts``, ``d``) against the AIMD frames ``target``."""
        res = {}
        for p in pairs:
            a, b = dists(d[p], idx), dists(ref_d[p], target)
            (ma, sa), (mb, sb) = _shell_stats(a, cuts[p]), _shell_stats(b, cuts[p])
            res[p] = {
                "overlap": overlap(curve(counts[p], idx), curve(ref_counts[p], target), edges),
                "wasserstein_A": float(wasserstein_distance(a, b)) if a.size and b.size else float("nan"),
                "shell_shift_A": ma - mb,
                "shell_spread_ratio": sa / sb if sb > 0 else float("nan"),
            }
        return res

    cache: dict = {}

    def reference(k: int) -> dict | None:
        """The AIMD at blocks of ``k`` frames: its final block (the target every model block is
        scored against) and the scores of its disjoint block pairs."""
        if k not in cache:
            blocks = _blocks(ref_trajs, k)
            if len(blocks) < 2:
                cache[k] = None
            else:
                last = sum(len(t) // k for t in ref_trajs[: longest + 1]) - 1
                sc = [score(ref_counts, ref_d, a, b) for a, b in _disjoint_pairs(blocks)]
                cache[k] = {"blocks": blocks, "target": blocks[last], "pairs": sc}
                vals = {p: [s[p]["overlap"] for s in sc] for p in pairs}
                cache[k]["lower"] = {p: _low(v, quantile) for p, v in vals.items()}
        return cache[k]

    seeds, seed_curves, model_blocks, model_frames = [], {p: [] for p in pairs}, 0, 0
    offset = 0
    for t in test_trajs:
        s = t[0].info.get("seed")
        k, entry = min(len(t), n), {"seed": s.item() if isinstance(s, np.generic) else s, "frames": len(t)}
        offset += len(t)
        R = reference(k) if k >= 2 else None
        if R is None:
            seeds.append({**entry, "note": "too few frames to compare"})
            continue
        blocks = [[offset - len(t) + i for i in b] for b in _blocks([t], k)]
        sc = [score(test_counts, test_d, b, R["target"]) for b in blocks]
        entry.update(frames_per_block=k, blocks=len(blocks))
        for key in ("overlap", "wasserstein_A", "shell_shift_A", "shell_spread_ratio"):
            entry[key] = {p: float(np.mean([s[p][key] for s in sc])) for p in pairs}
        entry["reference_lower"] = R["lower"]
        entry["inside"] = {p: bool(entry["overlap"][p] >= R["lower"][p]) for p in pairs}
        seeds.append(entry)
        used = [i for b in blocks for i in b]
        for p in pairs:
            seed_curves[p].append(curve(test_counts[p], used))
        model_blocks += len(blocks)
        model_frames += len(used)
    scored = [s for s in seeds if "overlap" in s]
    R = reference(n)
    out["seeds"] = seeds
    if not scored:
        out.update(overlap={}, overlap_min=float("nan"), note="no ML-MD seed with enough frames to compare")
        return out

    def over_seeds(key):
        vals = {p: [s[key][p] for s in scored] for p in pairs}
        return {p: float(np.mean(v)) for p, v in vals.items()}, {
            p: [float(min(v)), float(max(v))] for p, v in vals.items()
        }

    scores, score_range = over_seeds("overlap")
    w, w_range = over_seeds("wasserstein_A")
    shift, _ = over_seeds("shell_shift_A")
    spread, _ = over_seeds("shell_spread_ratio")
    ref_vals = {key: {p: [s[p][key] for s in R["pairs"]] for p in pairs} for key in R["pairs"][0][pairs[0]]}
    inside = {p: sum(s["inside"][p] for s in scored) for p in pairs}
    worst = min(scores, key=scores.get)
    out.update(
        overlap=scores,
        overlap_range=score_range,
        overlap_min=scores[worst],
        overlap_worst_pair=worst,
        wasserstein_A=w,
        wasserstein_range_A=w_range,
        seeds_scored=len(scored),
        seeds_inside=inside,
        # AIMD self-agreement: disjoint pairs of contiguous n-frame blocks
        reference_pairs=len(R["pairs"]),
        reference_overlap={p: float(np.mean(v)) for p, v in ref_vals["overlap"].items()},
        reference_overlap_lowest={p: float(min(v)) for p, v in ref_vals["overlap"].items()},
        reference_overlap_quantile={p: float(np.percentile(v, 100 * quantile)) for p, v in ref_vals["overlap"].items()},
        reference_quantile=quantile,
        # [lower end, highest]: a seed is inside when its overlap is not below the lower end
        reference_interval={p: [R["lower"][p], float(max(v))] for p, v in ref_vals["overlap"].items()},
        reference_wasserstein_A={p: float(np.mean(v)) for p, v in ref_vals["wasserstein_A"].items()},
        reference_wasserstein_range_A={p: [float(min(v)), float(max(v))] for p, v in ref_vals["wasserstein_A"].items()},
        model_blocks=model_blocks,
        reference_blocks=len(R["blocks"]),
        model_frames_compared=model_frames,
        reference_frames_compared=n,
    )
    out["reference_overlap_min"] = min(out["reference_overlap"].values())
    ref_curves = {p: [curve(ref_counts[p], b) for b in R["blocks"]] for p in pairs}
    out["reference_band"] = {p: [np.min(c, axis=0).tolist(), np.max(c, axis=0).tolist()] for p, c in ref_curves.items()}
    out["seed_band"] = {p: [np.min(c, axis=0).tolist(), np.max(c, axis=0).tolist()] for p, c in seed_curves.items()}
    # what is wrong where a model is off: the first shell's mean distance and spread against
    # how much the AIMD's own block pairs differ in them
    out["first_shell"], flags = {}, {}
    for p in pairs:
        shifts = np.abs(ref_vals["shell_shift_A"][p])
        ratios = np.asarray(ref_vals["shell_spread_ratio"][p])
        ratios = np.maximum(ratios, 1 / ratios)
        if not (np.isfinite(shifts).any() and np.isfinite(ratios).any()):
            out["first_shell"][p], flags[p] = {"cut_A": cuts[p]}, []
            continue
        s_max, r_hi = float(np.nanmax(shifts)), float(np.nanmax(ratios))
        out["first_shell"][p] = {
            "cut_A": cuts[p],
            "model_shift_A": shift[p],
            "aimd_pairs_shift_max_A": s_max,
            "model_spread_ratio": spread[p],
            "aimd_pairs_spread_ratio_range": [1 / r_hi, r_hi],
        }
        flags[p] = []
        if abs(shift[p]) > s_max:
            flags[p].append(f"first shell {'longer' if shift[p] > 0 else 'shorter'} by {abs(shift[p]):.3f} Å")
        if spread[p] > r_hi or spread[p] < 1 / r_hi:
            flags[p].append(f"first shell {'broader' if spread[p] > 1 else 'narrower'} ×{spread[p]:.2f}")
    out["flags"] = flags
    out["below_reference_interval"] = [p for p in pairs if 2 * inside[p] < len(scored)]
    out["verdict"] = {
        p: f"{inside[p]} of {len(scored)} seeds inside the AIMD interval (overlap ≥ {R['lower'][p]:.2f}, "
        f"{len(R['pairs'])} AIMD block pair{'s' if len(R['pairs']) != 1 else ''})"
        + (": " + ", ".join(flags[p]) if flags[p] and p in out["below_reference_interval"] else "")
        for p in pairs
    }
    if ind_trajs:
        ind = [a for t in ind_trajs for a in t]
        _check_same_atoms([ref[0], ind[0]])
        _, ind_counts = frame_counts(ind, r_max, bins)
        ind_d = frame_distances(ind, r_max)
        blocks = _blocks(ind_trajs, n)
        sc = [score(ind_counts, ind_d, b, R["target"]) for b in blocks]
        out["independent"] = {
            "n_frames": len(ind),
            "blocks": len(blocks),
            "overlap": {p: float(np.mean([s[p]["overlap"] for s in sc])) for p in pairs} if sc else {},
            "wasserstein_A": {p: float(np.mean([s[p]["wasserstein_A"] for s in sc])) for p in pairs} if sc else {},
            "blocks_inside": {p: sum(s[p]["overlap"] >= R["lower"][p] for s in sc) for p in pairs},
        }
    return out


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_message(text: str, path) -> None:
    """A small figure that says why there is no comparison (so the report has no broken image)."""
    from ..fileio import atomic_path

    plt = _pyplot()
    fig = plt.figure(figsize=(6, 1.2))
    fig.text(0.5, 0.5, text, ha="center", va="center", fontsize=10)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def panel_title(result: dict, p: str) -> str:
    """One element pair's scores: the ML-MD overlap (mean and range over seeds), the AIMD
    interval's lower end and pair count, seeds inside, Wasserstein distances."""
    if p not in result.get("overlap", {}):
        return p
    lo, hi = result.get("overlap_range", {}).get(p, [result["overlap"][p]] * 2)
    text = f"{p}: ML {result['overlap'][p]:.2f} [{lo:.2f}-{hi:.2f}]"
    iv = result.get("reference_interval", {}).get(p)
    if iv:
        text += f", AIMD ≥ {iv[0]:.2f}"
    if p in result.get("seeds_inside", {}):
        text += f"\n{result['seeds_inside'][p]}/{result['seeds_scored']} seeds in ({result.get('reference_pairs', '?')} AIMD pair(s))"
    if p in result.get("wasserstein_A", {}):
        wr = result.get("reference_wasserstein_range_A", {}).get(p)
        text += f"\nW {result['wasserstein_A'][p]:.3f} Å" + (f" (AIMD ≤ {wr[1]:.3f})" if wr else "")
    return text


def plot(result: dict, title: str, path) -> None:
    from ..fileio import atomic_path

    plt = _pyplot()
    pairs = list(result["reference"])
    edges = np.asarray(result["edges"])
    r = 0.5 * (edges[1:] + edges[:-1])
    from ..report.plotgrid import MAX_PER_ROW, grid

    fig, axes = grid(plt, len(pairs), sharex=True)
    n = result.get("frames_per_block", 0)
    for ax, p in zip(axes, pairs):
        band = result.get("reference_band", {}).get(p)
        if band:
            ax.fill_between(r, band[0], band[1], color="0.85", lw=0, label=f"AIMD {n}-frame blocks (range)")
        seeds = result.get("seed_band", {}).get(p)
        if seeds and result.get("seeds_scored", 0) > 1:
            ax.fill_between(
                r,
                seeds[0],
                seeds[1],
                color="C1",
                alpha=0.25,
                lw=0,
                label=f"ML-MD, {result['seeds_scored']} seeds (range)",
            )
        ax.plot(r, result["reference"][p], "k-", lw=1.2, label="AIMD")
        ax.plot(r, result["model"][p], "C1--", lw=1.2, label="ML-MD")
        ax.set_title(panel_title(result, p), fontsize=7)
        ax.set_xlabel("r [Å]")
        ax.set_yticks([])
    axes[0].legend(fontsize=7)
    for ax in axes[::MAX_PER_ROW]:
        ax.set_ylabel(f"{CURVE} [1/Å]", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def usable_mlmd_frames(frames, summary: dict) -> list:
    """ML-MD snapshots to compare with AIMD: per seed, without the frame that failed the
    stability check (not a structure to compare) and the first 10 % (velocities settling
    to the thermostat)."""
    runs = {r["seed"]: r for r in summary.get("runs", [])}
    by_seed: dict = {}
    for a in frames:
        by_seed.setdefault(a.info.get("seed", summary.get("seed")), []).append(a)
    out = []
    for s, fr in by_seed.items():
        stable = runs[s]["stable"] if s in runs else summary["stable"]
        if not stable:
            fr = fr[:-1]
        out += fr[len(fr) // 10 :]
    return out
