"""Per-crop per-snippet features (Roc-Ng family; also VadCLIP's CLIP features):
``ROOT/<Folder>/<Video>_x264__<k>.npy``, k = 0..9 (0 = centre crop), each (T, D).

``read`` stacks the crops into (T, C, D) in k order. The folder of a video (its class, or any
folder for normal videos) is found through an index built once, at construction.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vad.data.layouts.npy import load_npy
from vad.data.layouts.sultani_txt import OfficialSplitRGB
from vad.types import Entry

FIRST = "__0.npy"


class PercropNpy(OfficialSplitRGB):
    """``ROOT/<Folder>/<Video>_x264__<k>.npy`` (T, D) per crop; RGB."""

    name = "percrop_npy"
    kind = "clips"
    options = ("n_crops", "train_list", "test_annotation")
    root_hint = "the folder of <Class>/<Video>_x264__<k>.npy files"
    hint = " (D = 1024 for I3D)"

    def __init__(self, root: Path, n_crops: int = 10, train_list: Path | None = None,
                 test_annotation: Path | None = None):
        super().__init__(root, train_list, test_annotation)
        if not self.root.is_dir():
            raise FileNotFoundError(f"data.root={self.root} is not a folder")
        self.n_crops = int(n_crops)
        if self.n_crops < 1:
            raise ValueError(f"data.n_crops={n_crops}: expected >= 1")
        # One pass over ROOT/*/ : video name -> folders holding its crop 0.
        self.index: dict[str, list[str]] = {}
        with os.scandir(self.root) as top:
            folders = sorted(d.name for d in top if d.is_dir())
        for folder in folders:
            with os.scandir(self.root / folder) as files:
                for f in files:
                    if f.name.endswith(FIRST):
                        self.index.setdefault(f.name[:-len(FIRST)], []).append(folder)

    def folder(self, entry: Entry) -> str | None:
        """The video's folder: the list's or the class's when it holds the video, else any."""
        found = self.index.get(entry.video.name)
        if not found:
            return None
        for preferred in (Path(entry.video.path).parent.name, entry.video.cls):
            if preferred in found:
                return preferred
        return found[0]

    def crop_file(self, entry: Entry, k: int | str) -> Path:
        folder = self.folder(entry) or entry.video.cls
        return self.root / folder / f"{entry.video.name}__{k}.npy"

    def source(self, entry: Entry, stream: str) -> str:
        return str(self.crop_file(entry, f"{{0..{self.n_crops - 1}}}"))

    def read(self, entry: Entry, stream: str) -> np.ndarray:
        if stream != "RGB":
            raise ValueError(f"data={self.name} has only the RGB stream, found {stream}: use modality=RGB")
        if self.folder(entry) is None:
            raise FileNotFoundError(f"no {self.root}/*/{entry.video.name}{FIRST} for {entry.video.path} "
                                    f"({entry.split}); check data.root and the lists")
        crops = []
        for k in range(self.n_crops):
            path = self.crop_file(entry, k)
            if not path.is_file():
                raise FileNotFoundError(f"{path} does not exist: crop {k} of data.n_crops={self.n_crops} "
                                        f"of {entry.video.name}; restore it or set data.n_crops={k} "
                                        "(every video needs the same crops)")
            array = load_npy(path)
            if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
                raise ValueError(f"{path}: expected (T, D) float features of one crop{self.hint}, "
                                 f"found {array.shape}; re-export the crop")
            if crops and array.shape != crops[0].shape:
                raise ValueError(f"{path}: expected the shape of crop 0, {crops[0].shape}, found "
                                 f"{array.shape}; every crop of a video needs the same snippets")
            crops.append(array.astype(np.float32, copy=False))
        return np.stack(crops, axis=1)
