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
In this order (the first rule that applies):

* A video whose file stem (``Arson011_x264`` for ``.../Arson011_x264.avi``) is a video of the
  shipped catalogue of ``dataset`` (UCF-Crime by default; ``dataset=xd_violence`` or
  ``shanghaitech`` for theirs) gets that video's split, class and (test) spans. Frame count
  and fps are those decoded (``facts``); spans are clipped to the decoded frames.
* Your own footage, labelled by folder: the nearest folder of the video's path (up to and
  including the ``videos`` folder itself; names compared ignoring case) that is in
  ``labels.normal`` (default ``normal``) gives a normal training video, in ``labels.anomalous``
  (default ``anomalous``, ``abnormal``, ``anomaly``) an anomalous training video of class
  ``Anomaly``, a UCF-Crime class name (``Arson/``) a training video of that class, and in
  ``labels.test`` (default ``test``) a test video of class ``Normal`` without spans, whose
  anomalous frames ``vad.evaluate annotations=FILE.csv`` gives (:mod:`vad.data.annotations_csv`).
  A training video needs only its video-level label, whereas a test video needs frame-level
  spans.
* Any other video whose class is known from its name (a name like ``Arson011`` or
  ``Normal_Videos...``) or a parent folder whose name starts with
  ``Normal``/``Training_Normal``/``Testing_Normal`` is a training video of that class.
* Any other video is stored as split ``"test"``, class ``"Normal"``, no spans, and a warning
  lists them: the least harmful place for unlabelled footage (features are there for scoring
  with ``vad.evaluate``/your own code; an evaluation on such a store counts them as normal).

Reading
-------
``read(entry, stream)`` runs the video once through :class:`vad.extraction.pipeline.ClipPipeline`
for every configured stream (the other streams' results are cached for the next ``read`` of
the same entry) and returns ``(T, C, D)`` float32, ``C = 1`` (10 with ``ten_crop`` for I3D).
Unreadable, empty and too-short videos raise :class:`vad.data.store.SkipVideo` with the
reason. ``movement`` pools the clips' movement values into the 32 segments; ``facts`` gives
the decoded frame count and fps, and the test spans clipped to the decoded frames.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

import numpy as np

from vad.constants import CLASSES, NORMAL
from vad.data.layouts.base import Layout
from vad.data.ucf_crime import class_of
from vad.types import Entry, Video, clip_spans

log = logging.getLogger(__name__)

EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".mpg")


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


@lru_cache(maxsize=None)
def _catalogue_by_stem(dataset: str = "ucf_crime") -> dict[str, tuple[Video, str]]:
    """The dataset's videos by file stem, with their split (``dataset=``: which benchmark's
    names a videos folder may hold)."""
    from vad.data.datasets import dataset as find_dataset

    train, test = find_dataset(dataset).catalogue()
    table = {v.name: (v, "train") for v in train}
    table.update({v.name: (v, "test") for v in test})
    return table


ANOMALY = "Anomaly"  # the class of a video in an anomalous folder that names no UCF-Crime class
DEFAULT_LABELS = {"normal": ("normal",), "anomalous": ("anomalous", "abnormal", "anomaly"),
                  "test": ("test",)}


def folder_labels(labels=None) -> dict[str, frozenset[str]]:
    """``labels`` (``{normal: [...], anomalous: [...], test: [...]}``, missing keys take the
    defaults) as lower-case name sets; a name under two keys is an error."""
    if labels is not None and not isinstance(labels, dict):
        raise ValueError(f"labels={labels!r}: expected the keys labels.normal, labels.anomalous and "
                         "labels.test, each a list of folder names (labels.normal=[normal,calm])")
    given = dict(labels or {})
    unknown = sorted(set(given) - set(DEFAULT_LABELS))
    if unknown:
        raise ValueError(f"labels.{unknown[0]}: unknown key, expected labels.normal, labels.anomalous "
                         "and labels.test (lists of folder names)")
    out = {}
    for key, default in DEFAULT_LABELS.items():
        names = given.get(key)
        names = default if names is None else ([names] if isinstance(names, str) else list(names))
        out[key] = frozenset(str(n).strip().lower() for n in names)
    for a, b in (("normal", "anomalous"), ("normal", "test"), ("anomalous", "test")):
        both = sorted(out[a] & out[b])
        if both:
            raise ValueError(f"labels.{a} and labels.{b} both name the folder {both[0]!r}: a folder "
                             "gives one label; remove it from one of them")
    return out


def folder_label(rel: str, labels: dict[str, frozenset[str]]) -> tuple[str, str] | None:
    """``(split, class)`` that the nearest label folder of ``rel`` gives, or None."""
    for part in reversed(Path(rel).parent.parts):
        if part in CLASSES:
            return "train", part
        name = part.lower()
        if name in labels["normal"]:
            return "train", NORMAL
        if name in labels["anomalous"]:
            return "train", ANOMALY
        if name in labels["test"]:
            return "test", NORMAL
    return None


def label_of(rel: str, labels: dict[str, frozenset[str]] | None = None,
             dataset: str = "ucf_crime") -> tuple[str, str, tuple]:
    """``(split, class, spans)`` of a video path (its folders as the labels see them, the
    ``videos`` folder first), with the folder names of :func:`folder_labels` (default: its
    defaults; see the module doc); a video of ``dataset``'s official split is known by name."""
    labels = labels or folder_labels()
    known = _catalogue_by_stem(dataset).get(Video(rel, NORMAL, 0).name)
    if known is not None:
        video, split = known
        return split, video.cls, video.spans
    by_folder = folder_label(rel, labels)
    if by_folder is not None:
        return (*by_folder, ())
    try:
        return "train", class_of(rel), ()
    except ValueError:
        pass
    folder = Path(rel).parent.name
    if folder.startswith(("Normal", "Training_Normal", "Testing_Normal")):
        return "train", NORMAL, ()
    return "test", NORMAL, ()


