"""The files vad.detect writes per video and per stream: scores.csv, events.json, timeline.png,
alerts.jsonl and alert snapshots. Finished files are written atomically (vad.io); the two live
logs of a stream (the rolling scores.csv and alerts.jsonl) are appended and flushed line by line,
so a reader (or a crash) only ever sees whole lines."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np

from vad.io import atomic_path, save_figure, write_json, write_text

SCORES_HEADER = "frame,time_s,score"
# The timeline's axes span these fractions of the image width (fixed, not tight_layout), so that
# report.html can map a click or the playhead between pixels and seconds.
TIMELINE_LEFT, TIMELINE_RIGHT = 0.07, 0.99
SNAPSHOT_FRAMES = 4
SNAPSHOT_HEIGHT = 180


def _check_fps(fps: float) -> float:
    fps = float(fps)
    if not fps > 0:
        raise ValueError(f"fps must be > 0 to give times in seconds, found {fps} "
                         "(the video's header has no frame rate: pass fps=... explicitly)")
    return fps


def _scores_line(frame: int, time_s: float, score: float) -> str:
    return f"{int(frame)},{time_s:.4f},{score:.6f}"


def write_scores_csv(path, frame_scores: np.ndarray, fps: float) -> None:
    """``frame,time_s,score`` for every frame (0-based frame, time of its start)."""
    fps = _check_fps(fps)
    scores = np.asarray(frame_scores, dtype=np.float64).reshape(-1)
    lines = [SCORES_HEADER] + [_scores_line(i, i / fps, s) for i, s in enumerate(scores.tolist())]
    write_text(Path(path), "\n".join(lines) + "\n")


class LineLog:
    """A live file of whole lines: each line is flushed as it is written, so that the file can be
    followed (``tail -f``) and is complete up to its last line after a Ctrl-C or a crash."""

    def __init__(self, path, mode: str = "w"):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, mode, encoding="utf-8")

    def line(self, text: str) -> None:
        self._file.write(text + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class RollingScores(LineLog):
    """The scores.csv of a stream: one line per score as it arrives."""

    def __init__(self, path):
        super().__init__(path)
        self.line(SCORES_HEADER)

    def append(self, frame: int, time_s: float, score: float) -> None:
        self.line(_scores_line(frame, time_s, score))


def _event_dict(event) -> dict:
    return event.as_dict() if hasattr(event, "as_dict") else dict(event)


def write_events_json(path, events, extra: dict) -> None:
    """``{**extra, "events": [event.as_dict(), ...]}``; ``extra`` holds video, fps, threshold
    (and whatever else the run wants next to the events)."""
    write_json(Path(path), {**extra, "events": [_event_dict(e) for e in events]})


def timeline_png(path, frame_scores: np.ndarray, fps: float, events, threshold: float,
                 spans=None, title: str = "") -> None:
    """Score over time with the threshold, the events shaded red and, when given, the ground-truth
    ``spans`` (1-based inclusive frames, as vad.types.Video.spans) as green bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fps = _check_fps(fps)
    scores = np.asarray(frame_scores, dtype=np.float64).reshape(-1)
    duration = max(len(scores), 1) / fps
    fig = plt.figure(figsize=(10, 2.4))
    ax = fig.add_axes((TIMELINE_LEFT, 0.2, TIMELINE_RIGHT - TIMELINE_LEFT, 0.68))
    top = max(1.0, float(scores.max()) if len(scores) else 1.0) * 1.02
    for k, (first, last) in enumerate(spans or ()):
        ax.axvspan((first - 1) / fps, last / fps, color="tab:green", alpha=0.18, lw=0,
                   label="ground truth" if k == 0 else None)
    for k, event in enumerate(events):
        ax.axvspan(event.start / fps, event.end / fps, color="tab:red", alpha=0.25, lw=0,
                   label="event" if k == 0 else None)
    ax.plot(np.arange(len(scores)) / fps, scores, color="tab:blue", lw=1.0, label="score")
    ax.axhline(threshold, color="tab:orange", ls="--", lw=0.9, label=f"threshold {threshold:.3g}")
    ax.set(xlim=(0, duration), ylim=(0, top), xlabel="time (s)", ylabel="score")
    ax.xaxis.labelpad = 1
    if title:
        ax.set_title(title, fontsize=9, loc="left")
    ax.legend(loc="lower right", bbox_to_anchor=(1, 1), fontsize=7, ncol=4, frameon=False, borderaxespad=0.2)
    try:
        save_figure(fig, Path(path))
    finally:
        plt.close(fig)


class AlertLog(LineLog):
    """alerts.jsonl of a stream run: each alert is one JSON line in the file and on stdout,
    flushed at once (an operator's pipe or a log shipper gets it without delay)."""

    def __init__(self, path):
        super().__init__(path, "a")

    def write(self, record: dict) -> None:
        text = json.dumps(record, default=float)
        self.line(text)
        print(text, file=sys.stdout, flush=True)


def write_snapshot(path, frames: np.ndarray) -> None:
    """A JPEG contact strip of the alert clip: ``SNAPSHOT_FRAMES`` evenly spaced frames of the
    ``(T, H, W, 3)`` uint8 RGB clip side by side, each scaled to ``SNAPSHOT_HEIGHT`` px high."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"expected (T, H, W, 3) uint8 RGB frames with T >= 1, found {frames.shape} {frames.dtype}")
    picks = np.unique(np.linspace(0, len(frames) - 1, SNAPSHOT_FRAMES).round().astype(int))
    height, width = frames.shape[1:3]
    size = (max(1, round(width * SNAPSHOT_HEIGHT / height)), SNAPSHOT_HEIGHT)
    tiles = [cv2.resize(frames[i], size, interpolation=cv2.INTER_AREA) for i in picks]
    strip = cv2.cvtColor(np.concatenate(tiles, axis=1), cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".jpg", strip, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise RuntimeError(f"OpenCV could not encode the snapshot {path}")
    with atomic_path(Path(path)) as tmp:
        tmp.write_bytes(data.tobytes())
