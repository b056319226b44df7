"""When an ML-MD run is unstable, as opposed to structurally imperfect.

Two different things, with two names (the report keeps them apart):

- **unstable** (binary, the same criteria at every temperature, stress temperatures included):
  a non-finite energy or position, a failing calculator, an atom leaving, a collapse (those
  are :func:`qdff.validation.mlmd.check_frame`), a temperature blow-up (the temperature above
  :data:`BLOWUP_FACTOR` x the target for ``break_fs``), or the gross bond criterion held for
  ``break_fs`` (default 200 fs, about one and a half Cd-Se vibrations): by default
  (``mlmd.bond_criterion: undercoordinated``, :class:`Undercoordinated`) an atom with fewer
  neighbours within the **break distances** than any atom of its element has in any AIMD
  frame; or (``stretched``, :class:`StretchedBonds`) any bond of the start frame beyond its
  break distance;
- **structural fidelity** (graded, never called instability): bonds broken and formed relative
  to the start frame, bond-change rates, coordination numbers, pair-distance distributions, each
  beside the AIMD's own values (:mod:`qdff.validation.fidelity`).

The break distance of an element pair (:func:`break_distances`) is the first minimum after
the first peak of that pair's distance distribution in the AIMD frames: a bond that goes past
it has left the first shell. A bond that flickers across it and back (a vibration, or the
tail of the distribution) is no break; one that stays beyond it for ``break_fs`` is.

Why the coordination and not any broken bond: measured on 2026-12-06 with
benchmarks/null_test.py on the demo's Cd16Se13Cl6 (GFN1-xTB, 10 seeds of 400 steps at 300 and
500 K), CP2K's own MD broke a surface Cd-Se bond of the start frame for good in 5 of 10 seeds
at 300 K and 2 of 10 at 500 K (the "stretched" criterion: 7 of 20 runs unstable); no atom fell
below its element's least AIMD coordination in any of the 20. A surface bond that breaks while
its atoms stay as coordinated as the AIMD's own is this dot's dynamics; its rate is structural
fidelity. Why not the criterion before that (more bonds changed than the AIMD ever shows,
relative to a start frame, at three checks 10 steps apart): CP2K's own xTB MD of the Cd6Se6
demo failed it in 4 of 10 seeds at 300 K and at 600 K (2026-12-05). A check the reference
method fails is broken.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.spatial.distance import pdist

from ..data.dataset import evenly_spaced

#: unstable when the temperature stays above this times the target for ``break_fs``: for the
#: 12-atom demo cluster (30 degrees of freedom) the relative spread of the kinetic temperature is
#: about 26 %, so 3x held that long is a blow-up, not a fluctuation (a short spike, from an
#: exothermic rearrangement, the thermostat takes back)
BLOWUP_FACTOR = 3.0
#: histogram bin (A) and smoothing (bins) of the pair-distance distributions
BIN_A = 0.02
SMOOTH_BINS = 4
#: the AIMD frames that the break distances and the coordination floor come from, evenly spaced:
#: a long AIMD costs a check's set-up no more than this many. Thinned here, in the functions that
#: take AIMD frames, so that every caller (the recorder's verdict, the benchmarks that recompute
#: it from recorded frames) gets the same floor: a floor from more frames can only be lower
BOND_REFERENCE_FRAMES = 500


def pair_name(a: str, b: str) -> str:
    return "-".join(sorted((a, b)))


def pair_index(symbols):
    """Element-pair name of every atom pair, in scipy's condensed (pdist) order: (i, j, names)."""
    s = np.asarray(symbols)
    i, j = np.triu_indices(len(s), k=1)
    return i, j, np.array([pair_name(x, y) for x, y in zip(s[i], s[j])])