class VideoLayout(Layout):
    """Videos read through a C3D/I3D extractor (see the module doc)."""

    name = "videos"
    kind = "clips"

    def __init__(self, root, extractor: str = "I3D", streams=("RGB",), weights=None,
                 flow: str = "auto", movement: str | None = None, ten_crop: bool = False,
                 batch_size: int = 8, device: str = "auto", shard: int = 0, num_shards: int = 1,
                 size=None, queue_batches: int = 3, progress: bool = False,
                 seed: int = 0, flow_workers="auto", labels=None, dataset: str = "ucf_crime"):
        super().__init__(Path(root).expanduser())
        from vad.device import resolve_device
        from vad.extraction import networks
        from vad.extraction.pipeline import ClipPipeline
        from vad.video import resolve_method

        self.extractor = str(extractor).upper()
        self.labels = folder_labels(labels)  # before the networks: a bad option fails at once
        self._streams = tuple(str(s).upper() for s in streams)
        if not 0 <= int(shard) < int(num_shards):
            raise ValueError(f"shard={shard} num_shards={num_shards}: need 0 <= shard < num_shards")
        self.shard, self.num_shards = int(shard), int(num_shards)
        self.ten_crop = bool(ten_crop)
        if self.ten_crop and self.extractor != "I3D":
            raise ValueError("ten_crop=true is for I3D (C3D takes the centre 112x112 crop)")
        self.size = tuple(int(v) for v in size) if size else None
        self.movement_method = None if movement in (None, "none", False) else str(movement)
        if self.movement_method not in (None, "lk"):
            raise ValueError(f"movement={movement}: expected lk or none")
        self.flow_method = resolve_method(flow) if "FLOW" in self._streams else None
        self.device = resolve_device(device)
        workers = networks.flow_workers(flow_workers, self.device)
        # The networks first: a missing weights file fails before any video is listed.
        models, self.weights = networks.load_networks(self.extractor, self._streams, weights,
                                                      self.device, seed)
        self.pipeline = ClipPipeline(models, self.extractor, self.device, flow=self.flow_method,
                                     flow_workers=workers, movement=self.movement_method is not None,
                                     ten_crop=self.ten_crop, size=self.size, batch_size=batch_size,
                                     queue_batches=queue_batches, progress=progress)
        mine = list_videos(self.root)[self.shard::self.num_shards]
        self._abs = {rel: path for rel, path in mine}
        self._entries = []
        # Labels see the videos folder's own name too: videos=footage/normal holds normal videos.
        top = self.root.resolve().name if self.root.is_dir() else ""
        unlabelled, to_annotate = [], []
        for rel, _ in mine:
            labelled = f"{top}/{rel}" if top else rel
            split, cls, spans = label_of(labelled, self.labels, dataset)
            if split == "test" and Video(rel, NORMAL, 0).name not in _catalogue_by_stem(dataset):
                (to_annotate if folder_label(labelled, self.labels) else unlabelled).append(rel)
            self._entries.append(Entry(Video(rel, cls, 0, tuple(spans)), split))
        if to_annotate:
            log.info("%d videos in a test folder (labels.test=%s) are test videos of class Normal until "
                     "vad.evaluate annotations=FILE.csv gives their anomalous frames, e.g. %s",
                     len(to_annotate), sorted(self.labels["test"]), to_annotate[:3])
        if unlabelled:
            log.warning("%d videos are not UCF-Crime videos and have no label folder (labels.normal=%s, "
                        "labels.anomalous=%s, labels.test=%s); stored as test videos of class Normal "
                        "without spans, e.g. %s", len(unlabelled), sorted(self.labels["normal"]),
                        sorted(self.labels["anomalous"]), sorted(self.labels["test"]), unlabelled[:3])
        self._cache_key = None
        self._cache: dict = {}

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

    # ------------------------------------------------------------------ one video
    def _ensure(self, entry: Entry) -> None:
        key = entry.video.path
        if self._cache_key == key:
            return
        self._cache_key, self._cache = None, {}
        result = self.extract_video(self._abs[key], entry)
        self._cache_key, self._cache = key, result

    def extract_video(self, path, entry: Entry) -> dict:
        """``{"features": {stream: (T, C, D)}, "movement": (32,) or None, "facts": {...}}`` of
        one video file, in the terms of the store (see the module doc)."""
        from vad.data.store import SkipVideo
        from vad.video import VideoError, movement_segments

        try:
            video = self.pipeline.run(path)
        except VideoError as err:
            raise SkipVideo(entry.video.path, err.reason) from err
        facts = {"frames": video.frames, "fps": video.fps}
        if entry.split == "test":
            facts["spans"] = clip_spans(entry.video.spans, video.frames)
        movement = movement_segments(video.movement) if video.movement is not None else None
        return {"features": video.features, "movement": movement, "facts": facts}


__all__ = ["ANOMALY", "DEFAULT_LABELS", "EXTENSIONS", "VideoLayout", "folder_label", "folder_labels",
           "label_of", "list_videos"]
