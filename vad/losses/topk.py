"""Top-k BCE MIL loss (Wu et al., ECCV 2020; Roc-Ng/XDVioDet ``train.py:CLAS``).

Per video, the mean of its k largest snippet logits, k = T // 16 + 1, through a sigmoid is the
video's anomaly probability; the loss is the binary cross-entropy against the video label
(0 normal, 1 anomalous), averaged over the batch (``torch.nn.BCELoss()``'s mean, ``main.py``).
The official code takes the top k of the first ``seq_len`` snippets, ``seq_len`` being the
video's length before zero-padding to 200 (``train.py:train``); the videos served here are never
padded, so ``seq_len`` is T. HL-Net's second branch and its distillation term
(``clsloss2 + 5 * croloss``) belong to the GCN model, which this method leaves out.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

SNIPPETS_PER_K = 16  # train.py:CLAS: k = seq_len // 16 + 1


def top_k_count(snippets: int) -> int:
    """How many of a video's ``snippets`` scores are pooled: ``snippets // 16 + 1``."""
    return snippets // SNIPPETS_PER_K + 1


class TopKLoss(nn.Module):
    """``mean over videos of BCE(sigmoid(mean of the top-k logits), label)``; no weights.

    ``F.binary_cross_entropy_with_logits`` equals the official ``BCELoss(sigmoid(.))`` up to float
    rounding, except that it keeps a gradient where the sigmoid saturates (|logit| > ~17) and
    ``BCELoss`` clamps ``log`` at -100. Labels drive the loss, not the row order.
    """

    def forward(self, output, labels: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        logits = output.get("logits") if isinstance(output, dict) else None
        if logits is None or logits.dim() != 2 or logits.shape[0] != labels.shape[0]:
            found = sorted(output) if isinstance(output, dict) else type(output).__name__
            raise ValueError(f"TopKLoss needs the training output of vad.models.topk.TopKNetwork, a dict "
                             f"with 'logits' of shape (B, T) for {labels.shape[0]} labels, found {found}"
                             + (f" with logits {tuple(logits.shape)}" if logits is not None else "")
                             + ": pair method.loss with method.network=vad.models.topk.TopKNetwork")
        k = top_k_count(logits.shape[1])
        pooled = logits.topk(k, dim=1).values.mean(dim=1)
        bce = F.binary_cross_entropy_with_logits(pooled, labels.to(pooled.dtype))
        return bce, {"bce": bce.detach()}
