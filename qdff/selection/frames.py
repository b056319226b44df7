"""Held-out split by time and selection of training/validation frames.

Neighbouring AIMD frames are nearly identical, so a random split leaks test frames
into training. Every run is cut into contiguous time blocks before any selection:
training pool | gap | validation block | gap | test block (the final block), with gaps of
``selection.gap_fs``; or the test set is an independent AIMD run of another seed
(``aimd.test_seed``). Selection only ever sees the training pool; validation frames are
spread evenly over the validation blocks, so that early stopping and learning-rate
schedules follow an error on frames the training never neighboured.

Selection methods (each returns exactly N distinct pool frames, deterministic under a seed):
random and stride need nothing else; fps, kmeans and dbscan work in the space of the
frames' descriptors (qdff.selection.descriptors), standardized over the pool block by block
(:func:`qdff.selection.descriptors.standardize`). Near-duplicates in
that space can be dropped from the pool first (``dedupe_tolerance``).
"""

from __future__ import annotations

import logging
from collections import defaultdict

import numpy as np

log = logging.getLogger(__name__)

METHODS = ("random", "stride", "fps", "kmeans", "dbscan")
DESCRIPTOR_METHODS = ("fps", "kmeans", "dbscan")


class SelectionError(ValueError):
    pass


def _time(frames, i: int, run) -> float:
    t = frames[i].info.get("time")
    if t is None:
        raise SelectionError(f"run {run}: frame {i} has no MD time (info 'time', fs); the split is made in time")
    return float(t)


def _block_error(run, what: str, span: float, p: dict) -> SelectionError:
    return SelectionError(
        f"config error at selection.gap_fs: run {run} spans {span:g} fs after selection.equilibration_fs="
        f"{p['equilibration_fs']:g}, too short for a test block (selection.test_fraction={p['test_fraction']:g}), "
        f"a validation block (selection.valid_fraction={p['valid_fraction']:g}) and a gap of selection.gap_fs="
        f"{p['gap_fs']:g} fs before each: no {what} left; lower these, or run longer AIMD (aimd.steps)"
    )


