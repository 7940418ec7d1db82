"""The temporal transformer of UR-DMU (henrryzh1/UR-DMU, model.py ``Temporal``, translayer.py
``Transformer``, ``Attention``), which BN-WVAD (cool-xuan/BN-WVAD, models/translayer.py) reuses
as it is: a kernel-3 convolution embedding, then pre-norm blocks whose attention has a softmax
branch and a fixed distance branch. Module names follow the official ones, so official state
dicts of both methods load as they are."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def distance_kernel(length: int, device=None, dtype=None) -> Tensor:
    """The fixed (T, T) attention of translayer.py ``Attention.forward`` (``attn2``):
    ``exp(-|i - j| / e)``, divided by ``sum(-1)`` broadcast along the LAST axis, so entry (i, j) is
    divided by the sum of row j (= column j, the kernel is symmetric): columns sum to 1, rows do not
    (the end rows to about 0.83, the middle ones to about 1.09 for T >= 10). Reproduced as the
    official computes it."""
    position = torch.arange(1, length + 1, device=device, dtype=dtype)
    kernel = torch.exp(-(position[None, :] - position[:, None]).abs() / math.e)
    return kernel / kernel.sum(-1)


class Attention(nn.Module):
    """translayer.py ``Attention``: one bias-free projection gives q, k, v and a fourth value t per
    head; each head outputs ``[softmax(q k^T / sqrt(dim_head)) v, K t]`` with K the fixed
    :func:`distance_kernel`; the heads' 2 * heads * dim_head channels go through Linear + Dropout."""

    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float):
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.scale = dim_head ** -0.5
        self.to_qkv = nn.Linear(dim, 4 * inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(2 * inner, dim), nn.Dropout(dropout))

    def forward(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape
        # (B, N, 4 * H * Dh) -> 4 x (B, H, N, Dh)
        q, k, v, t = self.to_qkv(x).reshape(b, n, 4, self.heads, -1).permute(2, 0, 3, 1, 4)
        attention = torch.softmax(q @ k.transpose(-1, -2) * self.scale, dim=-1)
        kernel = distance_kernel(n, device=x.device, dtype=x.dtype)
        out = torch.cat([attention @ v, kernel @ t], dim=-1)  # (B, H, N, 2 * Dh)
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class PreNorm(nn.Module):
    """translayer.py ``PreNorm``: LayerNorm, then the wrapped block."""

    def __init__(self, dim: int, fn: nn.Module):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(self.norm(x))


class FeedForward(nn.Module):
    """translayer.py ``FeedForward``: Linear -> GELU -> Dropout -> Linear -> Dropout."""

    def __init__(self, dim: int, hidden: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, dim), nn.Dropout(dropout))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class Transformer(nn.Module):
    """translayer.py ``Transformer``: ``depth`` pre-norm residual (attention, feed-forward) pairs."""

    def __init__(self, dim: int, depth: int, heads: int, dim_head: int, mlp_dim: int, dropout: float):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList([PreNorm(dim, Attention(dim, heads, dim_head, dropout)),
                           PreNorm(dim, FeedForward(dim, mlp_dim, dropout))])
            for _ in range(depth))

    def forward(self, x: Tensor) -> Tensor:
        for attention, feed_forward in self.layers:
            x = attention(x) + x
            x = feed_forward(x) + x
        return x


class Embedding(nn.Module):
    """model.py ``Temporal``: Conv1d(kernel 3, padding 1) over time, then ReLU; (B, T, D) in and out."""

    def __init__(self, input_dim: int, out_dim: int):
        super().__init__()
        self.conv_1 = nn.Sequential(nn.Conv1d(input_dim, out_dim, kernel_size=3, padding=1), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_1(x.transpose(1, 2)).transpose(1, 2)
