"""vad.detection.streaming.run_stream: several sources batched through one network, latency and
status lines, the ways a run ends (all sources done, max_seconds, Ctrl-C, a stream that stops
mid-way and comes back or not), no reader thread left behind."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pytest
import torch
from torch import nn

from tests.streams import MJPEGServer
from tests.videos import moving_square, translating_pattern, write_video
from vad.detection.sources import ClipSource, parse_sources
from vad.detection.streaming import run_stream
from vad.extraction.pipeline import ClipPipeline

H, W = 48, 64


class Tiny(nn.Module):
    """A stand-in extractor network: (N, 3, 16, 112, 112) -> (N, 8)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(3, 8)

    def forward(self, x):
        return self.fc(x.mean(dim=(2, 3, 4)))


class Recording(ClipPipeline):
    """The real pipeline, remembering which prepared clips went into each run_networks call."""

    def __init__(self, networks=None, **kwargs):
        super().__init__(networks or {"RGB": Tiny()}, "C3D", torch.device("cpu"), **kwargs)
        self.calls: list[list[int]] = []

    def run_networks(self, items):
        self.calls.append([id(item) for item in items])
        return super().run_networks(items)


def reader_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(("vad-source", "vad-prepare"))]


def sources_of(pipeline, specs, **kwargs) -> list[ClipSource]:
    return [ClipSource(s, pipeline.preparer(), **kwargs) for s in parse_sources(specs)]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stream_videos")
    return [write_video(folder / "a.avi", moving_square(96, H, W, dx=2, size=16), fps=30),
            write_video(folder / "b.avi", translating_pattern(64, H, W, dx=1, seed=3), fps=30)]


def test_clips_of_two_sources_share_batches_and_get_their_own_features(videos):
    pipeline = Recording()
    sources = sources_of(pipeline, [str(v) for v in videos])
    seen = []

    def on_clip(clip, features):
        seen.append((id(clip.inputs), clip.source.name, clip.index, clip.inputs, features))
        time.sleep(0.01)  # slower than reading: the queues fill up

    result = run_stream(sources, pipeline, on_clip, batch_size=4)
    assert result["stopped_by"] == "end" and not result["interrupted"]
    assert {n: s["clips_scored"] for n, s in result["sources"].items()} == {"a": 6, "b": 4}
    assert result["clips_scored"] == 10 and result["batches"] == len(pipeline.calls)
    for name in ("a", "b"):  # every clip once, in order
        assert [i for _, n, i, _, _ in seen if n == name] == list(range(6 if name == "a" else 4))
    owner = {key: name for key, name, *_ in seen}
    assert max(len(call) for call in pipeline.calls) <= 4
    assert any(len({owner[key] for key in call}) == 2 for call in pipeline.calls)
    with torch.no_grad():
        for _, _, _, inputs, features in seen:  # the network on this clip alone
            np.testing.assert_allclose(features["RGB"], Tiny()(inputs["RGB"]).numpy(), atol=1e-6)
            assert features["RGB"].shape == (1, 8)
    assert reader_threads() == []


def test_streamed_features_equal_the_extraction_pipelines(videos):
    """Clips scored by run_stream get what vad.extract's pipeline gives for the same file: the
    state that spans clips (flow from the previous clip's last frame, the LK tracker) included."""
    pipeline = ClipPipeline({"RGB": Tiny(), "FLOW": Tiny()}, "C3D", torch.device("cpu"),
                            flow="farneback", movement=True, batch_size=4)
    expected = pipeline.run(videos[0])
    got = {}

    def on_clip(clip, features):
        got[clip.index] = (features, clip.inputs["movement"])

    result = run_stream(sources_of(pipeline, [str(videos[0])]), pipeline, on_clip, batch_size=3)
    assert result["sources"]["a"]["clips_scored"] == len(got) == 6
    for stream in ("RGB", "FLOW"):
        np.testing.assert_allclose(np.stack([got[i][0][stream] for i in range(6)]),
                                   expected.features[stream], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose([got[i][1] for i in range(6)], expected.movement, rtol=1e-6)
    assert np.all(expected.movement > 0)


def test_latency_percentiles_and_the_status_line(videos, caplog):
    pipeline = Recording()
    mine = []

    def on_clip(clip, features):
        time.sleep(0.03)
        mine.append(time.perf_counter() - clip.arrived)

    with caplog.at_level(logging.INFO, logger="vad.detection.streaming"):
        result = run_stream(sources_of(pipeline, [str(videos[0])], realtime=True), pipeline, on_clip,
                            batch_size=2, status_every_s=0.5)
    stats = result["sources"]["a"]
    assert stats["clips_scored"] == len(mine) == 6
    p50, p95 = np.percentile(mine, [50, 95])
    assert stats["latency_p50_s"] == pytest.approx(p50, abs=0.005)
    assert stats["latency_p95_s"] == pytest.approx(p95, abs=0.005)
    assert 0.03 <= stats["latency_p50_s"] < 0.5
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("stream ")]
    assert len(lines) >= 3  # 3.2 s of video at native fps, a line every 0.5 s, and the last one
    assert all(" | a: " in line and " fps in, " in line and " dropped" in line for line in lines)
    assert "a: " in lines[-1] and "6 clips scored, latency p50 " in lines[-1]
    assert f"p50 {stats['latency_p50_s']:.2f} s p95 {stats['latency_p95_s']:.2f} s, 0 dropped" in lines[-1]


