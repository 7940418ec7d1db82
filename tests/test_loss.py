"""MILRankingLoss against the seed notebook's loop version and hand-computed values."""

from __future__ import annotations

import pytest
import torch

from vad.losses.mil_ranking import MILRankingLoss


def loop_loss(anomalous, normal, margin=1.0, l_sparse=8e-5, l_smooth=8e-5, pairing="elementwise"):
    """Explicit-loop reference (seed notebook's MIL loss)."""
    def regularisers(a):
        sparse = 0.0
        smooth = 0.0
        for t in range(a.shape[0]):
            sparse = sparse + a[t]
        for t in range(a.shape[0] - 1):
            smooth = smooth + (a[t] - a[t + 1]) ** 2
        return l_sparse * sparse + l_smooth * smooth

    def hinge(a, n):
        return torch.relu(margin - torch.max(a) + torch.max(n))

    total = 0.0
    if pairing == "elementwise":
        for i in range(anomalous.shape[0]):
            total = total + hinge(anomalous[i], normal[i]) + regularisers(anomalous[i])
        return total / anomalous.shape[0]
    ranking = 0.0
    for i in range(anomalous.shape[0]):
        for j in range(normal.shape[0]):
            ranking = ranking + hinge(anomalous[i], normal[j])
    ranking = ranking / (anomalous.shape[0] * normal.shape[0])
    reg = 0.0
    for i in range(anomalous.shape[0]):
        reg = reg + regularisers(anomalous[i])
    return ranking + reg / anomalous.shape[0]


A = [[0.2, 0.9, 0.4], [0.1, 0.3, 0.2]]
N = [[0.3, 0.5, 0.1], [0.6, 0.4, 0.8]]
N3 = N + [[0.0, 0.05, 0.1]]


def t(x):
    return torch.tensor(x, dtype=torch.float64)


def test_elementwise_hand_value():
    # hinges: 1 - 0.9 + 0.5 = 0.6 ; 1 - 0.3 + 0.8 = 1.5 -> mean 1.05
    # sparsity: sums 1.5 and 0.6 -> mean 1.05 * 0.1 = 0.105
    # smooth: 0.49 + 0.25 = 0.74 ; 0.04 + 0.01 = 0.05 -> mean 0.395 * 0.2 = 0.079
    # total 1.05 + 0.105 + 0.079 = 1.234
    loss = MILRankingLoss(margin=1.0, lambda_sparsity=0.1, lambda_smooth=0.2)
    assert loss(t(A), t(N)).item() == pytest.approx(1.234, abs=1e-12)


def test_all_pairing_hand_value():
    # normal maxima 0.5, 0.8, 0.1; anomalous maxima 0.9, 0.3
    # hinges: a0: 0.6, 0.9, 0.2 ; a1: 1.2, 1.5, 0.8 -> 5.2 / 6
    # regularisers as above (anomalous bags only): 0.105 + 0.079
    loss = MILRankingLoss(margin=1.0, lambda_sparsity=0.1, lambda_smooth=0.2, pairing="all")
    assert loss(t(A), t(N3)).item() == pytest.approx(5.2 / 6 + 0.184, abs=1e-12)


def test_margin_option_hand_value():
    # margin 0.5, no regularisers: hinges relu(0.5 - 0.9 + 0.5) = 0.1 ; relu(0.5 - 0.3 + 0.8) = 1.0
    loss = MILRankingLoss(margin=0.5, lambda_sparsity=0.0, lambda_smooth=0.0)
    assert loss(t(A), t(N)).item() == pytest.approx(0.55, abs=1e-12)


def test_zero_loss_when_well_separated():
    a = t([[0.1, 0.95, 0.2], [0.99, 0.0, 0.0]])
    n = t([[-0.1, -0.1, -0.2], [-0.3, -0.5, -0.3]])  # every anomalous max - normal max > 1
    loss = MILRankingLoss(margin=1.0, lambda_sparsity=0.0, lambda_smooth=0.0)
    assert loss(a, n).item() == 0.0
    assert MILRankingLoss(margin=1.0, lambda_sparsity=0.0, lambda_smooth=0.0, pairing="all")(a, n).item() == 0.0


