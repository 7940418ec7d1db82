"""MILModule on hand-built data: what it scores (crop means, the movement term) and what
``val/auc`` means under each ``val_source``, checked against hand computations and sklearn."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from vad.constants import NORMAL
from vad.data.features import FeatureSet, Splits
from vad.evaluation import Evaluator, subset
from vad.types import Video

DIM, SEGMENTS, CROPS = 6, 32, 3
LOSS = {"margin": 1.0, "lambda_sparsity": 8e-5, "lambda_smooth": 8e-5, "pairing": "elementwise"}
OPTIMIZER = {"_target_": "torch.optim.Adagrad", "_partial_": True, "lr": 0.01}


def videos(n: int, split: str) -> list[Video]:
    """n anomalous then n normal videos of 40 clips; anomalous ones annotated on frames 101-300."""
    return ([Video(f"Arson/Arson{split}{i}_x264.mp4", "Arson", 640, ((101, 300),)) for i in range(n)]
            + [Video(f"Normal/Normal_{split}{i}_x264.mp4", NORMAL, 640) for i in range(n)])


def splits(test_crops: int = 0, seed: int = 0) -> Splits:
    """Anomalous videos have a larger first feature; movement values per segment; test videos
    with ``test_crops`` crops each when > 0."""
    rng = np.random.default_rng(seed)
    train, test = videos(8, "train"), videos(4, "test")

    def features(vs, crops=0):
        x = rng.random((len(vs), *((crops,) if crops else ()), SEGMENTS, DIM), dtype=np.float32)
        x[[v.label == 1 for v in vs], ..., 0] += 1.0
        return torch.from_numpy(x)

    move = lambda vs: torch.from_numpy(rng.random((len(vs), SEGMENTS), dtype=np.float32) + 0.5)  # noqa: E731
    return Splits(FeatureSet(train, features(train), move(train)),
                  FeatureSet(test, features(test, test_crops), move(test)), "hand-built")


def module(evaluator: Evaluator | None = None, movement_k: float = 0.0):
    from vad.lit_module import MILModule

    torch.manual_seed(0)
    return MILModule(DIM, {"_target_": "vad.models.learner.Learner", "dropout": 0.0},
                     {"_target_": "vad.losses.mil_ranking.MILRankingLoss", **LOSS}, OPTIMIZER, None,
                     movement_k=movement_k, evaluator=evaluator)


def by_hand(learner, x: torch.Tensor) -> torch.Tensor:
    """The Learner's layers applied with explicit matrix products: (..., D) -> (...)."""
    first, second, third = (layer for layer in learner.net if isinstance(layer, torch.nn.Linear))
    h = torch.relu(x @ first.weight.T + first.bias)
    h = h @ second.weight.T + second.bias
    return torch.sigmoid(h @ third.weight.T + third.bias).squeeze(-1)


@pytest.mark.parametrize("val_source", ["test", "train_holdout"])
def test_val_auc_is_the_selection_metric(val_source):
    """val/auc is test/auc with val_source=test and holdout/video_auc with train_holdout; the
    hold-out's video AUC is sklearn's on the max segment score of the held-out videos."""
    import pytorch_lightning as pl

    from vad.datamodule import MILDataModule

    data = splits()
    dm = MILDataModule(data, batch_size=3, eval_batch_size=4, val_source=val_source,
                       holdout_fraction=0.25, seed=0)
    holdout = subset(data.train, dm.holdout_rows) if val_source == "train_holdout" else None
    model = module(Evaluator(data.test, holdout=holdout))
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, accelerator="cpu")
    trainer.fit(model, datamodule=dm)
    logged = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if val_source == "test":
        assert "holdout/video_auc" not in logged
        assert logged["val/auc"] == logged["test/auc"]
    else:
        held = dm.holdout_rows
        assert len(held) == 4  # a quarter of each label's 8 training videos
        with torch.no_grad():
            top = by_hand(model.network.eval(), data.train.features[held]).max(dim=1).values
        expected = roc_auc_score(data.train.labels[held], top.numpy())
        assert logged["holdout/video_auc"] == pytest.approx(expected, abs=1e-6)
        assert logged["val/auc"] == logged["holdout/video_auc"]
        assert "test/auc" in logged


def test_test_scores_are_the_mean_over_crops():
    """A (B, C, 32, D) test batch scores each crop and averages: validation's collected scores
    equal the mean over crops of the learner applied to each crop by hand."""
    data = splits(test_crops=CROPS)
    model = module(Evaluator(data.test)).eval()
    x = data.test.features
    assert x.shape == (8, CROPS, SEGMENTS, DIM)
    with torch.no_grad():
        model.validation_step((x,), 0)
        expected = torch.stack([by_hand(model.network, x[:, c]) for c in range(CROPS)]).mean(dim=0)
    collected = model._scores[0][0]
    assert collected.shape == (8, SEGMENTS)
    torch.testing.assert_close(collected, expected, rtol=0, atol=1e-6)
    # Not the score of the mean feature: the learner is not linear.
    assert not torch.allclose(collected, by_hand(model.network, x.mean(dim=1)), atol=1e-4)
    # The plain-torch evaluation scores the same.
    np.testing.assert_allclose(model.evaluator.run(model.network).scores, expected.numpy(), atol=1e-6)


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_movement_is_added_in_training_and_at_test_only_when_asked():
    data = splits()
    k = 0.5
    x, m = data.train.features[:3], data.train.movement[:3]
    seen = []

    class Recorder(torch.nn.Module):
        def forward(self, anomalous, normal):
            seen.append((anomalous, normal))
            return anomalous.sum()

    model = module(Evaluator(data.test), movement_k=k).eval()
    model.criterion = Recorder()
    with torch.no_grad():
        model.training_step({"anomalous": (x, m), "normal": (x[:2], m[:2])}, 0)
        plain = by_hand(model.network, x)
    torch.testing.assert_close(seen[0][0], plain + k * m, rtol=0, atol=1e-6)
    torch.testing.assert_close(seen[0][1], plain[:2] + k * m[:2], rtol=0, atol=1e-6)

    # Evaluation without movement.at_test: the batch's movement values are ignored.
    with torch.no_grad():
        model.validation_step((x, m), 0)
    torch.testing.assert_close(model._scores.pop(0)[0], plain, rtol=0, atol=1e-6)

    # movement.at_test: the evaluator adds k times the movement values given with the batch.
    model.evaluator = Evaluator(data.test, movement_k=k)
    with torch.no_grad():
        model.validation_step((x, m), 0)
    torch.testing.assert_close(model._scores.pop(0)[0], plain + k * m, rtol=0, atol=1e-6)


def test_evaluator_from_config_adds_movement_only_at_test():
    from omegaconf import OmegaConf

    data = splits()
    cfg = lambda at_test: OmegaConf.create({"eval": {"protocol": "segments", "pair_seed": 3},  # noqa: E731
                                             "movement": {"k": 0.25, "at_test": at_test}})
    assert Evaluator.from_config(cfg(False), data.test).movement_k == 0.0
    at_test = Evaluator.from_config(cfg(True), data.test)
    assert at_test.movement_k == 0.25 and at_test.pair_seed == 3 and at_test.selection_metric == "test/auc"
