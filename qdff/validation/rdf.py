"""Element-pair distance distributions of ML-MD against AIMD, compared fairly.

A free cluster has no volume, so g(r) (pair density over the ideal-gas density) is not
defined; what is compared here is the **pair-distance distribution**: per element pair, the
histogram of all interatomic distances, normalised to unit area. The overlap score of two
such curves is 1 - (1/2) * integral |P1 - P2| dr: 1 for identical distributions, 0 for
distributions that do not overlap at all.

The score depends on how many frames each curve averages (noise lowers it), so ML-MD and
AIMD are compared at equal frame count and spacing: both trajectories are thinned to the
same time step, the AIMD's final block of ``n`` frames is the reference, and every block of
``n`` ML-MD frames is scored against it, as is every earlier AIMD block of ``n`` frames (the
AIMD's self-agreement: what a perfect model could score). A model identical to the AIMD
block before the reference therefore scores exactly the self-agreement, not more (a model
compared with all AIMD frames pooled could: the pooled curve contains the model's own
frames). The spread of the self-agreement comes from block resampling: pairs of disjoint
random sets of AIMD sub-blocks (``block_fs`` long, about the time over which pair distances
decorrelate) of ``n`` frames each, their overlap's 5th to 95th percentile. Drawn without
replacement, so that no frame is compared with itself.
"""

from __future__ import annotations

import itertools
import logging

import numpy as np
from scipy.signal import find_peaks, peak_widths
from scipy.spatial.distance import pdist

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


