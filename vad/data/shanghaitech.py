"""ShanghaiTech Campus, weakly-supervised split (Zhong et al., CVPR 2019), from the shipped files.

The split files name no labels: a video is anomalous iff it has a per-frame mask (the 107
videos of the original test set). The order is RTFM's lists (anomalous first). Ground truth as
the field computes it (RTFM's ``gt-sh.npy``): T = ceil(n / 16) snippets of a mask of n frames,
16 * T frames, the mask padded with its last label. Normal videos have no public frame count
(``frames`` 0): a reader takes T from the features.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path, PurePosixPath

import numpy as np

from vad.constants import CLIP_FRAMES, NORMAL
from vad.types import Video

CLASSES = ("Anomaly",)
SUFFIX = "_i3d.npy"
LISTS = {"train": "shanghai-i3d-train-10crop.list", "test": "shanghai-i3d-test-10crop.list"}
SPLITS = {"train": "SH_Train.txt", "test": "SH_Test.txt"}


def shipped(name: str) -> Path:
    """Path of a shipped file (``SH_Train.txt``, ``shanghai-i3d-test-10crop.list`` ...)."""
    return Path(str(resources.files("vad.resources") / "shanghaitech" / name))


def list_names(path: Path) -> list[str]:
    """Video names of an RTFM list: the file name of each line (paths of any machine) without
    ``_i3d.npy``."""
    names = []
    for line in Path(path).read_text().splitlines():
        if line.strip():
            file = PurePosixPath(line.strip().replace("\\", "/")).name
            names.append(file[:-len(SUFFIX)] if file.endswith(SUFFIX) else file.split(".")[0])
    return names


@lru_cache(maxsize=None)
def _masks() -> dict[str, np.ndarray]:
    with np.load(shipped("test_frame_mask.npz")) as archive:
        return {name: archive[name] for name in archive.files}


def mask(name: str) -> np.ndarray | None:
    """The per-frame 0/1 uint8 mask of an anomalous video (its n original frames), None for a
    normal one."""
    found = _masks().get(name)
    return None if found is None else found.copy()


def snippets(n: int) -> int:
    """RTFM's snippet count of a video of ``n`` frames: ceil(n / 16)."""
    return -(-int(n) // CLIP_FRAMES)


def padded(labels: np.ndarray) -> np.ndarray:
    """A mask padded with its last label to 16 * ceil(n / 16) frames."""
    return np.concatenate([labels, np.full(snippets(len(labels)) * CLIP_FRAMES - len(labels), labels[-1])])


def runs(labels: np.ndarray) -> tuple[tuple[int, int], ...]:
    """1-based inclusive (start, end) of the runs of 1s of a 0/1 array."""
    edges = np.diff(np.concatenate([[0], np.asarray(labels, dtype=np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return tuple((int(s) + 1, int(e)) for s, e in zip(starts, ends))


def video(name: str, spans: bool = True) -> Video:
    """One video by name: anomalous (16 * T frames, the padded mask's runs as spans when
    ``spans``) iff it has a mask, else normal with frames 0."""
    labels = _masks().get(name)
    if labels is None:
        return Video(name, NORMAL, 0)
    return Video(name, CLASSES[0], snippets(len(labels)) * CLIP_FRAMES, runs(padded(labels)) if spans else ())


@lru_cache(maxsize=None)
def catalogue() -> tuple[tuple[Video, ...], tuple[Video, ...]]:
    """(train, test) in RTFM's list order; training videos carry no spans."""
    return (tuple(video(n, spans=False) for n in list_names(shipped(LISTS["train"]))),
            tuple(video(n) for n in list_names(shipped(LISTS["test"]))))
