"""``vad.detection.calibration``: frame weights as vad.metrics expands segments, the far@
threshold against expanded frames, and a real training run storing the calibration in its best
and last checkpoints (still loadable for a resume; the metrics unchanged)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vad.detection.calibration import KEY, far_threshold, segment_frames
from vad.metrics import FrameTruth
from vad.types import Video


@pytest.mark.parametrize("frames", [16, 19, 35, 100, 512, 530, 1000, 7003])
def test_segment_frames_follow_the_metrics_expansion(frames):
    truth = FrameTruth.from_videos([Video("v.mp4", "Normal", frames)])
    expected = truth.neg[0, :32].copy()
    expected[truth.last[0]] += truth.neg[0, 32]  # tail frames take the last covered segment's score
    np.testing.assert_array_equal(segment_frames(frames), expected)
    assert segment_frames(frames).sum() == frames


def _hand_threshold(frame_scores: np.ndarray, far: float) -> float:
    """The smallest frame score t with mean(frames >= t) <= far, else just above the maximum."""
    for t in np.unique(frame_scores):
        if np.mean(frame_scores >= t) <= far:
            return float(t)
    return float(np.nextafter(frame_scores.max(), np.inf))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("far", [0.001, 0.01, 0.05, 0.3])
def test_far_threshold_against_expanded_frames(seed, far):
    rng = np.random.default_rng(seed)
    scores = np.round(rng.random(320), 2).astype(np.float32)  # ties on purpose
    weights = rng.integers(0, 40, 320)  # some segments have no frames
    calibration = {"segment_scores": torch.from_numpy(scores), "frame_weights": torch.from_numpy(weights)}
    frames = np.repeat(scores.astype(np.float64), weights)
    t = far_threshold(calibration, far)
    assert t == _hand_threshold(frames, far)
    assert np.mean(frames >= t) <= far
    below = frames[frames < t]
    if below.size:  # any lower threshold alarms on more than `far` of the frames
        assert np.mean(frames >= below.max()) > far


def test_far_threshold_above_every_score_when_the_top_frames_are_too_many():
    calibration = {"segment_scores": np.array([0.2, 0.8]), "frame_weights": np.array([90, 10])}
    t = far_threshold(calibration, 0.05)
    assert 0.8 < t < 0.8 + 1e-12
    with pytest.raises(ValueError, match="far@0: expected a false-alarm rate between 0 and 1"):
        far_threshold(calibration, 0)


def test_training_stores_the_calibration_in_best_and_last(compose_cfg):
    from vad.checkpoint import read
    from vad.data.loading import load_data
    from vad.evaluation import Evaluator, load_network, score_rows
    from vad.train import train

    overrides = ["data.fraction=0.05", "data.batch_size=5", "trainer.max_epochs=2", "logger=none",
                 "trainer.enable_progress_bar=false", "scheduler=none"]
    cfg = compose_cfg(overrides)
    result = train(cfg)
    splits = load_data(cfg)
    normal = [i for i, v in enumerate(splits.train.videos) if v.label == 0]
    best = read(result["best"]["checkpoint"])
    last_path = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    for checkpoint in (best, read(last_path)):
        calibration = checkpoint[KEY]
        learner = load_network(checkpoint)
        expected = score_rows(learner, splits.train.features[normal]).reshape(-1)
        assert calibration["videos"] == len(normal) and calibration["source"] == "normal training videos"
        np.testing.assert_allclose(np.asarray(calibration["segment_scores"]), expected, atol=1e-6)
        weights = np.asarray(calibration["frame_weights"]).reshape(len(normal), 32)
        assert weights.sum(axis=1).tolist() == [splits.train.videos[i].frames for i in normal]
        assert 0 < far_threshold(calibration, 0.01) <= 1
    # the metrics are those of the rewritten best checkpoint's learner
    evaluation = Evaluator.from_config(cfg, splits.test).run(load_network(best))
    assert evaluation.metrics["auc"] == pytest.approx(result["best"]["auc"], abs=1e-9)
    assert json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())["best"]["auc"] == result["best"]["auc"]
    # a resume still loads last.ckpt: Lightning's torch.load (weights_only by default) accepts the calibration
    assert KEY in torch.load(last_path, map_location="cpu", weights_only=True)
