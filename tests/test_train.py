"""Integration: real training on small synthetic data through ``train(cfg)``."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import SMALL
from vad.cli import UserError
from vad.evaluate import evaluate
from vad.train import train

LEARN = SMALL + ["modality=TWO", "optimizer=adam", "optimizer.lr=1e-3", "trainer.max_epochs=8"]


@pytest.fixture(scope="module")
def trained(cache_dir, tmp_path_factory):
    """One real training run shared by the tests that inspect its outputs."""
    import pytorch_lightning  # noqa: F401 - imported already, as in a long session: "setup" times the build alone

    from tests.conftest import make_cfg
    out = tmp_path_factory.mktemp("trained")
    result = train(make_cfg(LEARN, out))
    return result, out


def test_model_learns_well_above_chance(trained):
    result, _ = trained
    assert result["best"]["auc"] > 0.70
    assert result["best"]["paired_auc"] > 0.70
    assert 0 <= result["best"]["far"] <= 1


def test_metrics_json_has_last_and_best(trained):
    result, out = trained
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(result))
    assert on_disk["status"] == "finished" and on_disk["resumed_from"] is None
    assert on_disk["last"]["epoch"] == 7
    history = on_disk["history"]  # one record per epoch, the last one is `last`
    assert [h["epoch"] for h in history] == list(range(8))
    # The epoch lines log Lightning's float32 metrics; `last` is the final weights scored again.
    assert history[-1]["auc"] == pytest.approx(on_disk["last"]["auc"], abs=1e-6)
    assert history[-1]["far"] == pytest.approx(on_disk["last"]["far"], abs=1e-6)
    steps = [h["global_step"] for h in history]
    assert steps[0] > 0 and np.all(np.diff(steps) == steps[0])  # the same number of batches every epoch
    best = on_disk["best"]
    assert best["val_source"] == "test" and best["selection_metric"] == "test/auc"
    assert 0 <= best["epoch"] <= 7
    assert best["auc"] >= on_disk["last"]["auc"] - 1e-12  # chosen by test auc
    assert on_disk["synthetic"] is True and "SYNTHETIC" in on_disk["data"]
    for key in ("auc", "ap", "far", "paired_auc", "auc_Explosion"):
        assert key in best and key in on_disk["last"]
    timings = on_disk["timings_s"]
    assert set(timings) == {"load", "setup", "fit", "test"} and min(timings.values()) >= 0
    assert sum(timings.values()) <= on_disk["wall_time_s"] + 0.01
    assert timings["fit"] > timings["setup"]  # 8 epochs of training vs building the module


def test_run_folder_holds_every_artefact(trained):
    _, out = trained
    ckpts = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert "last.ckpt" in ckpts and any(name.startswith("epoch") for name in ckpts)
    assert (out / "config_resolved.yaml").read_text().count("modality:") == 1
    for name in ("roc", "pr", "timelines"):
        assert (out / "plots" / f"{name}.png").stat().st_size > 1000
    curve = np.load(out / "plots" / "roc.npz")
    # The saved ROC integrates (trapezoids, ties on the diagonal) to the reported AUC.
    area = float(np.sum(np.diff(curve["fpr"]) * (curve["tpr"][1:] + curve["tpr"][:-1]) / 2))
    assert area == pytest.approx(float(curve["auc"]), abs=1e-9)
    assert float(curve["auc"]) == pytest.approx(json.loads((out / "metrics.json").read_text())["best"]["auc"])
    assert list(out.glob("events.out.tfevents.*"))
    assert not list(out.rglob("*.tmp"))


def test_best_checkpoint_matches_reported_metrics(trained, compose_cfg):
    result, out = trained
    evaluated = evaluate(compose_cfg([f"ckpt_path={result['best']['checkpoint']}", "data.fraction=0.2"],
                                     config_name="evaluate"), overridden={"data"})
    assert evaluated["modality"] == "TWO"
    assert evaluated["metrics"]["auc"] == pytest.approx(result["best"]["auc"], abs=1e-9)
    assert evaluated["epoch"] == result["best"]["epoch"]


def test_evaluate_rejects_a_checkpoint_of_another_dimension(trained, compose_cfg):
    result, _ = trained
    cfg = compose_cfg([f"ckpt_path={result['best']['checkpoint']}", "modality=RGB"],
                      config_name="evaluate")
    with pytest.raises(ValueError, match="trained on 2048-d features") as err:
        evaluate(cfg, overridden={"modality"})
    assert "modality=RGB" in str(err.value) and "1024-d" in str(err.value)


def test_resume_continues_from_checkpoint(trained, compose_cfg, caplog):
    first_run, out = trained
    last = out / "checkpoints" / "last.ckpt"
    saved = torch.load(last, map_location="cpu", weights_only=False)
    assert saved["epoch"] == 7 and saved["global_step"] == first_run["history"][-1]["global_step"]
    with caplog.at_level(logging.INFO, logger="vad.train"):
        result = train(compose_cfg(LEARN + [f"ckpt_path={last}", "trainer.max_epochs=10", "logger=none"]))
    assert result["resumed_from"] == {"checkpoint": str(last), "epoch": 7, "global_step": saved["global_step"]}
    # The resumed run trains epochs 8 and 9 only (epoch lines count from 1), its steps continue.
    per_epoch = first_run["history"][0]["global_step"]
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert [line.split()[:4] for line in lines] == [
        ["epoch", "9/10", "step", str(saved["global_step"] + per_epoch)],
        ["epoch", "10/10", "step", str(saved["global_step"] + 2 * per_epoch)]]
    assert [h["epoch"] for h in result["history"]] == [8, 9]
    assert result["history"][0]["global_step"] > saved["global_step"]
    assert result["last"]["epoch"] == 9


def test_resume_of_a_finished_run_is_refused(trained, compose_cfg):
    _, out = trained
    last = out / "checkpoints" / "last.ckpt"  # epoch index 7: 8 epochs done
    for max_epochs in (8, 5):
        with pytest.raises(UserError) as err:
            train(compose_cfg(LEARN + [f"ckpt_path={last}", f"trainer.max_epochs={max_epochs}"]))
        assert str(err.value).startswith(f"ckpt_path={last} ended at epoch 8 (global step ")
        assert f"but trainer.max_epochs={max_epochs}: nothing is left to train; raise trainer.max_epochs " \
               f"above 8 to continue (e.g. trainer.max_epochs={8 + max_epochs})" in str(err.value)


def test_resume_from_a_file_that_is_no_checkpoint(compose_cfg, tmp_path):
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint at all")
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}, "epoch": 3, "hyper_parameters": {"lr": 0.1}}, foreign)
    for path, why in ((garbage, "(torch.load failed: "), (foreign, "(no hyper_parameters.run: not written by vad.train)")):
        cfg = compose_cfg(SMALL + [f"ckpt_path={path}"])
        with pytest.raises(UserError, match="not a vad checkpoint") as err:
            train(cfg)
        assert str(err.value).startswith(f"not a vad checkpoint: {path} {why}")


def test_runs_are_reproducible(compose_cfg, tmp_path):
    overrides = SMALL + ["trainer.max_epochs=2", "logger=none", "trainer.deterministic=true"]
    first = train(compose_cfg(overrides))["last"]["auc"]
    second = train(compose_cfg(overrides))["last"]["auc"]
    assert first == second


def test_train_holdout_selects_on_training_videos(compose_cfg):
    """The best epoch is the first argmax of holdout/video_auc over the epochs metrics.csv
    records, whatever test/auc did, and its checkpoint is that epoch's model."""
    cfg = compose_cfg(SMALL + ["data.val_source=train_holdout", "logger=csv"])
    result = train(cfg)
    with open(Path(cfg.paths.output_dir) / "metrics.csv", newline="") as fh:
        epochs = [row for row in csv.DictReader(fh) if row["holdout/video_auc"]]
    assert [int(row["epoch"]) for row in epochs] == [0, 1, 2, 3]
    holdout = np.array([float(row["holdout/video_auc"]) for row in epochs])
    assert [float(row["val/auc"]) for row in epochs] == list(holdout)
    best = result["best"]
    assert best["selection_metric"] == "holdout/video_auc"
    assert best["epoch"] == int(np.argmax(holdout))
    assert best["auc"] == pytest.approx(float(epochs[best["epoch"]]["test/auc"]), abs=1e-6)


