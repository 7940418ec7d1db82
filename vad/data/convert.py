"""From a layout's raw per-video array to the segment features training uses."""

from __future__ import annotations

import numpy as np

from vad.constants import CROP_MODES, N_SEGMENTS
from vad.pooling import SULTANI, Pooling

SHOWN_SEGMENTS = 8  # all-zero segment indices named before "..."


def to_segments(raw: np.ndarray, kind: str, crops: str = "mean", crop: int = 0,
                pooling: Pooling = SULTANI) -> np.ndarray:
    """(C', S, D) float32 segments of one video and stream (S = ``pooling.segments``).

    ``kind="segments"``: ``raw`` is (32, D), returned as (1, 32, D) unchanged (already pooled).
    ``kind="clips"``: ``raw`` is (T, C, D); ``crops="mean"`` averages the crops of each snippet
    then pools (C' = 1), ``"one"`` pools crop ``crop`` alone (C' = 1), ``"all"`` pools every crop
    as its own bag (C' = C). ``pooling`` is the method's (default: Sultani's binning with L2
    normalisation); features already pooled (``kind="segments"``) serve Sultani's pooling only.
    """
    raw = np.asarray(raw)
    if kind == "segments":
        if pooling != SULTANI:
            raise ValueError(f"these features are already pooled into Sultani's {N_SEGMENTS} L2-normalised "
                             f"segments, but the method trains on {pooling.tag} segments "
                             "(method.inputs): use per-snippet features (a clip layout, or a store "
                             "prepared with keep_snippets=all), or method=mil")
        if raw.ndim != 2 or raw.shape[0] != N_SEGMENTS:
            raise ValueError(f"expected ({N_SEGMENTS}, D) segment features, found {raw.shape}")
        return raw.astype(np.float32, copy=False)[None]
    if kind != "clips":
        raise ValueError(f"kind must be 'segments' or 'clips', found {kind!r}")
    if raw.ndim != 3:
        raise ValueError(f"expected (snippets, crops, D) clip features, found {raw.shape}")
    if crops == "mean":
        return pooling(raw.mean(axis=1, dtype=np.float64))[None]
    if crops == "one":
        if not 0 <= crop < raw.shape[1]:
            raise ValueError(f"crop={crop} but the features have {raw.shape[1]} crops")
        return pooling(raw[:, crop])[None]
    if crops == "all":
        return np.stack([pooling(raw[:, c]) for c in range(raw.shape[1])])
    raise ValueError(f"crops must be one of {CROP_MODES}, found {crops!r}")


def _zero_segments(zero: np.ndarray) -> str:
    """Which of the segments in the (C, 32) all-zero mask are zero in some crop, all of them named
    up to ``SHOWN_SEGMENTS`` and counted always."""
    n_crops, n_segments = zero.shape
    rows = np.flatnonzero(zero.any(axis=0)).tolist()
    crops = f" in {int(zero.any(axis=1).sum())} of {n_crops} crops" if n_crops > 1 else ""
    if len(rows) == n_segments:
        return f"all {n_segments} segments are all zeros{crops}"
    listed = ", ".join(map(str, rows[:SHOWN_SEGMENTS])) + (", ..." if len(rows) > SHOWN_SEGMENTS else "")
    what = "segment" if len(rows) == 1 else "segments"
    verb = "is" if len(rows) == 1 else "are"
    return f"{what} {listed} ({len(rows)} of {n_segments}) {verb} all zeros{crops}"


def value_problems(segments: np.ndarray) -> list[tuple[str, str]]:
    """(kind, detail) for NaN/Inf values and all-zero segments of one video's (C, 32, D) (or
    (32, D)) stream."""
    found = []
    if not np.isfinite(segments).all():
        found.append(("NaN/Inf values", f"{int((~np.isfinite(segments)).sum())} non-finite values"))
    zero = ~segments.reshape(-1, *segments.shape[-2:]).any(axis=-1)  # (C, 32)
    if zero.any():
        found.append(("all-zero segments", f"{_zero_segments(zero)} (a failed extraction? re-extract the video)"))
    return found
