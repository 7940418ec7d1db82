"""The end of each training epoch: ``checkpoints/last.ckpt`` is saved, then one line is
logged, on the console and in ``train.log``, terminal or not (nohup, SLURM), where Lightning's
progress bar is absent or unreadable:

    epoch 3/75  step 81  loss 0.8123  auc 0.7712  ap 0.2210  far 0.0312  lr 1.0e-03  4.1 s

Epochs are counted from 1 in the line (``epoch 75/75`` is the last); ``metrics.json`` and the
checkpoints keep Lightning's epoch index, which counts from 0. auc/ap/far are the evaluation of
that epoch (also ``holdout_auc`` with ``data.val_source=train_holdout``).

Lightning's own ``save_last`` rewrites ``last.ckpt`` only in epochs that improve the monitored
metric, so a resume from it would repeat epochs; and a line logged before the save would
promise a checkpoint that is not there yet when Ctrl-C comes right after it.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Checkpoint

log = logging.getLogger("vad.train")

# (name in the line and in ``history``, key logged by MILModule)
SHOWN = (("auc", "test/auc"), ("ap", "test/ap"), ("far", "test/far"), ("holdout_auc", "holdout/video_auc"))


class EpochEnd(Checkpoint):
    """Saves ``last_path`` and logs the epoch's line; keeps, for ``metrics.json``, ``history``
    (one short record per epoch: epoch index, global step, loss, the line's metrics, lr,
    seconds) and ``last`` (epoch index and every metric of the last evaluated epoch).

    A :class:`Checkpoint` because Lightning calls those last at the end of an epoch, after the
    best-checkpoint callback, whose updated state then is in ``last.ckpt`` too."""

    def __init__(self, last_path: Path):
        self.last_path = Path(last_path)
        self.history: list[dict] = []
        self.last: tuple[int, dict] | None = None
        self._started = 0.0
        self._evaluated: tuple[int, dict] | None = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._started = time.perf_counter()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            metrics = {key: float(value) for key, value in trainer.callback_metrics.items()
                       if key.startswith(("test/", "holdout/"))}
            self._evaluated = (trainer.current_epoch, metrics)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        trainer.save_checkpoint(self.last_path, weights_only=False)
        epoch = trainer.current_epoch
        metrics = self._evaluated[1] if self._evaluated and self._evaluated[0] == epoch else {}
        loss = trainer.callback_metrics.get("train/loss")
        record = {"epoch": epoch, "global_step": int(trainer.global_step),
                  "loss": float(loss) if loss is not None else math.nan,
                  **{name: float(metrics[key]) for name, key in SHOWN if key in metrics},
                  "lr": float(trainer.optimizers[0].param_groups[0]["lr"]),
                  "seconds": round(time.perf_counter() - self._started, 3)}
        self.history.append(record)
        if metrics:
            self.last = (epoch, metrics)
        log.info(line(record, trainer.max_epochs, trainer.max_steps))


def line(record: dict, max_epochs: int | None, max_steps: int = -1) -> str:
    """``epoch 3/75  step 81  loss 0.8123  auc 0.7712 ...  lr 1.0e-03  4.1 s`` of a ``history`` record."""
    epochs = f"/{max_epochs}" if max_epochs and max_epochs > 0 else ""
    steps = f"/{max_steps}" if max_steps and max_steps > 0 else ""
    parts = [f"epoch {record['epoch'] + 1}{epochs}", f"step {record['global_step']}{steps}",
             f"loss {record['loss']:.4f}"]
    parts += [f"{name} {record[name]:.4f}" for name, _ in SHOWN if name in record]
    parts += [f"lr {record['lr']:.1e}", f"{record['seconds']:.1f} s"]
    return "  ".join(parts)
