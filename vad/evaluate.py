"""``python -m vad.evaluate ckpt_path=PATH``: test metrics, ROC/PR/timeline plots of a checkpoint."""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from vad.checkpoint import read as read_checkpoint
from vad.cli import user_errors
from vad.config import input_dim
from vad.datamodule import MILDataModule
from vad.io import write_json
from vad.lit_module import MILModule
from vad.plots import evaluation_figures, save_roc_points, write_figures
from vad.train import load_data

log = logging.getLogger(__name__)

FROM_CHECKPOINT = ("data", "modality", "extractor", "movement")


def overridden_groups(overrides: list[str]) -> set[str]:
    """Top-level keys named on the command line (``modality=TWO``, ``data.root=...``)."""
    return {item.lstrip("+~").split("=")[0].split(".")[0] for item in overrides}


def evaluate(cfg: DictConfig, overridden: set[str] = frozenset()) -> dict:
    """Score the test split with the checkpoint; write ``metrics.json`` and ``plots/``."""
    ckpt_path = Path(str(cfg.ckpt_path))
    checkpoint = read_checkpoint(ckpt_path)
    run = checkpoint["hyper_parameters"]["run"]
    with open_dict(cfg):
        for group in FROM_CHECKPOINT:
            if group not in overridden:
                cfg[group] = OmegaConf.create(run[group])
                log.info("%s from the checkpoint: %s", group, run[group].get("name"))
    trained_dim = int(checkpoint["hyper_parameters"]["input_dim"])
    if input_dim(cfg) != trained_dim:
        raise ValueError(
            f"{ckpt_path} was trained on {trained_dim}-d features (modality={run['modality']['name']}, "
            f"extractor={run['extractor']['name']}), but modality={cfg.modality.name} with "
            f"extractor={cfg.extractor.name} gives {input_dim(cfg)}-d: drop those overrides or "
            "pass the ones the checkpoint was trained with")

    splits = load_data(cfg, need_train=False)
    module = MILModule.load_from_checkpoint(ckpt_path, map_location="cpu",
                                            movement_at_test=bool(cfg.movement.at_test))
    datamodule = MILDataModule(splits, batch_size=1, eval_batch_size=int(cfg.data.eval_batch_size),
                               seed=int(cfg.seed), use_movement=cfg.movement.name != "none",
                               protocol=cfg.eval.protocol)
    trainer = pl.Trainer(accelerator=cfg.trainer.accelerator, devices=cfg.trainer.devices,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    trainer.test(module, datamodule=datamodule, verbose=False)
    metrics = {k.removeprefix("test/"): float(v) for k, v in module.last_metrics.items()}

    out_dir = Path(cfg.paths.output_dir)
    write_figures(evaluation_figures(module.last_test_scores, datamodule.test_truth, splits.test.videos,
                                     metrics, int(cfg.eval.timeline_videos)), out_dir / "plots")
    save_roc_points(module.last_test_scores, datamodule.test_truth, metrics["auc"], out_dir / "plots" / "roc.npz")
    result = {"checkpoint": str(ckpt_path), "data": splits.description, "synthetic": splits.synthetic,
              "modality": cfg.modality.name, "extractor": cfg.extractor.name,
              "epoch": int(checkpoint.get("epoch", -1)), "metrics": metrics}
    write_json(out_dir / "metrics.json", result)
    log.info("auc %.4f ap %.4f far %.4f paired_auc %.4f -> %s", metrics["auc"], metrics["ap"],
             metrics["far"], metrics["paired_auc"], out_dir)
    return result


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
@user_errors
def main(cfg: DictConfig) -> float:
    return evaluate(cfg, overridden_groups(list(HydraConfig.get().overrides.task)))["metrics"]["auc"]


if __name__ == "__main__":
    main()
