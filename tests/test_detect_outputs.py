"""The per-video and per-stream files of vad.detect: read back with independent readers (csv,
json, OpenCV, PyAV) and checked against hand-computed values."""

from __future__ import annotations

import csv
import json

import av
import cv2
import numpy as np
import pytest

from tests.videos import moving_square, write_video
from vad.detection.annotate import annotate_video
from vad.detection.outputs import (
    TIMELINE_LEFT,
    TIMELINE_RIGHT,
    AlertLog,
    RollingScores,
    timeline_png,
    write_events_json,
    write_scores_csv,
    write_snapshot,
)
from vad.detection.events import Event as Ev
from vad.video import VideoError

FPS = 25.0


def test_scores_csv(tmp_path):
    scores = np.array([0.1, 0.25, 0.987654321, 0.0], dtype=np.float32)
    write_scores_csv(tmp_path / "v" / "scores.csv", scores, FPS)
    with open(tmp_path / "v" / "scores.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["frame"]) for r in rows] == [0, 1, 2, 3]
    assert [float(r["time_s"]) for r in rows] == [0.0, 0.04, 0.08, 0.12]
    np.testing.assert_allclose([float(r["score"]) for r in rows], scores, atol=1e-6)
    assert sorted(p.name for p in (tmp_path / "v").iterdir()) == ["scores.csv"]


def test_scores_csv_needs_fps(tmp_path):
    with pytest.raises(ValueError, match=r"fps must be > 0 .*found 0.0 .*pass fps=\.\.\. explicitly"):
        write_scores_csv(tmp_path / "scores.csv", np.zeros(3), 0.0)
    assert not (tmp_path / "scores.csv").exists()


def test_rolling_scores_are_readable_while_written(tmp_path):
    path = tmp_path / "s" / "scores.csv"
    with RollingScores(path) as rolling:
        assert path.read_text() == "frame,time_s,score\n"
        rolling.append(15, 0.6, 0.5)
        assert path.read_text().splitlines()[-1] == "15,0.6000,0.500000"  # on disk before close
        rolling.append(31, 1.24, 0.75)
    assert path.read_text().splitlines() == ["frame,time_s,score", "15,0.6000,0.500000", "31,1.2400,0.750000"]


def test_events_json(tmp_path):
    events = [Ev(10, 40, FPS, 0.9, 20, 0.7), Ev(60, 90, FPS, 0.8, 70, 0.65)]
    write_events_json(tmp_path / "events.json", events, {"video": "a.avi", "fps": FPS, "threshold": 0.5})
    data = json.loads((tmp_path / "events.json").read_text())
    assert data["video"] == "a.avi" and data["fps"] == FPS and data["threshold"] == 0.5
    assert data["events"][1] == {"start_frame": 60, "end_frame": 90, "start_s": 2.4, "end_s": 3.6,
                                 "duration_s": 1.2, "peak": 0.8, "peak_frame": 70, "peak_s": 2.8, "mean": 0.65}


def test_timeline_shades_events_and_ground_truth_where_they_are(tmp_path):
    frames = 250  # 10 s
    scores = np.full(frames, 0.2)
    scores[100:150] = 0.9
    timeline_png(tmp_path / "timeline.png", scores, FPS, [Ev(100, 150, FPS, 0.9, 120, 0.9)], 0.5,
                 spans=[(201, 240)], title="v")
    image = cv2.imread(str(tmp_path / "timeline.png"))  # BGR
    assert image.shape == (264, 1100, 3)  # 10 x 2.4 in at 110 dpi

    def column(t):  # the pixel column of time t, by the axes' fixed place in the figure
        return round((TIMELINE_LEFT + (TIMELINE_RIGHT - TIMELINE_LEFT) * t / 10.0) * image.shape[1])

    def tint(t):  # mean colour of the column, between the plot's top and bottom (curve rows excluded)
        col = image[70:190, column(t)].astype(float)
        return col[(np.abs(col - col.mean(0)) < 60).all(1)].mean(0)

    event, truth, plain = tint(5.0), tint(8.8), tint(2.0)
    assert plain.min() > 240  # white background outside
    assert event[2] > event[1] + 40 and event[2] > event[0] + 40  # red shade (BGR: R high)
    assert truth[1] > truth[2] + 20 and truth[1] > truth[0] + 10  # green shade


def test_alert_log_writes_file_and_stdout(tmp_path, capsys):
    path = tmp_path / "alerts.jsonl"
    with AlertLog(path) as log:
        log.write({"source": "cam0", "start_s": 12.5, "peak": np.float32(0.75)})
        assert path.read_text().count("\n") == 1  # flushed at once
        log.write({"source": "cam1", "start_s": 3.0, "peak": 0.5})
    lines = path.read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{"source": "cam0", "start_s": 12.5, "peak": 0.75},
                                                    {"source": "cam1", "start_s": 3.0, "peak": 0.5}]
    assert capsys.readouterr().out.splitlines() == lines


