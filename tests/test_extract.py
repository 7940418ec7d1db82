"""``python -m vad.extract``: tiny generated videos -> feature store (I3D with random weights,
one small C3D run), skipping bad videos, resume, shards + merge, then training on the store."""

from __future__ import annotations

import json
import math
import re
import shlex
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.conftest import ROOT, make_cfg, run_cli
from tests.videos import moving_square, static_scene, write_video
from vad.data import store
from vad.extract import extract, shard_out
from vad.prepare import prepare

T = 32  # 2 clips per video: I3D on CPU is ~1 s per clip

# Named after real UCF-Crime videos: split and class come from the catalogue.
VIDEOS = {
    "Abuse/Abuse001_x264.avi": "moving",                                          # train, anomalous
    "Training_Normal_Videos_Anomaly/Normal_Videos001_x264.avi": "static",         # train, normal
    "Burglary/Burglary035_x264.avi": "moving",                                    # test, spans (1, 1740)
    "Testing_Normal_Videos_Anomaly/Normal_Videos_872_x264.avi": "static",         # test, normal
}
BAD = {"short.avi": "too short (< 16 frames)", "broken.mp4": "unreadable"}


def _make_videos(root: Path) -> Path:
    for i, (rel, kind) in enumerate(VIDEOS.items()):
        frames = moving_square(T, dx=3, seed=i) if kind == "moving" else static_scene(T, seed=i)
        write_video(root / rel, frames, fps=25)
    write_video(root / "short.avi", static_scene(10))
    (root / "broken.mp4").write_bytes(b"not a video at all")
    return root


def _cfg(tmp: Path, overrides: list[str], name: str = "run"):
    return make_cfg(["weights.rgb=random", "progress=false", *overrides], tmp / name, "extract")


@pytest.fixture(scope="module")
def world(tmp_path_factory, cache_dir):
    tmp = tmp_path_factory.mktemp("extract")
    videos = _make_videos(tmp / "videos")
    out = tmp / "all.h5"
    result = extract(_cfg(tmp, [f"videos={videos}", f"out={out}", "movement=lk"]))
    return {"tmp": tmp, "videos": videos, "out": out, "result": result}


def _features(path: Path) -> dict:
    with h5py.File(path, "r") as f:
        return {g.attrs["path"]: (g["segments/RGB"][()], g["snippets/RGB"][()])
                for g in f["videos"].values()}


