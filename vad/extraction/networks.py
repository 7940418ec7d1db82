"""The extractor networks of one extraction run: one per stream, weights from the user's
files (or ``"random"``), on one device."""

from __future__ import annotations

import os

import torch
from torch import nn

from vad.constants import VIDEO_STREAMS
from vad.extractors import build_extractor

EXTRACTORS = ("C3D", "I3D")


def flow_workers(value, device: torch.device) -> int:
    """Threads computing optical flow: ``"auto"`` -> 1 when the network runs on the CPU (it
    uses every core already), else every core but the one decoding."""
    if str(value) == "auto":
        return 1 if device.type == "cpu" else max(1, (os.cpu_count() or 2) - 1)
    workers = int(value)
    if workers < 1:
        raise ValueError(f"flow_workers={value}: expected auto or an integer >= 1")
    return workers


def stream_weights(weights, extractor: str, streams) -> dict[str, str | None]:
    """``{"RGB": ..., "FLOW": ...}`` weight files from ``weights``: a mapping with keys
    ``rgb``/``flow`` (``weights.rgb=PATH``), or one string for every stream in ``streams``
    (``weights=random``). C3D's FLOW (rendered flow images through the RGB network) takes
    ``flow`` when given, else ``rgb``."""
    if weights is None or isinstance(weights, (str, os.PathLike)):
        chosen = {s: None if weights is None or s not in streams else str(weights) for s in VIDEO_STREAMS}
    else:
        given = dict(weights)
        unknown = sorted(set(given) - {"rgb", "flow"})
        if unknown:
            raise ValueError(f"weights has keys {unknown}: expected weights.rgb and weights.flow "
                             "(or weights=random for every stream)")
        chosen = {"RGB": given.get("rgb"), "FLOW": given.get("flow")}
    if extractor == "C3D" and "FLOW" in streams and not chosen["FLOW"]:
        chosen["FLOW"] = chosen["RGB"]
    return chosen


def load_networks(extractor: str, streams, weights, device: torch.device,
                  seed: int = 0) -> tuple[dict[str, nn.Module], dict[str, str | None]]:
    """``({stream: network in eval mode on device}, {stream: weights used})``. Seeded, so that
    ``weights=random`` gives the same networks in every shard; C3D streams with the same
    weights share one network. A missing weights file raises before anything else happens."""
    extractor = str(extractor).upper()
    if extractor not in EXTRACTORS:
        raise ValueError(f"extractor={extractor}: vad.extract runs C3D or I3D")
    streams = tuple(str(s).upper() for s in streams)
    bad = [s for s in streams if s not in VIDEO_STREAMS]
    if bad or not streams:
        raise ValueError(f"streams {list(streams)}: expected RGB and/or FLOW")
    chosen = stream_weights(weights, extractor, streams)
    torch.manual_seed(int(seed))
    networks: dict[str, nn.Module] = {}
    for stream in streams:
        if extractor == "C3D":
            shared = next((m for s, m in networks.items() if chosen[s] == chosen[stream]), None)
            networks[stream] = shared or build_extractor("C3D", "RGB", chosen[stream])
        else:
            networks[stream] = build_extractor("I3D", stream, chosen[stream])
    for network in networks.values():
        network.to(device).eval()
    return networks, chosen
