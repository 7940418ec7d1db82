"""Feature readers; each returns :class:`~vad.data.features.Splits` for a ``data`` config."""

from __future__ import annotations

from vad.data import npy_layout, synthetic
from vad.data.features import Splits


def load_splits(data_cfg, streams: tuple[str, ...], extractor: str, extractor_dim: int,
                snippets: bool = False) -> Splits:
    """Dispatch on ``data.name``; ``snippets`` asks for the test videos' snippet features too."""
    if data_cfg.name == "synthetic":
        return synthetic.load(data_cfg, streams, extractor, extractor_dim, snippets)
    if data_cfg.name == "ucf_crime_npy":
        return npy_layout.load(data_cfg, streams, extractor_dim)
    raise ValueError(f"unknown data.name {data_cfg.name!r}: expected synthetic or ucf_crime_npy")
