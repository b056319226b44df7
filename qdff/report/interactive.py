"""Interactive figures of the report: Plotly figure specifications as plain JSON-able dicts
(``{"data": [...], "layout": {...}}``), drawn in the page by plotly.js, which the report
embeds once (from the plotly wheel: no network when the page opens). The PNGs stay for
``snakemake --report`` and for printing.

Point clouds are thinned to a fixed number of points (seeded), so that a 150-atom system with
five backends keeps the page to a few MB; the figure says how many it shows."""

from __future__ import annotations

from pathlib import Path

import numpy as np

MAX_FORCE_POINTS = 4000
MAX_SERIES_POINTS = 2000


def plotly_js() -> str:
    """plotly.min.js, to embed once per page."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def _thin(n: int, k: int, seed: int = 0) -> np.ndarray:
    if n <= k:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


def _r(x, digits=5):
    return np.round(np.asarray(x, dtype=float), digits).tolist()


def predictions(frames, e_pred, f_pred) -> dict:
    """What the interactive parity plot needs: energies per atom (all frames) and a seeded
    sample of force components, reference and predicted, eV and eV/A."""
    n = np.array([len(a) for a in frames], dtype=float)
    e_ref = np.array([a.get_potential_energy() for a in frames]) / n
    f_ref = np.concatenate([a.get_forces().ravel() for a in frames])
    f_hat = np.concatenate([np.asarray(f).ravel() for f in f_pred])
    idx = _thin(len(f_ref), MAX_FORCE_POINTS)
    return {
        "energy_ref_eV_per_atom": _r(e_ref, 7),
        "energy_pred_eV_per_atom": _r(np.asarray(e_pred) / n, 7),
        "force_ref_eV_per_A": _r(f_ref[idx]),
        "force_pred_eV_per_A": _r(f_hat[idx]),
        "force_components_total": int(len(f_ref)),
    }


def parity_figure(pred: dict, backend: str, train_range: dict | None = None) -> dict:
    """Energy-per-atom and force-component parity, side by side, the training range shaded."""
    e_ref = np.asarray(pred["energy_ref_eV_per_atom"])
    offset = float(e_ref.mean())
    e_ref = 1e3 * (e_ref - offset)
    e_hat = 1e3 * (np.asarray(pred["energy_pred_eV_per_atom"]) - offset)
    f_ref, f_hat = np.asarray(pred["force_ref_eV_per_A"]), np.asarray(pred["force_pred_eV_per_A"])
    elo, ehi = float(min(e_ref.min(), e_hat.min())), float(max(e_ref.max(), e_hat.max()))
    flo, fhi = float(min(f_ref.min(), f_hat.min())), float(max(f_ref.max(), f_hat.max()))
    data = [
        {
            "type": "scattergl",
            "mode": "markers",
            "x": _r(e_ref, 3),
            "y": _r(e_hat, 3),
            "name": "energy",
            "marker": {"size": 5, "opacity": 0.7},
            "xaxis": "x",
            "yaxis": "y",
            "hovertemplate": "reference %{x:.2f}<br>predicted %{y:.2f} meV/atom<extra></extra>",
        },
        {
            "type": "scatter",
            "mode": "lines",
            "x": [elo, ehi],
            "y": [elo, ehi],
            "line": {"dash": "dash", "color": "black", "width": 1},
            "showlegend": False,
            "hoverinfo": "skip",
            "xaxis": "x",
            "yaxis": "y",
        },
        {
            "type": "scattergl",
            "mode": "markers",
            "x": _r(f_ref, 4),
            "y": _r(f_hat, 4),
            "name": "force components",
            "marker": {"size": 3, "opacity": 0.4},
            "xaxis": "x2",
            "yaxis": "y2",
            "hovertemplate": "reference %{x:.3f}<br>predicted %{y:.3f} eV/Å<extra></extra>",
        },
        {
            "type": "scatter",
            "mode": "lines",
            "x": [flo, fhi],
            "y": [flo, fhi],
            "line": {"dash": "dash", "color": "black", "width": 1},
            "showlegend": False,
            "hoverinfo": "skip",
            "xaxis": "x2",
            "yaxis": "y2",
        },
    ]
    shapes = []
    if train_range:
        lo, hi = (1e3 * (x - offset) for x in train_range["energy_per_atom_eV"])
        shapes.append(
            {
                "type": "rect",
                "xref": "x",
                "yref": "paper",
                "x0": lo,
                "x1": hi,
                "y0": 0,
                "y1": 1,
                "fillcolor": "green",
                "opacity": 0.1,
                "line": {"width": 0},
            }
        )
        shapes.append(
            {
                "type": "rect",
                "xref": "x2",
                "yref": "paper",
                "x0": train_range["force_eV_per_A"][0],
                "x1": train_range["force_eV_per_A"][1],
                "y0": 0,
                "y1": 1,
                "fillcolor": "green",
                "opacity": 0.1,
                "line": {"width": 0},
            }
        )
    shown = len(f_ref)
    total = pred.get("force_components_total", shown)
    layout = {
        "title": {
            "text": f"{backend}: held-out frames ({len(e_ref)}; {shown} of {total} force components shown)"
            + ("; shaded: training range" if train_range else ""),
            "font": {"size": 13},
        },
        "grid": {"rows": 1, "columns": 2, "pattern": "independent"},
        "xaxis": {"title": {"text": f"reference E/atom − {offset:.3f} eV [meV]"}},
        "yaxis": {"title": {"text": "predicted [meV]"}},
        "xaxis2": {"title": {"text": "reference force component [eV/Å]"}},
        "yaxis2": {"title": {"text": "predicted [eV/Å]"}},
        "shapes": shapes,
        "height": 420,
        "margin": {"t": 50, "l": 60, "r": 20, "b": 50},
        "showlegend": False,
    }
    return {"data": data, "layout": layout}


def pair_distance_figure(result: dict, title: str, curve: str) -> dict:
    """Pair-distance distributions of ML-MD against AIMD (qdff.validation.rdf's result), one panel per
    element pair, three per row, shared r axis; the range of the AIMD blocks and of the ML-MD
    seeds where present."""
    from ..validation.rdf import panel_title

    pairs = list(result["reference"])
    edges = np.asarray(result["edges"])
    r = _r(0.5 * (edges[1:] + edges[:-1]), 3)
    cols = min(3, len(pairs))
    rows = -(-len(pairs) // cols)
    data, annotations = [], []
    for k, p in enumerate(pairs):
        ax = "" if k == 0 else str(k + 1)
        band = result.get("reference_band", {}).get(p)
        if band:
            data.append(
                {
                    "type": "scatter",
                    "x": r + r[::-1],
                    "y": _r(band[1], 4) + _r(band[0], 4)[::-1],
                    "fill": "toself",
                    "fillcolor": "rgba(0,0,0,0.12)",
                    "line": {"width": 0},
                    "name": "AIMD blocks range",
                    "showlegend": k == 0,
                    "legendgroup": "band",
                    "hoverinfo": "skip",
                    "xaxis": f"x{ax}",
                    "yaxis": f"y{ax}",
                }
            )
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "x": r,
                "y": _r(result["reference"][p], 4),
                "name": "AIMD",
                "line": {"color": "black", "width": 1.5},
                "showlegend": k == 0,
                "legendgroup": "aimd",
                "xaxis": f"x{ax}",
                "yaxis": f"y{ax}",
            }
        )
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "x": r,
                "y": _r(result["model"][p], 4),
                "name": "ML-MD",
                "line": {"color": "#ff7f0e", "width": 1.5, "dash": "dash"},
                "showlegend": k == 0,
                "legendgroup": "ml",
                "xaxis": f"x{ax}",
                "yaxis": f"y{ax}",
            }
        )
        seeds = result.get("seed_band", {}).get(p)
        if seeds and result.get("seeds_scored", 0) > 1:
            data.append(
                {
                    "type": "scatter",
                    "x": r + r[::-1],
                    "y": _r(seeds[1], 4) + _r(seeds[0], 4)[::-1],
                    "fill": "toself",
                    "fillcolor": "rgba(255,127,14,0.2)",
                    "line": {"width": 0},
                    "name": "ML-MD seeds range",
                    "showlegend": k == 0,
                    "legendgroup": "seeds",
                    "hoverinfo": "skip",
                    "xaxis": f"x{ax}",
                    "yaxis": f"y{ax}",
                }
            )
        text = panel_title(result, p).replace("\n", "<br>")
        annotations.append(
            {
                "text": text,
                "xref": f"x{ax} domain",
                "yref": f"y{ax} domain",
                "x": 0.5,
                "y": 1.2,
                "showarrow": False,
                "font": {"size": 9},
            }
        )
    layout = {
        "title": {"text": title, "font": {"size": 13}},
        "grid": {"rows": rows, "columns": cols, "pattern": "independent", "ygap": 0.35},
        "annotations": annotations,
        "height": 260 * rows + 80,
        "margin": {"t": 70, "l": 50, "r": 20, "b": 40},
        "legend": {"orientation": "h", "y": -0.08},
    }
    for k in range(len(pairs)):
        ax = "" if k == 0 else str(k + 1)
        layout[f"xaxis{ax}"] = {"title": {"text": "r [Å]"}, "matches": "x"}
        layout[f"yaxis{ax}"] = {"title": {"text": curve if k % cols == 0 else ""}, "showticklabels": False}
    return {"data": data, "layout": layout}


def time_series_figure(series: dict, title: str) -> dict:
    """Temperature and E_pot − E_pot(0) against time, one line per run (label -> dict of
    numpy arrays ``time``, ``temperature``, ``potential``), thinned to a fixed point count."""
    data = []
    for k, (label, e) in enumerate(series.items()):
        idx = np.unique(np.linspace(0, len(e["time"]) - 1, min(len(e["time"]), MAX_SERIES_POINTS)).astype(int))
        t = _r(np.asarray(e["time"])[idx], 2)
        color = f"hsl({(k * 67) % 360},65%,42%)"
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "x": t,
                "y": _r(np.asarray(e["temperature"])[idx], 2),
                "name": label,
                "legendgroup": label,
                "line": {"width": 1, "color": color},
                "xaxis": "x",
                "yaxis": "y",
            }
        )
        pot = np.asarray(e["potential"])
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "x": t,
                "y": _r((pot - pot[0])[idx], 4),
                "name": label,
                "legendgroup": label,
                "showlegend": False,
                "line": {"width": 1, "color": color},
                "xaxis": "x2",
                "yaxis": "y2",
            }
        )
    layout = {
        "title": {"text": title, "font": {"size": 13}},
        "grid": {"rows": 1, "columns": 2, "pattern": "independent"},
        "xaxis": {"title": {"text": "time [fs]"}},
        "yaxis": {"title": {"text": "temperature [K]"}},
        "xaxis2": {"title": {"text": "time [fs]"}, "matches": "x"},
        "yaxis2": {"title": {"text": "E_pot − E_pot(0) [eV]"}},
        "height": 380,
        "margin": {"t": 50, "l": 60, "r": 20, "b": 50},
    }
    return {"data": data, "layout": layout}


def learning_curve_figure(rows: list[dict], summary: dict | None = None) -> dict:
    """Held-out force and energy RMSE against training frames, one line per selection method,
    log-log as the PNG (qdff.selection.learning_curve.plot); ``rows``: learning_curve.csv's rows."""
    data = []
    methods = sorted({r["method"] for r in rows})
    for k, method in enumerate(methods):
        pts = sorted(
            (int(float(r["n_train"])), float(r["force_rmse_meV_per_A"]), float(r["energy_rmse_meV_per_atom"]))
            for r in rows
            if r["method"] == method
        )
        n, f, e = (list(x) for x in zip(*pts))
        color = f"hsl({(k * 97) % 360},65%,42%)"
        data.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "x": n,
                "y": _r(f, 2),
                "name": method,
                "legendgroup": method,
                "line": {"color": color},
                "xaxis": "x",
                "yaxis": "y",
                "hovertemplate": "%{x} frames: %{y:.1f} meV/Å<extra>" + method + "</extra>",
            }
        )
        data.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "x": n,
                "y": _r(e, 3),
                "name": method,
                "legendgroup": method,
                "showlegend": False,
                "line": {"color": color},
                "xaxis": "x2",
                "yaxis": "y2",
                "hovertemplate": "%{x} frames: %{y:.2f} meV/atom<extra>" + method + "</extra>",
            }
        )
    shapes = []
    if summary and "target_error" in summary:
        shapes.append(
            {
                "type": "line",
                "xref": "x domain",
                "yref": "y",
                "x0": 0,
                "x1": 1,
                "y0": summary["target_error"],
                "y1": summary["target_error"],
                "line": {"dash": "dot", "color": "grey", "width": 1},
            }
        )
    layout = {
        "title": {
            "text": "learning curves on the validation frames (same model, same steps)"
            + (f"; dotted: random at N={summary['target_n']}" if shapes else ""),
            "font": {"size": 13},
        },
        "grid": {"rows": 1, "columns": 2, "pattern": "independent"},
        "xaxis": {"type": "log", "title": {"text": "training frames"}},
        "yaxis": {"type": "log", "title": {"text": "force RMSE [meV/Å]"}},
        "xaxis2": {"type": "log", "title": {"text": "training frames"}, "matches": "x"},
        "yaxis2": {"type": "log", "title": {"text": "energy RMSE [meV/atom]"}},
        "shapes": shapes,
        "height": 400,
        "margin": {"t": 50, "l": 60, "r": 20, "b": 50},
    }
    return {"data": data, "layout": layout}


