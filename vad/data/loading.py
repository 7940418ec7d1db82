"""The features a command's config names (``data``, ``modality``, ``extractor``, ``movement``,
``eval.protocol``), checked against each other; shared by ``vad.train`` and ``vad.evaluate``;
and the test videos' ground truth from an annotations CSV (``vad.evaluate annotations=FILE``)."""

from __future__ import annotations

import logging
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig

from vad.cli import UserError

from vad.config import check_dim, input_dim
from vad.constants import NORMAL
from vad.data import load_splits
from vad.pooling import Pooling
from vad.types import Video

if TYPE_CHECKING:
    from vad.data.features import Splits

log = logging.getLogger(__name__)

SYNTHETIC_BANNER = "#" * 78


def load_data(cfg: DictConfig, need_train: bool = True) -> Splits:
    """Read the configured features and check them against modality x extractor
    (``need_train=False``: a store of test videos only will do)."""
    streams = tuple(cfg.modality.streams)
    splits = load_splits(cfg.data, streams, cfg.extractor.name, int(cfg.extractor.dim),
                         snippets=cfg.eval.protocol == "snippets", need_train=need_train,
                         pooling=Pooling.of(cfg.method.inputs), dataset=cfg.dataset.name)
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


def annotate(splits: Splits, path, data_cfg) -> Splits:
    """``splits`` whose test videos named in the annotations CSV ``path`` have its spans (they
    replace the data's own; such a video of class Normal becomes class ``Anomaly``); the other
    test videos keep theirs. Times in seconds use the fps that a store made by ``vad.extract``
    records per video (:mod:`vad.data.annotations_csv` has the format and its rules)."""
    from vad.data.annotations_csv import VideoFacts, parse, spans_of
    from vad.data.layouts.videos import ANOMALY

    path = Path(path).expanduser()
    rows = parse(path)
    fps = {}
    if data_cfg.name == "store":
        from vad.data.store import video_fps

        fps = video_fps(data_cfg.path)
    test = splits.test.videos

    def names(videos):  # what a row may call a video: its path or its file stem
        return {key for v in videos for key in (v.path, v.name)}

    test_names, train_names = names(test), names(splits.train.videos)
    for row in rows:
        called = {row.video, Path(row.video).name.split(".")[0]}
        if not called & test_names and called & train_names:
            raise UserError(f"{path}:{row.line}: video {row.video!r} is a training video of "
                            f"{splits.description} (labelled by its folder); annotations are for test "
                            "videos: put it under a test/ folder (labels.test) and extract again, or "
                            "drop the row")
    spans = spans_of(rows, path, {v.path: VideoFacts(v.frames, fps.get(v.path)) for v in test})
    videos = [Video(v.path, ANOMALY if v.cls == NORMAL else v.cls, v.frames, spans[v.path])
              if v.path in spans else v for v in test]
    log.info("annotations %s: %d intervals on %d of %d test videos (%d anomalous frames)", path,
             sum(len(s) for s in spans.values()), len(spans), len(test),
             sum(e - s + 1 for spans_ in spans.values() for s, e in spans_))
    return dataclasses.replace(splits, test=dataclasses.replace(splits.test, videos=videos))
