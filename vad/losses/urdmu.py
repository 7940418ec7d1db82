"""UR-DMU's training loss (Zhou et al., AAAI 2023) as henrryzh1/UR-DMU computes it: train.py
``AD_Loss.forward`` for the BCE terms and the weighted sum, model.py ``WSAD.forward`` for the
triplet, KL and distance terms (the official network returns them; here the network returns
their inputs, see :class:`vad.models.urdmu.URDMUNetwork`, and they are computed here)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vad.losses.batch_order import normal_first_half

from vad.models.urdmu import topk_mean, video_k


def _l2_normalise(x: Tensor) -> Tensor:
    """utils.py ``norm``: x / ||x||_2 along the last dimension (no epsilon, as the official)."""
    return x / torch.norm(x, p=2, dim=-1, keepdim=True)


class URDMULoss(nn.Module):
    """``bce + memory_weight * (A + N_A + N + A_N) + triplet_weight * triplet + kl_weight * kl
    + distance_weight * distance``, k = T // 16 + 1 snippets in every top-k mean:

    - ``bce``: BCE of each video's mean top-k score against its label.
    - ``A`` / ``N_A``: anomalous videos, BCE against 1 of the mean top-k abnormal-memory attention
      / of the mean top-k of (1 - normal-memory attention).
    - ``N`` / ``A_N``: normal videos, BCE of every snippet's normal-memory attention against 1 /
      abnormal-memory attention against 0 (mean over all snippets).
    - ``triplet``: ``torch.nn.TripletMarginLoss(margin=triplet_margin)`` (p = 2, eps 1e-6, mean) on
      the L2-normalised anchor, positive and negative features.
    - ``kl``: ``mean(-0.5 * sum(1 + logvar - mu^2 - exp(logvar), dim=1))`` as ``WSAD.latent_loss``;
      dim 1 of the (B/2, T, 512) tensors is TIME, so this is the usual per-snippet KL (summed over
      the 512 latent channels, averaged over snippets) times T / 512. Reproduced as is.
    - ``distance``: ``mean(relu(distance_margin - ||negative_aug|| + ||anchor_aug||))``.

    ``labels`` must be the batch order of the contract: B/2 zeros (normal) then B/2 ones; the
    memory terms rely on it as the official does (it takes the halves of its batch and BCE
    targets of constant ones and zeros).
    """

    def __init__(self, memory_weight: float = 0.1, triplet_weight: float = 0.1,
                 triplet_margin: float = 1.0, kl_weight: float = 1e-3,
                 distance_weight: float = 1e-4, distance_margin: float = 100.0):
        super().__init__()
        self.memory_weight = memory_weight
        self.triplet_weight = triplet_weight
        self.triplet_margin = triplet_margin
        self.kl_weight = kl_weight
        self.distance_weight = distance_weight
        self.distance_margin = distance_margin

    def forward(self, output: dict[str, Tensor], labels: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        scores = output["scores"]
        labels = labels.to(scores.dtype)
        half = normal_first_half(labels) if labels.shape[0] == scores.shape[0] else None
        if half is None:
            raise ValueError("URDMULoss needs the batch normal-first: labels = B/2 zeros then B/2 "
                             f"ones, found {labels.tolist()}")
        k = video_k(scores.shape[1])
        ones = labels[half:]

        terms = {"bce": F.binary_cross_entropy(topk_mean(scores, k), labels)}
        terms["memory_A"] = F.binary_cross_entropy(topk_mean(output["A_att"], k), ones)
        terms["memory_N_A"] = F.binary_cross_entropy(topk_mean(1 - output["N_Aatt"], k), ones)
        terms["memory_N"] = F.binary_cross_entropy(output["N_att"], torch.ones_like(output["N_att"]))
        terms["memory_A_N"] = F.binary_cross_entropy(output["A_Natt"], torch.zeros_like(output["A_Natt"]))
        terms["triplet"] = F.triplet_margin_loss(
            _l2_normalise(output["anchor"]), _l2_normalise(output["positive"]),
            _l2_normalise(output["negative"]), margin=self.triplet_margin)
        mu, logvar = output["mu"], output["logvar"]
        terms["kl"] = torch.mean(-0.5 * torch.sum(1 + logvar - mu ** 2 - logvar.exp(), dim=1))
        terms["distance"] = torch.relu(self.distance_margin
                                       - output["negative_aug"].norm(p=2, dim=-1)
                                       + output["anchor_aug"].norm(p=2, dim=-1)).mean()

        memory = terms["memory_A"] + terms["memory_N_A"] + terms["memory_N"] + terms["memory_A_N"]
        total = (terms["bce"] + self.memory_weight * memory + self.triplet_weight * terms["triplet"]
                 + self.kl_weight * terms["kl"] + self.distance_weight * terms["distance"])
        return total, {name: value.detach() for name, value in terms.items()}
