"""Steps of rules/evaluate.smk: a model's held-out errors, and the metrics table of every model."""

from __future__ import annotations

from pathlib import Path

from ..data import dataset
from ..fileio import atomic_path, read_json, write_json


def evaluate_model(
    backend: str,
    model_dir,
    test_file,
    metrics_out,
    parity_out,
    errors_out=None,
    train_file=None,
    *,
    max_frames: int,
    material,
) -> dict:
    """Energy and force errors of the model in ``model_dir`` on (at most ``max_frames``, evenly
    spaced) frames of ``test_file``; parity and error plots; ``material`` names the per-element
    breakdown; ``train_file``: its range is shaded in the parity plot."""
    from ..training.models import load_calculator
    from ..validation import evaluate

    calc = load_calculator(model_dir)
    frames = dataset.read_frames(test_file)
    metrics = evaluate.evaluate(
        calc,
        frames,
        backend=backend,
        max_frames=max_frames,
        parity_path=parity_out,
        errors_path=errors_out,
        material=material,
        train_frames=dataset.read_frames(train_file) if train_file else None,
        predictions_path=Path(metrics_out).with_name("predictions.json"),
    )
    model_file = Path(model_dir) / read_json(Path(model_dir) / "model.json")["model_file"]
    metrics["model_size_MB"] = model_file.stat().st_size / 1e6 if model_file.is_file() else float("nan")
    write_json(metrics_out, metrics)
    return metrics


def collect_metrics(
    metric_files, out_json, out_csv, mlmd_files=(), rdf_files=(), aimd_files=(), replica_files=()
) -> list[dict]:
    """One row per backend: held-out errors, ML-MD stability and NVE statistics beside CP2K's,
    pair-distance overlap against the AIMD's self-agreement, and speed against CP2K
    (:mod:`qdff.validation.metrics`); JSON, and CSV without the nested details.
    ``replica_files``: the held-out metrics of models 1.. of training.seeds, whose spread with
    model 0 is added to their backend's row (:func:`qdff.validation.metrics.seed_spread`)."""
    import pandas as pd

    from ..validation import metrics

    rows = metrics.metrics_table(
        metrics.seed_spread([read_json(f) for f in metric_files], [read_json(f) for f in replica_files]),
        [read_json(f) for f in mlmd_files],
        [read_json(f) for f in rdf_files],
        metrics.cp2k_runs(aimd_files),
    )
    write_json(out_json, rows)
    with atomic_path(out_csv, suffix=".csv") as tmp:
        # nested per-temperature details stay in the JSON
        pd.DataFrame([{k: v for k, v in r.items() if not isinstance(v, (list, dict))} for r in rows]).to_csv(
            tmp, index=False
        )
    return rows
