"""Frame-level metrics computed from segment scores, without expanding to frames.

Each video's segment scores cover frames through Sultani's bins: segment ``j`` covers frames
``[16 * b[j], 16 * b[j+1])`` with ``b = round(linspace(0, frames // 16, 33))``. The frames
after the last full 16-frame clip ("tail") take the last covered frame's score (``tail="last"``)
or 0 as the seed notebook leaves them (``tail="zero"``). Every metric is the standard one on the
expanded frame arrays; here each (segment, label) pair is one weighted entry, whose weight is the
number of its frames, so the cost is O(segments) and the value equals sklearn's on frames (AUC
and AP are sklearn's with ``sample_weight``; ``experiments/bench/bench_metrics.py`` times them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vad.constants import CLIP_FRAMES, N_SEGMENTS, NORMAL
from vad.pooling import segment_bounds
from vad.types import Video


@dataclass(frozen=True)
class FrameTruth:
    """Per video and segment, the number of anomalous (``pos``) and normal (``neg``) frames.

    Column ``n_segments`` holds the tail frames; ``last`` is the segment whose score they take
    under ``tail="last"``.
    """

    pos: np.ndarray  # (N, S + 1)
    neg: np.ndarray  # (N, S + 1)
    last: np.ndarray  # (N,)
    labels: np.ndarray  # (N,) video labels
    classes: np.ndarray  # (N,) class names
    frames: np.ndarray  # (N,)

    @classmethod
    def from_videos(cls, videos: list[Video], n_segments: int = N_SEGMENTS) -> "FrameTruth":
        """Segments protocol: 32 segments through Sultani's bins, tail frames in column S."""
        n = len(videos)
        pos = np.zeros((n, n_segments + 1))
        neg = np.zeros((n, n_segments + 1))
        last = np.full(n, n_segments - 1)
        for i, video in enumerate(videos):
            edges = segment_bounds(video.frames // CLIP_FRAMES, n_segments) * CLIP_FRAMES
            pos[i], neg[i] = _frame_counts(np.append(edges[:-1], edges[-1]),
                                           np.append(edges[1:], video.frames), video.spans)
            filled = np.flatnonzero(edges[1:] > edges[:-1])
            if filled.size:
                last[i] = filled[-1]
        return cls(pos, neg, last, np.array([v.label for v in videos]),
                   np.array([v.cls for v in videos]), np.array([v.frames for v in videos]))

    @classmethod
    def from_snippets(cls, videos: list[Video], snippets: list[int]) -> "FrameTruth":
        """Snippets protocol (RTFM family): snippet t scores frames [16t, 16t + 16), so a video
        of T snippets has T * 16 frames of ground truth; shorter videos are padded with
        zero-weight columns. T must be floor or ceil of frames / 16."""
        width = max(snippets) + 1
        pos = np.zeros((len(videos), width))
        neg = np.zeros((len(videos), width))
        for i, (video, count) in enumerate(zip(videos, snippets)):
            allowed = {video.frames // CLIP_FRAMES, -(-video.frames // CLIP_FRAMES)}
            if count not in allowed:
                raise ValueError(
                    f"{video.path}: {video.frames} frames need {sorted(allowed)} snippets of "
                    f"{CLIP_FRAMES} frames, found {count} (features of another video or another "
                    "frame count?); fix the features or the annotation's frame count")
            starts = np.arange(count) * CLIP_FRAMES
            pos[i, :count], neg[i, :count] = _frame_counts(starts, starts + CLIP_FRAMES, video.spans)
        return cls(pos, neg, np.asarray(snippets) - 1, np.array([v.label for v in videos]),
                   np.array([v.cls for v in videos]), np.array([v.frames for v in videos]))

    def subset(self, rows: np.ndarray) -> "FrameTruth":
        return FrameTruth(self.pos[rows], self.neg[rows], self.last[rows], self.labels[rows],
                          self.classes[rows], self.frames[rows])

    def with_tail(self, scores: np.ndarray, tail: str = "last") -> np.ndarray:
        """(N, S) segment scores -> (N, S + 1) with the tail column filled."""
        if tail == "last":
            tail_scores = scores[np.arange(len(scores)), self.last]
        elif tail == "zero":
            tail_scores = np.zeros(len(scores))
        else:
            raise ValueError(f"tail must be 'last' or 'zero', found {tail!r}")
        return np.concatenate([scores, tail_scores[:, None]], axis=1)

    def entries(self, scores: np.ndarray, tail: str = "last") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Flat (score, label, weight) entries equivalent to the expanded frame arrays."""
        full = self.with_tail(np.asarray(scores, dtype=np.float64), tail).ravel()
        return (np.concatenate([full, full]),
                np.concatenate([np.ones(full.size), np.zeros(full.size)]),
                np.concatenate([self.pos.ravel(), self.neg.ravel()]))

    def frame_arrays(self, scores: np.ndarray, tail: str = "last") -> tuple[np.ndarray, np.ndarray]:
        """Expanded per-frame (scores, labels) of all videos, for plots of a few videos."""
        full = self.with_tail(np.asarray(scores, dtype=np.float64), tail)
        s = np.concatenate([np.repeat(full.ravel(), self.pos.ravel().astype(int)),
                            np.repeat(full.ravel(), self.neg.ravel().astype(int))])
        y = np.concatenate([np.ones(int(self.pos.sum())), np.zeros(int(self.neg.sum()))])
        return s, y


def _frame_counts(starts: np.ndarray, ends: np.ndarray, spans) -> tuple[np.ndarray, np.ndarray]:
    """Anomalous and normal frames in each [start, end) given 1-based inclusive spans."""
    anomalous = np.zeros(len(starts))
    for s, e in spans:  # 1-based inclusive -> [s - 1, e) 0-based
        anomalous += np.clip(np.minimum(ends, e) - np.maximum(starts, s - 1), 0, None)
    return anomalous, (ends - starts) - anomalous


def _weighted(scores, labels, weights) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Entries that hold weight: (scores, positive?, weights)."""
    scores = np.asarray(scores, dtype=np.float64)
    weights = np.ones(len(scores)) if weights is None else np.asarray(weights, dtype=np.float64)
    keep = weights > 0
    return scores[keep], np.asarray(labels)[keep] > 0, weights[keep]


def weighted_auc(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None) -> float:
    """ROC-AUC with sample weights (ties count one half): scikit-learn's ``roc_auc_score``,
    NaN when either class has no weight."""
    from sklearn.metrics import roc_auc_score

    scores, positive, weights = _weighted(scores, labels, weights)
    if not (positive.any() and (~positive).any()):
        return float("nan")
    return float(roc_auc_score(positive, scores, sample_weight=weights))


def weighted_ap(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Average precision (step-wise, no interpolation): scikit-learn's
    ``average_precision_score``, NaN without positive weight."""
    from sklearn.metrics import average_precision_score

    scores, positive, weights = _weighted(scores, labels, weights)
    if not positive.any():
        return float("nan")
    return float(average_precision_score(positive, scores, sample_weight=weights))


def false_alarm_rate(scores: np.ndarray, truth: FrameTruth, threshold: float = 0.5) -> float:
    """Fraction of the frames of normal videos scored >= threshold (Sultani et al.)."""
    normal = truth.labels == 0
    if not normal.any():
        return float("nan")
    full = truth.with_tail(np.asarray(scores, dtype=np.float64))[normal]
    weights = truth.neg[normal]
    return float(weights[full >= threshold].sum() / weights.sum())


def paired_auc(scores: np.ndarray, truth: FrameTruth, seed: int = 0) -> float:
    """The seed notebook's number: mean AUC over (anomalous, normal) video pairs.

    Each anomalous video is paired with a distinct normal video drawn by a permutation seeded
    with ``seed`` (the notebook zips two shuffled loaders, so surplus videos are dropped);
    tail frames score 0 as in the notebook. Not comparable with the frame-level ``auc``.
    """
    anomalous = np.flatnonzero(truth.labels == 1)
    normal = np.random.default_rng(seed).permutation(np.flatnonzero(truth.labels == 0))
    pairs = min(len(anomalous), len(normal))
    if pairs == 0:
        return float("nan")
    rows = np.stack([anomalous[:pairs], normal[:pairs]], axis=1)  # (P, 2)
    full = truth.with_tail(np.asarray(scores, dtype=np.float64), tail="zero")
    s = full[rows].reshape(pairs, -1)  # (P, 2 * (S + 1)) entries of both videos
    pos, neg = truth.pos[rows].reshape(pairs, -1), truth.neg[rows].reshape(pairs, -1)
    # All positive-negative entry pairs of each video pair at once; ties count one half.
    beats = (s[:, :, None] > s[:, None, :]) + 0.5 * (s[:, :, None] == s[:, None, :])
    wins = np.einsum("pi,pij,pj->p", pos, beats, neg)
    totals = pos.sum(axis=1) * neg.sum(axis=1)
    return float(np.nanmean(np.where(totals > 0, wins / np.where(totals > 0, totals, 1), np.nan)))


def video_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Video-level ROC-AUC of the maximum segment score against the video label."""
    return weighted_auc(np.asarray(scores).max(axis=1), labels)


def frame_metrics(scores: np.ndarray, truth: FrameTruth, pair_seed: int | None = 0) -> dict[str, float]:
    """All test metrics: ``auc``, ``ap``, ``far``, ``paired_auc`` and ``auc_<Class>``.

    Per-class AUC is the frame-level AUC over that class's videos plus all normal videos.
    ``paired_auc`` (the seed notebook's 32-segment number) is left out with ``pair_seed=None``.
    """
    scores = np.asarray(scores, dtype=np.float64)
    entries = truth.entries(scores)
    out = {
        "auc": weighted_auc(*entries),
        "ap": weighted_ap(*entries),
        "far": false_alarm_rate(scores, truth),
    }
    if pair_seed is not None:
        out["paired_auc"] = paired_auc(scores, truth, pair_seed)
    out.update(class_aucs(scores, truth))
    return out


def class_aucs(scores: np.ndarray, truth: FrameTruth) -> dict[str, float]:
    """``auc_<Class>``: frame-level AUC over each class's videos plus all normal videos, from
    one sort of all entries and per-class weight histograms."""
    classes = sorted(set(truth.classes) - {NORMAL})
    full = truth.with_tail(np.asarray(scores, dtype=np.float64))
    values, inverse = np.unique(full, return_inverse=True)
    inverse = inverse.reshape(full.shape)
    group = np.array([classes.index(c) if c != NORMAL else len(classes) for c in truth.classes])
    cells = (group[:, None] * len(values) + inverse).ravel()
    size = (len(classes) + 1) * len(values)
    pos = np.bincount(cells, truth.pos.ravel(), size).reshape(len(classes) + 1, -1)
    neg = np.bincount(cells, truth.neg.ravel(), size).reshape(len(classes) + 1, -1)
    neg = neg[:-1] + neg[-1]  # each class's negatives plus those of the normal videos
    pos = pos[:-1]  # normal videos have no anomalous frames
    below = np.cumsum(neg, axis=1) - neg
    totals = pos.sum(axis=1) * neg.sum(axis=1)
    aucs = np.sum(pos * (below + 0.5 * neg), axis=1) / np.where(totals > 0, totals, 1)
    return {f"auc_{c}": float(a) if t > 0 else float("nan") for c, a, t in zip(classes, aucs, totals)}
