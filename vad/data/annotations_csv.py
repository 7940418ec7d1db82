"""Frame annotations of one's own test videos in a CSV file, for ``vad.evaluate annotations=FILE``
and ``vad.detect annotations=FILE``.

Format: a header ``video,start,end`` or ``video,start,end,unit``, then one row per anomalous
interval (several rows for one video = several intervals); blank lines and lines starting with
``#`` are skipped::

    video,start,end,unit
    test/robbery_cam2.mp4,120,480,frames
    robbery_cam2,30.5,41,seconds

``video`` names a known video by its path (as the store lists it) or by its file name without
extension. ``unit`` is ``frames`` (the default when the column or the cell is empty) or
``seconds``:

* frames: 1-based and inclusive (``1,16`` = the first 16 frames), as UCF-Crime's annotation;
* seconds: the interval ``[start, end)`` in seconds, turned into the frames that overlap it at
  the video's fps: first frame ``floor(start * fps) + 1``, last frame ``ceil(end * fps)``
  (at least the first; products rounded to 1e-6 first, so that 0.1 s at 30 fps is frame 3,
  not 4). Frame ``k`` shows the time ``[(k - 1) / fps, k / fps)``.

Overlapping or touching intervals of a video are merged (a frame is anomalous once). Every error
names ``FILE:LINE``, the value and the fix: an unknown video, ``end < start``, an interval
beyond the video's frames, a bad number or unit, seconds for a video of unknown fps.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from vad.cli import UserError

UNITS = ("frames", "seconds")
HEADER = ("video", "start", "end")
HEADER_TEXT = "video,start,end[,unit] (unit: frames or seconds)"


@dataclass(frozen=True)
class Row:
    """One interval as written: ``line`` of the file, the video's name, start and end in ``unit``."""

    line: int
    video: str
    start: float
    end: float
    unit: str


@dataclass(frozen=True)
class VideoFacts:
    """What converting a video's intervals needs: its decoded frame count and fps (None: unknown)."""

    frames: int
    fps: float | None = None