def test_store_has_clip_and_segment_features_facts_and_movement(world):
    result = world["result"]
    assert result["written"] == 4 and result["videos"] == 6 and result["dims"] == {"RGB": 1024}
    assert sorted(map(tuple, result["failed"])) == sorted(BAD.items())
    with h5py.File(world["out"], "r") as f:
        assert f.attrs["complete"] and int(f.attrs["n_videos"]) == 4 and int(f.attrs["n_skipped"]) == 2
        assert f.attrs["keep_snippets"] == "all" and f.attrs["extractor"] == "I3D"
        log = dict(zip(f["log/path"].asstr()[()], f["log/reason"].asstr()[()]))
        assert log == BAD
        groups = {g.attrs["path"]: g for g in f["videos"].values()}
        assert set(groups) == set(VIDEOS)
        for g in groups.values():
            assert g["segments/RGB"].shape == (1, 32, 1024)
            assert g["snippets/RGB"].shape == (T // 16, 1024)  # kept for train videos too
            assert int(g.attrs["frames"]) == T and g.attrs["fps"] == pytest.approx(25, abs=0.01)
            assert np.isfinite(g["snippets/RGB"][()]).all()
        test_video = groups["Burglary/Burglary035_x264.avi"]
        assert test_video.attrs["split"] == "test" and test_video.attrs["cls"] == "Burglary"
        assert test_video.attrs["spans"].tolist() == [[1, T]]  # catalogue span clipped to the video
        assert groups["Abuse/Abuse001_x264.avi"].attrs["split"] == "train"
        move = {p: g["movement"][()] for p, g in groups.items()}
        assert move["Abuse/Abuse001_x264.avi"].mean() > 10 * move[
            "Training_Normal_Videos_Anomaly/Normal_Videos001_x264.avi"].mean()


def test_rerun_skips_everything(world, caplog):
    caplog.set_level("INFO")
    before = world["out"].stat().st_mtime_ns
    again = extract(_cfg(world["tmp"], [f"videos={world['videos']}", f"out={world['out']}", "movement=lk"],
                         "rerun"))
    assert again["written"] == 0 and again["skipped"] == 6 and again["clips"] == 0
    assert again["already_done"] == 4
    # The summary says each count once: no "0 skipped" after "2 bad".
    assert f"store {world['out']}: 6 videos: 0 written, 4 already done, 2 bad" in caplog.text
    assert "skipped" not in caplog.text
    assert sorted(map(tuple, again["failed"])) == sorted(BAD.items())
    assert world["out"].stat().st_mtime_ns == before


def test_resume_does_not_retry_bad_videos(tmp_path, cache_dir, monkeypatch):
    from vad.data.layouts.videos import VideoLayout

    videos = tmp_path / "videos"
    (videos / "a_bad.mp4").parent.mkdir(parents=True)
    (videos / "a_bad.mp4").write_bytes(b"junk")
    write_video(videos / "b.avi", static_scene(16))
    out = tmp_path / "s.h5"
    calls = []
    real = VideoLayout.extract_video

    def interrupted(self, path, entry=None):
        calls.append(entry.video.path)
        if entry.video.path == "b.avi" and len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, path, entry)

    monkeypatch.setattr(VideoLayout, "extract_video", interrupted)
    with pytest.raises(KeyboardInterrupt):
        extract(_cfg(tmp_path, [f"videos={videos}", f"out={out}"]))
    assert store.partial_path(out).is_file() and not out.exists()
    result = extract(_cfg(tmp_path, [f"videos={videos}", f"out={out}"], "resume"))
    assert calls == ["a_bad.mp4", "b.avi", "b.avi"]  # the bad video is not retried
    assert result["written"] == 1 and result["failed"] == [["a_bad.mp4", "unreadable"]]
    with h5py.File(out, "r") as f:
        assert list(f["log/path"].asstr()[()]) == ["a_bad.mp4"] and "skipped" not in f
    with pytest.raises(ValueError, match="other settings"):
        extract(_cfg(tmp_path, [f"videos={videos}", f"out={out}", "movement=lk"], "other"))


def test_missing_weights_fail_before_reading_videos(tmp_path, cache_dir):
    cfg = make_cfg([f"videos={tmp_path / 'nowhere'}", f"out={tmp_path / 's.h5'}",
                    f"weights.rgb={tmp_path / 'rgb_imagenet.pt'}"], tmp_path / "run", "extract")
    with pytest.raises(FileNotFoundError, match="weights file not found") as err:
        extract(cfg)
    assert "rgb_imagenet.pt" in str(err.value) and "weights.rgb=" in str(err.value)
    assert not list(tmp_path.glob("s.h5*"))


def test_shard_names():
    assert shard_out("f.h5", 0, 1) == Path("f.h5")
    assert shard_out("f.h5", 1, 4) == Path("f.shard1of4.h5")
    assert shard_out("f_{shard}_of_{num_shards}.h5", 2, 4) == Path("f_2_of_4.h5")


