"""``vad.detect`` end to end on OpenCV-made videos and a real HTTP stream on 127.0.0.1: files
scored whole equal ``vad.extract`` + ``vad.evaluate``; the outputs a file and a stream get; bad
sources skipped and reported, or refused with the source and the fix; the real entry point
answers without a traceback and without Lightning."""

from __future__ import annotations

import json
import re
import sys

import cv2
import numpy as np
import pytest

from tests.conftest import ROOT, make_cfg, make_checkpoint, run_cli
from tests.streams import MJPEGServer
from tests.videos import moving_square, static_scene, write_video
from vad.cli import UserError
from vad.metrics import FrameTruth
from vad.types import Video

FAST = ["weights=random", "device=cpu", "min_duration_s=0", "hysteresis=0"]
# UCF-Crime test video names (their shipped spans are the ground truth), 2 clips + a tail each.
VIDEOS = {"Burglary035_x264.avi": 40, "Normal_Videos_872_x264.avi": 37}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("detect")
    videos = tmp / "videos"
    for i, (name, frames) in enumerate(VIDEOS.items()):
        write_video(videos / name, moving_square(frames, dx=5, seed=i) if i == 0 else static_scene(frames, seed=i),
                    fps=25)
    ckpt = make_checkpoint(tmp / "c3d.ckpt", ["extractor=C3D", "modality=RGB"], 4096, seed=1)
    return {"tmp": tmp, "videos": videos, "ckpt": ckpt}


def detect(overrides: list[str], out):
    from vad.detect import detect as run

    return run(make_cfg(overrides, out, "detect"))


@pytest.fixture(scope="module")
def folder_run(world):
    """A folder with the two videos, a text file named .avi and a video shorter than one clip."""
    folder = world["tmp"] / "mixed"
    for name in VIDEOS:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes((world["videos"] / name).read_bytes())
    (folder / "notes.avi").write_text("not a video")
    write_video(folder / "short.avi", static_scene(10, seed=5), fps=25)
    out = world["tmp"] / "run_folder"
    summary = detect([f"ckpt_path={world['ckpt']}", f"source={folder}", "threshold=0.0", *FAST], out)
    return out, summary


def test_video_mode_scores_equal_extract_and_evaluate(world, folder_run):
    from vad.evaluate import evaluate
    from vad.extract import extract

    tmp = world["tmp"]
    store = tmp / "store.h5"
    extract(make_cfg(["weights.rgb=random", "progress=false", f"videos={world['videos']}", f"out={store}",
                      "extractor=C3D", "modality=RGB", "device=cpu"], tmp / "extract", "extract"))
    evaluate(make_cfg([f"ckpt_path={world['ckpt']}", "data=store", f"data.path={store}", "eval.timeline_videos=0"],
                      tmp / "evaluate", "evaluate"), overridden={"data"})
    saved = np.load(tmp / "evaluate" / "scores.npz")
    out, _ = folder_run
    for i, path in enumerate(saved["path"]):
        segments = saved["scores"][saved["offsets"][i]:saved["offsets"][i + 1]]
        truth = FrameTruth.from_videos([Video(str(path), "Normal", int(saved["frames"][i]), ())])
        expected = np.repeat(truth.with_tail(segments[None].astype(np.float64)).ravel(),
                             (truth.pos + truth.neg).ravel().astype(int))
        rows = np.loadtxt(out / str(path).split(".")[0] / "scores.csv", delimiter=",", skiprows=1, ndmin=2)
        assert rows.shape == (VIDEOS[str(path)], 3)
        np.testing.assert_array_equal(rows[:, 0], np.arange(VIDEOS[str(path)]))
        np.testing.assert_allclose(rows[:, 1], rows[:, 0] / 25, atol=1e-6)
        np.testing.assert_allclose(rows[:, 2], expected, atol=1e-6, rtol=0)


