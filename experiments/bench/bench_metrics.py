"""Benchmark: the frame-level AUC / AP of ``vad.metrics`` (scikit-learn's ``roc_auc_score`` /
``average_precision_score`` with ``sample_weight`` on the weighted segment entries) against
the hand-written sort-and-count versions it replaced (kept here), on UCF-Crime's full test set
(290 videos, 1,111,808 frames, the shipped annotation) with random model-like scores.

The goal is one whole test evaluation (``frame_metrics``: auc, ap, far, paired_auc, per-class
AUC) in <= 20 ms, since it runs after every epoch: scikit-learn is used while it meets it.
Prints per-call medians of N repeats of both implementations, their ratio, the value
difference (must be ~0), and ``frame_metrics`` as it is and as it would be with the
hand-written AUC and AP. Nothing is asserted: timings depend on the machine.

Usage: ``python experiments/bench/bench_metrics.py [--repeats N] [--tiny]``; ``--tiny`` takes
the first 20 test videos and 3 repeats (seconds; what the tests run).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from vad.data.ucf_crime import catalogue
from vad.metrics import FrameTruth, frame_metrics

GOAL_MS = 20.0


def _grouped(scores, labels, weights):
    """Positive and negative weight per distinct score, scores ascending."""
    keep = weights > 0
    values, inverse = np.unique(scores[keep], return_inverse=True)
    positive = labels[keep] > 0
    return (np.bincount(inverse, weights[keep] * positive, len(values)),
            np.bincount(inverse, weights[keep] * ~positive, len(values)))


def hand_auc(scores, labels, weights) -> float:
    """Weighted ROC-AUC by one sort: each positive beats the negatives below it, ties count half."""
    p, n = _grouped(scores, labels, weights)
    below = np.cumsum(n) - n
    return float(np.sum(p * (below + 0.5 * n)) / (p.sum() * n.sum()))


def hand_ap(scores, labels, weights) -> float:
    """Weighted step-wise average precision by one sort, thresholds from the top score down."""
    p, n = _grouped(scores, labels, weights)
    tp, fp = np.cumsum(p[::-1]), np.cumsum(n[::-1])
    precision = tp / np.maximum(tp + fp, np.finfo(float).tiny)
    return float(np.sum(np.diff(tp / tp[-1], prepend=0.0) * precision))


def median_ms(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` in milliseconds, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return 1e3 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--tiny", action="store_true", help="20 test videos, 3 repeats")
    args = parser.parse_args()
    videos = list(catalogue()[1])
    repeats = args.repeats
    if args.tiny:
        videos, repeats = videos[:10] + videos[-10:], 3  # anomalous and normal ones
    truth = FrameTruth.from_videos(videos)
    # Scores as the Learner gives them: float32 in (0, 1), so ties are rare but present.
    scores = np.random.default_rng(0).random((len(videos), 32), dtype=np.float32).astype(np.float64)
    s, y, w = truth.entries(scores)
    keep = w > 0  # scikit-learn gets the entries that hold frames
    s_k, y_k, w_k = s[keep], y[keep], w[keep]
    print(f"{len(videos)} test videos, {int(truth.frames.sum()):,} frames, {int(keep.sum()):,} weighted "
          f"entries; medians of {repeats} calls")

    pairs = {
        "auc": (lambda: hand_auc(s, y, w), lambda: roc_auc_score(y_k, s_k, sample_weight=w_k)),
        "ap": (lambda: hand_ap(s, y, w), lambda: average_precision_score(y_k, s_k, sample_weight=w_k)),
    }
    hand_ms, sklearn_ms = {}, {}
    for name, (hand, sklearn) in pairs.items():
        hand_ms[name], sklearn_ms[name] = median_ms(hand, repeats), median_ms(sklearn, repeats)
        print(f"{name:>4}: hand-written {hand_ms[name]:8.3f} ms   scikit-learn {sklearn_ms[name]:8.3f} ms   "
              f"ratio sklearn/hand {sklearn_ms[name] / hand_ms[name]:6.1f}x   |difference| "
              f"{abs(hand() - sklearn()):.1e}")
    total = median_ms(lambda: frame_metrics(scores, truth), repeats)
    with_hand = total - sum(sklearn_ms.values()) + sum(hand_ms.values())
    print(f"frame_metrics: {total:.2f} ms as is (scikit-learn's auc and ap); {with_hand:.2f} ms with the "
          f"hand-written ones (goal <= {GOAL_MS:.0f} ms for the full test set)")
    if args.tiny:
        print("decision: none from --tiny (not the full test set)")
    else:
        verdict = "meets" if total <= GOAL_MS else "misses"
        print(f"decision: scikit-learn {verdict} the goal ({total:.1f} ms vs {GOAL_MS:.0f} ms)"
              + ("" if total <= GOAL_MS else ": restore the hand-written auc and ap"))

if __name__ == "__main__":
    main()