def parse(path) -> list[Row]:
    """The rows of an annotations CSV, checked on their own (header, numbers, unit, ``end < start``)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"annotations={path}: no such file (a CSV with the header {HEADER_TEXT})")
    rows: list[Row] = []
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = None
        for cells in reader:
            where = f"{path}:{reader.line_num}"
            cells = [c.strip() for c in cells]
            if not any(cells) or cells[0].startswith("#"):
                continue
            if header is None:
                header = tuple(c.lower() for c in cells)
                if header not in (HEADER, HEADER + ("unit",)):
                    raise UserError(f"{where}: the header is {','.join(cells)!r}, expected {HEADER_TEXT}")
                continue
            if len(cells) != len(header):
                raise UserError(f"{where}: {len(cells)} fields ({','.join(cells)!r}), the header "
                                f"{','.join(header)!r} has {len(header)}: one interval per row")
            rows.append(_row(where, reader.line_num, cells))
    if header is None:
        raise UserError(f"{path}: the file is empty, expected the header {HEADER_TEXT} and one row "
                        "per anomalous interval")
    return rows


def _row(where: str, line: int, cells: list[str]) -> Row:
    video, start_text, end_text = cells[:3]
    unit = (cells[3] if len(cells) > 3 else "").lower() or "frames"
    if not video:
        raise UserError(f"{where}: the video is empty: name it by its path or file name")
    if unit not in UNITS:
        raise UserError(f"{where}: unit={cells[3]!r}: expected frames or seconds")
    values = []
    for key, value in (("start", start_text), ("end", end_text)):
        try:
            number = float(value)
        except ValueError:
            raise UserError(f"{where}: {key}={value!r} is not a number: give the {unit} of the "
                            "interval") from None
        if not math.isfinite(number):
            raise UserError(f"{where}: {key}={value!r} is not a finite number")
        if unit == "frames":
            if number != int(number):
                raise UserError(f"{where}: {key}={value} is not a whole frame number: frames are "
                                "1-based integers; for times add the unit column with 'seconds'")
            if number < 1:
                raise UserError(f"{where}: {key}={value}: frames count from 1 (1-based, inclusive)")
        elif number < 0:
            raise UserError(f"{where}: {key}={value} seconds is negative: times count from 0")
        values.append(number)
    start, end = values
    if end < start:
        raise UserError(f"{where}: end={end_text} < start={start_text} ({unit}) for video {video!r}: "
                        "swap them or fix the row")
    return Row(line, video, start, end, unit)


def seconds_to_frames(start: float, end: float, fps: float) -> tuple[int, int]:
    """The 1-based inclusive frames overlapping ``[start, end)`` seconds at ``fps`` (module doc)."""
    first = math.floor(round(start * fps, 6)) + 1
    last = math.ceil(round(end * fps, 6))
    return first, max(first, last)


def _stem(name: str) -> str:
    return Path(name).name.split(".")[0]


def match_videos(rows: list[Row], path, names) -> dict[int, str]:
    """``{row line: the known video it names}``: by path, else by file stem when that is unique."""
    names = list(names)
    by_stem: dict[str, list[str]] = {}
    for name in names:
        by_stem.setdefault(_stem(name), []).append(name)
    matched = {}
    for row in rows:
        if row.video in names:
            matched[row.line] = row.video
            continue
        candidates = by_stem.get(_stem(row.video), [])
        if len(candidates) > 1:
            raise UserError(f"{path}:{row.line}: video {row.video!r} matches {len(candidates)} videos "
                            f"({candidates[:4]}): name it by its path")
        if not candidates:
            shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
            raise UserError(f"{path}:{row.line}: unknown video {row.video!r}: not one of the "
                            f"{len(names)} videos to annotate ({shown or 'none'}); name a video by "
                            "its path or its file name without extension")
        matched[row.line] = candidates[0]
    return matched


def spans_of(rows: list[Row], path, videos: Mapping[str, VideoFacts]) -> dict[str, tuple[tuple[int, int], ...]]:
    """``{video: merged 1-based inclusive spans}`` of the rows, for the ``videos`` they name
    (keys as in ``videos``; videos without rows are left out)."""
    matched = match_videos(rows, path, videos)
    spans: dict[str, list[tuple[int, int]]] = {}
    for row in rows:
        name = matched[row.line]
        facts = videos[name]
        where = f"{path}:{row.line}"
        if row.unit == "frames":
            first, last = int(row.start), int(row.end)
            if last > facts.frames:
                raise UserError(f"{where}: end={last} is beyond video {name!r}, whose last frame is "
                                f"{facts.frames} (frames are 1-based, inclusive): fix the row")
        else:
            if not facts.fps:
                raise UserError(f"{where}: video {name!r} has no known fps, so its times in seconds "
                                "cannot be turned into frames: give frames (unit frames) for it")
            duration = facts.frames / facts.fps
            if round(row.end * facts.fps, 6) > facts.frames:
                raise UserError(f"{where}: end={row.end:g} s is beyond video {name!r}, which lasts "
                                f"{duration:.3f} s ({facts.frames} frames at {facts.fps:g} fps): fix the row")
            first, last = seconds_to_frames(row.start, row.end, facts.fps)
            if first > facts.frames:
                raise UserError(f"{where}: start={row.start:g} s is at or after the end of video "
                                f"{name!r} ({duration:.3f} s): fix the row")
        spans.setdefault(name, []).append((first, last))
    return {name: _merged(items) for name, items in spans.items()}


def _merged(spans: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Sorted spans with the overlapping or touching ones joined."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return tuple(out)


def read_annotations(path, videos: Mapping[str, VideoFacts]) -> dict[str, tuple[tuple[int, int], ...]]:
    """``{video: 1-based inclusive spans}`` of an annotations CSV for the known ``videos``
    (``{name: VideoFacts(frames, fps)}``); see the module doc for the format and the errors."""
    return spans_of(parse(path), Path(path).expanduser(), videos)


__all__ = ["Row", "UNITS", "VideoFacts", "match_videos", "parse", "read_annotations",
           "seconds_to_frames", "spans_of"]
