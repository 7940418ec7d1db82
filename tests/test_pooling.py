"""Sultani segment pooling (vad.pooling) against a plain loop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vad.pooling import pool_segments, segment_bounds

SIZES = [1, 3, 16, 31, 32, 33, 100, 1000]
SAMPLE = Path(__file__).parent / "data" / "sultani_c3d_samples" / "Explosion008_x264.txt"


def loop_pool(clips, n_segments=32, normalise=True):
    n = clips.shape[0]
    edges = [int(round(x)) for x in np.round(np.linspace(0, n, n_segments + 1))]
    out = []
    for i in range(n_segments):
        start, end = edges[i], edges[i + 1]
        if end > start:
            acc = np.zeros(clips.shape[1])
            for k in range(start, end):
                acc += clips[k]
            seg = acc / (end - start)
        else:
            seg = clips[min(start, n - 1)].astype(np.float64)
        if normalise:
            norm = np.sqrt(sum(float(v) ** 2 for v in seg))
            if norm > 0:
                seg = seg / norm
        out.append(seg)
    return np.array(out)


@pytest.mark.parametrize("n", SIZES)
def test_segment_bounds(n):
    b = segment_bounds(n)
    assert b.shape == (33,)
    assert b[0] == 0 and b[-1] == n
    assert np.all(np.diff(b) >= 0)
    expected = np.round(np.linspace(0, n, 33))
    np.testing.assert_array_equal(b, expected.astype(int))


def test_segment_bounds_hand():
    # n = 2: linspace(0, 2, 33)[j] = j / 16; round-half-even: j = 8 -> 0.5 -> 0, j = 24 -> 1.5 -> 2
    b = segment_bounds(2)
    assert list(b[:9]) == [0] * 9
    assert b[9] == 1 and b[24] == 2 and b[23] == 1
    assert list(segment_bounds(4, 2)) == [0, 2, 4]


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("normalise", [True, False])
def test_pool_segments_vs_loop(n, normalise):
    rng = np.random.default_rng(n)
    clips = rng.random((n, 7)) * 3
    got = pool_segments(clips, normalise=normalise)
    assert got.shape == (32, 7)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, loop_pool(clips, normalise=normalise), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("n", SIZES)
def test_pool_segments_unit_norm(n):
    rng = np.random.default_rng(100 + n)
    got = pool_segments(rng.normal(size=(n, 16)))
    np.testing.assert_allclose(np.linalg.norm(got.astype(np.float64), axis=1), 1.0, atol=1e-6)


def test_unnormalised_is_plain_mean():
    # 64 clips -> 2 clips per segment: segment i = mean of clips 2i, 2i + 1
    clips = np.arange(64, dtype=np.float64)[:, None] * np.array([[1.0, 2.0]])
    got = pool_segments(clips, normalise=False)
    expected = np.array([[2 * i + 0.5, 2 * (2 * i + 0.5)] for i in range(32)])
    np.testing.assert_allclose(got, expected)


def test_single_clip_repeated():
    clips = np.array([[3.0, 4.0]])
    np.testing.assert_allclose(pool_segments(clips), np.tile([[0.6, 0.8]], (32, 1)), rtol=1e-6)
    np.testing.assert_allclose(pool_segments(clips, normalise=False), np.tile([[3.0, 4.0]], (32, 1)))


def test_zero_rows_stay_zero():
    got = pool_segments(np.zeros((5, 3)))
    assert np.all(np.isfinite(got)) and np.all(got == 0)


def test_other_segment_count():
    rng = np.random.default_rng(9)
    clips = rng.random((50, 4))
    np.testing.assert_allclose(pool_segments(clips, n_segments=10), loop_pool(clips, 10), rtol=1e-6)


@pytest.mark.parametrize("shape", [(0, 4096), (0, 3)])
def test_empty_input_raises(shape):
    with pytest.raises(ValueError):
        pool_segments(np.zeros(shape))


def test_non_2d_input_raises():
    with pytest.raises(ValueError):
        pool_segments(np.zeros(5))


def test_real_sultani_features_unit_norm_non_negative():
    rows = [[float(v) for v in line.split()] for line in SAMPLE.read_text().splitlines() if line.strip()]
    feats = np.array(rows)
    assert feats.shape == (32, 4096)
    assert np.all(feats >= 0)
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-3)
    # pooling 32 already-normalised segments into 32 is the identity up to float32 + renormalisation
    np.testing.assert_allclose(pool_segments(feats), feats, atol=1e-3)


def process_feat(feat: np.ndarray, length: int) -> np.ndarray:
    """RTFM's and UR-DMU's pooling, written from their description: truncated linspace edges,
    the mean of each bin, the bin's first snippet where it is empty, no normalisation."""
    edges = np.linspace(0, len(feat), length + 1).astype(int)
    out = np.zeros((length, feat.shape[1]))
    for i in range(length):
        out[i] = feat[edges[i]:edges[i + 1]].mean(axis=0) if edges[i] != edges[i + 1] else feat[edges[i]]
    return out


@pytest.mark.parametrize("n", [1, 5, 31, 32, 33, 199, 200, 201, 777])
@pytest.mark.parametrize("length", [32, 200])
def test_floor_bins_without_normalisation_are_the_rtfm_family_pooling(n, length):
    from vad.pooling import Pooling

    clips = np.random.default_rng(n).random((n, 6)).astype(np.float32)
    np.testing.assert_allclose(Pooling(length, False, "floor")(clips), process_feat(clips, length), rtol=1e-6)


def test_floor_and_round_edges_differ_where_a_bin_edge_is_past_a_half():
    # 45 snippets in 32 bins: edge 1 is 45/32 = 1.41 (1 either way), edge 3 is 4.22, edge 11 is 15.47,
    # edge 5 is 7.03; edge 2 is 2.81: round -> 3, floor -> 2.
    assert segment_bounds(45, 32)[2] == 3 and segment_bounds(45, 32, "floor")[2] == 2
    assert segment_bounds(45, 32, "floor")[-1] == 45 and segment_bounds(45, 32, "floor")[0] == 0


def test_a_pooling_with_unknown_bins_or_no_segments_is_refused():
    from vad.pooling import Pooling

    with pytest.raises(ValueError, match=r"method.inputs.bins='ceil': expected one of \('round', 'floor'\)"):
        Pooling(32, True, "ceil")
    with pytest.raises(ValueError, match="method.inputs.segments=0: expected >= 1"):
        Pooling(0)
