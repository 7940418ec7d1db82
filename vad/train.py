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
from vad.data import load_splits
from vad.data.features import Splits
from vad.datamodule import MILDataModule
from vad.io import write_json, write_text
from vad.lit_module import MILModule
from vad.plots import evaluation_figures, save_roc_points, write_figures

log = logging.getLogger(__name__)

SYNTHETIC_BANNER = "#" * 78


def load_data(cfg: DictConfig, need_train: bool = True) -> Splits:
    """Read the configured features and check them against modality x extractor
    (``need_train=False``: a store of test videos only will do)."""
    streams = tuple(cfg.modality.streams)
    splits = load_splits(cfg.data, streams, cfg.extractor.name, int(cfg.extractor.dim),
                         snippets=cfg.eval.protocol == "snippets", need_train=need_train)
    check_dim(splits.feature_dim, input_dim(cfg), f"data={cfg.data.name}", cfg)
    if cfg.movement.name != "none" and not splits.has_movement:
        raise ValueError(f"movement={cfg.movement.name} needs movement values, but data={cfg.data.name} "
                         "has none: use movement=none, or features prepared with movement values")
    if splits.synthetic:
        log.warning("\n%s\n# USING %s\n# Numbers from this run say nothing about real videos; set "
                    "data=... data.root=... for real features.\n%s",
                    SYNTHETIC_BANNER, splits.description, SYNTHETIC_BANNER)
    else:
        log.info("data: %s", splits.description)
    return splits


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
        movement_k=float(cfg.movement.k), movement_at_test=bool(cfg.movement.at_test),
        val_source=cfg.data.val_source, pair_seed=int(cfg.eval.pair_seed),
        run=OmegaConf.to_container(cfg, resolve=True))
    return module, datamodule


def set_threads(threads) -> None:
    """``threads``: torch's intra-op threads for this run (checked by ``validate``); null keeps
    torch's default."""
    if threads is not None:
        torch.set_num_threads(threads)
    log.info("torch threads: %d", torch.get_num_threads())


def _strip(metrics: dict, prefix: str = "test/") -> dict:
    return {k[len(prefix):] if k.startswith(prefix) else k: float(v) for k, v in metrics.items()}


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
    last = {"epoch": trainer.current_epoch - 1, **_strip(module.last_metrics)}

    best_path = checkpoint.best_model_path or None
    trainer.test(module, datamodule=datamodule, ckpt_path=best_path, verbose=False)
    tested = module.last_metrics
    best_epoch = int(torch.load(best_path, map_location="cpu", weights_only=False)["epoch"]) if best_path else last["epoch"]
    best = {"epoch": best_epoch, "selected_by": "val/auc",
            "val_source": cfg.data.val_source,
            "selection_metric": "test/auc" if cfg.data.val_source == "test" else "holdout/video_auc",
            "protocol": cfg.eval.protocol,
            "checkpoint": best_path, **_strip(tested)}
    figures = evaluation_figures(module.last_test_scores, datamodule.test_truth, splits.test.videos,
                                 best, int(cfg.eval.timeline_videos))
    write_figures(figures, run_dir / "plots",
                  logger.experiment if isinstance(logger, TensorBoardLogger) else None, module.global_step)
    save_roc_points(module.last_test_scores, datamodule.test_truth, best["auc"], run_dir / "plots" / "roc.npz")
    if isinstance(logger, TensorBoardLogger):
        logger.log_metrics({f"hp/{k}": best[k] for k in ("auc", "ap", "far", "paired_auc") if k in best},
                           step=module.global_step)
    if logger:
        logger.finalize("success")

    result = {"data": splits.description, "synthetic": splits.synthetic,
              "modality": cfg.modality.name, "extractor": cfg.extractor.name,
              "last": last, "best": best, "wall_time_s": round(time.perf_counter() - started, 2),
              # Where the wall time went: reading data, building until fit, fit, test + plots.
              "timings_s": {"load": round(loaded - started, 3), "setup": round(fit_started - loaded, 3),
                            "fit": round(fitted - fit_started, 3),
                            "test": round(time.perf_counter() - fitted, 3)},
              "run_dir": str(run_dir)}
    write_json(run_dir / "metrics.json", result)
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
