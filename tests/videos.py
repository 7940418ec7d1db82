"""Synthetic test videos written with OpenCV (a helper module for the tests; import it as
``from tests.videos import write_video, moving_square, ...``).

Every generator returns ``(T, H, W, 3) uint8`` RGB frames built from smooth random textures
(white noise on a 4x coarser grid, upsampled bicubically), so Shi-Tomasi finds corners, Lucas-Kanade
can track them and Farneback has structure to match. All generators are deterministic in ``seed``.

Codecs: OpenCV's VideoWriter here writes MJPG, FFV1, XVID and mp4v but not H.264. ``MJPG`` (.avi)
is lossy but mild on smooth textures; ``FFV1`` (.avi) is lossless (bit-exact round trip), use it
when a test compares decoded pixels exactly.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def write_video(path, frames: np.ndarray, fps: float = 30, codec: str = "MJPG") -> Path:
    """Write ``frames`` ((T, H, W, 3) uint8 RGB; T may be 0, giving a header-only file) to
    ``path`` with ``cv2.VideoWriter`` and the four-character ``codec``; returns the path."""
    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected (T, H, W, 3) uint8 frames, found {frames.shape} {frames.dtype}")
    height, width = frames.shape[1:3]
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), float(fps), (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"cv2.VideoWriter cannot write {codec!r} to {path}")
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path


def texture(H: int, W: int, seed: int = 0, grain: int = 4) -> np.ndarray:
    """A smooth random (H, W, 3) uint8 texture: uniform noise on an (H/grain, W/grain) grid,
    upsampled with bicubic interpolation (blobs ~``grain`` px wide, many good corners)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(1, H // grain), max(1, W // grain), 3), dtype=np.uint8)
    return cv2.resize(small, (W, H), interpolation=cv2.INTER_CUBIC)


def _reflect(value: int, high: int) -> int:
    """Fold ``value`` into [0, high] by bouncing off both ends (a triangle wave)."""
    if high <= 0:
        return 0
    u = value % (2 * high)
    return u if u <= high else 2 * high - u


def moving_square(T: int, H: int = 120, W: int = 160, dx: int = 2, dy: int = 0, size: int = 40,
                  seed: int = 0, return_boxes: bool = False):
    """A textured ``size`` x ``size`` square translating by (dx, dy) px per frame over a static
    textured background (positive dx = to the right, positive dy = down).

    The square starts at the left edge when dx > 0, the right edge when dx < 0 and centred when
    dx == 0 (likewise top/bottom for dy), so it moves freely for ``(W - size) / |dx|`` frames;
    after that it bounces off the border. With ``return_boxes`` also returns a (T, 4) int array
    of the square's ``(x, y, w, h)`` per frame.
    """
    background = texture(H, W, seed)
    patch = texture(size, size, seed + 1000)
    patch = (patch // 2 + 128).astype(np.uint8)  # brighter than the background: clear edges
    free_x, free_y = W - size, H - size
    x0 = 0 if dx > 0 else free_x if dx < 0 else free_x // 2
    y0 = 0 if dy > 0 else free_y if dy < 0 else free_y // 2
    frames = np.empty((T, H, W, 3), dtype=np.uint8)
    boxes = np.empty((T, 4), dtype=np.int64)
    for t in range(T):
        x, y = _reflect(x0 + dx * t, free_x), _reflect(y0 + dy * t, free_y)
        frames[t] = background
        frames[t, y:y + size, x:x + size] = patch
        boxes[t] = (x, y, size, size)
    return (frames, boxes) if return_boxes else frames


def translating_pattern(T: int, H: int = 120, W: int = 160, dx: int = 2, dy: int = 0,
                        seed: int = 0) -> np.ndarray:
    """A full-frame texture translating by (dx, dy) px per frame (a crop sliding over a larger
    texture): every pixel moves by exactly (dx, dy), no static background."""
    margin_x, margin_y = abs(dx) * T, abs(dy) * T
    big = texture(H + margin_y, W + margin_x, seed)
    x0 = margin_x if dx > 0 else 0
    y0 = margin_y if dy > 0 else 0
    frames = np.empty((T, H, W, 3), dtype=np.uint8)
    for t in range(T):
        # The view moves against the content: content shifts by +dx when the crop shifts by -dx.
        x, y = x0 - dx * t, y0 - dy * t
        frames[t] = big[y:y + H, x:x + W]
    return frames


def static_scene(T: int, H: int = 120, W: int = 160, seed: int = 0) -> np.ndarray:
    """The same textured frame repeated ``T`` times (no motion at all)."""
    return np.repeat(texture(H, W, seed)[None], T, axis=0)


def noise(T: int, H: int = 120, W: int = 160, seed: int = 0) -> np.ndarray:
    """Independent uniform noise per frame (no coherent motion, everything changes)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (T, H, W, 3), dtype=np.uint8)


def scene_cut(T: int, H: int = 120, W: int = 160, cut: int | None = None, seed: int = 0) -> np.ndarray:
    """A static texture that switches to an unrelated one at frame ``cut`` (default T // 2):
    tracked corners are lost at the cut."""
    cut = T // 2 if cut is None else cut
    frames = static_scene(T, H, W, seed)
    frames[cut:] = texture(H, W, seed + 1)
    return frames


def burst_scene(T: int, H: int = 120, W: int = 160, burst: tuple[int, int] | None = None,
                objects: int = 4, size: int | None = None, speed: int = 12, seed: int = 0) -> np.ndarray:
    """A calm textured scene (a static background and one small patch drifting 1 px/frame)
    with, during frames ``[burst[0], burst[1])`` (0-based, end exclusive; ``None``: no burst),
    ``objects`` large textured squares (side ``size``, default ``H // 2``) crossing the frame
    at ``speed`` px/frame in random directions, bouncing off the borders: the "anomaly" of the
    learned end-to-end demo. Deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    background = texture(H, W, seed)
    drifter = (texture(H // 8, H // 8, seed + 1) // 2 + 64).astype(np.uint8)
    size = H // 2 if size is None else size
    patches = [(texture(size, size, seed + 2 + i) // 2 + 128).astype(np.uint8) for i in range(objects)]
    start = rng.integers(0, [max(1, W - size), max(1, H - size)], size=(objects, 2))
    angle = rng.uniform(0, 2 * np.pi, objects)
    step = np.stack([np.cos(angle), np.sin(angle)], axis=1) * speed
    frames = np.empty((T, H, W, 3), dtype=np.uint8)
    d = drifter.shape[0]
    for t in range(T):
        frames[t] = background
        x = _reflect(W // 3 + t, W - d)
        frames[t, H // 2:H // 2 + d, x:x + d] = drifter
        if burst is not None and burst[0] <= t < burst[1]:
            k = t - burst[0]
            for (x0, y0), (sx, sy), patch in zip(start, step, patches):
                x = _reflect(int(x0 + sx * k), W - size)
                y = _reflect(int(y0 + sy * k), H - size)
                frames[t, y:y + size, x:x + size] = patch
    return frames
