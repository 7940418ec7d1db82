"""vad.detection.sources: naming sources, reading files and MJPEG-over-HTTP streams into clips,
realtime pacing, the drop policy and the messages of sources that cannot be read.

RTSP is not tested: serving it needs an RTSP server this machine does not have; OpenCV's FFmpeg
backend opens rtsp:// URLs the same way as the http:// ones tested here."""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from tests.streams import MJPEGServer
from tests.videos import moving_square, translating_pattern, write_video
from vad.cli import UserError
from vad.detection.sources import ClipSource, Source, parse_sources

H, W = 48, 64


class Preparer:
    """A stand-in ClipPreparer recording what it was given."""

    def __init__(self, delay_s: float = 0.0):
        self.delay_s, self.resets, self.closed = delay_s, 0, False

    def prepare(self, clip):
        time.sleep(self.delay_s)
        return {"mean": float(clip.mean())}

    def reset(self):
        self.resets += 1

    def close(self):
        self.closed = True


def drain(source: ClipSource, timeout_s: float = 20.0) -> list:
    clips, deadline = [], time.monotonic() + timeout_s
    while not source.finished:
        assert time.monotonic() < deadline, "the source did not finish"
        clip = source.get(0.05)
        if clip is not None:
            clips.append(clip)
    return clips


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------- parse_sources
def test_parse_sources_files_folders_lists_urls_and_cameras(tmp_path):
    frames = moving_square(16, H, W, size=16)
    one = write_video(tmp_path / "one.avi", frames)
    folder = tmp_path / "footage"
    write_video(folder / "normal" / "cam 1.avi", frames)
    write_video(folder / "anomalous" / "cam 1.avi", frames)
    write_video(folder / "anomalous" / "deep" / "other.mp4", frames, codec="mp4v")
    (folder / "notes.txt").write_text("not a video\n")
    listing = tmp_path / "list.txt"
    listing.write_text("# my sources\none.avi\n\nrtsp://user:secret@10.0.0.5:554/live?ch=1\n2\n")

    found = parse_sources([str(one), folder, 0, "http://example.org:8080/video.mjpg", str(listing)])
    assert [(s.kind, s.name) for s in found] == [
        ("file", "one"),
        ("file", "anomalous_cam_1"), ("file", "other"), ("file", "normal_cam_1"),  # sorted, recursive
        ("camera", "camera0"),
        ("url", "example.org_8080_video.mjpg"),
        ("file", "one-2"), ("url", "10.0.0.5_554_live_ch_1"), ("camera", "camera2")]
    assert found[0].spec == str(one.resolve()) == found[6].spec
    assert found[3].spec == str((folder / "normal" / "cam 1.avi").resolve())
    rtsp = found[7]
    assert rtsp.spec == "rtsp://user:secret@10.0.0.5:554/live?ch=1"
    assert "secret" not in rtsp.name and "secret" not in rtsp.label
    assert rtsp.label == "rtsp://user:***@10.0.0.5:554/live?ch=1"
    assert parse_sources("3") == [Source("3", "camera", "camera3")]
    assert found[4].label == "camera 0"


@pytest.mark.parametrize("make, message", [
    (lambda tmp: str(tmp / "nope.mp4"), "nope.mp4: no such file or folder; expected a video file, a folder"),
    (lambda tmp: str((tmp / "empty").mkdir() or tmp / "empty"), "no videos (.mp4 .avi .mkv .mov .mpg) under this folder"),
    (lambda tmp: "ftp://host/x.mp4", "ftp://host/x.mp4: unsupported URL scheme"),
    (lambda tmp: [], "source=[]: no source given"),
    (lambda tmp: -1, "source=-1: a camera index is >= 0"),
    (lambda tmp: (tmp / "l.txt").write_text("a.avi\nmissing.avi\n") and str(tmp / "l.txt"),
     "l.txt line 2=missing.avi: no such file or folder"),
    (lambda tmp: (tmp / "e.txt").write_text("# nothing\n") and str(tmp / "e.txt"), "the list names no video"),
])
def test_parse_sources_errors_name_the_source(tmp_path, make, message):
    write_video(tmp_path / "a.avi", moving_square(16, H, W, size=16))
    with pytest.raises(UserError) as err:
        parse_sources(make(tmp_path))
    assert message in str(err.value)


# ---------------------------------------------------------------------------- files
def test_file_clips_frames_and_timestamps_without_drops_at_the_consumers_pace(tmp_path):
    frames = moving_square(70, H, W, dx=3, size=16)
    path = write_video(tmp_path / "v.avi", frames, fps=25, codec="FFV1")  # lossless
    preparer = Preparer()
    source = ClipSource(parse_sources(str(path))[0], preparer, queue_clips=1).start()
    clips = []
    while not source.finished:  # a slow consumer: a file waits for it (nothing dropped)
        clip = source.get(0.05)
        if clip is not None:
            clips.append(clip)
            time.sleep(0.05)
    source.stop()
    assert len(clips) == 70 // 16 == source.clips_read
    assert source.clips_dropped == 0 and source.frames_in == 70 and source.fps == 25
    for i, clip in enumerate(clips):
        assert (clip.index, clip.start_frame) == (i, 16 * i)
        assert clip.time_s == pytest.approx((16 * i + 15) / 25)
        np.testing.assert_array_equal(clip.frames, frames[16 * i:16 * i + 16])
        assert clip.inputs == {"mean": pytest.approx(frames[16 * i:16 * i + 16].mean())}
    assert source.error is None and source.end_reason == "end of file"
    assert preparer.closed and preparer.resets == 0


