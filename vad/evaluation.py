"""The one evaluation of a detector, shared by training (every epoch's validation, the final
test of the best checkpoint) and ``vad.evaluate``: features -> per-video scores -> metrics.

Scoring (:func:`score`) averages the scores of a test video's crops and adds the movement term
when asked; :class:`Evaluator` turns the per-video scores of the test split (and of a training
hold-out) into the metrics of :mod:`vad.metrics`. Without test videos (one's own footage,
labelled by folder, trained with ``data.val_source=train_holdout``) only the hold-out is
evaluated: there are no test metrics (``metrics`` is None). Plain torch: no Lightning here, so
that ``vad.evaluate`` starts without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from vad.constants import PROTOCOLS
from vad.metrics import FrameTruth, frame_metrics, video_auc
from vad.types import Video

if TYPE_CHECKING:
    from torch import Tensor, nn

    from vad.data.features import FeatureSet

HOLDOUT_AUC = "holdout/video_auc"


def score(network: nn.Module, features: Tensor, movement: Tensor | None = None,
          movement_k: float = 0.0) -> Tensor:
    """Scores of a batch in eval mode: (B, T, D) -> (B, T); (B, C, T, D) test videos with C crops
    -> the mean over crops of each crop's scores, (B, T) (crops are folded into the batch, so a
    sequence network sees each crop as a video). Given the (B, T) movement term,
    ``movement_k * movement`` is added."""
    if features.ndim == 4:
        videos, crops = features.shape[:2]
        scores = network(features.flatten(0, 1)).view(videos, crops, -1).mean(dim=1)
    else:
        scores = network(features)
    if movement is not None:
        scores = scores + movement_k * movement
    return scores


def score_rows(network: nn.Module, features: Tensor, movement: Tensor | None = None,
               movement_k: float = 0.0, batch_size: int = 512) -> np.ndarray:
    """:func:`score` over every video's row in order, in batches, without gradients, on the
    network's device; float32 as training's validation computes them."""
    import torch

    device = next(network.parameters()).device
    parts = []
    with torch.inference_mode():
        for start in range(0, len(features), batch_size):
            rows = slice(start, start + batch_size)
            moves = movement[rows].to(device) if movement is not None else None
            parts.append(score(network, torch.as_tensor(features[rows]).to(device), moves, movement_k)
                         .float().cpu())
    return torch.cat(parts).numpy() if parts else np.zeros((0, 0), dtype=np.float32)


def score_sequences(network: nn.Module, snippets: Tensor, counts: np.ndarray) -> np.ndarray:
    """Per-snippet scores of whole videos, one video at a time (the official test of the RTFM
    family: a sequence network sees each video's T snippets at once), concatenated in order."""
    import torch

    device = next(network.parameters()).device
    bounds = np.concatenate([[0], np.cumsum(counts)])
    parts = []
    with torch.inference_mode():
        for start, end in zip(bounds[:-1], bounds[1:]):
            parts.append(network(torch.as_tensor(snippets[start:end])[None].to(device))[0].float().cpu())
    return torch.cat(parts).numpy() if parts else np.zeros((0,), dtype=np.float32)


def build_part(node, key: str, **kwargs):
    """Instantiate a method's ``_target_`` node (``method.network``, ``method.loss``), naming the
    key and the class when its arguments do not fit (a typo, a wrong type or range)."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__ or err
        args = {k: v for k, v in dict(node).items() if k != "_target_"}
        raise ValueError(f"{key}: {node.get('_target_')} cannot be built with {args}: "
                         f"{type(cause).__name__}: {cause}; fix {key}.<argument> (the method's "
                         "conf/method/<name>.yaml lists its arguments)") from err


def check_protocol(test: FeatureSet, protocol: str) -> None:
    """``eval.protocol`` is known and the test features have what it scores."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"eval.protocol={protocol!r}: expected segments or snippets")
    if protocol == "snippets" and test.snippets is None:
        raise ValueError("eval.protocol=snippets needs per-snippet test features, which these "
                         "data do not have: prepare a store with keep_snippets=true, or use "
                         "eval.protocol=segments")


def frame_truth(test: FeatureSet, protocol: str) -> FrameTruth:
    """The frame ground truth of the test videos under ``eval.protocol``."""
    check_protocol(test, protocol)
    if protocol == "snippets":
        return FrameTruth.from_snippets(test.videos, list(test.snippet_counts))
    return FrameTruth.from_videos(test.videos, test.features.shape[-2])


def padded(flat: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per-video scores concatenated (sum of counts,) -> (videos, max count), zeros past each
    video's count."""
    matrix = np.zeros((len(counts), int(np.max(counts, initial=0))))
    matrix[np.arange(matrix.shape[1])[None, :] < np.asarray(counts)[:, None]] = flat
    return matrix


@dataclass
class Evaluation:
    """The scores of the test videos and their metrics (and the hold-out's video AUC);
    ``metrics`` is None without test videos."""

    videos: list[Video]
    protocol: str  # segments or snippets
    truth: FrameTruth | None  # None without test videos
    scores: np.ndarray  # (videos, units): 32 segments, or T snippets padded with zeros
    counts: np.ndarray  # (videos,) units of each video
    metrics: dict[str, float] | None  # auc, ap, far, [paired_auc], auc_<Class>; None: no test videos
    holdout_auc: float | None = None

    def _holdout(self) -> dict[str, float]:
        return {HOLDOUT_AUC: self.holdout_auc} if self.holdout_auc is not None else {}

    def summary(self) -> dict:
        """The metrics as ``metrics.json`` holds them: test metrics (``"test": None`` without
        test videos), then the hold-out's."""
        return {**(self.metrics if self.metrics is not None else {"test": None}), **self._holdout()}

    def provenance(self) -> dict:
        """What the test metrics rest on: the protocol, the number of test videos and of the
        ground-truth frames evaluated (e.g. 1,111,808 for UCF-Crime's 32 segments)."""
        return {"protocol": self.protocol, "test_videos": len(self.videos),
                "test_frames": int(round(self.truth.pos.sum() + self.truth.neg.sum())),
                "anomalous_frames": int(round(self.truth.pos.sum()))}

    def logged(self) -> dict[str, float]:
        """The metrics as logged every epoch: ``test/<metric>`` and ``holdout/video_auc``."""
        return {**{f"test/{k}": v for k, v in (self.metrics or {}).items()}, **self._holdout()}


class Evaluator:
    """Metrics of per-video scores against the test split's frame truth (and, with a
    ``holdout`` set of training videos, their video AUC, then the selection metric).

    ``movement_k`` is added times the movement change to evaluation scores (``movement.at_test``;
    0 leaves scores alone). ``pair_seed`` draws the pairs of ``paired_auc`` (segments only).
    An empty ``test`` set (no test videos) needs a ``holdout``: only it is scored.
    """

    def __init__(self, test: FeatureSet, protocol: str = "segments", pair_seed: int = 0,
                 movement_k: float = 0.0, holdout: FeatureSet | None = None):
        if movement_k and protocol != "segments":
            raise ValueError("movement.at_test=true needs eval.protocol=segments (movement values are "
                             "per segment)")
        self.test = test
        self.has_test = len(test) > 0
        if not self.has_test and holdout is None:
            raise ValueError("nothing to evaluate: no test videos and no training hold-out")
        self.protocol = protocol
        self.truth = frame_truth(test, protocol) if self.has_test else None
        self.pair_seed = pair_seed if protocol == "segments" else None
        self.movement_k = float(movement_k)
        self.holdout = holdout
        self.counts = (np.asarray(test.snippet_counts) if protocol == "snippets" and self.has_test
                       else np.full(len(test), test.features.shape[-2]))

    @classmethod
    def from_config(cls, cfg, test: FeatureSet, holdout: FeatureSet | None = None) -> "Evaluator":
        """As a command's config asks: ``eval.protocol``, ``eval.pair_seed`` and the movement
        term when ``movement.at_test``."""
        return cls(test, cfg.eval.protocol, int(cfg.eval.pair_seed),
                   float(cfg.movement.k) if cfg.movement.at_test else 0.0, holdout)

    @property
    def selection_metric(self) -> str:
        """What ``val/auc`` is: the hold-out's video AUC when there is one, else the test AUC."""
        return HOLDOUT_AUC if self.holdout is not None else "test/auc"

    def matrix(self, scores: np.ndarray) -> np.ndarray:
        """Scores in loader order -> (videos, units): snippet scores are padded per video."""
        return padded(scores, self.counts) if self.protocol == "snippets" else np.asarray(scores)

    def loader_scores(self, scores: dict[int, np.ndarray]) -> tuple[np.ndarray | None, np.ndarray | None]:
        """``(test, hold-out)`` scores from those of the validation loaders by index, served in
        this order by ``MILDataModule.val_dataloader``: the test split when it has videos, then
        the hold-out when there is one."""
        ordered = [scores.get(i) for i in range(int(self.has_test) + int(self.holdout is not None))]
        test = ordered.pop(0) if self.has_test else None
        return test, (ordered[0] if self.holdout is not None else None)

    def evaluate(self, test_scores: np.ndarray | None, holdout_scores: np.ndarray | None = None) -> Evaluation:
        """Metrics of the test scores in loader order (None without test videos) and of the
        hold-out's scores."""
        holdout = None if holdout_scores is None else video_auc(holdout_scores, self.holdout.labels)
        if not self.has_test:
            return Evaluation([], self.protocol, None, np.zeros((0, self.test.features.shape[-2])),
                              self.counts, None, holdout)
        scores = self.matrix(test_scores)
        return Evaluation(self.test.videos, self.protocol, self.truth, scores, self.counts,
                          frame_metrics(scores, self.truth, self.pair_seed), holdout)

    def run(self, network: nn.Module, batch_size: int = 512) -> Evaluation:
        """Score the test split (and the hold-out) with ``network`` in eval mode; evaluate."""
        training = network.training
        network.eval()
        try:
            if not self.has_test:
                test = None
            elif self.protocol == "snippets":
                test = score_sequences(network, self.test.snippets, self.counts)
            else:
                test = score_rows(network, self.test.features, self._movement(self.test),
                                  self.movement_k, batch_size)
            holdout = None if self.holdout is None else score_rows(
                network, self.holdout.features, self._movement(self.holdout), self.movement_k, batch_size)
        finally:
            network.train(training)
        return self.evaluate(test, holdout)

    def _movement(self, data: FeatureSet) -> Tensor | None:
        """The movement term of ``data``'s videos when evaluation scores include it."""
        if not self.movement_k:
            return None
        import torch

        from vad.movement_term import movement_change

        return movement_change(torch.as_tensor(data.movement))


def subset(data: FeatureSet, selected: np.ndarray) -> FeatureSet:
    """The ``selected`` rows of a feature set (features and movement values)."""
    from vad.data.features import FeatureSet

    index = np.asarray(selected, dtype=np.int64)
    return FeatureSet([data.videos[i] for i in index], data.features[index],
                      None if data.movement is None else data.movement[index])


def load_network(checkpoint: dict) -> nn.Module:
    """The network of a checkpoint written by ``vad.train`` (built from its stored
    ``method.network`` config, with its ``network.*`` weights), on the CPU and in eval mode."""
    hparams = checkpoint["hyper_parameters"]
    network = build_part(hparams["network"], "method.network", input_dim=int(hparams["input_dim"]))
    prefix = "network."
    network.load_state_dict({k[len(prefix):]: v for k, v in checkpoint["state_dict"].items()
                             if k.startswith(prefix)})
    return network.eval()
