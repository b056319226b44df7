"""The torch device a model runs on."""

from __future__ import annotations


def device(requested: str | None = None) -> str:
    """``requested`` when given; else ``"cuda"`` when torch sees a GPU, ``"cpu"`` otherwise
    (also where torch is not installed)."""
    if requested:
        return requested
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"
