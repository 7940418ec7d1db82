"""Ten-crop per-snippet I3D features of the RTFM family: ``ROOT/<Video>_x264_i3d.npy`` of shape
(T, 10, 2048) (ResNet-50 I3D, RGB), one row per 16-frame snippet.

Lists ``ucf-i3d.list`` (810 anomalous then 800 normal) and ``ucf-i3d-test.list`` (140 anomalous
then 150 normal) hold paths, often of another machine: only the file name is used, resolved
under the root. Labels come from the position in the list; frame counts, spans and classes
from the shipped annotations, by video name.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np

from vad.data.layouts.base import Layout
from vad.data.layouts.npy import load_npy
from vad.data.ucf_crime import catalogue, class_of, read_list, read_test_annotation
from vad.types import Entry, Video

SUFFIX = "_i3d.npy"


def check_clips(array: np.ndarray, source: str, n_crops: int, hint: str = "") -> np.ndarray:
    """A (T, n_crops, D) float32 array with T, D >= 1, or an error naming the file."""
    shape = array.shape
    if array.ndim != 3 or shape[1] != n_crops or shape[0] == 0 or shape[2] == 0:
        fix = (f"it looks crop-first: save it as (T, {n_crops}, D)"
               if array.ndim == 3 and shape[0] == n_crops and shape[1] != n_crops
               else f"re-export one (T, {n_crops}, D) array per video, or set data.n_crops to the "
                    "number of crops the files hold")
        raise ValueError(f"{source}: expected (T, {n_crops}, D) float features{hint}, found {shape}; {fix}")
    return array.astype(np.float32, copy=False)


def list_name(line: str) -> str:
    """The file name of a list line, whatever machine's path it was written with."""
    return PurePosixPath(line.replace("\\", "/")).name


class TencropNpy(Layout):
    """``ROOT/<Video>_x264_i3d.npy``, (T, 10, D) per video (D = 2048), RGB."""

    name = "tencrop_npy"
    kind = "clips"
    options = ("train_list", "test_list", "n_train_anomalous", "n_test_anomalous", "n_crops",
               "test_annotation")
    root_hint = "the folder of <Video>_x264_i3d.npy files"
    hint = " (D = 2048 for the ResNet-50 I3D of the RTFM family)"

    def __init__(self, root: Path, train_list: Path | None = None, test_list: Path | None = None,
                 n_train_anomalous: int = 810, n_test_anomalous: int = 140, n_crops: int = 10,
                 test_annotation: Path | None = None):
        super().__init__(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"data.root={self.root} is not a folder")
        self.n_crops = int(n_crops)
        self.test_annotation = test_annotation
        self.lists = {"train": Path(train_list) if train_list is not None else self.root / "ucf-i3d.list",
                      "test": Path(test_list) if test_list is not None else self.root / "ucf-i3d-test.list"}
        self.n_anomalous = {"train": int(n_train_anomalous), "test": int(n_test_anomalous)}
        self.files: dict[str, str] = {}  # video name -> file name in the list
        self._entries: list[Entry] | None = None

    def _read(self, split: str) -> list[Entry]:
        path, n_anomalous = self.lists[split], self.n_anomalous[split]
        option = f"data.{split}_list"
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: data={self.name} needs the {split} list "
                                    f"(ucf-i3d{'' if split == 'train' else '-test'}.list); put it under "
                                    f"data.root or set {option}=PATH")
        lines = read_list(path)
        if n_anomalous > len(lines):
            raise ValueError(f"{path}: data.n_{split}_anomalous={n_anomalous} but the list has only "
                             f"{len(lines)} videos; set data.n_{split}_anomalous")
        if split == "train":
            known = {v.name: v for v in catalogue()[0]}
        elif self.test_annotation is not None:
            known = {v.name: v for v in read_test_annotation(Path(self.test_annotation))}
        else:
            known = {v.name: v for v in catalogue()[1]}
        entries = []
        for lineno, line in enumerate(lines, 1):
            file = list_name(line)
            name = file[:-len(SUFFIX)] if file.endswith(SUFFIX) else file.split(".")[0]
            anomalous = lineno <= n_anomalous
            video = known.get(name)
            if video is None:
                if split == "test":
                    raise ValueError(f"{path}:{lineno}: test video {name} is not in the test annotation "
                                     f"({self.test_annotation or 'shipped Test_Annotation.txt'}), so it "
                                     "has no frame ground truth; fix the list or set data.test_annotation")
                try:
                    cls = class_of(name)
                except ValueError as err:
                    raise ValueError(f"{path}:{lineno}: {err}") from err
                video = Video(f"{cls}/{name}.mp4", cls, 0)
            if video.label != int(anomalous):
                raise ValueError(f"{path}:{lineno}: {name} is a {video.cls} video but sits at an "
                                 f"{'anomalous' if anomalous else 'normal'} position (the first "
                                 f"data.n_{split}_anomalous={n_anomalous} lines are anomalous); fix the "
                                 f"list order or set data.n_{split}_anomalous")
            self.files[name] = file
            entries.append(Entry(video, split))
        return entries

    def entries(self) -> list[Entry]:
        if self._entries is None:
            self._entries = self._read("train") + self._read("test")
        return list(self._entries)

    def streams(self) -> tuple[str, ...]:
        return ("RGB",)

    def file(self, entry: Entry) -> Path:
        return self.root / self.files.get(entry.video.name, f"{entry.video.name}{SUFFIX}")

    def source(self, entry: Entry, stream: str) -> str:
        return str(self.file(entry))

    def read(self, entry: Entry, stream: str) -> np.ndarray:
        if stream != "RGB":
            raise ValueError(f"data={self.name} has only the RGB stream, found {stream}: use modality=RGB")
        path = self.file(entry)
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: no features for {entry.video.path} "
                                    f"({entry.split}); check data.root and the lists")
        return check_clips(load_npy(path), str(path), self.n_crops, self.hint)
