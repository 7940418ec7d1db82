"""Scores -> events: a threshold, hysteresis and a minimum duration, applied causally by
:class:`EventTracker` in both scoring modes (a video's frame scores go through it in order, a
stream's clip scores as they come), and the event-level precision/recall against annotated
spans. Numpy only.

An event opens at the first frame scoring ``>= threshold`` and closes at the first frame
scoring ``< threshold - hysteresis`` (so a score wavering around the threshold gives one event,
not many); events shorter than ``min_duration_s`` are dropped. Frames are 0-based and ``end``
is exclusive: ``[start, end)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vad.cli import UserError
from vad.detection.calibration import far_threshold

FAR_PREFIX = "far@"


@dataclass(frozen=True)
class Event:
    """Frames ``[start, end)`` of one event, the video's ``fps``, and its peak and mean score."""

    start: int
    end: int
    fps: float
    peak: float
    peak_frame: int
    mean: float

    @property
    def start_s(self) -> float:
        return self.start / self.fps

    @property
    def end_s(self) -> float:
        return self.end / self.fps

    @property
    def duration_s(self) -> float:
        return (self.end - self.start) / self.fps

    def as_dict(self) -> dict:
        """The event for ``events.json``: frames, seconds (ms precision) and scores."""
        return {"start_frame": self.start, "end_frame": self.end, "start_s": round(self.start_s, 3),
                "end_s": round(self.end_s, 3), "duration_s": round(self.duration_s, 3),
                "peak": float(self.peak), "peak_frame": self.peak_frame,
                "peak_s": round(self.peak_frame / self.fps, 3), "mean": float(self.mean)}


def resolve_threshold(spec, calibration: dict | None, checkpoint=None) -> float:
    """``threshold=`` as a number: ``0.5``, ``"0.7"``, or ``"far@0.01"`` (the score that 1 %
    of the normal training videos' frames reach, from the checkpoint's calibration)."""
    text = str(spec).strip()
    if text.lower().startswith(FAR_PREFIX):
        try:
            far = float(text[len(FAR_PREFIX):])
        except ValueError:
            raise UserError(f"threshold={text}: expected far@RATE with a rate between 0 and 1, e.g. "
                            "threshold=far@0.01") from None
        if calibration is None:
            where = f"checkpoint {checkpoint}" if checkpoint is not None else "the checkpoint"
            raise UserError(f"threshold={text} needs the calibration on the normal training videos, but "
                            f"{where} has none (it was written before vad.train stored one): retrain to get "
                            "a checkpoint with it, or give a number, e.g. threshold=0.5")
        if not 0 < far < 1:
            raise UserError(f"threshold={text}: the false-alarm rate must be between 0 and 1, e.g. "
                            "threshold=far@0.01")
        return far_threshold(calibration, far)
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"threshold={text}: expected a number (e.g. threshold=0.5) or far@RATE (e.g. "
                        "threshold=far@0.01)") from None
    if not math.isfinite(value):
        raise UserError(f"threshold={text}: expected a finite number, e.g. threshold=0.5")
    return value


