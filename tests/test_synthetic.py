"""Built-in synthetic UCF-Crime (``data=synthetic``): splits, features, caching, signal.

Only small fractions are generated here (full size takes tens of seconds)."""

from __future__ import annotations

import logging
import os
import re
import time

import numpy as np
import pytest
from omegaconf import OmegaConf
from sklearn.metrics import roc_auc_score

from vad.data import synthetic
from vad.data.loading import load_data
from vad.data.ucf_crime import catalogue
from vad.metrics import FrameTruth

FRACTION = 0.05
TINY = 0.01  # about 20 videos: for tests that generate into their own cache


def _cfg(cache, fraction=FRACTION, seed=0):
    return OmegaConf.create({"seed": seed, "fraction": fraction, "crops": 1, "cache_dir": str(cache)})


def _files(cache):
    return sorted(os.listdir(cache)) if os.path.isdir(cache) else []


@pytest.fixture(scope="module")
def loaded(cache_dir):
    """TWO, RGB and FLOW at fraction 0.05 in the session cache (streams generated once)."""
    cfg = _cfg(cache_dir)
    two = synthetic.load(cfg, ("RGB", "FLOW"), "I3D", 1024)
    rgb = synthetic.load(cfg, ("RGB",), "I3D", 1024)
    flow = synthetic.load(cfg, ("FLOW",), "I3D", 1024)
    return {"TWO": two, "RGB": rgb, "FLOW": flow}


def _segment_truth(videos):
    """(N, 32) bool: segment holds at least one annotated anomalous frame."""
    return FrameTruth.from_videos(videos).pos[:, :32] > 0


# --- splits -----------------------------------------------------------------------------------

def test_split_composition(loaded):
    splits = loaded["RGB"]
    train_cat, test_cat = catalogue()
    assert splits.synthetic is True and "SYNTHETIC" in splits.description
    for data, cat in ((splits.train, train_cat), (splits.test, test_cat)):
        labels = data.labels
        assert set(labels.tolist()) == {0, 1}
        for y in (0, 1):
            wanted = FRACTION * sum(v.label == y for v in cat)
            assert abs((labels == y).sum() - wanted) <= 1
        assert len({v.path for v in data.videos}) == len(data)

    test_cat_set = set(test_cat)
    assert all(v in test_cat_set for v in splits.test.videos)  # same path, frames and spans
    anomalous = [v for v in splits.test.videos if v.label]
    assert anomalous and all(v.spans for v in anomalous)
    assert not any(v.spans for v in splits.test.videos if not v.label)

    by_path = {v.path: v for v in train_cat}
    for v in splits.train.videos:
        assert v.spans == ()  # hidden from the learner
        assert by_path[v.path].frames == v.frames and by_path[v.path].cls == v.cls


def test_select_full_and_stratified():
    train_cat, test_cat = catalogue()
    np.testing.assert_array_equal(synthetic.select(train_cat, 1.0, 0, 0), np.arange(1610))
    np.testing.assert_array_equal(synthetic.select(test_cat, 1.0, 0, 1610), np.arange(1610, 1900))
    for fraction in (0.001, 0.01, 0.05, 0.3, 0.9):
        for cat, offset in ((train_cat, 0), (test_cat, len(train_cat))):
            rows = synthetic.select(cat, fraction, 0, offset)
            assert np.all(np.diff(rows) > 0)  # catalogue order, no repeats
            assert rows.min() >= offset and rows.max() < offset + len(cat)
            labels = {cat[i - offset].label for i in rows}
            assert labels == {0, 1}, (fraction, offset)


def test_bad_fraction_is_named(tmp_path):
    for fraction in (0, 1.5):
        with pytest.raises(ValueError, match=r"data\.fraction"):
            synthetic.load(_cfg(tmp_path, fraction), ("RGB",), "I3D", 1024)
    assert not list(tmp_path.glob("*.npy"))


def test_unknown_extractor(tmp_path):
    with pytest.raises(ValueError, match="extractor"):
        synthetic.load(_cfg(tmp_path, TINY), ("RGB",), "CLIP", 512)


# --- features ---------------------------------------------------------------------------------

def test_features_look_like_pooled_relu_features(loaded):
    for name in ("RGB", "FLOW"):
        splits = loaded[name]
        for data in (splits.train, splits.test):
            f = data.features.numpy()
            assert f.shape == (len(data), 32, 1024) and f.dtype == np.float32
            assert np.all(f >= 0)
            assert (f == 0).mean() > 0.4
            np.testing.assert_allclose(np.linalg.norm(f, axis=2), 1.0, atol=1e-5)


