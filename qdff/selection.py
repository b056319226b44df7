"""Held-out split by time and selection of training/validation frames.

Neighbouring AIMD frames are nearly identical, so a random split leaks test frames
into training. The held-out test set is the final time block of every run, with a gap
of dropped frames before it, set aside before any selection; selection only ever sees
the earlier part of each run (the training pool).

Selection methods (each returns exactly N distinct pool frames, deterministic under a seed):
random and stride need nothing else; fps, kmeans and dbscan work in the space of the
frames' descriptors (qdff.descriptors), standardized over the pool. Near-duplicates in
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


def split_pool_test(frames, test_fraction: float, gap_frames: int = 0, equilibration_fs: float = 0.0):
    """Indices (pool, test) of ``frames``: per run, the last ``test_fraction`` by time is test."""
    by_run = defaultdict(list)
    for i, a in enumerate(frames):
        by_run[a.info.get("run", "run")].append(i)
    pool, test = [], []
    for run, idx in by_run.items():
        idx = sorted(idx, key=lambda i: frames[i].info.get("time", i))
        t0 = frames[idx[0]].info.get("time", 0.0)
        idx = [i for i in idx if frames[i].info.get("time", 0.0) - t0 >= equilibration_fs]
        n = len(idx)
        n_test = max(1, int(round(test_fraction * n)))
        n_pool = n - n_test - gap_frames
        if n_pool < 1:
            raise SelectionError(
                f"run {run}: {n} frames after equilibration are too few for test_fraction={test_fraction} "
                f"and gap_frames={gap_frames}; run longer AIMD or lower them"
            )
        pool += idx[:n_pool]
        test += idx[n - n_test :]
    return sorted(pool), sorted(test)


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
    km = (KMeans(n_clusters=n, n_init=1, random_state=seed) if len(X) <= 20000
          else MiniBatchKMeans(n_clusters=n, n_init=3, batch_size=4096, random_state=seed))
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


def split_and_select(frames, sel: dict, descriptors=None) -> dict:
    """Indices of train, valid and test frames following the ``selection`` config block.

    ``descriptors``: one row per frame (e.g. a memory map of the cached descriptors);
    computed here from ``frames`` when the method needs them and none are given.
    """
    pool, test = split_pool_test(frames, sel["test_fraction"], sel["gap_frames"], sel["equilibration_fs"])
    X = None
    n_near = 0
    if needs_descriptors(sel):
        if descriptors is None:
            from . import descriptors as qdesc

            descriptors = qdesc.compute(frames, sel["descriptor"])
        if len(descriptors) != len(frames):
            raise SelectionError(f"{len(descriptors)} descriptor rows for {len(frames)} frames; recompute the descriptors")
        from .descriptors import standardize

        X = standardize(np.asarray(descriptors)[pool])
        keep = near_duplicates(X, sel.get("dedupe_tolerance", 0.0))
        n_near = int((~keep).sum())
        if n_near:
            log.info("selection: %d near-duplicate pool frame(s) within %g dropped", n_near, sel["dedupe_tolerance"])
            pool = [p for p, k in zip(pool, keep) if k]
            X = X[keep]
    n_train, n_valid = sel["n_train"], sel["n_valid"]
    if n_train + n_valid > len(pool):
        scale = len(pool) / (n_train + n_valid)
        new_train, new_valid = max(1, int(n_train * scale)), max(1, int(n_valid * scale))
        if new_train + new_valid > len(pool):
            raise SelectionError(f"training pool has only {len(pool)} frames; need at least 2")
        log.warning(
            "selection: pool has %d frames, fewer than n_train+n_valid=%d; using %d train, %d valid",
            len(pool), n_train + n_valid, new_train, new_valid,
        )
        n_train, n_valid = new_train, new_valid
    weights = None
    if sel["method"] == "fps" and sel.get("fps_force_weight", 0) > 0:
        weights = force_weights([frames[i] for i in pool], sel["fps_force_weight"])
    train = select(pool, n_train, sel["method"], sel["seed"], X=X, weights=weights, options=sel)
    rest = sorted(set(pool) - set(train))
    valid = select(rest, n_valid, "random", sel["seed"] + 1)
    assert not (set(train) & set(test)) and not (set(valid) & set(test)) and not (set(train) & set(valid))
    return {"pool": pool, "train": train, "valid": valid, "test": test, "near_duplicates": n_near}
