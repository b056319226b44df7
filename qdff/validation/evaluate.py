"""Energy and force errors of a model on held-out frames, with parity plots."""

from __future__ import annotations

import logging

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..data import dataset  # noqa: E402
from ..fileio import atomic_path  # noqa: E402

# re-exported: evaluate.predict and evaluate.error_metrics as before
from ..training.errors import energy_by_temperature, error_metrics, predict, temperature_label  # noqa: E402, F401
from ..training.errors import rmse_meV as _rmse  # noqa: E402

log = logging.getLogger(__name__)


def breakdown(frames, e_pred, f_pred, material: str | None) -> dict:
    """Force errors by site class (core/surface/ligand, from each frame's coordination)
    and force/energy errors by temperature, with the zero-force baseline of each group:
    a surface error only means something next to the size of the surface forces. Energies
    per temperature: :func:`qdff.training.errors.energy_by_temperature` (RMSE, error std with
    the offset removed, the mean-energy baseline of that temperature, the verdict)."""
    from ..structure import sites

    f_ref = np.concatenate([a.get_forces() for a in frames])
    f_hat = np.concatenate(f_pred)
    out = {}
    # the build summary's material resolution: an imported file is classified as what it holds
    material = sites.resolve_material(frames[0].get_chemical_symbols(), material) if frames else None
    if material in sites.BULK_COORDINATION:
        cls = np.concatenate([sites.classify(a, material) for a in frames])
        for c in sites.CLASSES:
            m = cls == c
            if m.any():
                out[f"force_rmse_meV_per_A_site_{c}"] = _rmse((f_hat[m] - f_ref[m]).ravel())
                out[f"baseline_zero_force_rmse_meV_per_A_site_{c}"] = _rmse(f_ref[m].ravel())
                out[f"atom_fraction_site_{c}"] = float(m.mean())
    else:
        log.warning("no surface/core classification: material %r has no known bulk coordination", material)
    temps = np.array([float(a.info.get("temperature", np.nan)) for a in frames])
    per_atom_t = np.concatenate([[t] * len(a) for t, a in zip(temps, frames)])
    for t in sorted(set(temps[np.isfinite(temps)])):
        label = temperature_label(t)
        m = per_atom_t == t
        out[f"force_rmse_meV_per_A_T_{label}"] = _rmse((f_hat[m] - f_ref[m]).ravel())
        out[f"baseline_zero_force_rmse_meV_per_A_T_{label}"] = _rmse(f_ref[m].ravel())
    # energy RMSE, error std (offset removed), mean-energy baseline and verdict per temperature
    out.update(energy_by_temperature(frames, e_pred))
    out.update(by_system(frames, e_pred, f_pred))
    return out


def system_label(atoms) -> str:
    """The suffix of per-system keys: the frame's composition (Hill formula, as
    :func:`qdff.data.dataset.hill_formula` stamps imported frames), e.g. ``Cd2Se2``."""
    from ..data.dataset import composition_label

    return str(atoms.info.get("composition") or composition_label(atoms))


def by_system(frames, e_pred, f_pred) -> dict:
    """Held-out errors per system (composition) when the frames hold more than one: ``n_frames_system_<F>``,
    ``force_rmse_meV_per_A_system_<F>`` with its zero-force baseline, ``energy_rmse_meV_per_atom_system_<F>``,
    ``energy_mean_signed_error_meV_per_atom_system_<F>`` and ``energy_error_std_meV_per_atom_system_<F>``
    (offset removed). One composition: nothing (the overall numbers are that system's)."""
    labels = [system_label(a) for a in frames]
    systems = list(dict.fromkeys(labels))
    if len(systems) < 2:
        return {}
    n = np.array([len(a) for a in frames], dtype=np.float64)
    de = (np.asarray(e_pred, dtype=np.float64) - np.array([a.get_potential_energy() for a in frames])) / n
    out = {}
    for sys_ in systems:
        idx = [i for i, g in enumerate(labels) if g == sys_]
        f_ref = np.concatenate([frames[i].get_forces() for i in idx])
        f_hat = np.concatenate([f_pred[i] for i in idx])
        out[f"n_frames_system_{sys_}"] = len(idx)
        out[f"force_rmse_meV_per_A_system_{sys_}"] = _rmse((f_hat - f_ref).ravel())
        out[f"baseline_zero_force_rmse_meV_per_A_system_{sys_}"] = _rmse(f_ref.ravel())
        out[f"energy_rmse_meV_per_atom_system_{sys_}"] = _rmse(de[idx])
        out[f"energy_mean_signed_error_meV_per_atom_system_{sys_}"] = 1e3 * float(np.mean(de[idx]))
        out[f"energy_error_std_meV_per_atom_system_{sys_}"] = 1e3 * float(np.std(de[idx]))
    return out


