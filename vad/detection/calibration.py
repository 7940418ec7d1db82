"""Thresholds from the normal training videos: at the end of training, ``vad.train`` scores
them with the best checkpoint's learner (and with the last epoch's, for ``last.ckpt``) and
stores the scores in the checkpoint as ``checkpoint["vad_calibration"]``::

    {"segment_scores": (N * 32,) float32, "frame_weights": (N * 32,) int64 frames of each
     segment (the tail frames after the last full clip on the last segment that has frames),
     "videos": N, "source": "normal training videos"}

(the arrays as torch tensors, which Lightning's ``weights_only`` loading of a resumed run accepts)

so that ``threshold=far@0.01`` (:func:`far_threshold`) is the score above which 1 % of those
frames lie: a false-alarm rate chosen on data the detector was trained on, without labels of
the footage it is pointed at. Frames are weighted per segment as :mod:`vad.metrics` expands
segment scores, so the rate is the rate over the expanded frames.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vad.constants import CLIP_FRAMES, N_SEGMENTS
from vad.pooling import segment_bounds

if TYPE_CHECKING:
    from torch import nn

    from vad.data.features import FeatureSet

log = logging.getLogger(__name__)

KEY = "vad_calibration"
SOURCE = "normal training videos"


def segment_frames(frames: int, n_segments: int = N_SEGMENTS) -> np.ndarray:
    """(n_segments,) int64 frames each segment's score covers in a video of ``frames`` frames:
    segment j covers ``[16 b_j, 16 b_{j+1})`` (Sultani's bins over the full clips), and the tail
    frames after the last full clip go to the last segment that covers frames."""
    edges = segment_bounds(int(frames) // CLIP_FRAMES, n_segments) * CLIP_FRAMES
    counts = np.diff(edges).astype(np.int64)
    filled = np.flatnonzero(counts > 0)
    counts[filled[-1] if filled.size else n_segments - 1] += int(frames) - int(edges[-1])
    return counts


def calibrate(learner: nn.Module, train: FeatureSet, movement_k: float = 0.0,
              batch_size: int = 512) -> dict:
    """The calibration of ``learner`` from the normal videos of the training set ``train``,
    scored as evaluation scores them (``movement_k`` times the movement change added, as with
    ``movement.at_test``)."""
    import torch

    from vad.evaluation import score_rows
    from vad.movement_term import movement_change

    normal = np.flatnonzero(train.labels == 0)
    rows = torch.as_tensor(normal)
    movement = movement_change(torch.as_tensor(train.movement)[rows]) if movement_k else None
    training = learner.training
    learner.eval()
    try:
        scores = score_rows(learner, train.features[rows], movement, movement_k, batch_size)
    finally:
        learner.train(training)
    n_segments = scores.shape[1]
    weights = np.concatenate([segment_frames(train.videos[i].frames, n_segments) for i in normal])
    return {"segment_scores": torch.from_numpy(scores.reshape(-1).astype(np.float32)),
            "frame_weights": torch.from_numpy(weights), "videos": int(normal.size), "source": SOURCE}


def far_threshold(calibration: dict, far: float = 0.01) -> float:
    """The smallest calibration score ``t`` such that the weighted fraction of frames scoring
    ``>= t`` is at most ``far`` (just above the highest score when even that one's frames are
    more than ``far``). Segments without frames do not count."""
    if not 0 < float(far) < 1:
        raise ValueError(f"far@{far}: expected a false-alarm rate between 0 and 1, e.g. far@0.01")
    scores = np.asarray(calibration["segment_scores"], dtype=np.float64)
    weights = np.asarray(calibration["frame_weights"], dtype=np.float64)
    keep = weights > 0
    if not keep.any():
        raise ValueError(f"the calibration ({calibration.get('source', SOURCE)}) holds no frames")
    values, inverse = np.unique(scores[keep], return_inverse=True)
    per_value = np.bincount(inverse.reshape(-1), weights[keep], len(values))
    at_or_above = np.cumsum(per_value[::-1])[::-1] / per_value.sum()  # fraction scoring >= values[i]
    ok = np.flatnonzero(at_or_above <= float(far))
    return float(values[ok[0]]) if ok.size else float(np.nextafter(values[-1], math.inf))


def store_calibrations(paths, train: FeatureSet, movement_k: float = 0.0, batch_size: int = 512) -> None:
    """Add each checkpoint's calibration (from its own learner) to the checkpoint files at
    ``paths``, rewritten atomically; called by ``vad.train`` at the end of training."""
    from vad.checkpoint import read, write
    from vad.evaluation import load_network

    for path in dict.fromkeys(str(p) for p in paths if p):
        checkpoint = read(path)
        checkpoint[KEY] = calibrate(load_network(checkpoint), train, movement_k, batch_size)
        write(Path(path), checkpoint)
        log.info("calibration from %d %s stored in %s", checkpoint[KEY]["videos"], SOURCE, path)