def test_files_get_their_outputs_and_bad_items_are_skipped_and_reported(folder_run):
    import av

    out, summary = folder_run
    assert summary["status"] == "finished"
    assert sorted(r["name"] for r in summary["videos"]) == ["Burglary035_x264", "Normal_Videos_872_x264"]
    skipped = {item["source"].rsplit("/", 1)[-1]: item["error"] for item in summary["skipped"]}
    assert set(skipped) == {"notes.avi", "short.avi"}
    assert "notes.avi: unreadable" in skipped["notes.avi"] and "re-encode" in skipped["notes.avi"]
    assert "short.avi: too short (< 16 frames)" in skipped["short.avi"] and "at least 16 frames" in skipped["short.avi"]
    for row in summary["videos"]:
        folder = out / row["name"]
        events = json.loads((folder / "events.json").read_text())
        # threshold 0: the whole video is one event; its peak is the largest frame score
        scores = np.loadtxt(folder / "scores.csv", delimiter=",", skiprows=1, usecols=2)
        assert [(e["start_frame"], e["end_frame"]) for e in events["events"]] == [(0, row["frames"])]
        assert events["events"][0]["peak"] == pytest.approx(scores.max(), abs=1e-6)
        assert cv2.imread(str(folder / "timeline.png")) is not None
        with av.open(str(folder / "annotated.mp4")) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264"
            assert sum(1 for _ in container.decode(stream)) == row["frames"]
        # known UCF-Crime test videos: their shipped annotations are the ground truth
        assert "metrics" in row and row["metrics"]["events"] == 1
    burglary = next(r for r in summary["videos"] if r["name"].startswith("Burglary"))
    assert burglary["spans"]  # Burglary035's annotated span, clipped to its 40 frames
    report = (out / "report.html").read_text()
    assert "Burglary035_x264/annotated.mp4" in report and "short.avi" in report
    assert json.loads((out / "detect.json").read_text())["overall"]["videos"] == 2


def test_annotations_csv_are_the_ground_truth_of_own_videos(world, tmp_path):
    video = tmp_path / "cam2.avi"
    write_video(video, moving_square(48, dx=5, seed=7), fps=24)
    csv = tmp_path / "test.csv"
    csv.write_text("video,start,end,unit\ncam2,17,32,frames\n")
    summary = detect([f"ckpt_path={world['ckpt']}", f"source={video}", f"annotations={csv}", "threshold=0.0",
                      "annotate=false", *FAST], tmp_path / "run")
    row = summary["videos"][0]
    assert row["spans"] == [[17, 32]]
    labels = np.zeros(48, dtype=int)
    labels[16:32] = 1
    scores = np.loadtxt(tmp_path / "run" / "cam2" / "scores.csv", delimiter=",", skiprows=1, usecols=2)
    from sklearn.metrics import roc_auc_score

    assert row["metrics"]["frame_auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    # one event over all 48 frames against the span [16, 32): IoU 1/3 < 0.5, so no match
    assert (row["metrics"]["precision"], row["metrics"]["recall"]) == (0.0, 0.0)
    assert summary["overall"]["frame_auc"] == pytest.approx(row["metrics"]["frame_auc"])
    assert not (tmp_path / "run" / "cam2" / "annotated.mp4").exists()


def test_a_stream_is_scored_causally_with_alerts_and_rolling_scores(world, tmp_path, capsys):
    frames = moving_square(64, H=96, W=128, dx=6, seed=3)
    with MJPEGServer(frames, fps=60) as server:
        summary = detect([f"ckpt_path={world['ckpt']}", f"source={server.url}", "threshold=0.0", "window=2",
                          "status_every_s=0.2", "reconnect_retries=0", *FAST], tmp_path / "run")
    name = summary["streams"]["sources"] and next(iter(summary["streams"]["sources"]))
    stats = summary["streams"]["sources"][name]
    assert stats["clips_scored"] >= 2 and stats["latency_p50_s"] is not None
    folder = tmp_path / "run" / name
    rows = np.loadtxt(folder / "scores.csv", delimiter=",", skiprows=1, ndmin=2)
    assert len(rows) == 16 * stats["clips_scored"]
    alerts = [json.loads(line) for line in (tmp_path / "run" / "alerts.jsonl").read_text().splitlines()]
    assert len(alerts) == 1 and alerts[0]["start_frame"] == 0 and alerts[0]["source"] == server.url
    assert cv2.imread(alerts[0]["snapshot"]) is not None
    assert json.dumps(alerts[0]) in capsys.readouterr().out  # also on stdout, one JSON line
    events = json.loads((folder / "events.json").read_text())["events"]
    assert len(events) == 1 and events[0]["end_frame"] == 16 * stats["clips_scored"]


@pytest.mark.parametrize("source, message", [
    ("missing.mp4", "missing.mp4: no such file or folder"),
    ("http://127.0.0.1:9/none", "127.0.0.1:9"),
    ("7", "camera 7 cannot be opened"),
])
def test_a_single_bad_source_is_an_error_naming_it(world, tmp_path, source, message):
    with pytest.raises(UserError, match=message):
        detect([f"ckpt_path={world['ckpt']}", f"source={tmp_path / source if source.endswith('mp4') else source}",
                "reconnect_retries=0", "reconnect_delay_s=0", *FAST], tmp_path / "run")


def test_checkpoint_mode_and_values_are_checked_before_any_video(world, tmp_path):
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"\x00not a checkpoint")
    with pytest.raises(UserError, match=f"not a vad checkpoint: {garbage}"):
        detect([f"ckpt_path={garbage}", f"source={world['videos']}", *FAST], tmp_path / "a")
    with pytest.raises(UserError, match="mode=video scores whole files, but camera 0 is a live source"):
        detect([f"ckpt_path={world['ckpt']}", "source=0", "mode=video", *FAST], tmp_path / "b")
    with pytest.raises(UserError, match=r"window='x': expected an integer >= 1"):
        detect([f"ckpt_path={world['ckpt']}", f"source={world['videos']}", "window=x", *FAST], tmp_path / "c")
    with pytest.raises(UserError, match="threshold=far@0.01 needs"):
        detect([f"ckpt_path={world['ckpt']}", f"source={world['videos']}", "threshold=far@0.01", *FAST],
               tmp_path / "d")


