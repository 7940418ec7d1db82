"""ROC, PR and score-versus-ground-truth figures, drawn from the weighted segment entries.

Every run writes them, so they are cheap to draw: fixed margins instead of ``tight_layout`` (which
draws each figure once more to measure its text), and a timeline of a few steps per segment and
one band per span instead of one point per frame."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import precision_recall_curve, roc_curve  # noqa: E402

from vad.metrics import FrameTruth  # noqa: E402
from vad.types import Video  # noqa: E402


def roc_points(scores: np.ndarray, truth: FrameTruth) -> tuple[np.ndarray, np.ndarray]:
    """Frame-level ROC (fpr, tpr), identical to the curve of the expanded frame arrays."""
    s, y, w = truth.entries(scores)
    keep = w > 0
    fpr, tpr, _ = roc_curve(y[keep], s[keep], sample_weight=w[keep])
    return fpr, tpr


def roc_figure(scores: np.ndarray, truth: FrameTruth, auc: float, label: str = "model",
               dataset: str = "") -> plt.Figure:
    fpr, tpr = roc_points(scores, truth)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(fpr, tpr, label=f"{label} (AUC {auc:.4f})")
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=_titled("Frame-level ROC", dataset),
           xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right")
    fig.subplots_adjust(left=0.14, right=0.96, bottom=0.11, top=0.93)
    return fig


def pr_figure(scores: np.ndarray, truth: FrameTruth, ap: float, label: str = "model",
              dataset: str = "") -> plt.Figure:
    s, y, w = truth.entries(scores)
    keep = w > 0
    precision, recall, _ = precision_recall_curve(y[keep], s[keep], sample_weight=w[keep])
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.step(recall, precision, where="post", label=f"{label} (AP {ap:.4f})")
    ax.set(xlabel="recall", ylabel="precision", title=_titled("Frame-level precision-recall", dataset),
           xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="upper right")
    fig.subplots_adjust(left=0.14, right=0.96, bottom=0.11, top=0.93)
    return fig


def timeline_rows(truth: FrameTruth, count: int) -> np.ndarray:
    """A few test videos to draw: anomalous ones of distinct classes first, then normal ones."""
    rows, seen = [], set()
    for row in np.flatnonzero(truth.labels == 1):
        if truth.classes[row] not in seen and len(rows) < max(1, count - count // 3):
            rows.append(row)
            seen.add(truth.classes[row])
    rows += list(np.flatnonzero(truth.labels == 0)[: count - len(rows)])
    return np.asarray(rows[:count], dtype=int)


def timeline_figure(scores: np.ndarray, truth: FrameTruth, videos: list[Video], rows: np.ndarray) -> plt.Figure:
    """Per-frame score of each chosen video (a step per segment, the tail on the last one) with
    its annotated anomalous frames shaded."""
    fig, axes = plt.subplots(len(rows), 1, figsize=(8, 1.6 * len(rows)), squeeze=False)
    for ax, row in zip(axes[:, 0], rows):
        one = truth.subset(np.array([row]))
        full = one.with_tail(np.asarray(scores[row: row + 1], dtype=np.float64))[0]
        counts = (one.pos + one.neg)[0]
        filled = counts > 0
        edges = np.concatenate([[0], np.cumsum(counts[filled])])
        for i, (start, end) in enumerate(videos[row].spans):
            ax.axvspan(start - 1, end, color="tab:red", alpha=0.2, lw=0, label="ground truth" if i == 0 else None)
        ax.stairs(full[filled], edges, color="tab:blue", lw=1, label="score")
        ax.set(ylim=(0, 1.05), xlim=(0, max(1, edges[-1] - 1)))
        ax.set_title(f"{videos[row].name} ({truth.classes[row]})", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0, 0].legend(loc="upper right", fontsize=7)
    axes[-1, 0].set_xlabel("frame")
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.5 / (1.6 * len(rows)), top=1 - 0.25 / (1.6 * len(rows)),
                        hspace=0.55)
    return fig


def _titled(title: str, dataset: str) -> str:
    return f"{title}: {dataset}" if dataset else title


def evaluation_figures(scores: np.ndarray, truth: FrameTruth, videos: list[Video], metrics: dict,
                       timeline_videos: int, dataset: str = "") -> dict[str, plt.Figure]:
    """The figures every run and every evaluation writes: roc, pr and timelines (``dataset``:
    the benchmark their titles name)."""
    figures = {"roc": roc_figure(scores, truth, metrics["auc"], dataset=dataset),
               "pr": pr_figure(scores, truth, metrics["ap"], dataset=dataset)}
    if timeline_videos > 0:
        figures["timelines"] = timeline_figure(scores, truth, videos, timeline_rows(truth, timeline_videos))
    return figures
