"""The features a command's config names (``data``, ``modality``, ``extractor``, ``movement``,
``eval.protocol``), checked against each other; shared by ``vad.train`` and ``vad.evaluate``."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from omegaconf import DictConfig

from vad.config import check_dim, input_dim
from vad.data import load_splits

if TYPE_CHECKING:
    from vad.data.features import Splits

log = logging.getLogger(__name__)

SYNTHETIC_BANNER = "#" * 78


def load_data(cfg: DictConfig, need_train: bool = True) -> Splits:
    """Read the configured features and check them against modality x extractor
    (``need_train=False``: a store of test videos only will do)."""
    streams = tuple(cfg.modality.streams)
    splits = load_splits(cfg.data, streams, cfg.extractor.name, int(cfg.extractor.dim),
                         snippets=cfg.eval.protocol == "snippets", need_train=need_train)
    check_dim(splits.feature_dim, input_dim(cfg), f"data={cfg.data.name}", cfg)
    if cfg.movement.name != "none" and not splits.has_movement:
        raise ValueError(f"movement={cfg.movement.name} needs movement values, but data={cfg.data.name} "
                         "has none: use movement=none, or features prepared with movement values")
    if splits.synthetic:
        log.warning("\n%s\n# USING %s\n# Numbers from this run say nothing about real videos; set "
                    "data=... data.root=... for real features.\n%s",
                    SYNTHETIC_BANNER, splits.description, SYNTHETIC_BANNER)
    else:
        log.info("data: %s", splits.description)
    return splits
