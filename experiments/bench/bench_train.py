"""Benchmark of training and evaluation on the full-size synthetic UCF-Crime (I3D TWO, 2048-d).

Measures, in one run, the numbers the project sets targets for and prints them with their
ratios (nothing is asserted: timings depend on the machine):

1. Lightning epoch time against a plain PyTorch loop doing the same work (target <= 1.15x),
   alternated by run and, because the CPU speed of a shared VM drifts several-fold within
   seconds, also interleaved step by step.
2. Evaluation of the 290 test videos: ``frame_metrics`` (target <= 20 ms) and the forward pass.
3. Peak memory of ``vad.train.train`` on TWO, in a fresh subprocess (target <= 2x feature bytes).
4. With ``--full-run``: the default 75-epoch RGB run end to end (wall time, best AUC).

Usage: ``VAD_CACHE_DIR=/tmp/vad_bench_cache python experiments/bench/bench_train.py
[--epochs N] [--rounds N] [--out DIR] [--full-run] [--tiny]``; the JSON goes to
``DIR/bench_train.json``. ``--tiny`` (5 % of the videos, batches of 10, 2 epochs, one round)
runs in seconds and prints the same table: it keeps the benchmark working, its numbers mean
nothing.
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
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.conftest import make_cfg  # noqa: E402  (composes as the CLI, ${hydra:...} resolved)
from vad.config import input_dim  # noqa: E402
from vad.data.features import Splits  # noqa: E402
from vad.data.loading import load_data  # noqa: E402
from vad.datamodule import MILDataModule  # noqa: E402
from vad.io import write_json  # noqa: E402
from vad.losses.mil_ranking import MILRankingLoss  # noqa: E402
from vad.metrics import FrameTruth, frame_metrics  # noqa: E402
from vad.models.learner import Learner  # noqa: E402
from vad.train import build, make_logger, train  # noqa: E402

TWO = ["data.fraction=1.0", "modality=TWO", "extractor=I3D"]
TINY = ["data.fraction=0.05", "data.batch_size=10", "modality=TWO", "extractor=I3D"]


def median_ms(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` in milliseconds: robust to the odd slow repeat."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


class EpochTimer(pl.Callback):
    """Wall seconds from ``on_train_epoch_start`` to ``on_train_epoch_end``. Lightning runs the
    checkpoint callback (always ordered last), the logger flush and the LR scheduler step after
    this hook; timed start to start they added only a few ms an epoch here."""

    def __init__(self):
        self.epochs: list[float] = []
        self.start = 0.0

    def on_train_epoch_start(self, trainer, pl_module):
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        self.epochs.append(time.perf_counter() - self.start)


class PlainTrainer:
    """The training ``MILModule`` does, as bare PyTorch: the same Learner, loss, optimizer and
    scheduler from the config, over the same preloaded features and fit rows. It is the floor
    the Lightning path is compared with."""

    def __init__(self, cfg: DictConfig, splits: Splits, datamodule: MILDataModule):
        method = OmegaConf.to_container(cfg.method)
        self.learner = Learner(input_dim(cfg), float(method["network"]["dropout"]))
        self.criterion = MILRankingLoss(**{k: v for k, v in method["loss"].items() if k != "_target_"})
        self.optimizer = instantiate(cfg.optimizer)(self.learner.parameters())
        self.scheduler = instantiate(cfg.scheduler)(self.optimizer)
        self.features = splits.train.features
        self.normal = torch.as_tensor(datamodule.normal_rows)
        self.anomalous = torch.as_tensor(datamodule.anomaly_rows)
        self.size = int(cfg.data.batch_size)
        self.batches = min(len(self.normal), len(self.anomalous)) // self.size

    def step(self, anomalous: torch.Tensor, normal: torch.Tensor) -> None:
        loss = self.criterion(self.learner(self.features[anomalous]), self.learner(self.features[normal]))
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()

    def shuffled(self) -> tuple[torch.Tensor, torch.Tensor]:
        return (self.anomalous[torch.randperm(len(self.anomalous))],
                self.normal[torch.randperm(len(self.normal))])

    def epoch(self) -> float:
        """One epoch of ``batches`` balanced batches; returns its wall seconds."""
        start = time.perf_counter()
        anomalous, normal = self.shuffled()
        for b in range(self.batches):
            rows = slice(b * self.size, (b + 1) * self.size)
            self.step(anomalous[rows], normal[rows])
        self.scheduler.step()
        return time.perf_counter() - start


class PairedSteps(pl.Callback):
    """After every Lightning step, one plain step on fresh random rows. The Lightning step is
    the time between two ``on_train_batch_start`` of one epoch (fetch, step, hooks) minus the
    plain step inside it, so each pair runs within a second and machine drift cancels."""

    def __init__(self, plain: PlainTrainer):
        self.plain = plain
        self.start = 0.0
        self.plain_s = 0.0
        self.pairs: list[tuple[float, float]] = []  # (lightning, plain) seconds

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        now = time.perf_counter()
        if batch_idx > 0:
            self.pairs.append((now - self.start - self.plain_s, self.plain_s))
        self.start = now

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        start = time.perf_counter()
        anomalous, normal = self.plain.shuffled()
        self.plain.step(anomalous[: self.plain.size], normal[: self.plain.size])
        self.plain_s = time.perf_counter() - start


def fit(cfg: DictConfig, splits: Splits, epochs: int, run_dir: Path, callback: pl.Callback) -> None:
    """``trainer.fit`` set up as ``vad.train.train`` does (module, datamodule, TensorBoard
    logger, checkpoint and LR monitor), with validation switched off so that only training
    runs, plus the timing ``callback``."""
    module, datamodule = build(cfg, splits)
    checkpoint = ModelCheckpoint(dirpath=str(run_dir / "checkpoints"), monitor="val/auc", mode="max",
                                 save_last=True, auto_insert_metric_name=False,
                                 filename="epoch{epoch:03d}-auc{val/auc:.4f}")
    trainer_args = {**OmegaConf.to_container(cfg.trainer), "max_epochs": epochs, "limit_val_batches": 0,
                    "num_sanity_val_steps": 0, "enable_progress_bar": False,
                    "enable_model_summary": False}
    trainer = pl.Trainer(**trainer_args, logger=make_logger(cfg, run_dir), default_root_dir=str(run_dir),
                         callbacks=[checkpoint, LearningRateMonitor(logging_interval="epoch"), callback])
    trainer.fit(module, datamodule=datamodule)


def bench_epochs(cfg: DictConfig, splits: Splits, epochs: int, rounds: int, work: Path) -> tuple[dict, Learner]:
    """Epoch times, Lightning against plain, alternated ``rounds`` times so that slow drift
    hits both; the first epoch of every run is warm-up and dropped, the rest are pooled per
    kind. Each round's ratio is kept too: their spread shows how noisy the pooled one is."""
    datamodule = build(cfg, splits)[1]
    steady = {"framework": [], "plain": []}
    round_ratios = []
    for r in range(rounds):
        timer = EpochTimer()
        torch.manual_seed(int(cfg.seed))
        fit(cfg, splits, epochs, work / f"fit{r}", timer)
        torch.manual_seed(int(cfg.seed))
        plain = PlainTrainer(cfg, splits, datamodule)
        plain_times = [plain.epoch() for _ in range(epochs)]
        steady["framework"] += timer.epochs[1:]
        steady["plain"] += plain_times[1:]
        round_ratios.append(statistics.median(timer.epochs[1:]) / statistics.median(plain_times[1:]))
    medians = {kind: statistics.median(times) for kind, times in steady.items()}
    return {"epochs_per_run": epochs, "rounds": rounds, "batches_per_epoch": plain.batches,
            "median_s": medians, "ratio": medians["framework"] / medians["plain"],
            "round_ratios": round_ratios, "steady_epochs_s": steady}, plain.learner


