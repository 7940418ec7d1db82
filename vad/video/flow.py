"""Dense optical flow for the capstone's "C3D on Farneback denseflow" stream.

Conventions
-----------
* A flow field is ``(H, W, 2)`` float32 in pixels on the grid of the *earlier* frame:
  ``prev[y, x] ~ next[y + flow[y, x, 1], x + flow[y, x, 0]]``. Channel 0 is x (positive =
  motion to the right), channel 1 is y (positive = motion down).
* Flows are **backward-looking**: the flow of frame t is the motion from frame t-1 to frame t,
  so a stream of clips can be processed without look-ahead. :class:`FlowStream` carries the
  last frame of the previous clip, so every 16-frame clip gets 16 flows; the very first frame
  of a video has no predecessor and reuses the flow of frames 0 -> 1 (a zero flow would insert
  a spurious "nothing moves" frame).

Methods
-------
* ``farneback``: ``cv2.calcOpticalFlowFarneback`` with :data:`FARNEBACK_PARAMS`, the OpenCV
  tutorial values the capstone and most "denseflow" extractors use (pyramid scale 0.5, 3 levels,
  15 px averaging window, 3 iterations, 5 px polynomial neighbourhood with sigma 1.2, no flags).
  ~25 ms per 320x240 pair on this machine kind.
* ``tvl1``: Dual TV-L1 (``cv2.optflow.DualTVL1OpticalFlow_create()`` defaults), the flow I3D's
  flow stream was trained on; needs ``opencv-contrib-python-headless`` (~125 ms per pair).
* ``auto``: ``tvl1`` when contrib is installed, else ``farneback``; record
  :func:`resolve_method`'s answer with the features, since it depends on the installation.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import cv2
import numpy as np

from vad.video.decode import to_gray

FlowFn = Callable[[np.ndarray, np.ndarray], np.ndarray]

#: ``cv2.calcOpticalFlowFarneback`` parameters (positional order of OpenCV's signature).
FARNEBACK_PARAMS = dict(pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2,
                        flags=0)
#: Flow magnitudes are clipped to +-``FLOW_BOUND`` px before rendering/scaling (the I3D/TSN value).
FLOW_BOUND = 20.0
METHODS = ("farneback", "tvl1", "auto")
CONTRIB_HINT = "pip install opencv-contrib-python-headless"


def farneback(prev_gray: np.ndarray, next_gray: np.ndarray) -> np.ndarray:
    """Farneback dense flow from ``prev_gray`` to ``next_gray`` ((H, W) uint8; RGB frames are
    converted to gray) -> (H, W, 2) float32, parameters :data:`FARNEBACK_PARAMS`."""
    prev_gray, next_gray = to_gray(prev_gray), to_gray(next_gray)
    p = FARNEBACK_PARAMS
    flow = cv2.calcOpticalFlowFarneback(prev_gray, next_gray, None, p["pyr_scale"], p["levels"],
                                        p["winsize"], p["iterations"], p["poly_n"], p["poly_sigma"],
                                        p["flags"])
    return flow.astype(np.float32, copy=False)


def _tvl1_factory():
    optflow = getattr(cv2, "optflow", None)
    return getattr(optflow, "DualTVL1OpticalFlow_create", None) if optflow is not None else None


def has_tvl1() -> bool:
    """Whether TV-L1 is available (``cv2.optflow`` from opencv-contrib)."""
    return _tvl1_factory() is not None


_TVL1 = threading.local()


def tvl1(prev_gray: np.ndarray, next_gray: np.ndarray) -> np.ndarray:
    """Dual TV-L1 flow (OpenCV contrib defaults: tau 0.25, lambda 0.15, theta 0.3, 5 scales,
    5 warps, epsilon 0.01) -> (H, W, 2) float32. One solver per thread (a solver is not
    thread-safe)."""
    factory = _tvl1_factory()
    if factory is None:
        raise RuntimeError(f"TV-L1 optical flow needs OpenCV contrib (cv2.optflow): {CONTRIB_HINT}")
    if getattr(_TVL1, "solver", None) is None:
        _TVL1.solver = factory()
    flow = _TVL1.solver.calc(to_gray(prev_gray), to_gray(next_gray), None)
    return flow.astype(np.float32, copy=False)


def resolve_method(name: str) -> str:
    """``"farneback"`` or ``"tvl1"`` for ``name`` in :data:`METHODS` (``auto`` -> tvl1 when
    contrib is installed, else farneback); raises for unknown names or tvl1 without contrib."""
    name = str(name).lower()
    if name not in METHODS:
        raise ValueError(f"unknown optical flow method {name!r}; choose one of {', '.join(METHODS)}")
    if name == "auto":
        return "tvl1" if has_tvl1() else "farneback"
    if name == "tvl1" and not has_tvl1():
        raise RuntimeError("optical flow method 'tvl1' needs OpenCV contrib (cv2.optflow), which is "
                           f"not installed: {CONTRIB_HINT} (or use method 'farneback')")
    return name


def flow_method(name: str = "farneback") -> FlowFn:
    """The flow function ``f(prev_gray, next_gray) -> (H, W, 2) float32`` for ``name``."""
    return {"farneback": farneback, "tvl1": tvl1}[resolve_method(name)]


class FlowStream:
    """Backward-looking flows for consecutive clips of one video: ``update(clip)`` with a
    (T, H, W, 3) RGB or (T, H, W) gray uint8 clip returns (T, H, W, 2) float32, flow t being
    frame t-1 -> frame t, where frame -1 is the last frame of the previous clip. On the first
    clip of a video (or after :meth:`reset`) flow 0 repeats flow 1 (zeros for a 1-frame clip).
    Feed the clips in decoding order; call :meth:`reset` between videos.

    ``workers > 1`` computes a clip's frame pairs on that many threads (OpenCV releases the GIL
    while it computes flow): the flow of one 320x240 clip is ~0.35 s of one core, far slower
    than a GPU network, so on a GPU machine the spare cores must share it. Same result as one
    worker; call :meth:`close` (or use ``with``) to stop the threads."""

    def __init__(self, method: str = "farneback", prev_frame: np.ndarray | None = None,
                 workers: int = 1):
        self.method = resolve_method(method)
        self._fn = flow_method(self.method)
        self._prev = None if prev_frame is None else to_gray(prev_frame)
        if int(workers) < 1:
            raise ValueError(f"flow workers must be >= 1, found {workers}")
        self.workers = int(workers)
        self._pool = (ThreadPoolExecutor(self.workers, thread_name_prefix="vad-flow")
                      if self.workers > 1 else None)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __enter__(self) -> "FlowStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def reset(self) -> None:
        self._prev = None

    def update(self, clip: np.ndarray) -> np.ndarray:
        clip = np.asarray(clip)
        if clip.ndim not in (3, 4) or len(clip) == 0:
            raise ValueError(f"expected a (T, H, W[, 3]) clip with T >= 1, found {clip.shape}")
        grays = [to_gray(frame) for frame in clip]
        height, width = grays[0].shape
        if self._prev is not None and self._prev.shape != (height, width):
            raise ValueError(f"frame size changed from {self._prev.shape} to {(height, width)}; "
                             "call reset() between videos")
        flows = np.zeros((len(grays), height, width, 2), dtype=np.float32)
        pairs = [(t, prev, gray) for t, (prev, gray) in enumerate(zip([self._prev] + grays[:-1], grays))
                 if prev is not None]

        def one(pair):
            t, prev, gray = pair
            flows[t] = self._fn(prev, gray)

        if self._pool is not None:
            list(self._pool.map(one, pairs))
        else:
            for pair in pairs:
                one(pair)
        if self._prev is None and len(grays) > 1:
            flows[0] = flows[1]
        self._prev = grays[-1]
        return flows


def clip_flow(clip_rgb: np.ndarray, method: str = "farneback",
              prev_frame: np.ndarray | None = None) -> np.ndarray:
    """(T, H, W, 3) clip -> (T, H, W, 2) backward flows (see :class:`FlowStream`); pass the
    previous clip's last frame as ``prev_frame`` to get a real flow for frame 0."""
    return FlowStream(method, prev_frame).update(clip_rgb)


