"""Sequential video decoding into non-overlapping 16-frame RGB clips (OpenCV).

Conventions
-----------
* Frames come out of ``cv2.VideoCapture`` as BGR and are converted to **RGB** uint8.
* Clips are **non-overlapping** runs of ``clip_frames`` (16, like C3D/I3D and Sultani's pooling)
  consecutive frames; the **tail** of fewer than ``clip_frames`` frames is **dropped** (a video
  of F frames gives ``F // 16`` clips, frames ``16 * (F // 16)`` onwards have no clip; the
  evaluation gives them the last clip's score).
* Frame counts are obtained **by decoding** the whole stream: ``CAP_PROP_FRAME_COUNT`` comes
  from the container header and is often wrong (missing, estimated from duration x fps, or off
  by a few frames for UCF-Crime's x264 files), so it is never trusted.
* A stream that stops decoding part-way (corrupt packet) simply ends there: OpenCV gives no way
  to tell corruption from the end of the file.
* Decoding is a generator holding at most one clip: memory does not grow with video length.

Errors are :class:`VideoError` with ``reason`` one of :data:`UNREADABLE`, :data:`EMPTY` or
``too short (< N frames)`` (:func:`too_short`); the extract command records the reason and
skips the video.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

import cv2
import numpy as np

from vad.constants import CLIP_FRAMES

UNREADABLE = "unreadable"
EMPTY = "empty"


def too_short(min_frames: int = CLIP_FRAMES) -> str:
    """The reason for a video with fewer than ``min_frames`` frames: ``"too short (< 16 frames)"``."""
    return f"too short (< {min_frames} frames)"


TOO_SHORT = too_short(CLIP_FRAMES)


class VideoError(Exception):
    """A video that cannot be used: ``path``, ``reason`` (``"unreadable"``, ``"empty"`` or
    ``"too short (< 16 frames)"``) and an optional ``detail``; ``str()`` names the file."""

    def __init__(self, path, reason: str, detail: str = ""):
        self.path = str(path)
        self.reason = reason
        self.detail = detail
        super().__init__(f"{self.path}: {reason}" + (f" ({detail})" if detail else ""))

    def __reduce__(self):  # picklable across worker processes
        return (type(self), (self.path, self.reason, self.detail))


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` found: ``frames`` counted by decoding, ``fps`` from the header
    (0.0 when unknown), frame ``height`` x ``width`` in pixels."""

    path: str
    frames: int
    fps: float
    height: int
    width: int

    def n_clips(self, clip_frames: int = CLIP_FRAMES) -> int:
        """Number of full non-overlapping clips (the tail is dropped)."""
        return self.frames // clip_frames


def _open(path) -> cv2.VideoCapture:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise VideoError(path, UNREADABLE, "no such file")
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        capture.release()
        raise VideoError(path, UNREADABLE, "OpenCV cannot open it as a video")
    return capture


def to_rgb(frame_bgr: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """BGR (as decoded) -> RGB uint8, resized to ``size = (H, W)`` when given (``INTER_AREA``
    when shrinking, ``INTER_LINEAR`` when enlarging)."""
    if size is not None:
        height, width = size
        if (height, width) != frame_bgr.shape[:2]:
            shrink = height * width < frame_bgr.shape[0] * frame_bgr.shape[1]
            frame_bgr = cv2.resize(frame_bgr, (width, height),
                                   interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)


def to_gray(frame: np.ndarray) -> np.ndarray:
    """An RGB (H, W, 3) uint8 frame -> (H, W) uint8 luma; a gray (H, W) frame is returned as is."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames, found {frame.dtype}")
    if frame.ndim == 2:
        return frame
    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
    raise ValueError(f"expected an (H, W) gray or (H, W, 3) RGB frame, found {frame.shape}")


def _check_size(size) -> tuple[int, int] | None:
    if size is None:
        return None
    height, width = (int(v) for v in size)
    if height <= 0 or width <= 0:
        raise ValueError(f"size must be (H, W) with positive entries, found {size}")
    return height, width


def probe(path, min_frames: int = 1) -> VideoInfo:
    """Count the frames of ``path`` by decoding it (``grab()`` only, no colour conversion) and
    read fps and frame size. Raises :class:`VideoError` ``"unreadable"`` (missing file or not a
    video OpenCV can open), ``"empty"`` (opens but yields no frame) or ``too_short(min_frames)``
    when it has fewer than ``min_frames`` frames (pass 16 to check it gives at least one clip)."""
    capture = _open(path)
    try:
        ok, first = capture.read()
        if not ok or first is None:
            raise VideoError(path, EMPTY, "no decodable frame")
        frames = 1
        while capture.grab():
            frames += 1
        fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
    finally:
        capture.release()
    if frames < min_frames:
        raise VideoError(path, too_short(min_frames), f"{frames} frames")
    return VideoInfo(os.fspath(path), frames, float(fps), int(first.shape[0]), int(first.shape[1]))


class ClipReader:
    """Iterate over the non-overlapping ``clip_frames``-frame RGB clips of one video in one
    sequential decoding pass; after (or during) iteration ``frames`` holds the number of frames
    decoded so far and ``dropped`` the tail left out (``frames % clip_frames`` once finished).

    Iterating raises :class:`VideoError` (before yielding anything) for an unreadable file, an
    empty one, or one with fewer than ``clip_frames`` frames. Every clip is a fresh
    ``(clip_frames, H, W, 3)`` uint8 array, so consumers may keep it.
    """

    def __init__(self, path, clip_frames: int = CLIP_FRAMES, size: tuple[int, int] | None = None):
        if clip_frames < 1:
            raise ValueError(f"clip_frames must be >= 1, found {clip_frames}")
        self.path = os.fspath(path)
        self.clip_frames = int(clip_frames)
        self.size = _check_size(size)
        self.frames = 0
        self.clips = 0
        self.fps = 0.0

    @property
    def dropped(self) -> int:
        return self.frames - self.clips * self.clip_frames

    def __iter__(self) -> Iterator[np.ndarray]:
        capture = _open(self.path)
        self.frames = self.clips = 0
        try:
            self.fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
            clip = None
            filled = 0
            while True:
                ok, frame = capture.read()
                if not ok or frame is None:
                    break
                rgb = to_rgb(frame, self.size)
                if clip is None:
                    clip = np.empty((self.clip_frames, *rgb.shape), dtype=np.uint8)
                elif rgb.shape != clip.shape[1:]:
                    raise VideoError(self.path, UNREADABLE,
                                     f"frame size changes from {clip.shape[1:3]} to {rgb.shape[:2]}")
                clip[filled] = rgb
                filled += 1
                self.frames += 1
                if filled == self.clip_frames:
                    self.clips += 1
                    yield clip
                    clip, filled = None, 0
        finally:
            capture.release()
        if self.frames == 0:
            raise VideoError(self.path, EMPTY, "no decodable frame")
        if self.clips == 0:
            raise VideoError(self.path, too_short(self.clip_frames), f"{self.frames} frames")


def iter_clips(path, clip_frames: int = CLIP_FRAMES,
               size: tuple[int, int] | None = None) -> Iterator[np.ndarray]:
    """Yield the video's non-overlapping ``(clip_frames, H, W, 3)`` uint8 RGB clips in order,
    decoding sequentially; frames are resized to ``size = (H, W)`` when given; the tail of
    fewer than ``clip_frames`` frames is dropped. A generator: errors (:class:`VideoError`)
    surface on the first ``next()``. Use :class:`ClipReader` to also get the frame count."""
    return iter(ClipReader(path, clip_frames, size))
