"""conf/experiment/*: every experiment composes with its documented values; the capstone sweep
runs for real."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import CONF, ROOT, hydra_compose, run_cli
from vad.config import input_dim, validate

VARIANTS = {"c3d_rgb": ("C3D", "RGB", "none"), "c3d_flow": ("C3D", "FLOW", "none"),
            "c3d_rgb_movement": ("C3D", "RGB", "lk"), "i3d_rgb": ("I3D", "RGB", "none"),
            "i3d_rgb_movement": ("I3D", "RGB", "lk")}


def sweep(overrides: list[str]) -> dict[str, list[str]]:
    params = hydra_compose(overrides).hydra.sweeper.params or {}
    return {k: str(v).split(",") for k, v in params.items()}


def test_every_experiment_file_composes_and_validates(compose_cfg):
    names = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
    assert {"capstone", "sultani2018", "modality_extractor", "movement_k", "seed_notebook"} <= set(names)
    for name in names:
        validate(compose_cfg([f"experiment={name}"]))


def test_sultani2018_has_the_papers_settings(compose_cfg):
    cfg = compose_cfg(["experiment=sultani2018"])
    assert (cfg.extractor.name, cfg.modality.name, cfg.movement.name) == ("C3D", "RGB", "none")
    assert input_dim(cfg) == 4096
    assert cfg.optimizer._target_ == "torch.optim.Adagrad"
    assert cfg.optimizer.lr == pytest.approx(0.01) and cfg.optimizer.eps == pytest.approx(1e-8)
    assert cfg.optimizer.weight_decay == pytest.approx(2e-3)  # Keras l2(0.001) -> 2 * 0.001
    assert not cfg.scheduler
    assert cfg.method.name == "mil" and cfg.method.loss.pairing == "all" and cfg.method.loss.margin == 1.0
    assert cfg.method.loss.lambda_sparsity == pytest.approx(8e-5)
    assert cfg.method.loss.lambda_smooth == pytest.approx(8e-5)
    assert cfg.method.network.dropout == pytest.approx(0.6) and cfg.data.batch_size == 30
    assert cfg.trainer.max_steps == 20000 and cfg.trainer.max_epochs >= 20000 // 26
    assert sweep(["experiment=sultani2018"]) == {}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_capstone_variants(compose_cfg, variant):
    cfg = compose_cfg(["experiment=capstone", f"variant={variant}"])
    assert (cfg.extractor.name, cfg.modality.name, cfg.movement.name) == VARIANTS[variant]
    assert cfg.movement.k == (0.5 if VARIANTS[variant][2] == "lk" else 0.0)
    assert "variant" not in cfg  # a _global_ delta: no key of its own
    alone = compose_cfg([f"+variant={variant}"])  # without the experiment: appended with +
    assert (alone.extractor.name, alone.modality.name, alone.movement.name) == VARIANTS[variant]


def test_capstone_default_and_sweep(compose_cfg):
    cfg = compose_cfg(["experiment=capstone"])
    assert (cfg.extractor.name, cfg.modality.name, cfg.movement.name) == VARIANTS["c3d_rgb"]
    assert sweep(["experiment=capstone"]) == {"variant": list(VARIANTS)}


def test_modality_extractor_and_movement_k_sweeps(compose_cfg):
    assert sweep(["experiment=modality_extractor"]) == {"modality": ["RGB", "FLOW", "TWO"],
                                                        "extractor": ["C3D", "I3D"]}
    assert sweep(["experiment=movement_k"]) == {"movement.k": ["0.1", "0.25", "0.5", "1.0"]}
    cfg = compose_cfg(["experiment=movement_k"])
    assert cfg.movement.name == "lk"


def test_capstone_sweep_runs_five_models(cache_dir, tmp_path):
    proc = run_cli(["-m", "vad.train", "-m", "experiment=capstone", "data.fraction=0.05",
                    "data.batch_size=5", "trainer.max_epochs=1", "logger=none",
                    "trainer.enable_progress_bar=false", f"hydra.sweep.dir={tmp_path}/sweep"],
                   ROOT, cache_dir, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = {p.parent.name: json.loads(p.read_text()) for p in (tmp_path / "sweep").glob("*/metrics.json")}
    assert len(jobs) == 5
    by_variant = {name.rsplit("variant=", 1)[1]: m for name, m in jobs.items()}
    assert set(by_variant) == set(VARIANTS)
    for variant, metrics in by_variant.items():
        assert (metrics["extractor"], metrics["modality"]) == VARIANTS[variant][:2]
        resolved = (Path(metrics["run_dir"]) / "config_resolved.yaml").read_text()
        assert f"name: {VARIANTS[variant][2]}" in resolved.split("movement:", 1)[1]


def test_sultani2018_trains_for_max_steps(compose_cfg):
    from vad.train import train

    cfg = compose_cfg(["experiment=sultani2018", "data.fraction=0.1", "data.batch_size=5", "trainer.max_steps=3",
                       "logger=none", "trainer.enable_progress_bar=false"])
    train(cfg)
    metrics = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert metrics["extractor"] == "C3D" and metrics["last"]["epoch"] == 0  # 3 steps < one epoch
