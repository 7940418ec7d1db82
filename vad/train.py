"""``python -m vad.train``: train a MIL anomaly detector and write metrics, checkpoints, logs
and plots into the Hydra run folder."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

from vad.checkpoint import read as read_checkpoint
from vad.cli import user_errors
from vad.config import check_dim, input_dim, validate
from vad.data.features import Splits
from vad.data.loading import load_data
from vad.datamodule import MILDataModule
from vad.evaluation import Evaluator, load_learner, subset
from vad.io import write_text
from vad.lit_module import MILModule
from vad.results import describe, write_results

log = logging.getLogger(__name__)


def make_logger(cfg: DictConfig, run_dir: Path):
    if cfg.logger.name == "tensorboard":
        return TensorBoardLogger(save_dir=str(run_dir), name="", version="", default_hp_metric=False)
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


def build(cfg: DictConfig, splits: Splits) -> tuple[MILModule, MILDataModule]:
    datamodule = MILDataModule(
        splits, batch_size=int(cfg.data.batch_size), eval_batch_size=int(cfg.data.eval_batch_size),
        val_source=cfg.data.val_source, holdout_fraction=float(cfg.data.holdout_fraction),
        seed=int(cfg.seed), use_movement=cfg.movement.name != "none", protocol=cfg.eval.protocol)
    module = MILModule(
        input_dim=input_dim(cfg), dropout=float(cfg.model.dropout),
        loss=OmegaConf.to_container(cfg.loss, resolve=True),
        optimizer=OmegaConf.to_container(cfg.optimizer, resolve=True),
        scheduler=OmegaConf.to_container(cfg.scheduler, resolve=True) if cfg.scheduler else None,
        movement_k=float(cfg.movement.k), run=OmegaConf.to_container(cfg, resolve=True),
        evaluator=Evaluator.from_config(cfg, splits.test, subset(splits.train, datamodule.holdout_rows)
                                        if datamodule.val_source == "train_holdout" else None))
    return module, datamodule


def set_threads(threads) -> None:
    """``threads``: torch's intra-op threads for this run (checked by ``validate``); null keeps
    torch's default."""
    if threads is not None:
        torch.set_num_threads(threads)
    log.info("torch threads: %d", torch.get_num_threads())


def train(cfg: DictConfig) -> dict:
    """Train, evaluate the best checkpoint, write ``metrics.json``; return its content."""
    started = time.perf_counter()
    validate(cfg)
    set_threads(cfg.get("threads"))
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / "config_resolved.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    pl.seed_everything(int(cfg.seed), workers=True)

    splits = load_data(cfg)
    loaded = time.perf_counter()
    if cfg.ckpt_path:
        resumed = read_checkpoint(cfg.ckpt_path)
        check_dim(int(resumed["hyper_parameters"]["input_dim"]), input_dim(cfg),
                  f"checkpoint {cfg.ckpt_path}", cfg)
    module, datamodule = build(cfg, splits)
    logger = make_logger(cfg, run_dir)
    checkpoint = ModelCheckpoint(dirpath=str(run_dir / "checkpoints"), monitor="val/auc", mode="max",
                                 save_last=True, auto_insert_metric_name=False,
                                 filename="epoch{epoch:03d}-auc{val/auc:.4f}")
    callbacks = [checkpoint] + ([LearningRateMonitor(logging_interval="epoch")] if logger else [])
    trainer = pl.Trainer(**cfg.trainer, logger=logger, callbacks=callbacks,
                         default_root_dir=str(run_dir))
    if isinstance(logger, TensorBoardLogger):
        logger.log_hyperparams(flat_hparams(cfg), {"hp/auc": 0.0, "hp/ap": 0.0, "hp/far": 0.0,
                                                   "hp/paired_auc": 0.0})
    fit_started = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
    fitted = time.perf_counter()
    # The final evaluations are plain torch (vad.evaluation), as vad.evaluate scores a checkpoint.
    evaluator, batch_size = module.evaluator, int(cfg.data.eval_batch_size)
    last_eval = evaluator.run(module.learner, batch_size)
    last = {"epoch": trainer.current_epoch - 1, **last_eval.summary()}

    best_path = checkpoint.best_model_path or None
    best_ckpt = read_checkpoint(best_path) if best_path else None
    tested = evaluator.run(load_learner(best_ckpt), batch_size) if best_ckpt else last_eval
    best = {"epoch": int(best_ckpt["epoch"]) if best_ckpt else last["epoch"], "selected_by": "val/auc",
            "val_source": cfg.data.val_source, "selection_metric": evaluator.selection_metric,
            "protocol": cfg.eval.protocol, "checkpoint": best_path, **tested.metrics}
    tensorboard = logger.experiment if isinstance(logger, TensorBoardLogger) else None
    if logger:  # the best checkpoint's metrics apart from the per-epoch curves
        logger.log_metrics({f"best/{k}": v for k, v in tested.metrics.items()}, step=module.global_step)
    if tensorboard is not None:
        logger.log_metrics({f"hp/{k}": best[k] for k in ("auc", "ap", "far", "paired_auc") if k in best},
                           step=module.global_step)

    def record() -> dict:
        return {**describe(cfg, splits), "last": last, "best": best,
                "wall_time_s": round(time.perf_counter() - started, 2),
                # Where the wall time went: reading data, building until fit, fit, test + outputs.
                "timings_s": {"load": round(loaded - started, 3), "setup": round(fit_started - loaded, 3),
                              "fit": round(fitted - fit_started, 3),
                              "test": round(time.perf_counter() - fitted, 3)},
                "run_dir": str(run_dir)}

    result = write_results(run_dir, tested, record, int(cfg.eval.timeline_videos), tensorboard,
                           module.global_step)
    if logger:
        logger.finalize("success")
    log.info("best epoch %d (by %s): auc %.4f ap %.4f far %.4f paired_auc %.4f; last auc %.4f",
             best["epoch"], best["selection_metric"], best["auc"], best["ap"], best["far"],
             best.get("paired_auc", float("nan")), last.get("auc", float("nan")))
    log.info("outputs in %s", run_dir)
    return result


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
@user_errors
def main(cfg: DictConfig) -> float:
    return train(cfg)["best"]["auc"]


if __name__ == "__main__":
    main()
