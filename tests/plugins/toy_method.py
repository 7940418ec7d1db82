"""A sixth method written outside the package, as a user would: a linear snippet scorer trained
with BCE on each video's highest score. ``tests/test_methods.py`` adds it through Hydra's search
path alone (``hydra.searchpath=[file://tests/plugins/conf] method=toy``)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ToyNetwork(nn.Module):
    """(B, T, D) -> (B, T) scores in (0, 1): one linear layer and a sigmoid, per snippet."""

    receptive_field = 1

    def __init__(self, input_dim: int, hidden: int = 16):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(input_dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.net(x).squeeze(-1))


class ToyLoss(nn.Module):
    """BCE of each video's highest snippet score against its video label."""

    def forward(self, scores: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        top = scores.max(dim=1).values
        bce = nn.functional.binary_cross_entropy(top, labels)
        return bce, {"bce": bce.detach()}
