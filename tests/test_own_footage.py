"""Your own footage, end to end: generated videos labelled by folder -> ``vad.extract`` (C3D,
random weights) -> ``vad.train data.val_source=train_holdout`` on a store without test videos
-> ``vad.evaluate annotations=FILE.csv`` (frames and seconds); and the CSV reader's rules and
errors, the folder labels, the errors of training or evaluating without test videos."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import make_cfg
from tests.videos import moving_square, static_scene, write_video
from vad.cli import UserError
from vad.data.annotations_csv import VideoFacts, read_annotations, seconds_to_frames
from vad.data.features import FeatureSet, Splits
from vad.data.layouts.videos import ANOMALY, folder_labels, label_of
from vad.data.loading import annotate

FPS, H, W = 16, 48, 64
T_TRAIN, T = 32, 48  # training videos: 2 clips of 16 frames; test videos: 3 clips, 3 s


def _csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ------------------------------------------------------------------ the CSV reader


def test_seconds_become_the_frames_that_overlap_the_interval():
    # Frame k (1-based) shows [(k - 1) / fps, k / fps): at 10 fps [2.0, 3.0) s is frames 21..30.
    assert seconds_to_frames(2.0, 3.0, 10) == (21, 30)
    assert seconds_to_frames(2.05, 3.05, 10) == (21, 31)  # both partly covered frames count
    assert seconds_to_frames(0.0, 0.1, 30) == (1, 3)  # 0.1 * 30 = 3.0000000000000004 is frame 3
    assert seconds_to_frames(1.5, 1.5, 10) == (16, 16)  # an instant: the frame showing it


def test_rows_give_merged_one_based_spans_per_video(tmp_path):
    path = _csv(tmp_path / "a.csv", "video,start,end,unit\n# a comment\n\n"
                "cams/one.mp4,10,20,frames\none,15,30,\ntwo.avi,1,2,seconds\none,40,40,frames\n")
    videos = {"cams/one.mp4": VideoFacts(100, 25.0), "two.avi": VideoFacts(75, 25.0),
              "three.avi": VideoFacts(10, 25.0)}
    assert read_annotations(path, videos) == {"cams/one.mp4": ((10, 30), (40, 40)), "two.avi": ((26, 50),)}
    no_unit = _csv(tmp_path / "b.csv", "Video,Start,End\nthree,1,10\n")
    assert read_annotations(no_unit, videos) == {"three.avi": ((1, 10),)}


@pytest.mark.parametrize("text, message", [
    ("video,from,to\n", r"a\.csv:1: the header is 'video,from,to', expected video,start,end\[,unit\]"),
    ("video,start,end,unit\none,1,5,minutes\n", r"a\.csv:2: unit='minutes': expected frames or seconds"),
    ("video,start,end\none,20,10\n", r"a\.csv:2: end=10 < start=20 \(frames\) for video 'one': swap them"),
    ("video,start,end\none,1.5,10\n", r"a\.csv:2: start=1.5 is not a whole frame number"),
    ("video,start,end\none,0,10\n", r"a\.csv:2: start=0: frames count from 1"),
    ("video,start,end\none,x,10\n", r"a\.csv:2: start='x' is not a number"),
    ("video,start,end\none,1\n", r"a\.csv:2: 2 fields .* has 3: one interval per row"),
    ("video,start,end\n\nnobody,1,10\n", r"a\.csv:3: unknown video 'nobody': not one of the 2 videos to "
                                         r"annotate \(one\.mp4, two\.mp4\); name a video by its path"),
    ("video,start,end\none,90,101\n", r"a\.csv:2: end=101 is beyond video 'one\.mp4', whose last frame is 100"),
    ("video,start,end,unit\none,1,4.5,seconds\n", r"a\.csv:2: end=4.5 s is beyond video 'one\.mp4', which "
                                                  r"lasts 4\.000 s \(100 frames at 25 fps\)"),
    ("video,start,end,unit\ntwo,1,2,seconds\n", r"a\.csv:2: video 'two\.mp4' has no known fps.*give frames"),
    ("", r"a\.csv: the file is empty, expected the header"),
])
def test_bad_rows_name_the_file_line_value_and_fix(tmp_path, text, message):
    path = _csv(tmp_path / "a.csv", text)
    with pytest.raises(UserError, match=message):
        read_annotations(path, {"one.mp4": VideoFacts(100, 25.0), "two.mp4": VideoFacts(50, None)})


def test_missing_annotations_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"annotations=.*nope\.csv: no such file"):
        read_annotations(tmp_path / "nope.csv", {})


# ------------------------------------------------------------------ folder labels


def test_folders_label_videos_nearest_first_ignoring_case():
    assert label_of("footage/normal/a.mp4") == ("train", "Normal", ())
    assert label_of("footage/Anomalous/cam2/b.mp4") == ("train", ANOMALY, ())
    assert label_of("footage/anomalous/Arson/c.mp4") == ("train", "Arson", ())  # a UCF-Crime class
    assert label_of("footage/TEST/d.mp4") == ("test", "Normal", ())
    assert label_of("normal/test/e.mp4") == ("test", "Normal", ())  # the nearest folder decides
    assert label_of("footage/misc/f.mp4") == ("test", "Normal", ())  # unlabelled
    labels = folder_labels({"normal": ["calm", "Quiet"], "anomalous": "incident"})
    assert label_of("x/quiet/a.mp4", labels) == ("train", "Normal", ())
    assert label_of("x/incident/a.mp4", labels) == ("train", ANOMALY, ())
    assert label_of("x/normal/a.mp4", labels) == ("test", "Normal", ())  # no longer a label
    with pytest.raises(ValueError, match="labels.normal and labels.test both name the folder 'test'"):
        folder_labels({"normal": ["test"]})
    with pytest.raises(ValueError, match="labels.abnormal: unknown key"):
        folder_labels({"abnormal": ["x"]})


def test_annotations_of_a_training_video_are_refused(tmp_path):
    from vad.types import Video

    def features(videos):
        return FeatureSet(videos, torch.ones(len(videos), 32, 4))

    splits = Splits(features([Video("normal/n0.avi", "Normal", 48)]),
                    features([Video("cam.avi", "Normal", 48)]), description="vad store S.h5")
    path = _csv(tmp_path / "a.csv", "video,start,end\ncam,1,16\nn0,1,16\n")
    with pytest.raises(UserError, match=r"a\.csv:3: video 'n0' is a training video of vad store S\.h5 "
                                        r".*put it under a test/ folder"):
        annotate(splits, path, make_cfg([], tmp_path / "r", "evaluate").data)


# ------------------------------------------------------------------ end to end


@pytest.fixture(scope="module")
def footage(tmp_path_factory, cache_dir):
    """3 calm + 3 busy training videos (normal/, anomalous/) and 2 test videos (test/), each
    extracted into its own store with C3D's random weights (the slow part: 18 clips)."""
    from vad.extract import extract

    tmp = tmp_path_factory.mktemp("own")
    for i in range(3):
        write_video(tmp / "train" / "normal" / f"calm{i}.avi", static_scene(T_TRAIN, H, W, seed=i), fps=FPS)
        write_video(tmp / "train" / "Anomalous" / f"busy{i}.avi",
                    moving_square(T_TRAIN, H, W, dx=5, size=20, seed=10 + i), fps=FPS)
    burst = static_scene(T, H, W, seed=20)
    burst[16:32] = moving_square(16, H, W, dx=6, size=24, seed=21)
    write_video(tmp / "test" / "burst.avi", burst, fps=FPS)
    write_video(tmp / "test" / "calm.avi", static_scene(T, H, W, seed=22), fps=FPS)
    stores = {}
    for part in ("train", "test"):
        stores[part] = tmp / f"{part}.h5"
        extract(make_cfg(["extractor=C3D", "weights.rgb=random", "progress=false", f"videos={tmp / part}",
                          f"out={stores[part]}"], tmp / f"extract_{part}", "extract"))
    return {"tmp": tmp, **stores}