def first_minimum(distances, r_max: float = 8.0) -> tuple[float, float] | None:
    """(first peak, first minimum after it) of a distance distribution (A), or None when it
    has no peak. The histogram (``BIN_A`` bins, Gaussian smoothing of ``SMOOTH_BINS``) is
    searched for its first local maximum of at least a quarter of the highest, then for the
    lowest point between it and the next such maximum (or the largest distance seen). Where
    the distribution is flat at its lowest (within 1 % of the peak: a gap between two shells
    that no frame crosses, as in a short or cold run), the minimum is the middle of that flat
    stretch, not its start: the start is only where the first peak's tail ends."""
    d = np.asarray(distances, dtype=float)
    d = d[np.isfinite(d) & (d < r_max)]
    if d.size < 10:
        return None
    edges = np.arange(0.0, r_max + BIN_A, BIN_A)
    h, _ = np.histogram(d, edges)
    g = gaussian_filter1d(h.astype(float), SMOOTH_BINS)
    centres = 0.5 * (edges[:-1] + edges[1:])
    floor = 0.25 * g.max()
    peaks = [k for k in range(1, len(g) - 1) if g[k] >= g[k - 1] and g[k] > g[k + 1] and g[k] >= floor]
    if not peaks:
        return None
    p = peaks[0]
    last = min(int(np.searchsorted(centres, d.max())), len(g) - 1)
    nxt = next((k for k in peaks[1:]), last)
    seg = g[p : nxt + 1]
    low = seg <= seg.min() + 0.01 * g[p]
    first = int(np.argmax(low))
    end = first + int(np.argmin(low[first:])) - 1 if not low[first:].all() else len(seg) - 1
    m = p + (first + end) // 2
    return float(centres[p]), float(centres[m])


def break_distances(frames, pairs, r_max: float = 8.0) -> dict[str, float]:
    """Per element pair of ``pairs`` ("Cd-Se", ...): the first minimum after the first peak of
    that pair's distance distribution over ``frames`` (the AIMD frames at the temperature),
    in A, from at most :data:`BOND_REFERENCE_FRAMES` of them. Pairs whose distribution shows no
    minimum are left out (never judged)."""
    frames = evenly_spaced(frames, BOND_REFERENCE_FRAMES)
    symbols = frames[0].get_chemical_symbols()
    _, _, names = pair_index(symbols)
    d_all = np.stack([pdist(a.positions) for a in frames])
    out = {}
    for name in pairs:
        m = names == name
        if not m.any():
            continue
        res = first_minimum(d_all[:, m].ravel(), r_max)
        if res is not None and res[1] > res[0]:
            out[name] = res[1]
    return out


class Persistence:
    """Since when each of n conditions has held, over consecutive recorded frames: the one
    bookkeeping behind every "for at least ``break_fs``" criterion (:class:`StretchedBonds`,
    :class:`Undercoordinated`, and the bond changes of
    :func:`qdff.validation.fidelity.persistent_onsets`), so that a condition that flickers
    off and on again starts over each time."""

    def __init__(self, n: int):
        self.since = np.full(n, np.nan)  # when each condition started to hold; nan while it does not

    def update(self, held: np.ndarray, now: float) -> np.ndarray:
        """Record this frame's conditions (bool, one each) at time ``now``: how long each has
        held (0 at the frame it starts), nan where it does not hold."""
        self.since[~held] = np.nan
        self.since[held & np.isnan(self.since)] = now
        return now - self.since

    def longest(self, held: np.ndarray, now: float) -> tuple[int, float] | None:
        """:meth:`update`, then the condition held longest (the first of equals) and for how
        long, or None when none holds."""
        lasted = self.update(held, now)
        if not held.any():
            return None
        k = int(np.nanargmax(np.where(held, lasted, -np.inf)))
        return k, float(lasted[k])

    def reset(self, which: np.ndarray) -> None:
        """Start these conditions over (their reference changed: a confirmed bond change)."""
        self.since[which] = np.nan


