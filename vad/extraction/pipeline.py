"""One video through the extractor networks: frames -> 16-frame clips -> optical flow and
movement values -> network inputs -> per-clip features, streamed.

Two stages, usable apart: a :class:`ClipPreparer` (one per video or stream, it holds the state
that spans clips) turns a clip into network inputs, and :meth:`ClipPipeline.run_networks` runs
a batch of prepared clips, which may come from several streams (``vad.detection.streaming``
batches live sources that way). :meth:`ClipPipeline.run` chains both over one file: decoding,
flow, preprocessing and the movement values of upcoming clips are made in a background thread
(a queue of a few batches) while the networks run on the current batch.
Per stream, a clip gives a ``(C, D)`` feature, ``C = 1`` (10 with ``ten_crop`` for I3D). The
stream ``RGB`` goes through C3D (Sports-1M) or the RGB I3D; ``FLOW`` through C3D on rendered
``denseflow`` images (the capstone's stream) or the 2-channel flow I3D. An unusable video
(unreadable, empty, shorter than 16 frames) raises :class:`vad.video.VideoError`.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

_DONE = object()


def _flow_method(streams, flow: str | None) -> str | None:
    """The flow method the streams need (None without FLOW); FLOW without one is an error."""
    if "FLOW" in streams and not flow:
        raise ValueError("the FLOW stream needs a flow method (farneback or tvl1)")
    return flow if "FLOW" in streams else None


@dataclass
class ClipBatch:
    """Consecutive clips of one video: ``features`` {stream: (B, C, D) float32} and, when
    the pipeline computes them, ``movement`` (B,) float32 values (summed LK displacement)."""

    features: dict[str, np.ndarray]
    movement: np.ndarray | None = None


@dataclass
class VideoFeatures:
    """A whole video: ``features`` {stream: (T, C, D) float32} of its T clips, ``movement``
    (T,) or None, ``frames`` decoded and ``fps`` from the header."""

    features: dict[str, np.ndarray]
    movement: np.ndarray | None
    frames: int
    fps: float


class ClipPipeline:
    """Runs ``networks`` ({stream: module}, see :func:`vad.extraction.networks.load_networks`)
    over videos; ``clips_done`` and ``seconds`` add up over every video."""

    def __init__(self, networks: dict[str, nn.Module], extractor: str, device: torch.device,
                 flow: str | None = None, flow_workers: int = 1, movement: bool = False,
                 ten_crop: bool = False, size=None, batch_size: int = 8, queue_batches: int = 3,
                 progress: bool = False):
        self.networks = dict(networks)
        self.streams = tuple(self.networks)
        self.extractor = str(extractor).upper()
        self.flow = _flow_method(self.streams, flow)
        self.device, self.flow_workers = device, int(flow_workers)
        self.movement, self.ten_crop = bool(movement), bool(ten_crop)
        self.size = tuple(int(v) for v in size) if size else None
        self.batch_size = max(1, int(batch_size))
        self.queue_batches = max(1, int(queue_batches))
        self.progress = bool(progress)
        self.clips_done, self.seconds = 0, 0.0
        self._bar = None

    def run(self, path) -> VideoFeatures:
        """Every clip's features (and movement values) of the video at ``path``."""
        feats = {s: [] for s in self.streams}
        moves = []
        clips = self.batches(path)
        while True:
            try:
                batch = next(clips)
            except StopIteration as end:
                frames, fps = end.value
                break
            for stream, array in batch.features.items():
                feats[stream].append(array)
            if batch.movement is not None:
                moves.append(batch.movement)
        features = {s: np.concatenate(feats[s]).astype(np.float32, copy=False) for s in self.streams}
        movement = np.concatenate(moves).astype(np.float32) if self.movement else None
        return VideoFeatures(features, movement, int(frames), float(fps))

    def batches(self, path) -> Generator[ClipBatch, None, tuple[int, float]]:
        """Yield the video's clips in batches of ``batch_size`` as the networks finish them;
        return ``(frames, fps)`` (the generator's value) once the video is decoded."""
        started = time.perf_counter()
        if self.progress and self._bar is None:
            from tqdm.auto import tqdm
            self._bar = tqdm(unit="clip", desc="clips", dynamic_ncols=True, position=1, leave=False)
        q: queue.Queue = queue.Queue(maxsize=self.batch_size * self.queue_batches)
        stop, info = threading.Event(), {}
        worker = threading.Thread(target=self._produce, args=(path, q, stop, info), daemon=True,
                                  name="vad-extract-decode")
        worker.start()
        pending: list[dict] = []
        try:
            while True:
                item = q.get()
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    raise item
                pending.append(item)
                if len(pending) >= self.batch_size:
                    yield self.run_networks(pending)
                    pending = []
            if pending:
                yield self.run_networks(pending)
        finally:
            stop.set()
            worker.join()
            self.seconds += time.perf_counter() - started
        return int(info["frames"]), float(info["fps"])

    def preparer(self) -> "ClipPreparer":
        """A :class:`ClipPreparer` configured like this pipeline (one per video or stream)."""
        return ClipPreparer(self.streams, self.extractor, flow=self.flow,
                            flow_workers=self.flow_workers, movement=self.movement,
                            ten_crop=self.ten_crop)

    def run_networks(self, items: list[dict]) -> ClipBatch:
        """The networks over prepared clips (:meth:`ClipPreparer.prepare` outputs, in order;
        they may come from several videos or streams): one forward per stream."""
        features = {}
        with torch.no_grad():
            for stream in self.streams:
                x = torch.stack([item[stream] for item in items])  # (B, C, ch, 16, s, s)
                b, c = x.shape[:2]
                y = self.networks[stream](x.reshape(b * c, *x.shape[2:]).to(self.device))
                features[stream] = y.reshape(b, c, -1).float().cpu().numpy()
        self.clips_done += len(items)
        if self._bar is not None:
            self._bar.update(len(items))
        movement = (np.asarray([item["movement"] for item in items], np.float32)
                    if self.movement else None)
        return ClipBatch(features, movement)

    def _produce(self, path, q: queue.Queue, stop: threading.Event, info: dict) -> None:
        """The background thread: decode, flow, movement and preprocessing into ``q``."""
        from vad.video import ClipReader

        def put(item) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        try:
            reader = ClipReader(path, size=self.size)
            preparer = self.preparer()
            try:
                for clip in reader:
                    if not put(preparer.prepare(clip)):
                        return
            finally:
                preparer.close()
            info.update(frames=reader.frames, fps=reader.fps)
            put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            put(exc)


