"""Frame-level metrics (vad.metrics) against an independent per-frame expansion + sklearn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from vad.constants import NORMAL
from vad.data.ucf_crime import catalogue
from vad.metrics import (
    FrameTruth,
    false_alarm_rate,
    frame_metrics,
    paired_auc,
    video_auc,
    weighted_ap,
    weighted_auc,
)
from vad.types import Video


# ---------------------------------------------------------------- reference expansion (seed loop)
def expand_video(video: Video, score: np.ndarray, tail: str = "last") -> tuple[np.ndarray, np.ndarray]:
    """The seed notebook's per-frame loop, written independently of vad.metrics."""
    frames = video.frames
    n = frames // 16
    step = np.round(np.linspace(0, n, 33))
    score_list = np.zeros(frames)
    for j in range(32):
        score_list[int(step[j]) * 16:int(step[j + 1]) * 16] = score[j]
    if tail == "last" and n > 0:
        for f in range(n * 16, frames):
            score_list[f] = score_list[n * 16 - 1]
    gt = np.zeros(frames)
    for s, e in video.spans:
        gt[s - 1:min(e, frames)] = 1
    return score_list, gt


def expand(videos, scores, tail="last"):
    s_all, g_all = [], []
    for video, score in zip(videos, scores):
        s, g = expand_video(video, score, tail)
        s_all.append(s)
        g_all.append(g)
    return np.concatenate(s_all), np.concatenate(g_all)


# ---------------------------------------------------------------- data
@pytest.fixture(scope="module")
def test_videos():
    return list(catalogue()[1])


@pytest.fixture(scope="module")
def real_scores(test_videos):
    rng = np.random.default_rng(0)
    return np.round(rng.random((len(test_videos), 32)), 2)  # 2 decimals -> many ties


@pytest.fixture(scope="module")
def real_expanded(test_videos, real_scores):
    return expand(test_videos, real_scores)


HAND_VIDEOS = [
    Video("Abuse/Abuse900_x264.mp4", "Abuse", 100, ((10, 50),)),           # 6 clips < 32: empty bins; 4 tail frames
    Video("Arrest/Arrest900_x264.mp4", "Arrest", 1000, ((1, 100), (900, 1200))),  # two spans, 2nd past the end
    Video("Arson/Arson900_x264.mp4", "Arson", 16, ((5, 12),)),             # exactly 16 frames
    Video("Explosion/Explosion900_x264.mp4", "Explosion", 512, ((512, 512),)),  # 32 clips, last frame only
    Video("Abuse/Abuse901_x264.mp4", "Abuse", 777, ((700, 777),)),          # span ends on last (tail) frame
    Video("Normal/Normal_Videos_900_x264.mp4", NORMAL, 1031),
    Video("Normal/Normal_Videos_901_x264.mp4", NORMAL, 517),
    Video("Normal/Normal_Videos_902_x264.mp4", NORMAL, 16),
    Video("Normal/Normal_Videos_903_x264.mp4", NORMAL, 40),
    Video("Normal/Normal_Videos_904_x264.mp4", NORMAL, 333),
    Video("Normal/Normal_Videos_905_x264.mp4", NORMAL, 2000),
]


@pytest.fixture
def hand_scores():
    rng = np.random.default_rng(1)
    return np.round(rng.random((len(HAND_VIDEOS), 32)), 1)


# ---------------------------------------------------------------- the reference itself
def test_reference_expansion_small_video():
    # 40 frames -> 2 clips; bins of clip edges round(linspace(0, 2, 33)); tail frames 32..39
    video = Video("Abuse/Abuse999_x264.mp4", "Abuse", 40, ((3, 20),))
    score = np.arange(32) / 100
    s, g = expand_video(video, score, "last")
    step = np.round(np.linspace(0, 2, 33))
    first = [j for j in range(32) if step[j] == 0 and step[j + 1] == 1][0]
    second = [j for j in range(32) if step[j] == 1 and step[j + 1] == 2][0]
    assert np.all(s[:16] == score[first]) and np.all(s[16:32] == score[second])
    assert np.all(s[32:] == score[second])
    assert g.sum() == 18 and g[2] == 1 and g[1] == 0 and g[19] == 1 and g[20] == 0
    s0, _ = expand_video(video, score, "zero")
    assert np.all(s0[32:] == 0)


# ---------------------------------------------------------------- weighted AUC / AP, real test set
def test_auc_real_test_set_equals_sklearn(test_videos, real_scores, real_expanded):
    truth = FrameTruth.from_videos(test_videos)
    s, g = real_expanded
    assert len(s) == 1_111_808
    assert weighted_auc(*truth.entries(real_scores)) == pytest.approx(roc_auc_score(g, s), abs=1e-9)


