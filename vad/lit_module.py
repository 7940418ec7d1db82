"""LightningModule: the Learner trained with the MIL ranking loss, evaluated per epoch."""

from __future__ import annotations

import hydra
import numpy as np
import pytorch_lightning as pl
import torch

from vad.losses.mil_ranking import MILRankingLoss
from vad.metrics import frame_metrics, video_auc
from vad.models.learner import Learner


class MILModule(pl.LightningModule):
    """Scores segments with :class:`Learner`; ``movement_k > 0`` adds ``k * movement change``
    to segment scores before the ranking loss (and at evaluation with ``movement_at_test``).

    Validation dataloader 0 is the test split (logged as ``test/*``); dataloader 1, when
    present, is the training hold-out (``holdout/video_auc``). ``val/auc`` is the selection
    metric: ``test/auc`` or ``holdout/video_auc`` according to ``val_source``.
    """

    def __init__(self, input_dim: int, dropout: float, loss: dict, optimizer: dict,
                 scheduler: dict | None, movement_k: float = 0.0, movement_at_test: bool = False,
                 val_source: str = "test", pair_seed: int = 0, run: dict | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.learner = Learner(input_dim, dropout)
        self.criterion = MILRankingLoss(**loss)
        self._scores: dict[int, list[torch.Tensor]] = {}
        self.last_test_scores: np.ndarray | None = None
        self.last_metrics: dict[str, float] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.learner(x)

    def _score(self, batch: tuple[torch.Tensor, ...], with_movement: bool) -> torch.Tensor:
        scores = self.learner(batch[0])
        if scores.ndim == 3:  # test videos with C crops: (B, C, 32), the crops' mean scores
            scores = scores.mean(dim=1)
        if with_movement and len(batch) > 1:
            scores = scores + self.hparams.movement_k * batch[1]
        return scores

    def training_step(self, batch, batch_idx):
        anomalous = self._score(batch["anomalous"], True)
        normal = self._score(batch["normal"], True)
        loss = self.criterion(anomalous, normal)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=anomalous.shape[0])
        return loss

    def validation_step(self, batch, batch_idx, dataloader_idx=0):
        self._scores.setdefault(dataloader_idx, []).append(
            self._score(batch, self.hparams.movement_at_test).detach().float().cpu())

    def test_step(self, batch, batch_idx):
        self.validation_step(batch, batch_idx)

    def _evaluate(self) -> dict[str, float]:
        dm = self.trainer.datamodule
        scores = {k: torch.cat(v).numpy() for k, v in self._scores.items()}
        self._scores.clear()
        self.last_test_scores = dm.test_matrix(scores[0])
        pair_seed = self.hparams.pair_seed if dm.protocol == "segments" else None
        metrics = {f"test/{k}": v for k, v in
                   frame_metrics(self.last_test_scores, dm.test_truth, pair_seed).items()}
        if 1 in scores:
            metrics["holdout/video_auc"] = video_auc(scores[1], dm.holdout_labels)
        self.last_metrics = metrics
        return metrics

    def on_validation_epoch_end(self):
        if self.trainer.sanity_checking:
            self._scores.clear()
            return
        metrics = self._evaluate()
        self.log_dict(metrics)
        selected = "holdout/video_auc" if self.hparams.val_source == "train_holdout" else "test/auc"
        self.log("val/auc", metrics[selected], prog_bar=True)

    def on_test_epoch_end(self):
        # The test stage scores the best checkpoint: keep it apart from the per-epoch curves.
        self.log_dict({k.replace("test/", "best/", 1): v for k, v in self._evaluate().items()})

    def configure_optimizers(self):
        optimizer = hydra.utils.instantiate(self.hparams.optimizer)(self.parameters())
        if not self.hparams.scheduler:
            return optimizer
        scheduler = hydra.utils.instantiate(self.hparams.scheduler)(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
