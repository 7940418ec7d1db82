"""The Sultani scoring network (vad.models.learner)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from vad.models.learner import Learner


@pytest.fixture
def model():
    torch.manual_seed(0)
    return Learner(64, dropout=0.6)


def test_output_shape_and_range(model):
    model.eval()
    x = torch.randn(5, 32, 64) * 10
    out = model(x)
    assert out.shape == (5, 32)
    assert torch.all(out > 0) and torch.all(out < 1)


def test_layer_structure(model):
    layers = list(model.net)
    types = [type(m) for m in layers]
    assert types == [nn.Linear, nn.ReLU, nn.Dropout, nn.Linear, nn.Dropout, nn.Linear, nn.Sigmoid]
    assert (layers[0].in_features, layers[0].out_features) == (64, 512)
    assert (layers[3].in_features, layers[3].out_features) == (512, 32)
    assert (layers[5].in_features, layers[5].out_features) == (32, 1)
    # no ReLU after the second Linear (the seed's forward skips it)
    assert not isinstance(layers[4], nn.ReLU)
    assert sum(isinstance(m, nn.ReLU) for m in model.modules()) == 1


def test_no_relu_after_second_linear_numerically(model):
    # with the hidden layer captured, negative values must reach the third Linear
    model.eval()
    seen = {}
    model.net[5].register_forward_hook(lambda m, inp, out: seen.setdefault("x", inp[0].detach()))
    model(torch.randn(8, 32, 64))
    assert (seen["x"] < 0).any()


@pytest.mark.parametrize("p", [0.0, 0.3, 0.6])
def test_dropout_probability(p):
    m = Learner(16, dropout=p)
    assert [d.p for d in m.net if isinstance(d, nn.Dropout)] == [p, p]


def test_dropout_active_in_train_mode():
    torch.manual_seed(1)
    m = Learner(32, dropout=0.6).train()
    seen = []
    m.net[2].register_forward_hook(lambda mod, inp, out: seen.append((inp[0].detach(), out.detach())))
    m(torch.rand(64, 32, 32) + 0.1)
    inp, out = seen[0]
    live = inp != 0
    dropped = (out[live] == 0).float().mean().item()
    assert dropped == pytest.approx(0.6, abs=0.02)
    # survivors scaled by 1 / (1 - p)
    kept = out[live] != 0
    torch.testing.assert_close(out[live][kept], inp[live][kept] / 0.4)


def test_eval_deterministic_train_not(model):
    x = torch.randn(3, 32, 64)
    model.eval()
    torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)
    model.train()
    assert not torch.equal(model(x), model(x))


def test_xavier_normal_init():
    torch.manual_seed(3)
    m = Learner(2048)
    for layer, fan_in, fan_out in ((m.net[0], 2048, 512), (m.net[3], 512, 32)):
        w = layer.weight.detach()
        expected = math.sqrt(2.0 / (fan_in + fan_out))
        assert w.std().item() == pytest.approx(expected, rel=0.1)
        assert abs(w.mean().item()) < 0.1 * expected
    # default Linear init (kaiming uniform) would give std 1/sqrt(3 * fan_in): clearly different
    assert abs(math.sqrt(2.0 / 2560) - 1 / math.sqrt(3 * 2048)) / math.sqrt(2.0 / 2560) > 0.1


def test_input_dim_attribute():
    assert Learner(2048).input_dim == 2048
