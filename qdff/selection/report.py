"""Variables of the report's selection section (report/templates/selection_section.html.j2) from
the files the selection rules write. A file that does not exist gives None, and the
section leaves that part out (the map and the learning curve can be switched off)."""

from __future__ import annotations

import csv
from pathlib import Path

from ..fileio import read_json


def _exists(path):
    return path is not None and Path(path).is_file()


def _png(path):
    from ..report.render import png_data_uri

    return png_data_uri(path) if _exists(path) else None


def _fmt(v: str) -> str:
    try:
        x = float(v)
    except ValueError:
        return v
    return f"{x:.0f}" if x == int(x) else f"{x:.3g}" if abs(x) < 10 else f"{x:.1f}"


def context(
    selection_json=None, map_png=None, map_html=None, map_json=None, lc_csv=None, lc_png=None, lc_summary=None
) -> dict:
    """Template variables (see the top of selection_section.html.j2)."""
    columns, rows, lc_fig = None, None, None
    lc_summary_data = read_json(lc_summary) if _exists(lc_summary) else None
    if _exists(lc_csv):
        with open(lc_csv, newline="") as fh:
            table = list(csv.reader(fh))
        columns, rows = table[0], [[_fmt(v) for v in r] for r in table[1:]]
        if rows:
            from ..report.interactive import learning_curve_figure

            lc_fig = learning_curve_figure([dict(zip(columns, r)) for r in table[1:]], lc_summary_data)
    return {
        "sel_summary": read_json(selection_json) if _exists(selection_json) else None,
        "sel_map_png": _png(map_png),
        "sel_map_html": Path(map_html).read_text() if _exists(map_html) else None,
        "sel_map_info": read_json(map_json) if _exists(map_json) else None,
        "sel_lc_png": _png(lc_png),
        "sel_lc_columns": columns,
        "sel_lc_rows": rows,
        "sel_lc_summary": lc_summary_data,
        "sel_lc_fig": lc_fig,
    }


def selection_files(system: str, results="results") -> dict:
    """The paths ``context`` takes, for a system's results directory (keyword -> path)."""
    r = Path(results) / system
    return {
        "selection_json": r / "split/selection.json",
        "map_png": r / "selection/map.png",
        "map_html": r / "selection/map.html",
        "map_json": r / "selection/map.json",
        "lc_csv": r / "learning_curve/learning_curve.csv",
        "lc_png": r / "learning_curve/learning_curve.png",
        "lc_summary": r / "learning_curve/summary.json",
    }
