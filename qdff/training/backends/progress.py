"""Epoch progress of the Lightning-based trainings (SchNetPack in our process, NequIP and
Allegro inside ``nequip-train``): one log line per epoch with the logged losses and an
ETA, and one JSON line per epoch in a file that the adapter reads afterwards for its
divergence check. A non-finite loss stops the training at the end of that epoch.

SchNetPack builds on ``pytorch_lightning`` and NequIP on ``lightning``; each trainer only
accepts callbacks of its own package, hence the factory taking the package name.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

log = logging.getLogger(__name__)


def read_progress(path) -> list[dict]:
    """The epoch records written by the callback (an absent file: none)."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def epoch_progress(path, max_epochs: int, package: str = "lightning", echo: bool = False):
    """A Lightning callback appending each epoch's metrics to ``path`` (JSON lines).

    ``echo`` prints the progress line (for a subprocess whose output is streamed into the
    rule's log) instead of logging it. Also usable as a hydra ``_target_``.
    """
    if package == "lightning":
        from lightning.pytorch import Callback
    else:
        from pytorch_lightning import Callback

    class EpochProgress(Callback):
        def __init__(self):
            self.path = Path(path)
            self.t0 = None
            self.epoch0 = 0

        def on_train_start(self, trainer, pl_module):
            self.t0 = time.time()
            self.epoch0 = trainer.current_epoch  # > 0 when resumed from a checkpoint

        def on_train_epoch_end(self, trainer, pl_module):
            metrics = {}
            for key, value in trainer.callback_metrics.items():
                try:
                    metrics[key] = float(value)
                except (TypeError, ValueError, RuntimeError):
                    continue
            epoch = trainer.current_epoch + 1
            elapsed = time.time() - (self.t0 or time.time())
            per_epoch = elapsed / max(epoch - self.epoch0, 1)
            record = {"epoch": epoch, "wall_s": round(elapsed, 2), **metrics}
            with open(self.path, "a") as fh:
                fh.write(json.dumps(record) + "\n")
            # epoch-level losses and RMSEs (nequip also logs per-step values)
            shown = ", ".join(
                f"{k}={v:.4g}"
                for k, v in sorted(metrics.items())
                if ("loss" in k or "rmse" in k.lower()) and "_step" not in k
            )
            line = (
                f"epoch {epoch}/{max_epochs}: {shown}; {per_epoch:.2f} s/epoch, "
                f"ETA {per_epoch * max(max_epochs - epoch, 0):.0f} s"
            )
            if echo:
                print(f"[qdff] {line}", flush=True)
            else:
                log.info(line)
            if any(not math.isfinite(v) for k, v in metrics.items() if "loss" in k):
                # no point training on: the adapter reports the divergence
                trainer.should_stop = True

    return EpochProgress()