class StretchedBonds:
    """The stricter gross bond criterion (``mlmd.bond_criterion: stretched``; always recorded as
    the longest stretch): a bond of the start frame beyond its pair's break distance for
    at least ``break_fs`` of consecutive recorded frames."""

    def __init__(self, symbols, start_positions, cutoffs: dict[str, float], breaks: dict[str, float], break_fs: float):
        self.symbols = np.asarray(symbols)
        self.i, self.j, names = pair_index(symbols)
        cut = np.array([cutoffs.get(n, 0.0) for n in names])
        brk = np.array([breaks.get(n, np.inf) for n in names])
        start = pdist(np.asarray(start_positions)) < cut
        self.pairs = np.flatnonzero(start & np.isfinite(brk))
        self.limit = brk[self.pairs]
        self.names = names[self.pairs]
        self.breaks = {str(k): float(v) for k, v in breaks.items()}
        self.break_fs = float(break_fs)
        self.beyond = Persistence(len(self.pairs))  # since when each bond is beyond its limit
        self.longest_fs = 0.0  # the longest stretch seen, bonds that came back included

    def __call__(self, positions, time_fs: float) -> str | None:
        d = pdist(np.asarray(positions))[self.pairs]
        hit = self.beyond.longest(d > self.limit, time_fs)
        if hit is None:
            return None
        k, lasted = hit
        self.longest_fs = max(self.longest_fs, lasted)
        if lasted >= self.break_fs:
            p = self.pairs[k]
            i, j = self.i[p], self.j[p]
            return (
                f"bond {self.symbols[i]} {i} - {self.symbols[j]} {j} beyond its break distance for "
                f"{lasted:.0f} fs (now {d[k]:.2f} A; {self.names[k]} break distance {self.limit[k]:.2f} A, "
                f"the first minimum of the AIMD pair-distance distribution)"
            )
        return None


def degrees_of_freedom(n_atoms: int, thermostat: str) -> int:
    """Kinetic degrees of freedom of a free cluster started without net momentum or rotation:
    3N - 6 under CSVR, which rescales all velocities together and so keeps both zero (CP2K's
    count for its AIMD: the temperature it thermostats and reports), 3N - 3 under Langevin,
    whose random forces spin the cluster. ASE's FixCom counts 3N - 3 in both cases, which under
    CSVR held a model's run 3/(3N - 6) hotter in kinetic energy than the AIMD (10 % for Cd6Se6,
    found when the reference ran through this protocol)."""
    return max(3 * n_atoms - (6 if thermostat == "csvr" else 3), 1)


def coordination_within(positions, symbols, breaks: dict[str, float]) -> np.ndarray:
    """Neighbours of every atom closer than the break distance of their element pair (pairs
    without a break distance never count)."""
    i, j, names = pair_index(symbols)
    limit = np.array([breaks.get(n, 0.0) for n in names])
    bonded = pdist(np.asarray(positions)) < limit
    cn = np.zeros(len(symbols), dtype=int)
    np.add.at(cn, i[bonded], 1)
    np.add.at(cn, j[bonded], 1)
    return cn


class Undercoordinated:
    """The default gross bond criterion (``mlmd.bond_criterion: undercoordinated``): an atom with
    fewer neighbours within the break distances than any atom of its element has in any AIMD
    frame (at most :data:`BOND_REFERENCE_FRAMES` of them, evenly spaced), for at least
    ``break_fs``. A surface bond that breaks while its atoms stay as coordinated as the AIMD's own
    atoms of that element is dynamics, not a failure."""

    def __init__(self, symbols, breaks: dict[str, float], aimd_frames, break_fs: float):
        self.symbols = np.asarray(symbols)
        self.breaks = dict(breaks)
        aimd_frames = evenly_spaced(aimd_frames, BOND_REFERENCE_FRAMES)
        cn = np.stack([coordination_within(a.positions, self.symbols, self.breaks) for a in aimd_frames])
        self.min_cn = {str(el): int(cn[:, self.symbols == el].min()) for el in set(self.symbols.tolist())}
        self.floor = np.array([self.min_cn[str(s)] for s in self.symbols])
        self.break_fs = float(break_fs)
        self.below = Persistence(len(self.symbols))  # since when each atom is below its floor
        # every episode below the floor however short, and the time watched: the verdict fires on
        # the first episode to last break_fs, a rare event; their rate is what a few seeds of the
        # model and of the reference can be compared by (episode_rate_interval)
        self.episodes, self.frames, self.first_fs, self.last_fs = 0, 0, None, None

    @property
    def observed_fs(self) -> float:
        """The time the judged frames cover: each frame stands for the interval between frames."""
        if self.frames < 2:
            return 0.0
        return (self.last_fs - self.first_fs) * self.frames / (self.frames - 1)

    def __call__(self, positions, time_fs: float) -> str | None:
        cn = coordination_within(positions, self.symbols, self.breaks)
        below = cn < self.floor
        hit = self.below.longest(below, time_fs)
        self.episodes += int(np.count_nonzero(below & (self.below.since == time_fs)))
        self.frames += 1
        self.first_fs = time_fs if self.first_fs is None else self.first_fs
        self.last_fs = time_fs
        if hit is None:
            return None
        k, lasted = hit
        if lasted >= self.break_fs:
            return (
                f"{self.symbols[k]} {k} has {cn[k]} neighbour(s) within the break distances for {lasted:.0f} fs "
                f"(fewer than any {self.symbols[k]} in the AIMD: {self.floor[k]})"
            )
        return None


