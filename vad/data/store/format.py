"""What a store file holds and how its parts are written, shared by the writer, the merge
and the reader (one place for the HDF5 layout; see the package doc for the format)."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np

from vad.cli import override
from vad.constants import CROP_MODES, N_SEGMENTS
from vad.data.layouts.base import Layout
from vad.types import Entry

log = logging.getLogger(__name__)

FORMAT = "vad-store"
VERSION = 1
PARTIAL = ".partial"
KEEP_ALL = "all"
# The options that decide a store's content: a store made with other values cannot be resumed
# or reused for this request.
OPTION_KEYS = ("streams", "crops", "crop", "keep_snippets", "n_segments")
# Root attributes of the provenance that stores must share to be merged.
PROVENANCE_KEYS = ("layout", "layout_kind", "extractor", "weights_rgb", "weights_flow",
                   "flow_method", "movement", "ten_crop", "num_shards")
# The end of a writer's error about an existing file it cannot use.
OTHER_OUT = "or use another out="


class SkipVideo(Exception):
    """Raised by ``layout.read`` for a video that cannot be used (unreadable, empty, too short):
    the writer records ``(path, reason)`` in the store's log and goes on without it."""

    def __init__(self, path, reason: str):
        self.path, self.reason = str(path), str(reason)
        super().__init__(f"{self.path}: {self.reason}")


def keep_mode(keep_snippets):
    """``keep_snippets`` as stored: False, True (test videos) or ``"all"`` (every video)."""
    if isinstance(keep_snippets, str):
        low = keep_snippets.strip().lower()
        if low == KEEP_ALL:
            return KEEP_ALL
        if low in ("true", "false"):
            return low == "true"
        raise ValueError(f"keep_snippets={keep_snippets!r}: expected true, false or all")
    return bool(keep_snippets)


def partial_path(out: Path) -> Path:
    out = Path(out)
    return out.with_suffix(out.suffix + PARTIAL)


def group_name(index: int) -> str:
    return f"{index:06d}"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def texts(value) -> list[str]:
    return [text(v) for v in np.atleast_1d(value)]


def attr_text(value):
    """An attribute as compared between stores: strings decoded, None kept."""
    return None if value is None else str(text(value) if isinstance(value, bytes) else value)


def stored_options(f: h5py.File) -> dict:
    attrs = f.attrs
    keep = attrs["keep_snippets"]
    keep = KEEP_ALL if isinstance(keep, (str, bytes)) and text(keep) == KEEP_ALL else bool(keep)
    return {"streams": texts(attrs["streams"]), "crops": text(attrs["crops"]),
            "crop": int(attrs["crop"]), "keep_snippets": keep,
            "n_segments": int(attrs["n_segments"])}


def effective_crops(layout: Layout, crops: str, crop: int) -> tuple[str, int]:
    """Segment layouts have no crops ("none"); ``crop`` only matters with crops="one"."""
    if crops not in CROP_MODES:
        raise ValueError(f"crops={crops!r}: expected one of {CROP_MODES}")
    if layout.kind == "segments":
        if crops != "mean":
            log.info("layout %s gives 32-segment features without crops: crops=%s ignored",
                     layout.name, crops)
        return "none", -1
    if layout.kind != "clips":
        raise ValueError(f"layout {layout.name} has kind {layout.kind!r}: expected 'clips' or 'segments'")
    if crops == "one":
        if int(crop) < 0:
            raise ValueError(f"crop={crop}: expected a crop index >= 0 (0 is the centre crop)")
        return crops, int(crop)
    return crops, -1


def _fix(path: Path, writing: bool, what: str) -> str:
    """How to get past an existing file that is no usable store: a writer may pick another
    ``out=``; a reader needs the store made again."""
    if writing:
        return f"delete it to {what}, {OTHER_OUT}"
    return (f"make the store again with `python -m vad.prepare data=<layout> data.root=... "
            f"{override('out', path)}`, or point data.path at another store")


