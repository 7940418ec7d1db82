"""Streaming a layout into a store: one video at a time into ``OUT.partial`` (flushed after
every video, so an interruption loses at most the video in hand), resumed when run again,
renamed to ``OUT`` once every video is done."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from vad.constants import N_SEGMENTS
from vad.data.convert import to_segments, value_problems
from vad.data.layouts.base import Layout
from vad.data.store.format import (
    KEEP_ALL,
    OTHER_OUT,
    SkipVideo,
    check_attrs,
    check_same,
    effective_crops,
    keep_mode,
    mark_complete,
    new_store,
    open_existing,
    partial_path,
    skipped_of,
    text,
    write_group,
    write_skip,
)
from vad.types import Entry

log = logging.getLogger(__name__)


class StoreReadError(RuntimeError):
    """Reading or converting one video of the layout failed (the message names the video)."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a write: the finished videos are kept in ``partial`` for a resume."""

    def __init__(self, finished: int, total: int, partial: Path):
        self.finished, self.total, self.partial = finished, total, Path(partial)
        super().__init__(f"interrupted after {finished} of {total} videos; the finished ones are "
                         f"kept in {partial}")


@dataclass
class WriteReport:
    """What one ``write`` call did: ``written`` now, ``skipped`` not read again (finished
    before, or known bad), ``failed`` every bad video with its reason (this run's and earlier)."""

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

    @property
    def already_done(self) -> int:
        """Good videos found finished in the store (a resume or a complete store)."""
        return self.videos - self.written - len(self.failed)

    def counts(self) -> str:
        """Each count once: ``6 videos: 4 written, 0 already done, 2 bad``."""
        return (f"{self.videos} videos: {self.written} written, {self.already_done} already done, "
                f"{len(self.failed)} bad")

    def as_dict(self) -> dict:
        return {"out": str(self.path), "videos": self.videos, "written": self.written,
                "skipped": self.skipped, "already_done": self.already_done,
                "seconds": round(self.seconds, 3), "mb_read": round(self.mb_read, 3),
                "mb_per_s": round(self.mb_read / self.seconds, 2) if self.seconds > 0 else None,
                "streams": list(self.streams), "crops": self.crops, "dims": dict(self.dims),
                "problems": list(self.problems),
                "failed": [list(item) for item in self.failed]}


@dataclass
class _Job:
    """One validated ``write`` request."""

    layout: Layout
    out: Path
    streams: tuple[str, ...]
    crops: str
    crop: int
    keep_snippets: bool | str
    entries: list[Entry]

    @property
    def partial(self) -> Path:
        return partial_path(self.out)

    @property
    def source(self) -> str:
        return f"{self.layout.name} {self.layout.root}"

    @property
    def options(self) -> dict:
        return {"streams": list(self.streams), "crops": self.crops, "crop": self.crop,
                "keep_snippets": self.keep_snippets, "n_segments": N_SEGMENTS}


def write(layout: Layout, out: Path, streams=None, crops: str = "mean", crop: int = 0,
          keep_snippets=False, progress: bool = True) -> WriteReport:
    """Write (or resume, or confirm) the store of ``layout`` at ``out``; see the package doc.
    Ctrl-C raises :class:`Interrupted` once the partial file is closed."""
    started = time.perf_counter()
    job = _plan(layout, Path(out), streams, crops, crop, keep_snippets)
    report = WriteReport(job.out, videos=len(job.entries), streams=job.streams, crops=job.crops)
    if job.out.exists():
        _confirm(job, report)
    else:
        _write_partial(job, report, progress)
        os.replace(job.partial, job.out)
    report.seconds = time.perf_counter() - started
    _log_summary(report)
    return report


def _plan(layout: Layout, out: Path, streams, crops: str, crop: int, keep_snippets) -> _Job:
    """Check the request against the layout: streams present, crop options, splits."""
    present = tuple(layout.streams())
    streams = tuple(streams) if streams else present
    missing = [s for s in streams if s not in present]
    if missing:
        raise ValueError(f"streams {list(missing)} requested but the layout ({layout.name} at "
                         f"{layout.root}) has {list(present)}: pick modality= among those")
    crops, crop = effective_crops(layout, crops, crop)
    keep_snippets = keep_mode(keep_snippets)
    if keep_snippets and layout.kind != "clips":
        raise ValueError(f"keep_snippets=true needs per-snippet features, but layout {layout.name} "
                         f"({layout.root}) gives 32-segment features only: drop keep_snippets, or "
                         "prepare from a clip layout (tencrop_npy, percrop_npy)")
    entries = layout.entries()
    for entry in entries:
        if entry.split not in ("train", "test"):
            raise ValueError(f"{entry.video.path}: split {entry.split!r}, expected train or test")
    return _Job(layout, out, streams, crops, crop, keep_snippets, entries)


