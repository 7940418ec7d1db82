"""Extraction throughput: network forward alone on pre-decoded, pre-processed clips vs the
end-to-end ``VideoLayout`` path (decode + flow + preprocess in a background thread overlapping
the network) on a generated video; C3D RGB, I3D RGB and I3D FLOW (farneback), CPU by default.
``producer_clips_per_s`` is the CPU side alone (decode + flow + preprocess, no network); the
FLOW rows repeat for each ``--flow-workers`` value (threads sharing a clip's flow pairs).

    .venv/bin/python experiments/bench/bench_extract.py [--clips 12] [--batch 4] [--device cpu]
        [--flow-workers 1 2] [--tiny]

``--tiny`` (one 120x160 clip, one round, one flow worker) runs in seconds and prints the same
rows: it keeps the benchmark working, its numbers mean nothing.

Target: end-to-end within 1.3x of the forward-only time. End to end can be no faster than the
slower of the network and the producer; on a CPU both share the same cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.videos import moving_square, write_video  # noqa: E402
from vad.data.layouts.videos import VideoLayout  # noqa: E402
from vad.video import ClipReader  # noqa: E402


def bench(extractor: str, stream: str, video: Path, batch: int, device: str, flow_workers: int = 1,
          rounds: int = 3) -> dict:
    layout = VideoLayout(video.parent, extractor=extractor, streams=(stream,),
                         weights={"rgb": "random", "flow": "random"}, flow="farneback",
                         batch_size=batch, device=device, flow_workers=flow_workers)
    model = layout.pipeline.networks[stream]
    t0 = time.perf_counter()
    preparer = layout.pipeline.preparer()
    try:
        inputs = [preparer.prepare(clip)[stream] for clip in ClipReader(video)]
    finally:
        preparer.close()
    producer = time.perf_counter() - t0
    n = len(inputs)
    entry = layout.entries()[0]
    with torch.no_grad():  # warm-up
        model(inputs[0].to(layout.device))

    def forward_only() -> float:
        t0 = time.perf_counter()
        with torch.no_grad():
            for i in range(0, n, batch):
                model(torch.cat(inputs[i:i + batch]).to(layout.device)).cpu()
        return time.perf_counter() - t0

    def end_to_end_run() -> float:
        t0 = time.perf_counter()
        out = layout.extract_video(video, entry)
        assert out["features"][stream].shape[0] == n
        return time.perf_counter() - t0

    # Interleaved rounds, medians: this machine's speed drifts between runs.
    times = [(forward_only(), end_to_end_run()) for _ in range(rounds)]
    forward = float(np.median([t[0] for t in times]))
    end_to_end = float(np.median([t[1] for t in times]))
    return {"extractor": extractor, "stream": stream, "clips": n, "batch": batch,
            "flow_workers": flow_workers if stream == "FLOW" else None,
            "producer_clips_per_s": round(n / producer, 3),
            "forward_clips_per_s": round(n / forward, 3), "end_to_end_clips_per_s": round(n / end_to_end, 3),
            "ratio": round(end_to_end / forward, 3), "rounds": rounds}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", type=int, default=12)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--flow-workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="1 small clip, 1 round: checks that it works")
    args = parser.parse_args()
    height, width = 240, 320
    if args.tiny:
        args.clips, args.batch, args.rounds, args.flow_workers, height, width = 1, 1, 1, [1], 120, 160
        print("--tiny: one 120x160 clip, 1 round; the numbers only show that the benchmark runs")
    with tempfile.TemporaryDirectory() as tmp:
        video = write_video(Path(tmp) / "v.avi", moving_square(16 * args.clips, height, width, dx=3))
        rows = [bench(e, s, video, args.batch, args.device, rounds=args.rounds)
                for e, s in (("C3D", "RGB"), ("I3D", "RGB"))]
        rows += [bench("I3D", "FLOW", video, args.batch, args.device, w, args.rounds) for w in args.flow_workers]
    for row in rows:
        print(json.dumps(row))
    print(f"torch threads: {torch.get_num_threads()}, device: {args.device}")


if __name__ == "__main__":
    main()
