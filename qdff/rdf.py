"""Radial distribution functions of ML-MD against AIMD, per element pair.

The histograms come from MDAnalysis' InterRDF on the non-periodic cluster (no box, so no
minimum image). A free cluster has no bulk density to normalise g(r) by, so each pair's
histogram is normalised to unit area instead; the comparison is then about the shape:
the overlap score of two normalised curves is 1 - (1/2) * integral |g1 - g2| dr, which is
1 for identical distributions and 0 for distributions that do not overlap at all. The
same score between the two halves of the AIMD run is reported beside it: the ceiling that
the AIMD sampling itself allows.
"""
from __future__ import annotations

import itertools
import logging

import numpy as np

log = logging.getLogger(__name__)


def universe(frames):
    """An MDAnalysis Universe (in memory, no box) holding ``frames`` as its trajectory."""
    import MDAnalysis as mda
    from MDAnalysis.coordinates.memory import MemoryReader

    symbols = frames[0].get_chemical_symbols()
    if any(a.get_chemical_symbols() != symbols for a in frames):
        raise ValueError("frames for an RDF must all have the same atoms in the same order")
    u = mda.Universe.empty(len(symbols), trajectory=False)
    u.add_TopologyAttr("type", symbols)
    u.add_TopologyAttr("name", symbols)
    coords = np.stack([a.positions for a in frames]).astype(np.float32)
    u.load_new(coords, format=MemoryReader, dimensions=None)
    return u


def element_pairs(symbols) -> list[tuple[str, str]]:
    elements = sorted(set(symbols))
    return list(itertools.combinations_with_replacement(elements, 2))


def pair_rdfs(frames, r_max: float, bins: int) -> dict:
    """Unit-area g(r) per element pair: {"edges": [...], "Cd-Se": [...], ...}."""
    from MDAnalysis.analysis.rdf import InterRDF

    u = universe(frames)
    out = {}
    for a, b in element_pairs(frames[0].get_chemical_symbols()):
        g1, g2 = u.select_atoms(f"type {a}"), u.select_atoms(f"type {b}")
        # same-element pairs: exclude each atom with itself (distance 0)
        rdf = InterRDF(g1, g2, nbins=bins, range=(0.0, r_max), norm="none",
                       exclusion_block=(1, 1) if a == b else None)
        rdf.run()
        counts = np.asarray(rdf.results.count, dtype=np.float64)
        edges = np.asarray(rdf.results.edges, dtype=np.float64)
        out["edges"] = edges.tolist()
        out[f"{a}-{b}"] = normalised(counts, edges).tolist()
    return out


def normalised(counts, edges) -> np.ndarray:
    total = counts.sum() * (edges[1] - edges[0])
    return counts / total if total > 0 else counts


def overlap(g1, g2, edges) -> float:
    """1 - half the integrated absolute difference of two unit-area curves."""
    dr = float(edges[1] - edges[0])
    return float(1.0 - 0.5 * np.sum(np.abs(np.asarray(g1) - np.asarray(g2))) * dr)


def compare(reference_frames, test_frames, r_max: float, bins: int) -> dict:
    """RDFs of both frame sets and the overlap score per element pair."""
    ref = pair_rdfs(reference_frames, r_max, bins)
    test = pair_rdfs(test_frames, r_max, bins)
    pairs = [k for k in ref if k != "edges"]
    scores = {p: overlap(ref[p], test[p], ref["edges"]) for p in pairs}
    out = {"edges": ref["edges"], "reference": ref, "model": test, "overlap": scores,
           "overlap_min": min(scores.values()), "n_reference_frames": len(reference_frames),
           "n_model_frames": len(test_frames)}
    # What a perfect model could score: the first against the second half of the AIMD
    # frames. Short runs of small clusters are neither long nor ergodic enough for 1.
    h = len(reference_frames) // 2
    if h >= 2:
        first, second = pair_rdfs(reference_frames[:h], r_max, bins), pair_rdfs(reference_frames[h:], r_max, bins)
        halves = {p: overlap(first[p], second[p], ref["edges"]) for p in pairs}
        out.update(reference_halves_overlap=halves, reference_halves_overlap_min=min(halves.values()))
    return out


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_message(text: str, path) -> None:
    """A small figure that says why there is no RDF (so the report has no broken image)."""
    from .fileio import atomic_path

    plt = _pyplot()
    fig = plt.figure(figsize=(6, 1.2))
    fig.text(0.5, 0.5, text, ha="center", va="center", fontsize=10)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def plot(result: dict, title: str, path) -> None:
    from .fileio import atomic_path

    plt = _pyplot()
    pairs = list(result["overlap"])
    edges = np.asarray(result["edges"])
    r = 0.5 * (edges[1:] + edges[:-1])
    fig, axes = plt.subplots(1, len(pairs), figsize=(3.2 * len(pairs), 3.0), squeeze=False)
    for ax, p in zip(axes[0], pairs):
        ax.plot(r, result["reference"][p], "k-", lw=1.2, label="AIMD")
        ax.plot(r, result["model"][p], "C1--", lw=1.2, label="ML-MD")
        halves = result.get("reference_halves_overlap", {}).get(p)
        ax.set_title(f"{p}: overlap {result['overlap'][p]:.2f}" + (f" (AIMD halves {halves:.2f})" if halves else ""),
                     fontsize=8)
        ax.set_xlabel("r [A]")
        ax.set_yticks([])
    axes[0][0].legend(fontsize=8)
    axes[0][0].set_ylabel("g(r), unit area")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