def open_existing(path: Path, mode: str, writing: bool) -> h5py.File:
    """Open an existing store file, refusing what is not a store of this version; ``writing``
    chooses the advice (the writer's ``out=`` or the reader's ``vad.prepare`` command)."""
    try:
        f = h5py.File(path, mode)
    except OSError as exc:
        raise ValueError(f"{path} exists but cannot be opened as HDF5 ({exc}); it is not a usable "
                         f"vad store (an interrupted write killed mid-flush?): "
                         f"{_fix(path, writing, 'start over')}") from exc
    if text(f.attrs.get("format", "")) != FORMAT:
        f.close()
        raise ValueError(f"{path} exists but is not a {FORMAT} file: {_fix(path, writing, 'start over')}")
    if int(f.attrs.get("version", -1)) != VERSION:
        version = f.attrs.get("version")
        f.close()
        raise ValueError(f"{path} is a {FORMAT} of version {version}, this code reads and writes "
                         f"version {VERSION}: {_fix(path, writing, 'prepare it again')}")
    return f


def check_same(f: h5py.File, path: Path, options: dict, entries: list[Entry], source: str) -> None:
    """Raise when ``path`` was made with other options or from another list of videos."""
    stored = stored_options(f)
    diff = [k for k in OPTION_KEYS if stored[k] != options[k]]
    if diff:
        shown = ", ".join(f"{k}: stored {stored[k]!r}, requested {options[k]!r}" for k in diff)
        raise ValueError(f"{path} was prepared with other options ({shown}): delete {path} to "
                         f"prepare again with the new options, {OTHER_OUT}")
    n_stored = int(f.attrs.get("n_listed", f.attrs["n_videos"]))
    if n_stored != len(entries):
        raise ValueError(f"{path} holds a store of {n_stored} videos but the layout ({source}) lists "
                         f"{len(entries)}: delete {path} to prepare again, {OTHER_OUT}")
    stored_source = text(f.attrs.get("source", ""))
    if stored_source != source:
        log.warning("%s was prepared from %s; now reading %s (same options and video count, "
                    "continuing)", path, stored_source, source)


def layout_attrs(layout: Layout) -> dict:
    """The layout's provenance attributes (``layout.store_attrs()``, optional)."""
    method = getattr(layout, "store_attrs", None)
    return dict(method()) if method is not None else {}


def check_attrs(f: h5py.File, path: Path, layout: Layout) -> None:
    """A resume must use the same layout provenance (extractor, weights...) as the store."""
    diff = []
    for key, value in layout_attrs(layout).items():
        stored = f.attrs.get(key)
        stored = text(stored) if isinstance(stored, (str, bytes)) else stored
        if stored is None or str(stored) != str(value):
            diff.append(f"{key}: stored {stored!r}, requested {value!r}")
    if diff:
        raise ValueError(f"{path} was made with other settings ({'; '.join(diff)}): delete {path} "
                         f"to start again with the new settings, {OTHER_OUT}")


def new_store(path: Path, layout: Layout, options: dict, n_videos: int) -> h5py.File:
    """Create an empty store at ``path`` with its root attributes (``complete=False``)."""
    f = h5py.File(path, "w")
    a = f.attrs
    a["format"] = FORMAT
    a["version"] = VERSION
    a["streams"] = list(options["streams"])
    a["dims"] = np.zeros(len(options["streams"]), dtype=np.int64)
    a["n_segments"] = N_SEGMENTS
    a["crops"] = options["crops"]
    a["crop"] = options["crop"]
    a["keep_snippets"] = options["keep_snippets"]
    for key, value in layout_attrs(layout).items():
        a[key] = value
    a["source"] = f"{layout.name} {layout.root}"
    a["layout"] = layout.name
    a["layout_kind"] = layout.kind
    a["root"] = str(layout.root)
    a["n_videos"] = n_videos
    a["created"] = now()
    a["complete"] = False
    f.create_group("videos")
    f.flush()
    return f


