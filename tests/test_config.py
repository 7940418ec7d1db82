"""Every config group option composes, and invalid settings fail with a clear message."""

from __future__ import annotations

import pytest
import torch
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from tests.conftest import CONF
from vad.config import input_dim, validate


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_groups_have_the_documented_options():
    assert options("modality") == ["FLOW", "RGB", "TWO"]
    assert options("extractor") == ["C3D", "I3D", "I3D_R50"]
    assert options("optimizer") == ["adadelta", "adagrad", "adam", "sgd"]
    assert options("scheduler") == ["cosine", "multistep", "none"]
    assert options("movement") == ["lk", "none"]
    assert options("logger") == ["csv", "none", "tensorboard"]
    assert {"synthetic", "ucf_crime_npy"} <= set(options("data"))


def test_defaults_match_the_seed_notebook(compose_cfg):
    cfg = compose_cfg([])
    assert cfg.optimizer._target_ == "torch.optim.Adagrad"
    assert cfg.optimizer.lr == pytest.approx(1e-3) and cfg.optimizer.weight_decay == pytest.approx(1e-3)
    assert list(cfg.scheduler.milestones) == [25, 50]
    assert cfg.trainer.max_epochs == 75 and cfg.trainer.accelerator == "auto"
    assert cfg.data.batch_size == 30 and cfg.model.dropout == 0.6
    assert cfg.loss.lambda_sparsity == pytest.approx(8e-5) and cfg.loss.lambda_smooth == pytest.approx(8e-5)
    assert cfg.data.name == "synthetic" and cfg.movement.name == "none"


@pytest.mark.parametrize("modality,extractor,dim", [
    ("RGB", "I3D", 1024), ("FLOW", "I3D", 1024), ("TWO", "I3D", 2048),
    ("RGB", "C3D", 4096), ("FLOW", "C3D", 4096), ("TWO", "C3D", 8192)])
def test_input_dim_is_derived(compose_cfg, modality, extractor, dim):
    assert input_dim(compose_cfg([f"modality={modality}", f"extractor={extractor}"])) == dim


@pytest.mark.parametrize("group", ["optimizer", "scheduler", "movement", "logger", "data", "modality",
                                   "extractor"])
def test_every_option_composes_and_validates(compose_cfg, group):
    for option in options(group):
        cfg = compose_cfg([f"{group}={option}"])
        validate(cfg)
        resolved = OmegaConf.to_container(cfg, resolve=True)
        assert resolved[group] is not None


@pytest.mark.parametrize("option", options("optimizer"))
def test_optimizers_instantiate(compose_cfg, option):
    import hydra
    cfg = compose_cfg([f"optimizer={option}"])
    optimizer = hydra.utils.instantiate(cfg.optimizer)([torch.nn.Parameter(torch.zeros(2))])
    assert type(optimizer).__name__.lower() == option


@pytest.mark.parametrize("option,expected", [("multistep", "MultiStepLR"), ("cosine", "CosineAnnealingLR")])
def test_schedulers_instantiate(compose_cfg, option, expected):
    import hydra
    cfg = compose_cfg([f"scheduler={option}"])
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    assert type(hydra.utils.instantiate(cfg.scheduler)(optimizer)).__name__ == expected


def test_scheduler_none_is_empty(compose_cfg):
    assert not compose_cfg(["scheduler=none"]).scheduler


def test_unknown_key_fails(compose_cfg):
    with pytest.raises(ConfigCompositionException, match="lerning_rate"):
        compose_cfg(["optimizer.lerning_rate=0.1"])


def test_unknown_option_fails(compose_cfg):
    with pytest.raises(ConfigCompositionException, match="modality"):
        compose_cfg(["modality=DEPTH"])


@pytest.mark.parametrize("override,message", [
    ("data.val_source=val", "data.val_source='val'"),
    ("loss.pairing=some", "loss.pairing='some'"),
    ("model.dropout=1.5", "model.dropout=1.5"),
    ("movement.k=0.5", "movement=none"),
    ("trainer.max_epochs=0", "trainer.max_epochs=0"),
    ("data.holdout_fraction=1.0", "data.holdout_fraction"),
])
def test_invalid_values_name_the_option(compose_cfg, override, message):
    cfg = compose_cfg([override])
    with pytest.raises(ValueError, match="invalid configuration") as err:
        validate(cfg)
    assert message in str(err.value)


def test_movement_lk_has_capstone_default(compose_cfg):
    cfg = compose_cfg(["movement=lk"])
    validate(cfg)
    assert cfg.movement.k == 0.5 and cfg.movement.at_test is False


def test_experiment_slot_applies_a_global_delta(compose_cfg):
    cfg = compose_cfg(["experiment=seed_notebook"])
    assert cfg.modality.name == "TWO" and cfg.extractor.name == "I3D"
    assert cfg.optimizer._target_ == "torch.optim.Adagrad" and cfg.trainer.max_epochs == 75

