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
        snippets/<STREAM>  float32 (T, D) mean over crops, only with keep_snippets
        movement           float32 (32,), only when the layout gives movement values

The writer streams one video at a time (memory is bounded by one video's raw array, whatever
the dataset size), writes ``<out>.partial``, flushes after every video and renames the file to
``out`` once every video is done: ``out`` is never half-written, and re-running the same
command resumes the ``.partial`` file.
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

from vad.data.convert import CROP_MODES, to_segments
from vad.data.layouts.base import Entry, Layout
from vad.data.pooling import N_SEGMENTS
from vad.data.ucf_crime import Video

log = logging.getLogger(__name__)

FORMAT = "vad-store"
VERSION = 1
PARTIAL = ".partial"
# The options that decide a store's content: a store made with other values cannot be resumed
# or reused for this request.
OPTION_KEYS = ("streams", "crops", "crop", "keep_snippets", "n_segments")
KNOWN_DIMS = "I3D=1024, C3D=4096 (conf/extractor/*.yaml)"


class StoreReadError(RuntimeError):
    """Reading or converting one video of the layout failed (the message names the video)."""


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

    @property
    def mb_read(self) -> float:
        return self.bytes_read / 1e6

    def as_dict(self) -> dict:
        return {"out": str(self.path), "videos": self.videos, "written": self.written,
                "skipped": self.skipped, "seconds": round(self.seconds, 3),
                "mb_read": round(self.mb_read, 3),
                "mb_per_s": round(self.mb_read / self.seconds, 2) if self.seconds > 0 else None,
                "streams": list(self.streams), "crops": self.crops, "dims": dict(self.dims)}


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
    return {"streams": _strs(attrs["streams"]), "crops": _str(attrs["crops"]),
            "crop": int(attrs["crop"]), "keep_snippets": bool(attrs["keep_snippets"]),
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
    n_stored = int(f.attrs["n_videos"])
    if n_stored != len(entries):
        raise ValueError(f"{path} holds a store of {n_stored} videos but the layout ({source}) lists "
                         f"{len(entries)}: delete {path} to prepare again, or use another out=")
    stored_source = _str(f.attrs.get("source", ""))
    if stored_source != source:
        log.warning("%s was prepared from %s; now reading %s (same options and video count, "
                    "continuing)", path, stored_source, source)


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


def _convert_video(layout: Layout, entry: Entry, streams, crops: str, crop: int,
                   keep_snippets: bool):
    """Read and convert one video, stream by stream (one raw array alive at a time)."""
    segments, snippets, nbytes = {}, {}, 0
    mode = "mean" if crops == "none" else crops
    for stream in streams:
        raw = layout.read(entry, stream)
        nbytes += int(getattr(raw, "nbytes", 0))
        segments[stream] = to_segments(raw, layout.kind, mode, crop)
        if keep_snippets and layout.kind == "clips":
            snippets[stream] = np.asarray(raw).mean(axis=1, dtype=np.float64).astype(np.float32)
        del raw
    return segments, snippets, _movement(layout, entry), nbytes


def _write_group(videos: h5py.Group, index: int, entry: Entry, segments: dict, snippets: dict,
                 movement) -> None:
    name = group_name(index)
    if name in videos:  # interrupted mid-video: start this one again
        del videos[name]
    g = videos.create_group(name)
    video = entry.video
    g.attrs["index"] = index
    g.attrs["path"] = video.path
    g.attrs["cls"] = video.cls
    g.attrs["frames"] = int(video.frames)
    g.attrs["split"] = entry.split
    spans = video.spans if entry.split == "test" else ()
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


def _progress(total: int, initial: int, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="video", desc=desc, disable=not enabled,
                dynamic_ncols=True, leave=True)


def write(layout: Layout, out: Path, streams=None, crops: str = "mean", crop: int = 0,
          keep_snippets: bool = False, progress: bool = True) -> WriteReport:
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
    options = {"streams": list(streams), "crops": crops, "crop": crop,
               "keep_snippets": bool(keep_snippets), "n_segments": N_SEGMENTS}
    entries = layout.entries()
    for entry in entries:
        if entry.split not in ("train", "test"):
            raise ValueError(f"{entry.video.path}: split {entry.split!r}, expected train or test")
    source = f"{layout.name} {layout.root}"
    report = WriteReport(out, videos=len(entries), streams=streams, crops=crops)

    if out.exists():
        with _open_existing(out, "r") as f:
            _check_same(f, out, options, entries, source)
            if not bool(f.attrs.get("complete", False)):
                raise ValueError(f"{out} is marked incomplete (not written by vad.prepare?): "
                                 "delete it and prepare again")
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
        except Exception:
            f.close()
            raise
    else:
        f = _new_store(partial, layout, options, len(entries))
    try:
        videos = f["videos"]
        dims = [int(d) for d in f.attrs["dims"]]
        done = set()
        for name, g in videos.items():
            if g.attrs.get("done", False):
                index = int(g.attrs["index"])
                if index >= len(entries) or _str(g.attrs["path"]) != entries[index].video.path:
                    raise ValueError(
                        f"{partial}: video {index} is {_str(g.attrs['path'])!r} but the layout "
                        f"({source}) lists {entries[index].video.path if index < len(entries) else 'nothing'!r} "
                        f"there; the partial store comes from another list: delete {partial} "
                        "to start over, or use another out=")
                done.add(index)
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
                    segments, snippets, movement, nbytes = _convert_video(
                        layout, entry, streams, crops, crop, keep_snippets)
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
                _write_group(videos, index, entry, segments, snippets, movement)
                del segments, snippets
                read_seconds += time.perf_counter() - t0
                report.written += 1
                report.bytes_read += nbytes
                bar.update(1)
                if read_seconds > 0:
                    bar.set_postfix_str(f"{report.mb_read / read_seconds:.0f} MB/s", refresh=False)
        finally:
            bar.close()
        f.attrs["complete"] = True
        f.attrs["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        report.dims = dict(zip(streams, dims))
    finally:
        f.close()
    os.replace(partial, out)
    report.seconds = time.perf_counter() - started
    log.info("wrote %s: %d videos written, %d skipped, %.1f MB read in %.1f s", out,
             report.written, report.skipped, report.mb_read, report.seconds)
    return report


def write_store(layout: Layout, out: Path, streams=None, crops: str = "mean", crop: int = 0,
                keep_snippets: bool = False, progress: bool = True) -> Path:
    """Write the store of ``layout`` at ``out`` (resuming ``out.partial``); return ``out``."""
    return write(layout, out, streams, crops, crop, keep_snippets, progress).path


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


def load(data_cfg, streams: tuple[str, ...], extractor_dim: int):
    """Reader for ``data=store``: the 32-segment features of ``streams`` (concatenated in that
    order) for every video, preloaded into one float32 array."""
    import torch

    from vad.data.features import FeatureSet, Splits

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
                             f"dim {sorted(set(wrong.values()))} ({KNOWN_DIMS}), or the store "
                             "made with this extractor's features")
        crops = _str(attrs["crops"])
        source = _str(attrs.get("source", ""))
        videos_group = f["videos"]
        names = sorted(videos_group.keys())
        n = int(attrs["n_videos"])
        if len(names) != n:
            raise ValueError(f"{path} lists {n} videos but holds {len(names)} video groups: the "
                             "file is damaged; prepare it again")
        groups = [videos_group[name] for name in names]
        metas = []
        for name, g in zip(names, groups):
            a = g.attrs
            if not a.get("done", False):
                raise ValueError(f"{path}: video group {name} is unfinished: re-run vad.prepare "
                                 f"with out={path} after deleting it")
            metas.append((_str(a["path"]), _str(a["cls"]), int(a["frames"]), _str(a["split"]),
                          np.asarray(a["spans"]).reshape(-1, 2)))
        if n and groups[0][f"segments/{streams[0]}"].shape[0] != 1:
            raise NotImplementedError(
                f"store {path} keeps every crop as its own bag (crops={crops}, "
                f"{groups[0][f'segments/{streams[0]}'].shape[0]} crops per video): training on "
                "every crop as its own bag is not supported yet; prepare with crops=mean or crops=one")
        train_rows = [i for i, m in enumerate(metas) if m[3] == "train"]
        test_rows = [i for i, m in enumerate(metas) if m[3] == "test"]
        order = train_rows + test_rows
        dim = int(extractor_dim)
        features = np.empty((n, N_SEGMENTS, dim * len(streams)), dtype=np.float32)
        has_movement = all("movement" in g for g in groups) and n > 0
        movement = np.empty((n, N_SEGMENTS), dtype=np.float32) if has_movement else None
        for row, i in enumerate(order):
            g = groups[i]
            for k, stream in enumerate(streams):
                g[f"segments/{stream}"].read_direct(features, np.s_[0],
                                                    np.s_[row, :, k * dim:(k + 1) * dim])
            if has_movement:
                g["movement"].read_direct(movement, np.s_[:], np.s_[row])
    train_videos = [Video(metas[i][0], metas[i][1], metas[i][2]) for i in train_rows]
    test_videos = [Video(metas[i][0], metas[i][1], metas[i][2],
                         tuple((int(s), int(e)) for s, e in metas[i][4])) for i in test_rows]
    features_t = torch.from_numpy(features)
    movement_t = torch.from_numpy(movement) if movement is not None else None
    n_train = len(train_rows)
    log.info("store %s: %d videos (%d train, %d test) loaded in %.2f s", path, n, n_train,
             len(test_rows), time.perf_counter() - started)
    return Splits(
        train=FeatureSet(train_videos, features_t[:n_train],
                         movement_t[:n_train] if movement_t is not None else None),
        test=FeatureSet(test_videos, features_t[n_train:],
                        movement_t[n_train:] if movement_t is not None else None),
        description=f"vad store {path} ({'+'.join(streams)}, crops={crops}) prepared from {source}",
        synthetic=False,
    )