MAP_SYMBOLS = {"train": "circle", "test": "triangle-up", "valid": "square", "pool": "circle"}


def map_figure(Y, values, label: str, role, basins, keys, temps, title: str) -> dict:
    """The configuration-space map (qdff.selection.confmap): one trace per role, colour = ``values``
    (temperature or run), hover = run, step, temperature, role and DBSCAN basin."""
    Y = np.asarray(Y, dtype=float)
    values = np.asarray(values, dtype=float)
    lo, hi = float(values.min()), float(values.max())
    data = []
    for k, r in enumerate(("pool", "valid", "test", "train")):
        idx = [i for i in range(len(role)) if role[i] == r]
        if not idx:
            continue
        text = [
            f"run {keys[i][0]}, step {keys[i][1]}"
            + (f", {temps[i]:g} K" if temps[i] is not None else "")
            + f", {r}, "
            + ("noise" if basins[i] < 0 else f"basin {basins[i]}")
            for i in idx
        ]
        marker = {
            "symbol": MAP_SYMBOLS[r],
            "size": 8 if r == "train" else 7 if r == "test" else 5,
            "color": _r(values[idx], 3),
            "colorscale": "RdBu",  # blue = low, as the PNG's coolwarm
            "cmin": lo,
            "cmax": hi if hi > lo else lo + 1,
            "opacity": 0.9 if r == "train" else 0.6,
            "line": {"width": 1 if r == "train" else 0, "color": "black"},
        }
        if k == 0 or r == "train":
            marker["colorbar"] = {"title": {"text": label}, "thickness": 12}
            marker["showscale"] = r == "train" or not any(x == "train" for x in role)
        data.append(
            {
                "type": "scattergl",
                "mode": "markers",
                "x": _r(Y[idx, 0], 3),
                "y": _r(Y[idx, 1], 3),
                "name": {"pool": "other frames", "valid": "validation", "test": "held-out (test)", "train": "training"}[
                    r
                ],
                "text": text,
                "hoverinfo": "text",
                "marker": marker,
            }
        )
    layout = {
        "title": {"text": title, "font": {"size": 13}},
        "height": 480,
        "xaxis": {"showticklabels": False, "zeroline": False},
        "yaxis": {"showticklabels": False, "zeroline": False},
        "legend": {"orientation": "h", "y": -0.05},
        "margin": {"t": 50, "l": 20, "r": 20, "b": 40},
    }
    return {"data": data, "layout": layout}


