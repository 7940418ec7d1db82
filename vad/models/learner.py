"""The Sultani et al. (CVPR 2018) scoring network, as the seed notebook's code computes it."""

from __future__ import annotations

from torch import Tensor, nn


class Learner(nn.Module):
    """Segment feature -> anomaly score in (0, 1).

    Linear(D, 512) -> ReLU -> Dropout -> Linear(512, 32) -> Dropout -> Linear(32, 1) -> Sigmoid,
    Xavier-normal weights. There is no ReLU after the second layer: the seed defines one in its
    ``nn.Sequential`` but its ``forward`` skips it, and the trained numbers come from ``forward``.
    """

    def __init__(self, input_dim: int, dropout: float = 0.6):
        super().__init__()
        self.input_dim = input_dim
        self.net = nn.Sequential(
            nn.Linear(input_dim, 512), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(512, 32), nn.Dropout(dropout),
            nn.Linear(32, 1), nn.Sigmoid(),
        )
        for layer in self.net:
            if isinstance(layer, nn.Linear):
                nn.init.xavier_normal_(layer.weight)

    def forward(self, x: Tensor) -> Tensor:
        """(..., D) features -> (...) scores."""
        return self.net(x).squeeze(-1)
