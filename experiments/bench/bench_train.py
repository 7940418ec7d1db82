"""Benchmark of training and evaluation on the full-size synthetic UCF-Crime (I3D TWO, 2048-d).

Measures, in one run, the numbers the project sets targets for and prints them with their
ratios (nothing is asserted: timings depend on the machine):

1. Lightning epoch time against a plain PyTorch loop doing the same work (target <= 1.15x).
2. Evaluation of the 290 test videos: ``frame_metrics`` (target <= 20 ms) and the forward pass.
3. Peak memory of ``vad.train.train`` on TWO, in a fresh subprocess (target <= 2x feature bytes).
4. With ``--full-run``: the default 75-epoch RGB run end to end (wall time, best AUC).

Usage: ``VAD_CACHE_DIR=/tmp/vad_bench_cache python experiments/bench/bench_train.py
[--epochs N] [--rounds N] [--out DIR] [--full-run]``; the JSON goes to ``DIR/bench_train.json``.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint

from vad.config import input_dim
from vad.datamodule import MILDataModule
from vad.io import write_json
from vad.losses.mil_ranking import MILRankingLoss
from vad.metrics import FrameTruth, frame_metrics
from vad.models.learner import Learner
from vad.train import build, load_data, make_logger, train

ROOT = Path(__file__).resolve().parents[2]
TWO = ["data.fraction=1.0", "modality=TWO", "extractor=I3D"]


def compose_cfg(overrides: list[str], output_dir: Path) -> DictConfig:
    """``conf/train.yaml`` as the CLI composes it, minus the ``hydra`` node (not needed once
    ``paths.output_dir`` is given)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return compose("train", overrides=[*overrides, f"paths.output_dir={output_dir}"])


