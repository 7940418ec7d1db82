"""The capstone's "movement values": summed Lucas-Kanade displacement of Shi-Tomasi corners.

Per frame t: the good points of frame t-1 are tracked into frame t with pyramidal Lucas-Kanade;
points whose LK ``status`` is 1 are kept and the movement of frame t is the **sum of their
displacement magnitudes** in pixels (frame 0 of a video: 0). Per clip: the sum over its 16
frames (the first clip has 15 real values). Per video: 32 segment values by Sultani's pooling
without normalisation; training uses ``k * |m_t / m_{t-1} - 1|`` (:mod:`vad.movement_term`).

Parameters (the OpenCV LK tutorial's, which the capstone used):

* Shi-Tomasi ``cv2.goodFeaturesToTrack``: ``maxCorners=100``, ``qualityLevel=0.3`` (corners at
  least 30 % as strong as the strongest), ``minDistance=7`` px, ``blockSize=7``.
* ``cv2.calcOpticalFlowPyrLK``: ``winSize=(15, 15)``, ``maxLevel=2`` (3 pyramid levels),
  criteria ``EPS | COUNT``, 10 iterations, epsilon 0.03.
* Re-detection (on the current frame, after its movement is measured, replacing the tracked
  set): when fewer than ``min_points`` (10) points survive (tracking lost: scene cut, occlusion,
  points leaving the frame) and every ``redetect_every`` (16) frames, so objects that enter the
  scene get corners too. Being a sum over <= 100 points, values depend on the frame size:
  compute them at one fixed size for a whole dataset.
"""

from __future__ import annotations

import os
from typing import Iterable

import cv2
import numpy as np

from vad.constants import CLIP_FRAMES, N_SEGMENTS
from vad.pooling import pool_segments
from vad.video.decode import iter_clips, to_gray

FEATURE_PARAMS = dict(maxCorners=100, qualityLevel=0.3, minDistance=7, blockSize=7)
LK_PARAMS = dict(winSize=(15, 15), maxLevel=2,
                 criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 10, 0.03))
MIN_POINTS = 10
REDETECT_EVERY = 16


class MovementTracker:
    """Stateful per-video tracker: :meth:`update_frame` takes frames, :meth:`update` takes a
    (T, H, W, 3) RGB or (T, H, W) gray uint8 clip and returns its summed movement, so the same
    decoded clips can feed the network, the flow and the movement in one pass. Call
    :meth:`reset` between videos."""

    def __init__(self, feature_params: dict | None = None, lk_params: dict | None = None,
                 min_points: int = MIN_POINTS, redetect_every: int = REDETECT_EVERY):
        self.feature_params = dict(FEATURE_PARAMS, **(feature_params or {}))
        self.lk_params = dict(LK_PARAMS, **(lk_params or {}))
        self.min_points = int(min_points)
        self.redetect_every = int(redetect_every)
        self.reset()

    def reset(self) -> None:
        self._prev: np.ndarray | None = None
        self._points: np.ndarray | None = None  # (N, 1, 2) float32 corners of self._prev
        self._since_detect = 0
        self.frames = 0
        self.detections = 0

    @property
    def n_points(self) -> int:
        """Number of points currently tracked."""
        return 0 if self._points is None else len(self._points)

    def _detect(self, gray: np.ndarray) -> None:
        corners = cv2.goodFeaturesToTrack(gray, mask=None, **self.feature_params)
        self._points = None if corners is None else corners.astype(np.float32).reshape(-1, 1, 2)
        self._since_detect = 0
        self.detections += 1

    def update_frame(self, frame: np.ndarray) -> float:
        """Movement (px) of ``frame`` relative to the previous frame; 0.0 for the first."""
        gray = np.ascontiguousarray(to_gray(frame))
        if self._prev is not None and gray.shape != self._prev.shape:
            raise ValueError(f"frame size changed from {self._prev.shape} to {gray.shape}; "
                             "call reset() between videos")
        movement = 0.0
        if self._prev is None:
            self._detect(gray)
        else:
            if self.n_points:
                moved, status, _err = cv2.calcOpticalFlowPyrLK(self._prev, gray, self._points, None,
                                                               **self.lk_params)
                good = status.reshape(-1) == 1
                old, new = self._points[good], moved[good]
                movement = float(np.linalg.norm((new - old).reshape(-1, 2), axis=1).sum())
                self._points = new.reshape(-1, 1, 2)
            self._since_detect += 1
            if self.n_points < self.min_points or self._since_detect >= self.redetect_every:
                self._detect(gray)
        self._prev = gray
        self.frames += 1
        return movement

    def update(self, clip: np.ndarray) -> float:
        """Summed movement of the frames of ``clip`` (in order, continuing from the last one)."""
        clip = np.asarray(clip)
        if clip.ndim not in (3, 4):
            raise ValueError(f"expected a (T, H, W[, 3]) clip, found {clip.shape}")
        return float(sum(self.update_frame(frame) for frame in clip))


def movement_per_clip(source, clip_frames: int = CLIP_FRAMES, size: tuple[int, int] | None = None,
                      tracker: MovementTracker | None = None) -> np.ndarray:
    """(n_clips,) float32 summed movement per clip of ``source``: a video path (decoded with
    :func:`~vad.video.decode.iter_clips`, ``clip_frames`` and ``size`` passed on; may raise
    :class:`~vad.video.decode.VideoError`) or an iterable of clips. Uses a fresh tracker unless
    one is given (its state is reset first)."""
    clips: Iterable[np.ndarray]
    if isinstance(source, (str, os.PathLike)):
        clips = iter_clips(source, clip_frames, size)
    else:
        clips = source
    tracker = tracker or MovementTracker()
    tracker.reset()
    return np.asarray([tracker.update(clip) for clip in clips], dtype=np.float32)


def movement_segments(per_clip: np.ndarray, n_segments: int = N_SEGMENTS) -> np.ndarray:
    """(n_segments,) float32 movement per segment: Sultani's bins over the clips, mean per bin,
    no L2 normalisation (``pool_segments(per_clip[:, None], normalise=False)``)."""
    per_clip = np.asarray(per_clip, dtype=np.float32).reshape(-1)
    return pool_segments(per_clip[:, None], n_segments, normalise=False)[:, 0]
