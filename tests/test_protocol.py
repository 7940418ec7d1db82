"""The snippets evaluation protocol (RTFM family): one score per 16-frame snippet, x16 frames."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from tests.conftest import SMALL
from vad.config import validate
from vad.data.ucf_crime import catalogue
from vad.metrics import FrameTruth, frame_metrics
from vad.train import train
from vad.types import Video


def expand(videos, counts, scores):
    """Reference: each snippet score repeated 16 times, ground truth of T * 16 frames."""
    s, g = [], []
    for video, count, row in zip(videos, counts, scores):
        s.append(np.repeat(row[:count], 16))
        gt = np.zeros(count * 16)
        for start, end in video.spans:
            gt[start - 1:end] = 1
        g.append(gt)
    return np.concatenate(s), np.concatenate(g)


@pytest.mark.parametrize("rounding", [np.ceil, np.floor])
def test_snippet_metrics_equal_sklearn_on_frames(rounding):
    videos = list(catalogue()[1])
    counts = [int(rounding(v.frames / 16)) for v in videos]
    rng = np.random.default_rng(1)
    scores = np.zeros((len(videos), max(counts)))
    for row, count in enumerate(counts):
        scores[row, :count] = rng.random(count).round(2)
    truth = FrameTruth.from_snippets(videos, counts)
    metrics = frame_metrics(scores, truth, pair_seed=None)
    frames, labels = expand(videos, counts, scores)
    if rounding is np.ceil:
        assert len(frames) == 1_114_144  # length of the RTFM family's gt-ucf.npy
    assert metrics["auc"] == pytest.approx(roc_auc_score(labels, frames), abs=1e-9)
    assert metrics["ap"] == pytest.approx(average_precision_score(labels, frames), abs=1e-9)
    assert "paired_auc" not in metrics


def test_snippet_count_mismatch_names_video_expected_and_found():
    video = Video("Arson/Arson022_x264.mp4", "Arson", 8640, ((3500, 4000),))
    with pytest.raises(ValueError) as err:
        FrameTruth.from_snippets([video], [500])
    message = str(err.value)
    assert "Arson/Arson022_x264.mp4" in message and "8640 frames" in message
    assert "[540]" in message and "found 500" in message


def test_training_with_snippets_protocol(compose_cfg):
    result = train(compose_cfg(SMALL + ["trainer.max_epochs=2", "logger=none", "eval.protocol=snippets"]))
    assert result["best"]["protocol"] == "snippets"
    assert 0 <= result["best"]["auc"] <= 1 and "paired_auc" not in result["best"]


def test_snippets_protocol_refuses_movement_at_test(compose_cfg):
    cfg = compose_cfg(["eval.protocol=snippets", "movement=lk", "movement.at_test=true"])
    with pytest.raises(ValueError, match="movement.at_test=true needs eval.protocol=segments"):
        validate(cfg)


def test_snippet_scores_are_padded_per_video_in_order():
    """Snippet scores come in loader order (video after video); the evaluator lays them out as
    (videos, longest count) with zeros past each video's count."""
    from vad.evaluation import padded

    flat = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    np.testing.assert_array_equal(padded(flat, np.array([2, 3, 1])),
                                  [[1, 2, 0], [3, 4, 5], [6, 0, 0]])


def test_evaluator_refuses_snippets_without_snippet_features_or_with_movement():
    import torch

    from vad.data.features import FeatureSet
    from vad.evaluation import Evaluator

    videos = [Video("Arson/Arson022_x264.mp4", "Arson", 160, ((17, 80),)),
              Video("Normal/Normal_Videos_001_x264.mp4", "Normal", 160)]
    segments = FeatureSet(videos, torch.zeros(2, 32, 4))
    with pytest.raises(ValueError, match="eval.protocol=snippets needs per-snippet test features"):
        Evaluator(segments, protocol="snippets")
    snippets = FeatureSet(videos, torch.zeros(2, 32, 4), snippets=torch.zeros(20, 4),
                          snippet_counts=np.array([10, 10]))
    assert Evaluator(snippets, protocol="snippets").counts.tolist() == [10, 10]
    with pytest.raises(ValueError, match="movement.at_test=true needs eval.protocol=segments"):
        Evaluator(snippets, protocol="snippets", movement_k=0.5)
    with pytest.raises(ValueError, match="eval.protocol='frames': expected segments or snippets"):
        Evaluator(segments, protocol="frames")