def errors_plot(metrics: dict, title: str, path) -> None:
    """Bars of force RMSE by element, by site class and by temperature, each next to the
    zero-force baseline of the same atoms."""
    groups = {"element": [], "site": [], "T": [], "system": []}
    for key, value in metrics.items():
        if not key.startswith("force_rmse_meV_per_A_"):
            continue
        rest = key[len("force_rmse_meV_per_A_") :]
        if rest.startswith("site_"):
            groups["site"].append((rest[5:], value, metrics.get(f"baseline_zero_force_rmse_meV_per_A_{rest}")))
        elif rest.startswith("T_"):
            groups["T"].append((rest[2:], value, metrics.get(f"baseline_zero_force_rmse_meV_per_A_{rest}")))
        elif rest.startswith("system_"):
            groups["system"].append((rest[7:], value, metrics.get(f"baseline_zero_force_rmse_meV_per_A_{rest}")))
        else:
            groups["element"].append((rest, value, metrics.get(f"baseline_zero_force_rmse_meV_per_A_{rest}")))
    panels = [(name, rows) for name, rows in groups.items() if rows]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 3.2), squeeze=False)
    for ax, (name, rows) in zip(axes[0], panels):
        x = np.arange(len(rows))
        ax.bar(x - 0.2, [r[1] for r in rows], 0.4, label="model")
        base = [r[2] if r[2] is not None else np.nan for r in rows]
        ax.bar(x + 0.2, base, 0.4, color="lightgrey", hatch="//", label="zero-force baseline")
        ax.set_xticks(x, [r[0] for r in rows])
        ax.set_title(f"by {name}", fontsize=9)
    axes[0][0].set_ylabel("force RMSE [meV/A]")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def training_range(frames) -> dict:
    """Energy per atom (eV) and force component (eV/A) ranges of the training frames."""
    e = np.array([a.get_potential_energy() / len(a) for a in frames])
    f = np.concatenate([a.get_forces().ravel() for a in frames])
    return {"energy_per_atom_eV": [float(e.min()), float(e.max())], "force_eV_per_A": [float(f.min()), float(f.max())]}


def outside_training_range(frames, train_range: dict) -> dict:
    """Fractions of the held-out frames' energies per atom and of their force components
    beyond the training range: where a model extrapolates."""
    lo, hi = train_range["energy_per_atom_eV"]
    e = np.array([a.get_potential_energy() / len(a) for a in frames])
    flo, fhi = train_range["force_eV_per_A"]
    f = np.concatenate([a.get_forces().ravel() for a in frames])
    return {
        "test_energy_outside_training_fraction": float(np.mean((e < lo) | (e > hi))),
        "test_energy_above_training_meV_per_atom": 1e3 * float(max(0.0, e.max() - hi)),
        "test_energy_below_training_meV_per_atom": 1e3 * float(max(0.0, lo - e.min())),
        "test_force_outside_training_fraction": float(np.mean((f < flo) | (f > fhi))),
    }


