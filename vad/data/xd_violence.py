"""XD-Violence (Wu et al., ECCV 2020) facts read from the public files shipped as package data:
the split in list order, each video's label codes (from its name), and the test videos' frame
ground truth built by the field's rule.

A test video's ground truth has ``16 * T`` frames (T = its I3D snippets, ``test_videos.tsv``);
``annotations.txt`` spans ``[s, e)`` (0-based, end exclusive) become the 1-based inclusive
``(s + 1, e)`` and are cut at ``16 * T``, as the reference builder sets ``[s, e)`` before
truncating (71 videos lose frames there). Training videos carry no length (frames 0): the
reader takes it from the features.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from pathlib import Path

from vad.constants import CLIP_FRAMES, NORMAL
from vad.types import Video, clip_spans

CLASSES = ("B1", "B2", "B4", "B5", "B6", "G")
NAMES = {"B1": "fighting", "B2": "shooting", "B4": "riot", "B5": "abuse", "B6": "car accident",
         "G": "explosion"}
NORMAL_CODE = "A"
LABEL = re.compile(r"_label_([A-Za-z0-9-]+)$")


def shipped(name: str) -> Path:
    """Path of a shipped file (``annotations.txt``, ``test_videos.tsv`` ...)."""
    return Path(str(resources.files("vad.resources") / "xd_violence" / name))


def codes(name: str) -> tuple[str, ...]:
    """The label codes of a video name, in the name's order: ``()`` for a normal video
    (``_label_A``), e.g. ``("G", "B2", "B6")`` for ``..._label_G-B2-B6`` (``0`` = no code)."""
    match = LABEL.search(name)
    parts = match.group(1).split("-") if match else []
    if parts == [NORMAL_CODE]:
        return ()
    found = tuple(p for p in parts if p != "0")
    if not found or any(p not in CLASSES for p in found):
        raise ValueError(f"cannot tell the class of XD-Violence video {name!r}: expected a name ending "
                         f"in _label_A (normal) or _label_<codes> of {', '.join(CLASSES)} (0 = none), "
                         "e.g. _label_G-B2-0")
    return found


def class_of(name: str) -> str:
    """``Normal`` for a normal video, else its first code (``G`` of ``_label_G-B2-B6``)."""
    found = codes(name)
    return found[0] if found else NORMAL


def _names(file: str) -> list[str]:
    return [line.strip() for line in shipped(file).read_text().splitlines() if line.strip()]


def read_annotations(path: Path) -> dict[str, list[tuple[int, int]]]:
    """``annotations.txt``: ``<name> s1 e1 [s2 e2 ...]`` -> name (a trailing ``.mp4`` stripped)
    -> 0-based end-exclusive ``[s, e)`` pairs."""
    spans = {}
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        values = parts[1:]
        if not values or len(values) % 2 or not all(v.isdigit() for v in values):
            raise ValueError(f"{path}:{lineno}: expected '<name> s1 e1 [s2 e2 ...]' (frame indices), "
                             f"found {line!r}")
        name = parts[0][:-len(".mp4")] if parts[0].endswith(".mp4") else parts[0]
        spans[name] = [(int(s), int(e)) for s, e in zip(values[0::2], values[1::2])]
    return spans


def snippet_counts() -> dict[str, int]:
    """Test video name -> its I3D snippet count T (``test_videos.tsv``; gt_frames = 16 * T)."""
    counts = {}
    rows = [line.split("\t") for line in shipped("test_videos.tsv").read_text().splitlines()
            if line and not line.startswith("#")]
    header = rows[0]
    name, snippets, frames = (header.index(k) for k in ("video", "i3d_snippets", "gt_frames"))
    for row in rows[1:]:
        if int(row[frames]) != CLIP_FRAMES * int(row[snippets]):
            raise ValueError(f"{shipped('test_videos.tsv')}: {row[name]} has gt_frames {row[frames]}, "
                             f"expected {CLIP_FRAMES} * {row[snippets]}")
        counts[row[name]] = int(row[snippets])
    return counts


def test_video(name: str, snippets: int, spans: list[tuple[int, int]]) -> Video:
    """A test video of ``snippets`` I3D snippets with its ``[s, e)`` spans by the reference rule."""
    frames = CLIP_FRAMES * snippets
    return Video(name, class_of(name), frames, clip_spans(((s + 1, e) for s, e in spans), frames))


@lru_cache(maxsize=None)
def catalogue() -> tuple[tuple[Video, ...], tuple[Video, ...]]:
    """(train, test) videos of the official split, in the lists' order (violent first)."""
    train = tuple(Video(name, class_of(name), 0) for name in _names("train_videos.txt"))
    counts, spans = snippet_counts(), read_annotations(shipped("annotations.txt"))
    test = tuple(test_video(name, counts[name], spans.get(name, [])) for name in _names("test_videos.txt"))
    return train, test
