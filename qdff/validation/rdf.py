"""Element-pair distance distributions of ML-MD against AIMD, compared fairly.

A free cluster has no volume, so g(r) (pair density over the ideal-gas density) is not
defined; what is compared here is the **pair-distance distribution**: per element pair, the
histogram of all interatomic distances, normalised to unit area. The overlap score of two
such curves is 1 - (1/2) * integral |P1 - P2| dr: 1 for identical distributions, 0 for
distributions that do not overlap at all. Beside it, the Wasserstein (earth mover's)
distance of the two sets of pair distances (below ``r_max``), in Angstrom: how far the
distances would have to move, 0 for identical sets.

Both scores depend on how many frames, and how correlated, each side averages, so the model
is tested against a null distribution of the AIMD's own agreement measured the same way. Both
trajectories are thinned to the same time step and cut into contiguous, non-overlapping
blocks of ``L`` frames (taken from the end of each trajectory): ``L`` is the most frames of
which the AIMD holds ``min_blocks`` (8) blocks, but no more than the longest ML-MD seed. (The
demo's 1.4 ps AIMD holds only two blocks of a 0.9 ps seed: one AIMD pair, an "interval" of
one value that a perfect model's seed falls below half the time.) The **null** is the
overlaps of all pairs of AIMD blocks that are not neighbours in one trajectory (neighbours
share correlation across their border): with 8 blocks, 28 - 7 = 21 pairs, not independent of
each other but each an honest sample of two independent-ish L-frame AIMD blocks. A **seed**
is cut into as many L-frame blocks as fit; each of its blocks is scored against every AIMD
block, and the seed's statistic is the mean over all those (seed block, AIMD block) scores.
Against every AIMD block rather than one target block: one target would carry its own
fluctuation into every seed at once, and the mean over all of them varies less. A seed is inside the AIMD interval of an element pair when its
mean overlap is not below the ``quantile`` of the null pairs' overlaps, taken as one of them:
by default (0) the lowest null pair. The mean over many block pairs varies less than one AIMD
pair does, so a perfect model's seed lands near the null's mean, above its lowest pair; a
model whose distribution is shifted or broadened lowers every block pair and falls below.
Measured with ``benchmarks/rdf_spread.py --synthetic 40 --bad`` (a correlated synthetic
trajectory cut into an "AIMD" of 141 frames and three seeds of 90, the demo's proportions):
the perfect model passes every element pair in 39 of 40 trajectories at a frame-to-frame
correlation of 0.95 (38 of 40 with the 5 % quantile, the second-lowest of 21 pairs, as the
lower end), 40 of 40 at 0.8, while models with bonds 2 % too long or displacements 1.5 times
too large fail in 40 of 40; CP2K's own MD run through the ML-MD protocol has 3 of 3 seeds
inside for every element pair of the demo at 300 and 600 K. The seeds' verdicts are not
independent: they share the AIMD null, and an AIMD whose blocks happen to agree closely
sets a high lower end for all of them (most of the synthetic failures). The verdict per element pair is "k of n seeds
inside", failed where most seeds fall below. Wasserstein distances are the same means over a
seed's block pairs beside the null pairs' range. A copy of AIMD frames would score its own
block at 1, so it is favoured (no real model is a copy). Where the AIMD cannot hold
``min_blocks`` blocks of ``min_frames`` (5) frames, the blocks are as long as a seed, at
most so that the AIMD holds two (neighbours used when there is no other pair), and the result
says it is uncalibrated (``block_note``). Where a model is off, the first shell (distances
below the first minimum of the AIMD's distribution) says how: its mean distance and spread
against the AIMD's (means over the seed's block pairs), beside how much the AIMD's own null
pairs differ in them.
"""

from __future__ import annotations

import itertools
import logging

import numpy as np
from scipy.signal import find_peaks, peak_widths
from scipy.spatial.distance import pdist

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


