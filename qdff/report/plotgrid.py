"""Panel grids for the report's figures: at most three panels per row, so that a system with
six element pairs still reads at 1280 px (one row of six was unreadable)."""

from __future__ import annotations

MAX_PER_ROW = 3


def grid(plt, n: int, panel=(3.3, 3.2), sharex: bool = False):
    """A figure of ``n`` panels, ``MAX_PER_ROW`` per row at most; returns the figure and the
    ``n`` axes in reading order (panels beyond ``n`` in the last row are hidden)."""
    cols = max(1, min(n, MAX_PER_ROW))
    rows = max(1, -(-n // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(panel[0] * cols, panel[1] * rows), squeeze=False, sharex=sharex)
    flat = [ax for row in axes for ax in row]
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]
