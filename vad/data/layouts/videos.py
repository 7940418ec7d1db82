"""``VideoLayout``: a folder (or list file) of video files read through a feature extractor
network, as a ``"clips"`` layout, so ``vad.data.store.write`` turns videos into a feature store
(``python -m vad.extract``).

Videos
------
``root`` is a folder (searched recursively for ``.mp4 .avi .mkv .mov .mpg``) or a text file
listing one video per line (relative paths are relative to the list's folder). Paths are
sorted (by their relative POSIX path); ``shard``/``num_shards`` keep ``paths[shard::num_shards]``,
a deterministic split whose union, sorted again, is the unsharded order.

Labels (``Entry``)
------------------
* A video whose file stem (``Arson011_x264`` for ``.../Arson011_x264.avi``) is a UCF-Crime
  video of the shipped catalogue gets that video's split, class and (test) spans. Frame count
  and fps are those decoded (``facts``); spans are clipped to the decoded frames.
* Any other video whose class is known from its name or parent folder (a UCF-Crime class
  folder like ``Arson/``, a name starting ``Normal_Videos``, or a parent folder whose name
  starts with ``Normal``/``Training_Normal``/``Testing_Normal``) is stored in split
  ``"train"`` with that class: a training video needs only its video-level label, whereas a
  test video would need frame-level spans that nobody gave.
* Any other video is stored as split ``"test"``, class ``"Normal"``, no spans, and a warning
  lists them: the least harmful place for unlabelled footage (features are there for scoring
  with ``vad.evaluate``/your own code; an evaluation on such a store counts them as normal).

Reading
-------
``read(entry, stream)`` decodes the video once for every configured stream (the other
streams' results are cached for the next ``read`` of the same entry), with the decoding, the
optical flow, the preprocessing and the movement values of upcoming clips made in a background
thread (a queue of a few batches) while the network runs on the current batch. It returns
``(T, C, D)`` float32, ``C = 1`` (10 with ``ten_crop`` for I3D). Unreadable, empty and
too-short videos raise :class:`vad.data.store.SkipVideo` with the reason.

Streams: RGB through C3D (Sports-1M) or the RGB I3D; FLOW through C3D on rendered
``denseflow`` images (the capstone's stream; C3D uses ``weights.flow`` when given, else
``weights.rgb``) or the 2-channel flow I3D.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from pathlib import Path

import numpy as np

from vad.constants import CLASSES, NORMAL
from vad.data.layouts.base import Layout
from vad.data.ucf_crime import catalogue, class_of
from vad.types import Entry, Video

log = logging.getLogger(__name__)

EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".mpg")
_DONE = object()


def list_videos(root: Path) -> list[tuple[str, Path]]:
    """Sorted ``(relative POSIX path, absolute path)`` of the videos under a folder or in a list."""
    root = Path(root).expanduser()
    if root.is_dir():
        found = [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in EXTENSIONS]
        items = [(p.relative_to(root).as_posix(), p) for p in found]
    elif root.is_file():
        items = []
        for line in root.read_text().splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            p = Path(line).expanduser()
            items.append((line, p if p.is_absolute() else root.parent / p))
    else:
        raise FileNotFoundError(f"videos={root}: no such folder or list file")
    items.sort(key=lambda item: item[0])
    names = [rel for rel, _ in items]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"videos={root} lists {dup[:5]} more than once")
    return items


def _catalogue_by_stem() -> dict[str, tuple[Video, str]]:
    train, test = catalogue()
    table = {v.name: (v, "train") for v in train}
    table.update({v.name: (v, "test") for v in test})
    return table


def label_of(rel: str) -> tuple[str, str, tuple]:
    """``(split, class, spans)`` of a video path (see the module doc)."""
    stem = Path(rel).name.split(".")[0]
    known = _catalogue_by_stem().get(stem)
    if known is not None:
        video, split = known
        return split, video.cls, video.spans
    try:
        return "train", class_of(rel), ()
    except ValueError:
        pass
    folder = Path(rel).parent.name
    if folder in CLASSES:
        return "train", folder, ()
    if folder.startswith(("Normal", "Training_Normal", "Testing_Normal")):
        return "train", NORMAL, ()
    return "test", NORMAL, ()


def _device(name: str):
    import torch

    name = str(name or "auto")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _flow_workers(value, device) -> int:
    """Threads computing optical flow: ``"auto"`` -> 1 when the network runs on the CPU (it
    uses every core already), else every core but the one decoding."""
    if str(value) == "auto":
        return 1 if device.type == "cpu" else max(1, (os.cpu_count() or 2) - 1)
    workers = int(value)
    if workers < 1:
        raise ValueError(f"flow_workers={value}: expected auto or an integer >= 1")
    return workers


class VideoLayout(Layout):
    """Videos read through a C3D/I3D extractor (see the module doc)."""

    name = "videos"
    kind = "clips"

    def __init__(self, root, extractor: str = "I3D", streams=("RGB",), weights=None,
                 flow: str = "auto", movement: str | None = None, ten_crop: bool = False,
                 batch_size: int = 8, device: str = "auto", shard: int = 0, num_shards: int = 1,
                 size=None, queue_batches: int = 3, progress: bool = False,
                 seed: int = 0, flow_workers="auto"):
        super().__init__(Path(root).expanduser())
        import torch

        from vad.extractors import build_extractor
        from vad.video import resolve_method

        self.extractor = str(extractor).upper()
        if self.extractor not in ("C3D", "I3D"):
            raise ValueError(f"extractor={extractor}: vad.extract runs C3D or I3D")
        self._streams = tuple(str(s).upper() for s in streams)
        bad = [s for s in self._streams if s not in ("RGB", "FLOW")]
        if bad or not self._streams:
            raise ValueError(f"streams {list(self._streams)}: expected RGB and/or FLOW")
        if not 0 <= int(shard) < int(num_shards):
            raise ValueError(f"shard={shard} num_shards={num_shards}: need 0 <= shard < num_shards")
        self.shard, self.num_shards = int(shard), int(num_shards)
        self.ten_crop = bool(ten_crop)
        if self.ten_crop and self.extractor != "I3D":
            raise ValueError("ten_crop=true is for I3D (C3D takes the centre 112x112 crop)")
        self.batch_size = max(1, int(batch_size))
        self.queue_batches = max(1, int(queue_batches))
        self.size = tuple(int(v) for v in size) if size else None
        self.movement_method = None if movement in (None, "none", False) else str(movement)
        if self.movement_method not in (None, "lk"):
            raise ValueError(f"movement={movement}: expected lk or none")
        self.flow_method = resolve_method(flow) if "FLOW" in self._streams else None
        weights = dict(weights or {})
        self.weights = {"RGB": weights.get("rgb"), "FLOW": weights.get("flow")}
        self.device = _device(device)
        self.flow_workers = _flow_workers(flow_workers, self.device)
        # Build (and load) the networks first: a missing weights file fails before any video.
        # Seeded, so weights=random gives the same network in every shard.
        torch.manual_seed(int(seed))
        self.models = {}
        for stream in self._streams:
            if self.extractor == "C3D":
                path = self.weights["FLOW"] if stream == "FLOW" and self.weights["FLOW"] else self.weights["RGB"]
                self.weights[stream] = path
                shared = next((m for s, m in self.models.items() if self.weights[s] == path), None)
                self.models[stream] = shared or build_extractor("C3D", "RGB", path)
            else:
                self.models[stream] = build_extractor("I3D", stream, self.weights[stream])
        for model in self.models.values():
            model.to(self.device).eval()
        self._torch = torch
        self._items = list_videos(self.root)
        mine = self._items[self.shard::self.num_shards]
        self._abs = {rel: path for rel, path in mine}
        self._entries = []
        unlabelled = []
        for rel, _ in mine:
            split, cls, spans = label_of(rel)
            if split == "test" and cls == NORMAL and Path(rel).name.split(".")[0] not in _catalogue_by_stem():
                unlabelled.append(rel)
            self._entries.append(Entry(Video(rel, cls, 0, tuple(spans)), split))
        if unlabelled:
            log.warning("%d videos are not UCF-Crime videos and have no class folder; stored as "
                        "test videos of class Normal without spans, e.g. %s", len(unlabelled),
                        unlabelled[:3])
        self._cache_key = None
        self._cache: dict = {}
        self.clips_done, self.seconds = 0, 0.0
        self.progress = bool(progress)
        self._bar = None

    # ------------------------------------------------------------------ Layout interface
    def entries(self) -> list[Entry]:
        return list(self._entries)

    def streams(self) -> tuple[str, ...]:
        return self._streams

    def source(self, entry: Entry, stream: str) -> str:
        return str(self._abs.get(entry.video.path, entry.video.path))

    def store_attrs(self) -> dict:
        return {"extractor": self.extractor, "weights_rgb": str(self.weights.get("RGB")),
                "weights_flow": str(self.weights.get("FLOW")),
                "flow_method": str(self.flow_method), "movement": str(self.movement_method),
                "ten_crop": self.ten_crop, "decode_size": str(list(self.size) if self.size else None),
                "shard": self.shard, "num_shards": self.num_shards}

    def read(self, entry: Entry, stream: str) -> np.ndarray:
        self._ensure(entry)
        return self._cache["features"][stream]

    def movement(self, entry: Entry):
        if self.movement_method is None:
            return None
        self._ensure(entry)
        return self._cache["movement"]

    def facts(self, entry: Entry) -> dict:
        self._ensure(entry)
        return dict(self._cache["facts"])

    # ------------------------------------------------------------------ extraction
    def _ensure(self, entry: Entry) -> None:
        key = entry.video.path
        if self._cache_key == key:
            return
        self._cache_key, self._cache = None, {}
        result = self.extract_video(self._abs[key], entry)
        self._cache_key, self._cache = key, result

    def _prepare_clip(self, clip, flows, tracker) -> dict:
        """Network inputs of one (16, H, W, 3) uint8 clip: {stream: (C, ch, 16, s, s) tensor}."""
        from vad.extractors import (
            preprocess_c3d,
            preprocess_i3d_flow,
            preprocess_i3d_rgb,
        )
        from vad.video import render_denseflow

        out = {}
        crops = "ten" if self.ten_crop else "center"
        if "RGB" in self._streams:
            x = preprocess_c3d(clip) if self.extractor == "C3D" else preprocess_i3d_rgb(clip, crops=crops)
            out["RGB"] = x if x.dim() == 5 else x.unsqueeze(0)
        if "FLOW" in self._streams:
            flow = flows.update(clip)
            if self.extractor == "C3D":
                x = preprocess_c3d(render_denseflow(flow))
            else:
                x = preprocess_i3d_flow(flow, crops=crops)
            out["FLOW"] = x if x.dim() == 5 else x.unsqueeze(0)
        if tracker is not None:
            out["movement"] = tracker.update(clip)
        return out

    def _produce(self, path, q: queue.Queue, stop: threading.Event, info: dict) -> None:
        from vad.video import ClipReader, FlowStream, MovementTracker

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
            flows = FlowStream(self.flow_method, workers=self.flow_workers) if self.flow_method else None
            tracker = MovementTracker() if self.movement_method else None
            try:
                for clip in reader:
                    if not put(self._prepare_clip(clip, flows, tracker)):
                        return
            finally:
                if flows is not None:
                    flows.close()
            info.update(frames=reader.frames, fps=reader.fps)
            put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            put(exc)

    def extract_video(self, path, entry: Entry | None = None) -> dict:
        """Features of every stream, movement and facts of one video file (see the module doc)."""
        import time

        from vad.data.store import SkipVideo
        from vad.video import VideoError, movement_segments

        torch = self._torch
        started = time.perf_counter()
        if self.progress and self._bar is None:
            from tqdm.auto import tqdm
            self._bar = tqdm(unit="clip", desc="clips", dynamic_ncols=True, position=1, leave=False)
        q: queue.Queue = queue.Queue(maxsize=self.batch_size * self.queue_batches)
        stop, info = threading.Event(), {}
        worker = threading.Thread(target=self._produce, args=(path, q, stop, info), daemon=True,
                                  name="vad-extract-decode")
        worker.start()
        feats = {s: [] for s in self._streams}
        moves: list[float] = []
        batch: list[dict] = []

        def flush():
            if not batch:
                return
            with torch.no_grad():
                for stream in self._streams:
                    x = torch.stack([item[stream] for item in batch])  # (B, C, ch, 16, s, s)
                    b, c = x.shape[:2]
                    y = self.models[stream](x.reshape(b * c, *x.shape[2:]).to(self.device))
                    feats[stream].append(y.reshape(b, c, -1).float().cpu().numpy())
            self.clips_done += len(batch)
            if self._bar is not None:
                self._bar.update(len(batch))
            batch.clear()

        try:
            while True:
                item = q.get()
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    if isinstance(item, VideoError):
                        raise SkipVideo(entry.video.path if entry else path, item.reason) from item
                    raise item
                if "movement" in item:
                    moves.append(item.pop("movement"))
                batch.append(item)
                if len(batch) >= self.batch_size:
                    flush()
            flush()
        finally:
            stop.set()
            worker.join()
            self.seconds += time.perf_counter() - started
        frames, fps = int(info["frames"]), float(info["fps"])
        features = {s: np.concatenate(feats[s]).astype(np.float32, copy=False) for s in self._streams}
        facts = {"frames": frames, "fps": fps}
        if entry is not None and entry.split == "test":
            spans = [(max(1, s), min(e, frames)) for s, e in entry.video.spans]
            facts["spans"] = tuple((s, e) for s, e in spans if s <= e)
        movement = movement_segments(np.asarray(moves, np.float32)) if self.movement_method else None
        return {"features": features, "movement": movement, "facts": facts}


__all__ = ["EXTENSIONS", "VideoLayout", "label_of", "list_videos"]
