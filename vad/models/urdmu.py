"""UR-DMU's network (Zhou, Yu, Yang, "Dual Memory Units with Uncertainty Regulation", AAAI 2023),
as the official code henrryzh1/UR-DMU computes it: model.py (``WSAD``, ``Temporal``,
``ADCLS_head``), memory.py (``Memory_Unit``) and translayer.py (``Transformer``, ``Attention``).

Submodule names follow the official ones (``embedding``, ``selfatt``, ``Amemory``, ``Nmemory``,
``encoder_mu``, ``encoder_var``, ``cls_head``) so that an official ``state_dict`` (e.g.
``models/ucf_trans_2022.pkl``) loads as is. Initialisation is PyTorch's default everywhere (the
official defines none) except the memory slots, uniform in +-1/sqrt(dim) as ``Memory_Unit.reset_parameters``.

Not causal: self-attention and the fixed temporal kernel look at the whole sequence, past and future.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from vad.models.translayer import Embedding, Transformer


def video_k(length: int) -> int:
    """Snippets per video in every top-k mean of UR-DMU: ``t // 16 + 1`` (model.py ``WSAD.forward``,
    train.py ``AD_Loss.forward``)."""
    return length // 16 + 1


def topk_mean(x: Tensor, k: int) -> Tensor:
    """Mean of the ``k`` largest values along the last dimension."""
    return torch.topk(x, k, dim=-1).values.mean(-1)


class MemoryUnit(nn.Module):
    """memory.py ``Memory_Unit``: ``slots`` learned vectors. A snippet's attention to each slot is
    ``sigmoid(x . m / sqrt(dim))``; it returns the per-snippet mean of the top ``slots // 16 + 1``
    attentions (B, T) and the attention-weighted sum of the slots (B, T, dim)."""

    def __init__(self, slots: int, dim: int):
        super().__init__()
        self.slots = slots
        self.dim = dim
        bound = 1.0 / math.sqrt(dim)
        self.memory_block = nn.Parameter(torch.empty(slots, dim).uniform_(-bound, bound))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        attention = torch.sigmoid(x @ self.memory_block.t() / self.dim ** 0.5)  # (B, T, slots)
        return topk_mean(attention, self.slots // 16 + 1), attention @ self.memory_block


class _Classifier(nn.Module):
    """model.py ``ADCLS_head``: Linear -> ReLU -> Linear(1) -> Sigmoid; (..., C) -> (...) scores."""

    def __init__(self, in_dim: int, hidden: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, 1), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        return self.mlp(x).squeeze(-1)


def _gather_mean(features: Tensor, index: Tensor) -> Tensor:
    """(B, T, C) features, (B, k) snippet indices -> (B, C) mean of the indexed snippets."""
    return features.gather(1, index[..., None].expand(-1, -1, features.size(-1))).mean(1)


class URDMUNetwork(nn.Module):
    """(B, T, D) snippet features -> anomaly scores: temporal conv D -> 512, a 2-layer transformer,
    an abnormal and a normal memory of 60 slots, a VAE-style encoder (``encoder_mu``,
    ``encoder_var``) of the memory read-outs, and the classifier on [feature, read-out] (1024 -> 128 -> 1).

    Eval mode (the official ``flag == "Test"`` branch of ``WSAD.forward``): the read-outs of both
    memories, each through ``encoder_mu`` (no sampling), are summed, concatenated to the feature
    and classified: (B, T) scores in [0, 1].

    Training mode (``flag == "Train"``): the batch MUST be ``cat([normal, anomalous])`` with equal
    halves. The first half is treated as normal and the second as anomalous (the official splits
    its batch in half: ``x[:b // 2]`` normal). Returns a dict for :class:`vad.losses.urdmu.URDMULoss`:

    - ``scores`` (B, T): the classifier on [feature, read-out]; the normal rows' read-out is the
      normal memory's sampled through the encoder (mu + eps * std) plus the abnormal memory's
      through ``encoder_mu``; the anomalous rows' is both memories' through ``encoder_mu``.
    - ``A_att``, ``N_Aatt`` (B/2, T): abnormal / normal memory attention of the anomalous videos;
      ``A_Natt``, ``N_att``: abnormal / normal memory attention of the normal videos.
    - ``anchor``, ``positive``, ``negative`` (B/2, 512): the triplet's features (not yet
      L2-normalised): mean feature of each normal video's top-k snippets by ``N_att``, and of each
      anomalous video's top-k by ``N_Aatt`` and by ``A_att``.
    - ``mu``, ``logvar`` (B/2, T, 512): the encoder on the normal videos' normal-memory read-out.
    - ``anchor_aug``, ``negative_aug`` (B/2, 512): the sampled normal read-out at the anchor's
      top-k snippets, and ``encoder_mu`` of the anomalous videos' abnormal read-out at ``A_att``'s.

    Top-k counts are ``T // 16 + 1``. The official also accepts (B, crops, T, D) and averages the
    crops' outputs; here every crop is its own video (``inputs.crops: bags``) and the evaluator
    averages crops, so only (B, T, D) is accepted.
    """

    def __init__(self, input_dim: int, hidden_dim: int = 512, depth: int = 2, heads: int = 4,
                 dim_head: int = 128, mlp_dim: int = 512, dropout: float = 0.5,
                 abnormal_slots: int = 60, normal_slots: int = 60, classifier_dim: int = 128):
        super().__init__()
        self.input_dim = input_dim
        self.embedding = Embedding(input_dim, hidden_dim)
        self.selfatt = Transformer(hidden_dim, depth, heads, dim_head, mlp_dim, dropout)
        self.Amemory = MemoryUnit(abnormal_slots, hidden_dim)
        self.Nmemory = MemoryUnit(normal_slots, hidden_dim)
        self.encoder_mu = nn.Sequential(nn.Linear(hidden_dim, hidden_dim))
        self.encoder_var = nn.Sequential(nn.Linear(hidden_dim, hidden_dim))
        self.cls_head = _Classifier(2 * hidden_dim, classifier_dim)

    def _classify(self, x: Tensor, readout: Tensor) -> Tensor:
        return self.cls_head(torch.cat([x, readout], dim=-1))

    def forward(self, x: Tensor):
        if x.dim() != 3:
            raise ValueError(f"URDMUNetwork expects (B, T, D) features, found shape {tuple(x.shape)}")
        x = self.selfatt(self.embedding(x))
        if not self.training:
            readout = self.encoder_mu(self.Amemory(x)[1]) + self.encoder_mu(self.Nmemory(x)[1])
            return self._classify(x, readout)
        batch, length, _ = x.shape
        if batch % 2:
            raise ValueError("URDMUNetwork trains on cat([normal, anomalous]) with equal halves, "
                             f"found an odd batch of {batch} videos")
        normal, anomalous = x[:batch // 2], x[batch // 2:]
        a_att, a_aug = self.Amemory(anomalous)
        n_a_att, n_a_aug = self.Nmemory(anomalous)
        a_n_att, a_n_aug = self.Amemory(normal)
        n_att, n_aug = self.Nmemory(normal)

        k = video_k(length)
        a_index = torch.topk(a_att, k, dim=-1).indices
        n_index = torch.topk(n_att, k, dim=-1).indices
        p_index = torch.topk(n_a_att, k, dim=-1).indices

        mu, logvar = self.encoder_mu(n_aug), self.encoder_var(n_aug)
        n_sample = mu + torch.randn_like(mu) * torch.exp(logvar).sqrt()  # WSAD._reparameterize
        a_aug_mu = self.encoder_mu(a_aug)
        readout = torch.cat([n_sample + self.encoder_mu(a_n_aug),
                             a_aug_mu + self.encoder_mu(n_a_aug)], dim=0)
        return {
            "scores": self._classify(x, readout),
            "A_att": a_att, "N_att": n_att, "A_Natt": a_n_att, "N_Aatt": n_a_att,
            "anchor": _gather_mean(normal, n_index),
            "positive": _gather_mean(anomalous, p_index),
            "negative": _gather_mean(anomalous, a_index),
            "mu": mu, "logvar": logvar,
            "anchor_aug": _gather_mean(n_sample, n_index),
            "negative_aug": _gather_mean(a_aug_mu, a_index),
        }
