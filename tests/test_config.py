"""Every config group option composes, wrong-typed values fail at composition (vad.schema), and
invalid settings fail with a clear message."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import torch
import yaml
from hydra.errors import ConfigCompositionException
from omegaconf import MISSING, OmegaConf

from tests.conftest import CONF, ROOT, run_cli
from vad.config import input_dim, validate
from vad.schema import DATA, OPTIMIZERS, SCHEDULERS, TrainerConf


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_groups_have_the_documented_options():
    assert options("modality") == ["AUDIO", "FLOW", "RGB", "RGB_AUDIO", "TWO"]
    assert options("dataset") == ["shanghaitech", "ucf_crime", "xd_violence"]
    assert options("method") == ["bnwvad", "mil", "rtfm", "topk_mil", "urdmu"]
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
    assert cfg.data.batch_size == 30 and cfg.method.network.dropout == 0.6 and cfg.method.name == "mil"
    assert cfg.method.loss.lambda_sparsity == pytest.approx(8e-5) and cfg.method.loss.lambda_smooth == pytest.approx(8e-5)
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
    ("method.inputs.bins=ceil", "method.inputs.bins='ceil'"),
    ("method.inputs.crops=stack", "method.inputs.crops='stack'"),
    ("method.inputs.segments=0", "method.inputs.segments=0"),
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



# ------------------------------------------------------------------ types (vad.schema)

def composition_error(compose_cfg, overrides: list[str]) -> str:
    """Hydra's message and its cause (what the CLI prints)."""
    with pytest.raises(ConfigCompositionException) as err:
        compose_cfg(overrides)
    return f"{err.value}\n{err.value.__cause__}"


@pytest.mark.parametrize("overrides,key,value,expected", [
    (["trainer.max_epochs=abc"], "trainer.max_epochs", "'abc'", "Integer"),
    (["seed=abc"], "seed", "'abc'", "Integer"),
    (["optimizer.lr=abc"], "optimizer.lr", "'abc'", "Float"),
    (["data.batch_size=x"], "data.batch_size", "'x'", "Integer"),
    (["method.inputs.segments=many"], "method.inputs.segments", "'many'", "Integer"),
    (["movement=lk", "movement.k=abc"], "movement.k", "'abc'", "Float"),
    (["movement=lk", "movement.at_test=maybe"], "movement.at_test", "'maybe'", "bool"),
    (["threads=true"], "threads", "'True'", "Integer"),
    (["eval.pair_seed=1.5"], "eval.pair_seed", "'1.5'", "Integer"),
    (["extractor.dim=big"], "extractor.dim", "'big'", "Integer"),
    (["method.inputs.normalise=maybe"], "method.inputs.normalise", "'maybe'", "bool"),
    (["data=tencrop_npy", "data.crop=x"], "data.crop", "'x'", "Integer"),
    (["data=ucf_crime_npy", "data.dedupe=often"], "data.dedupe", "'often'", "bool"),
    (["optimizer=sgd", "optimizer.momentum=fast"], "optimizer.momentum", "'fast'", "Float"),
    (["scheduler=cosine", "scheduler.T_max=x"], "scheduler.T_max", "'x'", "Integer"),
    (["scheduler=multistep", "scheduler.milestones=[a]"], "scheduler.milestones", "'a'", "Integer"),
])
def test_wrong_typed_values_fail_at_composition(compose_cfg, overrides, key, value, expected):
    message = composition_error(compose_cfg, overrides)
    assert f"full_key: {key}" in message and f"Value {value}" in message and expected in message


def test_every_option_of_the_per_option_groups_has_a_schema():
    assert sorted(DATA) == options("data")
    assert sorted(OPTIMIZERS) == options("optimizer")
    assert sorted(SCHEDULERS) == options("scheduler")


