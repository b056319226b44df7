"""A 2-D map of configuration space: every frame's descriptor embedded in the plane.

t-SNE (after PCA to 50 components) of at most ``max_points`` frames, or the first two
principal components. Frames are coloured by temperature, the selected training frames
and the held-out frames are marked, and DBSCAN basins are shown beside it, as in the
t-SNE/DBSCAN study of nanocluster MD this follows (Calderan et al.). Written as a PNG and
as a self-contained HTML fragment (inline SVG; hovering a point shows run, step,
temperature, role and basin; no script, no network).
"""

from __future__ import annotations

import html
import logging

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..fileio import atomic_open, atomic_path, read_json  # noqa: E402
from ..report.interactive import map_figure  # noqa: E402
from . import descriptors as qdesc  # noqa: E402
from .frames import _reduce, dbscan_labels  # noqa: E402

log = logging.getLogger(__name__)

ROLES = ("pool", "valid", "train", "test")  # drawing order: training frames on top of the pool


def plotted_rows(n: int, max_points: int, always=()) -> np.ndarray:
    """Evenly spread rows (at most ``max_points``) plus every row in ``always``."""
    rows = np.linspace(0, n - 1, min(n, max_points)).round().astype(int)
    return np.union1d(rows, np.asarray(list(always), dtype=int))


def embed(X, method: str = "tsne", perplexity: float = 30.0, seed: int = 0) -> np.ndarray:
    """(n, 2) coordinates of the standardized descriptor rows ``X``."""
    X = np.asarray(X, dtype=np.float64)
    if len(X) < 3:
        return np.c_[np.arange(len(X), dtype=float), np.zeros(len(X))]
    if method == "pca":
        Y = _reduce(X, 2, seed)
        return Y if Y.shape[1] == 2 else np.c_[Y[:, 0], np.zeros(len(Y))]
    if method != "tsne":
        raise ValueError(f"selection.map.method {method!r} unknown; choose tsne or pca")
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    Z = _reduce(X, 50, seed)
    perp = float(min(perplexity, max(1.0, (len(X) - 1) / 3.0 - 1e-6)))
    # one OpenMP thread, as the rule asks for one core: measured on a busy 2-core machine,
    # Barnes-Hut t-SNE of 32 points took 0.4 s with one thread and 44 s with two
    with threadpool_limits(limits=1, user_api="openmp"):
        return TSNE(n_components=2, perplexity=perp, init="pca", random_state=seed).fit_transform(Z)


def roles(keys, summary: dict) -> np.ndarray:
    """Role of every (run, step) row: train, valid, test or pool (neither)."""
    lookup = {}
    for role in ("train", "valid", "test"):
        for run, step in summary.get(f"{role}_steps", []):
            lookup[(str(run), int(step))] = role
    return np.array([lookup.get((str(r), int(s)), "pool") for r, s in keys])


def _colours(temps, runs):
    """Colour per row: by temperature when known, else by run."""
    t = np.array([np.nan if v is None else v for v in temps], dtype=float)
    if np.all(np.isfinite(t)):
        values, label = t, "temperature (K)"
    else:
        names = sorted(set(runs))
        values, label = np.array([names.index(r) for r in runs], dtype=float), "run"
    lo, hi = float(values.min()), float(values.max())
    norm = matplotlib.colors.Normalize(lo, hi if hi > lo else lo + 1)
    return values, norm, label


