"""Pooling of per-clip features into a fixed number of segments: Sultani's (32 segments, rounded
bin edges, L2-normalised) and the variants later methods train on (:class:`Pooling`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vad.constants import BINS, N_SEGMENTS


@dataclass(frozen=True)
class Pooling:
    """How a video's snippets become its training segments (a method's ``method.inputs``):
    ``segments`` bins, edges ``bins`` (``round``: Sultani's ``round(linspace)``; ``floor``:
    ``np.linspace(..., dtype=int)`` as RTFM and UR-DMU), each bin's mean L2-normalised or not."""

    segments: int = N_SEGMENTS
    normalise: bool = True
    bins: str = "round"

    def __post_init__(self):
        if self.bins not in BINS:
            raise ValueError(f"method.inputs.bins={self.bins!r}: expected one of {BINS}")
        if self.segments < 1:
            raise ValueError(f"method.inputs.segments={self.segments}: expected >= 1")

    @classmethod
    def of(cls, inputs) -> "Pooling":
        """The pooling of ``method.inputs``: a config node, or the plain dict a checkpoint stores."""
        return cls(int(inputs["segments"]), bool(inputs["normalise"]), str(inputs["bins"]))

    @property
    def tag(self) -> str:
        """A short name for cache files and messages, e.g. ``32-round-l2``."""
        return f"{self.segments}-{self.bins}{'-l2' if self.normalise else ''}"

    def __call__(self, clips: np.ndarray) -> np.ndarray:
        return pool_segments(clips, self.segments, self.normalise, self.bins)


SULTANI = Pooling()


def segment_bounds(n_clips: int, n_segments: int = N_SEGMENTS, bins: str = "round") -> np.ndarray:
    """Clip-index bin edges of ``linspace(0, n_clips, n_segments + 1)``: rounded (numpy rounds
    ties to even, like the Python ports of Sultani's code) or, with ``bins="floor"``, truncated."""
    edges = np.linspace(0, n_clips, n_segments + 1)
    return (np.round(edges) if bins == "round" else np.floor(edges)).astype(np.int64)


def pool_segments(clips: np.ndarray, n_segments: int = N_SEGMENTS, normalise: bool = True,
                  bins: str = "round") -> np.ndarray:
    """Mean of the clips in each bin (the clip at the bin start when a bin is empty), then
    L2-normalise each segment; ``clips`` is (n_clips, D), the result (n_segments, D) float32."""
    clips = np.asarray(clips)
    if clips.ndim != 2 or clips.shape[0] == 0:
        raise ValueError(f"expected per-clip features of shape (n_clips >= 1, D), found {clips.shape}")
    n = clips.shape[0]
    bounds = segment_bounds(n, n_segments, bins)
    counts = bounds[1:] - bounds[:-1]
    filled = counts > 0
    segments = np.empty((n_segments, clips.shape[1]), dtype=np.float64)
    # Non-empty bins tile [0, n) in order, so reduceat over their starts sums each bin.
    segments[filled] = np.add.reduceat(clips.astype(np.float64, copy=False), bounds[:-1][filled], axis=0)
    segments[filled] /= counts[filled, None]
    segments[~filled] = clips[np.minimum(bounds[:-1][~filled], n - 1)]
    if normalise:
        norms = np.linalg.norm(segments, axis=1, keepdims=True)
        segments = segments / np.where(norms > 0, norms, 1.0)
    return segments.astype(np.float32)
