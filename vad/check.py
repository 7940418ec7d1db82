"""``python -m vad.check data=<layout> data.root=PATH``: print a dataset's problems, train nothing.

Exit status 1 when the report has errors, so scripts can gate on it.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from vad.cli import user_errors
from vad.data.layouts.registry import open_layout
from vad.data.reading import Report, read_layout, read_options


def check(cfg: DictConfig) -> Report:
    layout = open_layout(cfg.data)
    streams = tuple(cfg.modality.streams) if cfg.get("modality") else layout.streams()
    dim = int(cfg.extractor.dim) if cfg.get("extractor") else None
    report, _ = read_layout(layout, streams, dim, keep=False, **read_options(cfg.data))
    return report


@hydra.main(version_base="1.3", config_path="../conf", config_name="check")
@user_errors
def main(cfg: DictConfig) -> None:
    report = check(cfg)
    print(report.format())
    if not report.ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