def plot_png(Y, values, norm, label, role, basins, path, title="") -> None:
    cmap = plt.get_cmap("coolwarm")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8))
    ax = axes[0]
    for r, marker, size, edge in (
        ("pool", "o", 8, "none"),
        ("valid", "o", 8, "none"),
        ("test", "^", 18, "none"),
        ("train", "o", 26, "black"),
    ):
        m = role == r
        if m.any():
            ax.scatter(
                Y[m, 0],
                Y[m, 1],
                c=values[m],
                cmap=cmap,
                norm=norm,
                s=size,
                marker=marker,
                edgecolors=edge,
                linewidths=0.6,
                alpha=0.85 if r == "train" else 0.6,
                label={"pool": "pool", "valid": "validation", "test": "held out", "train": "selected (train)"}[r],
            )
    sm = matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap)
    fig.colorbar(sm, ax=ax, label=label)
    ax.legend(fontsize=8, loc="best")
    ax.set_title(title or "configuration space")
    ax = axes[1]
    labels = sorted(set(basins.tolist()))
    tab = plt.get_cmap("tab10")
    for k, b in enumerate(labels):
        m = basins == b
        colour = "lightgrey" if b < 0 else tab(k % 10)
        ax.scatter(Y[m, 0], Y[m, 1], s=8, color=colour, label="noise" if b < 0 else f"basin {b}")
    ax.legend(fontsize=8, loc="best", ncol=2)
    ax.set_title(f"DBSCAN basins ({sum(1 for b in labels if b >= 0)})")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def html_fragment(Y, values, norm, label, role, basins, keys, temps, width=640, height=460) -> str:
    """A self-contained <figure> with an inline SVG scatter; each point has a hover title."""
    cmap = plt.get_cmap("coolwarm")
    pad = 12
    lo, hi = Y.min(axis=0), Y.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    px = pad + (Y[:, 0] - lo[0]) / span[0] * (width - 2 * pad)
    py = height - pad - (Y[:, 1] - lo[1]) / span[1] * (height - 2 * pad)
    parts = [
        '<figure class="qdff-map">',
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        'role="img" aria-label="configuration-space map" style="background:#fff;border:1px solid #ddd">',
    ]
    order = np.argsort([ROLES.index(r) for r in role], kind="stable")
    for i in order:
        colour = matplotlib.colors.to_hex(cmap(norm(values[i])))
        run, step = keys[i]
        t = temps[i]
        tip = html.escape(
            f"run {run}, step {step}"
            + (f", {t:g} K" if t is not None else "")
            + f", {role[i]}, "
            + ("noise" if basins[i] < 0 else f"basin {basins[i]}")
        )
        x, y = px[i], py[i]
        if role[i] == "test":
            parts.append(
                f'<path d="M{x:.1f},{y - 4:.1f}L{x + 3.5:.1f},{y + 2.5:.1f}L{x - 3.5:.1f},{y + 2.5:.1f}Z" '
                f'fill="{colour}" fill-opacity="0.7"><title>{tip}</title></path>'
            )
        elif role[i] == "train":
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{colour}" stroke="#000" stroke-width="0.8">'
                f"<title>{tip}</title></circle>"
            )
        else:
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}" fill-opacity="0.6">'
                f"<title>{tip}</title></circle>"
            )
    parts.append("</svg>")
    parts.append(
        "<figcaption>Configuration-space map: colour = "
        f"{html.escape(label)} ({norm.vmin:g} to {norm.vmax:g}, blue to red); black-ringed circles = selected "
        "training frames, triangles = held-out frames, small dots = the other frames (not selected, validation blocks and gaps). "
        "Hover a point for its run, step and DBSCAN basin.</figcaption>"
    )
    parts.append("</figure>")
    return "\n".join(parts) + "\n"


def write_map(descriptors_npy, selection_json, out_png, out_html, sel: dict) -> dict:
    """Map of all frames of the cached descriptors, marking the split of ``selection_json``."""
    X, meta = qdesc.load(descriptors_npy)
    summary = read_json(selection_json)
    keys = [tuple(k) for k in meta["keys"]]
    role_all = roles(keys, summary)
    p = sel["map"]
    rows = plotted_rows(len(keys), p["max_points"], always=np.flatnonzero(role_all == "train"))
    Xs = qdesc.standardize(np.asarray(X[rows]), qdesc.feature_blocks(meta["species"], meta["params"]))
    Y = embed(Xs, p["method"], p["perplexity"], sel["seed"])
    d = sel["dbscan"]
    basins, eps = dbscan_labels(Xs, d["eps"], d["min_samples"], d["n_components"], sel["seed"])
    keys_r = [keys[i] for i in rows]
    temps = [meta["temperatures"][i] for i in rows]
    role = role_all[rows]
    values, norm, label = _colours(temps, [k[0] for k in keys_r])
    n_basins = int(len(set(basins.tolist()) - {-1}))
    title = f"{p['method']} map of {len(rows)} frames ({meta['params']['kind']} descriptors)"
    plot_png(Y, values, norm, label, role, basins, out_png, title=title)
    with atomic_open(out_html) as fh:
        fh.write(html_fragment(Y, values, norm, label, role, basins, keys_r, temps))
    info = {
        "n_frames": len(keys),
        "n_plotted": int(len(rows)),
        "method": p["method"],
        "n_basins": n_basins,
        "dbscan_eps": eps,
        "noise_fraction": float(np.mean(basins < 0)) if len(basins) else 0.0,
        # the report's interactive map (plotly; zoom, hover)
        "figure": map_figure(
            Y, values, label, role, basins, keys_r, temps, title + "; hover a point for its run, step and DBSCAN basin"
        ),
    }
    log.info("map: %d of %d frames, %d DBSCAN basin(s) -> %s, %s", len(rows), len(keys), n_basins, out_png, out_html)
    return info
