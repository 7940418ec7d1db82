"""Preloaded 32-segment features of the train and test videos, shared by every reader."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vad.data.ucf_crime import Video

STREAMS = ("RGB", "FLOW")


@dataclass
class FeatureSet:
    """Videos with their (N, 32, D) float32 features, optional (N, 32) movement values and,
    for the snippets evaluation protocol, the unpooled snippet features of all videos
    concatenated, (sum of T, D), with each video's snippet count T."""

    videos: list[Video]
    features: torch.Tensor
    movement: torch.Tensor | None = None
    snippets: torch.Tensor | None = None
    snippet_counts: np.ndarray | None = None

    def __post_init__(self):
        if self.features.ndim != 3 or self.features.shape[0] != len(self.videos):
            raise ValueError(f"features must be (videos={len(self.videos)}, segments, dim), "
                             f"found {tuple(self.features.shape)}")
        if self.movement is not None and self.movement.shape != self.features.shape[:2]:
            raise ValueError(f"movement must be {tuple(self.features.shape[:2])}, "
                             f"found {tuple(self.movement.shape)}")
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


def concat_streams(parts: list[np.ndarray]) -> torch.Tensor:
    """Concatenate per-stream (N, S, D) arrays into one tensor with a single copy (TWO)."""
    n, s = parts[0].shape[:2]
    out = np.empty((n, s, sum(p.shape[2] for p in parts)), dtype=np.float32)
    offset = 0
    for part in parts:
        out[:, :, offset:offset + part.shape[2]] = part
        offset += part.shape[2]
    return torch.from_numpy(out)
