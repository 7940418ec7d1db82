"""C3D (Tran et al., ICCV 2015) in the Sports-1M layout of ``c3d.pickle``, and its preprocessing.

The module names are those of the PyTorch conversion of the Sports-1M Caffe model that
UCF-Crime feature extractors load (``c3d.pickle``, a plain state_dict): ``conv1``, ``conv2``,
``conv3a``, ``conv3b``, ``conv4a``, ``conv4b``, ``conv5a``, ``conv5b``, ``fc6``, ``fc7``,
``fc8`` (``.weight``/``.bias``; 22 tensors, 79,991,015 numbers). The feature used by Sultani et
al. (CVPR 2018) is ``relu(fc6)``, 4096-d, of a 16-frame 112x112 clip.

Preprocessing (:func:`preprocess_c3d`) follows the original Caffe C3D test pipeline:

- frames resized to **128 x 171** (H x W; bilinear, ``cv2.INTER_LINEAR``), whatever the
  source aspect ratio (C3D's ``new_height: 128, new_width: 171``);
- channel order **BGR** (Caffe reads frames with OpenCV; the first conv1 input channel is B);
- **mean subtraction** on 0-255 values: the original subtracts the full Sports-1M mean clip
  (``sport1m_train16_128_mean.binaryproto``, 3x16x128x171). We subtract its per-channel
  average ``C3D_MEAN_BGR = (90.25, 97.66, 101.41)`` (B, G, R) -- the documented choice here,
  the constant the common PyTorch ports of the Sports-1M model use in place of the mean clip
  (the mean clip is nearly constant over space and time, so the difference is small); no
  scaling by a standard deviation;
- **centre crop 112 x 112** after the 128x171 resize: rows 8..119, columns 29..140 (Caffe's
  integer centre offsets ``(128-112)//2``, ``(171-112)//2``).

Note: DavideA/c3d-pytorch's ``predict.py`` demo (which many UCF-Crime extractors copied)
instead resizes to 112x200, keeps RGB order and subtracts nothing. Features made that way are
not interchangeable with these; pass ``mean=None, bgr=False`` to get the same channel
order/offset convention (the geometry stays 128x171 -> 112).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from vad.extractors.random_init import variance_preserving

#: Per-channel Sports-1M mean, BGR order, on 0-255 values (see the module docstring).
C3D_MEAN_BGR: tuple[float, float, float] = (90.25, 97.66, 101.41)
#: Resize target (H, W) before the centre crop, as the original C3D.
C3D_RESIZE: tuple[int, int] = (128, 171)
#: Crop side and clip length the network expects (fc6 takes 512 x 1 x 4 x 4 = 8192).
C3D_CROP = 112
C3D_CLIP_LEN = 16
C3D_NUM_CLASSES = 487  # Sports-1M


class C3D(nn.Module):
    """C3D with Sports-1M ``c3d.pickle`` module names. Input ``(B, 3, 16, 112, 112)`` float.

    ``features(x)`` (and ``forward``) -> ``relu(fc6)`` ``(B, 4096)``; ``classify(x)`` ->
    ``fc8`` ``(B, 487)`` (Sports-1M classes, for sanity checks of real weights). Randomly
    initialised by :func:`vad.extractors.random_init.variance_preserving` (biases 0).
    """

    feature_dim = 4096
    clip_len = C3D_CLIP_LEN
    crop_size = C3D_CROP

    def __init__(self, num_classes: int = C3D_NUM_CLASSES):
        super().__init__()
        self.conv1 = nn.Conv3d(3, 64, kernel_size=3, padding=1)
        self.pool1 = nn.MaxPool3d(kernel_size=(1, 2, 2), stride=(1, 2, 2))
        self.conv2 = nn.Conv3d(64, 128, kernel_size=3, padding=1)
        self.pool2 = nn.MaxPool3d(kernel_size=2, stride=2)
        self.conv3a = nn.Conv3d(128, 256, kernel_size=3, padding=1)
        self.conv3b = nn.Conv3d(256, 256, kernel_size=3, padding=1)
        self.pool3 = nn.MaxPool3d(kernel_size=2, stride=2)
        self.conv4a = nn.Conv3d(256, 512, kernel_size=3, padding=1)
        self.conv4b = nn.Conv3d(512, 512, kernel_size=3, padding=1)
        self.pool4 = nn.MaxPool3d(kernel_size=2, stride=2)
        self.conv5a = nn.Conv3d(512, 512, kernel_size=3, padding=1)
        self.conv5b = nn.Conv3d(512, 512, kernel_size=3, padding=1)
        self.pool5 = nn.MaxPool3d(kernel_size=2, stride=2, padding=(0, 1, 1))
        self.fc6 = nn.Linear(8192, 4096)
        self.fc7 = nn.Linear(4096, 4096)
        self.fc8 = nn.Linear(4096, num_classes)
        self.dropout = nn.Dropout(p=0.5)
        self.relu = nn.ReLU()
        for name, layer in self.named_children():
            if isinstance(layer, (nn.Conv3d, nn.Linear)):
                variance_preserving(layer, relu=name != "fc8")  # fc8 gives logits, no ReLU

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 5 or tuple(x.shape[1:]) != (3, C3D_CLIP_LEN, C3D_CROP, C3D_CROP):
            raise ValueError(f"C3D expects (B, 3, {C3D_CLIP_LEN}, {C3D_CROP}, {C3D_CROP}) clips, "
                             f"got {tuple(x.shape)}")

    def _pool5(self, x: Tensor) -> Tensor:
        self._check_input(x)
        r = self.relu
        h = self.pool1(r(self.conv1(x)))
        h = self.pool2(r(self.conv2(h)))
        h = self.pool3(r(self.conv3b(r(self.conv3a(h)))))
        h = self.pool4(r(self.conv4b(r(self.conv4a(h)))))
        h = self.pool5(r(self.conv5b(r(self.conv5a(h)))))
        return h.flatten(1)  # (B, 512*1*4*4), (C, T, H, W) order as the original

    def features(self, x: Tensor) -> Tensor:
        """``relu(fc6)``: ``(B, 3, 16, 112, 112)`` -> ``(B, 4096)``, non-negative."""
        return self.relu(self.fc6(self._pool5(x)))

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)

    def classify(self, x: Tensor) -> Tensor:
        """Sports-1M class scores ``(B, 487)`` (fc8, before the softmax)."""
        h = self.dropout(self.features(x))
        h = self.dropout(self.relu(self.fc7(h)))
        return self.fc8(h)


def _as_frames(frames: np.ndarray, ndim: int) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != ndim or frames.shape[-1] != 3:
        raise ValueError(f"expected {'(N, T, H, W, 3)' if ndim == 5 else '(T, H, W, 3)'} RGB "
                         f"frames, got shape {frames.shape}")
    if frames.shape[-4] == 0:
        raise ValueError("no frames")
    return frames


def preprocess_c3d(frames_uint8_rgb: np.ndarray, *, mean: tuple[float, float, float] | None = C3D_MEAN_BGR,
                   bgr: bool = True) -> Tensor:
    """RGB frames ``(T, H, W, 3)`` (uint8, 0-255) -> C3D input ``(3, T, 112, 112)`` float32.

    Resize to 128x171 (bilinear), centre crop 112x112, reorder to BGR (``bgr=True``), subtract
    ``mean`` (given in the output channel order; ``None`` = no subtraction). ``T`` may be a
    whole video: split the result along dim 1 into 16-frame clips afterwards.
    """
    frames = _as_frames(frames_uint8_rgb, 4)
    rh, rw = C3D_RESIZE
    top, left = (rh - C3D_CROP) // 2, (rw - C3D_CROP) // 2
    out = np.empty((frames.shape[0], C3D_CROP, C3D_CROP, 3), dtype=np.float32)
    for i, frame in enumerate(frames):
        if frame.shape[:2] != (rh, rw):
            frame = cv2.resize(frame, (rw, rh), interpolation=cv2.INTER_LINEAR)
        out[i] = frame[top:top + C3D_CROP, left:left + C3D_CROP]
    if bgr:
        out = out[..., ::-1]
    if mean is not None:
        out = out - np.asarray(mean, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(out.transpose(3, 0, 1, 2)))


def preprocess_c3d_batch(clips_uint8_rgb: np.ndarray, **kwargs) -> Tensor:
    """``(N, T, H, W, 3)`` uint8 RGB clips -> ``(N, 3, T, 112, 112)``; see :func:`preprocess_c3d`."""
    clips = _as_frames(clips_uint8_rgb, 5)
    return torch.stack([preprocess_c3d(clip, **kwargs) for clip in clips])
