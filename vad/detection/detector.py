"""A checkpoint of ``vad.train`` as a detector of anomalies in videos.

The checkpoint decides everything about the features: the extractor (C3D or I3D), the streams
of its modality (concatenated in the modality's order, RGB first), and whether the movement term
is added to test scores (``movement.at_test``). Two ways to score:

* ``mode=video`` (:meth:`Detector.video_scores`): a whole file's clip features pooled to
  segments exactly as ``vad.extract`` + training do (the method's pooling, ``method.inputs``), or
  scored per snippet for a checkpoint evaluated so (``eval.protocol=snippets``), so the frame
  scores equal those of ``vad.extract`` + ``vad.evaluate`` for the same video; a score exists
  only once the video ends.
* ``mode=stream`` (:class:`StreamScorer` + :meth:`Detector.score_windows`): causal methods only
  (``method.causal``); each clip is scored when its 16th frame arrives, from the mean feature of
  the last ``window`` clips (one "segment" of ``window`` clips, as training's segments average
  about ``clips / 32`` clips each; L2-normalised when the method's segments are), preceded by the
  ``receptive_field - 1`` windows before it for a network that looks back (a causal temporal
  convolution), with an optional causal moving average of the scores. The movement term (a ratio
  between consecutive 32-video segments) has no streaming counterpart and is left out.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vad.cli import UserError
from vad.constants import VIDEO_STREAMS
from vad.detection.calibration import KEY as CALIBRATION_KEY
from vad.detection.calibration import segment_frames
from vad.pooling import SULTANI, Pooling, pool_segments

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
    """The network of a checkpoint with what its features need (see the module doc)."""

    network: nn.Module  # eval mode, on its device
    extractor: str  # C3D | I3D
    streams: tuple[str, ...]  # in the modality's order
    modality: str  # RGB | FLOW | TWO
    movement: str | None  # "lk" or None
    movement_k: float  # added times the movement change to video-mode scores (movement.at_test)
    calibration: dict | None  # see vad.detection.calibration; None for older checkpoints
    checkpoint: str
    method: str = "mil"
    causal: bool = True  # whether a score depends on past and present clips only (method.causal)
    pooling: Pooling = SULTANI  # the method's segments (method.inputs)
    protocol: str = "segments"  # eval.protocol of the run: segments, or snippets scored whole

    @classmethod
    def from_checkpoint(cls, path, device="cpu") -> "Detector":
        """The detector of the ``vad.train`` checkpoint at ``path``, its learner on ``device``
        (``auto``, ``cpu``, ``cuda``...)."""
        from vad.checkpoint import read
        from vad.device import resolve_device
        from vad.evaluation import load_network

        checkpoint = read(path)
        run = checkpoint["hyper_parameters"]["run"]
        extractor = str(run["extractor"]["name"]).upper()
        if extractor not in APPLICABLE:
            raise UserError(
                f"{path} was trained on {extractor} features, which vad cannot compute from videos (it "
                f"ships the C3D and I3D networks only; {extractor} features come from another network): "
                "vad.detect needs a checkpoint trained on extractor=C3D or extractor=I3D features, e.g. "
                "a store made by vad.extract")
        features_only = [s for s in run["modality"]["streams"] if s not in VIDEO_STREAMS]
        if features_only:
            raise UserError(f"{path} was trained with the {'+'.join(features_only)} stream "
                            f"(modality={run['modality']['name']}: XD-Violence's VGGish features), which vad "
                            "cannot compute from videos (it has no VGGish network): vad.detect needs a "
                            "checkpoint of video streams only, e.g. modality=RGB")
        movement = run["movement"]
        name = None if movement["name"] == "none" else str(movement["name"])
        k = float(movement["k"]) if movement.get("at_test") and name else 0.0
        network = load_network(checkpoint).to(resolve_device(device))
        method = run["method"]
        return cls(network, extractor, tuple(str(s).upper() for s in run["modality"]["streams"]),
                   str(run["modality"]["name"]), name, k, checkpoint.get(CALIBRATION_KEY), str(path),
                   str(method["name"]), bool(method["causal"]), Pooling.of(method["inputs"]),
                   str(run["eval"]["protocol"]))

    @property
    def receptive_field(self) -> int:
        """Windows a causal network looks at to score the last one (1: each alone)."""
        return int(getattr(self.network, "receptive_field", 1))

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
        """(S, D) float32 input of a whole video: per stream the crops averaged, pooled by the
        method (Sultani: 32 L2-normalised segments), or the (T, D) snippets themselves with
        ``eval.protocol=snippets``; streams concatenated in the modality's order."""
        missing = [s for s in self.streams if s not in video.features]
        if missing:
            raise ValueError(f"the video's features have streams {sorted(video.features)}, this checkpoint "
                             f"needs {list(self.streams)}")
        snippets = [np.asarray(video.features[s]).mean(axis=1, dtype=np.float64) for s in self.streams]
        if self.protocol == "snippets":
            return np.concatenate(snippets, axis=1).astype(np.float32)
        return np.concatenate([self.pooling(x) for x in snippets], axis=1)

    def video_scores(self, video: VideoFeatures) -> tuple[np.ndarray, np.ndarray]:
        """``mode=video``: (S,) segment (or T snippet) scores and (F,) frame scores of a whole
        video."""
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
        segments = score_rows(self.network, self.segment_features(video)[None], movement, self.movement_k)[0]
        return segments, expand_frames(segments, video.frames)

    def score_windows(self, features: np.ndarray) -> np.ndarray:
        """``mode=stream``: (B, R', D) inputs (:meth:`StreamScorer.window_input`, R' <=
        :attr:`receptive_field`) -> (B,) float32 scores of their last windows."""
        from vad.evaluation import score_rows

        return score_rows(self.network, np.asarray(features, dtype=np.float32))[:, -1]


