"""conf/hparams_search/optuna.yaml: the Optuna search composes into a search space over keys the
training config has, and a real tiny search through the CLI maximises the returned `best.auc`."""

from __future__ import annotations

import json
import math

import yaml
from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides
from omegaconf import OmegaConf
from optuna.distributions import (
    CategoricalDistribution,
    LogUniformDistribution,
    UniformDistribution,
)

from tests.conftest import ROOT, hydra_compose, run_cli
from vad.config import validate

OPTUNA_SWEEPER = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"


def test_optuna_search_composes_over_existing_keys(compose_cfg):
    cfg = hydra_compose(["hparams_search=optuna"])
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_ == OPTUNA_SWEEPER
    assert sweeper.direction == "maximize"
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler" and sweeper.sampler.seed is not None
    assert sweeper.study_name and sweeper.n_trials >= 10 and sweeper.n_jobs == 1
    # Trials are folders named by job number: the sampled floats would exceed the 255-byte name limit.
    assert OmegaConf.to_container(cfg.hydra.sweep)["subdir"] == "${hydra.job.num}"
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"

    params = {str(k): str(v) for k, v in sweeper.params.items()}
    assert {"optimizer.lr", "optimizer.weight_decay", "method.network.dropout", "method.loss.lambda_sparsity",
            "method.loss.lambda_smooth"} <= set(params)
    # Every searched key exists in the training config (a typo would only fail at the first trial).
    train_cfg = compose_cfg(["hparams_search=optuna"])
    validate(train_cfg)
    for key in params:
        assert OmegaConf.select(train_cfg, key, default=None) is not None, key

    # The plugin turns every entry into an Optuna distribution (none is a fixed value).
    space, fixed = create_params_from_overrides([f"{k}={v}" for k, v in params.items()])
    assert fixed == {} and set(space) == set(params)
    assert isinstance(space["optimizer.lr"], LogUniformDistribution)
    assert space["optimizer.lr"].low < train_cfg.optimizer.lr < space["optimizer.lr"].high
    assert isinstance(space["method.loss.lambda_sparsity"], LogUniformDistribution)
    assert isinstance(space["method.network.dropout"], UniformDistribution)
    assert 0.0 <= space["method.network.dropout"].low < space["method.network.dropout"].high < 1.0
    if "data.batch_size" in space:
        assert isinstance(space["data.batch_size"], CategoricalDistribution)
        assert train_cfg.data.batch_size in space["data.batch_size"].choices

    # Without the search, the default sweeper and folder names are unchanged.
    plain = hydra_compose([])
    assert plain.hydra.sweeper._target_ != OPTUNA_SWEEPER
    assert "override_dirname" in OmegaConf.to_container(plain.hydra.sweep)["subdir"]


def test_tiny_optuna_search_maximises_best_auc(cache_dir, tmp_path):
    sweep_dir = tmp_path / "sweep"
    proc = run_cli(["-m", "vad.train", "-m", "hparams_search=optuna", "hydra.sweeper.n_trials=2",
                    "data.fraction=0.05", "data.batch_size=5", "trainer.max_epochs=1", "logger=none",
                    "trainer.enable_progress_bar=false", f"hydra.sweep.dir={sweep_dir}"],
                   ROOT, cache_dir, timeout=600)
    assert proc.returncode == 0, f"STDOUT:\n{proc.stdout[-3000:]}\nSTDERR:\n{proc.stderr[-3000:]}"

    jobs = sorted(p.parent for p in sweep_dir.glob("*/metrics.json"))
    assert [p.name for p in jobs] == ["0", "1"]
    aucs, lrs = {}, {}
    for job in jobs:
        auc = json.loads((job / "metrics.json").read_text())["best"]["auc"]
        assert math.isfinite(auc)
        overrides = dict(o.split("=", 1) for o in yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text()))
        # Command-line values are fixed for every trial; the sampled ones reach the training config.
        assert overrides["data.batch_size"] == "5"
        resolved = yaml.safe_load((job / "config_resolved.yaml").read_text())
        assert resolved["data"]["batch_size"] == 5
        assert resolved["optimizer"]["lr"] == float(overrides["optimizer.lr"])
        assert resolved["method"]["network"]["dropout"] == float(overrides["method.network.dropout"])
        aucs[job.name], lrs[job.name] = auc, float(overrides["optimizer.lr"])
    assert len(set(lrs.values())) == 2, lrs

    results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert results["name"] == "optuna"
    assert abs(results["best_value"] - max(aucs.values())) < 1e-9
    best_job = max(aucs, key=aucs.get)
    assert results["best_params"]["optimizer.lr"] == lrs[best_job]
    assert "data.batch_size" not in results["best_params"]  # fixed on the command line