def test_realtime_paces_a_file_at_its_native_fps(tmp_path):
    path = write_video(tmp_path / "two_seconds.avi", moving_square(64, H, W, size=16), fps=32)
    started = time.perf_counter()
    source = ClipSource(parse_sources(str(path))[0], Preparer(), realtime=True).start()
    clips = drain(source)
    elapsed = time.perf_counter() - started
    assert 1.8 <= elapsed <= 3.5, elapsed  # 64 frames at 32 fps: the last one at 1.97 s
    assert len(clips) == 4 and source.clips_dropped == 0
    for clip in clips:  # each clip arrives when its last frame is due, not earlier
        assert clip.arrived - started >= clip.time_s - 0.05


def test_a_slow_consumer_loses_whole_clips_never_stalls_the_reader(tmp_path):
    fps, n_frames, queue_clips = 400, 800, 2  # 2 s, a clip every 40 ms
    path = write_video(tmp_path / "live.avi", moving_square(n_frames, H, W, dx=1, size=16), fps=fps)
    preparer = Preparer(delay_s=0.06)  # slower than the stream too: raw clips dropped as well
    source = ClipSource(parse_sources(str(path))[0], preparer, realtime=True,
                        queue_clips=queue_clips).start()
    started = time.perf_counter()
    taken, seen_frames, ended_at = [], [], None
    while not source.finished:
        assert source.queued <= queue_clips
        clip = source.get(0.05)
        if clip is None:
            continue
        taken.append(clip.index)
        seen_frames.append(source.frames_in)
        if ended_at is None and source.ended:
            ended_at = time.perf_counter() - started
        time.sleep(0.25)  # scoring 6x slower than the stream
    ended_at = ended_at or time.perf_counter() - started
    assert source.frames_in == n_frames and source.clips_read == n_frames // 16
    # The reader kept reading at the stream's pace while the consumer slept...
    before_end = [f for f in seen_frames if f < n_frames]
    assert len(before_end) >= 3 and np.all(np.diff(before_end) > 0)
    assert ended_at < 4.0, ended_at  # the consumer alone needed >= 0.25 s x 50 clips
    # ...and every clip read was either taken or dropped and counted, the newest kept.
    assert len(taken) + source.clips_dropped == source.clips_read
    assert source.clips_dropped >= 30
    assert np.all(np.diff(taken) > 0) and taken[-1] == source.clips_read - 1
    assert preparer.resets >= 1  # a clip after dropped raw clips restarts the preparer's state


# ---------------------------------------------------------------------------- sources that fail
def test_files_that_cannot_be_scored_say_why(tmp_path):
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    short = write_video(tmp_path / "short.avi", moving_square(10, H, W, size=16))
    errors = {}
    for path in (fake, short):
        source = ClipSource(parse_sources(str(path))[0], Preparer()).start()
        assert drain(source) == []
        errors[path.name] = source.error
    assert errors["fake.mp4"] == (f"{fake.resolve()}: unreadable (OpenCV cannot open it as a video): "
                                  "give a video file (.mp4 .avi .mkv .mov .mpg)")
    assert errors["short.avi"] == (f"{short.resolve()}: too short (10 frames < 16): a detector scores "
                                   "clips of 16 frames")


def test_an_absent_camera_says_so(tmp_path):
    index = 63
    if Path(f"/dev/video{index}").exists():
        pytest.skip(f"this machine has a camera {index}")
    source = ClipSource(parse_sources(index)[0], Preparer()).start()
    assert drain(source) == []
    assert source.error.startswith(f"camera {index} cannot be opened (no such device?)")


def test_an_unreachable_url_fails_after_bounded_retries(caplog):
    url = f"http://127.0.0.1:{free_port()}/video.mjpg"
    source = ClipSource(parse_sources(url)[0], Preparer(), reconnect_retries=2,
                        reconnect_delay_s=0.05)
    started = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="vad.detection.sources"):
        source.start()
        assert drain(source) == []
    assert time.perf_counter() - started < 5
    assert source.error == (f"cannot open {url} after 3 attempts: check the address and that the "
                            "camera or server is up and reachable from here")
    retries = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert retries == [f"{url}: cannot open it (attempt {i}/3); retrying in 0.1 s" for i in (1, 2)]


def test_an_http_mjpeg_stream_reads_through_opencv():
    frames = translating_pattern(48, H, W, dx=2)
    with MJPEGServer(frames, fps=200) as server:
        source = ClipSource(parse_sources(server.url)[0], Preparer(), reconnect_retries=0).start()
        clips = drain(source)
    assert source.frames_in == 48 and [c.start_frame for c in clips] == [0, 16, 32]
    assert source.error is None and "could not be reopened after 0 attempts" in source.end_reason
    # the frames served, in order: each frame read is closest to the one sent at its place
    # (JPEG is lossy, and FFmpeg's decoder is not libjpeg's: not equal)
    got = np.concatenate([c.frames for c in clips]).astype(np.float32)
    distance = np.abs(got[:, None] - frames[None].astype(np.float32)).mean(axis=(2, 3, 4))
    np.testing.assert_array_equal(distance.argmin(axis=1), np.arange(48))
    times = [c.time_s for c in clips]  # live time: wall-clock seconds since the stream opened
    assert np.all(np.diff(times) > 0) and times[-1] < 5
