"""The vibrations stage's figures: VDOS of a model against AIMD, and stick spectra of the
normal-mode frequencies of CP2K and each model (PNG, written atomically)."""

from __future__ import annotations

import numpy as np

from ..fileio import atomic_path


def plot_vdos(ref: dict, mod: dict, title: str, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ["all"] + sorted(ref["elements"])
    from ..report.plotgrid import MAX_PER_ROW, grid

    fig, axes = grid(plt, len(keys), panel=(4, 3.4))
    top = min(ref["frequency_cm1"][-1], 600.0)
    for ax, k in zip(axes, keys):
        for res, label in ((ref, "AIMD"), (mod, "ML NVE")):
            s = res["all"] if k == "all" else res["elements"][k]
            ax.plot(res["frequency_cm1"], s, label=label, lw=1)
        ax.set_xlim(0, top)
        ax.set_xlabel("wavenumber [cm$^{-1}$]")
        ax.set_title(k)
    for ax in axes[::MAX_PER_ROW]:
        ax.set_ylabel("VDOS (unit area)")
    axes[0].legend()
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def plot_spectra(cp2k: dict, models: list[dict], out_png) -> None:
    """Sorted normal-mode frequencies of CP2K (``cp2k``) and of each model (``models``, each
    with its ``backend``), one stick spectrum per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = [("CP2K", cp2k)] + [(m["backend"], m) for m in models]
    fig, ax = plt.subplots(figsize=(8, 0.6 + 0.6 * len(sets)))
    for row, (_label, m) in enumerate(sets):
        f = np.asarray(m["frequencies_cm1"])
        ax.vlines(f, row - 0.35, row + 0.35, color="C3" if row == 0 else "C0", lw=1)
    ax.set_yticks(range(len(sets)), [s[0] for s in sets])
    ax.set_xlabel("normal-mode frequency [cm$^{-1}$] (imaginary as negative)")
    ax.invert_yaxis()
    fig.tight_layout()
    with atomic_path(out_png, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
