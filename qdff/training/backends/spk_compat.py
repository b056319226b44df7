"""Shims that make schnetpack 2.1.1, which predates torch 2.6, importable and usable with
today's torch (in our process only, nothing in site-packages is edited). Used by
:mod:`qdff.training.backends.schnetpack` and, before it imports schnetpack,
:mod:`qdff.training.backends.spk_task`."""

from __future__ import annotations


def apply() -> None:
    """Make schnetpack 2.1.1 importable and usable with torch >= 2.6.

    - ``schnetpack.data.loader`` imports ``T_co`` from torch's dataloader module, which
      torch 2.13 no longer defines (it was only a TypeVar for annotations).
    - Its own ``ReduceLROnPlateau`` passes ``verbose=``, which torch removed: we use
      torch's scheduler directly (see :func:`qdff.training.backends.schnetpack._task`), no
      shim needed.
    - ``torch.load`` defaults to ``weights_only=True`` since torch 2.6, while SchNetPack
      pickles whole modules: the calculator and the resume path of
      :mod:`qdff.training.backends.schnetpack` load our own files with ``weights_only=False``.
    """
    import typing

    import torch.utils.data.dataloader as dl

    if not hasattr(dl, "T_co"):
        dl.T_co = typing.TypeVar("T_co", covariant=True)
