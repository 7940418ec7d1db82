"""Sultani's released C3D features: one text file of 32 rows x 4096 floats per video, named
``ROOT/<Video>_x264.txt``, ``ROOT/<Video>_x264_C.txt`` or ``ROOT/<Class>/<Video>_x264.txt``.

Videos follow the official split (``Anomaly_Train.txt`` order, ``Test_Annotation.txt``);
:func:`official_entries` is shared with the other layouts that carry no lists of their own.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from vad.constants import N_SEGMENTS
from vad.data.layouts.base import REFETCH, Layout, UnreadableFile, preview
from vad.data.layouts.seed_npy import check_segments
from vad.data.ucf_crime import catalogue, class_of, read_test_annotation
from vad.types import Entry, Video


def read_train_list(path: Path) -> list[Video]:
    """A training list in ``Anomaly_Train.txt`` form (``Class/Video.mp4`` per line; a second
    field, as in ``Train_Annotation.txt``, is taken as the frame count); other frame counts
    come from the shipped ``Train_Annotation.txt`` (0 when unknown)."""
    frames = {Path(v.path).name: v.frames for v in catalogue()[0]}
    videos = []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) > 2 or (len(parts) == 2 and not parts[1].isdigit()):
            raise ValueError(f"{path}:{lineno}: expected 'Class/Video.mp4' or 'Class/Video.mp4 frames', "
                             f"found {line!r}")
        count = int(parts[1]) if len(parts) == 2 else frames.get(Path(parts[0]).name, 0)
        videos.append(Video(parts[0], class_of(parts[0]), count))
    return videos


def official_entries(train_list: Path | None = None, test_annotation: Path | None = None) -> list[Entry]:
    """The official split from the shipped files, train then test; ``train_list`` (see
    :func:`read_train_list`) and ``test_annotation`` (``Test_Annotation.txt`` form) override it."""
    shipped_train, shipped_test = catalogue()
    train = read_train_list(train_list) if train_list is not None else list(shipped_train)
    test = read_test_annotation(Path(test_annotation)) if test_annotation is not None else list(shipped_test)
    return [Entry(v, "train") for v in train] + [Entry(v, "test") for v in test]


TEXT_FIX = (f"a feature file holds {N_SEGMENTS} rows of whitespace-separated floats, all of the same "
            f"length: {REFETCH}")


def _text_problem(path: Path, data: bytes) -> UnreadableFile | None:
    """What makes ``data`` (the file's bytes) not a text grid of floats, with its 1-based line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.start < 16 or b"\0" in data[:1024]:
            return UnreadableFile(path, f"not a text file (starts with {preview(data[:16])})")
        lineno = data[:err.start].count(b"\n") + 1
        return UnreadableFile(f"{path}:{lineno}", f"byte 0x{data[err.start]:02x} is not UTF-8 text",
                              TEXT_FIX)
    width = first = None
    for lineno, line in enumerate(text.split("\n"), 1):
        fields = line.split("#", 1)[0].split()  # numpy.loadtxt skips comments and blank lines
        if not fields:
            continue
        for column, field in enumerate(fields, 1):
            try:
                float(field)
            except ValueError:
                return UnreadableFile(f"{path}:{lineno}", f"column {column}: expected a float, found {field!r}",
                                      TEXT_FIX)
        if width is None:
            width, first = len(fields), lineno
        elif len(fields) != width:
            return UnreadableFile(f"{path}:{lineno}", f"{len(fields)} values, line {first} has {width}",
                                  TEXT_FIX)
    return None


def read_text_segments(path: Path, stream: str = "RGB") -> np.ndarray:
    """(32, D) float32 from a text file of 32 rows of whitespace-separated floats (numpy's C
    parser: ~8 ms for a 32 x 4096 file). A file that does not parse raises
    :class:`UnreadableFile` naming its first bad line (1-based)."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise UnreadableFile(path, "empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data": 0 rows below
            values = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as err:  # UnicodeDecodeError included
        problem = _text_problem(path, path.read_bytes())
        if problem is None:  # a number numpy rejects and Python accepts: numpy's own words
            found = str(err).split("; use `usecols`")[0].rstrip(".")
            problem = UnreadableFile(path, found, TEXT_FIX)
        raise problem from err
    if values.shape[0] != N_SEGMENTS:
        raise ValueError(f"{path}: expected {N_SEGMENTS} rows of segment features (Sultani's "
                         f"{N_SEGMENTS} segments), found {values.shape[0]} rows; re-export the features "
                         f"as {N_SEGMENTS} segments")
    return check_segments(values, str(path), stream)


class OfficialSplitRGB(Layout):
    """A single-stream (RGB) layout without lists of its own: videos of the official split
    from the shipped annotations, overridable by ``train_list`` / ``test_annotation``."""

    def __init__(self, root: Path, train_list: Path | None = None, test_annotation: Path | None = None):
        super().__init__(root)
        self.train_list = train_list
        self.test_annotation = test_annotation
        self._entries: list[Entry] | None = None

    def entries(self) -> list[Entry]:
        if self._entries is None:
            self._entries = official_entries(self.train_list, self.test_annotation)
        return list(self._entries)

    def streams(self) -> tuple[str, ...]:
        return ("RGB",)


class SultaniTxt(OfficialSplitRGB):
    """``ROOT/<Video>_x264.txt`` (or ``_C.txt``, or under ``<Class>/``), 32 x 4096 C3D fc6, RGB."""

    name = "sultani_txt"
    kind = "segments"
    options = ("train_list", "test_annotation")
    root_hint = "the folder of <Video>_x264.txt files"

    def __init__(self, root: Path, train_list: Path | None = None, test_annotation: Path | None = None):
        super().__init__(root, train_list, test_annotation)
        if not self.root.is_dir():
            raise FileNotFoundError(f"data.root={self.root} is not a folder")

    def candidates(self, entry: Entry) -> list[Path]:
        """Where a video's file may be, in the order they are tried."""
        name = entry.video.name
        folders = dict.fromkeys([Path(entry.video.path).parent.name, entry.video.cls])
        return ([self.root / f"{name}.txt", self.root / f"{name}_C.txt"]
                + [self.root / folder / f"{name}.txt" for folder in folders if folder])

    def file(self, entry: Entry) -> Path | None:
        return next((p for p in self.candidates(entry) if p.is_file()), None)

    def source(self, entry: Entry, stream: str) -> str:
        found = self.file(entry)
        return str(found if found is not None else self.candidates(entry)[0])

    def read(self, entry: Entry, stream: str) -> np.ndarray:
        if stream != "RGB":
            raise ValueError(f"data={self.name} has only the RGB stream (C3D), found {stream}: "
                             "use modality=RGB")
        path = self.file(entry)
        if path is None:
            tried = ", ".join(str(p) for p in self.candidates(entry))
            raise FileNotFoundError(f"no feature file for {entry.video.path} ({entry.split}): tried "
                                    f"{tried}; check data.root and the lists")
        return read_text_segments(path, stream)