def test_ap_real_test_set_equals_sklearn(test_videos, real_scores, real_expanded):
    truth = FrameTruth.from_videos(test_videos)
    s, g = real_expanded
    assert weighted_ap(*truth.entries(real_scores)) == pytest.approx(
        average_precision_score(g, s), abs=1e-9)


def test_real_test_set_tail_zero_equals_sklearn(test_videos, real_scores):
    truth = FrameTruth.from_videos(test_videos)
    s, g = expand(test_videos, real_scores, "zero")
    entries = truth.entries(real_scores, tail="zero")
    assert weighted_auc(*entries) == pytest.approx(roc_auc_score(g, s), abs=1e-9)
    assert weighted_ap(*entries) == pytest.approx(average_precision_score(g, s), abs=1e-9)


def test_frame_truth_counts_real_test_set(test_videos, real_expanded):
    truth = FrameTruth.from_videos(test_videos)
    _, g = real_expanded
    assert truth.pos.shape == (290, 33)
    assert truth.neg.shape == (290, 33)
    assert truth.pos.sum() + truth.neg.sum() == 1_111_808
    assert truth.pos.sum() == g.sum()


def test_frame_metrics_real_test_set_without_expansion(test_videos, real_scores, real_expanded,
                                                       monkeypatch):
    truth = FrameTruth.from_videos(test_videos)
    assert truth.pos.shape == (290, 33)  # O(segments), not O(frames)

    def boom(*args, **kwargs):
        raise AssertionError("frame_metrics must not expand frames")

    monkeypatch.setattr(FrameTruth, "frame_arrays", boom)
    monkeypatch.setattr(np, "repeat", boom)
    out = frame_metrics(real_scores, truth)
    s, g = real_expanded
    assert out["auc"] == pytest.approx(roc_auc_score(g, s), abs=1e-9)
    assert out["ap"] == pytest.approx(average_precision_score(g, s), abs=1e-9)
    classes = sorted({v.cls for v in test_videos} - {NORMAL})
    assert len(classes) == 13
    assert {f"auc_{c}" for c in classes} <= set(out)


def test_per_class_auc_real_test_set(test_videos, real_scores):
    truth = FrameTruth.from_videos(test_videos)
    out = frame_metrics(real_scores, truth)
    for cls in ("Arrest", "Explosion", "RoadAccidents"):
        rows = [i for i, v in enumerate(test_videos) if v.cls in (cls, NORMAL)]
        s, g = expand([test_videos[i] for i in rows], real_scores[rows])
        assert out[f"auc_{cls}"] == pytest.approx(roc_auc_score(g, s), abs=1e-9), cls


# ---------------------------------------------------------------- hand-made videos
@pytest.mark.parametrize("tail", ["last", "zero"])
def test_auc_ap_hand_videos_equal_sklearn(hand_scores, tail):
    truth = FrameTruth.from_videos(HAND_VIDEOS)
    s, g = expand(HAND_VIDEOS, hand_scores, tail)
    entries = truth.entries(hand_scores, tail=tail)
    assert weighted_auc(*entries) == pytest.approx(roc_auc_score(g, s), abs=1e-9)
    assert weighted_ap(*entries) == pytest.approx(average_precision_score(g, s), abs=1e-9)


