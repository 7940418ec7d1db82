"""RTFM's loss (Tian et al., ICCV 2021), re-implemented from tianyu0207/RTFM train.py."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from vad.losses.batch_order import normal_first_half


class RTFMLoss(nn.Module):
    """``bce + alpha * magnitude + lambda_sparsity * sparsity + lambda_smooth * smooth``.

    ``output`` is RTFMNetwork's training dict for the batch ``cat([normal, anomalous])`` (n rows
    each); ``labels`` (B,) must be n zeros then n ones.

    - bce: BCE of each video's mean top-k score against its label, mean over the 2n videos
      (train.py: RTFM_loss.forward, ``loss_cls``).
    - magnitude: for each crop of each video, m = L2 norm of the mean of its k selected snippet
      features; normal row j is paired with anomalous row j (crop by crop) and the term is
      ``mean((|margin - m_anomalous| + m_normal) ** 2)`` over the n * C pairs (RTFM_loss:
      ``loss_rtfm``). The official code takes ``abs``, not the paper's ``max(0, .)``, so
      anomalous magnitudes above the margin are pulled back to it; that is reproduced.
    - sparsity: the L2 norm (not the paper's L1 sum) of all anomalous snippet scores flattened
      into one vector (train.py: sparsity, ``mean(norm(arr, dim=0))`` of a 1-D tensor).
    - smooth: sum of squared differences of consecutive anomalous scores (train.py: smooth).
      ``smooth_across_videos=True`` (official) takes them over the flattened batch, so the n - 1
      pairs (last snippet of a video, first of the next) count too; False keeps pairs within a
      video.

    Returns (total, {"bce", "magnitude", "sparsity", "smooth"}: the unweighted terms, detached).
    """

    def __init__(self, alpha: float = 1e-4, margin: float = 100.0, lambda_sparsity: float = 8e-3,
                 lambda_smooth: float = 8e-4, smooth_across_videos: bool = True):
        super().__init__()
        self.alpha = alpha
        self.margin = margin
        self.lambda_sparsity = lambda_sparsity
        self.lambda_smooth = lambda_smooth
        self.smooth_across_videos = smooth_across_videos

    def forward(self, output: dict[str, Tensor], labels: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        n = normal_first_half(labels)
        if n is None:
            raise ValueError("RTFMLoss needs the batch cat([normal, anomalous]) with as many of "
                             f"each: labels n zeros then n ones, found {labels.tolist()}")
        bce = F.binary_cross_entropy(output["topk_scores"], labels)
        magnitudes = output["topk_features"].mean(dim=2).norm(dim=-1)  # (B, C)
        magnitude = ((self.margin - magnitudes[n:]).abs() + magnitudes[:n]).pow(2).mean()
        anomalous = output["scores"][n:]  # (n, T)
        sparsity = anomalous.flatten().norm()
        if self.smooth_across_videos:
            smooth = anomalous.flatten().diff().pow(2).sum()
        else:
            smooth = anomalous.diff(dim=1).pow(2).sum()
        total = (bce + self.alpha * magnitude + self.lambda_sparsity * sparsity
                 + self.lambda_smooth * smooth)
        terms = {"bce": bce, "magnitude": magnitude, "sparsity": sparsity, "smooth": smooth}
        return total, {name: value.detach() for name, value in terms.items()}
