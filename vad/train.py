"""``python -m vad.train``: train an anomaly detector (``method=mil|topk_mil|rtfm|urdmu|bnwvad``)
and write metrics, checkpoints, logs and plots into the Hydra run folder.

The run's lifecycle: it holds the folder's lock (``vad.run_lock``) from start to end, saves
``last.ckpt`` and logs one line at the end of every epoch (``vad.epoch_end``), refuses a resume
with nothing left to train, puts an unexpected exception into ``train.log`` with its traceback,
and on Ctrl-C writes an ``"interrupted"`` ``metrics.json`` and prints the command that resumes
it (exit status 130).

Lightning and torch are imported where a run starts, not with this module: a command that fails
at composition or in its first checks (and a sweep's launching process, whose jobs run elsewhere)
answers in a second instead of after Lightning's ~10 s import.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from omegaconf import DictConfig, OmegaConf

from vad.checkpoint import read as read_checkpoint
from vad.cli import USER_ERRORS, UserError, log_to_files, override, user_errors
from vad.config import check_dim, input_dim, validate
from vad.data.datasets import dataset
from vad.data.loading import load_data
from vad.detection.calibration import store_calibrations
from vad.evaluation import Evaluator, build_part, load_network, subset
from vad.io import write_json, write_text
from vad.rerun import command
from vad.results import describe, write_results
from vad.run_lock import RunLock

if TYPE_CHECKING:
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ModelCheckpoint

    from vad.data.features import Splits
    from vad.datamodule import MILDataModule
    from vad.epoch_end import EpochEnd
    from vad.lit_module import MethodModule

log = logging.getLogger(__name__)


def make_logger(cfg: DictConfig, run_dir: Path):
    from pytorch_lightning.loggers import CSVLogger

    from vad.run_writers import OneFileTensorBoardLogger

    if cfg.logger.name == "tensorboard":
        return OneFileTensorBoardLogger(save_dir=str(run_dir), name="", version="", default_hp_metric=False)
    if cfg.logger.name == "csv":
        return CSVLogger(save_dir=str(run_dir), name="", version="")
    if cfg.logger.name == "none":
        return False
    raise ValueError(f"logger.name={cfg.logger.name!r}: expected tensorboard, csv or none")


def flat_hparams(cfg: DictConfig) -> dict:
    """Scalar leaves of the config as ``a/b`` keys for the TensorBoard HPARAMS tab."""
    flat = {}

    def walk(node, prefix):
        for key, value in node.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict):
                walk(value, name + "/")
            elif key not in ("_target_", "_partial_"):
                flat[name] = value if isinstance(value, (int, float, str, bool)) else str(value)

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return flat


def build(cfg: DictConfig, splits: Splits) -> tuple[MethodModule, MILDataModule]:
    """The method's LightningModule (``method.module``, given ``method.network`` and
    ``method.loss``) and the datamodule serving ``method.inputs``."""
    from vad.datamodule import MILDataModule

    if not len(splits.test) and cfg.data.val_source == "train_holdout":
        log.info("no test videos: every epoch is evaluated on the training hold-out only "
                 "(holdout/video_auc), and the run computes no test metrics")
    datamodule = MILDataModule(
        splits, batch_size=int(cfg.data.batch_size), eval_batch_size=int(cfg.data.eval_batch_size),
        val_source=cfg.data.val_source, holdout_fraction=float(cfg.data.holdout_fraction),
        seed=int(cfg.seed), use_movement=cfg.movement.name != "none", protocol=cfg.eval.protocol,
        crops=cfg.method.inputs.crops)
    method = OmegaConf.to_container(cfg.method, resolve=True)
    module = build_part(method["module"], "method.module")(
        input_dim=input_dim(cfg), network=method["network"], loss=method["loss"],
        optimizer=OmegaConf.to_container(cfg.optimizer, resolve=True),
        scheduler=OmegaConf.to_container(cfg.scheduler, resolve=True) if cfg.scheduler else None,
        movement_k=float(cfg.movement.k), run=OmegaConf.to_container(cfg, resolve=True),
        evaluator=Evaluator.from_config(cfg, splits.test, subset(splits.train, datamodule.holdout_rows)
                                        if datamodule.val_source == "train_holdout" else None))
    return module, datamodule


def check_method(cfg: DictConfig) -> None:
    """Build the method's network and loss once before any data are read, so that a wrong
    argument (``method.network.dropout=1.5``, a typo in a key) fails at once, naming the key."""
    method = OmegaConf.to_container(cfg.method, resolve=True)
    build_part(method["network"], "method.network", input_dim=input_dim(cfg))
    build_part(method["loss"], "method.loss")


def set_threads(threads) -> None:
    """``threads``: torch's intra-op threads for this run (checked by ``validate``); null keeps
    torch's default."""
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    log.info("torch threads: %d", torch.get_num_threads())


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C ended the run after it wrote an ``"interrupted"`` ``metrics.json``; the message
    says after which epoch and how to resume."""


def check_resume(ckpt_path, checkpoint: dict, trainer_cfg) -> dict:
    """Where the checkpoint ended (``epoch`` index, ``global_step``); a checkpoint that already
    reached ``trainer.max_epochs`` (or ``max_steps``) is an error, not Lightning's silent no-op."""
    epoch, step = int(checkpoint["epoch"]), int(checkpoint.get("global_step", 0))
    done, max_epochs = epoch + 1, int(trainer_cfg.max_epochs)
    if max_epochs <= done:
        raise UserError(f"ckpt_path={ckpt_path} ended at epoch {done} (global step {step}), but "
                        f"trainer.max_epochs={max_epochs}: nothing is left to train; raise trainer.max_epochs "
                        f"above {done} to continue (e.g. {override('trainer.max_epochs', done + max_epochs)})")
    max_steps = int(trainer_cfg.get("max_steps") or -1)
    if 0 < max_steps <= step:
        raise UserError(f"ckpt_path={ckpt_path} ended at global step {step} (epoch {done}), but "
                        f"trainer.max_steps={max_steps}: nothing is left to train; raise trainer.max_steps "
                        f"above {step} to continue")
    return {"checkpoint": str(ckpt_path), "epoch": epoch, "global_step": step}


