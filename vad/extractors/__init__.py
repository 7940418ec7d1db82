"""Feature-extractor networks: C3D (Sports-1M, fc6 4096-d) and two-stream I3D (Kinetics, 1024-d).

Typical use (non-overlapping 16-frame clips; preprocess a video in chunks of a multiple of 16
frames -- a whole UCF-Crime video at 224x224 float32 would take gigabytes)::

    model = build_extractor("I3D", "RGB", weights="/path/rgb_imagenet.pt")   # eval mode
    for chunk in chunks_of_frames:            # (16*k, H, W, 3) uint8 RGB
        x = preprocess_i3d_rgb(chunk)         # (3, 16*k, 224, 224) in [-1, 1]
        clips = split_clips(x, model.clip_len)    # (k, 3, 16, 224, 224)
        with torch.inference_mode():
            feats = model.features(clips.to(device))   # (k, 1024)

``crops="ten"`` gives ``(10, C, T, 224, 224)`` (crop 0 = centre): split each crop.
C3D: ``preprocess_c3d`` -> ``(3, T, 112, 112)``, ``features`` -> ``(k, 4096)`` (relu(fc6)).
Flow: ``preprocess_i3d_flow`` on ``(T, H, W, 2)`` TV-L1 flow with ``build_extractor("I3D", "FLOW", ...)``.
Weights: a file path the user supplies (``weights.rgb`` / ``weights.flow``) or ``"random"``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vad.extractors.c3d import (
    C3D,
    C3D_CLIP_LEN,
    C3D_CROP,
    C3D_MEAN_BGR,
    C3D_RESIZE,
    preprocess_c3d,
    preprocess_c3d_batch,
)
from vad.extractors.i3d import (
    FLOW_BOUND,
    I3D_CLIP_LEN,
    I3D_CROP,
    I3D_SHORT_SIDE,
    InceptionI3d,
    center_crop,
    preprocess_i3d_flow,
    preprocess_i3d_rgb,
    resize_short_side,
    ten_crop,
)
from vad.extractors.weights import (
    RANDOM,
    WEIGHT_SPECS,
    build_extractor,
    file_weight_kind,
    load_weights,
    missing_weights_message,
    weight_kind,
)


def split_clips(x: Tensor, clip_len: int = 16, pad_last: bool = False) -> Tensor:
    """``(C, T, H, W)`` -> ``(N, C, clip_len, H, W)`` non-overlapping clips along time.

    ``pad_last=False`` drops a trailing partial clip (N = T // clip_len, as Sultani's C3D
    clips); ``pad_last=True`` repeats the last frame to complete it (N = ceil(T / clip_len),
    as the per-snippet I3D layouts)."""
    if x.dim() != 4:
        raise ValueError(f"expected (C, T, H, W), got {tuple(x.shape)}")
    t = x.shape[1]
    rest = t % clip_len
    if rest and pad_last:
        x = torch.cat([x, x[:, -1:].expand(-1, clip_len - rest, -1, -1)], dim=1)
    n = x.shape[1] // clip_len
    x = x[:, :n * clip_len]
    return x.reshape(x.shape[0], n, clip_len, *x.shape[2:]).transpose(0, 1).contiguous()


__all__ = [
    "C3D", "C3D_CLIP_LEN", "C3D_CROP", "C3D_MEAN_BGR", "C3D_RESIZE", "FLOW_BOUND", "I3D_CLIP_LEN",
    "I3D_CROP", "I3D_SHORT_SIDE", "InceptionI3d", "RANDOM", "WEIGHT_SPECS", "build_extractor",
    "center_crop", "file_weight_kind", "load_weights", "missing_weights_message", "preprocess_c3d",
    "preprocess_c3d_batch", "preprocess_i3d_flow", "preprocess_i3d_rgb", "resize_short_side", "split_clips",
    "ten_crop", "weight_kind",
]
