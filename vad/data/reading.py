"""Read any layout into preloaded 32-segment features in one validating pass.

Every problem a dataset can have is collected while reading (missing files, unreadable files
(empty, truncated, another format), wrong shapes, NaN/Inf values, all-zero segments, duplicate list entries, train/test overlap, absent streams)
into a :class:`Report`, so a user sees all of them at once, before any training starts.
``vad.check`` prints the same report without training.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vad.constants import FIXED_DIMS
from vad.data.convert import to_segments, value_problems
from vad.pooling import SULTANI, Pooling
from vad.data.features import Splits, make_splits, stream_columns
from vad.data.layouts.base import Layout, UnreadableFile
from vad.types import Entry

log = logging.getLogger(__name__)
SHOWN = 5  # examples listed per problem


@dataclass
class Report:
    """Problems found in a dataset: ``errors`` stop training, ``warnings`` do not."""

    layout: str
    root: str
    videos: int = 0
    files: int = 0
    errors: dict[str, list[str]] = field(default_factory=dict)
    warnings: dict[str, list[str]] = field(default_factory=dict)

    def error(self, kind: str, detail: str) -> None:
        self.errors.setdefault(kind, []).append(detail)

    def warn(self, kind: str, detail: str) -> None:
        self.warnings.setdefault(kind, []).append(detail)

    @property
    def ok(self) -> bool:
        return not self.errors

    def format(self) -> str:
        lines = [f"{self.layout} at {self.root}: {self.videos} videos, "
                 f"{sum(map(len, self.errors.values()))} errors, "
                 f"{sum(map(len, self.warnings.values()))} warnings"]
        for title, problems in (("ERROR", self.errors), ("WARNING", self.warnings)):
            for kind, details in problems.items():
                total = f" of {self.files} files" if kind == "missing files" else ""
                lines.append(f"{title} {kind}: {len(details)}{total}")
                lines += [f"  - {d}" for d in details[:SHOWN]]
                if len(details) > SHOWN:
                    lines.append(f"  ... and {len(details) - SHOWN} more")
        return "\n".join(lines)


def _list_checks(entries: list[Entry], report: Report, dedupe: bool) -> list[Entry]:
    """Duplicates (warned; dropped only with ``dedupe``) and train/test overlap (an error)."""
    counts = Counter((e.split, e.video.path) for e in entries)
    for (split, path), count in counts.items():
        if count > 1:
            report.warn("duplicate list entries" + (" (dropped: data.dedupe=true)" if dedupe else
                                                    " (kept; data.dedupe=true drops them)"),
                        f"{split}: {path} listed {count} times")
    train = {Path(e.video.path).name for e in entries if e.split == "train"}
    for e in entries:
        if e.split == "test" and Path(e.video.path).name in train:
            report.error("train/test overlap", f"{e.video.path} is in both the train and the test list")
    if not dedupe:
        return entries
    seen, kept = set(), []
    for e in entries:
        if (e.split, e.video.path) not in seen:
            seen.add((e.split, e.video.path))
            kept.append(e)
    return kept


def read_layout(layout: Layout, streams: tuple[str, ...], dim: int | None, crops: str = "mean",
                crop: int = 0, dedupe: bool = False, keep: bool = True,
                pooling: Pooling = SULTANI) -> tuple[Report, Splits | None]:
    """One pass over every video and stream: validate, convert to segments, preload.

    ``dim`` is the expected per-stream dimension of the extractor's streams (None: take it from
    the first file); AUDIO has its own (``FIXED_DIMS``). Returns the report and, when ``keep``
    and no error was found, the splits.
    """
    report = Report(layout.name, str(layout.root))
    present = layout.streams()
    absent = [s for s in streams if s not in present]
    if absent:
        report.error("stream absent", f"modality needs {absent} but {layout.root} has only "
                                      f"{list(present)}: pick a modality of those streams")
        return report, None
    entries = _list_checks(layout.entries(), report, dedupe)
    report.videos = len(entries)
    report.files = len(entries) * len(streams)
    out = None
    for row, entry in enumerate(entries):
        for s_index, stream in enumerate(streams):
            where = layout.source(entry, stream)
            try:
                raw = layout.read(entry, stream)
            except FileNotFoundError:
                report.error("missing files", where)
                continue
            except UnreadableFile as err:
                report.error("unreadable files", str(err))
                continue
            except ValueError as err:
                report.error("wrong shapes", str(err))
                continue
            seg = to_segments(raw, layout.kind, crops, crop, pooling)  # (C, S, D)
            if dim is None and stream not in FIXED_DIMS:
                dim = seg.shape[-1]
            width = FIXED_DIMS.get(stream, dim)
            if seg.shape[1:] != (pooling.segments, width) or (out is not None and len(seg) != out.shape[1]):
                report.error("wrong shapes", f"{where}: expected ({pooling.segments}, {width}) {stream} features "
                                             f"after conversion, found {seg.shape[1:]} ({len(seg)} "
                                             "crops); pick the extractor the features were made with")
                continue
            for kind, detail in value_problems(seg):
                report.error(kind, f"{where}: {detail}")
            if keep and report.ok:
                widths, starts = stream_columns(streams, dim)
                if out is None:
                    out = np.empty((len(entries), len(seg), pooling.segments, sum(widths)), dtype=np.float32)
                out[row, :, :, starts[s_index]:starts[s_index] + width] = seg
    for kind, details in report.warnings.items():
        log.warning("%s: %d, e.g. %s", kind, len(details), details[0])
    if not keep or not report.ok or out is None:
        return report, None
    train_rows = [i for i, e in enumerate(entries) if e.split == "train"]
    if train_rows != list(range(len(train_rows))):
        raise ValueError(f"{layout.name}: entries() must list train videos before test videos")
    return report, make_splits(out, [e.video for e in entries if e.split == "train"],
                               [e.video for e in entries if e.split == "test"],
                               f"{layout.name} features from {layout.root} ({'+'.join(streams)})")


def read_options(data_cfg) -> dict:
    """``read_layout``'s options from a layout's ``data`` config. ``crops`` and ``crop`` exist only
    for the clip layouts (segment layouts have no crops: the defaults are never used there);
    ``dedupe`` is a key of every layout's config."""
    return {"crops": str(data_cfg.get("crops", "mean")), "crop": int(data_cfg.get("crop", 0)),
            "dedupe": bool(data_cfg.dedupe)}


def load_layout(layout: Layout, streams: tuple[str, ...], dim: int, **options) -> Splits:
    """``read_layout`` that raises one ``ValueError`` with the whole report on any error."""
    report, splits = read_layout(layout, streams, dim, **options)
    if not report.ok:
        raise ValueError("the dataset has problems (run `python -m vad.check` with the same data "
                         "options for this report alone):\n" + report.format())
    return splits
