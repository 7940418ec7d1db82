"""LightningModule: the Learner trained with the MIL ranking loss, evaluated every epoch by the
shared :class:`~vad.evaluation.Evaluator`."""

from __future__ import annotations

import hydra
import pytorch_lightning as pl
import torch

from vad.evaluation import Evaluator, score
from vad.losses.mil_ranking import MILRankingLoss
from vad.models.learner import Learner


class MILModule(pl.LightningModule):
    """Scores segments with :class:`Learner`; ``movement_k > 0`` adds ``k * movement change``
    to segment scores before the ranking loss (at evaluation only as the evaluator says:
    ``movement.at_test``).

    Validation dataloader 0 is the test split (logged as ``test/*``); dataloader 1, when
    present, is the training hold-out (``holdout/video_auc``; it is dataloader 0 when there are
    no test videos). ``val/auc`` is the evaluator's selection metric: ``holdout/video_auc`` when
    it has a hold-out, else ``test/auc``. The evaluator is given by the caller
    (``vad.train.build``) and is not a hyperparameter.
    """

    def __init__(self, input_dim: int, dropout: float, loss: dict, optimizer: dict,
                 scheduler: dict | None, movement_k: float = 0.0, run: dict | None = None,
                 evaluator: Evaluator | None = None):
        super().__init__()
        self.save_hyperparameters(ignore=["evaluator"])
        self.learner = Learner(input_dim, dropout)
        self.criterion = MILRankingLoss(**loss)
        self.evaluator = evaluator
        self._scores: dict[int, list[torch.Tensor]] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.learner(x)

    def training_step(self, batch, batch_idx):
        anomalous, normal = (score(self.learner, *batch[key], movement_k=self.hparams.movement_k)
                             for key in ("anomalous", "normal"))
        loss = self.criterion(anomalous, normal)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=anomalous.shape[0])
        return loss

    def validation_step(self, batch, batch_idx, dataloader_idx=0):
        k = self.evaluator.movement_k
        scores = score(self.learner, batch[0], batch[1] if k and len(batch) > 1 else None, k)
        self._scores.setdefault(dataloader_idx, []).append(scores.detach().float().cpu())

    def on_validation_epoch_end(self):
        scores = {k: torch.cat(v).numpy() for k, v in self._scores.items()}
        self._scores.clear()
        if self.trainer.sanity_checking:
            return
        metrics = self.evaluator.evaluate(*self.evaluator.loader_scores(scores)).logged()
        self.log_dict(metrics)
        self.log("val/auc", metrics[self.evaluator.selection_metric], prog_bar=True)

    def configure_optimizers(self):
        optimizer = hydra.utils.instantiate(self.hparams.optimizer)(self.parameters())
        if not self.hparams.scheduler:
            return optimizer
        scheduler = hydra.utils.instantiate(self.hparams.scheduler)(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
