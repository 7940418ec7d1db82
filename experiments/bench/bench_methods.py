"""Benchmark of every training method (``method=mil|topk_mil|rtfm|urdmu|bnwvad``) on the full-size
synthetic UCF-Crime (I3D RGB, 1024-d), each with its official config (batch, segments, bins, ...).

Measures, per method and in one run (nothing is asserted: timings depend on the machine):

1. The step time of a real ``pl.Trainer`` fitting ``vad.train.build``'s module and datamodule
   against a plain PyTorch loop of the same network, loss and optimiser (built from the composed
   config) over the batches the datamodule serves (target <= 1.15x). Framework and plain runs
   alternate ``--rounds`` times, because the CPU speed of a shared VM drifts; the first steps of
   every run are warm-up and dropped, the rest pooled per kind (median).
2. Seconds per epoch (steps per epoch on these data x the framework's step time) and to the
   official schedule (``trainer.max_steps``, or ``max_epochs`` x steps per epoch): an
   EXTRAPOLATION from the step time, not a measured run.
3. Peak memory of ``vad.train.train`` (3 steps) in a fresh process per method: ru_maxrss minus
   the RSS of the imports, over the bytes of the features loaded (train + test, snippets included).
4. One evaluation of the test split (``Evaluator.run`` under the method's ``eval.protocol``:
   RTFM, UR-DMU and BN-WVAD score whole videos snippet by snippet).

One crop per video by default (``--crops 1``): the official RTFM, UR-DMU and BN-WVAD data have
ten, but ten crops of the full data are 2.5 GB+ and ten times the time per step.

Usage: ``VAD_CACHE_DIR=/tmp/vad_bench_cache python experiments/bench/bench_methods.py
[--methods mil,rtfm] [--steps N] [--rounds N] [--fraction F] [--crops C] [--out DIR] [--tiny]``;
the JSON goes to ``DIR/bench_methods.json``. ``--tiny`` (5 % of the videos, batches of 4, RTFM
on 2 crops to exercise its crop axis, 3 steps, one round, the memory of the first method only)
runs in about a minute for all five methods and prints the same table: it keeps the benchmark
working, its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import gc
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

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from experiments.bench.bench_train import vm_rss_kib  # noqa: E402
from tests.conftest import make_cfg  # noqa: E402  (composes as the CLI, ${hydra:...} resolved)
from vad.config import input_dim  # noqa: E402
from vad.data.features import Splits  # noqa: E402
from vad.data.loading import load_data  # noqa: E402
from vad.io import write_json  # noqa: E402
from vad.lit_module import MILModule  # noqa: E402
from vad.train import build, train  # noqa: E402

METHODS = ("mil", "topk_mil", "rtfm", "urdmu", "bnwvad")
TARGET = 1.15


def overrides(method: str, fraction: float, crops: int, tiny: bool) -> list[str]:
    """The composed run of ``method`` with its official config on synthetic I3D RGB; ``--tiny``
    shrinks the data and the batch (and gives RTFM two crops, so that its crop axis is used)."""
    if tiny:
        fraction, crops = 0.05, (2 if method == "rtfm" else 1)
    extra = ["data.batch_size=4"] if tiny else []
    return [f"method={method}", "modality=RGB", "extractor=I3D", f"data.fraction={fraction}",
            f"data.crops={crops}", *extra]


class StepTimer(pl.Callback):
    """Wall seconds of each training step, ``on_train_batch_start`` to ``on_train_batch_end``:
    forward, loss, backward, clipping, optimiser step and logging; not the batch fetch, which the
    plain loop does not time either."""

    def __init__(self):
        self.steps: list[float] = []
        self.start = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.steps.append(time.perf_counter() - self.start)


def fit_steps(cfg: DictConfig, splits: Splits, steps: int, run_dir: Path) -> list[float]:
    """``steps`` steps of a real ``pl.Trainer`` on ``build(cfg, splits)``: the method's trainer
    config (gradient clipping included) with validation, logging, checkpoints and the model
    summary off, so that only training runs."""
    torch.manual_seed(int(cfg.seed))
    module, datamodule = build(cfg, splits)
    timer = StepTimer()
    args = {**OmegaConf.to_container(cfg.trainer, resolve=True), "max_steps": steps, "max_epochs": None,
            "limit_val_batches": 0, "num_sanity_val_steps": 0, "enable_progress_bar": False,
            "enable_model_summary": False, "enable_checkpointing": False}
    trainer = pl.Trainer(**args, logger=False, default_root_dir=str(run_dir), callbacks=[timer])
    trainer.fit(module, datamodule=datamodule)
    return timer.steps


class PlainLoop:
    """What the method's LightningModule does in a step, as bare PyTorch: the network, loss and
    optimiser instantiated from the composed config (``method.network`` with ``input_dim``,
    ``method.loss``, ``optimizer``), gradient clipping as ``trainer.gradient_clip_val`` asks and
    the scheduler stepped at epoch ends, over the batches the datamodule serves."""

    def __init__(self, cfg: DictConfig, splits: Splits):
        self.datamodule = build(cfg, splits)[1]
        torch.manual_seed(int(cfg.seed))
        self.network = instantiate(cfg.method.network, input_dim=input_dim(cfg))
        self.network.train()
        self.criterion = instantiate(cfg.method.loss)
        self.optimizer = instantiate(cfg.optimizer)(self.network.parameters())
        self.scheduler = instantiate(cfg.scheduler)(self.optimizer) if cfg.scheduler else None
        self.clip = cfg.trainer.get("gradient_clip_val")
        self.mil = OmegaConf.select(cfg, "method.module._target_") == f"{MILModule.__module__}.MILModule"

    def loss(self, batch: dict) -> torch.Tensor:
        normal, anomalous = batch["normal"][0], batch["anomalous"][0]
        if self.mil:  # MILModule: anomalous then normal bags in two calls, loss(anomalous, normal)
            return self.criterion(self.network(anomalous), self.network(normal))
        labels = torch.cat([normal.new_zeros(len(normal)), anomalous.new_ones(len(anomalous))])
        return self.criterion(self.network(torch.cat([normal, anomalous])), labels)[0]

    def step(self, batch: dict) -> None:
        loss = self.loss(batch)
        self.optimizer.zero_grad()
        loss.backward()
        if self.clip:
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), float(self.clip))
        self.optimizer.step()

    def run(self, steps: int) -> list[float]:
        """``steps`` timed steps; fetching a batch is outside the timer."""
        times, done = [], 0
        while done < steps:
            for batch, _, _ in iter(self.datamodule.train_dataloader()):
                start = time.perf_counter()
                self.step(batch)
                times.append(time.perf_counter() - start)
                done += 1
                if done == steps:
                    break
            else:
                if self.scheduler is not None:
                    self.scheduler.step()
        return times


def bench_steps(cfg: DictConfig, splits: Splits, steps: int, warmup: int, rounds: int, work: Path) -> dict:
    """Framework and plain step times, alternated ``rounds`` times; the first ``warmup`` steps
    of every run dropped, the rest pooled per kind. Each round's ratio is kept: their spread
    shows how noisy the pooled one is."""
    steady = {"framework": [], "plain": []}
    round_ratios = []
    for r in range(rounds):
        framework = fit_steps(cfg, splits, steps, work / f"fit{r}")[warmup:]
        plain = PlainLoop(cfg, splits).run(steps)[warmup:]
        steady["framework"] += framework
        steady["plain"] += plain
        round_ratios.append(statistics.median(framework) / statistics.median(plain))
    medians = {kind: statistics.median(times) for kind, times in steady.items()}
    return {"median_s": medians, "ratio": medians["framework"] / medians["plain"],
            "round_ratios": round_ratios, "steady_steps_s": steady}


def bench_eval(cfg: DictConfig, splits: Splits) -> float:
    """Seconds of one ``Evaluator.run`` of a freshly built network on the test split."""
    module, _ = build(cfg, splits)
    start = time.perf_counter()
    module.evaluator.run(module.network, int(cfg.data.eval_batch_size))
    return time.perf_counter() - start


def feature_bytes(splits: Splits) -> int:
    """Bytes of the loaded feature tensors: train and test, their snippets included."""
    tensors = [t for part in (splits.train, splits.test) for t in (part.features, part.snippets, part.movement)]
    return sum(t.nbytes for t in tensors if t is not None)


def memory_probe(result_path: Path, data: list[str]) -> None:
    """Subprocess side of the memory benchmark: torch and Lightning are imported (at the top of
    this file), so the baseline is the interpreter plus libraries, and the peak is what a 3-step
    ``vad.train.train`` (data, fit, calibration, final evaluation) adds."""
    baseline = vm_rss_kib()
    with tempfile.TemporaryDirectory(prefix="bench_mem_") as run_dir:
        cfg = make_cfg([*data, "trainer.max_steps=3", "logger=none", "trainer.enable_progress_bar=false"],
                       Path(run_dir))
        train(cfg)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result_path.write_text(json.dumps({"baseline_kib": baseline, "peak_kib": peak}))


def bench_memory(data: list[str], work: Path) -> dict:
    """Peak RSS of ``train(cfg)`` in a fresh process, so that nothing this benchmark holds counts."""
    work.mkdir(parents=True, exist_ok=True)
    result_path = work / "memory.json"
    run([sys.executable, str(Path(__file__).resolve()), "--memory-probe", str(result_path), *data])
    return json.loads(result_path.read_text())


def run(args: list[str]) -> None:
    """Run a child Python in the repository root; on failure, show the end of its output."""
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}")


def bench_method(method: str, args: argparse.Namespace, steps: int, warmup: int, rounds: int, work: Path,
                 memory_probe_too: bool = True) -> dict:
    """Every measurement of one method; its data are freed before the memory probe starts (none
    without ``memory_probe_too``: ``--tiny`` probes the first method only, each probe being a
    fresh process that imports Lightning)."""
    data = overrides(method, args.fraction, args.crops, args.tiny) + (
        [f"threads={args.threads}"] if args.threads is not None else [])
    cfg = make_cfg(data, work / method / "run")
    splits = load_data(cfg)
    datamodule = build(cfg, splits)[1]
    batch = int(cfg.data.batch_size)
    steps_per_epoch = min(len(datamodule.normal_rows), len(datamodule.anomaly_rows)) // batch
    max_steps, max_epochs = int(cfg.trainer.get("max_steps") or -1), int(cfg.trainer.max_epochs)
    official = min(max_steps, max_epochs * steps_per_epoch) if max_steps > 0 else max_epochs * steps_per_epoch
    timed = bench_steps(cfg, splits, steps, warmup, rounds, work / method)
    eval_s = bench_eval(cfg, splits)
    features = feature_bytes(splits)
    del splits, datamodule
    gc.collect()
    memory = bench_memory(data, work / method) if memory_probe_too else None
    step_s = timed["median_s"]["framework"]
    added = 1024 * (memory["peak_kib"] - memory["baseline_kib"]) if memory else None
    return {"step_ms_framework": 1e3 * step_s, "step_ms_plain": 1e3 * timed["median_s"]["plain"],
            "ratio": timed["ratio"], "round_ratios": timed["round_ratios"],
            "steady_steps_s": timed["steady_steps_s"],
            "steps_per_epoch": steps_per_epoch, "epoch_s": steps_per_epoch * step_s,
            "official_steps": official, "official_s_estimate": official * step_s,
            "peak_rss_mb": memory["peak_kib"] / 1024 if memory else None,
            "baseline_rss_mb": memory["baseline_kib"] / 1024 if memory else None,
            "feature_mb": features / 2**20, "peak_over_features": added / features if memory else None,
            "eval_s": eval_s, "eval_protocol": cfg.eval.protocol, "batch": batch,
            "inputs": {**OmegaConf.to_container(cfg.method.inputs, resolve=True), "data_crops": int(cfg.data.crops)}}


def _maybe(value, decimals: int) -> str:
    return "–" if value is None else f"{value:.{decimals}f}"


def table(results: dict) -> str:
    """The markdown table of ``results["methods"]``."""
    head = ["method", "batch", "inputs", "step fw ms", "step plain ms", f"ratio (<= {TARGET})",
            "steps/epoch", "epoch s", "official steps", "official s (extrapolated)", "peak MiB",
            "features MiB", "(peak - imports) / features", "eval s"]
    rows = []
    for name, r in results["methods"].items():
        i = r["inputs"]
        inputs = f"{i['segments']} seg, {i['bins']}, {'L2' if i['normalise'] else 'raw'}, crops {i['crops']} x{i['data_crops']}"
        rows.append([name, str(r["batch"]), inputs, f"{r['step_ms_framework']:.1f}", f"{r['step_ms_plain']:.1f}",
                     f"{r['ratio']:.3f}", str(r["steps_per_epoch"]), f"{r['epoch_s']:.1f}", str(r["official_steps"]),
                     f"{r['official_s_estimate']:.0f}", _maybe(r["peak_rss_mb"], 0), f"{r['feature_mb']:.0f}",
                     _maybe(r["peak_over_features"], 2), f"{r['eval_s']:.2f}"])
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated, of " + ", ".join(METHODS))
    parser.add_argument("--steps", type=int, default=6, help="steps per timed run (the first 2 are warm-up)")
    parser.add_argument("--rounds", type=int, default=2, help="framework/plain alternations")
    parser.add_argument("--fraction", type=float, default=1.0, help="data.fraction of the synthetic videos")
    parser.add_argument("--crops", type=int, default=1, help="data.crops (official RTFM/UR-DMU/BN-WVAD: 10)")
    parser.add_argument("--threads", type=int,
                        help="torch threads (default: torch's; on a loaded shared VM 1 avoids OpenMP contention)")
    parser.add_argument("--out", type=Path, help="folder for bench_methods.json (default: a temp dir)")
    parser.add_argument("--tiny", action="store_true",
                        help="5%% of the videos, batches of 4, 3 steps, 1 round: checks that it works")
    parser.add_argument("--memory-probe", type=Path, help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.memory_probe:
        memory_probe(args.memory_probe, rest)
        return
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    methods = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"--methods: unknown {', '.join(unknown)}; expected some of {', '.join(METHODS)}")
    steps, rounds = (3, 1) if args.tiny else (args.steps, args.rounds)
    warmup = min(2, steps - 1)
    if steps < 2:
        parser.error("--steps must be >= 2: the first steps of each run are dropped as warm-up")

    out = args.out or Path(tempfile.mkdtemp(prefix="bench_methods_"))
    results = {"steps_per_run": steps, "warmup_steps": warmup, "rounds": rounds,
               "fraction": 0.05 if args.tiny else args.fraction, "torch_threads": torch.get_num_threads(),
               "methods": {}}
    with tempfile.TemporaryDirectory(prefix="bench_methods_work_") as tmp:
        for method in methods:
            started = time.perf_counter()
            results["methods"][method] = bench_method(method, args, steps, warmup, rounds, Path(tmp),
                                                      memory_probe_too=not args.tiny or method == methods[0])
            print(f"{method}: measured in {time.perf_counter() - started:.0f} s", flush=True)
    if args.tiny:
        print("--tiny: 5% of the videos, batches of 4, 3 steps, 1 round, the memory of the first method "
              "only; the numbers only show that the benchmark runs")
    print(f"synthetic UCF-Crime I3D RGB (1024-d), data.fraction={results['fraction']}, each method's official "
          f"config; {rounds} round(s) x {steps} steps per kind, first {warmup} of each run dropped; torch threads "
          f"{results['torch_threads']}")
    if not args.tiny:
        print(f"data.crops={args.crops}: the official RTFM/UR-DMU/BN-WVAD data have 10 crops per video; ten crops "
              "of the full data are 2.5 GB+ and 10x the time per step")
    print("epoch s = steps/epoch x framework step; official s = official steps x framework step: an "
          "EXTRAPOLATION from the step time, not a measured run")
    print(table(results))
    for name, r in results["methods"].items():
        print(f"{name}: ratio framework/plain {r['ratio']:.3f} (target <= {TARGET}: "
              f"{'met' if r['ratio'] <= TARGET else 'MISSED'}); per round "
              + ", ".join(f"{x:.3f}" for x in r["round_ratios"]))
    write_json(out / "bench_methods.json", results)
    print(f"wrote {out / 'bench_methods.json'}")


if __name__ == "__main__":
    main()
