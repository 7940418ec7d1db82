"""Preloaded 32-segment features of the train and test videos, shared by every reader."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from vad.constants import FIXED_DIMS
from vad.types import Video

if TYPE_CHECKING:  # torch is imported where tensors are built: vad.check reads data without it
    import torch


@dataclass
class FeatureSet:
    """Videos with their (N, 32, D) float32 features ((N, C, 32, D) for test videos whose C crops
    are scored apart and averaged), optional (N, 32) movement values and,
    for the snippets evaluation protocol, the unpooled snippet features of all videos
    concatenated, (sum of T, D), with each video's snippet count T."""

    videos: list[Video]
    features: torch.Tensor
    movement: torch.Tensor | None = None
    snippets: torch.Tensor | None = None
    snippet_counts: np.ndarray | None = None

    def __post_init__(self):
        if self.features.ndim not in (3, 4) or self.features.shape[0] != len(self.videos):
            raise ValueError(f"features must be (videos={len(self.videos)}, [crops,] segments, dim), "
                             f"found {tuple(self.features.shape)}")
        expected = (self.features.shape[0], self.features.shape[-2])
        if self.movement is not None and tuple(self.movement.shape) != expected:
            raise ValueError(f"movement must be {expected}, found {tuple(self.movement.shape)}")
        if self.snippets is not None and (self.snippet_counts is None or len(self.snippet_counts) != len(self.videos)
                                          or int(np.sum(self.snippet_counts)) != self.snippets.shape[0]):
            raise ValueError("snippet_counts must give one count per video summing to the snippet rows")

    @property
    def labels(self) -> np.ndarray:
        return np.array([v.label for v in self.videos], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.videos)


@dataclass
class Splits:
    """What a reader returns: train and test sets plus a description for the logs."""

    train: FeatureSet
    test: FeatureSet
    description: str
    synthetic: bool = False

    @property
    def feature_dim(self) -> int:
        return int(self.train.features.shape[-1])

    @property
    def has_movement(self) -> bool:
        return self.train.movement is not None and self.test.movement is not None


def stream_columns(streams, dim: int) -> tuple[list[int], list[int]]:
    """Widths and first columns of the streams concatenated in this order: the extractor's
    ``dim``, or a stream's own (``FIXED_DIMS``: AUDIO)."""
    widths = [FIXED_DIMS.get(s, dim) for s in streams]
    return widths, [sum(widths[:k]) for k in range(len(widths))]


def stack_streams(paths: list, chunk_rows: int = 64) -> torch.Tensor:
    """Concatenate per-stream ``.npy`` files (same leading shape) along the last axis into one
    float32 tensor, reading each file in row chunks: peak memory is the result plus one chunk
    (a memory map of the files would add their size to the resident set while copying)."""
    import torch

    headers = []
    for path in paths:
        with open(path, "rb") as fh:
            major, _ = np.lib.format.read_magic(fh)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(fh)
            headers.append((shape, fortran, dtype, fh.tell()))
    lead = headers[0][0][:-1]
    if any(h[0][:-1] != lead or h[1] or h[2] != np.float32 for h in headers):
        raise ValueError(f"cannot stack {[str(p) for p in paths]}: expected C-ordered float32 arrays "
                         f"with leading shape {lead}, found {[(h[0], str(h[2])) for h in headers]}")
    out = np.empty(lead + (sum(h[0][-1] for h in headers),), dtype=np.float32)
    offset = 0
    for path, (shape, _, dtype, data_start) in zip(paths, headers):
        width = shape[-1]
        row_size = int(np.prod(shape[1:]))
        with open(path, "rb") as fh:
            fh.seek(data_start)
            for start in range(0, shape[0], chunk_rows):
                rows = min(chunk_rows, shape[0] - start)
                block = np.fromfile(fh, dtype=dtype, count=rows * row_size).reshape((rows,) + shape[1:])
                out[start:start + rows, ..., offset:offset + width] = block
        offset += width
    return torch.from_numpy(out)


def make_splits(features: np.ndarray, train: list[Video], test: list[Video], description: str,
                movement: np.ndarray | None = None, **test_extra) -> Splits:
    """Splits from one (N, C, 32, D) array holding the train rows then the test rows.

    With C = 1 both sets are views of it. With C > 1 (every crop its own bag, as the RTFM
    family trains) each training crop becomes a bag of its video, by a reshape without copy,
    and test videos keep their crops, whose scores the model averages.
    """
    import torch

    n, crops = len(train), features.shape[1]
    tensor = torch.from_numpy(features)
    moves = torch.from_numpy(movement) if movement is not None else None
    if crops == 1:
        train_x, test_x = tensor[:n, 0], tensor[n:, 0]
        train_m = moves[:n] if moves is not None else None
    else:
        train_x, test_x = tensor[:n].reshape(n * crops, *tensor.shape[2:]), tensor[n:]
        train = [video for video in train for _ in range(crops)]
        train_m = moves[:n].repeat_interleave(crops, dim=0) if moves is not None else None
    return Splits(FeatureSet(train, train_x, train_m),
                  FeatureSet(test, test_x, moves[n:] if moves is not None else None, **test_extra),
                  description=description)
