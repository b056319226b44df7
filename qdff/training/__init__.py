"""Training: backend adapters and trained models loaded as ASE calculators (rules/train.smk)."""

from __future__ import annotations

# seeds of models identical but for their seed are this far apart
SEED_STRIDE = 1000


def with_seed(params: dict, k: int) -> dict:
    """A copy of ``params`` (a backend's hyperparameters) for the ``k``-th of several models that
    differ only in their seed: ``seed`` (default 1) + 1000 k; k = 0 keeps the configured seed.
    The one rule for the active-learning committee's members and for the replicas of
    ``training.seeds``."""
    out = dict(params)
    out["seed"] = int(out.get("seed", 1)) + SEED_STRIDE * int(k)
    return out