def _confirm(job: _Job, report: WriteReport) -> None:
    """``out`` exists: it must be the complete store of this very request (nothing to do)."""
    out = job.out
    with open_existing(out, "r", writing=True) as f:
        check_same(f, out, job.options, job.entries, job.source)
        check_attrs(f, out, job.layout)
        if not bool(f.attrs.get("complete", False)):
            raise ValueError(f"{out} is marked incomplete (not written by vad.prepare?): "
                             "delete it and prepare again")
        stored_paths = list(f["index/path"].asstr()[()]) if "index" in f else []
        report.failed = skipped_of(f)
        gone = {p for p, _ in report.failed}
        listed = [e.video.path for e in job.entries if e.video.path not in gone]
        if stored_paths != listed:
            first = next((i for i, (a, b) in enumerate(zip(stored_paths, listed)) if a != b), 0)
            raise ValueError(f"{out} holds other videos than the layout ({job.source}) lists (video "
                             f"{first}: stored {stored_paths[first] if stored_paths else None!r}, "
                             f"listed {listed[first]!r}): delete {out} to prepare again, {OTHER_OUT}")
        report.dims = dict(zip(job.streams, (int(d) for d in f.attrs["dims"])))
    report.skipped = len(job.entries)
    log.info("%s is complete with the same options: nothing to do", out)


def _write_partial(job: _Job, report: WriteReport, progress: bool) -> None:
    """Open (resume) or create ``OUT.partial``, write the missing videos, mark it complete."""
    job.out.parent.mkdir(parents=True, exist_ok=True)
    f = _open_partial(job)
    try:
        done = _finished(f, job, report)
        if done:
            log.info("resuming %s: %d of %d videos already done", job.partial, len(done),
                     len(job.entries))
        report.skipped = len(done)
        dims = _write_videos(f, job, done, report, progress)
        mark_complete(f)
        report.dims = dict(zip(job.streams, dims))
    finally:
        f.close()


def _open_partial(job: _Job) -> h5py.File:
    if not job.partial.exists():
        return new_store(job.partial, job.layout, job.options, len(job.entries))
    f = open_existing(job.partial, "r+", writing=True)
    try:
        check_same(f, job.partial, job.options, job.entries, job.source)
        check_attrs(f, job.partial, job.layout)
    except Exception:
        f.close()
        raise
    return f


def _finished(f: h5py.File, job: _Job, report: WriteReport) -> set[int]:
    """Indexes of the videos a resume does not read again: finished groups (checked against
    the layout's list) and videos recorded as bad (added to ``report.failed``)."""
    entries, done = job.entries, set()
    for g in f["videos"].values():
        if g.attrs.get("done", False):
            index = int(g.attrs["index"])
            listed = entries[index].video.path if index < len(entries) else None
            if text(g.attrs["path"]) != listed:
                raise ValueError(
                    f"{job.partial}: video {index} is {text(g.attrs['path'])!r} but the layout "
                    f"({job.source}) lists {listed!r} there; the partial store comes from another "
                    f"list: delete {job.partial} to start over, {OTHER_OUT}")
            done.add(index)
    for g in f.require_group("skipped").values():
        index = int(g.attrs["index"])
        if index < len(entries) and entries[index].video.path == text(g.attrs["path"]):
            done.add(index)  # known bad: not retried
            report.failed.append((text(g.attrs["path"]), text(g.attrs["reason"])))
    return done


def _progress(total: int, initial: int, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="video", desc=desc, disable=not enabled,
                dynamic_ncols=True, leave=True)


