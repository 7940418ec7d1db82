"""A checkpoint of ``vad.train`` as a detector of anomalies in videos.

The checkpoint decides everything about the features: the extractor (C3D or I3D), the streams
of its modality (concatenated in the modality's order, RGB first), and whether the movement term
is added to test scores (``movement.at_test``). Two ways to score:

* ``mode=video`` (:meth:`Detector.video_scores`): a whole file's clip features pooled to 32
  segments exactly as ``vad.extract`` + training do, so the frame scores equal those of
  ``vad.extract`` + ``vad.evaluate`` for the same video; a score exists only once the video ends.
* ``mode=stream`` (:class:`StreamScorer` + :meth:`Detector.score_windows`): causal; each clip
  is scored when its 16th frame arrives, from the L2-normalised mean feature of the last
  ``window`` clips (one "segment" of ``window`` clips, as training's segments average about
  ``clips / 32`` clips each), with an optional causal moving average of the scores. The movement
  term (a ratio between consecutive 32-video segments) has no streaming counterpart and is
  left out.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vad.cli import UserError
from vad.detection.calibration import KEY as CALIBRATION_KEY
from vad.detection.calibration import segment_frames
from vad.pooling import pool_segments

if TYPE_CHECKING:
    from torch import nn

    from vad.extraction.pipeline import VideoFeatures

APPLICABLE = ("C3D", "I3D")


def expand_frames(segment_scores: np.ndarray, frames: int) -> np.ndarray:
    """(S,) segment scores -> (frames,) float32 frame scores by :mod:`vad.metrics`' rules."""
    scores = np.asarray(segment_scores, dtype=np.float32)
    return np.repeat(scores, segment_frames(frames, len(scores)))


