"""The feature store: one HDF5 file of 32-segment features made once by ``python -m vad.prepare``
from any layout, then read by ``data=store data.path=STORE.h5`` in seconds.

Format (``format="vad-store"``, ``version=1``)::

    /                      attrs: format, version, streams, dims (per stream, 0 until known),
                                  n_segments=32, crops ("mean"/"one"/"all"; "none" for segment
                                  layouts), crop, keep_snippets, source ("<layout> <root>"),
                                  layout, layout_kind, root, n_videos, created, complete, finished
    /videos/<000000>       one group per layout entry, named by its index (sorted = entry order)
        attrs: index, path, cls, frames, split ("train"/"test"), spans (int64 (k, 2), 1-based
               inclusive; empty for train videos, as training must not see them), done=True
               written LAST (a group without it was interrupted and is rewritten on resume)
        segments/<STREAM>  float32 (C', 32, D); C' = 1 except crops="all" (C' = crops)
        snippets/<STREAM>  float32 (T, D) mean over crops, only with keep_snippets and only for
                           test videos (what the snippets evaluation protocol needs: ~0.6 GB for
                           UCF-Crime's test set at 2048-d, against ~7 GB for every video);
                           keep_snippets="all" keeps them for every video (``vad.extract``)
        attrs fps          only when the layout reports it (``layout.facts``, see below)
        movement           float32 (32,), only when the layout gives movement values
    /skipped/<000000>      attrs index, path, reason: a video the layout refused (it raised
                           :class:`SkipVideo`, e.g. an unreadable or too-short video file); it is
                           not written, and a resume does not retry it (delete the store to retry)
    /log                   written with /index: path and reason (strings) of every skipped video;
                           root attrs n_listed (videos the layout lists), n_skipped, and n_videos
                           becomes the number of videos written (= rows of /index)
    /index                 written once every video is done, for fast loading (one read per
                           column instead of per-video attributes): group (names), path, cls,
                           split (strings), frames, n_spans, has_movement (per video) and spans
                           (int64 (sum n_spans, 2)), in entry order

The writer streams one video at a time (memory is bounded by one video's raw array, whatever
the dataset size), writes ``<out>.partial``, flushes after every video and renames the file to
``out`` once every video is done: ``out`` is never half-written, and re-running the same
command resumes the ``.partial`` file.

Optional layout hooks (all backward compatible; the file layouts have none of them):
``layout.movement(entry)`` -> (32,) movement values; ``layout.facts(entry)`` -> dict of facts
known only once the video is read (``frames``, ``fps``, ``spans``), overriding the entry's;
``layout.store_attrs()`` -> dict of root attributes recorded at creation (provenance, e.g. the
extractor and its weights) that a resume must match.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np

from vad.constants import CROP_MODES, N_SEGMENTS
from vad.data.convert import to_segments, value_problems
from vad.data.layouts.base import Layout
from vad.types import Entry, Video

log = logging.getLogger(__name__)

FORMAT = "vad-store"
VERSION = 1
PARTIAL = ".partial"
# The options that decide a store's content: a store made with other values cannot be resumed
# or reused for this request.
OPTION_KEYS = ("streams", "crops", "crop", "keep_snippets", "n_segments")


class StoreReadError(RuntimeError):
    """Reading or converting one video of the layout failed (the message names the video)."""


class SkipVideo(Exception):
    """Raised by ``layout.read`` for a video that cannot be used (unreadable, empty, too short):
    ``write`` records ``(path, reason)`` in the store's log and goes on without it."""

    def __init__(self, path, reason: str):
        self.path, self.reason = str(path), str(reason)
        super().__init__(f"{self.path}: {self.reason}")


KEEP_ALL = "all"


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


@dataclass
class WriteReport:
    """What one ``write`` call did."""

    path: Path
    written: int = 0
    skipped: int = 0
    seconds: float = 0.0
    bytes_read: int = 0
    videos: int = 0
    streams: tuple[str, ...] = ()
    crops: str = "mean"
    dims: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)
    failed: list = field(default_factory=list)  # (path, reason) of skipped bad videos

    @property
    def mb_read(self) -> float:
        return self.bytes_read / 1e6

    def as_dict(self) -> dict:
        return {"out": str(self.path), "videos": self.videos, "written": self.written,
                "skipped": self.skipped, "seconds": round(self.seconds, 3),
                "mb_read": round(self.mb_read, 3),
                "mb_per_s": round(self.mb_read / self.seconds, 2) if self.seconds > 0 else None,
                "streams": list(self.streams), "crops": self.crops, "dims": dict(self.dims),
                "problems": list(self.problems),
                "failed": [list(item) for item in self.failed]}