@pytest.fixture(scope="module")
def trained(footage):
    from vad.train import train

    cfg = make_cfg(["data=store", f"data.path={footage['train']}", "extractor=C3D", "data.val_source=train_holdout",
                    "data.holdout_fraction=0.3", "data.batch_size=2", "trainer.max_epochs=3", "logger=none",
                    "trainer.enable_progress_bar=false", "scheduler=none"], footage["tmp"] / "train_run")
    return train(cfg), Path(cfg.paths.output_dir)


def test_folder_labels_reach_the_stores(footage):
    import h5py

    with h5py.File(footage["train"], "r") as f:
        got = {g.attrs["path"]: (g.attrs["split"], g.attrs["cls"]) for g in f["videos"].values()}
        assert got == {**{f"normal/calm{i}.avi": ("train", "Normal") for i in range(3)},
                       **{f"Anomalous/busy{i}.avi": ("train", ANOMALY) for i in range(3)}}
    with h5py.File(footage["test"], "r") as f:
        got = {g.attrs["path"]: (g.attrs["split"], g.attrs["cls"], float(g.attrs["fps"]))
               for g in f["videos"].values()}
        assert got == {"burst.avi": ("test", "Normal", FPS), "calm.avi": ("test", "Normal", FPS)}


def test_training_without_test_videos_selects_on_the_holdout(trained, caplog):
    result, run_dir = trained
    best, last = result["best"], result["last"]
    assert best["test"] is None and last["test"] is None and "auc" not in best
    assert best["selection_metric"] == "holdout/video_auc" and best["val_source"] == "train_holdout"
    assert math.isfinite(best["holdout/video_auc"])
    on_disk = json.loads((run_dir / "metrics.json").read_text())
    assert on_disk["best"]["test"] is None and on_disk["best"]["holdout/video_auc"] == best["holdout/video_auc"]
    assert [r["holdout_auc"] for r in result["history"]] and all("auc" not in r for r in result["history"])
    assert Path(best["checkpoint"]).is_file() and not (run_dir / "scores.npz").exists()
    from vad.train import objective

    assert objective(best) == best["holdout/video_auc"]  # what vad.train returns to a sweeper


