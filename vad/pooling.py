"""Sultani's pooling of per-clip features into a fixed number of segments."""

from __future__ import annotations

import numpy as np

from vad.constants import N_SEGMENTS


def segment_bounds(n_clips: int, n_segments: int = N_SEGMENTS) -> np.ndarray:
    """Clip-index bin edges ``round(linspace(0, n_clips, n_segments + 1))`` (numpy rounds ties
    to even, like the Python ports of Sultani's code)."""
    return np.round(np.linspace(0, n_clips, n_segments + 1)).astype(np.int64)


def pool_segments(clips: np.ndarray, n_segments: int = N_SEGMENTS, normalise: bool = True) -> np.ndarray:
    """Mean of the clips in each bin (the clip at the bin start when a bin is empty), then
    L2-normalise each segment; ``clips`` is (n_clips, D), the result (n_segments, D) float32."""
    clips = np.asarray(clips)
    if clips.ndim != 2 or clips.shape[0] == 0:
        raise ValueError(f"expected per-clip features of shape (n_clips >= 1, D), found {clips.shape}")
    n = clips.shape[0]
    bounds = segment_bounds(n, n_segments)
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
