"""Zipped normal/anomalous training batches and per-video evaluation over preloaded tensors."""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import CombinedLoader
from torch.utils.data import DataLoader, Dataset

from vad.cli import UserError
from vad.data.features import FeatureSet, Splits
from vad.evaluation import check_protocol
from vad.movement_term import movement_change


class Rows(Dataset):
    """Selected rows of preloaded tensors; a whole batch is one indexing op (``__getitems__``)."""

    def __init__(self, rows: np.ndarray, *tensors: torch.Tensor):
        self.rows = torch.as_tensor(rows, dtype=torch.long)
        self.tensors = tensors

    def __len__(self) -> int:
        return len(self.rows)

    def __getitems__(self, positions: list[int]) -> tuple[torch.Tensor, ...]:
        rows = self.rows[positions]
        return tuple(t[rows] for t in self.tensors)

    def __getitem__(self, position: int) -> tuple[torch.Tensor, ...]:
        return self.__getitems__([position])


def _batch(items):
    return items


class MILDataModule(pl.LightningDataModule):
    """Serves ``Splits``: training batches of ``batch_size`` normal + ``batch_size`` anomalous
    videos (shuffled, balanced, last partial batch dropped); evaluation on the test split and,
    with ``val_source="train_holdout"``, on a stratified ``holdout_fraction`` of training videos
    that training never sees. Data without test videos train with ``val_source="train_holdout"``
    only (no test loader is served)."""

    def __init__(self, splits: Splits, batch_size: int = 30, eval_batch_size: int = 512,
                 val_source: str = "test", holdout_fraction: float = 0.1, seed: int = 0,
                 use_movement: bool = False, protocol: str = "segments"):
        super().__init__()
        self.splits = splits
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.val_source = val_source
        if val_source == "test" and not len(splits.test):
            raise UserError(f"data.val_source=test selects the best epoch on the test videos, but "
                            f"{splits.description} has none: use data.val_source=train_holdout (the best "
                            "epoch by the video AUC of held-out training videos; no test metrics)")
        self.seed = seed
        self.use_movement = use_movement
        labels = splits.train.labels
        rng = np.random.default_rng(seed)
        self.holdout_rows = np.array([], dtype=np.int64)
        if val_source == "train_holdout":
            # Hold out whole videos: all bags (crops, repeated list entries) of a video go together.
            paths = np.array([v.path for v in splits.train.videos])
            held = []
            for y in (0, 1):
                names = np.unique(paths[labels == y])
                held.extend(rng.permutation(names)[: max(1, round(holdout_fraction * len(names)))])
            self.holdout_rows = np.flatnonzero(np.isin(paths, held))
        fit = np.setdiff1d(np.arange(len(labels)), self.holdout_rows)
        self.normal_rows = fit[labels[fit] == 0]
        self.anomaly_rows = fit[labels[fit] == 1]
        for name, rows in (("normal", self.normal_rows), ("anomalous", self.anomaly_rows)):
            if len(rows) < batch_size:
                raise ValueError(f"data.batch_size={batch_size} but only {len(rows)} {name} training "
                                 "videos are available: lower data.batch_size")
        self.protocol = protocol
        if len(splits.test):
            check_protocol(splits.test, protocol)  # the evaluator scores what test_loader serves
        self.holdout_labels = labels[self.holdout_rows]
        self.movement_terms = {}
        if use_movement:
            self.movement_terms = {"train": movement_change(splits.train.movement),
                                   "test": movement_change(splits.test.movement)}

    def _tensors(self, split: str) -> tuple[torch.Tensor, ...]:
        data: FeatureSet = getattr(self.splits, split)
        if self.use_movement:
            return data.features, self.movement_terms[split]
        return (data.features,)

    def _shuffled(self, rows: np.ndarray, offset: int) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed + offset)
        return DataLoader(Rows(rows, *self._tensors("train")), batch_size=self.batch_size, shuffle=True,
                          drop_last=True, collate_fn=_batch, generator=generator)

    def train_dataloader(self):
        return CombinedLoader({"normal": self._shuffled(self.normal_rows, 0),
                               "anomalous": self._shuffled(self.anomaly_rows, 1)}, mode="min_size")

    def _ordered(self, split: str, rows: np.ndarray) -> DataLoader:
        return DataLoader(Rows(rows, *self._tensors(split)), batch_size=self.eval_batch_size,
                          shuffle=False, collate_fn=_batch)

    def test_loader(self) -> DataLoader:
        if self.protocol == "snippets":
            snippets = self.splits.test.snippets
            return DataLoader(Rows(np.arange(len(snippets)), snippets), batch_size=self.eval_batch_size * 32,
                              shuffle=False, collate_fn=_batch)
        return self._ordered("test", np.arange(len(self.splits.test)))

    def val_dataloader(self):
        # The order Evaluator.loader_scores reads: the test split when it has videos, the hold-out.
        loaders = [self.test_loader()] if len(self.splits.test) else []
        if self.val_source == "train_holdout":
            loaders.append(self._ordered("train", self.holdout_rows))
        return loaders

    def test_dataloader(self):
        return self.test_loader()
