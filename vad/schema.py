"""Types of ``python -m vad.train``'s configuration: structured configs (dataclasses) registered
in Hydra's ConfigStore, so that a wrong-typed value (``trainer.max_epochs=abc``,
``optimizer.lr=abc``) fails at composition, naming the key, the value and the expected type,
before any data are read.

The values live in ``conf/`` (with their comments); a field without a default here
(``MISSING``) takes its value from there. ``conf/train.yaml`` puts ``train_schema`` first in its
defaults list, and ``schema/<group>@<group>: ${<group>}`` types the ``data``, ``optimizer``
and ``scheduler`` groups, whose options have different keys: each option of those groups needs
a schema of the same name here. Ranges and rules across keys are checked by
``vad.config.validate``. Choices (``data.val_source``, ``method.inputs.bins``) stay strings: they
travel as plain values into checkpoints, metrics.json and TensorBoard.

Importing this module registers the schemas (``vad.config`` imports it, so ``vad.train`` does).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

# ------------------------------------------------------------------ groups with one set of keys


@dataclass
class ModalityConf:
    name: str = MISSING
    streams: List[str] = MISSING


@dataclass
class ExtractorConf:
    name: str = MISSING
    dim: int = MISSING


@dataclass
class InputsConf:
    """What a method trains on (``vad.pooling.Pooling`` plus the crop arrangement)."""

    segments: int = MISSING
    normalise: bool = MISSING
    bins: str = MISSING
    crops: str = MISSING


@dataclass
class MethodConf:
    """``conf/method/<name>.yaml``: ``network``, ``loss`` and ``module`` are ``_target_`` nodes
    whose keys are the classes' own arguments (checked when they are built)."""

    name: str = MISSING
    causal: bool = MISSING
    module: Any = field(default_factory=lambda: {"_target_": "vad.lit_module.MethodModule",
                                                 "_partial_": True})
    network: Any = MISSING
    loss: Any = MISSING
    inputs: InputsConf = field(default_factory=InputsConf)


@dataclass
class DatasetConf:
    name: str = MISSING
    headline: str = MISSING


@dataclass
class MovementConf:
    name: str = MISSING
    k: float = MISSING
    at_test: bool = MISSING


@dataclass
class LoggerConf:
    name: str = MISSING


@dataclass
class TrainerConf:
    """The ``pytorch_lightning.Trainer`` arguments the configs set, typed, with Lightning's own
    defaults (a key no config sets behaves as not passed). Any other Trainer argument is
    appended untyped: ``+trainer.precision=16-mixed``."""

    max_epochs: Optional[int] = None
    max_steps: int = -1
    accelerator: str = "auto"
    devices: Any = "auto"  # int, list of ids or "auto"
    deterministic: Any = None  # bool or "warn"
    log_every_n_steps: Optional[int] = None
    check_val_every_n_epoch: Optional[int] = 1
    num_sanity_val_steps: Optional[int] = None
    enable_progress_bar: Optional[bool] = None
    gradient_clip_val: Optional[float] = None


@dataclass
class EvalConf:
    protocol: str = MISSING
    pair_seed: int = MISSING
    timeline_videos: int = MISSING


@dataclass
class PathsConf:
    output_dir: str = MISSING


@dataclass
class TrainConf:
    """``conf/train.yaml``; ``data``, ``optimizer`` and ``scheduler`` are typed per option."""

    seed: int = MISSING
    threads: Optional[int] = MISSING
    ckpt_path: Optional[str] = MISSING
    eval: EvalConf = field(default_factory=EvalConf)
    paths: PathsConf = field(default_factory=PathsConf)
    dataset: DatasetConf = field(default_factory=DatasetConf)
    data: Any = MISSING
    modality: ModalityConf = field(default_factory=ModalityConf)
    extractor: ExtractorConf = field(default_factory=ExtractorConf)
    method: MethodConf = field(default_factory=MethodConf)
    optimizer: Any = MISSING
    scheduler: Any = MISSING
    movement: MovementConf = field(default_factory=MovementConf)
    trainer: TrainerConf = field(default_factory=TrainerConf)
    logger: LoggerConf = field(default_factory=LoggerConf)


