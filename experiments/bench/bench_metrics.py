"""Benchmark: the frame-level AUC / AP of ``vad.metrics`` (hand-written on weighted segment
entries) against scikit-learn's ``roc_auc_score`` / ``average_precision_score`` with
``sample_weight`` on the same entries, on UCF-Crime's full test set (290 videos, 1,111,808
frames, the shipped annotation) with random model-like scores.

The goal is one whole test evaluation (``frame_metrics``: auc, ap, far, paired_auc, per-class
AUC) in <= 20 ms, since it runs after every epoch. Prints per-call medians of N repeats of both
implementations, their ratio, the value difference (must be ~0), and ``frame_metrics`` as it
is and as it would be with scikit-learn's AUC and AP. Nothing is asserted: timings depend on
the machine.

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
from vad.metrics import FrameTruth, frame_metrics, weighted_ap, weighted_auc

GOAL_MS = 20.0


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
        "auc": (lambda: weighted_auc(s, y, w), lambda: roc_auc_score(y_k, s_k, sample_weight=w_k)),
        "ap": (lambda: weighted_ap(s, y, w), lambda: average_precision_score(y_k, s_k, sample_weight=w_k)),
    }
    sklearn_ms = {}
    for name, (hand, sklearn) in pairs.items():
        hand_ms, sklearn_ms[name] = median_ms(hand, repeats), median_ms(sklearn, repeats)
        print(f"{name:>4}: vad.metrics {hand_ms:8.3f} ms   scikit-learn {sklearn_ms[name]:8.3f} ms   "
              f"ratio sklearn/vad {sklearn_ms[name] / hand_ms:6.1f}x   |difference| "
              f"{abs(hand() - sklearn()):.1e}")
    hand_total = median_ms(lambda: frame_metrics(scores, truth), repeats)
    own = median_ms(lambda: (weighted_auc(s, y, w), weighted_ap(s, y, w)), repeats)
    with_sklearn = hand_total - own + sum(sklearn_ms.values())
    print(f"frame_metrics: {hand_total:.2f} ms as is; {with_sklearn:.2f} ms with scikit-learn's auc and ap "
          f"(goal <= {GOAL_MS:.0f} ms for the full test set)")
    if args.tiny:
        print("decision: none from --tiny (not the full test set)")
    else:
        verdict = "meets" if with_sklearn <= GOAL_MS else "misses"
        print(f"decision: scikit-learn {verdict} the goal ({with_sklearn:.1f} ms vs {GOAL_MS:.0f} ms); "
              "vad.metrics keeps the hand-written AUC and AP unless it meets it")


if __name__ == "__main__":
    main()