class ClipPreparer:
    """Network inputs of consecutive clips of ONE video or stream, with the state that spans
    clips: the flow of a clip's first frame starts from the previous clip's last frame, and the
    Lucas-Kanade tracker follows its corners across clips. :meth:`reset` forgets that state (a
    stream reopened after a break, clips dropped in between); :meth:`close` stops flow threads."""

    def __init__(self, streams, extractor: str, flow: str | None = None, flow_workers: int = 1,
                 movement: bool = False, ten_crop: bool = False):
        from vad.video import FlowStream, MovementTracker

        self.streams = tuple(str(s).upper() for s in streams)
        self.extractor = str(extractor).upper()
        self.ten_crop = bool(ten_crop)
        flow = _flow_method(self.streams, flow)
        self._flows = FlowStream(flow, workers=int(flow_workers)) if flow else None
        self._tracker = MovementTracker() if movement else None

    def prepare(self, clip) -> dict:
        """Network inputs of one (16, H, W, 3) uint8 RGB clip: {stream: (C, ch, 16, s, s)
        tensor} and, with movement, ``"movement"``: the clip's summed LK displacement."""
        from vad.extractors import preprocess_c3d, preprocess_i3d_flow, preprocess_i3d_rgb
        from vad.video import render_denseflow

        out = {}
        crops = "ten" if self.ten_crop else "center"
        if "RGB" in self.streams:
            x = preprocess_c3d(clip) if self.extractor == "C3D" else preprocess_i3d_rgb(clip, crops=crops)
            out["RGB"] = x if x.dim() == 5 else x.unsqueeze(0)
        if self._flows is not None:
            flow = self._flows.update(clip)
            if self.extractor == "C3D":
                x = preprocess_c3d(render_denseflow(flow))
            else:
                x = preprocess_i3d_flow(flow, crops=crops)
            out["FLOW"] = x if x.dim() == 5 else x.unsqueeze(0)
        if self._tracker is not None:
            out["movement"] = self._tracker.update(clip)
        return out

    def reset(self) -> None:
        if self._flows is not None:
            self._flows.reset()
        if self._tracker is not None:
            self._tracker.reset()

    def close(self) -> None:
        if self._flows is not None:
            self._flows.close()
