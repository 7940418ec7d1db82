"""``python -m vad.extract``: video files -> feature store, through C3D or I3D.

    python -m vad.extract extractor=I3D modality=TWO videos=/data/UCF_Crime out=i3d.h5 \\
        weights.rgb=/w/rgb_imagenet.pt weights.flow=/w/flow_imagenet.pt movement=lk
    python -m vad.train data=store data.path=i3d.h5 extractor=I3D modality=TWO

Writes per-clip features for every video (``keep_snippets="all"``) and the 32-segment
features through :func:`vad.data.store.write` (one video at a time, resumable from
``<out>.partial``, ``out`` renamed into place at the end); decoded frame count and fps are
recorded per video; bad videos (unreadable, empty, shorter than 16 frames) are skipped and
listed with their reason in the store's ``/log`` (a re-run does not retry them). Sharding:
``shard=i num_shards=n`` takes every n-th video (see :func:`shard_out` for the file names),
then ``python -m vad.prepare merge=[...] out=ALL.h5`` joins the shards. Imports torch (the networks), not
Lightning. Ctrl-C ends with the number of videos kept and the command that resumes.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from vad.cli import override, user_errors

log = logging.getLogger(__name__)


def shard_out(out, shard: int, num_shards: int) -> Path:
    """The store file of one shard: ``{shard}``/``{num_shards}`` in ``out`` are filled in;
    otherwise (num_shards > 1) ``.shard<i>of<n>`` goes before the suffix."""
    text = str(out)
    if "{shard}" in text or "{num_shards}" in text:
        return Path(text.format(shard=shard, num_shards=num_shards)).expanduser()
    path = Path(text).expanduser()
    if num_shards > 1:
        path = path.with_name(f"{path.stem}.shard{shard}of{num_shards}{path.suffix}")
    return path


def _default_out(cfg: DictConfig) -> str:
    return f"{cfg.extractor.name}_{cfg.modality.name}.h5"


def _out(cfg: DictConfig) -> Path:
    out = cfg.get("out")
    return shard_out(out if out is not None else _default_out(cfg), int(cfg.shard), int(cfg.num_shards))


def _movement_name(cfg: DictConfig):
    return None if cfg.movement.name == "none" else str(cfg.movement.name)


def open_layout(cfg: DictConfig):
    """The :class:`~vad.data.layouts.videos.VideoLayout` of ``cfg`` (loads the networks)."""
    from vad.data.layouts.videos import VideoLayout

    if OmegaConf.is_missing(cfg, "videos") or cfg.get("videos") is None:
        raise ValueError("videos=DIR_OR_LIST is required: a folder of videos or a list file")
    weights = cfg.get("weights")  # weights.rgb=... weights.flow=..., or weights=random: every stream
    if OmegaConf.is_config(weights):
        weights = OmegaConf.to_container(weights, resolve=True)
    size = list(cfg.size) if cfg.get("size") else None
    labels = OmegaConf.to_container(cfg.labels, resolve=True) if cfg.get("labels") is not None else None
    return VideoLayout(cfg.videos, extractor=cfg.extractor.name, streams=tuple(cfg.modality.streams),
                       weights=weights, flow=str(cfg.get("flow", "auto")), movement=_movement_name(cfg),
                       ten_crop=bool(cfg.get("ten_crop", False)), batch_size=int(cfg.batch_size),
                       device=str(cfg.get("device", "auto")), shard=int(cfg.shard),
                       num_shards=int(cfg.num_shards), size=size, progress=bool(cfg.progress),
                       seed=int(cfg.get("seed", 0)), flow_workers=cfg.get("flow_workers", "auto"),
                       labels=labels, dataset=str(cfg.dataset.name))


def extract(cfg: DictConfig) -> dict:
    """Extract the features of ``cfg.videos`` into the store ``cfg.out`` (per shard); return the
    write report (videos, written, skipped, failed [(path, reason)], seconds, clips_per_s...)."""
    from vad.data import store

    started = time.perf_counter()
    out = _out(cfg)
    layout = open_layout(cfg)  # weights are loaded (or refused) before any video is read
    report = store.write(layout, out, streams=tuple(cfg.modality.streams),
                         crops=str(cfg.get("crops", "mean")), crop=int(cfg.get("crop", 0)),
                         keep_snippets=store.KEEP_ALL, progress=bool(cfg.progress))
    result = report.as_dict()
    pipeline = layout.pipeline
    result.update(source=f"{layout.name} {layout.root}", extractor=layout.extractor,
                  shard=layout.shard, num_shards=layout.num_shards,
                  device=str(layout.device), clips=pipeline.clips_done,
                  clips_per_s=round(pipeline.clips_done / pipeline.seconds, 3) if pipeline.seconds else None,
                  total_seconds=round(time.perf_counter() - started, 3))
    return result


@hydra.main(version_base="1.3", config_path="../conf", config_name="extract")
@user_errors
def main(cfg: DictConfig) -> None:
    from vad.io import write_json

    try:
        result = extract(cfg)
    except KeyboardInterrupt as err:
        from vad.rerun import interrupted

        interrupted(err, "vad.extract")
    log.info("%s clips/s on %s; %s", result["clips_per_s"], result["device"], next_step(cfg, result))
    write_json(Path(cfg.paths.output_dir) / "extract.json", result)


def next_step(cfg: DictConfig, result: dict) -> str:
    """What to run next: train on the store, or (a shard) merge every shard's store first."""
    num_shards = int(result["num_shards"])
    if num_shards == 1:
        return (f"train with: python -m vad.train data=store {override('data.path', result['out'])} "
                f"extractor={result['extractor']} modality={cfg.modality.name}")
    from vad.rerun import list_override

    out = str(cfg.out) if cfg.get("out") is not None else _default_out(cfg)
    shards = [shard_out(out, i, num_shards) for i in range(num_shards)]
    merged = Path(out.replace("{shard}", "all").format(num_shards=num_shards)).expanduser()
    return (f"once every shard is done, merge them: python -m vad.prepare "
            f"{list_override('merge', shards)} {override('out', merged)} expect_shards={num_shards}")


if __name__ == "__main__":
    main()