def test_max_seconds_stops_a_live_stream_and_joins_its_readers():
    frames = moving_square(64, H, W, dx=2, size=16)
    pipeline = Recording()
    with MJPEGServer(frames, fps=60, loop=True) as server:
        started = time.perf_counter()
        result = run_stream(sources_of(pipeline, [server.url]), pipeline, lambda c, f: None,
                            batch_size=4, max_seconds=1.5)
        elapsed = time.perf_counter() - started
    name = parse_sources(server.url)[0].name
    assert result["stopped_by"] == "max_seconds" and not result["interrupted"]
    assert 1.5 <= elapsed < 4
    stats = result["sources"][name]
    assert stats["end_reason"] == "stopped" and stats["error"] is None
    assert stats["clips_scored"] >= 2 and stats["frames_in"] >= 40
    assert reader_threads() == []


def test_ctrl_c_in_the_callback_ends_cleanly(videos, caplog):
    pipeline = Recording()
    sources = sources_of(pipeline, [str(v) for v in videos], realtime=True)
    calls = []

    def on_clip(clip, features):
        calls.append(clip.index)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with caplog.at_level(logging.WARNING, logger="vad.detection.streaming"):
        result = run_stream(sources, pipeline, on_clip, batch_size=1)
    assert result["interrupted"] and result["stopped_by"] == "interrupt"
    assert result["clips_scored"] == 1  # the interrupted clip is not counted as scored
    assert all(s.closed for s in sources) and reader_threads() == []
    assert "interrupted: stopping the sources" in caplog.text


@pytest.mark.parametrize("comes_back", [True, False])
def test_a_stream_that_stops_midway_reconnects_then_ends_cleanly(comes_back, caplog):
    frames = moving_square(112, H, W, dx=1, size=16)
    pipeline = Recording()
    with MJPEGServer(frames, fps=200, outages=[(48, 0.3 if comes_back else None)]) as server:
        source = ClipSource(parse_sources(server.url)[0], pipeline.preparer(), reconnect_retries=3,
                            reconnect_delay_s=0.25)
        scored = []
        with caplog.at_level(logging.WARNING, logger="vad.detection.sources"):
            result = run_stream([source], pipeline, lambda c, f: scored.append(c.start_frame),
                                batch_size=2)
    stats = result["sources"][source.source.name]
    messages = [r.getMessage() for r in caplog.records]
    assert f"{server.url}: stream stopped after 48 frames; reconnecting in 0.2 s (attempt 1/3)" in messages
    assert result["stopped_by"] == "end" and stats["error"] is None
    if comes_back:  # all 112 frames: 3 clips before the break, 4 after
        assert stats["reconnects"] == 1 and any("reconnected" in m for m in messages)
        assert stats["frames_in"] == 112 and scored == [0, 16, 32, 48, 64, 80, 96]
        stopped_after = 112
    else:
        assert stats["reconnects"] == 0 and stats["frames_in"] == 48 and scored == [0, 16, 32]
        stopped_after = 48
    assert stats["end_reason"] == (f"{server.url} stopped after {stopped_after} frames and could not be "
                                   "reopened after 3 attempts")
    assert stats["clips_scored"] == stats["clips_read"] == len(scored)
    assert reader_threads() == []
