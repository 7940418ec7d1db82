"""``vad.detection.detector``: a checkpoint as a detector. ``mode=video`` scores equal those of
``vad.extract`` + ``vad.evaluate`` for the same videos (real OpenCV videos, I3D with random
weights, the movement term at test); the streaming window input against a hand computation;
weights that do not fit the checkpoint are refused naming what is needed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import make_cfg, make_checkpoint
from tests.test_extractor_networks import C3D_LAYOUT
from tests.videos import moving_square, static_scene, write_video
from vad.cli import UserError
from vad.data.convert import to_segments
from vad.detection.detector import Detector, StreamScorer
from vad.extraction.pipeline import ClipPipeline, VideoFeatures
from vad.extractors import InceptionI3d
from vad.extractors.weights import file_weight_kind
from vad.metrics import FrameTruth
from vad.types import Video

# Named after UCF-Crime test videos (split, class and spans from the catalogue): 2 clips + 8 tail
# frames, and 1 clip + 3 tail frames (I3D on this CPU: seconds per clip).
VIDEOS = {"Burglary/Burglary035_x264.avi": 40, "Testing_Normal_Videos_Anomaly/Normal_Videos_872_x264.avi": 19}


@pytest.fixture(scope="module")
def world(tmp_path_factory, cache_dir):
    from vad.evaluate import evaluate
    from vad.extract import extract

    tmp = tmp_path_factory.mktemp("detector")
    videos = tmp / "videos"
    for i, (rel, frames) in enumerate(VIDEOS.items()):
        clip = moving_square(frames, dx=4, seed=i) if i == 0 else static_scene(frames, seed=i)
        write_video(videos / rel, clip, fps=25)
    store = tmp / "store.h5"
    extract(make_cfg(["weights.rgb=random", "progress=false", f"videos={videos}", f"out={store}",
                      "extractor=I3D", "modality=RGB", "movement=lk"], tmp / "extract", "extract"))
    ckpt = make_checkpoint(tmp / "det.ckpt", ["extractor=I3D", "modality=RGB", "movement=lk",
                                              "movement.at_test=true", "data=store", f"data.path={store}"], 1024)
    evaluate(make_cfg([f"ckpt_path={ckpt}", "data=store", f"data.path={store}", "eval.timeline_videos=0"],
                      tmp / "evaluate", "evaluate"), overridden={"data"})
    scores = dict(np.load(tmp / "evaluate" / "scores.npz"))
    return {"tmp": tmp, "videos": videos, "ckpt": ckpt, "scores": scores}


def test_video_scores_equal_extract_and_evaluate(world):
    detector = Detector.from_checkpoint(world["ckpt"])
    assert (detector.extractor, detector.streams, detector.movement, detector.movement_k) == ("I3D", ("RGB",), "lk", 0.5)
    assert detector.calibration is None and detector.causal
    options = detector.pipeline_options()
    assert options == {"extractor": "I3D", "flow": None, "movement": True}
    pipeline = ClipPipeline(detector.networks("random", torch.device("cpu")), device=torch.device("cpu"), **options)
    stored = world["scores"]
    offsets = stored["offsets"]
    for i, path in enumerate(stored["path"]):
        video = pipeline.run(world["videos"] / path)
        segments, frames = detector.video_scores(video)
        expected = stored["scores"][offsets[i]:offsets[i + 1]]
        assert segments.shape == (32,) and frames.shape == (VIDEOS[path],) and frames.dtype == np.float32
        np.testing.assert_allclose(segments, expected, atol=1e-6, rtol=0)
        # frames expanded as vad.metrics counts them: segment frames, then the tail on the last segment
        spans = stored["spans"][stored["span_offsets"][i]:stored["span_offsets"][i + 1]]
        truth = FrameTruth.from_videos([Video(path, "Normal", int(stored["frames"][i]), tuple(map(tuple, spans)))])
        full = truth.with_tail(expected[None].astype(np.float64)).ravel()
        np.testing.assert_allclose(frames, np.repeat(full, (truth.pos + truth.neg).ravel().astype(int)),
                                   atol=1e-6, rtol=0)
    assert len(stored["path"]) == len(VIDEOS)


def test_two_streams_average_crops_pool_and_concatenate_in_modality_order(tmp_path, cache_dir):
    ckpt = make_checkpoint(tmp_path / "two.ckpt", ["extractor=I3D", "modality=TWO"], 2 * 6, seed=3)
    detector = Detector.from_checkpoint(ckpt)
    assert detector.streams == ("RGB", "FLOW") and detector.movement_k == 0.0
    rng = np.random.default_rng(0)
    raw = {s: rng.random((37, 10, 6)).astype(np.float32) for s in ("FLOW", "RGB")}  # dict order != modality
    segments, frames = detector.video_scores(VideoFeatures(raw, None, 37 * 16 + 5, 30.0))
    x = np.concatenate([to_segments(raw["RGB"], "clips")[0], to_segments(raw["FLOW"], "clips")[0]], axis=1)
    with torch.no_grad():
        expected = detector.network(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(segments, expected, atol=1e-6)
    assert frames.shape == (37 * 16 + 5,) and frames[-1] == segments[-1]
    with torch.no_grad():
        windows = detector.network(torch.from_numpy(x[:4])).numpy()
    np.testing.assert_allclose(detector.score_windows(x[:4, None]), windows, atol=1e-6)


def test_stream_scorer_window_mean_l2_and_causal_smoothing():
    rng = np.random.default_rng(1)
    clips = [{"RGB": rng.random((2, 5)), "FLOW": rng.random((1, 3))} for _ in range(6)]
    scorer = StreamScorer(("RGB", "FLOW"), window=3, smoothing=2)
    for t, clip in enumerate(clips):
        got = scorer.window_input(clip)[-1]
        parts = []
        for stream in ("RGB", "FLOW"):
            mean = np.mean([c[stream].mean(axis=0) for c in clips[max(0, t - 2):t + 1]], axis=0)
            parts.append(mean / np.linalg.norm(mean))
        np.testing.assert_allclose(got, np.concatenate(parts), atol=1e-6)
        assert got.shape == (8,) and got.dtype == np.float32
    smoothed = [scorer.smooth(s) for s in (1.0, 0.0, 0.5, 0.25)]
    assert smoothed == pytest.approx([1.0, 0.5, 0.25, 0.375])  # mean of this and the previous score
    with pytest.raises(ValueError, match="window=0"):
        StreamScorer(("RGB",), window=0)


def test_a_look_back_method_streams_the_scores_it_gives_a_whole_video(tmp_path, cache_dir):
    # Top-k MIL with a causal convolution over 3 snippets, trained on raw (not L2) segments and
    # scored per snippet: streamed clip by clip (window 1) it gives the whole video's scores.
    ckpt = make_checkpoint(tmp_path / "topk.ckpt", ["method=topk_mil", "method.network.causal_window=3",
                                                    "extractor=I3D", "modality=RGB"], 6, seed=4)
    detector = Detector.from_checkpoint(ckpt)
    assert detector.method == "topk_mil" and detector.causal and detector.receptive_field == 3
    assert detector.protocol == "snippets" and not detector.pooling.normalise
    raw = {"RGB": np.random.default_rng(5).random((9, 2, 6)).astype(np.float32)}
    snippets, frames = detector.video_scores(VideoFeatures(raw, None, 9 * 16 + 3, 30.0))
    with torch.no_grad():
        expected = detector.network(torch.from_numpy(raw["RGB"].mean(axis=1))[None])[0].numpy()
    np.testing.assert_allclose(snippets, expected, atol=1e-6)
    assert snippets.shape == (9,) and frames.shape == (9 * 16 + 3,) and frames[16] == snippets[1]
    scorer = StreamScorer(detector.streams, window=1, normalise=False, receptive_field=3)
    inputs = [scorer.window_input({"RGB": raw["RGB"][t]}) for t in range(9)]
    assert [len(x) for x in inputs] == [1, 2, 3, 3, 3, 3, 3, 3, 3]
    streamed = [detector.score_windows(x[None])[0] for x in inputs]
    np.testing.assert_allclose(streamed, expected, atol=1e-6)
    with pytest.raises(ValueError, match="smoothing=0"):
        StreamScorer(("RGB",), window=2, smoothing=0)


def test_an_audio_checkpoint_is_refused(tmp_path, cache_dir):
    ckpt = make_checkpoint(tmp_path / "audio.ckpt", ["dataset=xd_violence", "modality=RGB_AUDIO"], 1024 + 128)
    with pytest.raises(UserError, match=r"trained with the AUDIO stream \(modality=RGB_AUDIO.*no VGGish network"):
        Detector.from_checkpoint(ckpt)


def test_i3d_r50_checkpoint_is_refused(tmp_path, cache_dir):
    ckpt = make_checkpoint(tmp_path / "r50.ckpt", ["extractor=I3D_R50"], 2048)
    with pytest.raises(UserError, match="trained on I3D_R50 features, which vad cannot compute") as err:
        Detector.from_checkpoint(ckpt)
    assert "extractor=C3D or extractor=I3D" in str(err.value)


def _save(path: Path, shapes: dict) -> Path:
    """A weights file with the real key layout; each tensor one value expanded (a tiny file)."""
    torch.save({k: torch.zeros(1).expand(*shape) for k, shape in shapes.items()}, path)
    return path


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("weights")
    shapes = {c: {k: tuple(v.shape) for k, v in InceptionI3d(in_channels=c).state_dict().items()
                  if not k.endswith("num_batches_tracked")} for c in (3, 2)}
    return {"I3D_RGB": _save(tmp / "rgb_imagenet.pt", shapes[3]), "I3D_FLOW": _save(tmp / "flow_imagenet.pt", shapes[2]),
            "C3D_RGB": _save(tmp / "c3d.pickle", C3D_LAYOUT), "other": _save(tmp / "other.pt", {"fc.weight": (2, 3)})}


def test_weight_files_are_recognised(weight_files):
    assert {k: file_weight_kind(p) for k, p in weight_files.items()} == {
        "I3D_RGB": "I3D_RGB", "I3D_FLOW": "I3D_FLOW", "C3D_RGB": "C3D_RGB", "other": None}


def test_check_weights_refuses_what_does_not_fit(tmp_path, cache_dir, weight_files):
    i3d_two = Detector.from_checkpoint(make_checkpoint(tmp_path / "two.ckpt", ["extractor=I3D", "modality=TWO"], 2048))
    rgb, flow = str(weight_files["I3D_RGB"]), str(weight_files["I3D_FLOW"])
    assert i3d_two.check_weights({"rgb": rgb, "flow": flow}) == {"RGB": rgb, "FLOW": flow}
    assert i3d_two.check_weights("random") == {"RGB": "random", "FLOW": "random"}
    with pytest.raises(UserError) as err:
        i3d_two.check_weights({"rgb": rgb, "flow": None})
    message = str(err.value)
    assert "was trained on I3D TWO (RGB+FLOW) features: give weights.rgb=PATH and weights.flow=PATH" in message
    assert "weights.flow: the I3D Kinetics flow weights flow_imagenet.pt" in message and str(i3d_two.checkpoint) in message
    with pytest.raises(UserError) as err:  # the streams swapped
        i3d_two.check_weights({"rgb": flow, "flow": rgb})
    assert f"weights.rgb={flow} holds I3D_FLOW weights (flow_imagenet.pt)" in str(err.value)
    assert "needs the I3D Kinetics RGB weights rgb_imagenet.pt" in str(err.value)

    i3d_rgb = Detector.from_checkpoint(make_checkpoint(tmp_path / "rgb.ckpt", ["extractor=I3D", "modality=RGB"], 1024))
    with pytest.raises(UserError) as err:  # a C3D file for an I3D checkpoint
        i3d_rgb.check_weights({"rgb": str(weight_files["C3D_RGB"])})
    assert "holds C3D_RGB weights (c3d.pickle), but this checkpoint" in str(err.value)
    assert "trained on I3D RGB (RGB) features: its RGB stream needs the I3D Kinetics RGB weights" in str(err.value)
    with pytest.raises(UserError, match="holds neither C3D nor I3D weights"):
        i3d_rgb.check_weights({"rgb": str(weight_files["other"])})
    with pytest.raises(FileNotFoundError, match="weights file not found: .*nowhere.pt. I3D_RGB needs"):
        i3d_rgb.check_weights({"rgb": str(tmp_path / "nowhere.pt")})

    c3d_two = Detector.from_checkpoint(make_checkpoint(tmp_path / "c3d.ckpt", ["extractor=C3D", "modality=TWO"], 8192))
    c3d = str(weight_files["C3D_RGB"])  # C3D's FLOW is rendered flow through the same network
    assert c3d_two.check_weights({"rgb": c3d, "flow": None}) == {"RGB": c3d, "FLOW": c3d}
    with pytest.raises(UserError, match="holds I3D_RGB weights"):
        c3d_two.check_weights({"rgb": rgb})
    with pytest.raises(UserError, match=r"trained on C3D TWO \(RGB\+FLOW\) features: give weights.rgb=PATH \("):
        c3d_two.check_weights({"rgb": None, "flow": None})
