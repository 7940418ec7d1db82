"""Reader for the seed notebook's layout: ``all_rgbs/`` and ``all_flows/`` with one
``<list path>.npy`` file of shape (32, D) per video and per stream."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np

from vad.data.features import FeatureSet, Splits, concat_streams
from vad.data.pooling import N_SEGMENTS
from vad.data.ucf_crime import Video, catalogue, class_of, read_list, read_v2_test_lists, shipped

log = logging.getLogger(__name__)

STREAM_DIRS = {"RGB": "all_rgbs", "FLOW": "all_flows"}
LISTS = ("train_normal.txt", "train_anomaly.txt", "test_anomalyv2.txt", "test_normalv2.txt")


def list_file(root: Path, name: str) -> Path:
    """The folder's own list when it has one, else the shipped UCF-Crime list."""
    own = root / name
    return own if own.exists() else shipped(name)


def read_stream(root: Path, stream: str, videos: list[Video], expected_dim: int) -> np.ndarray:
    """Stack one stream's files into (N, 32, D), checking presence and shapes first."""
    folder = root / STREAM_DIRS[stream]
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist: modality needs the {stream} stream, "
                                f"expected folder {STREAM_DIRS[stream]}/ under data.root={root}")
    files = [folder / f"{v.path}.npy" for v in videos]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} of {len(files)} {stream} feature files are missing "
                                f"under {folder}, e.g. {missing[:3]}; check data.root and the lists")
    out = np.empty((len(files), N_SEGMENTS, expected_dim), dtype=np.float32)
    for row, path in enumerate(files):
        array = np.load(path)
        if array.shape != (N_SEGMENTS, expected_dim):
            raise ValueError(f"{path}: expected shape ({N_SEGMENTS}, {expected_dim}) for {stream} "
                             f"features of this extractor, found {array.shape}; pick the matching "
                             "extractor= or re-export the features")
        out[row] = array
    return out


def load(cfg, streams: tuple[str, ...], extractor_dim: int) -> Splits:
    """Reader for ``data=ucf_crime_npy`` (``data.root`` set by the user)."""
    if cfg.root is None:
        raise ValueError("data=ucf_crime_npy needs data.root=PATH (the folder holding all_rgbs/ "
                         "and all_flows/)")
    root = Path(str(cfg.root)).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"data.root={root} is not a folder")
    train_cat, _ = catalogue()
    frames = {Path(v.path).name: v.frames for v in train_cat}
    train_paths = read_list(list_file(root, "train_anomaly.txt")) + read_list(list_file(root, "train_normal.txt"))
    duplicates = [p for p, c in Counter(train_paths).items() if c > 1]
    if duplicates:
        log.warning("%d training videos are listed twice (kept, as the seed notebook reads them), "
                    "e.g. %s", len(duplicates), duplicates[:3])
    train = [Video(p, class_of(p), frames.get(Path(p).name, 0)) for p in train_paths]
    test = read_v2_test_lists(list_file(root, "test_anomalyv2.txt"), list_file(root, "test_normalv2.txt"))
    videos = train + test
    features = concat_streams([read_stream(root, s, videos, extractor_dim) for s in streams])
    n = len(train)
    return Splits(FeatureSet(train, features[:n]), FeatureSet(test, features[n:]),
                  description=f"seed-notebook npy features from {root} ({'+'.join(streams)})")
