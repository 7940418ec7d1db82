"""The snippet scorer of top-k BCE MIL (Wu et al., ECCV 2020, "Not only Look, but also Listen";
official code Roc-Ng/XDVioDet), optionally causal so that it can score a live stream.

It is the official ``model.py:Model`` without its graph (GCN) branch: the layers on the path from
a snippet feature to a score that uses no graph, i.e. the shared fusion layers ``conv1d1``
(D -> 512) and ``conv1d2`` (512 -> 128), kernel 1, each followed by ReLU and dropout, then the
online branch (``approximator``: 128 -> 64 -> 32, kernel 1, ReLU; ``conv1d_approximator``:
32 -> 1). Kernel-1 convolutions are per-snippet linear layers, written as ``nn.Linear`` here.
The unused ``conv1d3``/``conv1d4`` of ``Model.__init__`` (never called in ``forward``) are left
out, and so are the GCN layers, the similarity/distance adjacencies and the 96 -> 1 classifier.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class TopKNetwork(nn.Module):
    """(B, T, D) snippet features -> (B, T) anomaly scores (eval) or ``{"logits", "scores"}`` (train).

    ``causal_window=k > 0``: the last layer is a temporal convolution of kernel k padded with
    k - 1 zeros on the left only, so a snippet's score depends on itself and the k - 1 snippets
    before it; k = 5 (80 frames) is HL-Net's online branch (``model.py:Model.forward``:
    ``F.pad(logits, (4, 0))`` then ``Conv1d(32, 1, 5)``). ``causal_window=0``: kernel 1, each
    snippet scored alone (0 and 1 are the same network). Either way a stream scorer that feeds the
    last ``max(1, causal_window)`` snippets and keeps the last score gets the whole-video score.
    The rows of a batch are independent (no batch statistics), so the normal-then-anomalous order
    of training batches does not matter here.
    """

    def __init__(self, input_dim: int, dropout: float = 0.6, causal_window: int = 0):
        super().__init__()
        if int(causal_window) < 0:
            raise ValueError(f"method.network.causal_window must be >= 0 (0: each snippet scored alone, "
                             f"k: a causal convolution over the last k snippets), found {causal_window}")
        self.input_dim = input_dim
        self.causal_window = int(causal_window)
        # model.py:Model: conv1d1, conv1d2 (kernel 1), ReLU then nn.Dropout(0.6) after each.
        self.embed = nn.Sequential(
            nn.Linear(input_dim, 512), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(512, 128), nn.ReLU(), nn.Dropout(dropout),
        )
        # model.py:Model.approximator (kernel 1, no dropout) and conv1d_approximator.
        self.head = nn.Sequential(nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU())
        self.score = nn.Conv1d(32, 1, kernel_size=max(1, self.causal_window))
        # model.py:weight_init: xavier_uniform_ on every Conv/Linear weight; biases keep torch's
        # default (the official fill_(0.1) is commented out).
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Conv1d)):
                nn.init.xavier_uniform_(module.weight)

    @property
    def receptive_field(self) -> int:
        """Snippets a score depends on (itself and those before it): what a stream scorer feeds."""
        return max(1, self.causal_window)

    def forward(self, x: Tensor):
        if x.dim() != 3:
            raise ValueError(f"TopKNetwork expects (B, T, D) snippet features, found shape {tuple(x.shape)}")
        hidden = self.head(self.embed(x)).transpose(1, 2)  # (B, 32, T)
        hidden = F.pad(hidden, (self.score.kernel_size[0] - 1, 0))  # the past only
        logits = self.score(hidden).squeeze(1)  # (B, T)
        scores = torch.sigmoid(logits)
        if self.training:
            # The loss pools logits (train.py:CLAS takes the top-k mean before the sigmoid).
            return {"logits": logits, "scores": scores}
        return scores