def test_movement_lk_trains_and_changes_scores(compose_cfg):
    base = SMALL + ["trainer.max_epochs=2", "logger=none", "trainer.deterministic=true"]
    plain = train(compose_cfg(base))["last"]["auc"]
    moved = train(compose_cfg(base + ["movement=lk", "movement.k=0.5", "movement.at_test=true"]))
    assert np.isfinite(moved["last"]["auc"]) and moved["last"]["auc"] != plain


def test_all_pairs_loss_and_c3d_train(compose_cfg):
    result = train(compose_cfg(SMALL + ["trainer.max_epochs=1", "logger=none", "method.loss.pairing=all",
                                        "extractor=C3D", "data.fraction=0.05", "data.batch_size=5"]))
    assert np.isfinite(result["last"]["auc"])


def test_batch_larger_than_data_is_a_clear_error(compose_cfg):
    with pytest.raises(ValueError, match="data.batch_size=500 but only"):
        train(compose_cfg(SMALL + ["data.batch_size=500"]))


def test_resume_with_another_modality_is_refused(trained, compose_cfg):
    _, out = trained
    last = out / "checkpoints" / "last.ckpt"
    with pytest.raises(ValueError, match="has feature dimension 2048, but modality=RGB") as err:
        train(compose_cfg(SMALL + [f"ckpt_path={last}", "modality=RGB"]))
    assert str(last) in str(err.value)