def split_blocks(
    frames,
    test_fraction: float = 0.2,
    valid_fraction: float = 0.1,
    gap_fs: float = 500.0,
    equilibration_fs: float = 0.0,
    test_runs=(),
) -> dict:
    """Per run, contiguous time blocks: training pool | gap | validation | gap | test.

    All lengths are MD time (``info['time']``, fs), so the split does not depend on the time
    step or on how often frames were written. Fractions are of the run's time after
    ``equilibration_fs``. The gaps exceed the correlation time of the vibrations (a Cd-Se
    optical phonon period is about 160 fs), so no validation frame lies within ``gap_fs``
    of a pool frame and no test frame within ``gap_fs`` of a validation frame.

    ``test_runs``: run labels of independent AIMD runs (another seed) that are the test set
    on their own; the other runs then end with their validation block. An independent run
    starts from the same relaxed structure as the others, so its first ``gap_fs`` after
    equilibration are dropped too.

    Returns indices ``pool``, ``valid`` (the whole validation blocks), ``test``, and per run
    the time range [first, last] of each block (``blocks``).
    """
    p = {
        "test_fraction": test_fraction,
        "valid_fraction": valid_fraction,
        "gap_fs": gap_fs,
        "equilibration_fs": equilibration_fs,
    }
    by_run = defaultdict(list)
    for i, a in enumerate(frames):
        by_run[str(a.info.get("run", "run"))].append(i)
    test_runs = {str(r) for r in test_runs}
    missing = sorted(test_runs - set(by_run))
    if missing:
        raise SelectionError(
            f"config error at aimd.test_seed: the data set has no frames of the independent "
            f"test run(s) {', '.join(missing)}"
        )
    if test_runs and not set(by_run) - test_runs:
        raise SelectionError(
            "config error at aimd.test_seed: every run of the data set is a test run; nothing is left to train on"
        )
    eps = 1e-6  # fs: times are sums of float time steps
    pool, valid, test, blocks = [], [], [], {}
    for run, idx in by_run.items():
        times = {i: _time(frames, i, run) for i in idx}
        idx = sorted(idx, key=times.get)
        t0 = times[idx[0]]
        start = equilibration_fs + (gap_fs if run in test_runs else 0.0)
        idx = [i for i in idx if times[i] - t0 >= start - eps]
        if not idx:
            what = "test frame of the independent run" if run in test_runs else "frame"
            raise SelectionError(
                f"config error at selection.equilibration_fs: run {run} has no {what} after "
                f"{start:g} fs (equilibration{' + gap_fs' if run in test_runs else ''})"
            )
        t = np.array([times[i] for i in idx])
        dt = float(np.median(np.diff(t))) if len(t) > 1 else 0.0
        span = float(t[-1] - t[0] + dt)  # n frames stand for n spacings of time
        if run in test_runs:
            test += idx
            blocks[run] = {"role": "test", "test_fs": [float(t[0]), float(t[-1])]}
            continue
        if test_runs:
            is_test = np.zeros(len(t), dtype=bool)
            valid_end = t[-1] + dt
        else:
            is_test = t >= t[0] + (1.0 - test_fraction) * span - eps
            is_test[-1] = True  # at least the final frame
            valid_end = t[is_test][0] - gap_fs
        # strictly before: a frame exactly gap_fs from the next block is within gap_fs of it
        cand = ~is_test & (t < valid_end - eps)
        if not cand.any():
            raise _block_error(run, "validation frame", span, p)
        is_valid = cand & (t >= t[cand][-1] + dt - valid_fraction * span - eps)
        is_valid[np.flatnonzero(cand)[-1]] = True  # at least one frame
        is_pool = t < t[is_valid][0] - gap_fs - eps
        if not is_pool.any():
            raise _block_error(run, "training frame", span, p)
        pool += [i for i, k in zip(idx, is_pool) if k]
        valid += [i for i, k in zip(idx, is_valid) if k]
        test += [i for i, k in zip(idx, is_test) if k]
        blocks[run] = {
            "role": "train",
            "pool_fs": [float(t[is_pool][0]), float(t[is_pool][-1])],
            "valid_fs": [float(t[is_valid][0]), float(t[is_valid][-1])],
        }
        if is_test.any():
            blocks[run]["test_fs"] = [float(t[is_test][0]), float(t[is_test][-1])]
    # valid stays in run and time order: validation frames are picked evenly along it
    return {"pool": sorted(pool), "valid": valid, "test": sorted(test), "blocks": blocks}


# --- splits of frames that are no trajectory (imported curated sets) ----------------------

#: what each split can and cannot promise, for selection.json and the report
SPLIT_NOTES = {
    "time": "per run, contiguous time blocks with gap_fs between them: no held-out frame lies within "
    "gap_fs of MD time of a frame of another block",
    "file": "whole source files held out: no held-out frame comes from a file a training frame comes from; "
    "it cannot promise more than the files do (files cut from one trajectory can still hold near "
    "neighbours of each other's frames)",
    "clusters": "whole k-means clusters in descriptor space held out: held-out frames lie in regions of "
    "configuration space with no training frame of their own cluster; it cannot promise that a held-out "
    "frame is no near neighbour of a training frame across a cluster boundary, nor tell MD time apart "
    "(the frames carry none), and the test set is deliberately unlike the training set, so its errors "
    "are those of a mild extrapolation",
}


def split_kind(frames, sel: dict) -> str:
    """selection.split resolved: time where every frame has MD time (auto), else file with 3 or
    more runs (source files), else clusters."""
    kind = sel.get("split", "auto")
    if kind != "auto":
        return kind
    if all("time" in a.info for a in frames):
        return "time"
    runs = {str(a.info.get("run", "run")) for a in frames}
    return "file" if len(runs) >= 3 else "clusters"