def partial_path(out: Path) -> Path:
    out = Path(out)
    return out.with_suffix(out.suffix + PARTIAL)


def group_name(index: int) -> str:
    return f"{index:06d}"


def _str(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _strs(value) -> list[str]:
    return [_str(v) for v in np.atleast_1d(value)]


def _stored_options(f: h5py.File) -> dict:
    attrs = f.attrs
    keep = attrs["keep_snippets"]
    keep = KEEP_ALL if isinstance(keep, (str, bytes)) and _str(keep) == KEEP_ALL else bool(keep)
    return {"streams": _strs(attrs["streams"]), "crops": _str(attrs["crops"]),
            "crop": int(attrs["crop"]), "keep_snippets": keep,
            "n_segments": int(attrs["n_segments"])}


def _effective_crops(layout: Layout, crops: str, crop: int) -> tuple[str, int]:
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


def _open_existing(path: Path, mode: str) -> h5py.File:
    try:
        f = h5py.File(path, mode)
    except OSError as exc:
        raise ValueError(f"{path} exists but cannot be opened as HDF5 ({exc}); it is not a usable "
                         f"vad store (an interrupted write killed mid-flush?): delete it to start "
                         f"over, or use another out=") from exc
    if _str(f.attrs.get("format", "")) != FORMAT:
        f.close()
        raise ValueError(f"{path} exists but is not a {FORMAT} file: delete it or use another out=")
    if int(f.attrs.get("version", -1)) != VERSION:
        version = f.attrs.get("version")
        f.close()
        raise ValueError(f"{path} is a {FORMAT} of version {version}, this code writes version "
                         f"{VERSION}: delete it and prepare again, or use another out=")
    return f


def _check_same(f: h5py.File, path: Path, options: dict, entries: list[Entry], source: str) -> None:
    """Raise when ``path`` was made with other options or from another list of videos."""
    stored = _stored_options(f)
    diff = [k for k in OPTION_KEYS if stored[k] != options[k]]
    if diff:
        shown = ", ".join(f"{k}: stored {stored[k]!r}, requested {options[k]!r}" for k in diff)
        raise ValueError(f"{path} was prepared with other options ({shown}): delete {path} to "
                         f"prepare again with the new options, or use another out=")
    n_stored = int(f.attrs.get("n_listed", f.attrs["n_videos"]))
    if n_stored != len(entries):
        raise ValueError(f"{path} holds a store of {n_stored} videos but the layout ({source}) lists "
                         f"{len(entries)}: delete {path} to prepare again, or use another out=")
    stored_source = _str(f.attrs.get("source", ""))
    if stored_source != source:
        log.warning("%s was prepared from %s; now reading %s (same options and video count, "
                    "continuing)", path, stored_source, source)


def _layout_attrs(layout: Layout) -> dict:
    method = getattr(layout, "store_attrs", None)
    return dict(method()) if method is not None else {}


def _check_attrs(f: h5py.File, path: Path, layout: Layout) -> None:
    """A resume must use the same layout provenance (extractor, weights...) as the store."""
    diff = []
    for key, value in _layout_attrs(layout).items():
        stored = f.attrs.get(key)
        stored = _str(stored) if isinstance(stored, (str, bytes)) else stored
        if stored is None or str(stored) != str(value):
            diff.append(f"{key}: stored {stored!r}, requested {value!r}")
    if diff:
        raise ValueError(f"{path} was made with other settings ({'; '.join(diff)}): delete {path} "
                         "to start again with the new settings, or use another out=")


def _new_store(path: Path, layout: Layout, options: dict, n_videos: int) -> h5py.File:
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
    for key, value in _layout_attrs(layout).items():
        a[key] = value
    a["source"] = f"{layout.name} {layout.root}"
    a["layout"] = layout.name
    a["layout_kind"] = layout.kind
    a["root"] = str(layout.root)
    a["n_videos"] = n_videos
    a["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    a["complete"] = False
    f.create_group("videos")
    f.flush()
    return f


def _movement(layout: Layout, entry: Entry):
    method = getattr(layout, "movement", None)
    if method is None:
        return None
    values = method(entry)
    if values is None:
        return None
    values = np.asarray(values, dtype=np.float32)
    if values.shape != (N_SEGMENTS,):
        raise ValueError(f"movement values must be ({N_SEGMENTS},), found {values.shape}")
    return values


def _facts(layout: Layout, entry: Entry) -> dict:
    method = getattr(layout, "facts", None)
    return dict(method(entry) or {}) if method is not None else {}


def _convert_video(layout: Layout, entry: Entry, streams, crops: str, crop: int,
                   keep_snippets):
    """Read and convert one video, stream by stream (one raw array alive at a time)."""
    segments, snippets, nbytes = {}, {}, 0
    mode = "mean" if crops == "none" else crops
    for stream in streams:
        raw = layout.read(entry, stream)
        nbytes += int(getattr(raw, "nbytes", 0))
        segments[stream] = to_segments(raw, layout.kind, mode, crop)
        if keep_snippets and layout.kind == "clips" and (keep_snippets == KEEP_ALL
                                                          or entry.split == "test"):
            snippets[stream] = np.asarray(raw).mean(axis=1, dtype=np.float64).astype(np.float32)
        del raw
    return segments, snippets, _movement(layout, entry), nbytes, _facts(layout, entry)


def _write_group(videos: h5py.Group, index: int, entry: Entry, segments: dict, snippets: dict,
                 movement, facts: dict | None = None) -> None:
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


def _write_index(f: h5py.File) -> None:
    """Per-video facts as columns (see the module doc), from the finished video groups."""
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
        for key, value in (("group", name), ("path", _str(a["path"])), ("cls", _str(a["cls"])),
                           ("split", _str(a["split"])), ("frames", int(a["frames"])),
                           ("n_spans", len(video_spans)), ("has_movement", "movement" in g)):
            cols[key].append(value)
        spans.append(video_spans)
    index = f.create_group("index")
    text = h5py.string_dtype()
    for key in ("group", "path", "cls", "split"):
        index.create_dataset(key, data=np.array(cols[key], dtype=object), dtype=text)
    index.create_dataset("frames", data=np.asarray(cols["frames"], dtype=np.int64))
    index.create_dataset("n_spans", data=np.asarray(cols["n_spans"], dtype=np.int64))
    index.create_dataset("has_movement", data=np.asarray(cols["has_movement"], dtype=bool))
    index.create_dataset("spans", data=np.concatenate(spans) if spans else np.zeros((0, 2), np.int64))
    _write_log(f, skipped_of(f))
    f.flush()


def skipped_of(f: h5py.File) -> list[tuple[str, str]]:
    """(path, reason) of the skipped videos of an open store, in entry order (the /skipped
    groups of a partial store, else the /log of a complete one)."""
    if "skipped" in f:
        groups = [f["skipped"][name] for name in sorted(f["skipped"])]
        return [(_str(g.attrs["path"]), _str(g.attrs["reason"])) for g in groups]
    if "log" in f:
        return list(zip(f["log/path"].asstr()[()], f["log/reason"].asstr()[()]))
    return []


def _write_log(f: h5py.File, skipped: list[tuple[str, str]]) -> None:
    if "log" in f:
        del f["log"]
    text = h5py.string_dtype()
    g = f.create_group("log")
    g.create_dataset("path", data=np.array([p for p, _ in skipped], dtype=object), dtype=text)
    g.create_dataset("reason", data=np.array([r for _, r in skipped], dtype=object), dtype=text)
    n_written = len(f["videos"])
    f.attrs["n_listed"] = n_written + len(skipped)
    f.attrs["n_skipped"] = len(skipped)
    f.attrs["n_videos"] = n_written


def _progress(total: int, initial: int, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="video", desc=desc, disable=not enabled,
                dynamic_ncols=True, leave=True)


def write(layout: Layout, out: Path, streams=None, crops: str = "mean", crop: int = 0,
          keep_snippets=False, progress: bool = True) -> WriteReport:
    """Write (or resume, or confirm) the store of ``layout`` at ``out``; see the module doc."""
    started = time.perf_counter()
    out = Path(out)
    partial = partial_path(out)
    present = tuple(layout.streams())
    streams = tuple(streams) if streams else present
    missing = [s for s in streams if s not in present]
    if missing:
        raise ValueError(f"streams {list(missing)} requested but the layout ({layout.name} at "
                         f"{layout.root}) has {list(present)}: pick modality= among those")
    crops, crop = _effective_crops(layout, crops, crop)
    keep_snippets = keep_mode(keep_snippets)
    if keep_snippets and layout.kind != "clips":
        raise ValueError(f"keep_snippets=true needs per-snippet features, but layout {layout.name} "
                         f"({layout.root}) gives 32-segment features only: drop keep_snippets, or "
                         "prepare from a clip layout (tencrop_npy, percrop_npy)")
    options = {"streams": list(streams), "crops": crops, "crop": crop,
               "keep_snippets": keep_snippets, "n_segments": N_SEGMENTS}
    entries = layout.entries()
    for entry in entries:
        if entry.split not in ("train", "test"):
            raise ValueError(f"{entry.video.path}: split {entry.split!r}, expected train or test")
    source = f"{layout.name} {layout.root}"
    report = WriteReport(out, videos=len(entries), streams=streams, crops=crops)

    if out.exists():
        with _open_existing(out, "r") as f:
            _check_same(f, out, options, entries, source)
            _check_attrs(f, out, layout)
            if not bool(f.attrs.get("complete", False)):
                raise ValueError(f"{out} is marked incomplete (not written by vad.prepare?): "
                                 "delete it and prepare again")
            stored_paths = list(f["index/path"].asstr()[()]) if "index" in f else []
            report.failed = skipped_of(f)
            gone = {p for p, _ in report.failed}
            listed = [e.video.path for e in entries if e.video.path not in gone]
            if stored_paths != listed:
                first = next((i for i, (a, b) in enumerate(zip(stored_paths, listed)) if a != b), 0)
                raise ValueError(f"{out} holds other videos than the layout ({source}) lists (video "
                                 f"{first}: stored {stored_paths[first] if stored_paths else None!r}, "
                                 f"listed {listed[first]!r}): delete {out} to prepare again, or use "
                                 "another out=")
            report.dims = dict(zip(streams, (int(d) for d in f.attrs["dims"])))
        report.skipped = len(entries)
        report.seconds = time.perf_counter() - started
        log.info("%s is complete with the same options: %d videos skipped", out, len(entries))
        return report

    out.parent.mkdir(parents=True, exist_ok=True)
    if partial.exists():
        f = _open_existing(partial, "r+")
        try:
            _check_same(f, partial, options, entries, source)
            _check_attrs(f, partial, layout)
        except Exception:
            f.close()
            raise
    else:
        f = _new_store(partial, layout, options, len(entries))
    try:
        videos = f["videos"]
        dims = [int(d) for d in f.attrs["dims"]]
        done = set()
        for g in videos.values():
            if g.attrs.get("done", False):
                index = int(g.attrs["index"])
                listed = entries[index].video.path if index < len(entries) else None
                if _str(g.attrs["path"]) != listed:
                    raise ValueError(
                        f"{partial}: video {index} is {_str(g.attrs['path'])!r} but the layout "
                        f"({source}) lists {listed!r} there; the partial store comes from another "
                        f"list: delete {partial} to start over, or use another out=")
                done.add(index)
        skipped_group = f.require_group("skipped")
        for g in skipped_group.values():
            index = int(g.attrs["index"])
            if index < len(entries) and entries[index].video.path == _str(g.attrs["path"]):
                done.add(index)  # known bad: not retried
                report.failed.append((_str(g.attrs["path"]), _str(g.attrs["reason"])))
        if done:
            log.info("resuming %s: %d of %d videos already done", partial, len(done), len(entries))
        report.skipped = len(done)
        bar = _progress(len(entries), len(done), progress, out.name)
        read_seconds = 0.0
        try:
            for index, entry in enumerate(entries):
                if index in done:
                    continue
                t0 = time.perf_counter()
                try:
                    segments, snippets, movement, nbytes, facts = _convert_video(
                        layout, entry, streams, crops, crop, keep_snippets)
                except SkipVideo as exc:
                    log.warning("skipping video %d %r: %s", index, entry.video.path, exc.reason)
                    name = group_name(index)
                    if name in videos:
                        del videos[name]
                    if name in skipped_group:
                        del skipped_group[name]
                    g = skipped_group.create_group(name)
                    g.attrs["index"], g.attrs["path"] = index, entry.video.path
                    g.attrs["reason"] = exc.reason
                    f.flush()
                    report.failed.append((entry.video.path, exc.reason))
                    bar.update(1)
                    continue
                except Exception as exc:
                    where = "; ".join(f"{s}: {layout.source(entry, s)}" for s in streams)
                    raise StoreReadError(
                        f"reading video {index} {entry.video.path!r} failed ({where}): "
                        f"{type(exc).__name__}: {exc}. The {len(done) + report.written} videos "
                        f"finished so far are kept in {partial}; fix the cause and re-run the "
                        "same command to resume") from exc
                for i, stream in enumerate(streams):
                    dim = int(segments[stream].shape[-1])
                    if dims[i] == 0:
                        dims[i] = dim
                        f.attrs["dims"] = np.asarray(dims, dtype=np.int64)
                    elif dims[i] != dim:
                        raise ValueError(
                            f"video {index} {entry.video.path!r} ({layout.source(entry, stream)}) "
                            f"has {stream} features of dimension {dim}, the videos before it "
                            f"{dims[i]}: the layout mixes extractors; fix the data and re-run")
                for stream in streams:
                    report.problems += [f"{kind}: {layout.source(entry, stream)}: {detail}"
                                        for kind, detail in value_problems(segments[stream])]
                _write_group(videos, index, entry, segments, snippets, movement, facts)
                del segments, snippets
                read_seconds += time.perf_counter() - t0
                report.written += 1
                report.bytes_read += nbytes
                bar.update(1)
                if read_seconds > 0:
                    bar.set_postfix_str(f"{report.mb_read / read_seconds:.0f} MB/s", refresh=False)
        finally:
            bar.close()
        _write_index(f)
        if "skipped" in f:
            del f["skipped"]
        f.attrs["complete"] = True
        f.attrs["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        report.dims = dict(zip(streams, dims))
    finally:
        f.close()
    os.replace(partial, out)
    if report.failed:
        log.warning("%d videos skipped (recorded in %s /log): %s", len(report.failed), out,
                    "; ".join(f"{p}: {r}" for p, r in report.failed[:5]))
    if report.problems:
        log.warning("%d bad feature arrays were stored (training from this store will refuse "
                    "them; `python -m vad.check` lists them all), e.g. %s", len(report.problems),
                    report.problems[:3])
    report.seconds = time.perf_counter() - started
    log.info("wrote %s: %d videos written, %d skipped, %.1f MB read in %.1f s", out,
             report.written, report.skipped, report.mb_read, report.seconds)
    return report


def merge(inputs, out: Path, expect_shards: int | None = None) -> WriteReport:
    """Join complete stores (e.g. the shards of ``vad.extract ... shard=i num_shards=n``) into
    one store ``out``: same streams, dims and options, no video (path) twice, every shard
    present when the inputs record their shard (``shard``/``num_shards`` root attrs) or when
    ``expect_shards`` is given. Videos are ordered by path (as one unsharded extract orders
    them); skipped-video logs are joined. Written to ``out.partial`` and renamed at the end."""
    started = time.perf_counter()
    inputs = [Path(p) for p in inputs]
    out = Path(out)
    if not inputs:
        raise ValueError("merge needs at least one input store")
    if out.exists():
        raise ValueError(f"{out} exists: delete it or pick another out= for the merged store")
    if len(set(map(str, inputs))) != len(inputs):
        raise ValueError(f"the same input store is listed twice: {[str(p) for p in inputs]}")
    files = []
    try:
        for path in inputs:
            f, _ = open_store(path)
            files.append(f)
        first = files[0]
        options = _stored_options(first)
        dims = [int(d) for d in first.attrs["dims"]]
        for path, f in zip(inputs[1:], files[1:]):
            other = _stored_options(f)
            diff = [k for k in OPTION_KEYS if other[k] != options[k]]
            if [int(d) for d in f.attrs["dims"]] != dims:
                diff.append("dims")
            for key in ("layout", "layout_kind", "extractor", "weights_rgb", "weights_flow",
                        "flow_method", "movement", "ten_crop", "num_shards"):
                a, b = first.attrs.get(key), f.attrs.get(key)
                if (None if a is None else str(_str(a) if isinstance(a, bytes) else a)) != \
                        (None if b is None else str(_str(b) if isinstance(b, bytes) else b)):
                    diff.append(key)
            if diff:
                raise ValueError(f"cannot merge {path} with {inputs[0]}: they differ in {diff}")
        shards = [int(f.attrs["shard"]) for f in files if "shard" in f.attrs]
        if expect_shards is not None and len(files) != int(expect_shards):
            raise ValueError(f"expect_shards={expect_shards} but {len(files)} stores are given")
        if len(shards) == len(files):
            n = int(first.attrs.get("num_shards", len(files)))
            want = int(expect_shards) if expect_shards is not None else n
            if sorted(shards) != list(range(want)) or n != want:
                missing = sorted(set(range(want)) - set(shards))
                dup = sorted({s for s in shards if shards.count(s) > 1})
                raise ValueError(f"the stores are shards {sorted(shards)} of num_shards={n}: "
                                 f"missing {missing}, duplicated {dup}; merge exactly one store "
                                 "per shard")
        rows, skipped, seen = [], [], {}
        for k, (path, f) in enumerate(zip(inputs, files)):
            for name, vpath in zip(f["index/group"].asstr()[()], f["index/path"].asstr()[()]):
                if vpath in seen:
                    raise ValueError(f"video {vpath!r} is in both {seen[vpath]} and {path}: the "
                                     "stores overlap (same shard twice?)")
                seen[vpath] = path
                rows.append((vpath, k, name))
            for vpath, reason in skipped_of(f):
                if vpath in seen:
                    raise ValueError(f"video {vpath!r} is in both {seen[vpath]} and {path}")
                seen[vpath] = path
                skipped.append((vpath, reason))
        rows.sort()
        skipped.sort()
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = partial_path(out)
        with h5py.File(partial, "w") as g:
            for key, value in first.attrs.items():
                if key not in ("shard", "complete", "finished"):
                    g.attrs[key] = value
            g.attrs["complete"] = False
            g.attrs["merged_from"] = [str(p) for p in inputs]
            g.attrs["source"] = f"merge of {len(inputs)} stores: {_str(first.attrs.get('source', ''))}"
            dest = g.create_group("videos")
            for index, (_, k, name) in enumerate(rows):
                new = group_name(index)
                files[k].copy(files[k]["videos"][name], dest, name=new)
                dest[new].attrs["index"] = index
            _write_index(g)
            _write_log(g, skipped)
            g.attrs["complete"] = True
            g.attrs["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    finally:
        for f in files:
            f.close()
    os.replace(partial, out)
    report = WriteReport(out, written=len(rows), videos=len(rows) + len(skipped),
                         streams=tuple(options["streams"]), crops=options["crops"],
                         dims=dict(zip(options["streams"], dims)), failed=skipped)
    report.seconds = time.perf_counter() - started
    log.info("merged %d stores into %s: %d videos, %d skipped", len(inputs), out, len(rows),
             len(skipped))
    return report


# ----------------------------------------------------------------------------------- reading


def _modality_hint(streams: list[str]) -> str:
    if set(streams) == {"RGB", "FLOW"}:
        return "modality=TWO, modality=RGB or modality=FLOW"
    return " or ".join(f"modality={s}" for s in streams)


def open_store(path) -> tuple[h5py.File, Path]:
    """Open a complete store read-only, with errors that say how to make or finish it."""
    if path is None:
        raise ValueError("data=store needs data.path=STORE.h5 (a file made by "
                         "`python -m vad.prepare data=<layout> data.root=... out=STORE.h5`)")
    path = Path(os.path.expanduser(str(path)))
    if path.name.endswith(PARTIAL):
        raise ValueError(f"data.path={path} is an unfinished store (a {PARTIAL} file): re-run the "
                         "same `python -m vad.prepare ... out=` command to finish it, then use "
                         f"data.path={path.with_name(path.name[:-len(PARTIAL)])}")
    if not path.exists():
        hint = ""
        if partial_path(path).exists():
            hint = (f"; {partial_path(path)} exists: the preparation was interrupted, re-run the same "
                    "`python -m vad.prepare ... out=` command to finish it")
        raise FileNotFoundError(f"data.path={path} does not exist{hint}; make it with "
                                f"`python -m vad.prepare data=<layout> data.root=... out={path}`")
    f = _open_existing(path, "r")
    if not bool(f.attrs.get("complete", False)):
        f.close()
        raise ValueError(f"{path} is an unfinished store: re-run vad.prepare with out={path} to "
                         "finish it")
    return f, path


def _read_snippets(f: h5py.File, path: Path, names: list[str], streams, dim: int,
                   kept: bool, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(sum of T, dim x streams) float32 snippet features of the named videos, and their T."""
    if not kept:
        why = ("its layout gives 32-segment features only (no snippets to keep)" if kind == "segments"
               else "it was prepared without keep_snippets=true")
        raise ValueError(f"eval.protocol=snippets needs per-snippet test features, but store {path} has "
                         f"none: {why}; prepare a store with keep_snippets=true from a clip layout "
                         "(delete the store or use another out=), or use eval.protocol=segments")
    fid = f.id
    counts = np.empty(len(names), dtype=np.int64)
    for row, name in enumerate(names):
        shapes = {h5py.h5d.open(fid, f"videos/{name}/snippets/{s}".encode()).shape for s in streams}
        if len(shapes) != 1:
            raise ValueError(f"{path}: video group {name} has snippet counts {sorted(shapes)} across "
                             f"streams {list(streams)}: the streams disagree; prepare the store again")
        counts[row] = next(iter(shapes))[0]
    out = np.empty((int(counts.sum()), dim * len(streams)), dtype=np.float32)
    space = h5py.h5s.create_simple(out.shape)
    start = 0
    for row, name in enumerate(names):
        for k, stream in enumerate(streams):
            dset = h5py.h5d.open(fid, f"videos/{name}/snippets/{stream}".encode())
            if counts[row]:
                space.select_hyperslab((start, k * dim), (int(counts[row]), dim))
                dset.read(space, dset.get_space(), out)
        start += int(counts[row])
    return out, counts


def _check_values(features: np.ndarray, paths: list[str], path: Path, n_streams: int) -> None:
    """NaN/Inf values and all-zero segments of any stream, in one vectorised pass."""
    per_stream = features.reshape(*features.shape[:3], n_streams, -1)
    problems = []
    for label, bad in (("NaN/Inf values", ~np.isfinite(features).all(axis=(1, 2, 3))),
                       ("all-zero segments", ~per_stream.any(axis=4).all(axis=(1, 2, 3)))):
        rows = np.flatnonzero(bad)
        if rows.size:
            problems.append(f"{label} in {rows.size} videos, e.g. {[paths[r] for r in rows[:5]]}")
    if problems:
        raise ValueError(f"store {path} has bad features: " + "; ".join(problems) +
                         ": fix the source features and prepare the store again")


def load(data_cfg, streams: tuple[str, ...], extractor_dim: int, snippets: bool = False):
    """Reader for ``data=store``: the 32-segment features of ``streams`` (concatenated in that
    order) for every video, preloaded into one float32 array (train videos first).

    ``snippets`` also loads the test videos' per-snippet features (stores prepared with
    ``keep_snippets=true``) into ``test.snippets`` (sum of T, D x streams) and
    ``test.snippet_counts``, for the snippets evaluation protocol.
    """
    import torch

    from vad.data.features import make_splits

    started = time.perf_counter()
    streams = tuple(streams)
    f, path = open_store(data_cfg.path)
    with f:
        attrs = f.attrs
        present = _strs(attrs["streams"])
        missing = [s for s in streams if s not in present]
        if missing:
            raise ValueError(f"store {path} has streams {present}, the modality needs {list(streams)} "
                             f"(missing {missing}): pick {_modality_hint(present)}, or prepare a "
                             "store with those streams")
        dims = dict(zip(present, (int(d) for d in attrs["dims"])))
        wrong = {s: dims[s] for s in streams if dims[s] != int(extractor_dim)}
        if wrong:
            raise ValueError(f"store {path} has feature dimension {wrong} per stream, but the "
                             f"extractor expects {int(extractor_dim)}: pick the extractor= with "
                             f"dim {sorted(set(wrong.values()))} (conf/extractor/*.yaml), or the store "
                             "made with this extractor's features")
        crops = _str(attrs["crops"])
        source = _str(attrs.get("source", ""))
        if "index" not in f:
            raise ValueError(f"{path} has no /index (damaged file?): prepare it again")
        index = f["index"]
        names = list(index["group"].asstr()[()])
        paths = list(index["path"].asstr()[()])
        classes = list(index["cls"].asstr()[()])
        split = np.asarray(index["split"].asstr()[()])
        frames = index["frames"][()]
        n_spans = index["n_spans"][()]
        all_spans = index["spans"][()]
        with_movement = index["has_movement"][()]
        has_movement = bool(len(names)) and bool(np.all(with_movement))
        if np.any(with_movement) and not has_movement:
            log.warning("store %s has movement values for %d of %d videos only: loading none",
                        path, int(np.sum(with_movement)), len(names))
        n = len(names)
        if n != int(attrs["n_videos"]):
            raise ValueError(f"{path} lists {int(attrs['n_videos'])} videos but indexes {n}: the "
                             "file is damaged; prepare it again")
        train_rows = np.flatnonzero(split == "train")
        test_rows = np.flatnonzero(split == "test")
        order = np.concatenate([train_rows, test_rows]).astype(int)
        dim = int(extractor_dim)
        bags = h5py.h5d.open(f.id, f"videos/{names[0]}/segments/{streams[0]}".encode()).shape[0] if n else 1
        features = np.empty((n, bags, N_SEGMENTS, dim * len(streams)), dtype=np.float32)
        movement = np.empty((n, N_SEGMENTS), dtype=np.float32) if has_movement else None
        # Low-level reads straight into the destination slices: one HDF5 call per dataset,
        # none of the high-level per-object overhead (1900 videos x 2 streams in ~0.5 s).
        fid = f.id
        space = h5py.h5s.create_simple(features.shape)
        move_space = h5py.h5s.create_simple(movement.shape) if has_movement else None
        for row, i in enumerate(order):
            base = f"videos/{names[i]}/"
            for k, stream in enumerate(streams):
                dset = h5py.h5d.open(fid, f"{base}segments/{stream}".encode())
                file_space = dset.get_space()
                if file_space.shape != (bags, N_SEGMENTS, dim):
                    raise ValueError(f"{path}: {base}segments/{stream} has shape {file_space.shape}, "
                                     f"expected ({bags}, {N_SEGMENTS}, {dim}): prepare the store again")
                space.select_hyperslab((row, 0, 0, k * dim), (1, bags, N_SEGMENTS, dim))
                dset.read(space, file_space, features)
            if has_movement:
                dset = h5py.h5d.open(fid, f"{base}movement".encode())
                move_space.select_hyperslab((row, 0), (1, N_SEGMENTS))
                dset.read(move_space, dset.get_space(), movement)
        test_snippets, counts = None, None
        if snippets:
            test_snippets, counts = _read_snippets(f, path, [names[i] for i in test_rows], streams,
                                                   dim, bool(attrs["keep_snippets"]),
                                                   _str(attrs.get("layout_kind", "")))
    starts = np.concatenate([[0], np.cumsum(n_spans)])

    def video(i: int, with_spans: bool) -> Video:
        spans = all_spans[starts[i]:starts[i + 1]] if with_spans else ()
        return Video(paths[i], classes[i], int(frames[i]), tuple((int(s), int(e)) for s, e in spans))

    # Training videos carry no spans (the store keeps them for test videos only).
    train_videos = [video(i, False) for i in train_rows]
    test_videos = [video(i, True) for i in test_rows]
    _check_values(features, [paths[i] for i in order], path, len(streams))
    log.info("store %s: %d videos (%d train, %d test) loaded in %.2f s", path, n, len(train_rows),
             len(test_rows), time.perf_counter() - started)
    splits = make_splits(
        features, train_videos, test_videos, movement=movement,
        description=f"vad store {path} ({'+'.join(streams)}, crops={crops}) prepared from {source}",
        snippets=torch.from_numpy(test_snippets) if test_snippets is not None else None,
        snippet_counts=counts)
    return splits
