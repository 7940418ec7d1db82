"""Checks of a composed config that its schema (``vad.schema``: types) cannot express: ranges,
choices and rules across keys, with actionable messages."""

from __future__ import annotations

import logging

from omegaconf import DictConfig

from vad.data.datasets import LAYOUT_DATASETS
from vad.data.features import stream_columns
from vad.pooling import Pooling
from vad import schema  # noqa: F401 - registers train.yaml's schemas before @hydra.main composes
from vad.constants import CROP_INPUTS, N_SEGMENTS, PROTOCOLS, STREAMS, VAL_SOURCES

log = logging.getLogger(__name__)


def input_dim(cfg: DictConfig) -> int:
    """Network input size: the streams' dimensions summed (the extractor's, 128 for AUDIO)."""
    return sum(stream_columns(cfg.modality.streams, int(cfg.extractor.dim))[0])


def validate(cfg: DictConfig) -> None:
    """Raise ``ValueError`` naming the option, the value found and what is allowed."""
    problems = []
    if cfg.data.val_source not in VAL_SOURCES:
        problems.append(f"data.val_source={cfg.data.val_source!r}: expected one of {VAL_SOURCES}")
    if not 0 < cfg.data.holdout_fraction < 1:
        problems.append(f"data.holdout_fraction={cfg.data.holdout_fraction}: expected 0 < x < 1")
    if cfg.data.batch_size < 1:
        problems.append(f"data.batch_size={cfg.data.batch_size}: expected >= 1")
    expected = LAYOUT_DATASETS.get(cfg.data.name)
    if expected and cfg.dataset.name != expected:
        problems.append(f"data={cfg.data.name} holds {expected} features, but dataset={cfg.dataset.name}: "
                        f"drop dataset= (data={cfg.data.name} selects dataset={expected})")
    inputs = cfg.method.inputs
    try:
        Pooling.of(inputs)
    except ValueError as err:
        problems.append(str(err))
    if inputs.crops not in CROP_INPUTS:
        problems.append(f"method.inputs.crops={inputs.crops!r}: expected one of {CROP_INPUTS}")
    if cfg.movement.name != "none" and cfg.method.name != "mil":
        problems.append(f"movement={cfg.movement.name} adds the movement term to MIL's segment scores, "
                        f"but method={cfg.method.name}: use method=mil, or movement=none")
    elif cfg.movement.name != "none" and inputs.segments != N_SEGMENTS:
        problems.append(f"movement={cfg.movement.name} has {N_SEGMENTS} values per video, but "
                        f"method.inputs.segments={inputs.segments}: use {N_SEGMENTS} segments")
    if cfg.movement.k < 0:
        problems.append(f"movement.k={cfg.movement.k}: expected >= 0")
    if cfg.movement.name == "none" and (cfg.movement.k != 0 or cfg.movement.at_test):
        problems.append("movement.k / movement.at_test are set but movement=none: add movement=lk")
    if cfg.eval.protocol not in PROTOCOLS:
        problems.append(f"eval.protocol={cfg.eval.protocol!r}: expected one of {PROTOCOLS}")
    elif cfg.eval.protocol == "snippets" and cfg.movement.at_test:
        problems.append("movement.at_test=true needs eval.protocol=segments (movement values are "
                        "per segment)")
    if cfg.threads is not None and cfg.threads < 1:
        problems.append(f"threads={cfg.threads}: expected null or >= 1")
    max_epochs = cfg.trainer.max_epochs
    if max_epochs is not None and max_epochs < 1:
        problems.append(f"trainer.max_epochs={max_epochs}: expected >= 1")
    if max_epochs is not None and cfg.scheduler and "milestones" in cfg.scheduler:
        late = [m for m in cfg.scheduler.milestones if m >= max_epochs]
        if late:
            log.warning("scheduler.milestones %s are not below trainer.max_epochs=%s: they never "
                        "apply in this run", list(late), max_epochs)
    unknown = set(cfg.modality.streams) - set(STREAMS)
    if unknown:
        problems.append(f"modality.streams has {sorted(unknown)}: expected some of {', '.join(STREAMS)}")
    if problems:
        raise ValueError("invalid configuration:\n  - " + "\n  - ".join(problems))


def check_dim(found: int, expected: int, where: str, cfg: DictConfig) -> None:
    """Features or a checkpoint whose dimension disagrees with modality x extractor."""
    if found != expected:
        raise ValueError(
            f"{where} has feature dimension {found}, but modality={cfg.modality.name} with "
            f"extractor={cfg.extractor.name} expects {expected} "
            f"({' + '.join(map(str, stream_columns(cfg.modality.streams, int(cfg.extractor.dim))[0]))} for "
            f"{'+'.join(cfg.modality.streams)}); pick the modality and "
            "extractor the features were made with")
