"""``python -m vad.detect``: a trained detector applied to videos and live streams.

    python -m vad.detect ckpt_path=RUN/checkpoints/<best>.ckpt source=footage/ weights.rgb=/w/c3d.pickle
    python -m vad.detect ckpt_path=... source=[rtsp://cam1/live,rtsp://cam2/live] weights.rgb=... \\
        threshold=far@0.01

The checkpoint decides the extractor, modality and movement settings; the weights are checked
against it before any video is read. Files are scored whole (``mode=video``: 32 segments, the
scores of ``vad.extract`` + ``vad.evaluate``) unless ``mode=stream``; URLs and cameras are always
streamed (causal, one score per clip as its 16th frame arrives; every live source is batched
through one network). Per source a folder of the run holds ``scores.csv``, ``events.json`` and,
for files, ``timeline.png`` and ``annotated.mp4``; the run holds ``report.html`` (files),
``alerts.jsonl`` (streams; also printed, one JSON line per event) and ``detect.json``.
Imports torch (the networks), not Lightning.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from vad.cli import UserError, user_errors
from vad.constants import DEFAULT_FPS
from vad.types import clip_spans

log = logging.getLogger(__name__)

MODES = ("auto", "video", "stream")


def _plain(value):
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


@dataclass
class Truth:
    """Ground truth of files: the shipped UCF-Crime test annotations for a known test video, and
    the rows of ``annotations=FILE.csv`` (a video it does not list is normal)."""

    csv: Path | None
    spans: dict = field(default_factory=dict)  # source name -> spans (1-based inclusive)

    @classmethod
    def of(cls, annotations, files) -> "Truth":
        from vad.data.ucf_crime import catalogue

        truth = cls(Path(str(annotations)).expanduser() if annotations else None)
        known = {video.name: video.spans for video in catalogue()[1]}
        for source in files:
            stem = Path(source.spec).name.split(".")[0]
            if stem in known:
                truth.spans[source.name] = tuple(known[stem])
        if truth.csv is not None:
            from vad.data.annotations_csv import VideoFacts, read_annotations
            from vad.video import probe

            if not truth.csv.is_file():
                raise FileNotFoundError(f"annotations={truth.csv}: no such file (a CSV video,start,end[,unit])")
            facts = {}
            for source in files:
                try:
                    info = probe(source.spec)
                except Exception:  # noqa: BLE001 - an unreadable video is reported when it is scored
                    continue
                facts[Path(source.spec).name] = (source.name, VideoFacts(info.frames, info.fps or None))
            spans = read_annotations(truth.csv, {key: f for key, (_, f) in facts.items()})
            for key, (name, _) in facts.items():
                truth.spans[name] = tuple(spans.get(key, ()))
        return truth

    def get(self, name: str, frames: int):
        """The spans of a scored video clipped to its decoded frames, or None when unknown."""
        return clip_spans(self.spans[name], frames) if name in self.spans else None


def frame_labels(spans, frames: int) -> np.ndarray:
    labels = np.zeros(frames, dtype=np.int8)
    for start, end in spans:
        labels[start - 1:end] = 1
    return labels


def ground_truth_metrics(frame_scores: np.ndarray, labels: np.ndarray, spans, events, iou: float) -> dict:
    """Frame AUC (when the video has both kinds of frames) and event precision/recall."""
    from vad.detection.events import event_precision_recall

    metrics = event_precision_recall(events, spans, iou)
    if 0 < labels.sum() < len(labels):
        from sklearn.metrics import roc_auc_score

        metrics["frame_auc"] = float(roc_auc_score(labels, frame_scores))
    return metrics


def _number(cfg: DictConfig, key: str, kind: type, low) -> None:
    """``cfg[key]`` is a number of ``kind`` (int or float) at least ``low``."""
    value = cfg[key]
    try:
        ok = kind(value) >= low and (kind is float or not isinstance(value, float))
    except (TypeError, ValueError):
        ok = False
    if not ok or isinstance(value, bool):
        raise UserError(f"{key}={value!r}: expected {'an integer' if kind is int else 'a number'} >= {low}")


class Run:
    """One ``vad.detect`` run: the detector, its networks and the settings every source uses."""

    def __init__(self, cfg: DictConfig):
        from vad.detection.detector import Detector
        from vad.detection.events import resolve_threshold
        from vad.device import resolve_device
        from vad.extraction.networks import flow_workers
        from vad.extraction.pipeline import ClipPipeline

        self.cfg = cfg
        self.out = Path(cfg.paths.output_dir)
        self.mode = str(cfg.mode)
        if self.mode not in MODES:
            raise UserError(f"mode={self.mode}: expected auto (files scored whole, streams causally), "
                            "video or stream")
        for key in ("window", "smoothing", "batch_size", "queue_clips", "reconnect_retries"):
            _number(cfg, key, int, 0 if key == "reconnect_retries" else 1)
        for key in ("hysteresis", "min_duration_s", "event_iou", "reconnect_delay_s", "status_every_s"):
            _number(cfg, key, float, 0.0)
        self.device = resolve_device(str(cfg.device))
        self.detector = Detector.from_checkpoint(cfg.ckpt_path, self.device)
        networks = self.detector.networks(_plain(cfg.weights), self.device, int(cfg.seed))
        self.threshold = resolve_threshold(cfg.threshold, self.detector.calibration, cfg.ckpt_path)
        size = list(cfg.size) if cfg.get("size") else None
        self.pipeline = ClipPipeline(networks, device=self.device, size=size, batch_size=int(cfg.batch_size),
                                     flow_workers=flow_workers(cfg.flow_workers, self.device),
                                     **self.detector.pipeline_options(str(cfg.flow)))
        self.size = size
        # (frame scores, frame labels) of every scored video with ground truth, for the overall AUC
        self.truth_frames: list[tuple[np.ndarray, np.ndarray]] = []

    def tracker(self, fps: float):
        from vad.detection.events import EventTracker

        return EventTracker(fps, self.threshold, float(self.cfg.hysteresis), float(self.cfg.min_duration_s))

    # ------------------------------------------------------------------ files
    def file_outputs(self, source, mode: str, frame_scores: np.ndarray, fps: float, events, spans,
                     seconds: float) -> dict:
        """scores.csv, events.json, timeline.png and annotated.mp4 of a file scored in ``mode``
        (video or stream); its report row."""
        from vad.detection.outputs import timeline_png, write_events_json, write_scores_csv

        folder = self.out / source.name
        folder.mkdir(parents=True, exist_ok=True)
        duration = len(frame_scores) / fps
        write_scores_csv(folder / "scores.csv", frame_scores, fps)
        row = {"name": source.name, "source": source.spec, "mode": mode, "frames": int(len(frame_scores)),
               "fps": fps, "duration_s": round(duration, 3), "events": [e.as_dict() for e in events],
               "max_score": float(np.max(frame_scores)) if len(frame_scores) else float("nan"),
               "seconds": round(seconds, 3), "speed": round(duration / seconds, 3) if seconds > 0 else None,
               "threshold": self.threshold, "timeline": str(folder / "timeline.png")}
        if spans is not None:
            labels = frame_labels(spans, len(frame_scores))
            row["spans"] = [list(s) for s in spans]
            row["metrics"] = ground_truth_metrics(frame_scores, labels, spans, events, float(self.cfg.event_iou))
        write_events_json(folder / "events.json", events,
                          {"video": source.spec, "fps": fps, "frames": int(len(frame_scores)),
                           "threshold": self.threshold, "mode": mode,
                           **({"spans": row["spans"], "metrics": row["metrics"]} if spans is not None else {})})
        timeline_png(folder / "timeline.png", frame_scores, fps, events, self.threshold, spans=spans,
                     title=source.name)
        if self.cfg.annotate:
            from vad.detection.annotate import annotate_video

            annotate_video(source.spec, folder / "annotated.mp4", frame_scores, events, fps, self.threshold)
            row["video"] = str(folder / "annotated.mp4")
        if spans is not None:  # with the row, once every output of the video is written
            self.truth_frames.append((frame_scores, labels))
        return row

    def score_file(self, source, truth: Truth) -> dict:
        """``mode=video``: the whole file through the pipeline, pooled to 32 segments."""
        from vad.detection.events import find_events

        started = time.perf_counter()
        video = self.pipeline.run(source.spec)
        _, frame_scores = self.detector.video_scores(video)
        fps = video.fps if video.fps > 0 else DEFAULT_FPS
        events = find_events(frame_scores, fps, self.threshold, float(self.cfg.hysteresis),
                             float(self.cfg.min_duration_s))
        seconds = time.perf_counter() - started
        return self.file_outputs(source, "video", frame_scores, fps, events, truth.get(source.name, video.frames),
                                 seconds)

    # ------------------------------------------------------------------ streams
    def stream(self, sources, truth: Truth) -> tuple[list[dict], dict]:
        """``mode=stream`` over ``sources`` at once; the report rows of its files and the stats."""
        from vad.detection.outputs import AlertLog
        from vad.detection.sources import ClipSource
        from vad.detection.streaming import run_stream

        cfg = self.cfg
        readers = [ClipSource(s, self.pipeline.preparer(), size=self.size, realtime=bool(cfg.realtime),
                              queue_clips=int(cfg.queue_clips), reconnect_retries=int(cfg.reconnect_retries),
                              reconnect_delay_s=float(cfg.reconnect_delay_s)) for s in sources]
        states = {r.source.name: StreamState(self, r) for r in readers}
        with AlertLog(self.out / "alerts.jsonl") as alerts:
            def on_clip(clip, features):
                states[clip.source.name].clip(clip, features, alerts)

            try:
                stats = run_stream(readers, self.pipeline, on_clip, int(cfg.batch_size),
                                   None if cfg.max_seconds is None else float(cfg.max_seconds),
                                   float(cfg.status_every_s), log)
            finally:
                for state in states.values():
                    state.close()
        rows = []
        for reader in readers:
            state = states[reader.source.name]
            stats["sources"][reader.source.name]["events"] = len(state.events)
            if reader.source.kind == "file" and state.frames and reader.error is None:
                scores = state.frame_scores()
                spans = truth.get(reader.source.name, len(scores))
                rows.append(self.file_outputs(reader.source, "stream", scores, state.fps, state.events, spans,
                                              stats["seconds"]))
        return rows, stats


class StreamState:
    """Per streamed source: its causal scorer, event tracker and rolling outputs."""

    def __init__(self, run: Run, reader):
        from vad.detection.detector import StreamScorer
        from vad.detection.outputs import RollingScores

        self.run, self.reader = run, reader
        self.folder = run.out / reader.source.name
        self.folder.mkdir(parents=True, exist_ok=True)
        detector = run.detector
        self.scorer = StreamScorer(detector.streams, int(run.cfg.window), int(run.cfg.smoothing),
                                   detector.pooling.normalise, detector.receptive_field)
        self.csv = RollingScores(self.folder / "scores.csv")
        self.events: list = []
        self.tracker = None
        self.fps = DEFAULT_FPS
        self.frames = 0
        self._scores: list[tuple[int, float]] = []  # (start frame, score) per clip, for files
        self._alerts = 0

    def clip(self, clip, features, alerts) -> None:
        from vad.constants import CLIP_FRAMES
        from vad.detection.outputs import write_snapshot

        if self.tracker is None:
            self.fps = self.reader.fps if self.reader.fps > 0 else DEFAULT_FPS
            self.tracker = self.run.tracker(self.fps)
        window = self.scorer.window_input(features)
        score = self.scorer.smooth(float(self.run.detector.score_windows(window[None])[0]))
        start, end = clip.start_frame, clip.start_frame + CLIP_FRAMES
        for k, frame in enumerate(range(start, end)):
            self.csv.append(frame, clip.time_s - (CLIP_FRAMES - 1 - k) / self.fps, score)
        if self.reader.source.kind == "file":
            self._scores.append((start, score))
        self.frames = max(self.frames, end)
        self.events += self.tracker.update(start, end, score)
        if self.tracker.started():
            self._alerts += 1
            event = self.tracker.current
            snapshot = self.folder / f"alert_{self._alerts:04d}.jpg"
            write_snapshot(snapshot, clip.frames)
            alerts.write({"source": self.reader.source.label, "name": self.reader.source.name,
                          "start_s": round(event.start_s, 3), "start_frame": event.start,
                          "peak": round(float(event.peak), 4), "threshold": self.run.threshold,
                          "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                          "snapshot": str(snapshot)})

    def frame_scores(self) -> np.ndarray:
        """(F,) frame scores of a streamed file: each clip's score on its 16 frames, the tail and
        any dropped clip take the score before them (the first clip's for frames before it)."""
        scores = np.empty(self.frames, dtype=np.float32)
        starts = np.array([s for s, _ in self._scores], dtype=np.int64)
        values = np.array([v for _, v in self._scores], dtype=np.float32)
        index = np.searchsorted(starts, np.arange(self.frames), side="right") - 1
        scores[:] = values[np.maximum(index, 0)]
        return scores

    def close(self) -> None:
        from vad.detection.outputs import write_events_json

        if self.tracker is not None:
            self.events += self.tracker.close(self.frames)
        self.csv.close()
        write_events_json(self.folder / "events.json", self.events,
                          {"video": self.reader.source.label, "fps": self.fps, "frames": self.frames,
                           "threshold": self.run.threshold, "mode": "stream"})


def sources_of(cfg: DictConfig):
    from vad.detection.sources import parse_sources

    if OmegaConf.is_missing(cfg, "source"):
        raise UserError("source=... is required: a video file, a folder, a .txt list, an rtsp:// or "
                        "http(s):// URL or a camera index (0)")
    return parse_sources(_plain(cfg.source))


def detect(cfg: DictConfig) -> dict:
    """Score every source of ``cfg``; write the outputs; return the run's summary (``detect.json``)."""
    from vad.io import write_json
    from vad.video import VideoError

    started = time.perf_counter()
    run = Run(cfg)  # the checkpoint, weights and threshold are checked before any source is read
    sources = sources_of(cfg)
    streamed = [s for s in sources if s.kind != "file" or run.mode == "stream"]
    if run.mode == "video" and any(s.kind != "file" for s in sources):
        live = next(s for s in sources if s.kind != "file")
        raise UserError(f"mode=video scores whole files, but {live.label} is a live source: use mode=stream "
                        "(or mode=auto: files whole, streams causally)")
    if streamed and not run.detector.causal:
        raise UserError(f"{cfg.ckpt_path} was trained with method={run.detector.method}, which cannot score "
                        "causally (method.causal=false: a snippet's score depends on later snippets of the "
                        f"video), so mode=stream is refused for {streamed[0].label}; score recorded files "
                        "with mode=video, or train a causal method (mil, topk_mil) for live sources")
    files = [s for s in sources if s not in streamed]
    truth = Truth.of(cfg.get("annotations"), [s for s in sources if s.kind == "file"])
    rows, skipped, stream_stats, interrupted = [], [], None, False
    try:
        for i, source in enumerate(files, 1):
            try:
                rows.append(run.score_file(source, truth))
            except VideoError as err:
                skipped.append({"source": source.spec, "error": f"{err}: {_fix(err)}"})
                log.warning("skipped %s", skipped[-1]["error"])
                continue
            log.info("[%d/%d] %s", i, len(files), _row_line(rows[-1]))
        if streamed:
            stream_rows, stream_stats = run.stream(streamed, truth)
            rows += stream_rows
            interrupted = bool(stream_stats["interrupted"])
            for stats in stream_stats["sources"].values():
                if stats["error"]:
                    skipped.append({"source": stats["source"], "error": stats["error"]})
    except KeyboardInterrupt:
        interrupted = True
        log.warning("interrupted after %d of %d files; the finished ones are written", len(rows), len(files))
    summary = _summary(cfg, run, rows, skipped, stream_stats, interrupted, time.perf_counter() - started)
    if cfg.report and rows and any(r.get("video") or r.get("timeline") for r in rows):
        from vad.detection.report_html import write_report_html

        write_report_html(run.out / "report.html", rows, {**summary["settings"], **summary["overall"],
                                                           "title": f"vad.detect: {cfg.ckpt_path}",
                                                           "skipped": skipped})
    write_json(run.out / "detect.json", summary)
    _print_table(rows, summary)
    if not rows and skipped and not interrupted:
        raise UserError(skipped[0]["error"] if len(skipped) == 1 else
                        f"no source could be scored ({len(skipped)} failed; first: {skipped[0]['error']})")
    return summary


def _fix(err) -> str:
    """What to do about a video that cannot be scored."""
    reason = getattr(err, "reason", "")
    if reason.startswith("too short"):
        return "a detector scores 16-frame clips; give a video of at least 16 frames"
    return "check that the file is a complete video OpenCV can decode (try playing it, or re-encode it with ffmpeg)"


def _summary(cfg, run: Run, rows, skipped, stream_stats, interrupted: bool, seconds: float) -> dict:
    overall: dict = {"videos": len(rows), "skipped": len(skipped),
                     "events": int(sum(len(r["events"]) for r in rows))}
    known = [r for r in rows if "metrics" in r]
    if known:
        scores = np.concatenate([s for s, _ in run.truth_frames])
        labels = np.concatenate([y for _, y in run.truth_frames])
        matched = sum(r["metrics"]["matched"] for r in known)
        events = sum(r["metrics"]["events"] for r in known)
        spans = sum(r["metrics"]["spans"] for r in known)
        overall.update(annotated_videos=len(known), frames=int(len(labels)),
                       precision=matched / events if events else float("nan"),
                       recall=matched / spans if spans else float("nan"))
        if 0 < labels.sum() < len(labels):
            from sklearn.metrics import roc_auc_score

            overall["frame_auc"] = float(roc_auc_score(labels, scores))
    settings = {"checkpoint": str(cfg.ckpt_path), "trained on": run.detector.trained_on(),
                "mode": run.mode, "threshold": run.threshold, "threshold_spec": str(cfg.threshold),
                "hysteresis": float(cfg.hysteresis), "min_duration_s": float(cfg.min_duration_s),
                "window": int(cfg.window), "smoothing": int(cfg.smoothing), "event_iou": float(cfg.event_iou),
                "device": str(run.device)}
    return {"status": "interrupted" if interrupted else "finished", "settings": settings,
            "overall": overall, "videos": rows, "skipped": skipped, "streams": stream_stats,
            "wall_time_s": round(seconds, 3), "run_dir": str(run.out)}


def _row_line(row: dict) -> str:
    metrics = row.get("metrics", {})
    extra = "".join(f" {k} {metrics[k]:.3f}" for k in ("frame_auc", "precision", "recall")
                    if k in metrics and not math.isnan(metrics[k]))
    return (f"{row['name']}: {row['duration_s']:.1f} s, {len(row['events'])} events, max score "
            f"{row['max_score']:.3f}, {row['speed'] or 0:.2f}x real time{extra}")


def _print_table(rows, summary: dict) -> None:
    if rows:
        width = max(len("video"), *(len(r["name"]) for r in rows))
        lines = [f"{'video':<{width}}  {'duration':>9}  {'events':>6}  {'max score':>9}  {'speed':>8}"]
        lines += [f"{r['name']:<{width}}  {r['duration_s']:>7.1f} s  {len(r['events']):>6}  {r['max_score']:>9.3f}  "
                  f"{r['speed'] or 0:>7.2f}x" for r in rows]
        log.info("\n%s", "\n".join(lines))
    overall = summary["overall"]
    if "annotated_videos" in overall:
        log.info("ground truth for %d videos (%d frames): frame auc %s, event precision %.3f, recall %.3f "
                 "(IoU >= %s)", overall["annotated_videos"], overall["frames"],
                 f"{overall['frame_auc']:.4f}" if "frame_auc" in overall else "n/a (one class only)",
                 overall["precision"], overall["recall"], summary["settings"].get("event_iou", ""))
    for item in summary["skipped"]:
        log.warning("not scored: %s", item["error"])
    log.info("outputs in %s", summary["run_dir"])


@hydra.main(version_base="1.3", config_path="../conf", config_name="detect")
@user_errors
def main(cfg: DictConfig) -> None:
    summary = detect(cfg)
    if summary["status"] == "interrupted":
        sys.exit(130)


if __name__ == "__main__":
    main()