def _block_size(test_lengths, ref_lengths, min_blocks: int = 8, min_frames: int = 5) -> tuple[int, bool]:
    """Frames per block and whether the AIMD null is calibrated: the most frames such that the
    AIMD holds ``min_blocks`` contiguous non-overlapping blocks, at most the longest ML-MD seed
    (True); where the AIMD cannot hold ``min_blocks`` blocks of ``min_frames``, the most frames
    such that it holds two (False)."""
    n = max(test_lengths, default=0)
    k = n
    while k >= min_frames and sum(L // k for L in ref_lengths) < min_blocks:
        k -= 1
    if k >= min_frames:
        return k, True
    while n > 0 and sum(L // n for L in ref_lengths) < 2:
        n -= 1
    return n, False


def _blocks(trajs, n: int) -> list[list[int]]:
    """Consecutive blocks of ``n`` frame indices (into the trajectories concatenated), taken
    from the end of each trajectory: the start of a run is the least equilibrated part."""
    return [b for _, b in _placed_blocks(trajs, n)]


def _placed_blocks(trajs, n: int) -> list[tuple[tuple[int, int], list[int]]]:
    """:func:`_blocks` with each block's place: (trajectory, position in it)."""
    out, offset = [], 0
    for t_idx, t in enumerate(trajs):
        L = len(t)
        for q, s in enumerate(range(L - (L // n) * n, L, n)):
            out.append(((t_idx, q), list(range(offset + s, offset + s + n))))
        offset += L
    return out


def _null_pairs(places) -> tuple[list[tuple[int, int]], bool]:
    """Index pairs of the blocks (by their places) for the AIMD null: every pair not neighbours
    in one trajectory (neighbours share correlation across their border); where there is no
    such pair (two blocks), the neighbours (False: adjacent pairs used)."""
    pairs = [
        (i, j)
        for i, j in itertools.combinations(range(len(places)), 2)
        if places[i][0] != places[j][0] or abs(places[i][1] - places[j][1]) > 1
    ]
    if pairs:
        return pairs, True
    return list(itertools.combinations(range(len(places)), 2)), False


def _low(values, q: float) -> float:
    """The ``q`` quantile of ``values`` as one of them (the lowest of up to 1/q values)."""
    return float(np.percentile(values, 100 * q, method="lower"))


def _shell_stats(d, cut) -> tuple[float, float]:
    d = d[d < cut] if cut is not None else d
    return (float(np.mean(d)), float(np.std(d))) if d.size > 1 else (float("nan"), float("nan"))


def _wasserstein_sorted(a: np.ndarray, b: np.ndarray) -> float:
    """The Wasserstein (earth mover's) distance of two samples given sorted: the integral of the
    absolute difference of their empirical CDFs (as scipy.stats.wasserstein_distance, without
    sorting each sample again for every pair of blocks)."""
    if not (a.size and b.size):
        return float("nan")
    x = np.sort(np.concatenate([a, b]), kind="stable")  # two sorted runs: merged in linear time
    fa = np.searchsorted(a, x[:-1], side="right") / a.size
    fb = np.searchsorted(b, x[:-1], side="right") / b.size
    return float(np.sum(np.abs(fa - fb) * np.diff(x)))


KEYS = ("overlap", "wasserstein_A", "shell_shift_A", "shell_spread_ratio")


def compare(
    reference_frames,
    test_frames,
    r_max: float,
    bins: int,
    *,
    independent=None,
    quantile: float = 0.0,
    min_blocks: int = 8,
    min_frames: int = 5,
) -> dict:
    """Pair-distance distributions of both frame sets and, per element pair, the overlap score and
    Wasserstein distance of every ML-MD seed against the AIMD, beside the null distribution of
    the same figures between non-adjacent contiguous AIMD blocks (see the module docstring).
    Frames carry ``info["time"]`` (fs; else their index) and ``info["run"]`` (AIMD) or
    ``info["seed"]`` (ML-MD) to tell trajectories apart. ``independent``: frames of an AIMD run
    independent of ``reference_frames`` at the same temperature (another seed), scored as a
    model: what a perfect model scores (a null value). ``quantile``: the lower end of the AIMD
    interval, as a quantile of the null pairs' overlaps (taken as one of them). ``min_blocks``,
    ``min_frames``: the block length is the most frames of which the AIMD holds ``min_blocks``
    blocks (at most a seed's length, at least ``min_frames``; else uncalibrated, with a note)."""
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
    ref_lengths = [len(t) for t in ref_trajs]
    n, calibrated = _block_size([len(t) for t in test_trajs], ref_lengths, min_blocks, min_frames)
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
        "longest_seed_frames": longest_seed,
    }
    out["first_peak"] = {
        "reference": {p: first_peak(out["reference"][p], edges) for p in pairs},
        "model": {p: first_peak(out["model"][p], edges) for p in pairs},
    }
    if n < 2:
        out.update(overlap={}, overlap_min=float("nan"), note="too few AIMD frames for two blocks")
        return out
    if not calibrated:
        out["block_note"] = (
            f"uncalibrated: the AIMD ({len(ref)} frames every {spacing:g} fs) holds fewer than {min_blocks} blocks "
            f"of {min_frames} frames; blocks of {n} frames, the null from as few AIMD blocks as it holds"
        )
    ref_d, test_d = frame_distances(ref, r_max), frame_distances(test, r_max)
    cuts = {}
    for p in pairs:
        fm = first_minimum(np.concatenate(ref_d[p]), r_max)
        cuts[p] = fm[1] if fm is not None and fm[1] > fm[0] else None

    def curve(counts, idx):
        return normalised(counts[idx].sum(axis=0), edges)

    def features(counts, d, idx) -> dict:
        """Per element pair, a block's curve, pair distances and first-shell mean and spread."""
        res = {}
        for p in pairs:
            x = np.sort(np.concatenate([d[p][i] for i in idx]))
            res[p] = (curve(counts[p], idx), x, *_shell_stats(x, cuts[p]))
        return res

    def score(fa: dict, fb: dict) -> dict:
        """Overlap, Wasserstein distance and first-shell shift and spread ratio of block ``fa``
        against block ``fb`` (features of both)."""
        res = {}
        for p in pairs:
            (ga, a, ma, sa), (gb, b, mb, sb) = fa[p], fb[p]
            res[p] = {
                "overlap": overlap(ga, gb, edges),
                "wasserstein_A": _wasserstein_sorted(a, b),
                "shell_shift_A": ma - mb,
                "shell_spread_ratio": sa / sb if sb > 0 else float("nan"),
            }
        return res

    def mean_score(sc: list) -> dict:
        return {key: {p: float(np.mean([s[p][key] for s in sc])) for p in pairs} for key in KEYS}

    cache: dict = {}

    def reference(k: int) -> dict | None:
        """The AIMD at blocks of ``k`` frames: its blocks' features and the scores of its null
        pairs (non-adjacent blocks)."""
        if k not in cache:
            placed = _placed_blocks(ref_trajs, k)
            if len(placed) < 2:
                cache[k] = None
            else:
                feats = [features(ref_counts, ref_d, b) for _, b in placed]
                idx, apart = _null_pairs([pl for pl, _ in placed])
                sc = [score(feats[i], feats[j]) for i, j in idx]
                vals = {p: [s[p]["overlap"] for s in sc] for p in pairs}
                cache[k] = {
                    "blocks": [b for _, b in placed],
                    "features": feats,
                    "pairs": sc,
                    "apart": apart,
                    "lower": {p: _low(v, quantile) for p, v in vals.items()},
                    # the largest Wasserstein distance of a null pair: a seed farther is outside
                    # too (the overlap of short blocks of a small cluster misses a shifted shell
                    # that the distance sees; measured on the demo's zero-shot SevenNet-0)
                    "upper_w": {p: float(max(s[p]["wasserstein_A"] for s in sc)) for p in pairs},
                }
        return cache[k]

    def against_aimd(counts, d, blocks, R) -> list[dict]:
        """Each block's mean score against every AIMD block."""
        feats = [features(counts, d, b) for b in blocks]
        return [mean_score([score(fb, fa) for fa in R["features"]]) for fb in feats]

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
        per_block = against_aimd(test_counts, test_d, blocks, R)
        entry.update(frames_per_block=k, blocks=len(blocks))
        for key in KEYS:
            entry[key] = {p: float(np.mean([s[key][p] for s in per_block])) for p in pairs}
        entry["reference_lower"] = R["lower"]
        entry["reference_upper_wasserstein_A"] = R["upper_w"]
        entry["inside"] = {
            p: bool(entry["overlap"][p] >= R["lower"][p] and entry["wasserstein_A"][p] <= R["upper_w"][p])
            for p in pairs
        }
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
    ref_vals = {key: {p: [s[p][key] for s in R["pairs"]] for p in pairs} for key in KEYS}
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
        # the AIMD null: overlaps of pairs of non-adjacent contiguous n-frame AIMD blocks
        reference_pairs=len(R["pairs"]),
        reference_pairs_non_adjacent=R["apart"],
        reference_overlap={p: float(np.mean(v)) for p, v in ref_vals["overlap"].items()},
        reference_overlap_lowest={p: float(min(v)) for p, v in ref_vals["overlap"].items()},
        reference_overlap_quantile={p: float(np.percentile(v, 100 * quantile)) for p, v in ref_vals["overlap"].items()},
        reference_quantile=quantile,
        # [lower end, highest]: a seed is inside when its mean overlap is not below the lower end
        reference_interval={p: [R["lower"][p], float(max(v))] for p, v in ref_vals["overlap"].items()},
        reference_wasserstein_A={p: float(np.mean(v)) for p, v in ref_vals["wasserstein_A"].items()},
        reference_wasserstein_range_A={p: [float(min(v)), float(max(v))] for p, v in ref_vals["wasserstein_A"].items()},
        # a seed is inside only if its mean Wasserstein distance is not above this too
        reference_wasserstein_upper_A=R["upper_w"],
        model_blocks=model_blocks,
        reference_blocks=len(R["blocks"]),
        model_frames_compared=model_frames,
        reference_frames_compared=n * len(R["blocks"]),
        calibrated=calibrated,
    )
    out["reference_overlap_min"] = min(out["reference_overlap"].values())
    ref_curves = {p: [f[p][0] for f in R["features"]] for p in pairs}
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
        p: f"{inside[p]} of {len(scored)} seeds inside the AIMD interval (mean overlap of {n}-frame blocks ≥ "
        f"{R['lower'][p]:.2f}, {'the lowest' if quantile == 0 else f'the {100 * quantile:g} % quantile'} of {len(R['pairs'])} AIMD block pair"
        f"{'s' if len(R['pairs']) != 1 else ''}, and mean Wasserstein distance ≤ {R['upper_w'][p]:.3f} Å, their largest)"
        + (": " + ", ".join(flags[p]) if flags[p] and p in out["below_reference_interval"] else "")
        for p in pairs
    }
    if ind_trajs:
        ind = [a for t in ind_trajs for a in t]
        _check_same_atoms([ref[0], ind[0]])
        _, ind_counts = frame_counts(ind, r_max, bins)
        ind_d = frame_distances(ind, r_max)
        blocks = _blocks(ind_trajs, n)
        per_block = against_aimd(ind_counts, ind_d, blocks, R)
        out["independent"] = {
            "n_frames": len(ind),
            "blocks": len(blocks),
            "overlap": {p: float(np.mean([s["overlap"][p] for s in per_block])) for p in pairs} if blocks else {},
            "wasserstein_A": {p: float(np.mean([s["wasserstein_A"][p] for s in per_block])) for p in pairs}
            if blocks
            else {},
            "blocks_inside": {p: sum(s["overlap"][p] >= R["lower"][p] for s in per_block) for p in pairs},
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
