"""The random initialisation of the extractor networks (``weights=random``, demos and tests)."""

from __future__ import annotations

import math

import torch
from torch import nn

#: The gain before a ReLU for zero-mean filters: a ReLU output of a N(0, s^2) input has variance
#: s^2 (1 - 1/pi) / 2, and a zero-mean filter passes only that variance (not the ReLU's mean).
RELU_GAIN = math.sqrt(2 / (1 - 1 / math.pi))


def variance_preserving(layer: nn.Module, relu: bool) -> None:
    """Zero-mean Gaussian filters of variance ``gain^2 / fan_in`` (``RELU_GAIN`` when a ReLU
    follows, else 1) and zero bias: random networks whose activations keep their scale from
    layer to layer and still vary with the input. Each filter's weights are centred (their sum
    is 0) so that the positive mean of the previous ReLU's outputs, the same for every input,
    does not pile up layer after layer: with PyTorch's default (uniform, variance
    1 / (3 fan_in)) random I3D features had norms < 1e-3 and a cosine >= 0.9999 between any
    two clips; Kaiming-normal alone restored the scale but not the cosine (0.999). Uses the
    global torch RNG (seed it); loaded weights replace these values."""
    with torch.no_grad():
        weight = layer.weight.view(layer.weight.shape[0], -1)  # (out, fan_in)
        weight.normal_()
        weight -= weight.mean(dim=1, keepdim=True)
        weight *= (RELU_GAIN if relu else 1.0) / math.sqrt(weight.shape[1])
        if layer.bias is not None:
            layer.bias.zero_()
