"""BN-WVAD (vad.models.bnwvad, vad.losses.bnwvad, conf/method/bnwvad.yaml) against hand
computations and the official code's layer sizes (cool-xuan/BN-WVAD)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf

from tests.conftest import CONF
from vad.losses.bnwvad import BNWVADLoss
from vad.models.bnwvad import BNWVADNetwork
from vad.models.translayer import distance_kernel

D = 1024  # the official input: I3D RGB, 1024-d


@pytest.fixture(scope="module")
def net() -> BNWVADNetwork:
    torch.manual_seed(0)
    return BNWVADNetwork(D)


def labels(half: int) -> torch.Tensor:
    return torch.cat([torch.zeros(half), torch.ones(half)])


def test_parameter_count_is_the_official_architecture(net):
    embedding = D * 512 * 3 + 512                  # Conv1d(1024, 512, 3)
    attention = 512 * 4 * 512 + (2 * 512 * 512 + 512)  # to_qkv (no bias), to_out Linear(1024, 512)
    feed_forward = 2 * (512 * 512 + 512)           # Linear(512, 512) twice
    layer_norms = 2 * (2 * 512)
    transformer = 2 * (attention + feed_forward + layer_norms)
    head = (512 * 32 + 32) + 2 * 32 + (32 * 16 + 16) + 2 * 16 + (16 + 1)  # conv1, bn1, conv2, bn2, conv3
    assert embedding + transformer + head == 5_791_905
    assert sum(p.numel() for p in net.parameters()) == 5_791_905


def test_state_dict_uses_the_official_names(net):
    keys = set(net.state_dict())
    for key in ["embedding.conv_1.0.weight", "selfatt.layers.0.0.norm.weight",
                "selfatt.layers.0.0.fn.to_qkv.weight", "selfatt.layers.1.0.fn.to_out.0.bias",
                "selfatt.layers.1.1.fn.net.3.weight", "normal_head.conv1.weight",
                "normal_head.bn2.running_var", "normal_head.conv3.bias"]:
        assert key in keys
    assert "selfatt.layers.0.0.fn.to_qkv.bias" not in keys


@pytest.mark.parametrize("t", [1, 7, 500])
def test_eval_scores_shape_and_range(net, t):
    net.eval()
    with torch.no_grad():
        scores = net(torch.randn(2, t, D))
    assert scores.shape == (2, t)
    assert bool(((scores >= 0) & (scores <= 1)).all())


def test_eval_score_is_probability_times_summed_mahalanobis_distance():
    torch.manual_seed(1)
    net = BNWVADNetwork(16, dim=64, heads=2, dim_head=8, mlp_dim=32).eval()
    mean1, var1 = torch.rand(4), torch.rand(4) + 0.5  # bn1: 64 // 16 = 4 channels
    mean2, var2 = torch.rand(2), torch.rand(2) + 0.5  # bn2: 64 // 32 = 2 channels
    for bn, m, v in [(net.normal_head.bn1, mean1, var1), (net.normal_head.bn2, mean2, var2)]:
        bn.running_mean.copy_(m)
        bn.running_var.copy_(v)
    seen = {}
    net.normal_head.conv1.register_forward_hook(lambda m, i, o: seen.__setitem__("f1", o.detach().numpy()))
    net.normal_head.conv2.register_forward_hook(lambda m, i, o: seen.__setitem__("f2", o.detach().numpy()))
    net.normal_head.conv3.register_forward_hook(lambda m, i, o: seen.__setitem__("logit", o.detach().numpy()))
    x = torch.randn(3, 9, 16)
    with torch.no_grad():
        bounded = net(x).numpy()
        net.bounded = False
        raw = net(x).numpy()

    def distance(f, m, v):  # (B, C, T)
        return np.sqrt((((f - m.numpy()[None, :, None]) ** 2) / v.numpy()[None, :, None]).sum(axis=1))

    prob = 1 / (1 + np.exp(-seen["logit"][:, 0]))
    expected = prob * (distance(seen["f1"], mean1, var1) + distance(seen["f2"], mean2, var2))
    np.testing.assert_allclose(raw, expected, rtol=1e-5)
    np.testing.assert_allclose(bounded, expected / (1 + expected), rtol=1e-5)
    assert raw.max() > 1  # the official product is not a probability


def test_eval_scores_do_not_depend_on_the_batch():
    net = BNWVADNetwork(16, dim=64, heads=2, dim_head=8, mlp_dim=32).eval()
    x = torch.randn(3, 20, 16)
    with torch.no_grad():
        together = net(x)
        alone = net(x[1:2])
    np.testing.assert_allclose(together[1:2].numpy(), alone.numpy(), rtol=1e-5, atol=1e-6)


def test_temporal_prior_by_hand():
    e = math.e
    raw = np.array([[1, math.exp(-1 / e), math.exp(-2 / e)],
                    [math.exp(-1 / e), 1, math.exp(-1 / e)],
                    [math.exp(-2 / e), math.exp(-1 / e), 1]])
    # the official divides entry (i, j) by the sum of row j (a broadcast over the last axis)
    expected = raw / raw.sum(axis=1)[None, :]
    np.testing.assert_allclose(distance_kernel(3, dtype=torch.float64).numpy(), expected, rtol=1e-12)


def test_candidate_selection_by_hand():
    net = BNWVADNetwork(8, dim=32, heads=1, dim_head=8, mlp_dim=8)  # ratios 0.2 and 0.4
    b, t = 4, 5
    feats = torch.zeros(b, 2, t)  # feature (video, time) identifies the snippet
    feats[:, 0] = torch.arange(b, dtype=torch.float32)[:, None]
    feats[:, 1] = torch.arange(t, dtype=torch.float32)[None, :]
    distance = torch.tensor([[1, 5, 3, 2, 4],            # normal 0
                             [5, 4, 3, 2, 1],            # normal 1
                             [9, 8, 7, 6, 0.5],          # anomalous 2
                             [0.1, 0.2, 0.3, 0.4, 1.0]])  # anomalous 3
    normal, anomalous = net.select(feats, distance)
    # per video int(5 * 0.2) = 1: (2, 0), (3, 4); per batch int(2 * 5 * 0.4) = 4: (2, 0..3)
    assert anomalous.tolist() == [[2, 0], [2, 1], [2, 2], [2, 3], [3, 4]]
    # k = 5 // 2 + 1 = 3 per normal video, rank by rank, cut to 5
    assert normal.tolist() == [[0, 1], [1, 0], [0, 4], [1, 1], [0, 2]]


def test_too_few_segments_to_select_anything_is_a_clear_error():
    net = BNWVADNetwork(8, dim=32, heads=1, dim_head=8, mlp_dim=8).train()
    with pytest.raises(ValueError, match=r"selects no anomalous snippet with T=1 segments.*method.inputs.segments"):
        net(torch.randn(2, 1, 8))


def test_odd_batch_and_crop_axis_are_rejected():
    net = BNWVADNetwork(8, dim=32, heads=1, dim_head=8, mlp_dim=8).train()
    with pytest.raises(ValueError, match="equal halves, found 3 rows"):
        net(torch.randn(3, 10, 8))
    with pytest.raises(ValueError, match=r"takes \(B, T, D\) features, found shape \(2, 10, 4, 8\)"):
        net(torch.randn(2, 10, 4, 8))


def test_training_outputs_and_running_statistics(net):
    net.train()
    head = net.normal_head
    head.bn1.reset_running_stats()
    seen = {}
    hook = head.conv1.register_forward_hook(lambda m, i, o: seen.__setitem__("f1", o.detach()))
    half, t = 3, 32
    out = net(torch.randn(2 * half, t, D))
    hook.remove()
    assert out["scores"].shape == (2 * half, t)
    # anchors: the running mean after this batch's update, 0.9 * 0 + 0.1 * batch mean
    np.testing.assert_allclose(out["anchors"][0].numpy(), 0.1 * seen["f1"].numpy().mean(axis=(0, 2)),
                               rtol=1e-5, atol=1e-7)
    assert torch.equal(out["anchors"][0], head.bn1.running_mean)
    assert [a.shape for a in out["anchors"]] == [(32,), (16,)]
    count = [a.shape[0] for a in out["anomalous"]]
    assert all(int(half * t * 0.4) <= k <= int(half * t * 0.4) + half * int(t * 0.2) for k in count)
    for nor, abn, c in zip(out["normals"], out["anomalous"], (32, 16)):
        assert nor.shape == abn.shape and nor.shape[1] == c and nor.requires_grad


def test_loss_terms_by_hand():
    scores = torch.tensor([[0.3, 0.4], [0.6, 0.8], [0.9, 0.9], [0.1, 0.2]], requires_grad=True)
    normals = [torch.tensor([[1.0, 0.0], [0.0, 2.0]], requires_grad=True), torch.tensor([[1.5]], requires_grad=True)]
    anomalous = [torch.tensor([[3.0, 0.0], [0.0, 1.0]], requires_grad=True), torch.tensor([[1.25]], requires_grad=True)]
    output = {"scores": scores, "anchors": [torch.zeros(2), torch.ones(1)],
              "variances": [torch.tensor([1.0, 4.0]), torch.tensor([0.25])],
              "normals": normals, "anomalous": anomalous}
    total, terms = BNWVADLoss()(output, labels(2))
    # normal: mean(||(0.3, 0.4)||, ||(0.6, 0.8)||) = mean(0.5, 1.0)
    assert terms["normal"].item() == pytest.approx(0.75)
    # bn1: d = sqrt(x1^2 + x2^2 / 4): pairs (1 vs 3) -> relu(1 - 3 + 1) = 0, (1 vs 0.5) -> 1.5
    assert terms["triplet_bn1"].item() == pytest.approx(0.75)
    # bn2: d = |x - 1| / 0.5: (1 vs 0.5) -> relu(1 - 0.5 + 1) = 1.5
    assert terms["triplet_bn2"].item() == pytest.approx(1.5)
    assert terms["mpp"].item() == pytest.approx(5 * 0.75 + 20 * 1.5)
    assert total.item() == pytest.approx(0.75 + 33.75)
    g_scores, g_nor, g_abn = torch.autograd.grad(total, [scores, normals[0], anomalous[0]])
    # d||s|| / ds = s / ||s||, over the 2 normal videos; the anomalous rows get nothing
    np.testing.assert_allclose(g_scores.numpy(), [[0.3, 0.4], [0.3, 0.4], [0, 0], [0, 0]], rtol=1e-6)
    # active pair 2 of bn1, weight 5 / 2 pairs: dd/dx = (x - mu) / (var * d) = (0, 2 / 4) and (0, 1 / (4 * 0.5))
    np.testing.assert_allclose(g_nor.numpy(), [[0, 0], [0, 1.25]], rtol=1e-6)
    np.testing.assert_allclose(g_abn.numpy(), [[0, 0], [0, -1.25]], rtol=1e-6)


def test_loss_weights_and_margin_change_what_they_say():
    output = {"scores": torch.tensor([[0.3, 0.4], [0.9, 0.9]]), "anchors": [torch.zeros(1)],
              "variances": [torch.ones(1)], "normals": [torch.tensor([[2.0]])], "anomalous": [torch.tensor([[1.0]])]}
    total, terms = BNWVADLoss(w_normal=2.0, w_mpp=0.5, triplet_weights=[3.0], margin=0.25)(output, labels(1))
    assert terms["triplet_bn1"].item() == pytest.approx(2 - 1 + 0.25)
    assert total.item() == pytest.approx(2 * 0.5 + 0.5 * 3 * 1.25)
    with pytest.raises(ValueError, match="triplet_weights has 2 weights for 1 BatchNorm layers"):
        BNWVADLoss()(output, labels(1))


def test_loss_gradient_matches_central_differences():
    # (torch.autograd.gradcheck would import torch.testing: seconds)
    torch.manual_seed(2)
    inputs = [torch.rand(4, 6, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64),
              torch.randn(5, 3, dtype=torch.float64)]
    mean, var = torch.randn(3, dtype=torch.float64), torch.rand(3, dtype=torch.float64) + 0.5
    loss = BNWVADLoss(triplet_weights=[5.0], margin=3.0)

    def f(s, n, a):
        out = {"scores": s, "anchors": [mean], "variances": [var], "normals": [n], "anomalous": [a]}
        return loss(out, labels(2).double())[0]

    leaves = [x.clone().requires_grad_() for x in inputs]
    grads = torch.autograd.grad(f(*leaves), leaves)
    eps = 1e-6
    for which, (x, grad) in enumerate(zip(inputs, grads)):
        numeric = np.zeros(x.numel())
        for i in range(x.numel()):
            step = torch.zeros(x.numel(), dtype=torch.float64)
            step[i] = eps
            plus, minus = list(inputs), list(inputs)
            plus[which] = x + step.view_as(x)
            minus[which] = x - step.view_as(x)
            numeric[i] = (f(*plus) - f(*minus)).item() / (2 * eps)
        np.testing.assert_allclose(grad.numpy().ravel(), numeric, rtol=1e-5, atol=1e-8)
    assert grads[0][2:].abs().sum() == 0 and grads[1].abs().sum() > 0


def test_loss_rejects_batches_not_normal_first():
    output = {"scores": torch.rand(4, 3), "anchors": [], "variances": [], "normals": [], "anomalous": []}
    with pytest.raises(ValueError, match=r"cat\(\[normal, anomalous\]\).*found labels \[1.0, 1.0, 0.0, 0.0\]"):
        BNWVADLoss(triplet_weights=[])(output, labels(2).flip(0))


def test_swapping_the_halves_makes_the_other_videos_the_normal_ones():
    torch.manual_seed(3)
    net = BNWVADNetwork(16, dim=64, heads=2, dim_head=8, mlp_dim=32).train()
    x = torch.randn(4, 20, 16)
    x[2:, 5:9] += 4.0  # the anomalous half has outliers
    out = net(x)
    swapped = net(torch.cat([x[2:], x[:2]]))
    loss = BNWVADLoss()
    _, terms = loss(out, labels(2))
    _, swapped_terms = loss(swapped, labels(2))
    # training BatchNorm uses the batch's statistics: each video keeps its scores, moved to the other half
    np.testing.assert_allclose(swapped["scores"].detach().numpy(),
                               torch.cat([out["scores"][2:], out["scores"][:2]]).detach().numpy(), rtol=1e-5)
    second_half = np.linalg.norm(out["scores"][2:].detach().numpy(), axis=1).mean()
    assert swapped_terms["normal"].item() == pytest.approx(second_half, rel=1e-5)
    assert terms["normal"].item() != pytest.approx(second_half, rel=1e-3)


def test_config_builds_the_official_method():
    cfg = OmegaConf.load(CONF / "method" / "bnwvad.yaml")
    assert get_class(cfg.method.network._target_) is BNWVADNetwork
    assert get_class(cfg.method.loss._target_) is BNWVADLoss
    network = instantiate(cfg.method.network, input_dim=D)
    assert sum(p.numel() for p in network.parameters()) == 5_791_905
    assert (network.ratio_sample, network.ratio_batch, network.bounded) == (0.2, 0.4, True)
    loss = instantiate(cfg.method.loss)
    assert (loss.w_normal, loss.w_mpp, loss.triplet_weights, loss.margin) == (1.0, 1.0, (5.0, 20.0), 1.0)
    assert cfg.method.causal is False
    assert OmegaConf.to_container(cfg.method.inputs) == {"segments": 200, "normalise": False,
                                                         "bins": "floor", "crops": "bags"}
    assert (cfg.optimizer.lr, cfg.optimizer.weight_decay, cfg.data.batch_size) == (1e-4, 5e-5, 64)
    assert (cfg.trainer.max_steps, cfg.trainer.gradient_clip_val) == (1000, 1.0)
    assert cfg.eval.protocol == "snippets"
