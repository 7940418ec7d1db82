"""Reader for the seed notebook's layout: ``all_rgbs/`` and ``all_flows/`` with one
``<list path>.npy`` file of shape (32, D) per video and per stream.

Listing and reading are :class:`~vad.data.layouts.seed_npy.SeedNpy`'s; this module stacks
every video into the preloaded :class:`~vad.data.features.Splits` training uses."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np

from vad.data.features import FeatureSet, Splits, concat_streams
from vad.data.layouts.base import Entry
from vad.data.layouts.seed_npy import LISTS, STREAM_DIRS, SeedNpy, list_file  # noqa: F401 (API)
from vad.data.pooling import N_SEGMENTS

log = logging.getLogger(__name__)


def read_stream(layout: SeedNpy, stream: str, entries: list[Entry], expected_dim: int) -> np.ndarray:
    """Stack one stream's files into (N, 32, D), checking presence and shapes first."""
    folder = layout.folder(stream)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist: modality needs the {stream} stream, "
                                f"expected folder {STREAM_DIRS[stream]}/ under data.root={layout.root}")
    files = [layout.file(e, stream) for e in entries]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} of {len(files)} {stream} feature files are missing "
                                f"under {folder}, e.g. {missing[:3]}; check data.root and the lists")
    out = np.empty((len(entries), N_SEGMENTS, expected_dim), dtype=np.float32)
    for row, entry in enumerate(entries):
        out[row] = layout.read(entry, stream, dim=expected_dim)
    return out


def load(cfg, streams: tuple[str, ...], extractor_dim: int) -> Splits:
    """Reader for ``data=ucf_crime_npy`` (``data.root`` set by the user)."""
    if cfg.root is None:
        raise ValueError("data=ucf_crime_npy needs data.root=PATH (the folder holding all_rgbs/ "
                         "and all_flows/)")
    root = Path(str(cfg.root)).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"data.root={root} is not a folder")
    layout = SeedNpy(root)
    entries = layout.entries()
    train = [e.video for e in entries if e.split == "train"]
    test = [e.video for e in entries if e.split == "test"]
    duplicates = [p for p, c in Counter(v.path for v in train).items() if c > 1]
    if duplicates:
        log.warning("%d training videos are listed twice (kept, as the seed notebook reads them), "
                    "e.g. %s", len(duplicates), duplicates[:3])
    features = concat_streams([read_stream(layout, s, entries, extractor_dim) for s in streams])
    n = len(train)
    return Splits(FeatureSet(train, features[:n]), FeatureSet(test, features[n:]),
                  description=f"seed-notebook npy features from {root} ({'+'.join(streams)})")