@pytest.mark.parametrize("pairing", ["elementwise", "all"])
@pytest.mark.parametrize("margin", [1.0, 0.3])
def test_matches_loop_random(pairing, margin):
    g = torch.Generator().manual_seed(0)
    a = torch.rand(4, 32, generator=g, dtype=torch.float64)
    n_bags = 4 if pairing == "elementwise" else 6
    n = torch.rand(n_bags, 32, generator=g, dtype=torch.float64)
    loss = MILRankingLoss(margin=margin, lambda_sparsity=0.01, lambda_smooth=0.03, pairing=pairing)
    ref = loop_loss(a, n, margin, 0.01, 0.03, pairing)
    assert loss(a, n).item() == pytest.approx(ref.item(), abs=1e-12)


def test_default_lambdas_match_seed():
    g = torch.Generator().manual_seed(1)
    a = torch.rand(3, 32, generator=g, dtype=torch.float64)
    n = torch.rand(3, 32, generator=g, dtype=torch.float64)
    assert MILRankingLoss()(a, n).item() == pytest.approx(loop_loss(a, n).item(), abs=1e-12)


@pytest.mark.parametrize("pairing", ["elementwise", "all"])
def test_gradients_match_loop_autograd(pairing):
    g = torch.Generator().manual_seed(2)
    a0 = torch.rand(3, 8, generator=g, dtype=torch.float64)
    n0 = torch.rand(3 if pairing == "elementwise" else 5, 8, generator=g, dtype=torch.float64) * 0.5
    a1, n1 = a0.clone().requires_grad_(), n0.clone().requires_grad_()
    a2, n2 = a0.clone().requires_grad_(), n0.clone().requires_grad_()
    MILRankingLoss(margin=1.0, lambda_sparsity=0.05, lambda_smooth=0.07, pairing=pairing)(a1, n1).backward()
    loop_loss(a2, n2, 1.0, 0.05, 0.07, pairing).backward()
    torch.testing.assert_close(a1.grad, a2.grad, rtol=0, atol=1e-12)
    torch.testing.assert_close(n1.grad, n2.grad, rtol=0, atol=1e-12)
    assert a1.grad.abs().sum() > 0 and n1.grad.abs().sum() > 0


def test_hand_gradient_only_max_elements():
    # lambdas 0, B = 2: d/d max(a_i) = -1/2, d/d max(n_i) = +1/2 when the hinge is active,
    # every other element gets 0. Bag 0 active (1 - 0.9 + 0.5 = 0.6); bag 1 inactive (1 - 1.5 + 0.4 = -0.1 -> 0).
    a = t([[0.2, 0.9, 0.4], [0.1, 0.3, 1.5]]).requires_grad_()
    n = t([[0.3, 0.5, 0.1], [0.0, 0.4, 0.2]]).requires_grad_()
    MILRankingLoss(margin=1.0, lambda_sparsity=0.0, lambda_smooth=0.0)(a, n).backward()
    torch.testing.assert_close(a.grad, t([[0.0, -0.5, 0.0], [0.0, 0.0, 0.0]]), rtol=0, atol=0)
    torch.testing.assert_close(n.grad, t([[0.0, 0.5, 0.0], [0.0, 0.0, 0.0]]), rtol=0, atol=0)


def test_hand_gradient_regularisers():
    # margin 0 and a >> n: hinge inactive; only sparsity (l_s per element) and smoothness remain.
    # a = [1, 3, 2], l_s = 0.1, l_m = 1: d smooth/d a = [2(a0-a1), -2(a0-a1)+2(a1-a2), -2(a1-a2)]
    #                                        = [-4, 4 + 2, -2] = [-4, 6, -2]
    a = t([[1.0, 3.0, 2.0]]).requires_grad_()
    n = t([[0.0, 0.0, 0.0]]).requires_grad_()
    MILRankingLoss(margin=0.0, lambda_sparsity=0.1, lambda_smooth=1.0)(a, n).backward()
    torch.testing.assert_close(a.grad, t([[-3.9, 6.1, -1.9]]), rtol=0, atol=1e-12)
    assert n.grad.abs().sum().item() == 0.0


def test_unknown_pairing_raises():
    with pytest.raises(ValueError, match="pairing"):
        MILRankingLoss(pairing="random")


def test_elementwise_unequal_batches_raises():
    with pytest.raises(ValueError):
        MILRankingLoss()(torch.rand(3, 32), torch.rand(2, 32))


def test_all_pairing_accepts_unequal_batches():
    out = MILRankingLoss(pairing="all")(torch.rand(3, 32), torch.rand(2, 32))
    assert out.shape == () and torch.isfinite(out)
