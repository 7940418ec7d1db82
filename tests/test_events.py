"""``vad.detection.events``: hysteresis, minimum duration, events at the end, frames -> seconds,
stream alerts, event-level precision/recall and threshold specs, on hand-made score sequences."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vad.cli import UserError
from vad.detection.events import Event, EventTracker, event_precision_recall, find_events, resolve_threshold


def seq(*runs) -> np.ndarray:
    """(score, frames) runs -> frame scores."""
    return np.concatenate([np.full(n, s) for s, n in runs])


def test_hysteresis_keeps_one_event_through_a_dip():
    scores = seq((0.2, 10), (0.6, 10), (0.45, 10), (0.7, 10), (0.3, 10))
    (event,) = find_events(scores, fps=10, threshold=0.5, hysteresis=0.1, min_duration_s=1.0)
    assert (event.start, event.end, event.peak, event.peak_frame) == (10, 40, 0.7, 30)
    assert event.mean == pytest.approx((0.6 + 0.45 + 0.7) / 3)
    assert (event.start_s, event.end_s, event.duration_s) == (1.0, 4.0, 3.0)
    # without hysteresis the dip splits it; both halves last 1 s, the minimum
    split = find_events(scores, fps=10, threshold=0.5, hysteresis=0.0, min_duration_s=1.0)
    assert [(e.start, e.end) for e in split] == [(10, 20), (30, 40)]
    # a longer minimum drops both halves
    assert find_events(scores, fps=10, threshold=0.5, hysteresis=0.0, min_duration_s=1.5) == []


def test_event_open_at_the_end_and_seconds_from_fps():
    (event,) = find_events(seq((0.1, 50), (0.9, 50)), fps=25, threshold=0.5, hysteresis=0.1, min_duration_s=1.0)
    assert (event.start, event.end, event.start_s, event.end_s, event.duration_s) == (50, 100, 2.0, 4.0, 2.0)
    assert event.as_dict() == {"start_frame": 50, "end_frame": 100, "start_s": 2.0, "end_s": 4.0, "duration_s": 2.0,
                               "peak": 0.9, "peak_frame": 50, "peak_s": 2.0, "mean": 0.9}
    assert find_events(seq((0.1, 50), (0.9, 20)), fps=25, threshold=0.5, min_duration_s=1.0) == []  # 0.8 s
    assert find_events(np.zeros(0), fps=25, threshold=0.5) == []


def _per_frame(scores, fps, threshold, hysteresis, min_duration_s) -> list[tuple[int, int]]:
    """The rule written out frame by frame (the reference for find_events)."""
    events, start = [], None
    for t, s in enumerate(scores):
        if start is None and s >= threshold:
            start = t
        elif start is not None and s < threshold - hysteresis:
            events.append((start, t))
            start = None
    if start is not None:
        events.append((start, len(scores)))
    return [(a, b) for a, b in events if (b - a) / fps >= min_duration_s]


@pytest.mark.parametrize("seed", range(5))
def test_find_events_matches_the_frame_by_frame_rule(seed):
    rng = np.random.default_rng(seed)
    scores = np.repeat(rng.random(60), rng.integers(1, 12, 60))
    got = find_events(scores, fps=30, threshold=0.6, hysteresis=0.15, min_duration_s=0.3)
    assert [(e.start, e.end) for e in got] == _per_frame(scores, 30, 0.6, 0.15, 0.3)
    for e in got:
        assert e.peak == scores[e.start:e.end].max() and e.peak_frame == e.start + int(np.argmax(scores[e.start:e.end]))
        assert e.mean == pytest.approx(scores[e.start:e.end].mean())


def test_tracker_on_clip_scores_alerts_once_per_event():
    tracker = EventTracker(fps=16, threshold=0.5, hysteresis=0.1, min_duration_s=1.0)  # 1 s = one clip
    assert tracker.update(0, 16, 0.2) == [] and not tracker.started() and tracker.open_since is None
    assert tracker.update(16, 24, 0.75) == [] and not tracker.started()  # half a second so far
    assert tracker.open_since == 16 and tracker.current == Event(16, 24, 16.0, 0.75, 16, 0.75)
    assert tracker.update(24, 32, 1.0) == []
    assert tracker.started() and not tracker.started()  # once
    closed = tracker.update(48, 64, 0.1)  # frames 32-48 dropped (a slow consumer): the event ends at 32
    assert closed == [Event(16, 32, 16.0, 1.0, 24, 0.875)]
    assert tracker.open_since is None and tracker.close(64) == []
    tracker.update(64, 72, 0.75)
    assert tracker.close(72) == [] and tracker.update(80, 96, 0.75) == []  # 0.5 s at the end: dropped
    assert tracker.close(112) == [Event(80, 112, 16.0, 0.75, 80, 0.75)]  # still open at the end


def test_tracker_rejects_bad_settings():
    with pytest.raises(ValueError, match="fps=0"):
        EventTracker(fps=0, threshold=0.5)
    with pytest.raises(ValueError, match="hysteresis=-1"):
        EventTracker(fps=25, threshold=0.5, hysteresis=-1)


def test_event_precision_recall_matches_one_to_one_by_iou():
    events = [Event(0, 100, 25, 0.9, 5, 0.8), Event(200, 250, 25, 0.9, 5, 0.8), Event(205, 255, 25, 0.9, 5, 0.8),
              Event(400, 450, 25, 0.9, 5, 0.8)]
    spans = [(1, 100), (211, 260), (601, 700)]  # 1-based inclusive: [0, 100), [210, 260), [600, 700)
    # [0,100) IoU 1; [210,260) vs [205,255): 45/55, vs [200,250): 40/60 -> the better one wins, once
    assert event_precision_recall(events, spans) == {"precision": 0.5, "recall": 2 / 3, "matched": 2,
                                                     "events": 4, "spans": 3}
    assert event_precision_recall(events, spans, iou=0.8)["matched"] == 2  # 45/55 = 0.818
    assert event_precision_recall(events, spans, iou=0.9)["matched"] == 1
    none = event_precision_recall([], spans)
    assert math.isnan(none["precision"]) and none["recall"] == 0.0
    assert math.isnan(event_precision_recall(events, [])["recall"])


def test_resolve_threshold_numbers_far_and_errors():
    assert resolve_threshold(0.5, None) == 0.5 and resolve_threshold("0.7", None) == 0.7
    calibration = {"segment_scores": np.array([0.1, 0.2, 0.3, 0.9]), "frame_weights": np.array([50, 30, 15, 5])}
    assert resolve_threshold("far@0.05", calibration) == 0.9  # 5 % of frames score >= 0.9
    assert resolve_threshold("far@0.2", calibration) == 0.3  # 20 % score >= 0.3, 50 % >= 0.2
    with pytest.raises(UserError) as err:
        resolve_threshold("far@0.01", None, checkpoint="/runs/a/checkpoints/epoch003-auc0.8.ckpt")
    message = str(err.value)
    assert "threshold=far@0.01 needs the calibration" in message
    assert "checkpoint /runs/a/checkpoints/epoch003-auc0.8.ckpt has none" in message
    assert "retrain" in message and "give a number, e.g. threshold=0.5" in message
    with pytest.raises(UserError, match="threshold=high: expected a number"):
        resolve_threshold("high", None)
    with pytest.raises(UserError, match="threshold=far@2: the false-alarm rate must be between 0 and 1"):
        resolve_threshold("far@2", calibration)
    with pytest.raises(UserError, match="threshold=far@x: expected far@RATE"):
        resolve_threshold("far@x", calibration)
    with pytest.raises(UserError, match="threshold=nan: expected a finite number"):
        resolve_threshold("nan", None)