# ------------------------------------------------------------------ data: one schema per option


@dataclass
class DataConf:
    """Keys of every data option; their values are in ``conf/data/shared/training.yaml``."""

    name: str = MISSING
    batch_size: int = MISSING
    eval_batch_size: int = MISSING
    val_source: str = MISSING
    holdout_fraction: float = MISSING


@dataclass
class SyntheticData(DataConf):
    seed: int = MISSING
    fraction: float = MISSING
    crops: int = MISSING
    cache_dir: str = MISSING


@dataclass
class StoreData(DataConf):
    path: Optional[str] = MISSING


@dataclass
class RootData(DataConf):
    root: Optional[str] = MISSING
    dedupe: bool = MISSING


@dataclass
class SultaniTxtData(RootData):
    train_list: Optional[str] = MISSING
    test_annotation: Optional[str] = MISSING


@dataclass
class CapstoneH5Data(SultaniTxtData):
    dataset: Optional[str] = MISSING


@dataclass
class PercropNpyData(SultaniTxtData):
    n_crops: int = MISSING
    crops: str = MISSING
    crop: int = MISSING


@dataclass
class TencropNpyData(PercropNpyData):
    test_list: Optional[str] = MISSING
    n_train_anomalous: int = MISSING
    n_test_anomalous: int = MISSING


@dataclass
class CropListData(RootData):
    """A benchmark's per-crop features found by name under ``root``, in list order
    (``sh_i3d``, ``xd_i3d``)."""

    train_list: Optional[str] = MISSING
    test_list: Optional[str] = MISSING
    crops: str = MISSING
    crop: int = MISSING


DATA = {"synthetic": SyntheticData, "store": StoreData, "ucf_crime_npy": RootData,
        "sultani_txt": SultaniTxtData, "capstone_h5": CapstoneH5Data,
        "percrop_npy": PercropNpyData, "tencrop_npy": TencropNpyData,
        "sh_i3d": CropListData, "xd_i3d": CropListData}


# ------------------------------------------------------------------ optimizer and scheduler
# torch's scalar hyperparameters of each class, with torch's defaults where conf/ sets none (so
# `optimizer.eps=1e-8` is typed for every optimizer); implementation switches (foreach, fused,
# ...) are left to torch.


@dataclass
class Target:
    _target_: str = MISSING
    _partial_: bool = MISSING


@dataclass
class Optimizer(Target):
    lr: float = MISSING
    weight_decay: float = MISSING


@dataclass
class Adagrad(Optimizer):
    lr_decay: float = 0.0
    initial_accumulator_value: float = 0.0
    eps: float = 1e-10


@dataclass
class Adam(Optimizer):
    eps: float = 1e-8
    amsgrad: bool = False


@dataclass
class Adadelta(Optimizer):
    rho: float = 0.9
    eps: float = 1e-6


@dataclass
class SGD(Optimizer):
    momentum: float = 0.0
    dampening: float = 0.0
    nesterov: bool = False


@dataclass
class MultiStepLR(Target):
    milestones: List[int] = MISSING
    gamma: float = MISSING


@dataclass
class CosineAnnealingLR(Target):
    T_max: int = MISSING
    eta_min: float = MISSING


@dataclass
class NoScheduler:
    """``scheduler=none``: no keys (an empty, falsy node)."""


OPTIMIZERS = {"adagrad": Adagrad, "adam": Adam, "adadelta": Adadelta, "sgd": SGD}
SCHEDULERS = {"multistep": MultiStepLR, "cosine": CosineAnnealingLR, "none": NoScheduler}


def register() -> None:
    """Store the schemas in Hydra's ConfigStore (idempotent)."""
    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainConf)
    for group, schemas in (("data", DATA), ("optimizer", OPTIMIZERS), ("scheduler", SCHEDULERS)):
        for name, node in schemas.items():
            store.store(group=f"schema/{group}", name=name, node=node)


register()