def write_group(videos: h5py.Group, index: int, entry: Entry, segments: dict, snippets: dict,
                movement, facts: dict | None = None) -> None:
    """One video's group; ``done`` is set last, once everything else is on disk."""
    name = group_name(index)
    if name in videos:  # interrupted mid-video: start this one again
        del videos[name]
    g = videos.create_group(name)
    video = entry.video
    g.attrs["index"] = index
    g.attrs["path"] = video.path
    g.attrs["cls"] = video.cls
    facts = facts or {}
    g.attrs["frames"] = int(facts.get("frames", video.frames))
    if facts.get("fps") is not None:
        g.attrs["fps"] = float(facts["fps"])
    g.attrs["split"] = entry.split
    spans = facts.get("spans", video.spans) if entry.split == "test" else ()
    g.attrs["spans"] = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
    for stream, array in segments.items():
        g.create_dataset(f"segments/{stream}", data=array)
    for stream, array in snippets.items():
        g.create_dataset(f"snippets/{stream}", data=array)
    if movement is not None:
        g.create_dataset("movement", data=movement)
    videos.file.flush()
    g.attrs["done"] = True  # last: the video is complete only now
    videos.file.flush()


def write_skip(f: h5py.File, index: int, path: str, reason: str) -> None:
    """Record a video the layout refused, in place of any half-written group of it."""
    name = group_name(index)
    if name in f["videos"]:
        del f["videos"][name]
    skipped = f.require_group("skipped")
    if name in skipped:
        del skipped[name]
    g = skipped.create_group(name)
    g.attrs["index"], g.attrs["path"], g.attrs["reason"] = index, path, reason
    f.flush()


def write_index(f: h5py.File) -> None:
    """Per-video facts as columns (see the package doc), from the finished video groups."""
    if "index" in f:
        del f["index"]
    names = sorted(f["videos"])
    cols = {"group": [], "path": [], "cls": [], "split": [], "frames": [], "n_spans": [],
            "has_movement": []}
    spans = []
    for name in names:
        g = f["videos"][name]
        a = g.attrs
        video_spans = np.asarray(a["spans"], dtype=np.int64).reshape(-1, 2)
        for key, value in (("group", name), ("path", text(a["path"])), ("cls", text(a["cls"])),
                           ("split", text(a["split"])), ("frames", int(a["frames"])),
                           ("n_spans", len(video_spans)), ("has_movement", "movement" in g)):
            cols[key].append(value)
        spans.append(video_spans)
    index = f.create_group("index")
    string = h5py.string_dtype()
    for key in ("group", "path", "cls", "split"):
        index.create_dataset(key, data=np.array(cols[key], dtype=object), dtype=string)
    index.create_dataset("frames", data=np.asarray(cols["frames"], dtype=np.int64))
    index.create_dataset("n_spans", data=np.asarray(cols["n_spans"], dtype=np.int64))
    index.create_dataset("has_movement", data=np.asarray(cols["has_movement"], dtype=bool))
    index.create_dataset("spans", data=np.concatenate(spans) if spans else np.zeros((0, 2), np.int64))
    write_log(f, skipped_of(f))
    f.flush()


def skipped_of(f: h5py.File) -> list[tuple[str, str]]:
    """(path, reason) of the skipped videos of an open store, in entry order (the /skipped
    groups of a partial store, else the /log of a complete one)."""
    if "skipped" in f:
        groups = [f["skipped"][name] for name in sorted(f["skipped"])]
        return [(text(g.attrs["path"]), text(g.attrs["reason"])) for g in groups]
    if "log" in f:
        return list(zip(f["log/path"].asstr()[()], f["log/reason"].asstr()[()]))
    return []


def write_log(f: h5py.File, skipped: list[tuple[str, str]]) -> None:
    """/log of the skipped videos and the root counts n_listed, n_skipped, n_videos."""
    if "log" in f:
        del f["log"]
    string = h5py.string_dtype()
    g = f.create_group("log")
    g.create_dataset("path", data=np.array([p for p, _ in skipped], dtype=object), dtype=string)
    g.create_dataset("reason", data=np.array([r for _, r in skipped], dtype=object), dtype=string)
    n_written = len(f["videos"])
    f.attrs["n_listed"] = n_written + len(skipped)
    f.attrs["n_skipped"] = len(skipped)
    f.attrs["n_videos"] = n_written


def mark_complete(f: h5py.File, skipped: list[tuple[str, str]] | None = None) -> None:
    """The last write of a store: /index, /log (of ``skipped``, default the store's own) and
    the ``complete`` and ``finished`` attributes."""
    write_index(f)
    if skipped is not None:
        write_log(f, skipped)
    if "skipped" in f:
        del f["skipped"]
    f.attrs["complete"] = True
    f.attrs["finished"] = now()
