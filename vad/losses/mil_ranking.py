"""Sultani's MIL ranking loss with sparsity and temporal smoothness, fully vectorised."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vad.constants import PAIRINGS


class MILRankingLoss(nn.Module):
    """``mean over pairs of max(0, margin - max(anomalous) + max(normal))``
    ``+ mean over anomalous videos of (l_sparsity * sum(s) + l_smooth * sum((s_t - s_{t+1})^2))``.

    ``pairing="elementwise"`` ranks anomalous video i against normal video i (the seed
    notebook); ``"all"`` ranks every anomalous video against every normal one in the batch
    (the original paper's batches of bags). Scores are (B, T) per bag.
    """

    def __init__(self, margin: float = 1.0, lambda_sparsity: float = 8e-5,
                 lambda_smooth: float = 8e-5, pairing: str = "elementwise"):
        super().__init__()
        if pairing not in PAIRINGS:
            raise ValueError(f"loss.pairing must be one of {PAIRINGS}, found {pairing!r}")
        self.margin = margin
        self.lambda_sparsity = lambda_sparsity
        self.lambda_smooth = lambda_smooth
        self.pairing = pairing

    def forward(self, anomalous: Tensor, normal: Tensor) -> Tensor:
        top_a = anomalous.max(dim=1).values
        top_n = normal.max(dim=1).values
        if self.pairing == "elementwise":
            if anomalous.shape[0] != normal.shape[0]:
                raise ValueError("elementwise pairing needs as many anomalous as normal bags, "
                                 f"found {anomalous.shape[0]} and {normal.shape[0]}")
            ranking = torch.relu(self.margin - top_a + top_n).mean()
        else:
            ranking = torch.relu(self.margin - top_a[:, None] + top_n[None, :]).mean()
        sparsity = anomalous.sum(dim=1)
        smooth = (anomalous[:, 1:] - anomalous[:, :-1]).pow(2).sum(dim=1)
        return ranking + (self.lambda_sparsity * sparsity + self.lambda_smooth * smooth).mean()