def render_denseflow(flow: np.ndarray, bound: float = FLOW_BOUND) -> np.ndarray:
    """The capstone's (x, y, 0) image of a flow field, the input of C3D's denseflow stream:
    (..., 2) float -> (..., 3) uint8 with channel 0 = x, channel 1 = y, channel 2 = 0.
    Each component is clipped to [-bound, bound] px and mapped by ``round(128 + v * 128 / bound)``
    clipped to 0..255: zero flow -> 128, -bound -> 0, +bound -> 255 (saturates; 256 clipped)."""
    flow = np.asarray(flow, dtype=np.float32)
    if flow.shape[-1] != 2:
        raise ValueError(f"expected a (..., 2) flow, found {flow.shape}")
    scaled = np.clip(np.rint(128.0 + np.clip(flow, -bound, bound) * (128.0 / bound)), 0, 255)
    image = np.zeros(flow.shape[:-1] + (3,), dtype=np.uint8)
    image[..., :2] = scaled.astype(np.uint8)
    return image


def scale_flow_i3d(flow: np.ndarray, bound: float = FLOW_BOUND) -> np.ndarray:
    """I3D flow-stream input: each component clipped to [-bound, bound] and divided by bound,
    (..., 2) float32 in [-1, 1]."""
    return (np.clip(np.asarray(flow, dtype=np.float32), -bound, bound) / bound).astype(np.float32)
