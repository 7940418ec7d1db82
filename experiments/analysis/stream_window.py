"""Which ``window`` (clips) should ``vad.detect mode=stream`` default to?

Trains MIL detectors on the synthetic UCF-Crime (in-process ``vad.train.train``), then scores
the synthetic test videos' per-snippet features causally, as a stream is scored: each clip from
:class:`vad.detection.detector.StreamScorer`'s L2-normalised mean of the last ``window`` clips,
one score per 16-frame clip. Prints the frame AUC of those causal scores per window (snippets
protocol: clip t scores frames [16 t, 16 t + 16)) next to the offline 32-segment AUC of the same
learner (``mode=video``, which sees the whole video).

Usage: ``VAD_CACHE_DIR=/tmp/vad_cache python experiments/analysis/stream_window.py
[--fraction 0.3] [--seeds 0 1 2] [--epochs 30] [--windows 1 2 4 8 16 32] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def compose(overrides: list[str], output_dir: Path):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    import vad.schema  # noqa: F401 - registers the schemas of conf/train.yaml

    GlobalHydra.instance().clear()
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = hydra_compose("train", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        del cfg["hydra"]
    return cfg


def causal_scores(detector, snippets: np.ndarray, counts: np.ndarray, streams, window: int) -> np.ndarray:
    """Every test clip scored from the window of clips ending with it, video by video."""
    from vad.detection.detector import StreamScorer

    dims = snippets.shape[1] // len(streams)
    out, offset = [], 0
    for count in counts:
        scorer = StreamScorer(streams, window)
        rows = snippets[offset:offset + count]
        inputs = np.stack([scorer.window_input({s: rows[t:t + 1, i * dims:(i + 1) * dims]
                                                for i, s in enumerate(streams)}) for t in range(count)])
        out.append(detector.score_windows(inputs))
        offset += count
    return np.concatenate(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fraction", type=float, default=0.3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--modality", default="RGB")
    parser.add_argument("--windows", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    from vad.data.loading import load_data
    from vad.detection.detector import Detector
    from vad.evaluation import Evaluator, frame_truth
    from vad.metrics import frame_metrics
    from vad.train import train

    out = args.out or Path(tempfile.mkdtemp(prefix="stream_window_"))
    rows = []
    for seed in args.seeds:
        started = time.perf_counter()
        cfg = compose([f"data.fraction={args.fraction}", f"trainer.max_epochs={args.epochs}", f"seed={seed}",
                       f"modality={args.modality}", "logger=none", "trainer.enable_progress_bar=false",
                       "eval.timeline_videos=0", "threads=null"], out / f"seed{seed}")
        result = train(cfg)
        detector = Detector.from_checkpoint(result["best"]["checkpoint"])
        test = load_data(cfg).test
        offline = Evaluator(test, "segments").run(detector.network).metrics["auc"]
        snippets = compose([f"data.fraction={args.fraction}", f"modality={args.modality}", "eval.protocol=snippets"],
                           out / "snippets")
        test = load_data(snippets, need_train=False).test
        truth = frame_truth(test, "snippets")
        counts = np.asarray(test.snippet_counts)
        row = {"seed": seed, "offline_32_segment_auc": offline}
        for window in args.windows:
            scores = causal_scores(detector, test.snippets.numpy(), counts, detector.streams, window)
            matrix = Evaluator(test, "snippets").matrix(scores)
            row[f"w{window}"] = frame_metrics(matrix, truth, pair_seed=None)["auc"]
        row["seconds"] = round(time.perf_counter() - started, 1)
        rows.append(row)
        print(json.dumps(row), flush=True)

    print(f"\nframe AUC of causal stream scores per window (clips), synthetic UCF-Crime {args.modality} "
          f"fraction {args.fraction}, {args.epochs} epochs, {len(rows)} seed(s)")
    header = ["seed", "offline32"] + [f"w={w}" for w in args.windows]
    print(" | ".join(f"{h:>9}" for h in header))
    for row in rows:
        print(" | ".join([f"{row['seed']:>9}", f"{row['offline_32_segment_auc']:9.4f}"]
                         + [f"{row[f'w{w}']:9.4f}" for w in args.windows]))
    if len(rows) > 1:
        print(" | ".join([f"{'mean':>9}", f"{statistics.mean(r['offline_32_segment_auc'] for r in rows):9.4f}"]
                         + [f"{statistics.mean(r[f'w{w}'] for r in rows):9.4f}" for w in args.windows]))
    (out / "stream_window.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(f"-> {out / 'stream_window.json'}")


if __name__ == "__main__":
    main()
