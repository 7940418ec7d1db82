"""From a layout's raw per-video array to the 32-segment features training uses."""

from __future__ import annotations

import numpy as np

from vad.constants import CROP_MODES, N_SEGMENTS
from vad.pooling import pool_segments


def to_segments(raw: np.ndarray, kind: str, crops: str = "mean", crop: int = 0) -> np.ndarray:
    """(C', 32, D) float32 segments of one video and stream.

    ``kind="segments"``: ``raw`` is (32, D), returned as (1, 32, D) unchanged (already pooled).
    ``kind="clips"``: ``raw`` is (T, C, D); ``crops="mean"`` averages the crops of each snippet
    then pools (C' = 1), ``"one"`` pools crop ``crop`` alone (C' = 1), ``"all"`` pools every crop
    as its own bag (C' = C). Pooling is Sultani's binning with L2 normalisation.
    """
    raw = np.asarray(raw)
    if kind == "segments":
        if raw.ndim != 2 or raw.shape[0] != N_SEGMENTS:
            raise ValueError(f"expected ({N_SEGMENTS}, D) segment features, found {raw.shape}")
        return raw.astype(np.float32, copy=False)[None]
    if kind != "clips":
        raise ValueError(f"kind must be 'segments' or 'clips', found {kind!r}")
    if raw.ndim != 3:
        raise ValueError(f"expected (snippets, crops, D) clip features, found {raw.shape}")
    if crops == "mean":
        return pool_segments(raw.mean(axis=1, dtype=np.float64))[None]
    if crops == "one":
        if not 0 <= crop < raw.shape[1]:
            raise ValueError(f"crop={crop} but the features have {raw.shape[1]} crops")
        return pool_segments(raw[:, crop])[None]
    if crops == "all":
        return np.stack([pool_segments(raw[:, c]) for c in range(raw.shape[1])])
    raise ValueError(f"crops must be one of {CROP_MODES}, found {crops!r}")


def value_problems(segments: np.ndarray) -> list[tuple[str, str]]:
    """(kind, detail) for NaN/Inf values and all-zero segments of one video's (C, 32, D) stream."""
    found = []
    if not np.isfinite(segments).all():
        found.append(("NaN/Inf values", f"{int((~np.isfinite(segments)).sum())} non-finite values"))
    zero = np.flatnonzero(~segments.reshape(-1, segments.shape[-1]).any(axis=1))
    if zero.size:
        found.append(("all-zero segments", f"segments {zero[:8].tolist()} are all zeros (a failed extraction?)"))
    return found