def test_two_streams_concatenate_rgb_then_flow(loaded):
    two, rgb, flow = loaded["TWO"], loaded["RGB"], loaded["FLOW"]
    for split in ("train", "test"):
        t = getattr(two, split).features.numpy()
        assert t.shape[2] == 2048
        np.testing.assert_allclose(np.linalg.norm(t, axis=2), np.sqrt(2), atol=1e-5)
        assert np.array_equal(t[:, :, :1024], getattr(rgb, split).features.numpy())
        assert np.array_equal(t[:, :, 1024:], getattr(flow, split).features.numpy())
        assert [v.path for v in getattr(two, split).videos] == [v.path for v in getattr(rgb, split).videos]


def test_streams_differ(loaded):
    rgb, flow = loaded["RGB"].train.features.numpy(), loaded["FLOW"].train.features.numpy()
    for row in range(len(rgb)):
        assert not np.array_equal(rgb[row], flow[row])


def test_c3d_is_4096_d(tmp_path):
    splits = synthetic.load(_cfg(tmp_path, TINY), ("RGB",), "C3D", 4096)
    f = splits.test.features.numpy()
    assert f.shape == (len(splits.test), 32, 4096)
    assert np.all(f >= 0) and (f == 0).mean() > 0.4
    np.testing.assert_allclose(np.linalg.norm(f, axis=2), 1.0, atol=1e-5)
    assert [p for p in _files(tmp_path) if "C3D" in p] and not [p for p in _files(tmp_path) if "I3D" in p]


# --- determinism ------------------------------------------------------------------------------

def test_same_seed_same_data_in_another_cache(tmp_path):
    a = synthetic.load(_cfg(tmp_path / "a", TINY), ("RGB",), "I3D", 1024)
    b = synthetic.load(_cfg(tmp_path / "b", TINY), ("RGB",), "I3D", 1024)
    assert a.train.videos == b.train.videos and a.test.videos == b.test.videos
    assert np.array_equal(a.train.features.numpy(), b.train.features.numpy())
    assert np.array_equal(a.test.features.numpy(), b.test.features.numpy())
    assert np.array_equal(a.test.movement.numpy(), b.test.movement.numpy())

    other = synthetic.load(_cfg(tmp_path / "c", TINY, seed=1), ("RGB",), "I3D", 1024)
    assert not np.array_equal(a.test.features.numpy(), other.test.features.numpy())
    assert not np.array_equal(a.train.features.numpy(), other.train.features.numpy())


def test_a_video_is_the_same_in_any_subset(loaded, tmp_path):
    big = loaded["RGB"]
    small = synthetic.load(_cfg(tmp_path, 0.02), ("RGB",), "I3D", 1024)
    assert len(small.train) < len(big.train)
    for split in ("train", "test"):
        rows = {v.path: i for i, v in enumerate(getattr(big, split).videos)}
        common = [(rows[v.path], j) for j, v in enumerate(getattr(small, split).videos) if v.path in rows]
        assert common, split
        for i, j in common:
            assert np.array_equal(getattr(big, split).features[i].numpy(),
                                  getattr(small, split).features[j].numpy())
            assert np.array_equal(getattr(big, split).movement[i].numpy(),
                                  getattr(small, split).movement[j].numpy())


# --- caching ----------------------------------------------------------------------------------

def test_cache_holds_only_requested_streams_and_is_reused(tmp_path, monkeypatch):
    first = synthetic.load(_cfg(tmp_path, TINY), ("RGB",), "I3D", 1024)
    files = _files(tmp_path)
    assert all(f.endswith(".npy") for f in files), files
    assert not [f for f in files if "tmp" in f]
    assert len([f for f in files if "I3D1024-RGB" in f]) == 1
    assert len([f for f in files if "movement" in f]) == 1
    assert not [f for f in files if "FLOW" in f or "C3D" in f]
    mtimes = {f: os.stat(tmp_path / f).st_mtime_ns for f in files}

    def boom(*args, **kwargs):
        raise AssertionError("regenerated a cached file")

    monkeypatch.setattr(synthetic, "generate_stream", boom)
    monkeypatch.setattr(synthetic, "generate_movement", boom)
    again = synthetic.load(_cfg(tmp_path, TINY), ("RGB",), "I3D", 1024)
    assert np.array_equal(first.train.features.numpy(), again.train.features.numpy())
    assert np.array_equal(first.test.movement.numpy(), again.test.movement.numpy())
    assert {f: os.stat(tmp_path / f).st_mtime_ns for f in _files(tmp_path)} == mtimes


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    def fail(layouts, indices, seed, extractor, stream, out, pooling, dataset, classes):
        out[0] = 1.0  # something already written to the temp file
        raise RuntimeError("interrupted")

    monkeypatch.setattr(synthetic, "generate_stream", fail)
    with pytest.raises(RuntimeError, match="interrupted"):
        synthetic.load(_cfg(tmp_path, TINY), ("RGB", "FLOW"), "I3D", 1024)
    files = _files(tmp_path)
    assert not [f for f in files if f.endswith(".npy") or f.endswith(".tmp")], files
    monkeypatch.undo()
    # The next load generates normally.
    splits = synthetic.load(_cfg(tmp_path, TINY), ("RGB",), "I3D", 1024)
    assert np.linalg.norm(splits.test.features.numpy(), axis=2).min() > 0.99


