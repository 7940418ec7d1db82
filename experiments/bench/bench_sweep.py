"""The capstone sweep (5 models) on full-size synthetic UCF-Crime read from feature stores:
wall time with Hydra's basic launcher (one job after another) versus the joblib launcher, and
each job's overhead (start-up, data loading from the store, set-up) against its training time.

    .venv/bin/python experiments/bench/bench_sweep.py [--epochs 75] [--n-jobs 2] [--work DIR] [--tiny]

The two stores (C3D RGB+FLOW and I3D RGB, with movement values) are written once from the
synthetic data through ``vad.data.store.write``, as ``vad.prepare`` writes real features, and
reused from ``--work``. Both sweeps run as real CLI processes, one after the other, so their
ratio is measured under the same conditions. Per job, ``metrics.json``'s ``timings_s`` split
``train()`` into load / setup / fit / test; for the sequential sweep, what its wall time holds
beyond the jobs' ``train()`` (interpreter, imports, Hydra, the final report) is shared out as
start-up per job.
Target: start-up + load + setup < 10% of fit, at the default 75 epochs (fewer epochs make the
ratio larger: the overhead is per job, the fit time per epoch).

``--tiny`` (the I3D store of 5 % of the videos in ``WORK/tiny``, the I3D RGB model, 1 epoch) runs
in well under a minute and prints the same rows: it keeps the benchmark working, its numbers
mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from omegaconf import OmegaConf  # noqa: E402

from vad.data import store, synthetic  # noqa: E402
from vad.data.layouts.base import Layout  # noqa: E402
from vad.types import Entry  # noqa: E402

STORES = {"C3D": ("RGB", "FLOW"), "I3D": ("RGB",)}
CAPSTONE_JOBS = 5
TINY_VARIANTS = ["variant=i3d_rgb"]  # a model of the smaller store


class SyntheticLayout(Layout):
    """The synthetic 32-segment features of one extractor as a layout ``store.write`` reads."""

    name, kind = "synthetic", "segments"

    def __init__(self, extractor: str, streams: tuple[str, ...], cache_dir: Path, fraction: float = 1.0):
        super().__init__(cache_dir)
        dim = {"C3D": 4096, "I3D": 1024}[extractor]
        cfg = OmegaConf.create({"seed": 0, "fraction": fraction, "crops": 1, "cache_dir": str(cache_dir)})
        self.splits = synthetic.load(cfg, streams, extractor, dim)
        self._streams, self.dim = streams, dim
        self._rows = {}
        for split in ("train", "test"):
            for row, video in enumerate(getattr(self.splits, split).videos):
                self._rows[(split, video.path)] = row

    def entries(self) -> list[Entry]:
        return [Entry(v, split) for split in ("train", "test") for v in getattr(self.splits, split).videos]

    def streams(self) -> tuple[str, ...]:
        return self._streams

    def source(self, entry: Entry, stream: str) -> str:
        return f"synthetic::{entry.video.path}::{stream}"

    def _set(self, entry: Entry):
        return getattr(self.splits, entry.split), self._rows[(entry.split, entry.video.path)]

    def read(self, entry: Entry, stream: str) -> np.ndarray:
        features, row = self._set(entry)
        at = self._streams.index(stream) * self.dim
        return features.features[row, :, at:at + self.dim].numpy()

    def movement(self, entry: Entry) -> np.ndarray:
        features, row = self._set(entry)
        return features.movement[row].numpy()


def make_stores(work: Path, cache: Path, fraction: float, extractors=tuple(STORES)) -> None:
    for extractor in extractors:
        streams = STORES[extractor]
        out = work / f"{extractor}.h5"
        if not out.exists():
            started = time.perf_counter()
            store.write(SyntheticLayout(extractor, streams, cache, fraction), out, progress=False)
            print(f"store {out}: {out.stat().st_size / 2**20:.0f} MiB in {time.perf_counter() - started:.0f} s")


def sweep(work: Path, name: str, epochs: int, launcher: list[str], models: list[str]) -> dict:
    """One capstone sweep as a CLI process; ``models``: a ``variant=`` subset (empty: all five)."""
    folder = work / name
    cmd = [sys.executable, "-m", "vad.train", "-m", "experiment=capstone", *models, "data=store",
           f"data.path={work}/${{extractor.name}}.h5", f"trainer.max_epochs={epochs}",
           "logger=none", "trainer.enable_progress_bar=false", f"hydra.sweep.dir={folder}",
           "hydra.sweep.subdir=${hydra.job.num}", *launcher]  # data.path holds "/": no names
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{name} sweep failed:\n{proc.stderr[-3000:]}")
    jobs = [json.loads(p.read_text()) for p in sorted(folder.glob("*/metrics.json"))]
    expected = len(models[0].split(",")) if models else CAPSTONE_JOBS
    if len(jobs) != expected:
        raise SystemExit(f"{name}: expected {expected} jobs, found {len(jobs)} in {folder}")
    t = {k: np.array([j["timings_s"][k] for j in jobs]) for k in ("load", "setup", "fit", "test")}
    inside = float(sum(j["wall_time_s"] for j in jobs))
    # Sequential: the wall time beyond the jobs' train() calls (interpreter, imports, Hydra, the
    # final report) shared out per job. In parallel, idle workers at the end would count as
    # start-up, so only the in-job overhead (load + setup) is reported.
    startup = (wall - inside) / len(jobs) if not launcher else 0.0
    overhead = startup + t["load"] + t["setup"]
    return {"sweep": name, "wall_s": round(wall, 1),
            "startup_per_job_s": round(startup, 2) if not launcher else None,
            "load_s": t["load"].round(2).tolist(), "setup_s": t["setup"].round(2).tolist(),
            "fit_s": t["fit"].round(1).tolist(), "test_s": t["test"].round(2).tolist(),
            "overhead_over_fit": (overhead / t["fit"]).round(3).tolist(),
            "max_overhead_over_fit": round(float((overhead / t["fit"]).max()), 3),
            "auc": [round(j["best"]["auc"], 4) for j in jobs]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=75)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("/tmp/vad_bench_sweep"))
    parser.add_argument("--only", choices=("basic", "joblib"), default=None)
    parser.add_argument("--tiny", action="store_true",
                        help="5%% of the videos, 1 model, 1 epoch: checks that the benchmark works")
    args = parser.parse_args()
    fraction, models, extractors = 1.0, [], tuple(STORES)
    if args.tiny:
        fraction, models, extractors, args.epochs, args.work = 0.05, TINY_VARIANTS, ("I3D",), 1, args.work / "tiny"
        print("--tiny: 5% of the videos, the I3D RGB model, 1 epoch; the numbers only show that the "
              "benchmark runs")
    args.work.mkdir(parents=True, exist_ok=True)
    cache = Path(os.environ.get("VAD_CACHE_DIR", "~/.cache/vad")).expanduser()
    make_stores(args.work, cache, fraction, extractors)
    stamp = time.strftime("%H%M%S")
    basic = sweep(args.work, f"basic-{stamp}", args.epochs, [], models) if args.only != "joblib" else None
    joblib = (sweep(args.work, f"joblib-{stamp}", args.epochs,
                    ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={args.n_jobs}"], models)
              if args.only != "basic" else None)
    for row in (basic, joblib):
        if row:
            print(json.dumps(row))
    if not (basic and joblib):
        return
    print(f"epochs {args.epochs}, cpus {os.cpu_count()}: joblib/basic wall ratio "
          f"{joblib['wall_s'] / basic['wall_s']:.3f}; worst per-job overhead/fit: basic "
          f"{basic['max_overhead_over_fit']:.3f} (with start-up), joblib {joblib['max_overhead_over_fit']:.3f} "
          "(load + setup) (target < 0.10)")


if __name__ == "__main__":
    main()