def test_val_source_test_without_test_videos_is_refused(footage, tmp_path):
    from vad.train import train

    cfg = make_cfg(["data=store", f"data.path={footage['train']}", "extractor=C3D", "data.val_source=test",
                    "data.batch_size=2", "logger=none"], tmp_path / "run")
    with pytest.raises(UserError, match=rf"data.val_source=test selects the best epoch on the test videos, "
                                        rf"but vad store {footage['train']}.* has none: use "
                                        rf"data.val_source=train_holdout"):
        train(cfg)


def _evaluate(trained, tmp_path, *overrides):
    from vad.evaluate import evaluate, overridden_groups

    result, _ = trained
    cfg = make_cfg([f"ckpt_path={result['best']['checkpoint']}", *overrides], tmp_path / "eval", "evaluate")
    return evaluate(cfg, overridden_groups(list(overrides))), Path(cfg.paths.output_dir)


def test_evaluate_applies_the_csv_spans(footage, trained, tmp_path):
    csv = _csv(tmp_path / "test.csv", "video,start,end,unit\nburst,17,32,frames\nburst.avi,2.5,3.0,seconds\n")
    result, out = _evaluate(trained, tmp_path, "data=store", f"data.path={footage['test']}",
                            f"annotations={csv}")
    assert result["annotations"] == str(csv)
    for key in ("auc", "ap", "far"):
        assert math.isfinite(result["metrics"][key])
    scores = np.load(out / "scores.npz")
    spans = {str(p): scores["spans"][a:b].tolist()
             for p, a, b in zip(scores["path"], scores["span_offsets"][:-1], scores["span_offsets"][1:])}
    # 2.5-3.0 s at 16 fps: frames floor(40) + 1 = 41 to ceil(48) = 48; calm.avi is not listed.
    assert spans == {"burst.avi": [[17, 32], [41, 48]], "calm.avi": []}
    assert dict(zip(scores["path"].tolist(), scores["cls"].tolist())) == {"burst.avi": ANOMALY, "calm.avi": "Normal"}


def test_evaluate_reports_a_bad_row_and_a_store_without_test_videos(footage, trained, tmp_path):
    csv = _csv(tmp_path / "bad.csv", "video,start,end\nburst,17,49\n")
    with pytest.raises(UserError, match=r"bad\.csv:2: end=49 is beyond video 'burst\.avi', whose last frame is 48"):
        _evaluate(trained, tmp_path, "data=store", f"data.path={footage['test']}", f"annotations={csv}")
    with pytest.raises(UserError, match=r"train\.h5 .*has no test videos to evaluate: .*annotations=FILE\.csv"):
        _evaluate(trained, tmp_path, "data=store", f"data.path={footage['train']}")


def test_detect_scores_the_test_folder_against_the_csv_as_evaluate_does(footage, trained, tmp_path):
    """The walk-through's last step: vad.detect on test/ with the same CSV gives, per video, the
    frame scores vad.evaluate scored (same checkpoint, same random C3D) and its ground truth."""
    from vad.detect import detect

    csv = _csv(tmp_path / "test.csv", "video,start,end,unit\nburst,17,32,frames\n")
    result, _ = trained
    evaluated, out = _evaluate(trained, tmp_path, "data=store", f"data.path={footage['test']}", f"annotations={csv}")
    summary = detect(make_cfg([f"ckpt_path={result['best']['checkpoint']}", f"source={footage['tmp'] / 'test'}",
                               "weights=random", f"annotations={csv}", "annotate=false", "report=false"],
                              tmp_path / "detect", "detect"))
    rows = {r["name"]: r for r in summary["videos"]}
    assert rows["burst"]["spans"] == [[17, 32]] and rows["calm"]["spans"] == []
    saved = np.load(out / "scores.npz")
    frames = {str(p).split(".")[0]: int(f) for p, f in zip(saved["path"], saved["frames"])}
    labels = np.concatenate([np.isin(np.arange(frames[n]), np.arange(16, 32)) if n == "burst"
                             else np.zeros(frames[n], bool) for n in sorted(frames)])
    scores = np.concatenate([np.loadtxt(tmp_path / "detect" / n / "scores.csv", delimiter=",", skiprows=1,
                                        usecols=2) for n in sorted(frames)])
    from sklearn.metrics import roc_auc_score

    assert summary["overall"]["frame_auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert summary["overall"]["frame_auc"] == pytest.approx(evaluated["metrics"]["auc"], abs=1e-6)
