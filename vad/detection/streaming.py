"""``mode=stream``: clips of every source scored as they arrive, batched through one network.

Each pass takes the clips that are ready, round-robin over the sources (at most ``batch_size``),
runs them through :meth:`vad.extraction.pipeline.ClipPipeline.run_networks` at once (the way to
keep a GPU busy with several cameras) and hands each clip with its features to ``on_clip``; it
never waits to fill a batch, so a lone clip is scored at once. The latency of a clip is the time
from its 16th frame being read to ``on_clip`` returning (scored and written). A status line
every ``status_every_s`` gives, per source, the frames per second coming in, the clips scored,
the latency p50/p95 since the last line and the clips dropped so far (the sources' drop policy:
:mod:`vad.detection.sources`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

import numpy as np

logger = logging.getLogger(__name__)

LATENCY_WINDOW = 10_000  # clips per source whose latency the final p50/p95 use (bounded memory)


def _percentiles(values) -> tuple[float | None, float | None]:
    if not len(values):
        return None, None
    p50, p95 = np.percentile(np.asarray(values, dtype=np.float64), [50, 95])
    return float(p50), float(p95)


def _gather(sources, batch_size: int) -> list:
    """Up to ``batch_size`` ready clips, one per source per round."""
    batch: list = []
    while len(batch) < batch_size:
        before = len(batch)
        for source in sources:
            if len(batch) >= batch_size:
                break
            clip = source.get(0.0)
            if clip is not None:
                batch.append(clip)
        if len(batch) == before:
            break
    return batch


def _status_line(sources, scored: dict, recent: dict, seconds: float) -> str:
    parts = []
    for source in sources:
        name = source.source.name
        p50, p95 = _percentiles(recent[name])
        latency = "latency -" if p50 is None else f"latency p50 {p50:.2f} s p95 {p95:.2f} s"
        parts.append(f"{name}: {source.fps_in:.1f} fps in, {scored[name]} clips scored, {latency}, "
                     f"{source.clips_dropped} dropped")
    return f"stream {seconds:.0f} s | " + " | ".join(parts)


def run_stream(sources, pipeline, on_clip, batch_size: int, max_seconds: float | None = None,
               status_every_s: float = 5.0, log: logging.Logger = logger) -> dict:
    """Score every source's clips until all have ended, ``max_seconds`` have passed or Ctrl-C.

    ``on_clip(stream_clip, features)`` gets each :class:`~vad.detection.sources.StreamClip` (its
    movement value, when computed, is ``stream_clip.inputs["movement"]``) with ``features``
    {stream: (C, D) float32}. The sources are started here and always stopped and joined
    before returning; an exception of ``on_clip`` other than ``KeyboardInterrupt`` propagates
    after that. Returns ``{"sources": {name: source stats + clips_scored, latency_p50_s,
    latency_p95_s}, "seconds", "batches", "clips_scored", "interrupted", "stopped_by"}``
    (``stopped_by``: ``"end"``, ``"max_seconds"`` or ``"interrupt"``)."""
    sources = list(sources)
    names = [s.source.name for s in sources]
    if len(set(names)) != len(names):
        raise ValueError(f"sources with the same name {names}: give each its own (parse_sources does)")
    batch_size = max(1, int(batch_size))
    wake = threading.Event()
    for source in sources:
        source.wake = wake
    scored = dict.fromkeys(names, 0)
    latencies = {n: deque(maxlen=LATENCY_WINDOW) for n in names}
    recent: dict[str, list] = {n: [] for n in names}
    batches, stopped_by = 0, "end"
    started = time.perf_counter()
    next_status = started + status_every_s
    try:
        for source in sources:
            source.start()
        while True:
            now = time.perf_counter()
            if max_seconds is not None and now - started >= max_seconds:
                stopped_by = "max_seconds"
                break
            if now >= next_status:
                log.info("%s", _status_line(sources, scored, recent, now - started))
                recent = {n: [] for n in names}
                next_status = now + status_every_s
            wake.clear()
            batch = _gather(sources, batch_size)
            if not batch:
                if all(source.finished for source in sources):
                    break
                wake.wait(0.05)
                continue
            out = pipeline.run_networks([clip.inputs for clip in batch])
            batches += 1
            for i, clip in enumerate(batch):
                on_clip(clip, {stream: array[i] for stream, array in out.features.items()})
                latency = time.perf_counter() - clip.arrived
                name = clip.source.name
                scored[name] += 1
                latencies[name].append(latency)
                recent[name].append(latency)
    except KeyboardInterrupt:
        stopped_by = "interrupt"
        log.warning("interrupted: stopping the sources")
    finally:
        for source in sources:
            source.stop()
    seconds = time.perf_counter() - started
    stats = {}
    for source in sources:
        name = source.source.name
        p50, p95 = _percentiles(latencies[name])
        stats[name] = {**source.stats(), "clips_scored": scored[name],
                       "latency_p50_s": p50, "latency_p95_s": p95}
        if source.error:
            log.error("%s", source.error)
    log.info("%s", _status_line(sources, scored, latencies, seconds))
    return {"sources": stats, "seconds": seconds, "batches": batches,
            "clips_scored": sum(scored.values()), "interrupted": stopped_by == "interrupt",
            "stopped_by": stopped_by}


__all__ = ["LATENCY_WINDOW", "run_stream"]
