"""The records every layer passes around: a video with its ground truth, and a video of a
layout with its split."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from vad.constants import NORMAL

# A file extension (".mp4", ".npy"): XD-Violence names hold dots ("Bad.Boys.1995__#01-11-55_..."),
# so only such trailing parts are taken off a name.
EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,5}$")


@dataclass(frozen=True)
class Video:
    """One video: ``path`` as the lists write it, frame count and 1-based inclusive spans."""

    path: str
    cls: str
    frames: int
    spans: tuple[tuple[int, int], ...] = ()

    @property
    def name(self) -> str:
        """File name without its extensions, e.g. ``Arson022_x264`` (of ``Arson022_x264.mp4``)."""
        name = Path(self.path).name
        while EXTENSION.search(name):
            name = EXTENSION.sub("", name)
        return name

    @property
    def label(self) -> int:
        return int(self.cls != NORMAL)


def clip_spans(spans, frames: int) -> tuple[tuple[int, int], ...]:
    """1-based inclusive ``spans`` clipped to a video's ``frames`` (decoded frame counts may
    fall short of an annotation's); spans left empty are dropped."""
    clipped = ((max(1, int(start)), min(int(end), int(frames))) for start, end in spans)
    return tuple((start, end) for start, end in clipped if start <= end)


@dataclass(frozen=True)
class Entry:
    """One video of a layout: its facts (class, frames, spans for test videos) and split."""

    video: Video
    split: str