def mlmd_series(summaries: dict) -> dict:
    """time_series_figure's input from ML-MD summaries (temperature label -> summary.json
    content): one line per temperature and seed."""
    out = {}
    for t, s in summaries.items():
        for run in s.get("runs", []):
            ser = run.get("series")
            if ser and ser["time_fs"]:
                out[f"{t}, seed {run['seed']}"] = {
                    "time": ser["time_fs"],
                    "temperature": ser["temperature_K"],
                    "potential": ser["epot_eV"],
                }
    return out


def report_figures(ener: dict, parity_plots: dict, rdf_plots, mlmd_summaries=()) -> dict:
    """Plotly specifications of the report's interactive figures, from the files beside the
    PNGs: each model's predictions.json, each comparison's rdf.json, CP2K's .ener files, the
    ML-MD summaries' recorded series."""
    from ..cp2k.output import read_ener
    from ..fileio import read_json
    from ..validation.rdf import CURVE

    figs: dict = {
        "aimd": time_series_figure(
            {k: read_ener(f) for k, f in ener.items()}, "AIMD: temperature and potential energy"
        ),
        "parity": {},
        "rdf": {},
    }
    for backend, png in parity_plots.items():
        pred = Path(png).with_name("predictions.json")
        if pred.is_file():
            p = read_json(pred)
            figs["parity"][backend] = parity_figure(p, backend, p.get("training_range"))
    for backend, label, png in rdf_plots:
        res = Path(png).with_name("rdf.json")
        if res.is_file():
            figs["rdf"].setdefault(backend, {})[label] = pair_distance_figure(
                read_json(res), f"{backend}, {label}: pair-distance distributions, ML-MD against AIMD", f"{CURVE} [1/Å]"
            )
    by_backend: dict = {}
    for backend, label, path in mlmd_summaries:
        if Path(path).is_file():
            by_backend.setdefault(backend, {})[label] = read_json(path)
    figs["mlmd"] = {}
    for backend, summaries in by_backend.items():
        series = mlmd_series(summaries)
        if series:
            figs["mlmd"][backend] = time_series_figure(
                series, f"{backend}: ML-MD temperature and potential energy, every run"
            )
    return figs