# --- signal -----------------------------------------------------------------------------------

def test_anomalous_segments_stand_out_within_their_video(loaded):
    """Without training: within each anomalous test video, segments in the annotated span lie
    farther from the video's normal segments than those normal segments do."""
    test = loaded["TWO"].test
    features = test.features.numpy().astype(np.float64)
    inside = _segment_truth(test.videos)
    aucs, gaps = [], []
    for i, video in enumerate(test.videos):
        if not video.label or inside[i].sum() == 0 or (~inside[i]).sum() < 2:
            continue
        centre = features[i][~inside[i]].mean(axis=0)
        distance = np.linalg.norm(features[i] - centre, axis=1)
        aucs.append(roc_auc_score(inside[i], distance))
        gaps.append(distance[inside[i]].mean() - distance[~inside[i]].mean())
    assert len(aucs) >= 3
    assert np.mean(aucs) > 0.75, aucs
    assert np.mean(np.array(gaps) > 0) >= 0.7, gaps


def test_movement_rises_in_anomalies(loaded):
    splits = loaded["RGB"]
    for data in (splits.train, splits.test):
        m = data.movement.numpy()
        assert m.shape == (len(data), 32) and np.all(m > 0)
    test = splits.test
    m = test.movement.numpy()
    inside = _segment_truth(test.videos)
    gaps = [m[i][inside[i]].mean() - m[i][~inside[i]].mean()
            for i, v in enumerate(test.videos) if v.label and inside[i].any() and (~inside[i]).any()]
    assert len(gaps) >= 3
    assert np.mean(gaps) > 0 and np.mean(np.array(gaps) > 0) >= 0.7, gaps


# --- logs -------------------------------------------------------------------------------------

def test_load_data_warns_synthetic(compose_cfg, caplog):
    cfg = compose_cfg([f"data.fraction={FRACTION}"])
    assert cfg.data.name == "synthetic"
    with caplog.at_level(logging.WARNING):
        splits = load_data(cfg)
    assert splits.synthetic
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("SYNTHETIC" in m for m in warnings), warnings


def _generation_lines(caplog, what: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "vad.data.synthetic" and r.getMessage().startswith(f"generating {what}")]


def test_generation_logs_progress(tmp_path, monkeypatch, caplog):
    n = len(synthetic.select(catalogue()[0], TINY, 0, 0)) + len(synthetic.select(catalogue()[1], TINY, 0, 1610))
    what = "synthetic I3D RGB features"
    monkeypatch.setattr(synthetic, "PROGRESS_EVERY_S", 0.0)  # a line per video
    with caplog.at_level(logging.INFO, logger="vad.data.synthetic"):
        synthetic.load(_cfg(tmp_path, TINY), ("RGB",), "I3D", 1024)
    lines = _generation_lines(caplog, what)
    assert lines[0] == f"generating {what} for {n} videos (once: later runs read the cache)"
    done = [re.fullmatch(rf"generating {what}: (\d+)/{n} videos, \d+ s", line) for line in lines[1:]]
    assert all(done) and [int(m.group(1)) for m in done] == list(range(1, n + 1)), lines

    # The default rate: a line every PROGRESS_EVERY_S seconds and the last one.
    monkeypatch.undo()
    caplog.clear()
    started = time.perf_counter()
    with caplog.at_level(logging.INFO, logger="vad.data.synthetic"):
        synthetic.load(_cfg(tmp_path, TINY), ("FLOW",), "I3D", 1024)
    seconds = time.perf_counter() - started
    lines = _generation_lines(caplog, "synthetic I3D FLOW features")
    assert lines[-1].startswith(f"generating synthetic I3D FLOW features: {n}/{n} videos, ")
    assert 2 <= len(lines) <= 2 + seconds / synthetic.PROGRESS_EVERY_S, lines
    # Read from the cache: nothing generated, nothing logged.
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="vad.data.synthetic"):
        synthetic.load(_cfg(tmp_path, TINY), ("RGB", "FLOW"), "I3D", 1024)
    assert _generation_lines(caplog, "") == []


def test_stack_streams_reads_files_in_chunks(tmp_path):
    from vad.data.features import stack_streams

    rng = np.random.default_rng(0)
    a = rng.random((10, 4, 3), dtype=np.float32)
    b = rng.random((10, 4, 5), dtype=np.float32)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    stacked = stack_streams([tmp_path / "a.npy", tmp_path / "b.npy"], chunk_rows=3)
    np.testing.assert_array_equal(stacked.numpy(), np.concatenate([a, b], axis=2))
    np.save(tmp_path / "c.npy", rng.random((9, 4, 5), dtype=np.float32))
    with pytest.raises(ValueError, match=r"c\.npy.*leading shape \(10, 4\)"):
        stack_streams([tmp_path / "a.npy", tmp_path / "c.npy"])