def parity_plot(frames, e_pred, f_pred, title: str, path, train_range: dict | None = None) -> None:
    """Energy per atom and force parity; ``train_range`` (:func:`training_range`) is shaded,
    so that held-out points beyond what the model was trained on stand out."""
    n = np.array([len(a) for a in frames], dtype=np.float64)
    e_ref = np.array([a.get_potential_energy() for a in frames]) / n
    e_hat = np.asarray(e_pred) / n
    offset = float(np.mean(e_ref))
    f_ref = np.concatenate([a.get_forces() for a in frames]).ravel()
    f_hat = np.concatenate(f_pred).ravel()
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    ax = axes[0]
    ax.scatter(1e3 * (e_ref - offset), 1e3 * (e_hat - offset), s=8, alpha=0.7)
    lim = [1e3 * (min(e_ref.min(), e_hat.min()) - offset), 1e3 * (max(e_ref.max(), e_hat.max()) - offset)]
    ax.plot(lim, lim, "k--", lw=0.8)
    if train_range:
        lo, hi = (1e3 * (x - offset) for x in train_range["energy_per_atom_eV"])
        ax.axvspan(lo, hi, color="C2", alpha=0.12, lw=0, label="training range")
        ax.legend(fontsize=7, loc="upper left")
    ax.set_xlabel(f"reference E/atom - {offset:.3f} eV [meV]")
    ax.set_ylabel("predicted E/atom [meV]")
    ax.set_title("energy per atom")
    ax = axes[1]
    ax.scatter(f_ref, f_hat, s=3, alpha=0.4)
    lim = [min(f_ref.min(), f_hat.min()), max(f_ref.max(), f_hat.max())]
    ax.plot(lim, lim, "k--", lw=0.8)
    if train_range:
        ax.axvspan(*train_range["force_eV_per_A"], color="C2", alpha=0.12, lw=0, label="training range")
        ax.legend(fontsize=7, loc="upper left")
    ax.set_xlabel("reference force component [eV/A]")
    ax.set_ylabel("predicted [eV/A]")
    ax.set_title("forces")
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def evaluate(
    calc,
    frames,
    *,
    backend: str,
    max_frames: int,
    parity_path,
    errors_path=None,
    material: str | None = None,
    train_frames=None,
    predictions_path=None,
) -> dict:
    """Errors of ``calc`` on ``frames`` (at most ``max_frames``, evenly spaced); with
    ``train_frames``, the training range is shaded in the parity plot and the held-out
    frames beyond it are counted."""
    frames = dataset.evenly_spaced(frames, max_frames)
    e_pred, f_pred, s_per_atom = predict(calc, frames)
    if not (np.all(np.isfinite(e_pred)) and all(np.all(np.isfinite(f)) for f in f_pred)):
        raise ValueError(f"{backend}: model predicted non-finite energies or forces on held-out frames")
    metrics = {
        "backend": backend,
        **error_metrics(frames, e_pred, f_pred),
        "inference_s_per_atom_step": s_per_atom,
        **breakdown(frames, e_pred, f_pred, material),
    }
    train_range = training_range(train_frames) if train_frames else None
    if train_range:
        metrics.update(
            outside_training_range(frames, train_range),
            training_energy_per_atom_min_eV=train_range["energy_per_atom_eV"][0],
            training_energy_per_atom_max_eV=train_range["energy_per_atom_eV"][1],
        )
    parity_plot(frames, e_pred, f_pred, f"{backend}: held-out frames (n={len(frames)})", parity_path, train_range)
    if predictions_path:
        from ..fileio import write_json
        from ..report.interactive import predictions

        write_json(
            predictions_path, {"backend": backend, **predictions(frames, e_pred, f_pred), "training_range": train_range}
        )
    if errors_path:
        errors_plot(metrics, f"{backend}: force errors on held-out frames", errors_path)
    log.info(
        "%s: force RMSE %.1f meV/A (zero-force baseline %.1f), energy RMSE %.2f meV/atom, error std "
        "(mean offset removed) %.2f meV/atom",
        backend,
        metrics["force_rmse_meV_per_A"],
        metrics["baseline_zero_force_rmse_meV_per_A"],
        metrics["energy_rmse_meV_per_atom"],
        metrics["energy_error_std_meV_per_atom"],
    )
    for key in sorted(k for k in metrics if k.startswith("n_frames_system_")):
        label = key[len("n_frames_system_") :]
        log.info(
            "%s on %s (%d frames): force RMSE %.1f meV/A (zero-force baseline %.1f), energy RMSE %.2f meV/atom",
            backend,
            label,
            metrics[key],
            metrics[f"force_rmse_meV_per_A_system_{label}"],
            metrics[f"baseline_zero_force_rmse_meV_per_A_system_{label}"],
            metrics[f"energy_rmse_meV_per_atom_system_{label}"],
        )
    for key in sorted(k for k in metrics if k.startswith("energy_useful_T_")):
        label = key[len("energy_useful_T_") :]
        log.info(
            "%s at %s: energy error std %.2f meV/atom (mean offset removed) against %.2f meV/atom for predicting "
            "the mean energy of that temperature: %s",
            backend,
            label,
            metrics[f"energy_error_std_meV_per_atom_T_{label}"],
            metrics[f"baseline_mean_energy_rmse_meV_per_atom_T_{label}"],
            {True: "useful", False: "NOT useful", None: "too few frames to judge"}[metrics[key]],
        )
    return metrics