def _write_videos(f: h5py.File, job: _Job, done: set[int], report: WriteReport,
                  progress: bool) -> list[int]:
    """Read, convert and write every video not in ``done``; return the dims per stream."""
    dims = [int(d) for d in f.attrs["dims"]]
    bar = _progress(len(job.entries), len(done), progress, job.out.name)
    read_seconds, finished = 0.0, len(done)
    try:
        for index, entry in enumerate(job.entries):
            if index in done:
                continue
            t0 = time.perf_counter()
            converted = _read_video(job, index, entry, finished)
            if isinstance(converted, SkipVideo):
                log.warning("skipping video %d %r: %s", index, entry.video.path, converted.reason)
                write_skip(f, index, entry.video.path, converted.reason)
                report.failed.append((entry.video.path, converted.reason))
            else:
                segments, snippets, movement, nbytes, facts = converted
                _check_dims(f, dims, job, index, entry, segments)
                for stream in job.streams:
                    report.problems += [f"{kind}: {job.layout.source(entry, stream)}: {detail}"
                                        for kind, detail in value_problems(segments[stream])]
                write_group(f["videos"], index, entry, segments, snippets, movement, facts)
                del segments, snippets, converted
                read_seconds += time.perf_counter() - t0
                report.written += 1
                report.bytes_read += nbytes
            finished += 1
            bar.update(1)
            if read_seconds > 0:
                bar.set_postfix_str(f"{report.mb_read / read_seconds:.0f} MB/s", refresh=False)
    except KeyboardInterrupt as exc:
        raise Interrupted(finished, len(job.entries), job.partial) from exc
    finally:
        bar.close()
    return dims


def _read_video(job: _Job, index: int, entry: Entry, finished: int):
    """The converted video, or the :class:`SkipVideo` the layout raised for it; any other
    failure stops the write with a message naming the video and its files."""
    try:
        return _convert_video(job, entry)
    except SkipVideo as exc:
        return exc
    except Exception as exc:
        where = "; ".join(f"{s}: {job.layout.source(entry, s)}" for s in job.streams)
        raise StoreReadError(
            f"reading video {index} {entry.video.path!r} failed ({where}): "
            f"{type(exc).__name__}: {exc}. The {finished} videos finished so far are kept in "
            f"{job.partial}; fix the cause and re-run the same command to resume") from exc


def _convert_video(job: _Job, entry: Entry):
    """Read and convert one video, stream by stream (one raw array alive at a time)."""
    layout, keep = job.layout, job.keep_snippets
    segments, snippets, nbytes = {}, {}, 0
    mode = "mean" if job.crops == "none" else job.crops
    for stream in job.streams:
        raw = layout.read(entry, stream)
        nbytes += int(getattr(raw, "nbytes", 0))
        segments[stream] = to_segments(raw, layout.kind, mode, job.crop)
        if keep and layout.kind == "clips" and (keep == KEEP_ALL or entry.split == "test"):
            snippets[stream] = np.asarray(raw).mean(axis=1, dtype=np.float64).astype(np.float32)
        del raw
    return segments, snippets, _movement(layout, entry), nbytes, _facts(layout, entry)


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


def _check_dims(f: h5py.File, dims: list[int], job: _Job, index: int, entry: Entry,
                segments: dict) -> None:
    """The first video fixes each stream's dimension (stored at once); later ones must match."""
    for i, stream in enumerate(job.streams):
        dim = int(segments[stream].shape[-1])
        if dims[i] == 0:
            dims[i] = dim
            f.attrs["dims"] = np.asarray(dims, dtype=np.int64)
        elif dims[i] != dim:
            raise ValueError(
                f"video {index} {entry.video.path!r} ({job.layout.source(entry, stream)}) "
                f"has {stream} features of dimension {dim}, the videos before it "
                f"{dims[i]}: the layout mixes extractors; fix the data and re-run")


def _log_summary(report: WriteReport) -> None:
    if report.failed:
        log.warning("%d bad videos are not in the store (reasons in its /log): %s",
                    len(report.failed), "; ".join(f"{p}: {r}" for p, r in report.failed[:5]))
    if report.problems:
        log.warning("%d bad feature arrays were stored (training from this store will refuse "
                    "them; `python -m vad.check` lists them all), e.g. %s", len(report.problems),
                    report.problems[:3])
    log.info("store %s: %s, %.1f MB read in %.1f s", report.path, report.counts(), report.mb_read,
             report.seconds)
