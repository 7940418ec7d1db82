"""BN-WVAD's training loss as its official code (cool-xuan/BN-WVAD, losses/loss_computer.py,
losses/normal_loss.py, losses/mpp_loss.py) computes it:

``w_normal * normal + w_mpp * mpp`` (both weights 1), with
- ``normal``: the mean over the NORMAL videos of the L2 norm over time of the head's scores
  (NormalLoss; there is no BCE term and no term on the anomalous videos' scores: they rise only
  through the distance branch and the shared features);
- ``mpp`` (mean-based pull-push): per BatchNorm layer l, ``triplet_weights[l]`` (5, 20) times the
  triplet loss ``mean(max(0, d(mu, normal_k) - d(mu, anomalous_k) + margin))`` over the selected
  candidate pairs k, with anchor the layer's running mean ``mu`` and ``d`` the Mahalanobis
  distance under its running variance (torch's TripletMarginWithDistanceLoss, margin 1, no swap).
  Anchor and variance are buffers: the gradient reaches the selected features only.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vad.losses.batch_order import normal_first_half


class BNWVADLoss(nn.Module):
    """Loss on :class:`vad.models.bnwvad.BNWVADNetwork`'s training output; ``labels`` (B,) must be
    0 for the first half of the batch and 1 for the second (the official loss reads no labels: it
    relies on that order, so it is checked here)."""

    def __init__(self, w_normal: float = 1.0, w_mpp: float = 1.0,
                 triplet_weights: tuple[float, ...] = (5.0, 20.0), margin: float = 1.0):
        super().__init__()
        self.w_normal = w_normal
        self.w_mpp = w_mpp
        self.triplet_weights = tuple(triplet_weights)
        self.margin = margin

    def forward(self, output: dict, labels: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        half = _check_order(labels)
        normal = torch.linalg.vector_norm(output["scores"][:half], dim=1).mean()
        if len(output["anchors"]) != len(self.triplet_weights):
            raise ValueError(f"loss.triplet_weights has {len(self.triplet_weights)} weights for "
                             f"{len(output['anchors'])} BatchNorm layers: give one per layer")
        triplets = [self.triplet(*parts) for parts in zip(
            output["anchors"], output["variances"], output["normals"], output["anomalous"])]
        mpp = sum(w * term for w, term in zip(self.triplet_weights, triplets))
        total = self.w_normal * normal + self.w_mpp * mpp
        terms = {"normal": normal, "mpp": mpp}
        terms.update({f"triplet_bn{i + 1}": term for i, term in enumerate(triplets)})
        return total, {name: value.detach() for name, value in terms.items()}

    def triplet(self, mean: Tensor, var: Tensor, normal: Tensor, anomalous: Tensor) -> Tensor:
        """``mean(relu(d(mean, normal) - d(mean, anomalous) + margin))`` over the (K, C) rows."""
        def distance(x: Tensor) -> Tensor:
            return torch.sqrt(((x - mean) ** 2 / var).sum(dim=-1))
        return torch.relu(distance(normal) - distance(anomalous) + self.margin).mean()


def _check_order(labels: Tensor) -> int:
    """The half size, after checking ``labels`` is B/2 zeros then B/2 ones."""
    half = normal_first_half(labels)
    if half is None:
        raise ValueError("BN-WVAD needs training batches cat([normal, anomalous]) of equal halves "
                         f"(labels 0 then 1), found labels {labels.tolist()}")
    return half