@pytest.mark.parametrize("option", sorted(OPTIMIZERS))
def test_optimizer_schema_defaults_are_torchs(compose_cfg, option):
    schema = OPTIMIZERS[option]
    signature = inspect.signature(getattr(torch.optim, schema.__name__)).parameters
    for f in dataclasses.fields(schema):
        if not f.name.startswith("_"):
            assert f.name in signature, f"{option}: {f.name} is no argument of torch.optim.{schema.__name__}"
            if f.default is not MISSING:
                assert f.default == signature[f.name].default, (option, f.name)
    cfg = compose_cfg([f"optimizer={option}"])
    assert set(cfg.optimizer) == {f.name for f in dataclasses.fields(schema)}


def test_trainer_schema_defaults_are_lightnings(compose_cfg):
    import pytorch_lightning as pl

    signature = inspect.signature(pl.Trainer).parameters
    for f in dataclasses.fields(TrainerConf):
        assert f.name in signature and f.default == signature[f.name].default, f.name
    # Any other Trainer argument is still accepted, appended with +.
    assert compose_cfg(["+trainer.precision=16-mixed"]).trainer.precision == "16-mixed"
    assert "+trainer.precision=32" in composition_error(compose_cfg, ["trainer.precision=32"])


# configuration of every data option as it was before the shared keys moved to one file
SHARED = {"batch_size": 30, "eval_batch_size": 512, "val_source": "test", "holdout_fraction": 0.1}
LISTS = {"train_list": None, "test_annotation": None}
CROPS = {"n_crops": 10, "crops": "mean", "crop": 0}
DATA_VALUES = {
    "synthetic": {"name": "synthetic", "seed": 0, "fraction": 1.0, "crops": 1, **SHARED},
    "store": {"name": "store", "path": None, **SHARED},
    "ucf_crime_npy": {"name": "ucf_crime_npy", "root": None, "dedupe": False, **SHARED},
    "sultani_txt": {"name": "sultani_txt", "root": None, "dedupe": False, **LISTS, **SHARED},
    "capstone_h5": {"name": "capstone_h5", "root": None, "dedupe": False, "dataset": None, **LISTS,
                    **SHARED},
    "percrop_npy": {"name": "percrop_npy", "root": None, "dedupe": False, **LISTS, **CROPS, **SHARED},
    "tencrop_npy": {"name": "tencrop_npy", "root": None, "dedupe": False, **LISTS, **CROPS,
                    "test_list": None, "n_train_anomalous": 810, "n_test_anomalous": 140, **SHARED},
    "sh_i3d": {"name": "sh_i3d", "root": None, "dedupe": False, "train_list": None, "test_list": None,
               "crops": "mean", "crop": 0, **SHARED},
    "xd_i3d": {"name": "xd_i3d", "root": None, "dedupe": False, "train_list": None, "test_list": None,
               "crops": "mean", "crop": 0, **SHARED},
}


@pytest.mark.parametrize("option", options("data"))
def test_data_options_keep_their_keys_and_values(compose_cfg, cache_dir, option):
    data = OmegaConf.to_container(compose_cfg([f"data={option}"]).data, resolve=True)
    if option == "synthetic":
        assert data.pop("cache_dir") == str(cache_dir)
    assert data == DATA_VALUES[option]
    # the shared keys are written once, in conf/data/shared/training.yaml
    assert not set(SHARED) & set(yaml.safe_load((CONF / "data" / f"{option}.yaml").read_text()))
    assert yaml.safe_load((CONF / "data" / "shared" / "training.yaml").read_text()) == SHARED


def test_cli_refuses_a_wrong_typed_value_before_reading_data(tmp_path):
    cache, run = tmp_path / "cache", tmp_path / "run"
    cache.mkdir()
    proc = run_cli(["-m", "vad.train", "trainer.max_epochs=abc", f"hydra.run.dir={run}"], ROOT, cache,
                   timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "trainer.max_epochs" in proc.stderr and "'abc'" in proc.stderr and "Integer" in proc.stderr
    assert "Traceback" not in output
    written = [p.relative_to(run) for p in run.rglob("*") if p.is_file()] if run.exists() else []
    assert all(p.parts[0] == ".hydra" for p in written), written
    assert not any(cache.iterdir())  # no synthetic data generated or read
