"""``vad.detect`` speed: scoring throughput against the network alone, streaming latency, and
memory over a long stream; C3D RGB and I3D RGB with ``weights=random`` on a generated
320x240, 30 fps video, ``device=auto``, ``batch_size=8``.

1. Throughput (clips/s): the extractor network's forward on pre-decoded, pre-prepared clips;
   ``mode=video`` (``vad.detect.Run.score_file``: decode + preprocess in a background thread,
   network, 32 segments, events, scores.csv / events.json / timeline.png) and ``mode=stream``
   of the file read as fast as it goes (``Run.stream`` with ``realtime=false``: reader and
   preparer threads, ``run_stream``, causal scores, the same outputs), each as a ratio to the
   forward throughput (goal >= 0.9), and the real-time factor (video seconds per wall second).
   Interleaved rounds, medians. ``annotate=false report=false``: no video encoding is timed.
2. ``realtime=true`` (the file delivered at its native fps, as a camera would): latency from a
   clip's 16th frame to its score (p50, p95 of ``run_stream``'s stats) and the dropped clips.
3. Memory over a long stream: a 20-minute source (36,000 frames at 30 fps: a 10-s generated clip
   looped into one mp4v file) streamed as fast as it can be read, RSS (VmRSS, sampled every
   ``--sample-every`` seconds) at the start of scoring (the first sample once clips are scored,
   after the queues and the allocator's arenas have filled; the RSS after the very first batch
   is printed too) and after the last batch, growth in % (goal <= 5 %). To get through 20 minutes
   of video on 2 CPU cores, the extractor network is replaced there by a cheap module with
   C3D's output shape (a pooled linear map to 4096-d): what is measured is the pipeline's
   memory (decoding, queues, scoring, outputs), not the network's.

    .venv/bin/python experiments/bench/bench_detect.py [--clips 10] [--rounds 3] [--minutes 20]
        [--device auto] [--out DIR] [--tiny]

``--tiny`` (one 2-clip video, C3D only, one round, a 30-second looped source) runs in well
under a minute and prints the same rows: it keeps the benchmark working, its numbers mean
nothing. Results go to ``--out``/bench_detect.json (default: a temporary folder, not kept).
Nothing here is asserted on timings; on a shared machine the numbers drift between runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.conftest import make_cfg, make_checkpoint  # noqa: E402
from tests.videos import moving_square, write_video  # noqa: E402
from vad.constants import CLIP_FRAMES  # noqa: E402

FPS = 30.0
HEIGHT, WIDTH = 240, 320
FEATURE_DIM = {"C3D": 4096, "I3D": 1024}
GOAL_RATIO, GOAL_GROWTH = 0.9, 5.0


def rss_kib() -> int:
    """This process's resident set size (VmRSS), KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


class CheapExtractor(torch.nn.Module):
    """A stand-in for the network with its output shape: (N, ch, 16, s, s) -> (N, dim), the
    clip's per-channel mean through a fixed linear map (microseconds, not seconds, per clip)."""

    def __init__(self, channels: int, dim: int):
        super().__init__()
        self.linear = torch.nn.Linear(channels, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.linear(x.mean(dim=(2, 3, 4))))


def detect_run(extractor: str, video: Path, work: Path, device: str, batch: int):
    """A ``vad.detect.Run`` (composed ``conf/detect.yaml``) for a random checkpoint of
    ``extractor`` RGB, its source and the (empty) ground truth."""
    from vad.detect import Run, Truth, sources_of

    ckpt = make_checkpoint(work / f"{extractor}.ckpt", [f"extractor={extractor}", "modality=RGB"],
                           FEATURE_DIM[extractor])
    cfg = make_cfg([f"ckpt_path={ckpt}", f"source={video}", "weights=random", f"device={device}",
                    f"batch_size={batch}", "annotate=false", "report=false", "status_every_s=60"],
                   work / f"detect_{extractor}", "detect")
    run = Run(cfg)
    sources = sources_of(cfg)
    return run, sources, Truth.of(None, sources)