def trainer_args(cfg: DictConfig) -> dict:
    """``cfg.trainer`` for ``pl.Trainer``; ``enable_progress_bar: null`` shows the bar only
    when stdout is a terminal (no bar characters in nohup or SLURM logs)."""
    args = OmegaConf.to_container(cfg.trainer, resolve=True)
    if args.get("enable_progress_bar") is None:
        args["enable_progress_bar"] = sys.stdout.isatty()
    return args


def resume_command(run_dir: Path) -> str:
    """``python -m vad.train`` with this run's overrides, writing on into ``run_dir`` from its
    ``last.ckpt``."""
    return " ".join([command("vad.train", drop=("ckpt_path",)), override("hydra.run.dir", run_dir),
                     override("ckpt_path", run_dir / "checkpoints" / "last.ckpt")])


def log_failure(err: BaseException) -> None:
    """Put a failed run's unexpected exception (a bug, OOM) into its log files (``train.log``)
    with its traceback; ``vad.cli.user_errors`` writes a user error's message there itself."""
    if isinstance(err, USER_ERRORS):
        return
    log_to_files(logging.ERROR, "training failed:\n" + "".join(traceback.format_exception(err)).rstrip())


@dataclass
class RunState:
    """What ``train`` needs after a Ctrl-C: filled in as the run gets there."""

    epoch_end: EpochEnd | None = None
    splits: Splits | None = None
    resumed_from: dict | None = None
    checkpoint: ModelCheckpoint | None = None
    logger: object = None
    trainer: pl.Trainer | None = None
    fitted: bool = False


def train(cfg: DictConfig) -> dict:
    """Train, evaluate the best checkpoint, write ``metrics.json``; return its content. Raises
    :class:`RunInterrupted` on Ctrl-C, after writing an ``"interrupted"`` ``metrics.json``."""
    started = time.perf_counter()
    state = RunState()
    try:
        validate(cfg)
        run_dir = Path(cfg.paths.output_dir)
        with RunLock(run_dir):
            try:
                return _train(cfg, run_dir, started, state)
            except (KeyboardInterrupt, SystemExit) as stop:
                # Lightning ends a Ctrl-C in fit or test with sys.exit(1), the trainer marked interrupted.
                if isinstance(stop, SystemExit) and not (state.trainer and state.trainer.interrupted):
                    raise
                raise RunInterrupted(interrupted(cfg, run_dir, started, state)) from None
            finally:
                if state.logger:  # Lightning is imported by then
                    from vad.run_writers import OneFileTensorBoardLogger

                    if isinstance(state.logger, OneFileTensorBoardLogger):
                        state.logger.close()
    except Exception as err:
        log_failure(err)
        raise