@pytest.mark.parametrize("index", range(len(HAND_VIDEOS)))
def test_frame_truth_per_video_counts(index):
    video = HAND_VIDEOS[index]
    truth = FrameTruth.from_videos([video])
    _, g = expand_video(video, np.zeros(32))
    assert truth.pos.sum() == g.sum()
    assert truth.neg.sum() == len(g) - g.sum()
    # tail column holds exactly the frames after the last full clip
    tail = video.frames - 16 * (video.frames // 16)
    assert truth.pos[0, 32] + truth.neg[0, 32] == tail


def test_single_video_auc_each_edge_case(hand_scores):
    # each anomalous hand video with one normal video, tail="last"
    normal = HAND_VIDEOS[5]
    for i, video in enumerate(HAND_VIDEOS[:5]):
        pair = [video, normal]
        sc = hand_scores[[i, 5]]
        s, g = expand(pair, sc)
        truth = FrameTruth.from_videos(pair)
        assert weighted_auc(*truth.entries(sc)) == pytest.approx(roc_auc_score(g, s), abs=1e-9), video


def test_distinct_scores_in_hand_videos_equal_sklearn():
    rng = np.random.default_rng(7)
    scores = rng.random((len(HAND_VIDEOS), 32))
    truth = FrameTruth.from_videos(HAND_VIDEOS)
    s, g = expand(HAND_VIDEOS, scores)
    assert weighted_auc(*truth.entries(scores)) == pytest.approx(roc_auc_score(g, s), abs=1e-9)
    assert weighted_ap(*truth.entries(scores)) == pytest.approx(average_precision_score(g, s), abs=1e-9)


def test_frame_arrays_match_expansion(hand_scores):
    truth = FrameTruth.from_videos(HAND_VIDEOS)
    s, y = truth.frame_arrays(hand_scores)
    total = sum(v.frames for v in HAND_VIDEOS)
    assert len(s) == len(y) == total
    ref_s, ref_g = expand(HAND_VIDEOS, hand_scores)
    # same multiset of (score, label) pairs as the reference expansion
    np.testing.assert_array_equal(np.sort(s[y == 1]), np.sort(ref_s[ref_g == 1]))
    np.testing.assert_array_equal(np.sort(s[y == 0]), np.sort(ref_s[ref_g == 0]))


def test_frame_arrays_real_length(test_videos, real_scores):
    truth = FrameTruth.from_videos(test_videos)
    s, y = truth.frame_arrays(real_scores)
    assert len(s) == len(y) == 1_111_808


# ---------------------------------------------------------------- hand cases for weighted_auc/ap
def test_weighted_auc_ties_half_credit():
    assert weighted_auc(np.array([0.5, 0.5]), np.array([1, 0])) == 0.5


def test_weighted_auc_hand_values():
    # positives 0.35, 0.8; negatives 0.1, 0.4: pairs (0.35>0.1) (0.35<0.4) (0.8>both) -> 3/4
    assert weighted_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == pytest.approx(0.75)
    # weighted: positives 0.3 (w 2), 0.7 (w 1); negatives 0.3 (w 1), 0.5 (w 3).
    # P = 3, N = 4; pos 0.3: 2 * (0 below + 0.5 * 1 tie) = 1; pos 0.7: 1 * 4 below = 4 -> 5 / 12
    scores = np.array([0.3, 0.7, 0.3, 0.5])
    labels = np.array([1, 1, 0, 0])
    weights = np.array([2.0, 1.0, 1.0, 3.0])
    assert weighted_auc(scores, labels, weights) == pytest.approx(5 / 12, abs=1e-12)
    assert roc_auc_score(labels, scores, sample_weight=weights) == pytest.approx(5 / 12, abs=1e-12)


def test_weighted_ap_hand_value():
    # sorted desc: 0.9(+), 0.8(-), 0.7(+), 0.1(-): AP = 0.5 * 1 + 0.5 * 2/3 = 5/6
    assert weighted_ap(np.array([0.9, 0.8, 0.7, 0.1]), np.array([1, 0, 1, 0])) == pytest.approx(5 / 6)


def test_zero_weight_entries_ignored():
    scores = np.array([0.2, 0.9, 0.4, 0.99])
    labels = np.array([1, 0, 0, 0])
    weights = np.array([1.0, 0.0, 1.0, 0.0])
    assert weighted_auc(scores, labels, weights) == 0.0


def test_weighted_auc_nan_when_one_class_absent():
    assert math.isnan(weighted_auc(np.array([0.1, 0.9]), np.array([1, 1])))
    assert math.isnan(weighted_auc(np.array([0.1, 0.9]), np.array([0, 0])))
    assert math.isnan(weighted_ap(np.array([0.1, 0.9]), np.array([0, 0])))


def test_with_tail_rejects_unknown_tail(hand_scores):
    truth = FrameTruth.from_videos(HAND_VIDEOS)
    with pytest.raises(ValueError):
        truth.entries(hand_scores, tail="first")


# ---------------------------------------------------------------- false alarm rate
def test_false_alarm_rate_vs_expansion(hand_scores):
    scores = hand_scores.copy()
    scores[5, :] = 0.5  # one normal video scored exactly at the threshold everywhere
    scores[6, ::2] = 0.5
    truth = FrameTruth.from_videos(HAND_VIDEOS)
    normal = [i for i, v in enumerate(HAND_VIDEOS) if v.cls == NORMAL]
    s, _ = expand([HAND_VIDEOS[i] for i in normal], scores[normal])
    expected = np.mean(s >= 0.5)
    assert 0 < expected < 1
    assert false_alarm_rate(scores, truth) == pytest.approx(expected, abs=1e-12)


def test_false_alarm_rate_exact_threshold_counts():
    videos = [Video("Normal/Normal_Videos_1_x264.mp4", NORMAL, 512),
              Video("Abuse/Abuse1_x264.mp4", "Abuse", 512, ((1, 512),))]
    scores = np.zeros((2, 32))
    scores[0, :8] = 0.5        # 8 of 32 equal segments of 16 frames -> 1/4 of normal frames
    scores[0, 8] = 0.4999999
    scores[1, :] = 1.0         # anomalous video must not count
    truth = FrameTruth.from_videos(videos)
    assert false_alarm_rate(scores, truth) == pytest.approx(0.25)


def test_false_alarm_rate_real_test_set(test_videos, real_scores):
    truth = FrameTruth.from_videos(test_videos)
    normal = [i for i, v in enumerate(test_videos) if v.cls == NORMAL]
    s, _ = expand([test_videos[i] for i in normal], real_scores[normal])
    assert false_alarm_rate(real_scores, truth) == pytest.approx(np.mean(s >= 0.5), abs=1e-12)


# ---------------------------------------------------------------- per-class AUC
def test_per_class_auc_hand_videos(hand_scores):
    truth = FrameTruth.from_videos(HAND_VIDEOS)
    out = frame_metrics(hand_scores, truth)
    classes = sorted({v.cls for v in HAND_VIDEOS} - {NORMAL})
    assert {k for k in out if k.startswith("auc_")} == {f"auc_{c}" for c in classes}
    for cls in classes:
        rows = [i for i, v in enumerate(HAND_VIDEOS) if v.cls in (cls, NORMAL)]
        s, g = expand([HAND_VIDEOS[i] for i in rows], hand_scores[rows])
        assert out[f"auc_{cls}"] == pytest.approx(roc_auc_score(g, s), abs=1e-9), cls


# ---------------------------------------------------------------- paired AUC (seed notebook)
def reference_paired_auc(videos, scores, seed):
    labels = np.array([int(v.cls != NORMAL) for v in videos])
    anomalous = [i for i in range(len(videos)) if labels[i] == 1]
    normal = np.random.default_rng(seed).permutation(np.flatnonzero(labels == 0))
    values = []
    for a, b in zip(anomalous, normal):
        sa, ga = expand_video(videos[a], scores[a], "zero")
        sb, gb = expand_video(videos[b], scores[b], "zero")
        values.append(roc_auc_score(np.concatenate([ga, gb]), np.concatenate([sa, sb])))
    return float(np.mean(values)), len(values)


@pytest.mark.parametrize("seed", [0, 3])
def test_paired_auc_hand_videos(hand_scores, seed):
    truth = FrameTruth.from_videos(HAND_VIDEOS)
    expected, pairs = reference_paired_auc(HAND_VIDEOS, hand_scores, seed)
    assert pairs == 5  # 5 anomalous, 6 normal: one normal dropped
    assert paired_auc(hand_scores, truth, seed) == pytest.approx(expected, abs=1e-9)


def test_paired_auc_more_anomalous_than_normal(hand_scores):
    videos = HAND_VIDEOS[:5] + HAND_VIDEOS[5:7]
    scores = hand_scores[:7]
    truth = FrameTruth.from_videos(videos)
    expected, pairs = reference_paired_auc(videos, scores, 11)
    assert pairs == 2
    assert paired_auc(scores, truth, 11) == pytest.approx(expected, abs=1e-9)


def test_paired_auc_real_test_set(test_videos, real_scores):
    truth = FrameTruth.from_videos(test_videos)
    expected, pairs = reference_paired_auc(test_videos, real_scores, 0)
    assert pairs == 140
    got = paired_auc(real_scores, truth, 0)
    assert got == pytest.approx(expected, abs=1e-9)
    assert frame_metrics(real_scores, truth, pair_seed=0)["paired_auc"] == pytest.approx(expected, abs=1e-9)


def test_paired_auc_depends_on_seed(test_videos, real_scores):
    truth = FrameTruth.from_videos(test_videos)
    assert paired_auc(real_scores, truth, 0) != paired_auc(real_scores, truth, 1)


# ---------------------------------------------------------------- video-level AUC
def test_video_auc_vs_sklearn(test_videos):
    rng = np.random.default_rng(5)
    scores = np.round(rng.random((len(test_videos), 32)), 2)
    labels = np.array([v.label for v in test_videos])
    top = np.array([max(row) for row in scores])
    assert video_auc(scores, labels) == pytest.approx(roc_auc_score(labels, top), abs=1e-12)


def test_video_auc_hand():
    scores = np.array([[0.1, 0.9], [0.2, 0.3], [0.8, 0.0]])
    labels = np.array([1, 0, 0])
    # maxima 0.9 (+), 0.3 (-), 0.8 (-): positive above both negatives -> 1.0
    assert video_auc(scores, labels) == 1.0
    assert video_auc(scores, np.array([0, 1, 0])) == 0.0
