"""annotated.mp4: the scored video with an overlay a person can read at a glance (a score gauge
with the threshold mark, the score curve of the last seconds, a red frame during events, the
time stamp), encoded H.264 by PyAV, because OpenCV's writers cannot make H.264 and browsers play
little else in an .mp4.

One sequential pass: OpenCV decodes a frame (BGR), the overlay is drawn on it in place, libx264
encodes it; memory does not grow with the video's length. Browser-safe output: yuv420p (which
needs an even width and height, so an odd last row/column is cropped) and +faststart (the index
first, so the video plays while it loads)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from vad.io import atomic_path
from vad.video import EMPTY, UNREADABLE, VideoError

WINDOW_S = 10.0  # seconds of score history drawn
CRF, PRESET = 23, "veryfast"
# BGR colours
WHITE, BLACK, RED, GREEN = (255, 255, 255), (0, 0, 0), (0, 0, 255), (80, 200, 80)
YELLOW, EVENT_SHADE = (0, 215, 255), (40, 40, 150)


class Overlay:
    """Draws the overlay of frame ``i`` on a BGR frame of a fixed size, in place."""

    def __init__(self, height: int, width: int, frame_scores: np.ndarray, events, fps: float,
                 threshold: float | None, window_s: float = WINDOW_S):
        self.scores = np.asarray(frame_scores, dtype=np.float64).reshape(-1)
        self.fps = fps
        self.threshold = threshold
        self.in_event = np.zeros(len(self.scores), dtype=bool)
        for event in events:
            self.in_event[max(0, event.start):max(0, event.end)] = True
        self.top = max(1.0, float(self.scores.max()) if len(self.scores) else 1.0)
        unit = max(height / 240.0, 0.5)
        self.font = 0.42 * unit
        self.thick = max(1, round(unit))
        self.border = max(3, round(height / 60))
        self.margin = max(2, round(4 * unit))
        self.panel_top = height - max(24, round(0.22 * height))
        gauge_w = max(8, round(12 * unit))
        self.gauge = (width - self.margin - gauge_w, self.panel_top + self.margin,
                      width - self.margin, height - self.margin)
        text_w = cv2.getTextSize("0.00", cv2.FONT_HERSHEY_SIMPLEX, self.font, self.thick)[0][0]
        self.curve = (self.margin, self.panel_top + self.margin,
                      self.gauge[0] - text_w - 2 * self.margin, height - self.margin)
        self.window = max(2, round(window_s * fps))
        self.step = max(1, int(np.ceil(self.window / max(1, self.curve[2] - self.curve[0]))))

    def _y(self, values: np.ndarray, box) -> np.ndarray:
        _, y0, _, y1 = box
        return np.round(y1 - np.clip(values / self.top, 0, 1) * (y1 - y0)).astype(np.int32)

    def _x(self, frames: np.ndarray, i: int) -> np.ndarray:
        x0, _, x1, _ = self.curve
        return np.round(x1 - (i - frames) * (x1 - x0) / (self.window - 1)).astype(np.int32)

    def _text(self, frame, text, org, colour=WHITE):
        cv2.putText(frame, text, org, cv2.FONT_HERSHEY_SIMPLEX, self.font, BLACK, self.thick + 2, cv2.LINE_AA)
        cv2.putText(frame, text, org, cv2.FONT_HERSHEY_SIMPLEX, self.font, colour, self.thick, cv2.LINE_AA)

    def draw(self, frame: np.ndarray, i: int) -> None:
        k = min(i, len(self.scores) - 1)  # frames beyond the scores take the last one
        score, alarm = self.scores[k], self.in_event[k]
        height, width = frame.shape[:2]
        panel = frame[self.panel_top:]
        np.right_shift(panel, 1, out=panel)  # darken the panel: the curve stays readable on any footage
        # recent score curve, event stretches shaded, threshold line
        first = max(0, k - self.window + 1)
        frames = np.arange(first - first % self.step, k + 1, self.step)
        frames = np.unique(np.clip(np.append(frames, k), first, k))
        x0, y0, x1, y1 = self.curve
        xs = self._x(frames, k)
        marks = self.in_event[frames]
        if marks.any():
            edges = np.flatnonzero(np.diff(np.concatenate(([0], marks.astype(np.int8), [0]))))
            for a, b in zip(edges[::2], edges[1::2]):
                cv2.rectangle(frame, (int(xs[a]), y0), (int(xs[b - 1]), y1), EVENT_SHADE, -1)
        if self.threshold is not None:
            ty = int(self._y(np.array([self.threshold]), self.curve)[0])
            cv2.line(frame, (x0, ty), (x1, ty), YELLOW, 1, cv2.LINE_AA)
        points = np.stack([xs, self._y(self.scores[frames], self.curve)], axis=1)
        cv2.polylines(frame, [points.reshape(-1, 1, 2)], False, WHITE, self.thick, cv2.LINE_AA)
        # gauge: the current score as a bar, the threshold as a tick across it
        gx0, gy0, gx1, gy1 = self.gauge
        level = int(self._y(np.array([score]), self.gauge)[0])
        cv2.rectangle(frame, (gx0, level), (gx1, gy1), RED if alarm else GREEN, -1)
        cv2.rectangle(frame, (gx0, gy0), (gx1, gy1), WHITE, 1)
        if self.threshold is not None:
            ty = int(self._y(np.array([self.threshold]), self.gauge)[0])
            cv2.line(frame, (gx0 - self.margin, ty), (gx1 + self.margin // 2, ty), YELLOW, self.thick)
        self._text(frame, f"{score:.2f}", (x1 + self.margin, (gy0 + gy1) // 2 + round(6 * self.font)),
                   RED if alarm else WHITE)
        # time stamp, and the alarm frame
        seconds = i / self.fps
        stamp = f"{int(seconds // 60):02d}:{seconds % 60:05.2f}  #{i}"
        self._text(frame, stamp, (self.border + self.margin, self.border + self.margin + round(22 * self.font)))
        if alarm:
            cv2.rectangle(frame, (0, 0), (width - 1, height - 1), RED, self.border)


def annotate_video(src_path, out_path, frame_scores: np.ndarray, events, fps: float,
                   threshold: float | None = None, window_s: float = WINDOW_S) -> int:
    """Write ``out_path`` (H.264 .mp4): the frames of ``src_path`` with the overlay of their scores
    (``frame_scores[i]`` for decoded frame i, the last score for frames beyond; ``events`` with
    0-based ``start``/``end`` frames, end exclusive); returns the number of frames written.
    ``fps`` is the output rate (the source's). Raises :class:`vad.video.VideoError` for a source
    OpenCV cannot read."""
    import av

    fps = float(fps)
    if not fps > 0:
        raise ValueError(f"annotate_video: fps must be > 0, found {fps} ({src_path})")
    if len(np.asarray(frame_scores).reshape(-1)) == 0:
        raise ValueError(f"annotate_video: no frame scores for {src_path}")
    capture = cv2.VideoCapture(str(src_path))
    if not capture.isOpened():
        capture.release()
        raise VideoError(src_path, UNREADABLE, "OpenCV cannot open it as a video")
    try:
        ok, frame = capture.read()
        if not ok or frame is None:
            raise VideoError(src_path, EMPTY, "no decodable frame")
        first_shape = frame.shape[:2]
        height, width = first_shape[0] & ~1, first_shape[1] & ~1
        overlay = Overlay(height, width, frame_scores, events, fps, threshold, window_s)
        with atomic_path(Path(out_path)) as tmp:
            with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as container:
                stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001),
                                              options={"crf": str(CRF), "preset": PRESET})
                stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
                i = 0
                while ok and frame is not None:
                    if frame.shape[:2] != first_shape:
                        raise VideoError(src_path, UNREADABLE,
                                         f"frame size changes from {first_shape} to {frame.shape[:2]}")
                    frame = np.ascontiguousarray(frame[:height, :width])
                    overlay.draw(frame, i)
                    container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")))
                    i += 1
                    ok, frame = capture.read()
                container.mux(stream.encode(None))
    finally:
        capture.release()
    return i
