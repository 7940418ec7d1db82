"""``python -m vad.prepare``: convert a feature layout into one HDF5 feature store.

    python -m vad.prepare data=ucf_crime_npy data.root=/path/to/features out=store.h5
    python -m vad.train data=store data.path=store.h5 modality=TWO

Reads one video at a time (memory does not grow with the dataset), resumes an interrupted run
from ``<out>.partial`` when the same command is run again, and writes ``out`` only once every
video is done. Options: ``data.crops=mean|one|all``, ``data.crop=K``, ``keep_snippets=true``,
``modality=RGB|FLOW|TWO`` (default: every stream of the layout). Imports neither torch nor Lightning.

Merging complete stores (e.g. the shards written by ``python -m vad.extract ... shard=i
num_shards=n``) into one::

    python -m vad.prepare merge=[feats.shard0of2.h5,feats.shard1of2.h5] out=feats.h5 [expect_shards=2]

(``data=`` is ignored then; see :func:`vad.data.store.merge` for the checks.)
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from vad.cli import override, user_errors
from vad.data import store

log = logging.getLogger(__name__)

NOT_LAYOUTS = ("store", "synthetic")


def _open_layout(data_cfg):
    if data_cfg.name in NOT_LAYOUTS:
        raise ValueError(f"data={data_cfg.name} is not a feature layout to prepare: pick the layout "
                         "of the downloaded features (e.g. data=ucf_crime_npy) with data.root=PATH")
    from vad.data.layouts.registry import (
        open_layout,  # lazy: the readers load on demand
    )

    return open_layout(data_cfg)


def prepare(cfg: DictConfig, layout=None) -> dict:
    """Write the store ``cfg.out`` from ``layout`` (default: the one ``cfg.data`` names); return
    counts: videos, written, skipped, already_done, seconds, mb_read, mb_per_s, streams, crops,
    dims. Ctrl-C raises :class:`vad.data.store.Interrupted` (the finished videos are kept)."""
    if cfg.get("out") is None or OmegaConf.is_missing(cfg, "out"):
        raise ValueError("out=STORE.h5 is required: the store file to write")
    if cfg.get("merge"):
        inputs = cfg.merge
        inputs = [inputs] if isinstance(inputs, str) else list(inputs)
        expect = cfg.get("expect_shards")
        report = store.merge([Path(str(p)).expanduser() for p in inputs],
                             Path(str(cfg.out)).expanduser(),
                             expect_shards=None if expect is None else int(expect))
        result = report.as_dict()
        result["source"] = f"merge of {len(inputs)} stores"
        return result
    layout = layout if layout is not None else _open_layout(cfg.data)
    modality = cfg.get("modality")
    streams = tuple(modality.streams) if modality else None
    report = store.write(layout, Path(str(cfg.out)).expanduser(), streams=streams,
                         crops=str(cfg.data.get("crops", "mean")), crop=int(cfg.data.get("crop", 0)),
                         keep_snippets=bool(cfg.keep_snippets), progress=bool(cfg.progress))
    result = report.as_dict()
    result["source"] = f"{layout.name} {layout.root}"
    return result


@hydra.main(version_base="1.3", config_path="../conf", config_name="prepare")
@user_errors
def main(cfg: DictConfig) -> None:
    from vad.io import write_json

    try:
        result = prepare(cfg)
    except KeyboardInterrupt as err:
        from vad.rerun import interrupted

        interrupted(err, "vad.prepare")
    log.info("train with: python -m vad.train data=store %s", override("data.path", result["out"]))
    write_json(Path(cfg.paths.output_dir) / "prepare.json", result)


if __name__ == "__main__":
    main()