def bench_extractor(extractor: str, video: Path, work: Path, device: str, batch: int, rounds: int) -> dict:
    from vad.detection.outputs import timeline_png
    from vad.video import ClipReader

    run, (source,), truth = detect_run(extractor, video, work, device, batch)
    model = run.pipeline.networks["RGB"]
    preparer = run.pipeline.preparer()
    try:
        reader = ClipReader(str(video))
        inputs = [preparer.prepare(clip)["RGB"] for clip in reader]
    finally:
        preparer.close()
    clips, frames = len(inputs), int(reader.frames)
    video_s = frames / FPS
    with torch.no_grad():  # warm-up: the first forward and the first figure pay one-off costs
        model(torch.cat(inputs[:batch]).to(run.device)).cpu()
    timeline_png(work / "warmup.png", np.zeros(frames, np.float32), FPS, [], 0.5)

    def forward() -> float:
        t0 = time.perf_counter()
        with torch.no_grad():
            for i in range(0, clips, batch):
                model(torch.cat(inputs[i:i + batch]).to(run.device)).cpu()
        return time.perf_counter() - t0

    def video_mode() -> tuple[float, float]:
        t0 = time.perf_counter()
        row = run.score_file(source, truth)
        return time.perf_counter() - t0, float(row["seconds"])

    def stream_mode(realtime: bool) -> tuple[float, dict]:
        run.cfg.realtime = realtime
        t0 = time.perf_counter()
        _, stats = run.stream([source], truth)
        wall = time.perf_counter() - t0
        assert stats["clips_scored"] + stats["sources"][source.name]["clips_dropped"] == clips, stats
        return wall, stats

    # Interleaved rounds, medians: this machine's speed drifts between runs.
    times = {"forward": [], "video": [], "video_scoring": [], "stream": [], "stream_scoring": []}
    for _ in range(rounds):
        times["forward"].append(forward())
        wall, scoring = video_mode()
        times["video"].append(wall)
        times["video_scoring"].append(scoring)
        wall, stats = stream_mode(False)
        times["stream"].append(wall)
        times["stream_scoring"].append(stats["seconds"])
    median = {key: float(np.median(values)) for key, values in times.items()}
    wall, stats = stream_mode(True)
    live = stats["sources"][source.name]
    return {"extractor": extractor, "stream": "RGB", "clips": clips, "frames": frames, "fps": FPS,
            "video_s": video_s, "batch": batch, "rounds": rounds, "device": str(run.device),
            "times_s": times, "median_s": median,
            "clips_per_s": {key: clips / median[key] for key in ("forward", "video", "stream")},
            "ratio": {key: median["forward"] / median[key] for key in ("video", "stream")},
            "realtime_factor": {key: video_s / median[key] for key in ("video", "stream")},
            "realtime": {"wall_s": wall, "clips_scored": stats["clips_scored"],
                         "clips_dropped": live["clips_dropped"], "latency_p50_s": live["latency_p50_s"],
                         "latency_p95_s": live["latency_p95_s"], "fps_in": live["fps_in"]}}


def write_long_video(path: Path, seconds: float, loop_s: float = 10.0) -> int:
    """A ``seconds``-long 320x240 mp4v file: a generated ``loop_s`` clip written over and over
    (mp4v: ~4 KiB a frame, so 20 minutes is ~130 MB); returns its frame count."""
    loop = [cv2.cvtColor(f, cv2.COLOR_RGB2BGR) for f in moving_square(int(loop_s * FPS), HEIGHT, WIDTH, dx=3)]
    total = int(round(seconds * FPS))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (WIDTH, HEIGHT))
    if not writer.isOpened():
        raise RuntimeError(f"cv2.VideoWriter cannot write mp4v to {path}")
    try:
        for i in range(total):
            writer.write(loop[i % len(loop)])
    finally:
        writer.release()
    return total


def bench_memory(work: Path, minutes: float, device: str, batch: int, sample_every_s: float) -> dict:
    long_video = work / "long.mp4"
    t0 = time.perf_counter()
    frames = write_long_video(long_video, minutes * 60)
    written_s = time.perf_counter() - t0
    run, (source,), truth = detect_run("C3D", long_video, work, device, batch)
    run.pipeline.networks = {"RGB": CheapExtractor(3, FEATURE_DIM["C3D"]).to(run.device).eval()}
    run.cfg.realtime = False
    marks: dict = {}
    samples: list = []
    networks = run.pipeline.run_networks

    def hooked(items):  # RSS after the first and after the last scored batch
        out = networks(items)
        marks.setdefault("start_kib", rss_kib())
        marks["end_kib"] = rss_kib()
        marks["end_clips"] = run.pipeline.clips_done
        return out

    run.pipeline.run_networks = hooked
    stop = threading.Event()

    def sample() -> None:
        started = time.perf_counter()
        while not stop.wait(sample_every_s):
            samples.append((round(time.perf_counter() - started, 2), run.pipeline.clips_done, rss_kib()))

    sampler = threading.Thread(target=sample, daemon=True)
    before = rss_kib()
    sampler.start()
    t0 = time.perf_counter()
    try:
        _, stats = run.stream([source], truth)
    finally:
        stop.set()
        sampler.join()
    wall = time.perf_counter() - t0
    # The start: the first periodic sample taken while scoring (a few seconds in), once the queues
    # and the allocator's per-thread arenas have filled; the RSS after the first batch shows that ramp.
    scoring = [s for s in samples if s[1] > 0]
    start = scoring[0][2] if scoring else marks["start_kib"]
    end = marks["end_kib"]
    return {"frames": frames, "video_s": frames / FPS, "file_mb": long_video.stat().st_size / 1e6,
            "written_s": written_s, "wall_s": wall, "stream_s": stats["seconds"],
            "clips_scored": stats["clips_scored"], "clips_dropped": stats["sources"][source.name]["clips_dropped"],
            "rss_before_kib": before, "first_batch_kib": marks["start_kib"], "start_kib": start,
            "start_s": scoring[0][0] if scoring else 0.0, "end_kib": end,
            "peak_sampled_kib": max([start, end, *(s[2] for s in samples)]),
            "growth_pct": 100.0 * (end - start) / start, "samples": samples, "sample_every_s": sample_every_s,
            "network": "CheapExtractor (C3D-shaped 4096-d output), not C3D"}


