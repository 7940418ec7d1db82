"""The seed notebook's layout (``data=ucf_crime_npy``): ``all_rgbs/<list path>.npy`` and
``all_flows/<list path>.npy``, one (32, D) float32 file per video and stream.

Lists ``train_anomaly.txt`` + ``train_normal.txt`` (train, anomalous first) and
``test_anomalyv2.txt`` + ``test_normalv2.txt`` (test) are taken from the root when present,
else the shipped UCF-Crime lists; each can be overridden by an option.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vad.constants import N_SEGMENTS
from vad.data.layouts.base import Layout
from vad.data.layouts.npy import load_npy
from vad.data.ucf_crime import (
    catalogue,
    class_of,
    read_list,
    read_v2_test_lists,
    shipped,
)
from vad.types import Entry, Video

STREAM_DIRS = {"RGB": "all_rgbs", "FLOW": "all_flows"}
LISTS = ("train_normal.txt", "train_anomaly.txt", "test_anomalyv2.txt", "test_normalv2.txt")


def list_file(root: Path, name: str) -> Path:
    """The folder's own list when it has one, else the shipped UCF-Crime list."""
    own = root / name
    return own if own.exists() else shipped(name)


def check_segments(array: np.ndarray, source: str, stream: str, dim: int | None = None) -> np.ndarray:
    """A (32, D) float32 view of one video's pooled features; ``dim`` also fixes D.

    Shared by the segment layouts: the error names the file, what was expected and found.
    """
    array = np.asarray(array)
    if dim is not None:
        if array.shape != (N_SEGMENTS, dim):
            raise ValueError(f"{source}: expected shape ({N_SEGMENTS}, {dim}) for {stream} features "
                             f"of this extractor, found {array.shape}; pick the matching extractor= "
                             "or re-export the features")
    elif array.ndim != 2 or array.shape[0] != N_SEGMENTS or array.shape[1] == 0:
        raise ValueError(f"{source}: expected shape ({N_SEGMENTS}, D) for {stream} features (Sultani's "
                         f"{N_SEGMENTS} pooled segments per video), found {array.shape}; re-export "
                         f"the features as {N_SEGMENTS} segments, or use a clip layout "
                         "(tencrop_npy, percrop_npy) for per-snippet features")
    if array.dtype.kind not in "fiu":
        raise ValueError(f"{source}: expected float {stream} features, found dtype {array.dtype}; "
                         "re-export the features as float32")
    return array.astype(np.float32, copy=False)


class SeedNpy(Layout):
    """``ROOT/all_rgbs/<list path>.npy`` and ``ROOT/all_flows/...``, each (32, D)."""

    name = "ucf_crime_npy"
    kind = "segments"
    options = ("train_anomaly", "train_normal", "test_anomaly", "test_normal")
    root_hint = "the folder holding all_rgbs/ and all_flows/"

    def __init__(self, root: Path, train_anomaly: Path | None = None, train_normal: Path | None = None,
                 test_anomaly: Path | None = None, test_normal: Path | None = None):
        super().__init__(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"data.root={self.root} is not a folder")
        given = {"train_anomaly.txt": train_anomaly, "train_normal.txt": train_normal,
                 "test_anomalyv2.txt": test_anomaly, "test_normalv2.txt": test_normal}
        self.lists = {name: Path(path) if path is not None else list_file(self.root, name)
                      for name, path in given.items()}
        self._entries: list[Entry] | None = None

    def entries(self) -> list[Entry]:
        if self._entries is None:
            frames = {Path(v.path).name: v.frames for v in catalogue()[0]}
            paths = read_list(self.lists["train_anomaly.txt"]) + read_list(self.lists["train_normal.txt"])
            train = [Video(p, class_of(p), frames.get(Path(p).name, 0)) for p in paths]
            test = read_v2_test_lists(self.lists["test_anomalyv2.txt"], self.lists["test_normalv2.txt"])
            self._entries = [Entry(v, "train") for v in train] + [Entry(v, "test") for v in test]
        return list(self._entries)

    def folder(self, stream: str) -> Path:
        return self.root / STREAM_DIRS[stream]

    def streams(self) -> tuple[str, ...]:
        return tuple(s for s in STREAM_DIRS if self.folder(s).is_dir())

    def file(self, entry: Entry, stream: str) -> Path:
        return self.folder(stream) / f"{entry.video.path}.npy"

    def source(self, entry: Entry, stream: str) -> str:
        return str(self.file(entry, stream))

    def read(self, entry: Entry, stream: str, dim: int | None = None) -> np.ndarray:
        """(32, D) float32; ``dim`` (optional) also checks D against the extractor."""
        path = self.file(entry, stream)
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist: no {stream} features for "
                                    f"{entry.video.path} ({entry.split}); check data.root and the lists")
        return check_segments(load_npy(path), str(path), stream, dim)
