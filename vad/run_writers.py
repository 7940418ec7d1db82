"""Lightning writers that keep a run folder whole: one TensorBoard event file per run and no
half-written checkpoint under its final name."""

from __future__ import annotations

import os
from pathlib import Path

from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.plugins import TorchCheckpointIO


class OneFileTensorBoardLogger(TensorBoardLogger):
    """A ``TensorBoardLogger`` whose writer stays open until :meth:`close`.

    Lightning finalizes its loggers at the end of ``fit`` and again of ``test``, and a closed
    ``SummaryWriter`` opens a new event file at its next write, so hparams, per-epoch curves and
    the final figures would land in three files. Here ``finalize`` only flushes."""

    def finalize(self, status: str) -> None:
        if self._experiment is not None:
            self._experiment.flush()
        if status == "success":
            self.save()  # hparams.yaml

    def close(self) -> None:
        if self._experiment is not None:
            self._experiment.close()


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write each checkpoint to a temporary file, then rename it: a run stopped while saving
    (Ctrl-C, a kill) keeps the previous ``last.ckpt`` intact, so its resume command works."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        super().save_checkpoint(checkpoint, tmp, storage_options)
        os.replace(tmp, path)
