"""The capstone seed's HDF5 file: groups ``<Folder>/<Video>.mp4`` (e.g. ``Abuse/Abuse001_x264.mp4``,
``Training_Normal_Videos_Anomaly/Normal_Videos001_x264.mp4``), each with a (32, D) dataset
``c3d_features`` (32, 4096) or ``i3d_rgb_features`` (32, 1024), often float64.

Videos are matched by file name whatever group folder holds them; the split is the official one.
The file is opened on first use and kept open; one video is read at a time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vad.data.layouts.seed_npy import check_segments
from vad.data.layouts.sultani_txt import OfficialSplitRGB
from vad.types import Entry

DATASETS = ("c3d_features", "i3d_rgb_features")


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
        self._file = None
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

    @property
    def file(self):
        if self._file is None:
            import h5py
            try:
                self._file = h5py.File(self.root, "r")
            except OSError as err:
                raise OSError(f"{self.root}: cannot be opened as HDF5 ({err}); data={self.name} "
                              "expects the capstone .h5 file") from err
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
        return check_segments(node[self.dataset][()], self.source(entry, stream), stream)