def undercoordinated_by_seed(traj, aimd_frames, breaks: dict[str, float], break_fs: float) -> dict:
    """:class:`Undercoordinated` over recorded ML-MD frames (``info["seed"]``, ``info["time"]``),
    seed by seed: {seed: the first failure's reason, or None}."""
    out = {}
    for seed in sorted({a.info.get("seed", 0) for a in traj}):
        check = Undercoordinated(traj[0].get_chemical_symbols(), breaks, aimd_frames, break_fs)
        reason = None
        for a in traj:
            if a.info.get("seed", 0) == seed and reason is None:
                reason = check(a.positions, float(a.info["time"]))
        out[seed] = reason
    return out


def undercoordinated_stretches(traj, aimd_frames, breaks: dict[str, float], break_fs: float) -> list[dict]:
    """Every stretch in which an atom of a recorded run (``info["time"]``, one seed, in time
    order) stays below its element's least AIMD coordination (:class:`Undercoordinated`) for at
    least ``break_fs``: the verdict stops at the first; a long run is described by all of them.
    Each: element, atom, from_fs and to_fs (its first and last recorded frame below the floor),
    lasted_fs, least neighbours, ongoing (still below at the last frame)."""
    if not traj:
        return []
    check = Undercoordinated(traj[0].get_chemical_symbols(), breaks, aimd_frames, break_fs)
    open_at: dict[int, dict] = {}  # atom -> its stretch under way
    out = []

    def close(k: int, ongoing: bool) -> None:
        s = open_at.pop(k)
        if s["lasted_fs"] >= check.break_fs:
            out.append(s | {"ongoing": ongoing})

    for a in traj:
        now = float(a.info["time"])
        cn = coordination_within(a.positions, check.symbols, check.breaks)
        below = cn < check.floor
        lasted = check.below.update(below, now)  # the verdict's own bookkeeping: from_fs is its "since"
        for k in [k for k in open_at if not below[k]]:
            close(k, ongoing=False)
        for k in np.flatnonzero(below).tolist():
            s = open_at.setdefault(
                k,
                {
                    "element": str(check.symbols[k]),
                    "atom": k,
                    "from_fs": float(check.below.since[k]),
                    "neighbours_min": int(cn[k]),
                },
            )
            s.update(to_fs=now, lasted_fs=float(lasted[k]), neighbours_min=min(s["neighbours_min"], int(cn[k])))
    for k in list(open_at):
        close(k, ongoing=True)
    return sorted(out, key=lambda s: (s["from_fs"], s["atom"]))


def failure_rate_interval(unstable: int, seeds: int, level: float = 0.95) -> tuple[float, float]:
    """Clopper-Pearson (exact binomial) interval of the failure rate per run from ``unstable`` of
    ``seeds`` runs: what a few seeds can tell. 0 of 3 still allows up to 71 % (95 %); 2 of 6 is
    4-78 %: two models, or a model and the reference, are told apart only by many more seeds."""
    from scipy.stats import binomtest

    if seeds <= 0:
        return float("nan"), float("nan")
    ci = binomtest(int(unstable), int(seeds)).proportion_ci(confidence_level=level, method="exact")
    return float(ci.low), float(ci.high)


def episode_rate_interval(episodes: int, observed_ps: float, level: float = 0.95) -> tuple[float, float]:
    """Exact (Garwood) Poisson interval of a rate per ps from ``episodes`` seen in ``observed_ps``:
    0 in 2 ps still allows 1.8 per ps; 3 in 10 ps is 0.06-0.88. Runs that each pass or fail say
    less: this counts every episode in all the time the seeds ran."""
    from scipy.stats import chi2

    if observed_ps <= 0:
        return float("nan"), float("nan")
    a = 1.0 - level
    lo = chi2.ppf(a / 2, 2 * episodes) / 2 if episodes else 0.0
    return float(lo / observed_ps), float(chi2.ppf(1 - a / 2, 2 * episodes + 2) / 2 / observed_ps)
