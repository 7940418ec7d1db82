"""``python -m vad.evaluate ckpt_path=PATH``: test metrics, per-video scores and ROC/PR/timeline
plots of a checkpoint, in plain torch (no Lightning: the network is built from the checkpoint's
method config and ``state_dict``). ``annotations=FILE.csv`` gives the test videos' anomalous
frames (one's own footage; :mod:`vad.data.annotations_csv`)."""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from vad.checkpoint import read as read_checkpoint
from vad.cli import UserError, user_errors
from vad.config import input_dim
from vad.data.datasets import dataset
from vad.data.loading import annotate, load_data
from vad.device import resolve_device
from vad.evaluation import Evaluator, load_network
from vad.results import describe, write_results

log = logging.getLogger(__name__)

FROM_CHECKPOINT = ("dataset", "data", "modality", "extractor", "movement", "method")


def overridden_groups(overrides: list[str]) -> set[str]:
    """Top-level keys named on the command line (``modality=TWO``, ``data.root=...``)."""
    return {item.lstrip("+~").split("=")[0].split(".")[0] for item in overrides}


def check_inputs(cfg: DictConfig, run: dict, trained_dim: int, ckpt_path: Path) -> None:
    """The features asked for must be those the checkpoint was trained on: the same dimension,
    and the same modality unless ``allow_other_modality`` (RGB and FLOW are both 1024-d)."""
    if input_dim(cfg) != trained_dim:
        raise UserError(
            f"{ckpt_path} was trained on {trained_dim}-d features (modality={run['modality']['name']}, "
            f"extractor={run['extractor']['name']}), but modality={cfg.modality.name} with "
            f"extractor={cfg.extractor.name} gives {input_dim(cfg)}-d: drop those overrides or "
            "pass the ones the checkpoint was trained with")
    trained = run["modality"]["name"]
    if cfg.modality.name != trained and not cfg.allow_other_modality:
        raise UserError(
            f"{ckpt_path} was trained on another modality (trained modality={trained}, asked "
            f"modality={cfg.modality.name}; both {trained_dim}-d): drop modality={cfg.modality.name} "
            f"to evaluate on modality={trained}, or pass allow_other_modality=true to score "
            f"{cfg.modality.name} features with it anyway")


def evaluate(cfg: DictConfig, overridden: set[str] = frozenset()) -> dict:
    """Score the test split with the checkpoint; write ``metrics.json``, ``scores.npz`` and
    ``plots/``; return the content of ``metrics.json``."""
    ckpt_path = Path(str(cfg.ckpt_path))
    log.info("evaluating %s", ckpt_path)
    checkpoint = read_checkpoint(ckpt_path)
    run = checkpoint["hyper_parameters"]["run"]
    with open_dict(cfg):
        for group in FROM_CHECKPOINT:
            if group not in overridden:
                cfg[group] = OmegaConf.create(run[group])
                log.info("%s from the checkpoint: %s", group, run[group].get("name"))
        if cfg.eval.protocol is None:
            cfg.eval.protocol = run["eval"]["protocol"]
    check_inputs(cfg, run, int(checkpoint["hyper_parameters"]["input_dim"]), ckpt_path)

    splits = load_data(cfg, need_train=False)
    if not len(splits.test):
        raise UserError(f"{splits.description} has no test videos to evaluate: extract test videos "
                        "into the store (vad.extract puts the videos of a test/ folder there, see "
                        "labels.test) and give their anomalous frames with annotations=FILE.csv")
    if cfg.get("annotations"):
        splits = annotate(splits, cfg.annotations, cfg.data)
    network = load_network(checkpoint).to(resolve_device(cfg.device))
    evaluation = Evaluator.from_config(cfg, splits.test).run(network, int(cfg.data.eval_batch_size))
    metrics = evaluation.metrics
    out_dir = Path(cfg.paths.output_dir)
    result = write_results(out_dir, evaluation, lambda: {
        "checkpoint": str(ckpt_path), **describe(cfg, splits), "protocol": cfg.eval.protocol,
        **({"annotations": str(cfg.annotations)} if cfg.get("annotations") else {}),
        "epoch": int(checkpoint["epoch"]), "metrics": metrics}, int(cfg.eval.timeline_videos),
        dataset=dataset(cfg.dataset.name).title)
    log.info("auc %.4f ap %.4f far %.4f paired_auc %.4f -> %s", metrics["auc"], metrics["ap"],
             metrics["far"], metrics.get("paired_auc", float("nan")), out_dir)
    return result


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
@user_errors
def main(cfg: DictConfig) -> float:
    return evaluate(cfg, overridden_groups(list(HydraConfig.get().overrides.task)))["metrics"]["auc"]


if __name__ == "__main__":
    main()