def median_ms(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` in milliseconds: robust to the odd slow repeat."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


class EpochTimer(pl.Callback):
    """Per-epoch wall times. ``loop`` spans ``on_train_epoch_start`` to ``on_train_epoch_end``
    (the batches); ``period`` spans one epoch start to the next (the last one to
    ``on_train_end``), so it also holds what Lightning runs after our epoch-end hook: the
    checkpoint callback (always ordered last), logger flush and the LR scheduler step."""

    def __init__(self):
        self.starts: list[float] = []
        self.ends: list[float] = []
        self.train_end = 0.0

    def on_train_epoch_start(self, trainer, pl_module):
        self.starts.append(time.perf_counter())

    def on_train_epoch_end(self, trainer, pl_module):
        self.ends.append(time.perf_counter())

    def on_train_end(self, trainer, pl_module):
        self.train_end = time.perf_counter()

    def times(self) -> dict[str, list[float]]:
        return {"loop": [e - s for s, e in zip(self.starts, self.ends)],
                "period": [b - a for a, b in zip(self.starts, [*self.starts[1:], self.train_end])]}


def framework_epochs(cfg: DictConfig, splits, epochs: int, run_dir: Path) -> dict[str, list[float]]:
    """Epoch times of ``trainer.fit`` set up as ``vad.train.train`` does (module, datamodule,
    TensorBoard logger, checkpoint and LR monitor), with validation switched off so that only
    training is timed."""
    torch.manual_seed(int(cfg.seed))
    module, datamodule = build(cfg, splits)
    logger = make_logger(cfg, run_dir)
    checkpoint = ModelCheckpoint(dirpath=str(run_dir / "checkpoints"), monitor="val/auc", mode="max",
                                 save_last=True, auto_insert_metric_name=False,
                                 filename="epoch{epoch:03d}-auc{val/auc:.4f}")
    timer = EpochTimer()
    trainer_args = {**OmegaConf.to_container(cfg.trainer), "max_epochs": epochs, "limit_val_batches": 0,
                    "num_sanity_val_steps": 0, "enable_progress_bar": False,
                    "enable_model_summary": False}
    trainer = pl.Trainer(**trainer_args, logger=logger, default_root_dir=str(run_dir),
                         callbacks=[checkpoint, LearningRateMonitor(logging_interval="epoch"), timer])
    trainer.fit(module, datamodule=datamodule)
    return timer.times()


def plain_epochs(cfg: DictConfig, splits, datamodule: MILDataModule, epochs: int) -> tuple[list[float], Learner]:
    """Epoch times of the same training written as a bare PyTorch loop over the same preloaded
    tensors and fit rows: the floor the Lightning path is compared with."""
    torch.manual_seed(int(cfg.seed))
    learner = Learner(input_dim(cfg), float(cfg.model.dropout))
    criterion = MILRankingLoss(**OmegaConf.to_container(cfg.loss))
    optimizer = instantiate(cfg.optimizer)(learner.parameters())
    scheduler = instantiate(cfg.scheduler)(optimizer)
    features = splits.train.features
    normal = torch.as_tensor(datamodule.normal_rows)
    anomalous = torch.as_tensor(datamodule.anomaly_rows)
    size = int(cfg.data.batch_size)
    batches = min(len(normal), len(anomalous)) // size
    learner.train()
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        order_n = normal[torch.randperm(len(normal))]
        order_a = anomalous[torch.randperm(len(anomalous))]
        for b in range(batches):
            rows = slice(b * size, (b + 1) * size)
            loss = criterion(learner(features[order_a[rows]]), learner(features[order_n[rows]]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        scheduler.step()
        times.append(time.perf_counter() - start)
    return times, learner


def bench_epochs(cfg: DictConfig, splits, epochs: int, rounds: int, work: Path) -> tuple[dict, Learner]:
    """Alternate framework and plain runs ``rounds`` times so that machine drift hits both; the
    first epoch of every run is warm-up and dropped, the rest are pooled per kind."""
    datamodule = build(cfg, splits)[1]
    steady = {"framework_loop": [], "framework_period": [], "plain": []}
    for r in range(rounds):
        for kind, times in framework_epochs(cfg, splits, epochs, work / f"fit{r}").items():
            steady[f"framework_{kind}"] += times[1:]
        times, learner = plain_epochs(cfg, splits, datamodule, epochs)
        steady["plain"] += times[1:]
    medians = {k: statistics.median(v) for k, v in steady.items()}
    return {"epochs_per_run": epochs, "rounds": rounds,
            "batches_per_epoch": min(len(datamodule.normal_rows), len(datamodule.anomaly_rows)) // int(cfg.data.batch_size),
            "median_s": medians,
            "ratio_loop": medians["framework_loop"] / medians["plain"],
            "ratio_period": medians["framework_period"] / medians["plain"],
            "steady_epochs_s": steady}, learner


def bench_eval(splits, learner: Learner, truth: FrameTruth) -> dict:
    """Time the two halves of one test evaluation apart: the learner forward on all test
    features and ``frame_metrics`` on the resulting (290, 32) scores."""
    learner.eval()
    features = splits.test.features
    with torch.no_grad():
        scores = learner(features).numpy()
        forward_ms = median_ms(lambda: learner(features), 5)
    return {"videos": len(splits.test), "frames": int(truth.frames.sum()),
            "scores_shape": list(scores.shape), "forward_ms": forward_ms,
            "frame_metrics_ms": median_ms(lambda: frame_metrics(scores, truth), 20)}


def vm_rss_kib() -> int:
    """Current resident set size (VmRSS, KiB) of this process."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def memory_probe(result_path: Path) -> None:
    """Subprocess side of the memory benchmark: everything is already imported, so the baseline
    is the interpreter plus libraries, and the peak is what a 2-epoch TWO training adds."""
    baseline = vm_rss_kib()
    with tempfile.TemporaryDirectory(prefix="bench_mem_") as run_dir:
        cfg = compose_cfg([*TWO, "trainer.max_epochs=2", "logger=none",
                           "trainer.enable_progress_bar=false"], Path(run_dir))
        train(cfg)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result_path.write_text(json.dumps({"baseline_kib": baseline, "peak_kib": peak}))


def bench_memory(feature_bytes: int, work: Path) -> dict:
    """Peak RSS of ``train(cfg)`` on TWO, measured in a fresh process so that nothing this
    benchmark holds (two copies of the features, trained models) is counted."""
    result_path = work / "memory.json"
    run([sys.executable, str(Path(__file__).resolve()), "--memory-probe", str(result_path)])
    probe = json.loads(result_path.read_text())
    added = 1024 * (probe["peak_kib"] - probe["baseline_kib"])
    return {**probe, "feature_bytes": feature_bytes,
            "added_over_features": added / feature_bytes,
            "peak_over_features": 1024 * probe["peak_kib"] / feature_bytes}


def bench_full_run(work: Path) -> dict:
    """The default CLI run (75 epochs, RGB) end to end, as a user would start it."""
    run_dir = work / "full_run"
    start = time.perf_counter()
    run([sys.executable, "-m", "vad.train", "modality=RGB", "trainer.enable_progress_bar=false",
         f"hydra.run.dir={run_dir}"])
    wall = time.perf_counter() - start
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {"wall_s": wall, "train_wall_time_s": metrics["wall_time_s"],
            "best_epoch": metrics["best"]["epoch"], "best_auc": metrics["best"]["auc"]}


def run(args: list[str]) -> None:
    """Run a child Python in the repository root; on failure, show the end of its output."""
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}")


def table(results: dict) -> str:
    """The human-readable summary of ``results``."""
    e, v, m = results["epochs"], results["eval"], results["memory"]
    ms = e["median_s"]
    rows = [
        ("epoch, Lightning (epoch hooks)", f"{ms['framework_loop']:.3f} s", ""),
        ("epoch, Lightning (start to start)", f"{ms['framework_period']:.3f} s", ""),
        ("epoch, plain torch", f"{ms['plain']:.3f} s", ""),
        ("ratio Lightning/plain (epoch hooks)", f"{e['ratio_loop']:.3f}", "<= 1.15"),
        ("ratio Lightning/plain (start to start)", f"{e['ratio_period']:.3f}", "<= 1.15"),
        (f"frame_metrics {tuple(v['scores_shape'])}, {v['frames']:,} frames", f"{v['frame_metrics_ms']:.2f} ms", "<= 20 ms"),
        (f"learner forward, {v['videos']} test videos", f"{v['forward_ms']:.1f} ms", ""),
        ("RSS baseline after imports", f"{m['baseline_kib'] / 1024:.0f} MiB", ""),
        ("RSS peak (ru_maxrss), TWO 2 epochs", f"{m['peak_kib'] / 1024:.0f} MiB", ""),
        ("peak - baseline", f"{(m['peak_kib'] - m['baseline_kib']) / 1024:.0f} MiB", ""),
        ("feature bytes (train + test)", f"{m['feature_bytes'] / 2**20:.0f} MiB", ""),
        ("(peak - baseline) / feature bytes", f"{m['added_over_features']:.2f}", "<= 2"),
        ("peak / feature bytes", f"{m['peak_over_features']:.2f}", "<= 2"),
    ]
    if "full_run" in results:
        f = results["full_run"]
        rows += [("full RGB run, wall (75 epochs)", f"{f['wall_s']:.1f} s", ""),
                 ("full RGB run, best auc", f"{f['best_auc']:.4f} (epoch {f['best_epoch']})", "")]
    width = max(len(r[0]) for r in rows)
    head = (f"{e['rounds']} rounds x {e['epochs_per_run']} epochs per kind, {e['batches_per_epoch']} "
            f"batches/epoch, first epoch of each run dropped; torch threads {torch.get_num_threads()}")
    return "\n".join([head] + [f"{n:<{width}}  {val:>18}  {t}" for n, val, t in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=6, help="epochs per timed run (first is warm-up)")
    parser.add_argument("--rounds", type=int, default=2, help="framework/plain alternations")
    parser.add_argument("--out", type=Path, help="folder for bench_train.json (default: a temp dir)")
    parser.add_argument("--full-run", action="store_true", help="also time the default 75-epoch RGB run")
    parser.add_argument("--memory-probe", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_probe:
        memory_probe(args.memory_probe)
        return
    if args.epochs < 2:
        parser.error("--epochs must be >= 2: the first epoch of each run is dropped as warm-up")

    out = args.out or Path(tempfile.mkdtemp(prefix="bench_train_"))
    with tempfile.TemporaryDirectory(prefix="bench_work_") as tmp:
        work = Path(tmp)
        cfg = compose_cfg(TWO, work / "run")
        splits = load_data(cfg)
        epochs, learner = bench_epochs(cfg, splits, args.epochs, args.rounds, work)
        truth = FrameTruth.from_videos(splits.test.videos, splits.test.features.shape[1])
        results = {"epochs": epochs, "eval": bench_eval(splits, learner, truth)}
        feature_bytes = splits.train.features.nbytes + splits.test.features.nbytes
        del splits, learner
        results["memory"] = bench_memory(feature_bytes, work)
        if args.full_run:
            results["full_run"] = bench_full_run(work)
    print(table(results))
    write_json(out / "bench_train.json", results)
    print(f"wrote {out / 'bench_train.json'}")


if __name__ == "__main__":
    main()