def test_cli_refuses_without_a_traceback_or_lightning(world, tmp_path):
    probe = ("import runpy, sys; sys.argv = ['vad.detect'] + sys.argv[1:]\n"
             "try:\n    runpy.run_module('vad.detect', run_name='__main__')\n"
             "finally:\n    print('LIGHTNING', 'pytorch_lightning' in sys.modules, file=sys.stderr)\n")
    proc = run_cli(["-c", probe, f"ckpt_path={world['ckpt']}", f"source={tmp_path}/nothing.mp4", "weights=random",
                    f"hydra.run.dir={tmp_path}/run"], ROOT, tmp_path)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert f"Error: source={tmp_path}/nothing.mp4: no such file or folder" in proc.stderr
    assert "Traceback" not in proc.stderr and "LIGHTNING False" in proc.stderr
    assert sys.executable  # run_cli runs this interpreter


def test_ctrl_c_ends_two_live_streams_cleanly_with_every_output_flushed(world, tmp_path):
    """Two cameras (looping HTTP streams) scored at once through the real entry point; Ctrl-C once
    both have alerted: exit status 130, no traceback, per-source outputs complete."""
    import os
    import signal
    import subprocess
    import threading
    import time

    run_dir = tmp_path / "run"
    with MJPEGServer(moving_square(48, H=96, W=128, dx=6, seed=1), fps=30, loop=True) as one, \
            MJPEGServer(static_scene(48, H=96, W=128, seed=2), fps=30, loop=True) as two:
        args = ["-m", "vad.detect", f"ckpt_path={world['ckpt']}", f"source=[{one.url},{two.url}]",
                "threshold=0.0", "status_every_s=0.5", f"hydra.run.dir={run_dir}", *FAST]
        proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        watchdog = threading.Timer(240, proc.kill)
        watchdog.start()
        try:
            lines, alerted = [], set()
            for line in proc.stdout:
                lines.append(line)
                if line.startswith("{"):
                    alerted.add(json.loads(line)["name"])
                if len(alerted) == 2:
                    time.sleep(0.5)
                    proc.send_signal(signal.SIGINT)
                    break
            rest, _ = proc.communicate(timeout=120)
        finally:
            watchdog.cancel()
    output = "".join(lines) + rest
    assert proc.returncode == 130, output[-3000:]
    assert "Traceback" not in output and "interrupted" in output
    assert re.search(r"stream \d+ s \| 127\.0\.0\.1_\d+_video\.mjpg: [\d.]+ fps in, \d+ clips scored", output)
    summary = json.loads((run_dir / "detect.json").read_text())
    assert summary["status"] == "interrupted" and summary["streams"]["stopped_by"] == "interrupt"
    assert len(summary["streams"]["sources"]) == 2
    for name, stats in summary["streams"]["sources"].items():
        rows = np.loadtxt(run_dir / name / "scores.csv", delimiter=",", skiprows=1, ndmin=2)
        assert len(rows) == 16 * stats["clips_scored"] and stats["clips_scored"] >= 1
        events = json.loads((run_dir / name / "events.json").read_text())["events"]
        assert len(events) == 1 and events[0]["end_frame"] == rows[-1, 0] + 1  # closed at the last frame
    alerts = [json.loads(line) for line in (run_dir / "alerts.jsonl").read_text().splitlines()]
    assert sorted(a["name"] for a in alerts) == sorted(summary["streams"]["sources"])