def _block_size(test_lengths, ref_lengths, sub: int) -> int:
    """Frames per block: as many as the longest ML-MD trajectory has, but at most so many that
    the AIMD has two blocks; a multiple of the sub-block length ``sub`` when possible."""
    n = max(test_lengths, default=0)
    while n > 0 and sum(L // n for L in ref_lengths) < 2:
        n -= 1
    if n >= 2 * sub:
        n -= n % sub
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


def compare(
    reference_frames,
    test_frames,
    r_max: float,
    bins: int,
    *,
    block_fs: float = 100.0,
    resamples: int = 200,
    seed: int = 0,
    level: float = 0.9,
) -> dict:
    """Pair-distance distributions of both frame sets and the overlap scores per element pair
    (see the module docstring). Frames carry ``info["time"]`` (fs; else their index) and
    ``info["run"]`` (AIMD) or ``info["seed"]`` (ML-MD) to tell trajectories apart."""
    ref_trajs, test_trajs = _trajectories(reference_frames, "run"), _trajectories(test_frames, "seed")
    s_ref, s_test = _spacing(ref_trajs), _spacing(test_trajs)
    spacing = max(s_ref, s_test)
    ref_trajs, test_trajs = _thin(ref_trajs, s_ref, spacing), _thin(test_trajs, s_test, spacing)
    ref = [a for t in ref_trajs for a in t]
    test = [a for t in test_trajs for a in t]
    edges, ref_counts = frame_counts(ref, r_max, bins)
    _, test_counts = frame_counts(test, r_max, bins)
    pairs = list(ref_counts)
    sub = max(1, int(round(block_fs / spacing)))
    n = _block_size([len(t) for t in test_trajs], [len(t) for t in ref_trajs], sub)
    out = {
        "curve": CURVE,
        "edges": edges.tolist(),
        "reference": {p: normalised(ref_counts[p].sum(axis=0), edges).tolist() for p in pairs},
        "model": {p: normalised(test_counts[p].sum(axis=0), edges).tolist() for p in pairs},
        "n_reference_frames": len(ref),
        "n_model_frames": len(test),
        "spacing_fs": spacing,
        "frames_per_block": n,
        "block_fs": n * spacing,
    }
    out["first_peak"] = {
        "reference": {p: first_peak(out["reference"][p], edges) for p in pairs},
        "model": {p: first_peak(out["model"][p], edges) for p in pairs},
    }
    if n < 1:
        out.update(overlap={}, overlap_min=float("nan"), note="too few AIMD frames for two blocks")
        return out
    ref_blocks, test_blocks = _blocks(ref_trajs, n), _blocks(test_trajs, n)
    # the reference block: the end of the longest AIMD run
    longest = int(np.argmax([len(t) for t in ref_trajs]))
    last = sum(len(t) // n for t in ref_trajs[: longest + 1]) - 1
    target, twins = ref_blocks[last], [b for k, b in enumerate(ref_blocks) if k != last]

    def curve(counts, idx):
        return normalised(counts[idx].sum(axis=0), edges)

    scores, self_scores = {}, {}
    for p in pairs:
        B = curve(ref_counts[p], target)
        scores[p] = float(np.mean([overlap(curve(test_counts[p], b), B, edges) for b in test_blocks]))
        self_scores[p] = float(np.mean([overlap(curve(ref_counts[p], b), B, edges) for b in twins]))
    worst = min(scores, key=scores.get)
    out.update(
        overlap=scores,
        overlap_min=scores[worst],
        overlap_worst_pair=worst,
        reference_overlap=self_scores,
        reference_overlap_min=min(self_scores.values()),
        model_blocks=len(test_blocks),
        reference_blocks=len(ref_blocks),
        model_frames_compared=len(test_blocks) * n,
        reference_frames_compared=n,
    )
    out.update(_self_agreement_interval(ref_trajs, ref_counts, edges, n, sub, resamples, seed, level, spacing))
    if "reference_interval" in out:
        out["below_reference_interval"] = [p for p in pairs if scores[p] < out["reference_interval"][p][0]]
    return out


def _self_agreement_interval(
    ref_trajs, ref_counts, edges, n: int, sub: int, resamples: int, seed: int, level: float, spacing: float
) -> dict:
    """Percentile interval of the overlap of two disjoint random sets of AIMD sub-blocks of
    ``n`` frames each, and the pointwise band of such sets' curves."""
    sub = min(sub, max(1, n // 2))
    per_block = n // sub
    subs = _blocks(ref_trajs, sub)
    if per_block < 1 or len(subs) < 2 * per_block or n < 2:
        return {"interval_note": "too few AIMD sub-blocks for an interval"}
    rng = np.random.default_rng(seed)
    lo_q, hi_q = 50 * (1 - level), 50 * (1 + level)
    draws = [rng.permutation(len(subs))[: 2 * per_block] for _ in range(resamples)]
    interval, band = {}, {}
    for p, counts in ref_counts.items():
        sub_counts = np.stack([counts[b].sum(axis=0) for b in subs])
        vals, curves = [], []
        for d in draws:
            g1 = normalised(sub_counts[d[:per_block]].sum(axis=0), edges)
            g2 = normalised(sub_counts[d[per_block:]].sum(axis=0), edges)
            vals.append(overlap(g1, g2, edges))
            curves += [g1, g2]
        interval[p] = [float(np.percentile(vals, lo_q)), float(np.percentile(vals, hi_q))]
        band[p] = [np.percentile(curves, lo_q, axis=0).tolist(), np.percentile(curves, hi_q, axis=0).tolist()]
    return {
        "reference_interval": interval,
        "reference_interval_level": level,
        "reference_band": band,
        "sub_block_fs": sub * spacing,
        "sub_block_frames": sub,
        "resamples": resamples,
    }


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
            ax.fill_between(
                r,
                band[0],
                band[1],
                color="0.85",
                lw=0,
                label=f"AIMD, {n}-frame blocks ({100 * result['reference_interval_level']:.0f}%)",
            )
        ax.plot(r, result["reference"][p], "k-", lw=1.2, label="AIMD")
        ax.plot(r, result["model"][p], "C1--", lw=1.2, label="ML-MD")
        text = p
        if p in result.get("overlap", {}):
            text += f": ML {result['overlap'][p]:.2f}, AIMD {result['reference_overlap'][p]:.2f}"
            iv = result.get("reference_interval", {}).get(p)
            if iv:
                text += f" [{iv[0]:.2f}, {iv[1]:.2f}]"
        ax.set_title(text, fontsize=8)
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