def split_groups(labels, test_fraction: float, valid_fraction: float, seed: int = 0, what: str = "group") -> dict:
    """Whole groups (``labels``, one per frame) held out: in a seeded random order, groups go to
    test until test_fraction of the frames are there, then to validation until valid_fraction
    are; the rest is the training pool. At least one group each."""
    labels = [str(x) for x in labels]
    groups: dict[str, list[int]] = defaultdict(list)
    for i, lab in enumerate(labels):
        groups[lab].append(i)
    if len(groups) < 3:
        raise SelectionError(
            f"selection.split: {len(groups)} {what}(s); whole {what}s are held out for test and validation, "
            "so 3 or more are needed"
        )
    order = sorted(groups)
    np.random.default_rng(seed).shuffle(order)
    n = len(labels)
    test, valid, pool, blocks = [], [], [], {}
    for g in order:
        if not test or len(test) < test_fraction * n:
            test += groups[g]
            blocks[g] = {"role": "test", "frames": len(groups[g])}
        elif not valid or len(valid) < valid_fraction * n:
            valid += groups[g]
            blocks[g] = {"role": "valid", "frames": len(groups[g])}
        else:
            pool += groups[g]
            blocks[g] = {"role": "train", "frames": len(groups[g])}
    if not pool:
        raise SelectionError(
            f"selection.split: no {what} left for the training pool after test ({len(test)} frames) and "
            f"validation ({len(valid)} frames); lower selection.test_fraction/valid_fraction"
            + (" or raise selection.split_clusters" if what == "cluster" else "")
        )
    return {"pool": sorted(pool), "valid": sorted(valid), "test": sorted(test), "blocks": blocks}


def cluster_labels(X, n_clusters: int, seed: int = 0) -> np.ndarray:
    """k-means labels of the rows of ``X`` (standardized descriptors), seeded."""
    from sklearn.cluster import KMeans

    n_clusters = min(n_clusters, len(X))
    return KMeans(n_clusters=n_clusters, random_state=seed, n_init=10).fit_predict(np.asarray(X))


# --- methods in descriptor space ---------------------------------------------------------


