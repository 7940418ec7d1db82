"""Benchmark of the feature store: ``vad.prepare``'s writer on ten-crop-shaped clip features and
``data=store``'s reader.

Full-size ten-crop I3D (ResNet-50) features of UCF-Crime are ~860k snippets x 10 crops x 2048
dims; even in float16 that is ~35 GB, too much to generate for a benchmark. So the writer runs
on a documented fraction of the videos, every ``K``-th of the 1900 in catalogue order (train then
test), with the real lengths (T = ceil(frames / 16)), generated on the fly per video from a seeded
RNG as float16 (each snippet is a row drawn at random from a fixed pool of 4096 random
(10, 2048) float16 snippets, made once per process before the memory baseline: one gather copy
per video), and the numbers are extrapolated to the full dataset. Measured:

1. Throughput: raw bytes per second through ``store.write`` (crops=mean), with and without the
   time the in-bench layout spends generating the arrays (without = what a layout reading files
   at that speed would see).
2. Peak RSS (``resource.getrusage``) of the write, each size in a fresh subprocess, at two
   dataset sizes: every 20th and every 10th video share the same longest video (27,582 snippets,
   1.13 GB raw), so if memory does not grow with the dataset the peaks are equal although the
   second size reads 1.4x the bytes (the peak is set by the largest single video).
3. ``load()`` of the resulting store, extrapolated linearly to 1900 videos, and measured directly
   on a full-size 1900-video store (I3D TWO: RGB + FLOW, 1024 each, 32 segments; written through
   a segments-kind in-bench layout).

Nothing is asserted: timings depend on the machine. Usage:
``python experiments/bench/bench_store.py [--every 20 10] [--out DIR] [--tiny]``; the JSON goes to
``DIR/bench_store.json`` (default: a temp dir), written atomically. ``--tiny`` (every 380th and
190th video, at most 48 snippets each, a 256-snippet pool, load() on every 19th video) runs in
seconds and prints the same rows: it keeps the benchmark working, its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from vad.constants import N_SEGMENTS  # noqa: E402
from vad.data import store  # noqa: E402
from vad.data.layouts.base import Layout  # noqa: E402
from vad.data.ucf_crime import catalogue  # noqa: E402
from vad.io import write_json  # noqa: E402
from vad.types import Entry  # noqa: E402

N_VIDEOS = 1900
CROPS = 10
DIM = 2048
SEED = 0
POOL = 4096  # random snippets the generated videos draw their rows from
BELOW_ONE = 0x3BFF  # float16 bits AND this mask give values in [0, 1)


def all_entries() -> list[Entry]:
    train, test = catalogue()
    return [Entry(v, "train") for v in train] + [Entry(v, "test") for v in test]


def snippets(entry: Entry, cap: int | None = None) -> int:
    """T = ceil(frames / 16), at most ``cap`` (``--tiny``)."""
    return min(max(1, math.ceil(entry.video.frames / 16)), cap or math.inf)


def ratio(a: float, b: float) -> float:
    """``a / b``, NaN when ``b`` is 0 (tiny sizes can leave no measurable RSS growth)."""
    return a / b if b else math.nan


class TencropBench(Layout):
    """Ten-crop-shaped (T, 10, 2048) float16 clip features made on the fly per video."""

    name = "bench_tencrop"
    kind = "clips"

    def __init__(self, every: int, cap: int | None = None, pool_size: int = POOL):
        super().__init__(Path(f"<generated every {every}th video>"))
        self.indices = list(range(0, N_VIDEOS, every))
        everything = all_entries()
        self._entries = [everything[i] for i in self.indices]
        self.cap = cap
        self.generate_seconds = 0.0
        self.largest_bytes = max(snippets(e, cap) for e in self._entries) * CROPS * DIM * 2
        pool = np.random.default_rng([SEED, 1]).integers(0, 1 << 16, size=(pool_size, CROPS, DIM),
                                                         dtype=np.uint16)
        pool &= BELOW_ONE
        self.pool = pool.view(np.float16)

    def entries(self) -> list[Entry]:
        return list(self._entries)

    def streams(self) -> tuple[str, ...]:
        return ("RGB",)

    def source(self, entry: Entry, stream: str) -> str:
        return f"{self.root}/{entry.video.path}"

    def read(self, entry: Entry, stream: str) -> np.ndarray:
        started = time.perf_counter()
        row = self._entries.index(entry)
        rng = np.random.default_rng([SEED, self.indices[row]])
        raw = self.pool[rng.integers(0, len(self.pool), size=snippets(entry, self.cap))]
        self.generate_seconds += time.perf_counter() - started
        return raw


class SegmentsBench(Layout):
    """Full-size I3D TWO 32-segment features (RGB + FLOW, 1024 each), for the load() timing."""

    name = "bench_segments"
    kind = "segments"

    def __init__(self, every: int = 1):
        super().__init__(Path(f"<generated every {every}th of 1900 videos>"))
        self._entries = all_entries()[::every]

    def entries(self) -> list[Entry]:
        return list(self._entries)

    def streams(self) -> tuple[str, ...]:
        return ("RGB", "FLOW")

    def source(self, entry: Entry, stream: str) -> str:
        return f"{self.root}/{entry.video.path}"

    def read(self, entry: Entry, stream: str) -> np.ndarray:
        rng = np.random.default_rng([SEED, len(entry.video.path), entry.video.frames, len(stream)])
        return rng.random((N_SEGMENTS, 1024), dtype=np.float32)


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def data_cfg(path: Path):
    from omegaconf import OmegaConf

    return OmegaConf.create({"name": "store", "path": str(path)})


def time_load(path: Path, streams: tuple[str, ...], dim: int, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        splits = store.load(data_cfg(path), streams, dim)
        times.append(time.perf_counter() - started)
        del splits
    return min(times)


def child(every: int, folder: Path, cap: int | None, pool_size: int) -> dict:
    """One dataset size in this (fresh) process: write, then time load()."""
    layout = TencropBench(every, cap, pool_size)
    import torch  # noqa: F401  (imported by load() anyway: keep it out of the write's RSS delta)

    baseline = maxrss_mb()
    out = folder / f"tencrop_every{every}.h5"
    report = store.write(layout, out, crops="mean", progress=False)
    peak = maxrss_mb()
    write_seconds = report.seconds
    net = write_seconds - layout.generate_seconds
    load_s = time_load(out, ("RGB",), DIM)
    n = len(layout.entries())
    sampled = sum(snippets(e, cap) for e in layout.entries())
    return {
        "every": every, "videos": n, "snippets": int(sampled), "max_snippets": cap,
        "raw_gb": report.bytes_read / 1e9, "largest_video_raw_mb": layout.largest_bytes / 1e6,
        "write_s": write_seconds, "generate_s": layout.generate_seconds,
        "mb_per_s_incl_generation": ratio(report.mb_read, write_seconds),
        "mb_per_s_write_store": ratio(report.mb_read, net),
        "rss_baseline_mb": baseline, "rss_peak_mb": peak, "rss_write_delta_mb": peak - baseline,
        "store_mb": out.stat().st_size / 1e6,
        "load_s": load_s, "load_s_extrapolated_1900": load_s * N_VIDEOS / n,
        "extrapolated_full_write_min": net * sum(snippets(e) for e in all_entries()) / sampled / 60,
    }


def run_child(every: int, folder: Path, cap: int | None, pool_size: int) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", str(every), "--folder", str(folder),
                           "--pool", str(pool_size), *(["--max-snippets", str(cap)] if cap else [])],
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"child every={every} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def full_load(folder: Path, every: int = 1) -> dict:
    out = folder / "segments_full_two.h5"
    report = store.write(SegmentsBench(every), out, progress=False)
    load_s = time_load(out, ("RGB", "FLOW"), 1024)
    return {"videos": report.videos, "write_s": report.seconds,
            "write_ms_per_video": 1000 * report.seconds / report.videos,
            "store_mb": out.stat().st_size / 1e6, "load_s": load_s,
            "feature_mb": report.videos * N_SEGMENTS * 2048 * 4 / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--every", type=int, nargs="+", default=[20, 10],
                        help="dataset sizes: every K-th video (default 20 and 10)")
    parser.add_argument("--out", type=Path, help="folder for bench_store.json (default: a temp dir)")
    parser.add_argument("--tiny", action="store_true",
                        help="a few short videos: runs in seconds, checks that the benchmark works")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--max-snippets", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--pool", type=int, default=POOL, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.folder, args.max_snippets, args.pool)))
        return
    cap, pool_size, load_every = (48, 256, 19) if args.tiny else (None, POOL, 1)
    if args.tiny:
        args.every = [380, 190]
        print("--tiny: a few videos of at most 48 snippets; the numbers only show that the benchmark runs")

    out = args.out or Path(tempfile.mkdtemp(prefix="bench_store_"))
    with tempfile.TemporaryDirectory(prefix="bench_store_data_") as tmp:
        sizes = [run_child(k, Path(tmp), cap, pool_size) for k in args.every]
        full = full_load(Path(tmp), load_every)

    print(f"\nstore.write on ten-crop (T, {CROPS}, {DIM}) float16 clips, crops=mean, real UCF-Crime lengths")
    header = (f"{'every':>5} {'videos':>6} {'raw GB':>7} {'largest MB':>10} {'write s':>8} {'gen s':>6} "
              f"{'MB/s':>7} {'MB/s+gen':>8} {'RSS base':>8} {'RSS peak':>8} {'delta MB':>8} "
              f"{'load s':>7} {'load@1900':>9}")
    print(header)
    for r in sizes:
        print(f"{r['every']:>5} {r['videos']:>6} {r['raw_gb']:>7.2f} {r['largest_video_raw_mb']:>10.0f} "
              f"{r['write_s']:>8.1f} {r['generate_s']:>6.1f} {r['mb_per_s_write_store']:>7.0f} "
              f"{r['mb_per_s_incl_generation']:>8.0f} {r['rss_baseline_mb']:>8.0f} {r['rss_peak_mb']:>8.0f} "
              f"{r['rss_write_delta_mb']:>8.0f} {r['load_s']:>7.3f} {r['load_s_extrapolated_1900']:>9.2f}")
    ratios = {}
    if len(sizes) >= 2:
        a, b = sizes[0], sizes[-1]
        ratios = {"raw_bytes_ratio": ratio(b["raw_gb"], a["raw_gb"]),
                  "rss_delta_ratio": ratio(b["rss_write_delta_mb"], a["rss_write_delta_mb"]),
                  "rss_delta_over_largest_video": ratio(b["rss_write_delta_mb"], b["largest_video_raw_mb"])}
        print(f"\nsize {b['every']} vs {a['every']}: raw bytes x{ratios['raw_bytes_ratio']:.2f}, "
              f"write RSS delta x{ratios['rss_delta_ratio']:.2f}; RSS delta / largest raw video = "
              f"{ratios['rss_delta_over_largest_video']:.2f}")
    big = sizes[-1]
    print(f"full ten-crop dataset (861k snippets, {861404 * CROPS * DIM * 2 / 1e9:.0f} GB float16) at "
          f"{big['mb_per_s_write_store']:.0f} MB/s: ~{big['extrapolated_full_write_min']:.1f} min of "
          "conversion (plus the layout's own read time)")
    print(f"load(): {full['videos']}-video I3D TWO store ({full['feature_mb']:.0f} MB of features) in "
          f"{full['load_s']:.2f} s (extrapolated from {big['videos']} videos: "
          f"{big['load_s_extrapolated_1900']:.2f} s); writing it took {full['write_s']:.1f} s "
          f"({full['write_ms_per_video']:.1f} ms/video)")
    results = {"machine": {"python": sys.version.split()[0]}, "fraction_note":
               "every K-th video of the 1900 (catalogue order), real lengths, float16 generated on the fly",
               "sizes": sizes, "ratios": ratios, "full_load_two": full}
    write_json(out / "bench_store.json", results)
    print(f"\nJSON: {out / 'bench_store.json'}")


if __name__ == "__main__":
    main()