@dataclass
class Detector:
    """The learner of a checkpoint with what its features need (see the module doc)."""

    learner: nn.Module  # eval mode, on its device
    extractor: str  # C3D | I3D
    streams: tuple[str, ...]  # in the modality's order
    modality: str  # RGB | FLOW | TWO
    movement: str | None  # "lk" or None
    movement_k: float  # added times the movement change to video-mode scores (movement.at_test)
    calibration: dict | None  # see vad.detection.calibration; None for older checkpoints
    checkpoint: str
    causal: bool = True  # MIL scores a clip from past clips only

    @classmethod
    def from_checkpoint(cls, path, device="cpu") -> "Detector":
        """The detector of the ``vad.train`` checkpoint at ``path``, its learner on ``device``
        (``auto``, ``cpu``, ``cuda``...)."""
        from vad.checkpoint import read
        from vad.device import resolve_device
        from vad.evaluation import load_learner

        checkpoint = read(path)
        run = checkpoint["hyper_parameters"]["run"]
        extractor = str(run["extractor"]["name"]).upper()
        if extractor not in APPLICABLE:
            raise UserError(
                f"{path} was trained on {extractor} features, which vad cannot compute from videos (it "
                f"ships the C3D and I3D networks only; {extractor} features come from another network): "
                "vad.detect needs a checkpoint trained on extractor=C3D or extractor=I3D features, e.g. "
                "a store made by vad.extract")
        movement = run["movement"]
        name = None if movement["name"] == "none" else str(movement["name"])
        k = float(movement["k"]) if movement.get("at_test") and name else 0.0
        learner = load_learner(checkpoint).to(resolve_device(device))
        return cls(learner, extractor, tuple(str(s).upper() for s in run["modality"]["streams"]),
                   str(run["modality"]["name"]), name, k, checkpoint.get(CALIBRATION_KEY), str(path))

    # ------------------------------------------------------------------ extraction
    def trained_on(self) -> str:
        """``I3D TWO (RGB+FLOW)``: what the checkpoint's features were."""
        return f"{self.extractor} {self.modality} ({'+'.join(self.streams)})"

    def check_weights(self, weights) -> dict[str, str]:
        """``{stream: weights file or "random"}`` for the streams this checkpoint needs, from
        ``weights`` (``weights.rgb=``/``weights.flow=`` as a mapping, or one string for every
        stream); refuses a missing stream's weights, a missing file, or a file holding another
        network's weights, naming what is needed. Reads no video."""
        from vad.extraction.networks import stream_weights
        from vad.extractors.weights import RANDOM, WEIGHT_SPECS, file_weight_kind, missing_weights_message

        chosen = stream_weights(weights, self.extractor, self.streams)
        needed = {stream: self._weight_kind(stream) for stream in self.streams}
        missing = [s for s in self.streams if not chosen[s] or str(chosen[s]) in ("None", "null")]
        if missing:
            asks = " and ".join(dict.fromkeys(f"{WEIGHT_SPECS[needed[s]].override}=PATH" for s in self.streams))
            what = "; ".join(dict.fromkeys(f"{WEIGHT_SPECS[needed[s]].override}: the "
                                           f"{WEIGHT_SPECS[needed[s]].description}" for s in missing))
            raise UserError(f"this checkpoint ({self.checkpoint}) was trained on {self.trained_on()} features: "
                            f"give {asks} ({what}), or weights={RANDOM} for demos and tests only")
        out = {}
        for stream in self.streams:
            path, kind = str(chosen[stream]), needed[stream]
            out[stream] = path
            if path == RANDOM:
                continue
            file = Path(path).expanduser()
            if not file.is_file():
                raise FileNotFoundError(missing_weights_message(kind, file))
            found = file_weight_kind(file)
            if found != kind:
                spec = WEIGHT_SPECS[kind]
                what = (f"holds {WEIGHT_SPECS[found].kind} weights ({WEIGHT_SPECS[found].file})" if found
                        else "holds neither C3D nor I3D weights")
                raise UserError(
                    f"{spec.override}={file} {what}, but this checkpoint ({self.checkpoint}) was trained on "
                    f"{self.trained_on()} features: its {stream} stream needs the {spec.description}; pass "
                    f"that file as {spec.override}=PATH")
        return out

    def _weight_kind(self, stream: str) -> str:
        """The weights a stream's network takes: C3D's FLOW is rendered flow through C3D RGB."""
        from vad.extractors.weights import weight_kind

        return weight_kind(self.extractor, "RGB" if self.extractor == "C3D" else stream)

    def networks(self, weights, device, seed: int = 0) -> dict:
        """``{stream: network}`` in eval mode on ``device``, after :meth:`check_weights`."""
        from vad.extraction.networks import load_networks

        chosen = self.check_weights(weights)
        models, _ = load_networks(self.extractor, self.streams,
                                  {"rgb": chosen.get("RGB"), "flow": chosen.get("FLOW")}, device, seed)
        return models

    def pipeline_options(self, flow: str = "auto") -> dict:
        """Keyword arguments for ``ClipPipeline(networks, device=..., **options)`` and
        ``ClipPreparer(self.streams, **options)``: the extractor, the flow method when a stream
        needs flow (``flow``: auto, farneback or tvl1) and whether movement values are needed
        (``movement.at_test``)."""
        method = None
        if "FLOW" in self.streams:
            from vad.video import resolve_method

            method = resolve_method(flow)
        return {"extractor": self.extractor, "flow": method, "movement": bool(self.movement_k)}

    # ------------------------------------------------------------------ scoring
    def segment_features(self, video: VideoFeatures) -> np.ndarray:
        """(32, D) float32 input of a whole video: per stream the crops averaged, pooled to 32
        L2-normalised segments; streams concatenated in the modality's order."""
        missing = [s for s in self.streams if s not in video.features]
        if missing:
            raise ValueError(f"the video's features have streams {sorted(video.features)}, this checkpoint "
                             f"needs {list(self.streams)}")
        return np.concatenate([pool_segments(np.asarray(video.features[s]).mean(axis=1, dtype=np.float64))
                               for s in self.streams], axis=1)

    def video_scores(self, video: VideoFeatures) -> tuple[np.ndarray, np.ndarray]:
        """``mode=video``: (32,) segment scores and (F,) frame scores of a whole video."""
        import torch

        from vad.evaluation import score_rows

        movement = None
        if self.movement_k:
            from vad.movement_term import movement_change
            from vad.video import movement_segments

            if video.movement is None:
                raise ValueError("this checkpoint adds the movement term at test (movement.at_test): the "
                                 "pipeline must compute movement values (pipeline_options())")
            movement = movement_change(torch.as_tensor(movement_segments(video.movement))[None])
        segments = score_rows(self.learner, self.segment_features(video)[None], movement, self.movement_k)[0]
        return segments, expand_frames(segments, video.frames)

    def score_windows(self, features: np.ndarray) -> np.ndarray:
        """``mode=stream``: (B, D) window features (:meth:`StreamScorer.window_feature`) -> (B,)
        float32 scores."""
        from vad.evaluation import score_rows

        return score_rows(self.learner, np.asarray(features, dtype=np.float32))


class StreamScorer:
    """Per source, the causal input of each clip (``mode=stream``): the mean of the last
    ``window`` clips' features, L2-normalised per stream as :func:`vad.pooling.pool_segments`
    does per segment, streams concatenated; ``smooth`` averages the last ``smoothing`` scores."""

    def __init__(self, streams, window: int, smoothing: int = 1):
        if int(window) < 1:
            raise ValueError(f"window={window}: expected a number of clips >= 1")
        if int(smoothing) < 1:
            raise ValueError(f"smoothing={smoothing}: expected a number of clip scores >= 1 (1: none)")
        self.streams = tuple(streams)
        self.window, self.smoothing = int(window), int(smoothing)
        self._clips = {s: deque(maxlen=self.window) for s in self.streams}
        self._scores: deque = deque(maxlen=self.smoothing)

    def window_feature(self, clip_features: dict[str, np.ndarray]) -> np.ndarray:
        """Push one clip's ``{stream: (C, D)}`` features (crops averaged); return the (D_total,)
        float32 input of the window ending with it."""
        parts = []
        for stream in self.streams:
            clip = np.asarray(clip_features[stream])
            self._clips[stream].append(clip.reshape(-1, clip.shape[-1]).mean(axis=0, dtype=np.float64))
            parts.append(pool_segments(np.stack(self._clips[stream]), n_segments=1)[0])
        return np.concatenate(parts)

    def smooth(self, score: float) -> float:
        """The mean of the last ``smoothing`` scores, this one included."""
        self._scores.append(float(score))
        return float(np.mean(self._scores))