def _train(cfg: DictConfig, run_dir: Path, started: float, state: RunState) -> dict:
    set_threads(cfg.get("threads"))
    write_text(run_dir / "config_resolved.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    check_method(cfg)
    if cfg.ckpt_path:  # before reading the data: a checkpoint that cannot resume fails at once
        resumed = read_checkpoint(cfg.ckpt_path)
        check_dim(int(resumed["hyper_parameters"]["input_dim"]), input_dim(cfg),
                  f"checkpoint {cfg.ckpt_path}", cfg)
        state.resumed_from = check_resume(cfg.ckpt_path, resumed, cfg.trainer)
        log.info("resuming from %s: epoch %d done, global step %d", cfg.ckpt_path,
                 state.resumed_from["epoch"] + 1, state.resumed_from["global_step"])
    splits = state.splits = load_data(cfg)  # draws no global random numbers: seeding can follow
    loaded = time.perf_counter()
    # Lightning only now: bad data (the commonest failure) are reported without its ~10 s import.
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint
    from pytorch_lightning.loggers import TensorBoardLogger

    from vad.epoch_end import EpochEnd
    from vad.run_writers import AtomicCheckpointIO

    pl.seed_everything(int(cfg.seed), workers=True)
    module, datamodule = build(cfg, splits)
    logger = state.logger = make_logger(cfg, run_dir)
    checkpoint = state.checkpoint = ModelCheckpoint(
        dirpath=str(run_dir / "checkpoints"), monitor="val/auc", mode="max",
        auto_insert_metric_name=False, filename="epoch{epoch:03d}-auc{val/auc:.4f}")
    state.epoch_end = EpochEnd(run_dir / "checkpoints" / "last.ckpt")  # saved every epoch, after the best
    callbacks = [checkpoint, state.epoch_end] + ([LearningRateMonitor(logging_interval="epoch")] if logger else [])
    trainer = state.trainer = pl.Trainer(**trainer_args(cfg), logger=logger, callbacks=callbacks,
                         plugins=[AtomicCheckpointIO()], default_root_dir=str(run_dir))
    if isinstance(logger, TensorBoardLogger):
        logger.log_hyperparams(flat_hparams(cfg), {"hp/auc": 0.0, "hp/ap": 0.0, "hp/far": 0.0,
                                                   "hp/paired_auc": 0.0})
    fit_started = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
    fitted = time.perf_counter()
    state.fitted = True
    # Thresholds for vad.detect (threshold=far@...) from the normal training videos, in both checkpoints.
    store_calibrations([checkpoint.best_model_path, state.epoch_end.last_path], splits.train,
                       float(cfg.movement.k) if cfg.movement.at_test else 0.0, int(cfg.data.eval_batch_size))
    # The final evaluations are plain torch (vad.evaluation), as vad.evaluate scores a checkpoint.
    evaluator, batch_size = module.evaluator, int(cfg.data.eval_batch_size)
    last_eval = evaluator.run(module.network, batch_size)
    last = {"epoch": trainer.current_epoch - 1, **last_eval.summary()}

    best_path = checkpoint.best_model_path or None
    best_ckpt = read_checkpoint(best_path) if best_path else None
    tested = evaluator.run(load_network(best_ckpt), batch_size) if best_ckpt else last_eval
    # Without test videos the hold-out's video AUC is the best checkpoint's only number ("test": None).
    scored = tested.metrics if tested.metrics is not None else tested.summary()
    best = {"epoch": int(best_ckpt["epoch"]) if best_ckpt else last["epoch"], "selected_by": "val/auc",
            "val_source": cfg.data.val_source, "selection_metric": evaluator.selection_metric,
            "protocol": cfg.eval.protocol, "checkpoint": best_path, **scored}
    tensorboard = logger.experiment if isinstance(logger, TensorBoardLogger) else None
    if logger:  # the best checkpoint's metrics apart from the per-epoch curves
        logger.log_metrics({f"best/{k}": v for k, v in scored.items() if v is not None}, step=module.global_step)
    if tensorboard is not None:
        logger.log_metrics({f"hp/{k}": best[k] for k in ("auc", "ap", "far", "paired_auc") if k in best},
                           step=module.global_step)

    def record() -> dict:
        return {"status": "finished", "resumed_from": state.resumed_from, **describe(cfg, splits),
                "last": last, "best": best,
                "wall_time_s": round(time.perf_counter() - started, 2),
                # Where the wall time went: reading data, building until fit, fit, test + outputs.
                "timings_s": {"load": round(loaded - started, 3), "setup": round(fit_started - loaded, 3),
                              "fit": round(fitted - fit_started, 3),
                              "test": round(time.perf_counter() - fitted, 3)},
                "run_dir": str(run_dir), "history": state.epoch_end.history}

    result = write_results(run_dir, tested, record, int(cfg.eval.timeline_videos), tensorboard,
                           module.global_step, dataset(cfg.dataset.name).title)
    if logger:
        logger.finalize("success")
    if tested.metrics is None:
        log.info("best epoch %d/%d by %s %.4f; no test metrics (metrics.json: \"test\": null): %s has "
                 "no test videos; evaluate test videos with frame annotations through vad.evaluate "
                 "annotations=FILE.csv", best["epoch"] + 1, int(cfg.trainer.max_epochs),
                 best["selection_metric"], tested.holdout_auc, splits.description)
    else:
        log.info("best epoch %d/%d (by %s): auc %.4f ap %.4f far %.4f paired_auc %.4f; last auc %.4f",
                 best["epoch"] + 1, int(cfg.trainer.max_epochs), best["selection_metric"], best["auc"],
                 best["ap"], best["far"], best.get("paired_auc", float("nan")), last.get("auc", float("nan")))
    log.info("outputs in %s", run_dir)
    return result


def interrupted(cfg: DictConfig, run_dir: Path, started: float, state: RunState) -> str:
    """Write the ``"interrupted"`` ``metrics.json`` (with the last finished epoch's metrics) and
    log what to run next; returns that message."""
    last_ckpt = run_dir / "checkpoints" / "last.ckpt"
    if state.fitted:
        best = (state.checkpoint.best_model_path if state.checkpoint else "") or last_ckpt
        message = ("interrupted after training, during the final evaluation; evaluate the best checkpoint "
                   f"with python -m vad.evaluate {override('ckpt_path', best)}")
    elif last_ckpt.is_file():
        done = int(read_checkpoint(last_ckpt)["epoch"]) + 1
        message = (f"interrupted after epoch {done}/{int(cfg.trainer.max_epochs)}; resume with "
                   f"{resume_command(run_dir)}")
    else:
        message = "interrupted before the first epoch ended; nothing to resume: run the command again"
    last = state.epoch_end.last if state.epoch_end else None
    write_json(run_dir / "metrics.json", {
        "status": "interrupted", "message": message, "resumed_from": state.resumed_from,
        "data": state.splits.description if state.splits else None,
        "synthetic": state.splits.synthetic if state.splits else None,
        "modality": cfg.modality.name, "extractor": cfg.extractor.name,
        "last": {"epoch": last[0], **{k.removeprefix("test/"): v for k, v in last[1].items()}} if last else None,
        "wall_time_s": round(time.perf_counter() - started, 2), "run_dir": str(run_dir),
        "history": state.epoch_end.history if state.epoch_end else []})
    log.warning(message)
    return message


def objective(best: dict, headline: str = "auc") -> float:
    """What ``vad.train`` returns to a sweeper: the best checkpoint's test metric that the
    dataset's papers lead with (``dataset.headline``: AUC, or AP for XD-Violence), or its hold-out
    video AUC when the data have no test videos."""
    return best[headline] if headline in best else best["holdout/video_auc"]


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
@user_errors
def main(cfg: DictConfig) -> float:
    try:
        return objective(train(cfg)["best"], str(cfg.dataset.headline))
    except RunInterrupted:
        sys.exit(130)  # as a shell reports a process ended by SIGINT; the message is logged


if __name__ == "__main__":
    main()
