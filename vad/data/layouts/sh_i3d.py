"""ShanghaiTech ten-crop I3D features of RTFM: ``<name>_i3d.npy`` of shape (T, 10, 2048)
(ResNet-50 I3D, RGB), one row per 16-frame snippet, anywhere under the root.

Lists ``shanghai-i3d-train-10crop.list`` / ``shanghai-i3d-test-10crop.list`` hold paths of
another machine: only the file name is used, resolved through an index of the root built once.
Labels, frame counts and spans come from the shipped masks (``vad.data.shanghaitech``): an
anomalous video needs T = ceil(n / 16) for its mask of n frames; a normal video, which has no
public frame count, gets 16 * T frames from its file.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from vad.constants import CLIP_FRAMES
from vad.data import shanghaitech as sh
from vad.data.layouts.base import Layout, files_by_key
from vad.data.layouts.npy import load_npy, snippet_count
from vad.data.layouts.tencrop_npy import check_clips
from vad.types import Entry

N_CROPS = 10


class ShI3d(Layout):
    """``ROOT/**/<name>_i3d.npy``, (T, 10, 2048) per video, RGB; ShanghaiTech's split."""

    name = "sh_i3d"
    kind = "clips"
    options = ("train_list", "test_list")
    root_hint = "the folder holding the <name>_i3d.npy files, at any depth"
    hint = " (D = 2048 for RTFM's ResNet-50 I3D)"

    def __init__(self, root: Path, train_list: Path | None = None, test_list: Path | None = None):
        super().__init__(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"data.root={self.root} is not a folder")
        self.lists = {split: Path(given) if given is not None else sh.shipped(sh.LISTS[split])
                      for split, given in (("train", train_list), ("test", test_list))}
        self.files = files_by_key(self.root, lambda file: file[:-len(sh.SUFFIX)] if file.endswith(sh.SUFFIX)
                                  else None, "feature files of video {}")
        self._entries: list[Entry] | None = None

    def _read(self, split: str, known: dict) -> list[Entry]:
        path = self.lists[split]
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: data.{split}_list names RTFM's "
                                    f"{sh.LISTS[split]}; fix the path, or set data.{split}_list=null "
                                    "for the shipped one")
        entries = []
        for lineno, name in enumerate(sh.list_names(path), 1):
            video = known.get(name)
            if video is None:
                raise ValueError(f"{path}:{lineno}: {name} is not a {split} video of the ShanghaiTech "
                                 f"weakly-supervised split ({sh.SPLITS[split]}); fix the list")
            if video.frames == 0 and name in self.files:
                video = dataclasses.replace(video, frames=CLIP_FRAMES * (snippet_count(self.files[name]) or 0))
            entries.append(Entry(video, split))
        return entries

    def entries(self) -> list[Entry]:
        if self._entries is None:
            train, test = sh.catalogue()
            self._entries = (self._read("train", {v.name: v for v in train})
                             + self._read("test", {v.name: v for v in test}))
        return list(self._entries)

    def streams(self) -> tuple[str, ...]:
        return ("RGB",)

    def source(self, entry: Entry, stream: str) -> str:
        found = self.files.get(entry.video.name)
        return str(found) if found is not None else f"{self.root}/**/{entry.video.name}{sh.SUFFIX}"

    def read(self, entry: Entry, stream: str) -> np.ndarray:
        if stream != "RGB":
            raise ValueError(f"data={self.name} has only the RGB stream, found {stream}: use modality=RGB")
        name = entry.video.name
        path = self.files.get(name)
        if path is None:
            raise FileNotFoundError(f"no {name}{sh.SUFFIX} under data.root={self.root} ({entry.split} list "
                                    f"{self.lists[entry.split]}); download it, or drop {name} from the list")
        array = check_clips(load_npy(path), str(path), N_CROPS, self.hint)
        labels = sh.mask(name)
        if labels is not None and len(array) != sh.snippets(len(labels)):
            raise ValueError(f"{path}: the mask of {name} has n = {len(labels)} frames, so expected "
                             f"T = ceil(n / 16) = {sh.snippets(len(labels))} snippets, found T = {len(array)}; "
                             "these are not RTFM's features of this video: re-download or re-extract it")
        return array
