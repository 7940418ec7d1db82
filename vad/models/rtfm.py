"""RTFM's scoring network (Tian et al., ICCV 2021), re-implemented from tianyu0207/RTFM model.py.

A multi-scale temporal block (three dilated convolutions and a non-local branch, fused back to
the input width with a residual) feeds a per-snippet scorer. In training the network also picks,
per video, the k snippets of largest feature magnitude, which RTFM's loss needs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class NonLocal1d(nn.Module):
    """Embedded-dot-product non-local block over time (model.py: _NonLocalBlockND with
    dimension=1, sub_sample=False, bn_layer=True): ``x + BN(W(softmax-free attention))``.

    The attention is ``theta(x)^T phi(x) / T`` (no softmax); the output BatchNorm starts at zero
    weight and bias, so the block starts as the identity.
    """

    def __init__(self, channels: int, inner: int):
        super().__init__()
        self.theta = nn.Conv1d(channels, inner, 1)
        self.phi = nn.Conv1d(channels, inner, 1)
        self.g = nn.Conv1d(channels, inner, 1)
        self.out = nn.Sequential(nn.Conv1d(inner, channels, 1), nn.BatchNorm1d(channels))

    def forward(self, x: Tensor) -> Tensor:
        """(N, channels, T) -> (N, channels, T)."""
        affinity = self.theta(x).transpose(1, 2) @ self.phi(x) / x.shape[-1]  # (N, T, T)
        y = (affinity @ self.g(x).transpose(1, 2)).transpose(1, 2)  # (N, inner, T)
        return x + self.out(y)


def _dilated(input_dim: int, channels: int, dilation: int) -> nn.Sequential:
    """Conv1d(k=3, 'same' padding) -> ReLU -> BatchNorm, the order of model.py: Aggregate."""
    return nn.Sequential(
        nn.Conv1d(input_dim, channels, 3, padding=dilation, dilation=dilation),
        nn.ReLU(), nn.BatchNorm1d(channels))


class RTFMNetwork(nn.Module):
    """Snippet features -> anomaly scores in (0, 1), RTFM's Aggregate + FC head (model.py: Model).

    Architecture (official values for input_dim 2048, all keyword arguments; the official code
    hard-codes 2048 for conv_4 and conv_5, here they scale with ``input_dim``):
    three Conv1d(input_dim -> channels=512, k=3, dilation 1/2/4) each with ReLU and BatchNorm;
    Conv1d(input_dim -> 512, k=1, no bias) + ReLU + non-local block (inner 256); the four
    concatenated (4 * 512 = 2048) -> Conv1d(k=3, no bias) back to input_dim + ReLU + BatchNorm,
    plus the input (residual); Dropout(0.7); Linear(input_dim -> 512) -> ReLU -> Dropout ->
    Linear(512 -> 128) -> ReLU -> Dropout -> Linear(128 -> 1) -> Sigmoid. Xavier-uniform weights
    and zero biases on every convolution and linear layer (model.py: weight_init); BatchNorms
    keep torch's defaults except the non-local output one (zero).

    ``forward(x)``:
    - eval: ``x`` (B, T, D) -> (B, T) scores ((B, C, T, D) gives the crop-mean scores, as
      test_10crop.py computes them). Any T >= 1.
    - training: ``x`` (B, C, T, D), all C crops of each video (a (B, T, D) input is C = 1), the
      batch ``cat([normal, anomalous])``. Returns a dict:
      ``scores`` (B, T) crop-mean snippet scores; ``topk_scores`` (B,) the mean score of the k
      snippets chosen per video; ``topk_features`` (B, C, k, D) those snippets' features per crop.
      The k snippets are the largest feature magnitudes: the L2 norm of each snippet's feature
      after the dropout, averaged over crops, times a dropout mask (p = ``dropout``) of ones
      (model.py: Model.forward, ``select_idx``). The official code splits the batch in halves
      and draws one mask per half (anomalous first), the same selection rule for both; here one
      mask covers the batch, the same distribution, so the network does not depend on the order
      of the halves (the loss does). The official split of the crop rows at ``batch_size * 10``
      assumes ten crops; here rows are split by video, so any C works.
    """

    def __init__(self, input_dim: int, channels: int = 512, nonlocal_channels: int = 256,
                 fc1_dim: int = 512, fc2_dim: int = 128, dropout: float = 0.7, k: int = 3):
        super().__init__()
        self.input_dim = input_dim
        self.k = k
        self.dilated = nn.ModuleList(_dilated(input_dim, channels, d) for d in (1, 2, 4))
        self.pointwise = nn.Sequential(nn.Conv1d(input_dim, channels, 1, bias=False), nn.ReLU())
        self.non_local = NonLocal1d(channels, nonlocal_channels)
        self.fuse = nn.Sequential(
            nn.Conv1d(4 * channels, input_dim, 3, padding=1, bias=False),
            nn.ReLU(), nn.BatchNorm1d(input_dim))
        self.dropout = nn.Dropout(dropout)
        self.fc1 = nn.Linear(input_dim, fc1_dim)
        self.fc2 = nn.Linear(fc1_dim, fc2_dim)
        self.fc3 = nn.Linear(fc2_dim, 1)
        for module in self.modules():
            if isinstance(module, (nn.Conv1d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        nn.init.zeros_(self.non_local.out[1].weight)
        nn.init.zeros_(self.non_local.out[1].bias)

    def features(self, x: Tensor) -> Tensor:
        """(N, T, D) -> (N, T, D): the temporal block with its residual (model.py: Aggregate)."""
        h = x.transpose(1, 2)
        local = [conv(h) for conv in self.dilated]
        glob = self.non_local(self.pointwise(h))
        return (self.fuse(torch.cat([*local, glob], dim=1)) + h).transpose(1, 2)

    def score(self, features: Tensor) -> Tensor:
        """(..., D) features (after the dropout) -> (...) scores."""
        h = self.dropout(torch.relu(self.fc1(features)))
        h = self.dropout(torch.relu(self.fc2(h)))
        return torch.sigmoid(self.fc3(h)).squeeze(-1)

    def forward(self, x: Tensor):
        if x.dim() not in (3, 4) or x.shape[-1] != self.input_dim:
            raise ValueError(f"RTFMNetwork expects (B, T, {self.input_dim}) or "
                             f"(B, C, T, {self.input_dim}) features, found {tuple(x.shape)}")
        if x.dim() == 3:
            x = x.unsqueeze(1)
        b, c, t, d = x.shape
        features = self.dropout(self.features(x.reshape(b * c, t, d))).reshape(b, c, t, d)
        scores = self.score(features).mean(dim=1)  # (B, T)
        if not self.training:
            return scores
        if t < self.k:
            raise ValueError(f"RTFM picks the top k={self.k} snippets of each training video, "
                             f"found T={t} segments: use at least {self.k} "
                             "(method.inputs.segments)")
        magnitudes = features.norm(dim=-1).mean(dim=1)  # (B, T)
        mask = self.dropout(torch.ones_like(magnitudes))
        top = torch.topk(magnitudes * mask, self.k, dim=1).indices  # (B, k)
        topk_scores = scores.gather(1, top).mean(dim=1)
        index = top[:, None, :, None].expand(b, c, self.k, d)
        return {"scores": scores, "topk_scores": topk_scores,
                "topk_features": features.gather(2, index)}
