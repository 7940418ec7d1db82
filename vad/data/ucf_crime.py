"""UCF-Crime facts read from the public annotation files shipped as package data.

Every reader (synthetic or real) describes videos with :class:`Video`, so ground truth,
frame counts and classes come from one place.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from pathlib import Path

from vad.constants import CLASSES, NORMAL
from vad.types import Video


def shipped(name: str) -> Path:
    """Path of a shipped annotation file (``Test_Annotation.txt`` ...)."""
    return Path(str(resources.files("vad.resources") / "ucf_crime" / name))


def class_of(path: str) -> str:
    """Class from a list path: the folder, or the name prefix; normal folders map to Normal."""
    stem = Path(path).name
    if stem.startswith("Normal_Videos"):
        return NORMAL
    match = re.match(r"([A-Za-z]+?)\d", stem)
    if match and match.group(1) in CLASSES:
        return match.group(1)
    folder = Path(path).parent.name
    if folder in CLASSES:
        return folder
    raise ValueError(f"cannot tell the class of {path!r}: expected a name starting with one of "
                     f"{', '.join(CLASSES)} or Normal_Videos")


def _spans(values: list[int], frames: int) -> tuple[tuple[int, int], ...]:
    """Pairs of (start, end) from a flat list, dropping -1 pairs and clipping to the video."""
    pairs = []
    for start, end in zip(values[0::2], values[1::2]):
        if start < 0 or end < 0:
            continue
        pairs.append((max(1, start), min(end, frames)))
    return tuple(pairs)


def read_test_annotation(path: Path | None = None) -> list[Video]:
    """``Test_Annotation.txt``: ``Class/Video.mp4 frames Class s1 e1 s2 e2``."""
    path = path or shipped("Test_Annotation.txt")
    videos = []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 7:
            raise ValueError(f"{path}:{lineno}: expected 7 fields 'path frames class s1 e1 s2 e2', "
                             f"found {len(parts)}: {line!r}")
        frames = int(parts[1])
        videos.append(Video(parts[0], class_of(parts[0]), frames,
                            _spans([int(v) for v in parts[3:7]], frames)))
    return videos


def read_train_annotation(path: Path | None = None) -> list[Video]:
    """``Anomaly_Train.txt`` order with frame counts from ``Train_Annotation.txt``."""
    counts_path = path or shipped("Train_Annotation.txt")
    counts = {}
    for lineno, line in enumerate(Path(counts_path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ValueError(f"{counts_path}:{lineno}: expected 'path frames', found {line!r}")
        counts[Path(parts[0]).name] = int(parts[1])
    order = [ln.strip() for ln in shipped("Anomaly_Train.txt").read_text().splitlines() if ln.strip()]
    return [Video(p, class_of(p), counts[Path(p).name]) for p in order]


def read_v2_test_lists(anomaly: Path, normal: Path) -> list[Video]:
    """The seed notebook's ``test_anomalyv2.txt`` (``path|frames|[s, e, ...]``) and
    ``test_normalv2.txt`` (``path frames -1``), anomalous first."""
    videos = []
    for lineno, line in enumerate(Path(anomaly).read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.strip().split("|")
        if len(parts) != 3:
            raise ValueError(f"{anomaly}:{lineno}: expected 'path|frames|[start, end, ...]', "
                             f"found {line!r}")
        frames = int(parts[1])
        bounds = [int(v) for v in re.findall(r"-?\d+", parts[2])]
        videos.append(Video(parts[0], class_of(parts[0]), frames, _spans(bounds, frames)))
    for lineno, line in enumerate(Path(normal).read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) < 2:
            raise ValueError(f"{normal}:{lineno}: expected 'path frames -1', found {line!r}")
        videos.append(Video(parts[0], NORMAL, int(parts[1])))
    return videos


def read_list(path: Path) -> list[str]:
    """A plain list of video paths, one per line (duplicates kept, as the seed reads them)."""
    return [ln.strip() for ln in Path(path).read_text().splitlines() if ln.strip()]


@lru_cache(maxsize=None)
def catalogue() -> tuple[tuple[Video, ...], tuple[Video, ...]]:
    """(train, test) videos of the official split from the shipped files."""
    return tuple(read_train_annotation()), tuple(read_test_annotation())
