"""What an evaluation writes, the same for a training run's folder and ``vad.evaluate``'s:
``scores.npz`` (per-video scores), ``plots/`` (ROC, PR, timelines, ``roc.npz``) and, last,
``metrics.json``, every file atomically (``vad.io``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from vad.io import save_figure, write_json, write_npz

if TYPE_CHECKING:
    from vad.data.features import Splits
    from vad.evaluation import Evaluation


def describe(cfg, splits: Splits) -> dict:
    """The fields every ``metrics.json`` starts with: which dataset, data, modality, extractor and
    method."""
    return {"dataset": cfg.dataset.name, "headline": cfg.dataset.headline, "data": splits.description,
            "synthetic": splits.synthetic,
            "modality": cfg.modality.name, "extractor": cfg.extractor.name, "method": cfg.method.name}


def score_arrays(evaluation: Evaluation) -> dict[str, np.ndarray]:
    """``scores.npz``'s arrays: per test video (in test-list order) ``path``, ``name``, ``cls``,
    ``label``, ``frames`` and its scores ``scores[offsets[i]:offsets[i + 1]]`` (32 segments, or
    T snippets under the ``snippets`` protocol), with its annotated spans
    ``spans[span_offsets[i]:span_offsets[i + 1]]`` (1-based inclusive frame ranges)."""
    videos, counts = evaluation.videos, np.asarray(evaluation.counts, dtype=np.int64)
    units = np.arange(evaluation.scores.shape[1])[None, :] < counts[:, None]
    spans = [span for v in videos for span in v.spans]
    return {
        "protocol": np.array(evaluation.protocol),
        "path": np.array([v.path for v in videos], dtype=str),
        "name": np.array([v.name for v in videos], dtype=str),
        "cls": np.array([v.cls for v in videos], dtype=str),
        "label": np.array([v.label for v in videos], dtype=np.int64),
        "frames": np.array([v.frames for v in videos], dtype=np.int64),
        "scores": evaluation.scores[units].astype(np.float32),
        "offsets": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        "spans": np.array(spans, dtype=np.int64).reshape(-1, 2),
        "span_offsets": np.concatenate([[0], np.cumsum([len(v.spans) for v in videos])]).astype(np.int64),
    }


def write_figures(figures: dict, out_dir: Path, writer=None, step: int = 0) -> None:
    """Save each figure as ``out_dir/<name>.png`` and, given a TensorBoard writer, log it there."""
    import matplotlib.pyplot as plt

    for name, fig in figures.items():
        save_figure(fig, out_dir / f"{name}.png")
        if writer is not None:
            writer.add_figure(f"test/{name}", fig, global_step=step)
        plt.close(fig)


def write_results(out_dir, evaluation: Evaluation, record: Callable[[], dict], timeline_videos: int,
                  writer=None, step: int = 0, dataset: str = "") -> dict:
    """Write ``scores.npz``, ``plots/`` and then ``metrics.json`` = ``record()`` (called last so
    that its timings include the figures) into ``out_dir``; return the record. ``writer``: a
    TensorBoard writer that gets the figures too; ``dataset`` names the benchmark in the figures'
    titles. Without test videos (``evaluation.metrics``
    is None) there are no scores or plots: ``metrics.json`` only."""
    out_dir = Path(out_dir)
    metrics = evaluation.metrics
    if metrics is not None:
        from vad.plots import evaluation_figures, roc_points

        write_npz(out_dir / "scores.npz", **score_arrays(evaluation))
        write_figures(evaluation_figures(evaluation.scores, evaluation.truth, evaluation.videos, metrics,
                                         timeline_videos, dataset), out_dir / "plots", writer, step)
        fpr, tpr = roc_points(evaluation.scores, evaluation.truth)
        write_npz(out_dir / "plots" / "roc.npz", fpr=fpr, tpr=tpr, auc=np.float64(metrics["auc"]))
    result = record()
    if metrics is not None:  # which ground truth the numbers rest on
        result = {**result, "evaluated": evaluation.provenance()}
    write_json(out_dir / "metrics.json", result)
    return result