def test_snapshot_is_a_strip_of_the_clip(tmp_path):
    clip = np.zeros((16, 240, 320, 3), dtype=np.uint8)
    clip[:, :, :, 0] = (np.arange(16) * 16)[:, None, None]  # red level = frame index * 16
    write_snapshot(tmp_path / "alert_0001.jpg", clip)
    strip = cv2.imread(str(tmp_path / "alert_0001.jpg"))
    assert strip.shape == (180, 4 * 240, 3)
    reds = [strip[:, 240 * k:240 * (k + 1), 2].mean() for k in range(4)]
    np.testing.assert_allclose(reds, [0, 5 * 16, 10 * 16, 15 * 16], atol=3)  # frames 0, 5, 10, 15
    with pytest.raises(ValueError, match=r"expected \(T, H, W, 3\) uint8 RGB frames with T >= 1, found \(16, 240, 320\)"):
        write_snapshot(tmp_path / "bad.jpg", clip[..., 0])


def _decode(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(stream)]
        return stream.codec_context.name, stream.codec_context.pix_fmt, float(stream.average_rate), frames


@pytest.fixture(scope="module")
def gray_video(tmp_path_factory):
    """A flat gray 321 x 241 video (odd sizes) of 60 frames, scores rising 0 -> 1, one event."""
    root = tmp_path_factory.mktemp("annotate")
    src = write_video(root / "gray.avi", np.full((60, 241, 321, 3), 128, dtype=np.uint8), fps=FPS, codec="FFV1")
    scores = np.linspace(0, 1, 60)
    out = root / "out" / "annotated.mp4"
    written = annotate_video(src, out, scores, [Ev(40, 55, FPS, 1.0, 54, 0.8)], FPS, threshold=0.6)
    return out, written, scores


def test_annotated_video_is_browser_h264(gray_video):
    out, written, _ = gray_video
    codec, pix_fmt, rate, frames = _decode(out)
    assert (codec, pix_fmt, rate, written, len(frames)) == ("h264", "yuv420p", FPS, 60, 60)
    assert frames[0].shape == (240, 320, 3)  # odd sizes cropped to even
    capture = cv2.VideoCapture(str(out))
    count = 0
    while capture.read()[0]:
        count += 1
    assert count == 60
    data = out.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # +faststart: playable while it loads
    assert sorted(p.name for p in out.parent.iterdir()) == ["annotated.mp4"]  # no temp file left


def test_annotated_video_overlay(gray_video):
    out, _, scores = gray_video
    _, _, _, frames = _decode(out)

    def red(pixel):
        b, g, r = pixel.astype(int)
        return r > 180 and g < 90 and b < 90

    # red frame exactly during the event [40, 55), the gray footage elsewhere
    assert [red(f[1, 160]) and red(f[120, 1]) for f in frames] == [40 <= i < 55 for i in range(60)]
    assert abs(int(frames[10][1, 160, 1]) - 128) < 12
    # the gauge: the column of coloured pixels grows with the score
    def bar(frame):
        column = frame[150:, 310].astype(int)
        return int(((column.max(1) - column.min(1)) > 60).sum())
    heights = np.array([bar(frames[i]) for i in (15, 30, 45)])
    np.testing.assert_allclose(heights / heights[-1], scores[[15, 30, 45]] / scores[45], atol=0.08)
    # the time stamp is drawn (top-left differs from the flat gray only there)
    assert (np.abs(frames[10][5:25, 5:80].astype(int) - 128) > 60).any()


def test_annotate_refuses_a_file_that_is_not_a_video(tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    with pytest.raises(VideoError, match=r"notes.mp4: unreadable"):
        annotate_video(bad, tmp_path / "out" / "annotated.mp4", np.zeros(10), [], FPS)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_annotate_without_a_threshold(tmp_path):
    """No threshold mark (a stream run on a raw score): every frame is still written."""
    src = write_video(tmp_path / "m.avi", moving_square(50, 240, 320, dx=3), fps=FPS)
    assert annotate_video(src, tmp_path / "a.mp4", np.random.default_rng(0).random(50), [], FPS) == 50


def test_annotate_refuses_missing_fps_or_scores(tmp_path, gray_video):
    src = gray_video[0]
    with pytest.raises(ValueError, match=r"annotate_video: fps must be > 0, found 0.0 \(.*annotated.mp4\)"):
        annotate_video(src, tmp_path / "a.mp4", np.zeros(60), [], 0.0)
    with pytest.raises(ValueError, match=r"annotate_video: no frame scores for .*annotated.mp4"):
        annotate_video(src, tmp_path / "a.mp4", np.zeros(0), [], FPS)
    assert not list(tmp_path.iterdir())
