"""Video decoding, optical flow and movement values on small synthetic videos."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from tests.videos import (
    moving_square,
    noise,
    scene_cut,
    static_scene,
    translating_pattern,
    write_video,
)
from vad.constants import N_SEGMENTS
from vad.video import (
    EMPTY,
    TOO_SHORT,
    UNREADABLE,
    ClipReader,
    FlowStream,
    MovementTracker,
    VideoError,
    clip_flow,
    farneback,
    flow_method,
    has_tvl1,
    iter_clips,
    movement_per_clip,
    movement_segments,
    probe,
    render_denseflow,
    resolve_method,
    scale_flow_i3d,
    tvl1,
)

H, W = 120, 160


# --------------------------------------------------------------------------- decoding

@pytest.mark.parametrize("frames", [16, 40, 48])
def test_probe_counts_frames_by_decoding(tmp_path, frames):
    path = write_video(tmp_path / "v.avi", moving_square(frames), fps=25)
    info = probe(path)
    assert (info.frames, info.height, info.width) == (frames, H, W)
    assert info.fps == pytest.approx(25, abs=0.01)
    assert info.n_clips() == frames // 16
    assert info.path == str(path)


@pytest.mark.parametrize("frames", [16, 40, 48])
def test_iter_clips_count_shape_dtype(tmp_path, frames):
    path = write_video(tmp_path / "v.avi", moving_square(frames))
    clips = list(iter_clips(path))
    assert len(clips) == frames // 16
    for clip in clips:
        assert clip.shape == (16, H, W, 3) and clip.dtype == np.uint8
    assert clips[0] is not clips[-1] or len(clips) == 1


def test_iter_clips_is_rgb_and_exact_with_ffv1(tmp_path):
    frames = moving_square(20)
    frames[:, :10, :10] = (255, 0, 0)  # a red corner, in RGB
    path = write_video(tmp_path / "v.avi", frames, codec="FFV1")
    (clip,) = list(iter_clips(path))
    np.testing.assert_array_equal(clip, frames[:16])
    assert tuple(clip[0, 0, 0]) == (255, 0, 0)


def test_iter_clips_resize(tmp_path):
    path = write_video(tmp_path / "v.avi", moving_square(33))
    clips = list(iter_clips(path, size=(64, 80)))
    assert len(clips) == 2 and all(c.shape == (16, 64, 80, 3) for c in clips)
    assert list(iter_clips(path, size=(240, 320)))[0].shape == (16, 240, 320, 3)


def test_clip_reader_counts_frames_and_dropped_tail(tmp_path):
    path = write_video(tmp_path / "v.avi", static_scene(37))
    reader = ClipReader(path, clip_frames=16)
    assert sum(1 for _ in reader) == 2
    assert (reader.frames, reader.clips, reader.dropped) == (37, 2, 5)
    assert reader.fps == pytest.approx(30, abs=0.01)


def test_iter_clips_is_lazy_generator(tmp_path):
    path = write_video(tmp_path / "v.avi", static_scene(48))
    gen = iter_clips(path)
    assert next(gen).shape == (16, H, W, 3)
    gen.close()  # releases the capture


def _assert_video_error(exc_info, reason, path):
    err = exc_info.value
    assert err.reason == reason
    assert str(path) in str(err) and reason in str(err)
    clone = pickle.loads(pickle.dumps(err))
    assert (clone.reason, clone.path) == (err.reason, err.path)


def test_unreadable_text_file(tmp_path):
    path = tmp_path / "not_a_video.avi"
    path.write_text("this is not a video\n")
    for call in (lambda: probe(path), lambda: list(iter_clips(path))):
        with pytest.raises(VideoError) as exc_info:
            call()
        _assert_video_error(exc_info, UNREADABLE, path)


def test_missing_file_is_unreadable(tmp_path):
    path = tmp_path / "missing.avi"
    with pytest.raises(VideoError) as exc_info:
        probe(path)
    _assert_video_error(exc_info, UNREADABLE, path)
    assert "no such file" in str(exc_info.value)


def test_empty_video(tmp_path):
    path = write_video(tmp_path / "empty.avi", np.zeros((0, H, W, 3), np.uint8))
    assert path.stat().st_size > 0  # a header, no frames
    for call in (lambda: probe(path), lambda: list(iter_clips(path)), lambda: movement_per_clip(path)):
        with pytest.raises(VideoError) as exc_info:
            call()
        _assert_video_error(exc_info, EMPTY, path)


def test_too_short_video(tmp_path):
    path = write_video(tmp_path / "short.avi", moving_square(10))
    assert probe(path).frames == 10  # probe alone only requires one frame
    with pytest.raises(VideoError) as exc_info:
        probe(path, min_frames=16)
    _assert_video_error(exc_info, TOO_SHORT, path)
    with pytest.raises(VideoError) as exc_info:
        list(iter_clips(path))
    _assert_video_error(exc_info, TOO_SHORT, path)
    assert TOO_SHORT == "too short (< 16 frames)"


# --------------------------------------------------------------------------- optical flow

@pytest.mark.parametrize("dx,dy", [(2, 0), (-2, 0), (0, 2), (0, -2), (3, -1)])
def test_farneback_direction_on_moving_square(dx, dy):
    frames, boxes = moving_square(3, dx=dx, dy=dy, return_boxes=True)
    flow = farneback(frames[0], frames[1])
    assert flow.shape == (H, W, 2) and flow.dtype == np.float32
    x, y, w, h = boxes[0]  # flow lives on the grid of the earlier frame
    region = flow[y + 6:y + h - 6, x + 6:x + w - 6]
    mean_x, mean_y = region[..., 0].mean(), region[..., 1].mean()
    assert np.sign(mean_x) == np.sign(dx) if dx else abs(mean_x) < 0.3
    assert np.sign(mean_y) == np.sign(dy) if dy else abs(mean_y) < 0.3
    assert mean_x == pytest.approx(dx, abs=0.5) and mean_y == pytest.approx(dy, abs=0.5)
    background = flow.copy()
    background[max(0, y - 20):y + h + 20, max(0, x - 20):x + w + 20] = 0
    assert np.abs(background).mean() < 0.1  # the static background does not move


def test_farneback_on_translating_pattern_is_accurate():
    flows = clip_flow(translating_pattern(16, dx=2, dy=-1))
    inner = flows[:, 12:-12, 12:-12]
    assert inner[..., 0].mean() == pytest.approx(2, abs=0.05)
    assert inner[..., 1].mean() == pytest.approx(-1, abs=0.05)


@pytest.mark.skipif(not has_tvl1(), reason="TV-L1 needs opencv-contrib-python-headless (cv2.optflow); "
                                            "opencv-python-headless is installed")
@pytest.mark.parametrize("dx", [2, -2])
def test_tvl1_direction(dx):
    frames, boxes = moving_square(2, dx=dx, return_boxes=True)
    flow = tvl1(frames[0], frames[1])
    x, y, w, h = boxes[0]
    region = flow[y + 6:y + h - 6, x + 6:x + w - 6]
    assert np.sign(region[..., 0].mean()) == np.sign(dx)
    assert abs(region[..., 1].mean()) < 0.3


def test_flow_method_selection():
    assert flow_method("farneback") is farneback
    assert flow_method("FARNEBACK") is farneback
    assert resolve_method("auto") == ("tvl1" if has_tvl1() else "farneback")
    with pytest.raises(ValueError, match="unknown optical flow method"):
        flow_method("brox")
    if has_tvl1():
        assert flow_method("tvl1") is tvl1
    else:
        with pytest.raises(RuntimeError, match="pip install opencv-contrib-python-headless"):
            flow_method("tvl1")
        with pytest.raises(RuntimeError, match="opencv-contrib"):
            tvl1(np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8))


def test_render_denseflow_scaling():
    zero = render_denseflow(np.zeros((H, W, 2), np.float32))
    assert zero.shape == (H, W, 3) and zero.dtype == np.uint8
    assert (zero[..., 0] == 128).all() and (zero[..., 1] == 128).all() and (zero[..., 2] == 0).all()
    flow = np.array([[[5.0, 0.0], [-20.0, 20.0], [-100.0, 100.0], [10.0, -10.0]]], np.float32)
    image = render_denseflow(flow)
    np.testing.assert_array_equal(image[0, :, 0], [160, 0, 0, 192])  # x in channel 0
    np.testing.assert_array_equal(image[0, :, 1], [128, 255, 255, 64])  # y in channel 1
    assert (image[..., 2] == 0).all()
    clip = render_denseflow(np.zeros((16, 4, 5, 2), np.float32))  # leading dims pass through
    assert clip.shape == (16, 4, 5, 3)
    scaled = scale_flow_i3d(flow)
    assert scaled.min() >= -1 and scaled.max() <= 1 and scaled[0, 0, 0] == pytest.approx(0.25)


def test_flow_stream_gives_16_flows_per_clip_across_boundaries():
    frames = moving_square(48, dx=2)
    stream = FlowStream("farneback")
    outs = [stream.update(frames[i:i + 16]) for i in range(0, 48, 16)]
    assert all(o.shape == (16, H, W, 2) and o.dtype == np.float32 for o in outs)
    # first clip of the video: flow 0 repeats flow 1
    np.testing.assert_array_equal(outs[0][0], outs[0][1])
    # later clips: flow 0 = last frame of the previous clip -> first frame of this one
    np.testing.assert_allclose(outs[1][0], farneback(frames[15], frames[16]), atol=1e-6)
    np.testing.assert_allclose(outs[2][5], farneback(frames[36], frames[37]), atol=1e-6)
    # clip_flow with prev_frame equals the stream
    np.testing.assert_allclose(clip_flow(frames[16:32], prev_frame=frames[15]), outs[1], atol=1e-6)
    stream.reset()  # a new video: no carried frame
    restarted = stream.update(frames[16:32])
    np.testing.assert_array_equal(restarted[0], restarted[1])
    np.testing.assert_allclose(stream.update(frames[32:48])[0], farneback(frames[31], frames[32]), atol=1e-6)
    with pytest.raises(ValueError, match="frame size changed"):
        stream.update(np.zeros((16, 60, 80, 3), np.uint8))


# --------------------------------------------------------------------------- movement

def test_movement_moving_square_vs_static_scene(tmp_path):
    moving = movement_per_clip(write_video(tmp_path / "moving.avi", moving_square(48, dx=2)))
    static = movement_per_clip(write_video(tmp_path / "static.avi", static_scene(48)))
    assert moving.shape == static.shape == (3,) and moving.dtype == np.float32
    assert (static >= 0).all() and (moving >= 0).all()
    assert moving.min() > 20 * max(float(static.max()), 1.0)  # observed ~90-170 vs <= 2 (MJPG)
    assert movement_per_clip(static_scene(48)[None].reshape(3, 16, H, W, 3)).sum() == 0  # exact frames


def test_movement_grows_with_speed():
    slow = movement_per_clip(moving_square(32, dx=1).reshape(2, 16, H, W, 3))
    fast = movement_per_clip(moving_square(32, dx=3).reshape(2, 16, H, W, 3))
    assert fast.sum() > 1.5 * slow.sum() > 0


def test_movement_incremental_equals_path_and_accepts_gray(tmp_path):
    path = write_video(tmp_path / "v.avi", moving_square(40, dx=-2, dy=1))
    tracker = MovementTracker()
    values = [tracker.update(clip) for clip in iter_clips(path)]
    np.testing.assert_allclose(values, movement_per_clip(path), rtol=1e-5)
    gray = [np.asarray([f.mean(axis=-1) for f in clip]) for clip in iter_clips(path)]  # any gray works
    gray = [g.astype(np.uint8) for g in gray]
    assert MovementTracker().update(gray[0]) > 0


def test_movement_redetects_after_tracking_loss():
    tracker = MovementTracker()
    frames = scene_cut(32, cut=20)
    values = [tracker.update_frame(f) for f in frames]
    assert values[0] == 0.0 and tracker.n_points >= 10
    assert tracker.detections >= 2  # the initial detection and the periodic one at frame 16
    assert values[20] > 0  # the cut: points jump or are lost...
    assert tracker.n_points > 0 and sum(values[22:]) == 0  # ...and tracking resumes on the new scene


def test_movement_noise_is_nonnegative_and_finite():
    values = movement_per_clip(noise(32).reshape(2, 16, H, W, 3))
    assert np.isfinite(values).all() and (values >= 0).all()


def test_movement_segments():
    per_clip = np.arange(1, 11, dtype=np.float32)
    segments = movement_segments(per_clip)
    assert segments.shape == (N_SEGMENTS,) and segments.dtype == np.float32
    assert (segments >= 0).all() and segments.max() <= per_clip.max()
    long = movement_segments(np.ones(100, np.float32) * 3)
    np.testing.assert_allclose(long, 3.0)  # means, not L2-normalised
    with pytest.raises(ValueError):
        movement_segments(np.zeros(0, np.float32))


def test_flow_workers_give_the_same_flows_as_one_thread():
    frames = moving_square(40, dx=3)
    one = FlowStream("farneback")
    with FlowStream("farneback", workers=3) as many:
        for i in range(0, 40, 16):  # 16, 16, 8 frames: boundaries and a short last clip
            np.testing.assert_array_equal(many.update(frames[i:i + 16]), one.update(frames[i:i + 16]))
    assert many._pool is None  # closed on leaving the block
    with pytest.raises(ValueError, match="workers must be >= 1"):
        FlowStream("farneback", workers=0)
