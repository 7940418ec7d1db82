"""BN-WVAD (Zhou et al., "BatchNorm-based Weakly Supervised Video Anomaly Detection", TCSVT 2024)
as its official code (cool-xuan/BN-WVAD, models/model.py, models/normal_head.py,
models/translayer.py) computes it.

The anomaly criterion is the Mahalanobis distance of a snippet's feature to the running mean and
variance of a BatchNorm layer (the "divergence of feature from mean", DFM): the BatchNorm layers
of the classifier head see every training batch, so their running statistics settle on what most
snippets look like (normal ones). Training selects, per BatchNorm layer, the anomalous-video
snippets farthest from the mean (top ``ratio_sample`` of each video, or top ``ratio_batch`` of
the whole anomalous half) and as many of the normal videos' farthest snippets, for the triplet
loss in vad/losses/bnwvad.py. At test time a snippet's score is the classifier's probability
times the summed distances.

Module names follow the official ones, so an official state dict loads as is.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vad.models.translayer import Embedding, Transformer


class _NormalHead(nn.Module):
    """Conv1d(dim, dim/r1) -> BN -> ReLU -> Conv1d(dim/r1, dim/r2) -> BN -> ReLU -> Conv1d(., 1) ->
    sigmoid (normal_head.py: NormalHead). ``forward`` returns the two BatchNorm layers' INPUTS
    (the features whose distance to the running statistics is the DFM) and the (B, T) scores."""

    def __init__(self, dim: int, ratios: tuple[int, int], kernel_sizes: tuple[int, int, int]):
        super().__init__()
        c1, c2 = dim // ratios[0], dim // ratios[1]
        k1, k2, k3 = kernel_sizes
        self.conv1 = nn.Conv1d(dim, c1, k1, 1, k1 // 2)
        self.bn1 = nn.BatchNorm1d(c1)
        self.conv2 = nn.Conv1d(c1, c2, k2, 1, k2 // 2)
        self.bn2 = nn.BatchNorm1d(c2)
        self.conv3 = nn.Conv1d(c2, 1, k3, 1, k3 // 2)

    @property
    def bns(self) -> tuple[nn.BatchNorm1d, nn.BatchNorm1d]:
        return self.bn1, self.bn2

    def forward(self, x: Tensor) -> tuple[list[Tensor], Tensor]:
        """(B, C, T) -> ([(B, C1, T), (B, C2, T)], (B, T))."""
        f1 = self.conv1(x)
        f2 = self.conv2(torch.relu(self.bn1(f1)))
        scores = torch.sigmoid(self.conv3(torch.relu(self.bn2(f2))))
        return [f1, f2], scores.squeeze(1)


def mahalanobis(feats: Tensor, mean: Tensor, var: Tensor) -> Tensor:
    """(B, C, T) features -> (B, T) ``sqrt(sum_c (f_c - mean_c)^2 / var_c)`` (model.py:
    WSAD.get_mahalanobis_distance; a diagonal covariance, the BatchNorm's running variance)."""
    return torch.sqrt(((feats - mean[None, :, None]) ** 2 / var[None, :, None]).sum(dim=1))


class BNWVADNetwork(nn.Module):
    """Features (B, T, D) -> Conv1d embedding (512) -> 2-layer transformer -> normal head.

    Eval mode: (B, T) scores ``p * d`` where ``p`` is the head's sigmoid and ``d`` the sum over the
    two BatchNorm layers of the Mahalanobis distance of the layer's input to its running mean and
    variance (model.py: WSAD.forward, test branch). That product is unbounded; ``bounded=True``
    (the default, which this package's [0, 1] score contract needs) reports ``s / (1 + s)``,
    strictly increasing, so every ranking metric (AUC, AP) equals the official one exactly;
    ``bounded=False`` returns the official product itself. Crops are scored as separate videos
    and their scores averaged, as the official test does (test.py: get_predicts, mean over the
    crops of the products).

    Training mode: the batch MUST be ``cat([normal, anomalous])``, equal halves (the official
    train.py builds it so; the selection below and the loss's normal term rely on it; the
    BatchNorm layers normalise with, and update their running statistics from, both halves
    together, as the official ones do). Returns a dict:
    ``scores`` (B, T) the head's probabilities; ``anchors``/``variances`` per BatchNorm layer its
    running mean/var AFTER this batch's update (the official forward reads them after the head ran);
    ``normals``/``anomalous`` per layer the selected (K, C) normal and anomalous features.
    """

    def __init__(self, input_dim: int, dim: int = 512, depth: int = 2, heads: int = 4,
                 dim_head: int = 128, mlp_dim: int = 512, dropout: float = 0.0,
                 ratios: tuple[int, int] = (16, 32), kernel_sizes: tuple[int, int, int] = (1, 1, 1),
                 ratio_sample: float = 0.2, ratio_batch: float = 0.4, bounded: bool = True):
        super().__init__()
        self.input_dim = input_dim
        self.ratio_sample = ratio_sample
        self.ratio_batch = ratio_batch
        self.bounded = bounded
        self.embedding = Embedding(input_dim, dim)
        self.selfatt = Transformer(dim, depth, heads, dim_head, mlp_dim, dropout)
        self.normal_head = _NormalHead(dim, tuple(ratios), tuple(kernel_sizes))

    def forward(self, x: Tensor):
        if x.dim() != 3:
            raise ValueError(f"BNWVADNetwork takes (B, T, D) features, found shape {tuple(x.shape)}")
        feats, scores = self.normal_head(self.selfatt(self.embedding(x)).transpose(1, 2))
        means = [bn.running_mean.detach().clone() for bn in self.normal_head.bns]
        variances = [bn.running_var.detach().clone() for bn in self.normal_head.bns]
        if not self.training:
            distance = sum(mahalanobis(f, m, v) for f, m, v in zip(feats, means, variances))
            product = distance * scores
            return product / (1 + product) if self.bounded else product
        normals, anomalous = [], []
        for f, m, v in zip(feats, means, variances):
            with torch.no_grad():  # the distances only rank the snippets
                distance = mahalanobis(f, m, v)
            nor, abn = self.select(f, distance)
            normals.append(nor)
            anomalous.append(abn)
        return {"scores": scores, "anchors": means, "variances": variances,
                "normals": normals, "anomalous": anomalous}

    def select(self, feats: Tensor, distance: Tensor) -> tuple[Tensor, Tensor]:
        """Candidates of one BatchNorm layer (model.py: WSAD.pos_neg_select).

        ``feats`` (B, C, T), ``distance`` (B, T); rows [:B/2] normal, [B/2:] anomalous. Anomalous
        snippets: the union of each anomalous video's top ``int(T * ratio_sample)`` distances and
        the half's top ``int(B/2 * T * ratio_batch)``, in (video, time) order. Normal snippets:
        each normal video's top ``K // (B/2) + 1`` distances, taken rank by rank (every video's
        farthest, then every video's second, ...) and cut to K, the anomalous count.
        Returns ((K, C) normal, (K, C) anomalous).
        """
        b, c, t = feats.shape
        if b % 2:
            raise ValueError(f"BN-WVAD trains on cat([normal, anomalous]) batches of equal halves, found {b} rows")
        half = b // 2
        per_video = int(t * self.ratio_sample)
        per_batch = int(half * t * self.ratio_batch)
        if per_video == 0 and per_batch == 0:
            raise ValueError(
                f"BN-WVAD selects no anomalous snippet with T={t} segments, {half} anomalous videos, "
                f"ratio_sample={self.ratio_sample}, ratio_batch={self.ratio_batch}: use more segments "
                "(method.inputs.segments, official 200) or a larger batch")
        nor_dist, abn_dist = distance[:half], distance[half:]
        nor_feats, abn_feats = feats[:half].transpose(1, 2), feats[half:].transpose(1, 2)  # (B/2, T, C)
        chosen = torch.zeros_like(abn_dist, dtype=torch.bool)
        if per_video:
            chosen.scatter_(1, abn_dist.topk(per_video, dim=-1).indices, True)
        chosen = chosen.reshape(-1)
        if per_batch:
            chosen[abn_dist.reshape(-1).topk(per_batch).indices] = True
        abn = abn_feats.reshape(-1, c)[chosen]
        count = abn.shape[0]
        # The official k is count // half + 1, which exceeds T (topk fails) only when every
        # anomalous snippet is chosen; T normal snippets per video then still cover `count`.
        k = min(count // half + 1, t)
        index = nor_dist.topk(k, dim=-1).indices  # (B/2, k)
        nor = nor_feats.gather(1, index[..., None].expand(-1, -1, c))  # (B/2, k, C)
        return nor.transpose(0, 1).reshape(-1, c)[:count], abn