class EventTracker:
    """Causal hysteresis over consecutive frame ranges (see the module doc).

    ``update(start, end, score)`` says that frames ``[start, end)`` scored ``score`` and returns
    the events it closed; ``close(end)`` ends the input (an event still open ends at ``end``).
    For stream alerts, :meth:`started` is true once per event, as soon as the open event has
    lasted ``min_duration_s``; :attr:`current` is the open event so far.
    """

    def __init__(self, fps: float, threshold: float, hysteresis: float = 0.1, min_duration_s: float = 1.0):
        if not fps or fps <= 0 or not math.isfinite(fps):
            raise ValueError(f"fps={fps}: events need the video's frame rate (> 0)")
        if hysteresis < 0:
            raise ValueError(f"hysteresis={hysteresis}: expected a value >= 0")
        if min_duration_s < 0:
            raise ValueError(f"min_duration_s={min_duration_s}: expected a value >= 0")
        self.fps, self.threshold = float(fps), float(threshold)
        self.hysteresis, self.min_duration_s = float(hysteresis), float(min_duration_s)
        self._open: list | None = None  # [start, end so far, peak, peak_frame, score sum, frames]
        self._announced = False

    @property
    def open_since(self) -> int | None:
        """First frame of the open event, or None."""
        return None if self._open is None else self._open[0]

    @property
    def current(self) -> Event | None:
        """The open event up to the last frame given, or None."""
        return None if self._open is None else self._event(self._open[1])

    def started(self) -> bool:
        """True once per event: at the first call after the open event reached ``min_duration_s``."""
        if self._open is None or self._announced or not self._long_enough(self._open[1]):
            return False
        self._announced = True
        return True

    def update(self, start: int, end: int, score: float) -> list[Event]:
        start, end, score = int(start), int(end), float(score)
        if end <= start:
            return []
        closed = []
        if self._open is not None and score < self.threshold - self.hysteresis:
            closed = self._finish(self._open[1])  # ends after its last frame scored
        if self._open is None and score >= self.threshold:
            self._open = [start, start, score, start, 0.0, 0]
        if self._open is not None:
            state = self._open
            if score > state[2]:
                state[2], state[3] = score, start
            state[1] = end
            state[4] += score * (end - start)
            state[5] += end - start
        return closed

    def close(self, end: int) -> list[Event]:
        """End of the input at frame ``end``: the open event (if any) ends there."""
        return [] if self._open is None else self._finish(end)

    def _long_enough(self, end: int) -> bool:
        return (end - self._open[0]) / self.fps >= self.min_duration_s - 1e-9

    def _event(self, end: int) -> Event:
        start, _, peak, peak_frame, total, frames = self._open
        return Event(start, end, self.fps, peak, peak_frame, total / frames if frames else peak)

    def _finish(self, end: int) -> list[Event]:
        event = self._event(max(int(end), self._open[0]))
        keep = self._long_enough(event.end)
        self._open, self._announced = None, False
        return [event] if keep else []


def find_events(frame_scores, fps: float, threshold: float, hysteresis: float = 0.1,
                min_duration_s: float = 1.0) -> list[Event]:
    """Events of a video's (F,) frame scores, through :class:`EventTracker` (one update per run
    of equal scores)."""
    scores = np.asarray(frame_scores, dtype=np.float64).reshape(-1)
    tracker = EventTracker(fps, threshold, hysteresis, min_duration_s)
    starts = np.concatenate([[0], np.flatnonzero(np.diff(scores) != 0) + 1]) if scores.size else []
    ends = np.append(starts[1:], scores.size) if scores.size else []
    events = []
    for start, end in zip(starts, ends):
        events += tracker.update(int(start), int(end), float(scores[start]))
    return events + tracker.close(scores.size)


def event_precision_recall(events: list[Event], spans, iou: float = 0.5) -> dict:
    """Event-level precision and recall: events and annotated ``spans`` (1-based inclusive
    frames, as :attr:`vad.types.Video.spans`) are matched one to one, greedily by temporal IoU
    (largest first), a pair counting when its IoU is ``>= iou``. NaN precision without events,
    NaN recall without spans."""
    truth = [(int(s) - 1, int(e)) for s, e in spans]  # -> [start, end) 0-based
    pairs = []
    for i, event in enumerate(events):
        for j, (s, e) in enumerate(truth):
            inter = max(0, min(event.end, e) - max(event.start, s))
            union = max(event.end, e) - min(event.start, s)
            if union > 0 and inter / union >= iou:
                pairs.append((inter / union, i, j))
    used_events, used_spans = set(), set()
    for _, i, j in sorted(pairs, key=lambda p: (-p[0], p[1], p[2])):
        if i not in used_events and j not in used_spans:
            used_events.add(i)
            used_spans.add(j)
    matched = len(used_events)
    return {"precision": matched / len(events) if events else float("nan"),
            "recall": matched / len(truth) if truth else float("nan"),
            "matched": matched, "events": len(events), "spans": len(truth)}
