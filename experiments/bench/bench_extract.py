"""Extraction throughput: network forward alone on pre-decoded, pre-processed clips vs the
end-to-end ``VideoLayout`` path (decode + flow + preprocess in a background thread overlapping
the network) on a generated video; C3D RGB, I3D RGB and I3D FLOW (farneback), CPU by default.

    .venv/bin/python experiments/bench/bench_extract.py [--clips 12] [--batch 4] [--device cpu]

Target: end-to-end within 1.3x of the forward-only time.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.videos import moving_square, write_video  # noqa: E402
from vad.data.layouts.videos import VideoLayout  # noqa: E402
from vad.video import ClipReader, FlowStream  # noqa: E402


def bench(extractor: str, stream: str, video: Path, batch: int, device: str) -> dict:
    layout = VideoLayout(video.parent, extractor=extractor, streams=(stream,),
                         weights={"rgb": "random", "flow": "random"}, flow="farneback",
                         batch_size=batch, device=device)
    model = layout.models[stream]
    flows = FlowStream("farneback") if stream == "FLOW" else None
    inputs = [layout._prepare_clip(clip, flows, None)[stream] for clip in ClipReader(video)]
    n = len(inputs)
    with torch.no_grad():  # warm-up
        model(inputs[0].to(layout.device))
    t0 = time.perf_counter()
    with torch.no_grad():
        for i in range(0, n, batch):
            x = torch.cat(inputs[i:i + batch]).to(layout.device)
            model(x).cpu()
    forward = time.perf_counter() - t0
    entry = layout.entries()[0]
    t0 = time.perf_counter()
    out = layout.extract_video(video, entry)
    end_to_end = time.perf_counter() - t0
    assert out["features"][stream].shape[0] == n
    return {"extractor": extractor, "stream": stream, "clips": n, "batch": batch,
            "forward_clips_per_s": round(n / forward, 2), "end_to_end_clips_per_s": round(n / end_to_end, 2),
            "ratio": round(end_to_end / forward, 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", type=int, default=12)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        video = write_video(Path(tmp) / "v.avi", moving_square(16 * args.clips, 240, 320, dx=3))
        rows = [bench(e, s, video, args.batch, args.device)
                for e, s in (("C3D", "RGB"), ("I3D", "RGB"), ("I3D", "FLOW"))]
    for row in rows:
        print(json.dumps(row))
    print(f"torch threads: {torch.get_num_threads()}, device: {args.device}")


if __name__ == "__main__":
    main()
