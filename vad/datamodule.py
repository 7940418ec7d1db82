"""Zipped normal/anomalous training batches (bags, or videos with a crop axis) and per-video
evaluation over preloaded tensors."""

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


class Sequences(Dataset):
    """Whole videos of concatenated snippet rows: item i is video i's (1, T_i, D) snippets."""

    def __init__(self, snippets: torch.Tensor, counts: np.ndarray):
        self.snippets = snippets
        self.bounds = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def __len__(self) -> int:
        return len(self.bounds) - 1

    def __getitem__(self, position: int) -> tuple[torch.Tensor]:
        return (self.snippets[self.bounds[position]:self.bounds[position + 1]][None],)


def _batch(items):
    return items


def crop_groups(videos: list) -> tuple[np.ndarray, int]:
    """The first bag row of each video and the crop count C, every video's C bags being
    consecutive rows, as the readers put them (:func:`vad.data.features.make_splits`)."""
    paths = np.array([v.path for v in videos])
    crops = int(np.argmax(paths != paths[0])) or len(paths)  # the first video's bags
    starts = np.arange(0, len(paths), crops)
    if len(paths) % crops or not all((paths[s:s + crops] == paths[s]).all() for s in starts):
        raise ValueError(f"method.inputs.crops=axis needs every training video's {crops} crops as "
                         "consecutive bags: read the features with data.crops=all")
    return starts, crops


class MILDataModule(pl.LightningDataModule):
    """Serves ``Splits``: training batches of ``batch_size`` normal + ``batch_size`` anomalous
    videos (shuffled, balanced, last partial batch dropped), each video a bag of (T, D) features or,
    with ``crops="axis"``, all its C crop bags as one (C, T, D) sample; evaluation on the test split and,
    with ``val_source="train_holdout"``, on a stratified ``holdout_fraction`` of training videos
    that training never sees. Data without test videos train with ``val_source="train_holdout"``
    only (no test loader is served)."""

    def __init__(self, splits: Splits, batch_size: int = 30, eval_batch_size: int = 512,
                 val_source: str = "test", holdout_fraction: float = 0.1, seed: int = 0,
                 use_movement: bool = False, protocol: str = "segments", crops: str = "bags"):
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
        self.train_features = splits.train.features
        if crops == "axis":  # rows become videos: (videos, C, T, D), a view of the bags
            starts, n_crops = crop_groups(splits.train.videos)
            self.train_features = self.train_features.view(len(starts), n_crops, *self.train_features.shape[1:])
            fit = np.intersect1d(starts, fit) // n_crops
            labels = labels[starts]
        self.normal_rows = fit[labels[fit] == 0]
        self.anomaly_rows = fit[labels[fit] == 1]
        for name, rows in (("normal", self.normal_rows), ("anomalous", self.anomaly_rows)):
            if len(rows) < batch_size:
                raise ValueError(f"data.batch_size={batch_size} but only {len(rows)} {name} training "
                                 "videos are available: lower data.batch_size")
        self.protocol = protocol
        if len(splits.test):
            check_protocol(splits.test, protocol)  # the evaluator scores what test_loader serves
        self.holdout_labels = splits.train.labels[self.holdout_rows]
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
        tensors = (self.train_features,) + self._tensors("train")[1:]
        return DataLoader(Rows(rows, *tensors), batch_size=self.batch_size, shuffle=True,
                          drop_last=True, collate_fn=_batch, generator=generator)

    def train_dataloader(self):
        return CombinedLoader({"normal": self._shuffled(self.normal_rows, 0),
                               "anomalous": self._shuffled(self.anomaly_rows, 1)}, mode="min_size")

    def _ordered(self, split: str, rows: np.ndarray) -> DataLoader:
        return DataLoader(Rows(rows, *self._tensors(split)), batch_size=self.eval_batch_size,
                          shuffle=False, collate_fn=_batch)

    def test_loader(self) -> DataLoader:
        if self.protocol == "snippets":  # whole videos, one at a time, as Evaluator.run scores them
            test = self.splits.test
            return DataLoader(Sequences(test.snippets, test.snippet_counts), batch_size=None,
                              shuffle=False, collate_fn=None)
        return self._ordered("test", np.arange(len(self.splits.test)))

    def val_dataloader(self):
        # The order Evaluator.loader_scores reads: the test split when it has videos, the hold-out.
        loaders = [self.test_loader()] if len(self.splits.test) else []
        if self.val_source == "train_holdout":
            loaders.append(self._ordered("train", self.holdout_rows))
        return loaders

    def test_dataloader(self):
        return self.test_loader()