def bench_steps(cfg: DictConfig, splits: Splits, work: Path) -> dict:
    """Lightning against plain per step, interleaved (see ``PairedSteps``) over a 2-epoch fit
    whose first epoch is warm-up: the drift-free view of the framework overhead."""
    torch.manual_seed(int(cfg.seed))
    paired = PairedSteps(PlainTrainer(cfg, splits, build(cfg, splits)[1]))
    fit(cfg, splits, 2, work / "paired", paired)
    pairs = paired.pairs[len(paired.pairs) // 2:]
    return {"pairs": len(pairs),
            "median_s": {"framework": statistics.median(p[0] for p in pairs),
                         "plain": statistics.median(p[1] for p in pairs)},
            "ratio": statistics.median(f / p for f, p in pairs)}


def bench_eval(splits: Splits, learner: Learner, truth: FrameTruth) -> dict:
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


def memory_probe(result_path: Path, data: list[str]) -> None:
    """Subprocess side of the memory benchmark: everything is already imported, so the baseline
    is the interpreter plus libraries, and the peak is what a 2-epoch TWO training adds."""
    baseline = vm_rss_kib()
    with tempfile.TemporaryDirectory(prefix="bench_mem_") as run_dir:
        cfg = make_cfg([*data, "trainer.max_epochs=2", "logger=none",
                        "trainer.enable_progress_bar=false"], Path(run_dir))
        train(cfg)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result_path.write_text(json.dumps({"baseline_kib": baseline, "peak_kib": peak}))


def bench_memory(feature_bytes: int, work: Path, tiny: bool) -> dict:
    """Peak RSS of ``train(cfg)`` on TWO, measured in a fresh process so that nothing this
    benchmark holds (two copies of the features, trained models) is counted."""
    result_path = work / "memory.json"
    run([sys.executable, str(Path(__file__).resolve()), "--memory-probe", str(result_path),
         *(["--tiny"] if tiny else [])])
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
    e, st, v, m = results["epochs"], results["steps"], results["eval"], results["memory"]
    rows = [
        ("epoch, Lightning", f"{e['median_s']['framework']:.3f} s", ""),
        ("epoch, plain torch", f"{e['median_s']['plain']:.3f} s", ""),
        ("ratio Lightning/plain, epochs", f"{e['ratio']:.3f}", "<= 1.15"),
        ("  ratio per round", ", ".join(f"{r:.3f}" for r in e["round_ratios"]), ""),
        ("step, Lightning (interleaved)", f"{1e3 * st['median_s']['framework']:.1f} ms", ""),
        ("step, plain torch (interleaved)", f"{1e3 * st['median_s']['plain']:.1f} ms", ""),
        (f"ratio Lightning/plain, {st['pairs']} paired steps", f"{st['ratio']:.3f}", "<= 1.15"),
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
    parser.add_argument("--tiny", action="store_true",
                        help="5%% of the videos, 2 epochs, 1 round: runs in seconds, checks that it works")
    parser.add_argument("--memory-probe", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    data = TINY if args.tiny else TWO
    if args.memory_probe:
        memory_probe(args.memory_probe, data)
        return
    if args.tiny:
        args.epochs, args.rounds, args.full_run = 2, 1, False
    if args.epochs < 2:
        parser.error("--epochs must be >= 2: the first epoch of each run is dropped as warm-up")

    out = args.out or Path(tempfile.mkdtemp(prefix="bench_train_"))
    with tempfile.TemporaryDirectory(prefix="bench_work_") as tmp:
        work = Path(tmp)
        cfg = make_cfg(data, work / "run")
        splits = load_data(cfg)
        epochs, learner = bench_epochs(cfg, splits, args.epochs, args.rounds, work)
        truth = FrameTruth.from_videos(splits.test.videos, splits.test.features.shape[1])
        results = {"epochs": epochs, "steps": bench_steps(cfg, splits, work),
                   "eval": bench_eval(splits, learner, truth)}
        feature_bytes = splits.train.features.nbytes + splits.test.features.nbytes
        del splits, learner
        results["memory"] = bench_memory(feature_bytes, work, args.tiny)
        if args.full_run:
            results["full_run"] = bench_full_run(work)
    if args.tiny:
        print("--tiny: 5% of the videos, 2 epochs; the numbers only show that the benchmark runs")
    print(table(results))
    write_json(out / "bench_train.json", results)
    print(f"wrote {out / 'bench_train.json'}")


if __name__ == "__main__":
    main()
