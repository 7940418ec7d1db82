"""RTFM (tianyu0207/RTFM): network shapes, official size and initialisation, the magnitude top-k
selection, each loss term against hand-worked numbers, gradients, the batch order, the config."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf
from torch import nn

from vad.losses.rtfm import RTFMLoss
from vad.models.rtfm import RTFMNetwork

CONFIG = Path(__file__).resolve().parents[1] / "conf" / "method" / "rtfm.yaml"
D = 16  # a small feature size keeps the tests fast; the official size is checked by count


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return RTFMNetwork(D)


# ---------------------------------------------------------------- network
@pytest.mark.parametrize("t", [1, 2, 7, 32, 500])
def test_eval_scores_shape_and_range(net, t):
    net.eval()
    with torch.no_grad():
        scores = net(torch.randn(2, t, D))
    assert scores.shape == (2, t)
    assert ((scores >= 0) & (scores <= 1)).all()


def test_eval_crops_axis_is_the_crop_mean(net):
    # test_10crop.py scores the (1, 10, T, D) crops together and averages them; the framework
    # folds crops into the batch and averages: the same numbers.
    net.eval()
    x = torch.randn(1, 4, 9, D)
    with torch.no_grad():
        together = net(x)
        folded = net(x[0]).mean(dim=0, keepdim=True)
    np.testing.assert_allclose(together.numpy(), folded.numpy(), rtol=1e-6, atol=1e-7)


def test_training_outputs(net):
    net.train()
    out = net(torch.randn(6, 3, 32, D))  # 3 normal + 3 anomalous videos, 3 crops each
    assert out["scores"].shape == (6, 32)
    assert out["topk_scores"].shape == (6,)
    assert out["topk_features"].shape == (6, 3, 3, D)
    assert ((out["scores"] >= 0) & (out["scores"] <= 1)).all()
    # a (B, T, D) batch in training is one crop per video
    assert net(torch.randn(4, 32, D))["topk_features"].shape == (4, 1, 3, D)


def test_topk_by_masked_crop_mean_magnitude(net):
    """The k snippets per video are the largest of (L2 norm of the dropped-out feature, averaged
    over crops) x a dropout mask of ones (p 0.7), drawn after the feature and FC dropouts
    (model.py: Model.forward). The masks are redrawn here from the same seed."""
    net.train()
    b, c, t, p = 4, 3, 32, 0.7
    x = torch.randn(b, c, t, D)
    with torch.no_grad():
        clean = net.features(x.reshape(b * c, t, D)).reshape(b, c, t, D).numpy()  # no RNG inside
        torch.manual_seed(7)
        out = net(x)
        torch.manual_seed(7)
        # the features leave the temporal block as a (N, D, T) tensor seen as (N, T, D) (model.py:
        # Aggregate.forward permutes too), and dropout draws its mask in that memory order
        keep = [F.dropout(torch.ones(b * c, D, t), p).transpose(1, 2).numpy()]
        keep += [F.dropout(torch.ones(shape), p).numpy() for shape in
                 [(b, c, t, net.fc1.out_features), (b, c, t, net.fc2.out_features), (b, t)]]
    features = clean * keep[0].reshape(b, c, t, D)
    mask = keep[3]
    assert np.isin(mask, [0.0, np.float32(1 / (1 - p))]).all() and 0 < mask.mean() < 2
    magnitude = np.sqrt((features ** 2).sum(-1)).mean(1) * mask  # (b, t)
    scores = out["scores"].numpy()
    for v in range(b):
        top = np.argsort(-magnitude[v])[:3]
        np.testing.assert_allclose(out["topk_features"][v].numpy(), features[v][:, top], rtol=1e-5,
                                   atol=1e-6)
        assert out["topk_scores"][v].item() == pytest.approx(scores[v, top].mean(), rel=1e-5)


def test_official_parameter_count():
    # RTFM for the official 2048-d I3D features (model.py): weights + biases, BatchNorm weight + bias
    conv_dilated = 3 * (2048 * 512 * 3 + 512 + 2 * 512)     # conv_1..3 (k=3) + their BatchNorms
    conv_pointwise = 2048 * 512                             # conv_4, k=1, no bias
    non_local = 3 * (512 * 256 + 256) + (256 * 512 + 512) + 2 * 512  # g, theta, phi, W, W's BN
    conv_fuse = 2048 * 2048 * 3 + 2 * 2048                  # conv_5, k=3, no bias + BatchNorm
    fc = (2048 * 512 + 512) + (512 * 128 + 128) + (128 + 1)
    total = conv_dilated + conv_pointwise + non_local + conv_fuse + fc
    assert total == 24_718_849
    assert sum(p.numel() for p in RTFMNetwork(2048).parameters()) == total


def test_official_initialisation():
    torch.manual_seed(0)
    model = RTFMNetwork(D)
    convs = [m for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Linear))]
    assert len(convs) == 3 + 1 + 4 + 1 + 3
    for m in convs:  # xavier_uniform_: U(-a, a), a = sqrt(6 / (fan_in + fan_out))
        w = m.weight.detach()
        receptive = w[0, 0].numel()
        bound = math.sqrt(6 / ((w.shape[1] + w.shape[0]) * receptive))
        assert w.abs().max() <= bound and w.abs().max() > 0.8 * bound
        assert m.bias is None or not m.bias.any()
    # the non-local block's output BatchNorm starts at zero: the block starts as the identity
    h = torch.randn(3, model.non_local.theta.in_channels, 5)
    model.eval()
    with torch.no_grad():
        np.testing.assert_allclose(model.non_local(h).numpy(), h.numpy())


def test_bad_inputs_are_named():
    model = RTFMNetwork(D)
    with pytest.raises(ValueError, match=r"expects \(B, T, 16\) or \(B, C, T, 16\) features, "
                                         r"found \(2, 5, 8\)"):
        model(torch.randn(2, 5, 8))
    with pytest.raises(ValueError, match=r"top k=3 snippets .* found T=2 segments.*"
                                         r"method.inputs.segments"):
        model.train()(torch.randn(2, 1, 2, D))


# ---------------------------------------------------------------- loss
# Hand-worked batch: 2 normal videos then 2 anomalous, 2 crops, k = 2 selected snippets, D = 2.
# Mean of the selected features per crop and its norm:
#   normal 0: [3, 4] -> 5,    [0, 1] -> 1      anomalous 2: [30, 40] -> 50,  [78, 104] -> 130
#   normal 1: [6, 8] -> 10,   [0, .5] -> .5    anomalous 3: [60, 80] -> 100, [0, 3] -> 3
FEATURES = [
    [[[3, 0], [3, 8]], [[0, 0], [0, 2]]],
    [[[6, 8], [6, 8]], [[1, 0], [-1, 1]]],
    [[[30, 40], [30, 40]], [[78, 104], [78, 104]]],
    [[[60, 80], [60, 80]], [[0, 3], [0, 3]]],
]
SCORES = [[0.3, 0.3, 0.3], [0.1, 0.2, 0.1], [0.1, 0.5, 0.2], [0.4, 0.3, 0.9]]
TOPK = [0.2, 0.3, 0.7, 0.6]
LABELS = [0.0, 0.0, 1.0, 1.0]
# BCE: -(ln .8 + ln .7 + ln .7 + ln .6) / 4
BCE = -(math.log(0.8) + math.log(0.7) + math.log(0.7) + math.log(0.6)) / 4
# (|100 - m_a| + m_n)^2 per (video, crop) pair: 55^2, 31^2, 10^2, 97.5^2 (abs: 130 -> 30)
MAGNITUDE = (3025 + 961 + 100 + 9506.25) / 4
# L2 norm of the anomalous scores .1 .5 .2 .4 .3 .9
SPARSITY = math.sqrt(0.01 + 0.25 + 0.04 + 0.16 + 0.09 + 0.81)
# consecutive differences .4 -.3 | .2 (video boundary) | -.1 .6
SMOOTH_ACROSS = 0.16 + 0.09 + 0.04 + 0.01 + 0.36
SMOOTH_WITHIN = 0.16 + 0.09 + 0.01 + 0.36


def t64(x, grad=False):
    return torch.tensor(x, dtype=torch.float64, requires_grad=grad)


def output(features=FEATURES, scores=SCORES, topk=TOPK, grad=False):
    return {"scores": t64(scores, grad), "topk_scores": t64(topk, grad),
            "topk_features": t64(features, grad)}


def test_each_term_and_total_by_hand():
    total, terms = RTFMLoss()(output(), t64(LABELS))
    assert terms["bce"].item() == pytest.approx(BCE, rel=1e-12)
    assert terms["magnitude"].item() == pytest.approx(MAGNITUDE, rel=1e-12)
    assert terms["sparsity"].item() == pytest.approx(SPARSITY, rel=1e-12)
    assert terms["smooth"].item() == pytest.approx(SMOOTH_ACROSS, rel=1e-12)
    expected = BCE + 1e-4 * MAGNITUDE + 8e-3 * SPARSITY + 8e-4 * SMOOTH_ACROSS
    assert total.item() == pytest.approx(expected, rel=1e-12)
    assert not any(v.requires_grad for v in terms.values())


def test_smooth_within_videos_option():
    total, terms = RTFMLoss(smooth_across_videos=False)(output(), t64(LABELS))
    assert terms["smooth"].item() == pytest.approx(SMOOTH_WITHIN, rel=1e-12)
    expected = BCE + 1e-4 * MAGNITUDE + 8e-3 * SPARSITY + 8e-4 * SMOOTH_WITHIN
    assert total.item() == pytest.approx(expected, rel=1e-12)


def test_gradient_of_scores_by_hand():
    out = output(grad=True)
    total, _ = RTFMLoss()(out, t64(LABELS))
    g_scores, g_topk = torch.autograd.grad(total, [out["scores"], out["topk_scores"]])
    # d BCE / d p = (p - y) / (p (1 - p)) / B
    hand_topk = [(p - y) / (p * (1 - p)) / 4 for p, y in zip(TOPK, LABELS)]
    np.testing.assert_allclose(g_topk.numpy(), hand_topk, rtol=1e-12)
    # normal scores: no term; anomalous: 8e-3 * s / ||s|| + 8e-4 * d/ds sum (s_{i+1} - s_i)^2
    s = np.array(SCORES[2] + SCORES[3])
    d = np.diff(s)
    smooth = np.zeros(6)
    smooth[:-1] -= 2 * d
    smooth[1:] += 2 * d
    hand = 8e-3 * s / np.sqrt((s ** 2).sum()) + 8e-4 * smooth
    np.testing.assert_allclose(g_scores[:2].numpy(), 0.0)
    np.testing.assert_allclose(g_scores[2:].numpy().ravel(), hand, rtol=1e-12)


def test_gradient_of_features_by_hand():
    # term alpha * mean over the P = 4 pairs of (|M - m_a| + m_n)^2, m = ||u||, u = mean of k = 2:
    # d/du_n = 2 (|M - m_a| + m_n) / P * u_n / m_n;  d/du_a = the same factor * -sign(M - m_a) u_a / m_a
    # (|.|: the anomalous crop of norm 130 is pulled down to the margin); each snippet gets 1/k.
    out = output(grad=True)
    total, _ = RTFMLoss()(out, t64(LABELS))
    (grad,) = torch.autograd.grad(total, [out["topk_features"]])
    u = np.array(FEATURES, dtype=float).mean(axis=2)  # (4 videos, 2 crops, 2)
    m = np.sqrt((u ** 2).sum(-1))
    hand = np.zeros_like(u)
    for j in range(2):
        for c in range(2):
            factor = 1e-4 * 2 * (abs(100 - m[2 + j, c]) + m[j, c]) / 4
            hand[j, c] = factor * u[j, c] / m[j, c]
            hand[2 + j, c] = factor * -np.sign(100 - m[2 + j, c]) * u[2 + j, c] / m[2 + j, c]
    expected = np.repeat(hand[:, :, None, :], 2, axis=2) / 2
    np.testing.assert_allclose(grad.numpy(), expected, rtol=1e-12)
    assert grad[2, 1, 0, 0] > 0 and grad[2, 0, 0, 0] < 0  # above the margin: down; below: up


def test_normal_half_first():
    # The same rows with the halves swapped, labels kept: the roles of the videos swap.
    swapped = output(FEATURES[2:] + FEATURES[:2], SCORES[2:] + SCORES[:2], TOPK[2:] + TOPK[:2])
    _, terms = RTFMLoss()(swapped, t64(LABELS))
    assert terms["bce"].item() == pytest.approx(
        -(math.log(0.3) + math.log(0.4) + math.log(0.2) + math.log(0.3)) / 4, rel=1e-12)
    # anomalous now 5, 1 | 10, .5; normal 50, 130 | 100, 3: (95+50)^2 (99+130)^2 (90+100)^2 (99.5+3)^2
    assert terms["magnitude"].item() == pytest.approx(
        (145 ** 2 + 229 ** 2 + 190 ** 2 + 102.5 ** 2) / 4, rel=1e-12)
    assert terms["sparsity"].item() == pytest.approx(math.sqrt(3 * 0.09 + 0.01 + 0.04 + 0.01))


@pytest.mark.parametrize("labels", [[1.0, 1.0, 0.0, 0.0], [0.0, 1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
def test_labels_out_of_order_are_refused(labels):
    with pytest.raises(ValueError, match=r"cat\(\[normal, anomalous\]\).*n zeros then n ones, "
                                         r"found \["):
        RTFMLoss()(output(), t64(labels))


# ---------------------------------------------------------------- config
def test_config_builds_the_official_method():
    cfg = OmegaConf.load(CONFIG)
    assert OmegaConf.to_container(cfg.defaults) == [{"override /optimizer": "adam"},
                                                    {"override /scheduler": "none"}]
    assert get_class(cfg.method.network._target_) is RTFMNetwork
    assert get_class(cfg.method.loss._target_) is RTFMLoss
    assert cfg.method.causal is False
    network = instantiate(cfg.method.network, input_dim=D)
    assert isinstance(network, RTFMNetwork) and network.input_dim == D and network.k == 3
    assert network.dropout.p == 0.7
    assert [conv[0].dilation[0] for conv in network.dilated] == [1, 2, 4]
    assert [conv[0].out_channels for conv in network.dilated] == [512] * 3
    assert network.non_local.theta.out_channels == 256
    assert (network.fc1.out_features, network.fc2.out_features) == (512, 128)
    loss = instantiate(cfg.method.loss)
    assert isinstance(loss, RTFMLoss)
    assert (loss.alpha, loss.margin, loss.lambda_sparsity, loss.lambda_smooth) == (1e-4, 100, 8e-3, 8e-4)
    assert loss.smooth_across_videos is True
    assert OmegaConf.to_container(cfg.method.inputs) == {
        "segments": 32, "normalise": False, "bins": "floor", "crops": "axis"}
    assert (cfg.optimizer.lr, cfg.optimizer.weight_decay, cfg.data.batch_size) == (1e-3, 5e-3, 32)
    assert cfg.trainer.max_steps == 15000 and cfg.trainer.max_epochs * 25 >= 15000
    assert cfg.eval.protocol == "snippets"
