"""The capstone seed's HDF5 file: groups ``<Folder>/<Video>.mp4`` (e.g. ``Abuse/Abuse001_x264.mp4``,
``Training_Normal_Videos_Anomaly/Normal_Videos001_x264.mp4``), each with a (32, D) dataset
``c3d_features`` (32, 4096) or ``i3d_rgb_features`` (32, 1024), often float64.

Videos are matched by file name whatever group folder holds them; the split is the official one.
The file is opened when the layout is made (an unreadable one is refused there, saying why) and
kept open; one video is read at a time.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from vad.data.layouts.base import UnreadableFile, preview
from vad.data.layouts.seed_npy import check_segments
from vad.data.layouts.sultani_txt import OfficialSplitRGB
from vad.types import Entry

DATASETS = ("c3d_features", "i3d_rgb_features")
SIGNATURE = b"\x89HDF\r\n\x1a\n"
SIGNATURE_AT = (0, 512, 1024, 2048)  # after a user block of 0, 512, 1024, 2048 bytes
FIX = "re-download or re-export the .h5 file, or set data.root to the capstone .h5 file"


def _open_problem(path: Path, err: OSError) -> str:
    """Why h5py could not open ``path``: empty, another format, truncated or damaged."""
    size = path.stat().st_size
    if size == 0:
        return "empty file (0 bytes)"
    with open(path, "rb") as fh:
        head = fh.read(16)
        signed = False
        for at in SIGNATURE_AT:
            fh.seek(at)
            signed = signed or fh.read(len(SIGNATURE)) == SIGNATURE
    if not signed:
        return f"not an HDF5 file (starts with {preview(head)})"
    truncated = re.search(r"truncated file: eof = (\d+).*stored_eof = (\d+)", str(err))
    if truncated:
        return f"truncated: header says {truncated.group(2)} bytes, file has {truncated.group(1)}"
    return f"a damaged HDF5 file (h5py: {err})"


class CapstoneH5(OfficialSplitRGB):
    """One ``.h5`` file (``root``) of per-video groups; stream RGB."""

    name = "capstone_h5"
    kind = "segments"
    options = ("dataset", "train_list", "test_annotation")
    root_hint = "the .h5 file"

    def __init__(self, root: Path, dataset: str | None = None, train_list: Path | None = None,
                 test_annotation: Path | None = None):
        super().__init__(root, train_list, test_annotation)
        if not self.root.is_file():
            raise FileNotFoundError(f"data.root={self.root} is not a file: data={self.name} reads one "
                                    ".h5 file, set data.root=PATH/TO/FEATURES.h5")
        self.requested = dataset
        self._file = self._open()
        self._index: dict[str, str] | None = None
        self._dataset: str | None = None

    # The open file handle is not picklable (DataLoader workers): reopen after unpickling.
    def __getstate__(self):
        state = dict(self.__dict__)
        state["_file"] = None
        return state

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _open(self):
        import h5py
        try:
            return h5py.File(self.root, "r")
        except OSError as err:
            raise UnreadableFile(self.root, _open_problem(self.root, err), FIX) from err

    @property
    def file(self):
        if self._file is None:
            self._file = self._open()
        return self._file

    def _scan(self) -> None:
        """Index video name -> group path and pick the dataset, in one pass over the file."""
        import h5py
        index: dict[str, str] = {}
        names: set[str] = set()

        def visit(path: str, obj) -> None:
            if isinstance(obj, h5py.Dataset) and "/" in path:
                group = path.rpartition("/")[0]
                names.add(path.rpartition("/")[2])
                index.setdefault(group.rpartition("/")[2].split(".")[0], group)

        self.file.visititems(visit)
        if self.requested is not None:
            if self.requested not in names:
                raise ValueError(f"{self.root}: no dataset {self.requested!r} in any video group, "
                                 f"found {sorted(names)}; set data.dataset to one of them")
            dataset = self.requested
        else:
            present = [d for d in DATASETS if d in names]
            if len(present) != 1:
                raise ValueError(f"{self.root}: expected exactly one of the datasets {list(DATASETS)} "
                                 f"in the video groups, found {sorted(names)}; set data.dataset=NAME")
            dataset = present[0]
        self._index, self._dataset = index, dataset

    @property
    def index(self) -> dict[str, str]:
        if self._index is None:
            self._scan()
        return self._index

    @property
    def dataset(self) -> str:
        if self._dataset is None:
            self._scan()
        return self._dataset

    def source(self, entry: Entry, stream: str) -> str:
        group = self.index.get(entry.video.name, f"*/{entry.video.name}.mp4")
        return f"{self.root}::{group}/{self.dataset}"

    def read(self, entry: Entry, stream: str) -> np.ndarray:
        if stream != "RGB":
            raise ValueError(f"data={self.name} has only the RGB stream, found {stream}: use modality=RGB")
        group = self.index.get(entry.video.name)
        if group is None:
            raise FileNotFoundError(f"{self.root}: no group */{entry.video.name}.mp4 for {entry.video.path} "
                                    f"({entry.split}) among {len(self.index)} videos; check data.root "
                                    "and the lists")
        node = self.file[group]
        if self.dataset not in node:
            raise FileNotFoundError(f"{self.root}::{group}: no dataset {self.dataset!r}, found "
                                    f"{sorted(node.keys())}; re-export the video or set data.dataset")
        source = self.source(entry, stream)
        try:
            values = node[self.dataset][()]
        except OSError as err:  # a damaged chunk: HDF5's own words
            raise UnreadableFile(source, f"cannot be read (h5py: {err})", FIX) from err
        return check_segments(values, source, stream)