class StreamScorer:
    """Per source, the causal input of each clip (``mode=stream``): the mean of the last
    ``window`` clips' features, L2-normalised per stream (``normalise``) as
    :func:`vad.pooling.pool_segments` does per segment, streams concatenated, after the
    ``receptive_field - 1`` windows before it (fewer at the stream's start: the network pads them
    as it pads the start of a whole video); ``smooth`` averages the last ``smoothing`` scores."""

    def __init__(self, streams, window: int, smoothing: int = 1, normalise: bool = True,
                 receptive_field: int = 1):
        if int(window) < 1:
            raise ValueError(f"window={window}: expected a number of clips >= 1")
        if int(smoothing) < 1:
            raise ValueError(f"smoothing={smoothing}: expected a number of clip scores >= 1 (1: none)")
        self.streams = tuple(streams)
        self.window, self.smoothing, self.normalise = int(window), int(smoothing), bool(normalise)
        self._clips = {s: deque(maxlen=self.window) for s in self.streams}
        self._windows: deque = deque(maxlen=int(receptive_field))
        self._scores: deque = deque(maxlen=self.smoothing)

    def window_input(self, clip_features: dict[str, np.ndarray]) -> np.ndarray:
        """Push one clip's ``{stream: (C, D)}`` features (crops averaged); return the (R', D_total)
        float32 input, R' <= R, whose last row is the window ending with it."""
        parts = []
        for stream in self.streams:
            clip = np.asarray(clip_features[stream])
            self._clips[stream].append(clip.reshape(-1, clip.shape[-1]).mean(axis=0, dtype=np.float64))
            parts.append(pool_segments(np.stack(self._clips[stream]), n_segments=1, normalise=self.normalise)[0])
        self._windows.append(np.concatenate(parts))
        return np.stack(self._windows).astype(np.float32)

    def smooth(self, score: float) -> float:
        """The mean of the last ``smoothing`` scores, this one included."""
        self._scores.append(float(score))
        return float(np.mean(self._scores))
