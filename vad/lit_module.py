"""LightningModules: :class:`MethodModule` trains any method's network with its loss (a method is
``conf/method/<name>.yaml``: ``network``, ``loss``, ``inputs``); :class:`MILModule` is Sultani's
MIL, whose step differs. Both are evaluated every epoch by the shared
:class:`~vad.evaluation.Evaluator`."""

from __future__ import annotations

import hydra
import pytorch_lightning as pl
import torch

from vad.evaluation import Evaluator, build_part, score


class MethodModule(pl.LightningModule):
    """The network ``method.network`` (built with ``input_dim``) trained with ``method.loss``.

    A training step feeds ``cat([normal, anomalous])`` (the official repositories' order) to the
    network in training mode and hands its output and the (2B,) labels, 0 then 1, to the loss,
    which returns the total and its named terms (logged as ``train/<term>``).

    Validation dataloader 0 is the test split (logged as ``test/*``); dataloader 1, when
    present, is the training hold-out (``holdout/video_auc``; it is dataloader 0 when there are
    no test videos). ``val/auc`` is the evaluator's selection metric: ``holdout/video_auc`` when
    it has a hold-out, else ``test/auc``. The evaluator is given by the caller
    (``vad.train.build``) and is not a hyperparameter.
    """

    def __init__(self, input_dim: int, network: dict, loss: dict, optimizer: dict,
                 scheduler: dict | None, movement_k: float = 0.0, run: dict | None = None,
                 evaluator: Evaluator | None = None):
        super().__init__()
        self.save_hyperparameters(ignore=["evaluator"])
        self.network = build_part(network, "method.network", input_dim=input_dim)
        self.criterion = build_part(loss, "method.loss")
        self.evaluator = evaluator
        self._scores: dict[int, list[torch.Tensor]] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)

    def training_step(self, batch, batch_idx):
        normal, anomalous = batch["normal"][0], batch["anomalous"][0]
        labels = torch.cat([normal.new_zeros(len(normal)), anomalous.new_ones(len(anomalous))])
        loss, terms = self.criterion(self.network(torch.cat([normal, anomalous])), labels)
        self._log_loss(loss, terms, len(normal))
        return loss

    def _log_loss(self, loss: torch.Tensor, terms: dict, batch_size: int) -> None:
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=batch_size)
        for name, value in terms.items():
            self.log(f"train/{name}", value, on_step=False, on_epoch=True, batch_size=batch_size)

    def validation_step(self, batch, batch_idx, dataloader_idx=0):
        evaluator = self.evaluator
        k = evaluator.movement_k
        scores = score(self.network, batch[0], batch[1] if k and len(batch) > 1 else None, k)
        if dataloader_idx == 0 and evaluator.has_test and evaluator.protocol == "snippets":
            scores = scores.flatten()  # one video's T snippet scores: concatenated, as Evaluator.matrix reads
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


class MILModule(MethodModule):
    """Sultani's MIL: the anomalous bags, then the normal ones, are scored in two calls (the seed
    notebook's order of dropout draws, so its numbers are reproduced), ``movement_k > 0`` adds
    ``k * movement change`` to the segment scores before the ranking loss (at evaluation only as
    the evaluator says: ``movement.at_test``), and the loss takes (anomalous, normal) scores."""

    def training_step(self, batch, batch_idx):
        anomalous, normal = (score(self.network, *batch[key], movement_k=self.hparams.movement_k)
                             for key in ("anomalous", "normal"))
        loss = self.criterion(anomalous, normal)
        self._log_loss(loss, {}, anomalous.shape[0])
        return loss