def fps(X, n: int, start=None, weights=None, block: int = 32) -> list[int]:
    """Farthest point sampling: ``n`` row indices of ``X``, each the row farthest (Euclidean)
    from those already chosen. ``start``: first row(s); default the row farthest from the mean.
    ``weights`` (>0, one per row) multiply the distance when choosing, favouring heavy rows.

    Exact, but lazy: every row's squared distance to the chosen rows is brought up to date
    only every ``block`` picks, with one matrix-matrix product (fast) instead of one
    matrix-vector product per pick (memory-bound). Between updates the stale value is an
    upper bound, so walking the rows in order of it and refreshing just those that could
    still win finds the same row as the plain algorithm. Our own code rather than
    ``skmatter.sample_selection.FPS`` because benchmarks/fps.py measures it faster, with the
    same indices from the same start: 1000 of 10^5 x 200 random descriptors in 13.0 s
    against 73.6 s (5.7x; a busy 2-core machine, so the times are noisy).
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    m = len(X)
    if n > m:
        raise SelectionError(f"cannot select {n} frames from a pool of {m}")
    if n <= 0:
        return []
    sq = np.einsum("ij,ij->i", X, X)
    if start is None:
        c = X - X.mean(axis=0)
        start = int(np.argmax(np.einsum("ij,ij->i", c, c)))
    chosen = [int(i) for i in np.atleast_1d(start)][:n]
    w2 = np.ones(m) if weights is None else np.asarray(weights, dtype=np.float64) ** 2
    mind = np.full(m, np.inf)  # squared distance to the chosen rows, up to the last sync
    pending = list(chosen)  # chosen since the last sync

    def sync():
        nonlocal order, pending
        if pending:
            d = X @ X[pending].T
            d *= -2.0
            d += sq[:, None]
            d += sq[pending][None, :]
            np.minimum(mind, d.min(axis=1), out=mind)
            mind[chosen] = -1.0  # never again
            pending = []
        order = np.argsort(-(mind * w2), kind="stable")

    order = None
    sync()
    chunk = 64
    while len(chosen) < n:
        best, best_val, walked = -1, -np.inf, 0
        P = X[pending] if pending else None
        for pos in range(0, m, chunk):
            rows = order[pos : pos + chunk]
            bound = mind[rows] * w2[rows]
            # sorted by the bound at the last sync (rows chosen since are -1); equal bounds may
            # still tie, and ties go to the lowest row, as np.argmax does in the plain algorithm
            if bound.max() < best_val:
                break
            if P is not None:
                d = sq[rows, None] + sq[pending][None, :] - 2.0 * (X[rows] @ P.T)
                vals = np.minimum(mind[rows], d.min(axis=1)) * w2[rows]
            else:
                vals = bound
            vals[mind[rows] < 0] = -1.0
            top = vals.max()
            j = int(rows[vals == top].min())
            if top > best_val or (top == best_val and j < best):
                best, best_val = j, float(top)
            walked += len(rows)
        if best_val <= 0:  # only copies of chosen rows are left: take the next unchosen ones
            rest = np.setdiff1d(np.arange(m), chosen)[: n - len(chosen)]
            chosen += [int(j) for j in rest]
            break
        chosen.append(best)
        pending.append(best)
        mind[best] = -1.0
        # early on a new pick changes many rows and the walk gets long: sync sooner
        if len(pending) >= block or walked > max(4 * chunk, m // 16):
            sync()
    return chosen[:n]


def _reduce(X, n_components: int, seed: int = 0):
    """The first principal components of X (an orthogonal projection: distances only shrink)."""
    from sklearn.decomposition import PCA

    k = max(1, min(n_components, X.shape[0], X.shape[1]))
    if k >= X.shape[1]:
        return X - X.mean(axis=0)
    return PCA(n_components=k, random_state=seed).fit_transform(X)


def near_duplicates(X, tolerance: float) -> np.ndarray:
    """Boolean mask of rows to keep: a row within ``tolerance`` of an earlier kept row goes.

    Distance is the RMS over features of the difference (in the units of X; standardized
    descriptors give standard deviations). Candidate pairs come from a k-d tree in the
    first 10 principal components (a projection never lengthens a distance, so no pair is
    missed) and are checked in the full space.
    """
    from scipy.spatial import cKDTree

    X = np.asarray(X, dtype=np.float64)
    keep = np.ones(len(X), dtype=bool)
    if tolerance <= 0 or len(X) < 2:
        return keep
    r = tolerance * np.sqrt(X.shape[1])
    pairs = cKDTree(_reduce(X, 10)).query_pairs(r, output_type="ndarray")
    if len(pairs) == 0:
        return keep
    d = np.linalg.norm(X[pairs[:, 0]] - X[pairs[:, 1]], axis=1)
    pairs = np.sort(pairs[d < r], axis=1)
    pairs = pairs[np.lexsort((pairs[:, 0], pairs[:, 1]))]
    for i, j in pairs:  # in order of the later row: it goes if its earlier partner stayed
        if keep[i]:
            keep[j] = False
    return keep


def kmeans_select(X, n: int, seed: int = 0) -> list[int]:
    """k-means with ``n`` clusters; from each cluster its member nearest the centroid.

    Members of different clusters differ, so the picks are distinct; an empty cluster
    (possible with many identical rows) is made up by farthest point sampling.
    """
    from sklearn.cluster import KMeans, MiniBatchKMeans

    X = np.asarray(X, dtype=np.float64)
    if n >= len(X):
        return list(range(len(X)))
    # full k-means is O(N n) per iteration: mini-batches beyond 2*10^4 frames
    km = (
        KMeans(n_clusters=n, n_init=1, random_state=seed)
        if len(X) <= 20000
        else MiniBatchKMeans(n_clusters=n, n_init=3, batch_size=4096, random_state=seed)
    )
    labels = km.fit_predict(X)
    chosen = []
    for c, centre in enumerate(km.cluster_centers_):
        members = np.flatnonzero(labels == c)
        if len(members):
            chosen.append(int(members[np.argmin(np.linalg.norm(X[members] - centre, axis=1))]))
    if len(chosen) < n:
        chosen = fps(X, n, start=chosen)
    return sorted(chosen)


def auto_eps(Y, min_samples: int) -> float:
    """DBSCAN radius from the k-distance curve: the 90th percentile of each point's distance
    to its ``min_samples``-th neighbour, so that nine in ten frames are core points."""
    from sklearn.neighbors import NearestNeighbors

    k = min(min_samples, len(Y) - 1)
    dist, _ = NearestNeighbors(n_neighbors=k + 1).fit(Y).kneighbors(Y)
    eps = float(np.quantile(dist[:, k], 0.9))
    return eps if eps > 0 else 1e-12


def dbscan_labels(X, eps="auto", min_samples: int = 5, n_components: int = 10, seed: int = 0):
    """Basins: DBSCAN labels (-1 = noise) in the first ``n_components`` principal components.

    The seed study clustered a t-SNE map; t-SNE distorts densities and does not scale to
    10^5 frames, so we cluster the leading principal components instead (the map shows the
    same labels).
    """
    from sklearn.cluster import DBSCAN

    Y = _reduce(np.asarray(X, dtype=np.float64), n_components, seed)
    if len(Y) < 2:
        return np.zeros(len(Y), dtype=int), 0.0
    eps = auto_eps(Y, min_samples) if eps == "auto" else float(eps)
    return DBSCAN(eps=eps, min_samples=min_samples).fit_predict(Y), eps


def proportional_quota(sizes, n: int) -> list[int]:
    """Split ``n`` over groups in proportion to ``sizes`` (largest remainder), never above a size."""
    sizes = np.asarray(sizes, dtype=np.int64)
    exact = n * sizes / sizes.sum()
    quota = np.floor(exact).astype(int)
    order = np.argsort(-(exact - quota), kind="stable")
    for g in order[: n - quota.sum()]:
        quota[g] += 1
    return [int(q) for q in quota]


def dbscan_select(X, n: int, seed: int = 0, eps="auto", min_samples: int = 5, n_components: int = 10) -> list[int]:
    """Frames spread over DBSCAN basins in proportion to their size (noise is one more
    group), drawn at random (seeded) within each basin: stratified sampling of basins."""
    labels, _ = dbscan_labels(X, eps, min_samples, n_components, seed)
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(labels == g) for g in np.unique(labels)]
    chosen = []
    for members, q in zip(groups, proportional_quota([len(g) for g in groups], n)):
        chosen += [int(i) for i in rng.choice(members, size=q, replace=False)]
    return sorted(chosen)


def force_weights(frames, exponent: float) -> np.ndarray:
    """Per-frame weight (RMS force / mean RMS force) ** exponent; 0 gives equal weights."""
    rms = np.array([np.sqrt(np.mean(a.get_forces() ** 2)) for a in frames], dtype=np.float64)
    rel = rms / rms.mean() if rms.mean() > 0 else np.ones_like(rms)
    return np.maximum(rel, 1e-12) ** exponent


# --- selection from the pool ---------------------------------------------------------------


def select(pool: list[int], n: int, method: str, seed: int = 0, X=None, weights=None, options=None) -> list[int]:
    """Pick ``n`` distinct indices from ``pool`` by ``method``.

    ``X``: descriptor rows of the pool frames (row k belongs to ``pool[k]``), standardized;
    needed by fps, kmeans and dbscan. ``weights``: per pool frame, for fps.
    ``options``: the ``selection`` config block (dbscan settings).
    """
    pool = list(pool)
    if n > len(pool):
        raise SelectionError(f"cannot select {n} frames from a pool of {len(pool)}")
    if method == "random":
        rng = np.random.default_rng(seed)
        return sorted(int(i) for i in rng.choice(pool, size=n, replace=False))
    if method == "stride":
        pos = np.linspace(0, len(pool) - 1, n).round().astype(int)
        return [pool[p] for p in pos]
    if method in DESCRIPTOR_METHODS:
        if X is None or len(X) != len(pool):
            raise SelectionError(f"selection.method {method!r} needs one descriptor row per pool frame")
        if method == "fps":
            rows = fps(X, n, weights=weights)
        elif method == "kmeans":
            rows = kmeans_select(X, n, seed)
        else:
            d = (options or {}).get("dbscan", {})
            rows = dbscan_select(X, n, seed, d.get("eps", "auto"), d.get("min_samples", 5), d.get("n_components", 10))
        out = sorted(pool[r] for r in rows)
        assert len(set(out)) == n
        return out
    raise SelectionError(f"selection.method {method!r} unknown; choose from {', '.join(METHODS)}")


def needs_descriptors(sel: dict) -> bool:
    return sel["method"] in DESCRIPTOR_METHODS or sel.get("dedupe_tolerance", 0) > 0


#: a warning when more than this fraction of a run's held-out frames lie outside the potential
#: energy range of its pool. Measured on CP2K itself (GFN1-xTB MD of Cd68Se55Cl26 at 300 K from
#: an AIMD frame, 400 fs after 50): a pool of its first 70 % leaves 3 % of the rest outside, a
#: pool of its first half 56 % (its energy still fell 0.6 eV over the first 150 fs)
BEYOND_POOL_WARN = 0.5


def held_out_beyond_pool(frames, pool, held_out) -> dict:
    """Per run, the fraction of ``held_out`` frames whose potential energy per atom lies outside
    the range of that run's ``pool`` frames, and the largest distance beyond it (meV/atom).
    In a time split the pool is the run's first block: a run still equilibrating after
    selection.equilibration_fs (a dot warming from its minimum, a surface rearranging) puts
    every held-out frame above the pool, and the models then learn a state that ML-MD never
    visits. Runs with no pool or no held-out frame are left out."""

    def by_run(idx):
        out = defaultdict(list)
        for i in idx:
            calc = frames[i].calc
            energy = calc.results.get("energy") if calc is not None else None
            if energy is not None:
                out[frames[i].info.get("run", "run")].append(float(energy) / len(frames[i]))
        return out

    pool_e, held_e = by_run(pool), by_run(held_out)
    rows = {}
    for run in sorted(set(pool_e) & set(held_e)):
        lo, hi = min(pool_e[run]), max(pool_e[run])
        e = np.asarray(held_e[run])
        beyond = np.maximum(e - hi, lo - e).clip(min=0.0)
        rows[str(run)] = {
            "fraction": float(np.mean(beyond > 0)),
            "max_meV_per_atom": 1e3 * float(beyond.max()),
            "held_out_mean_minus_pool_mean_meV_per_atom": 1e3 * float(e.mean() - np.mean(pool_e[run])),
        }
    return rows


def split_and_select(frames, sel: dict, descriptors=None, test_runs=()) -> dict:
    """Indices of train, valid and test frames following the ``selection`` config block.

    ``descriptors``: one row per frame (e.g. a memory map of the cached descriptors);
    computed here from ``frames`` when the method needs them and none are given.
    ``test_runs``: labels of independent AIMD runs that form the test set (see
    :func:`split_blocks`).
    """
    kind = split_kind(frames, sel)

    def all_descriptors():
        nonlocal descriptors
        if descriptors is None:
            from . import descriptors as qdesc

            descriptors = qdesc.compute(frames, sel["descriptor"])
        if len(descriptors) != len(frames):
            raise SelectionError(
                f"{len(descriptors)} descriptor rows for {len(frames)} frames; recompute the descriptors"
            )
        return descriptors

    if kind == "time":
        split = split_blocks(
            frames, sel["test_fraction"], sel["valid_fraction"], sel["gap_fs"], sel["equilibration_fs"], test_runs
        )
    elif kind == "file":
        runs = [a.info.get("run", "run") for a in frames]
        split = split_groups(runs, sel["test_fraction"], sel["valid_fraction"], sel["seed"], what="source file")
    else:
        from .descriptors import feature_blocks, frame_species, standardize

        Xall = standardize(np.asarray(all_descriptors()), feature_blocks(frame_species(frames), sel["descriptor"]))
        labels = cluster_labels(Xall, sel.get("split_clusters", 10), sel["seed"])
        split = split_groups(
            [f"cluster {k}" for k in labels], sel["test_fraction"], sel["valid_fraction"], sel["seed"], what="cluster"
        )
    log.info("selection: held-out split by %s (%s)", kind, SPLIT_NOTES[kind])
    pool, test, block = split["pool"], split["test"], split["valid"]
    beyond = held_out_beyond_pool(frames, pool, sorted(set(test) | set(block))) if kind == "time" else {}
    for run, row in beyond.items():
        if row["fraction"] > BEYOND_POOL_WARN:
            log.warning(
                "selection: run %s: %.0f%% of its held-out frames lie outside the potential energy range of its "
                "training pool (up to %.1f meV/atom; held-out mean %+.1f meV/atom from the pool's): the run still "
                "drifts after selection.equilibration_fs=%g fs, and the models learn a state ML-MD will not "
                "visit. Raise selection.equilibration_fs past the drift, or run a longer AIMD",
                run,
                100 * row["fraction"],
                row["max_meV_per_atom"],
                row["held_out_mean_minus_pool_mean_meV_per_atom"],
                sel["equilibration_fs"],
            )
    X = None
    n_near = 0
    if needs_descriptors(sel):
        descriptors = all_descriptors()
        from .descriptors import feature_blocks, frame_species, standardize

        X = standardize(np.asarray(descriptors)[pool], feature_blocks(frame_species(frames), sel["descriptor"]))
        keep = near_duplicates(X, sel.get("dedupe_tolerance", 0.0))
        n_near = int((~keep).sum())
        if n_near:
            log.info("selection: %d near-duplicate pool frame(s) within %g dropped", n_near, sel["dedupe_tolerance"])
            pool = [p for p, k in zip(pool, keep) if k]
            X = X[keep]
    n_train, n_valid = sel["n_train"], sel["n_valid"]
    if n_train > len(pool):
        log.warning(
            "selection: the training pool has %d frames, fewer than n_train=%d; using all of them", len(pool), n_train
        )
        n_train = len(pool)
    if n_valid > len(block):
        log.warning(
            "selection: the validation blocks have %d frames, fewer than n_valid=%d; using all of them",
            len(block),
            n_valid,
        )
        n_valid = len(block)
    weights = None
    if sel["method"] == "fps" and sel.get("fps_force_weight", 0) > 0:
        weights = force_weights([frames[i] for i in pool], sel["fps_force_weight"])
    train = select(pool, n_train, sel["method"], sel["seed"], X=X, weights=weights, options=sel)
    # evenly along the blocks (in run and time order): every run and all of each block
    valid = sorted(select(block, n_valid, "stride"))
    assert not (set(train) & set(test)) and not (set(valid) & set(test)) and not (set(train) & set(valid))
    return {
        "pool": pool,
        "train": train,
        "valid": valid,
        "test": test,
        "near_duplicates": n_near,
        "valid_block": block,
        "blocks": split["blocks"],
        "split": {"kind": kind, "note": SPLIT_NOTES[kind]},
        "held_out_beyond_pool": beyond,
    }