def _mb(kib: int) -> float:
    return kib / 1024


def print_rows(results: dict) -> None:
    for r in results["extractors"]:
        name = f"{r['extractor']} {r['stream']}"
        print(f"{name}: {r['clips']} clips ({r['frames']} frames, {r['video_s']:.2f} s at {r['fps']:.0f} fps, "
              f"{WIDTH}x{HEIGHT}), batch {r['batch']}, {r['rounds']} rounds, device {r['device']}")
        print(f"{name}: forward on prepared clips  {r['clips_per_s']['forward']:.3f} clips/s")
        for mode in ("video", "stream"):
            scoring = r["median_s"][f"{mode}_scoring"]
            print(f"{name}: mode={mode:<6}  {r['clips_per_s'][mode]:.3f} clips/s  ratio {mode}/forward "
                  f"{r['ratio'][mode]:.3f}  >= {GOAL_RATIO}: {'met' if r['ratio'][mode] >= GOAL_RATIO else 'MISSED'}  "
                  f"real-time factor {r['realtime_factor'][mode]:.3f}  (scoring alone, without outputs: "
                  f"ratio {r['median_s']['forward'] / scoring:.3f})")
        live = r["realtime"]
        p50, p95 = live["latency_p50_s"], live["latency_p95_s"]
        latency = "n/a" if p50 is None else f"p50 {p50:.3f} s p95 {p95:.3f} s"
        print(f"{name}: realtime=true  latency 16th frame -> score {latency}, {live['clips_dropped']} of "
              f"{r['clips']} clips dropped, {live['fps_in']:.1f} fps in")
    m = results["memory"]
    print(f"memory, {m['network']} (measures decoding, queues, scoring, outputs): {m['frames']} frames "
          f"({m['video_s'] / 60:.1f} min of video) streamed in {m['stream_s']:.1f} s, {m['clips_scored']} clips "
          f"scored, {m['clips_dropped']} dropped")
    print(f"memory: RSS {_mb(m['start_kib']):.1f} MB at the start of scoring (first sample, {m['start_s']:.1f} s "
          f"in), {_mb(m['end_kib']):.1f} MB after the last batch, peak sampled {_mb(m['peak_sampled_kib']):.1f} MB; "
          f"growth {m['growth_pct']:.2f} %  <= {GOAL_GROWTH:.0f} %: "
          f"{'met' if m['growth_pct'] <= GOAL_GROWTH else 'MISSED'}  (after the first batch: "
          f"{_mb(m['first_batch_kib']):.1f} MB, before queues and allocator filled)")
    print(f"torch threads: {torch.get_num_threads()}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", type=int, default=10, help="clips of the 320x240 test video")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--minutes", type=float, default=20.0, help="length of the memory part's source")
    parser.add_argument("--sample-every", type=float, default=5.0, help="seconds between RSS samples")
    parser.add_argument("--out", type=Path, help="folder for bench_detect.json (default: not kept)")
    parser.add_argument("--tiny", action="store_true", help="2 clips, C3D only, 30 s of stream: checks that it works")
    args = parser.parse_args()
    extractors = ("C3D", "I3D")
    if args.tiny:
        args.clips, args.rounds, args.minutes, args.sample_every, extractors = 2, 1, 0.5, 0.5, ("C3D",)
        print("--tiny: one 2-clip video, C3D only, 1 round, a 30-second stream; the numbers only show "
              "that the benchmark runs")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        frames = moving_square(CLIP_FRAMES * args.clips + CLIP_FRAMES // 2, HEIGHT, WIDTH, dx=3)
        video = write_video(work / "store_cam.avi", frames, fps=FPS)
        results = {"extractors": [bench_extractor(e, video, work, args.device, args.batch, args.rounds)
                                  for e in extractors],
                   "memory": bench_memory(work, args.minutes, args.device, args.batch, args.sample_every),
                   "tiny": args.tiny, "torch_threads": torch.get_num_threads()}
    print_rows(results)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "bench_detect.json").write_text(json.dumps(results, indent=1))
        print(f"results: {args.out / 'bench_detect.json'}")


if __name__ == "__main__":
    main()