def test_multirun_shards_merge_to_the_unsharded_store(world, cache_dir):
    tmp = world["tmp"]
    # -X importtime lists every module imported: extraction needs torch, never Lightning.
    proc = run_cli(["-X", "importtime", "-m", "vad.extract", "-m", "shard=0,1", "num_shards=2", f"videos={world['videos']}",
                    f"out={tmp / 'part.h5'}", "weights.rgb=random", "movement=lk", "progress=false",
                    f"hydra.sweep.dir={tmp / 'sweep'}"], cwd=ROOT, env_cache=cache_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    imported = set(re.findall(r"\|\s+([\w.]+)$", proc.stderr, re.M))
    assert "torch" in imported and not {"pytorch_lightning", "lightning_fabric"} & imported
    shards = [tmp / "part.shard0of2.h5", tmp / "part.shard1of2.h5"]
    assert all(p.is_file() for p in shards)
    merged = tmp / "merged.h5"
    result = prepare(make_cfg([f"merge=[{shards[1]},{shards[0]}]", f"out={merged}", "expect_shards=2"],
                              tmp / "merge", "prepare"))
    assert result["written"] == 4 and sorted(map(tuple, result["failed"])) == sorted(BAD.items())
    single, joined = _features(world["out"]), _features(merged)
    assert single.keys() == joined.keys()
    for path in single:
        for a, b in zip(single[path], joined[path]):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    with h5py.File(world["out"], "r") as f, h5py.File(merged, "r") as g:
        assert list(f["index/path"].asstr()[()]) == list(g["index/path"].asstr()[()])
        assert int(g.attrs["n_videos"]) == 4 and int(g.attrs["n_skipped"]) == 2
    # The same shard twice is refused, naming the video; a missing shard too.
    twin = tmp / "twin.h5"
    shutil.copy(shards[0], twin)
    with pytest.raises(ValueError, match="missing|is in both"):
        store.merge([shards[0], twin], tmp / "bad.h5")
    with pytest.raises(ValueError, match="missing \\[1\\]"):
        store.merge([shards[0]], tmp / "bad.h5")
    with pytest.raises(ValueError, match="expect_shards=3"):
        store.merge(shards, tmp / "bad.h5", expect_shards=3)


def test_train_on_an_extracted_store(world, cache_dir):
    from vad.train import train

    run = world["tmp"] / "train"
    train(make_cfg(["data=store", f"data.path={world['out']}", "extractor=I3D", "modality=RGB", "data.batch_size=1",
                    "trainer.max_epochs=1", "logger=none", "trainer.enable_progress_bar=false"], run))
    metrics = json.loads((run / "metrics.json").read_text())
    assert math.isfinite(metrics["best"]["auc"]) and "vad store" in metrics["data"]


def test_c3d_two_streams(tmp_path, cache_dir):
    """C3D RGB + denseflow FLOW (one shared network) on a one-clip video."""
    videos = tmp_path / "videos"
    write_video(videos / "x.avi", moving_square(16))
    out = tmp_path / "c3d.h5"
    result = extract(_cfg(tmp_path, [f"videos={videos}", f"out={out}", "extractor=C3D", "modality=TWO",
                                     "flow=farneback"]))
    assert result["dims"] == {"RGB": 4096, "FLOW": 4096} and result["written"] == 1
    with h5py.File(out, "r") as f:
        g = f["videos/000000"]
        assert g["snippets/RGB"].shape == (1, 4096) and g["snippets/FLOW"].shape == (1, 4096)
        assert g.attrs["split"] == "test" and g.attrs["cls"] == "Normal"  # unlabelled video
        assert f.attrs["flow_method"] == "farneback"


def test_i3d_flow_stream_and_ten_crop_with_weights_random(tmp_path, cache_dir):
    """I3D two-stream (flow through the 2-channel network) with ten crops on a one-clip video:
    per-clip features keep the crop mean, the 32-segment features follow crops=mean.
    ``weights=random`` (one string, composed by Hydra over the weights mapping) gives every
    stream random weights."""
    videos = tmp_path / "videos"
    write_video(videos / "x.avi", moving_square(16, dx=3))
    out = tmp_path / "i3d.h5"
    cfg = make_cfg([f"videos={videos}", f"out={out}", "modality=TWO", "weights=random", "flow=farneback",
                    "ten_crop=true", "progress=false"], tmp_path / "run", "extract")
    assert cfg.weights == "random"
    result = extract(cfg)
    assert result["dims"] == {"RGB": 1024, "FLOW": 1024} and result["written"] == 1
    with h5py.File(out, "r") as f:
        g = f["videos/000000"]
        assert g["segments/RGB"].shape == (1, 32, 1024) and g["segments/FLOW"].shape == (1, 32, 1024)
        assert g["snippets/FLOW"].shape == (1, 1024)
        rgb, flow = g["snippets/RGB"][()], g["snippets/FLOW"][()]
        assert np.isfinite(flow).all() and not np.allclose(rgb, flow)
        assert bool(f.attrs["ten_crop"]) and f.attrs["flow_method"] == "farneback"
        assert f.attrs["weights_rgb"] == f.attrs["weights_flow"] == "random"


def test_weights_per_stream_or_one_string_for_every_needed_stream():
    from vad.extraction.networks import stream_weights

    assert stream_weights("random", "I3D", ("RGB", "FLOW")) == {"RGB": "random", "FLOW": "random"}
    assert stream_weights("random", "I3D", ("RGB",)) == {"RGB": "random", "FLOW": None}
    assert stream_weights({"rgb": "random", "flow": None}, "I3D", ("RGB",)) == {"RGB": "random", "FLOW": None}
    assert stream_weights({"rgb": "/w/c3d.pickle"}, "C3D", ("RGB", "FLOW")) == {
        "RGB": "/w/c3d.pickle", "FLOW": "/w/c3d.pickle"}  # denseflow through the RGB network
    assert stream_weights({"rgb": "/w/c3d.pickle"}, "C3D", ("RGB",))["FLOW"] is None
    assert stream_weights(None, "I3D", ("RGB",)) == {"RGB": None, "FLOW": None}
    with pytest.raises(ValueError, match=r"weights has keys \['depth'\]: expected weights.rgb"):
        stream_weights({"rgb": "random", "depth": "x"}, "I3D", ("RGB",))


def _pasted(command: str, prefix: list[str]) -> dict:
    """The overrides Hydra reads from a printed command once the shell has split it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    args = shlex.split(command)
    assert args[:len(prefix)] == prefix
    return {o.key_or_group: o.value() for o in OverridesParser.create().parse_overrides(args[len(prefix):])}


def test_next_step_commands_paste_back_with_spaces_and_accents(tmp_path):
    from vad.extract import next_step

    out = tmp_path / "my feats" / "i3d é.h5"
    cfg = make_cfg([f"videos={tmp_path}", f"out='{out}'", "num_shards=2", "shard=1", "modality=TWO"],
                   tmp_path / "run", "extract")
    result = {"out": str(shard_out(out, 1, 2)), "shard": 1, "num_shards": 2, "extractor": "I3D"}
    hint = next_step(cfg, result)
    assert hint.startswith("once every shard is done, merge them: ")
    merge = _pasted(hint.split(": ", 1)[1], ["python", "-m", "vad.prepare"])
    assert merge == {"merge": [str(shard_out(out, 0, 2)), str(shard_out(out, 1, 2))], "out": str(out),
                     "expect_shards": 2}

    cfg = make_cfg([f"videos={tmp_path}", f"out='{out}'", "modality=TWO"], tmp_path / "run", "extract")
    hint = next_step(cfg, {"out": str(out), "shard": 0, "num_shards": 1, "extractor": "I3D"})
    assert _pasted(hint.split(": ", 1)[1], ["python", "-m", "vad.train"]) == {
        "data": "store", "data.path": str(out), "extractor": "I3D", "modality": "TWO"}


def test_flow_workers_auto_leaves_the_cpu_to_the_network():
    import os

    import torch

    from vad.extraction.networks import flow_workers as _flow_workers

    assert _flow_workers("auto", torch.device("cpu")) == 1
    assert _flow_workers("auto", torch.device("cuda")) == max(1, (os.cpu_count() or 2) - 1)
    assert _flow_workers(3, torch.device("cpu")) == 3
    with pytest.raises(ValueError, match="flow_workers=0"):
        _flow_workers(0, torch.device("cpu"))
