"""UR-DMU (vad.models.urdmu, vad.losses.urdmu, conf/method/urdmu.yaml) against hand computations
and the official architecture's sizes (henrryzh1/UR-DMU model.py, memory.py, translayer.py, train.py)."""

from __future__ import annotations

import math
from pathlib import Path

import hydra
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from vad.losses.urdmu import URDMULoss
from vad.models.translayer import distance_kernel
from vad.models.urdmu import MemoryUnit, URDMUNetwork

CONFIG = Path(__file__).resolve().parents[1] / "conf" / "method" / "urdmu.yaml"
OUTPUT_SHAPES = {"scores": "B T", "A_att": "h T", "N_att": "h T", "A_Natt": "h T", "N_Aatt": "h T",
                 "anchor": "h C", "positive": "h C", "negative": "h C", "mu": "h T C",
                 "logvar": "h T C", "anchor_aug": "h C", "negative_aug": "h C"}


def _assert_close(a: torch.Tensor, b: torch.Tensor) -> None:
    # not torch.testing.assert_close: its first call imports for ~3 s
    assert a.shape == b.shape and torch.allclose(a, b, rtol=1e-5, atol=1e-6), (a, b)


@pytest.fixture(scope="module")
def official_net() -> URDMUNetwork:
    torch.manual_seed(0)
    return URDMUNetwork(1024)


@pytest.fixture(scope="module")
def small_net() -> URDMUNetwork:
    """A small deterministic (dropout 0) network for the training-mode checks."""
    torch.manual_seed(0)
    return URDMUNetwork(16, hidden_dim=8, heads=2, dim_head=4, mlp_dim=8, dropout=0.0,
                       abnormal_slots=20, normal_slots=20, classifier_dim=4)


# ---------------------------------------------------------------- network


def test_parameter_count_equals_official(official_net):
    d, h = 1024, 512
    embedding = d * h * 3 + h                       # Conv1d(1024, 512, k=3) + bias
    attention = h * 4 * (4 * 128) + (2 * 4 * 128) * h + h  # to_qkv (no bias), to_out Linear(1024, 512)
    feed_forward = (h * h + h) + (h * h + h)        # Linear(512, 512) twice
    layer = 2 * (2 * h) + attention + feed_forward  # two LayerNorms (weight + bias)
    memories = 60 * h + 60 * h                      # Amemory, Nmemory
    encoders = 2 * (h * h + h)                      # encoder_mu, encoder_var
    classifier = (2 * h * 128 + 128) + (128 + 1)    # Linear(1024, 128), Linear(128, 1)
    expected = embedding + 2 * layer + memories + encoders + classifier
    assert expected == 6_492_929
    assert sum(p.numel() for p in official_net.parameters()) == expected


def test_state_dict_keys_are_the_official_ones(official_net):
    layer_keys = ["0.norm.weight", "0.norm.bias", "0.fn.to_qkv.weight", "0.fn.to_out.0.weight",
                  "0.fn.to_out.0.bias", "1.norm.weight", "1.norm.bias", "1.fn.net.0.weight",
                  "1.fn.net.0.bias", "1.fn.net.3.weight", "1.fn.net.3.bias"]
    official = {"embedding.conv_1.0.weight", "embedding.conv_1.0.bias", "cls_head.mlp.0.weight",
                "cls_head.mlp.0.bias", "cls_head.mlp.2.weight", "cls_head.mlp.2.bias",
                "Amemory.memory_block", "Nmemory.memory_block", "encoder_mu.0.weight",
                "encoder_mu.0.bias", "encoder_var.0.weight", "encoder_var.0.bias",
                *(f"selfatt.layers.{i}.{key}" for i in range(2) for key in layer_keys)}
    assert set(official_net.state_dict()) == official


@pytest.mark.parametrize("batch,length", [(1, 1), (2, 7), (1, 32), (2, 200), (1, 500)])
def test_eval_scores_shape_and_range(official_net, batch, length):
    official_net.eval()
    with torch.no_grad():
        scores = official_net(torch.randn(batch, length, 1024))
    assert isinstance(scores, torch.Tensor) and scores.shape == (batch, length)
    assert bool(((scores >= 0) & (scores <= 1)).all())


def test_eval_is_deterministic_and_per_video(official_net):
    official_net.eval()
    x = torch.randn(2, 50, 1024)
    with torch.no_grad():
        both = official_net(x)
        alone = official_net(x[1:])
    _assert_close(both[1:], alone)


def test_training_outputs_shapes(small_net):
    small_net.train()
    out = small_net(torch.randn(6, 40, 16))
    sizes = {"B": 6, "h": 3, "T": 40, "C": 8}
    assert set(out) == set(OUTPUT_SHAPES)
    for key, dims in OUTPUT_SHAPES.items():
        assert out[key].shape == tuple(sizes[d] for d in dims.split()), key
    assert bool(((out["scores"] >= 0) & (out["scores"] <= 1)).all())


def test_training_single_snippet(small_net):
    small_net.train()
    out = small_net(torch.randn(2, 1, 16))
    assert out["scores"].shape == (2, 1) and out["anchor"].shape == (1, 8)


def test_training_gradients_reach_every_parameter(small_net):
    small_net.train()
    small_net.zero_grad()
    out = small_net(torch.randn(4, 20, 16))
    total, _ = URDMULoss()(out, torch.tensor([0.0, 0.0, 1.0, 1.0]))
    total.backward()
    for name, p in small_net.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), name


def test_training_sampling_uses_the_global_rng(small_net):
    small_net.train()
    x = torch.randn(4, 20, 16)
    torch.manual_seed(3)
    first = small_net(x)["scores"]
    torch.manual_seed(3)
    again = small_net(x)["scores"]
    other = small_net(x)["scores"]
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)  # mu + eps * std draws a new eps


def test_first_half_takes_the_normal_roles(small_net):
    """cat([normal, anomalous]): the first half goes to N_att / A_Natt, the second to N_Aatt / A_att;
    swapping the halves swaps those outputs, and the normal ones ignore the anomalous half."""
    small_net.train()
    normal, anomalous = torch.randn(2, 30, 16), torch.randn(2, 30, 16)
    out = small_net(torch.cat([normal, anomalous]))
    swapped = small_net(torch.cat([anomalous, normal]))
    for key, other in [("N_att", "N_Aatt"), ("A_Natt", "A_att")]:
        _assert_close(out[key], swapped[other])
        _assert_close(out[other], swapped[key])
    changed = small_net(torch.cat([normal, anomalous + 5.0]))
    _assert_close(out["N_att"], changed["N_att"])
    _assert_close(out["A_Natt"], changed["A_Natt"])
    assert not torch.allclose(out["A_att"], changed["A_att"])


def test_odd_training_batch_is_refused(small_net):
    small_net.train()
    with pytest.raises(ValueError, match="equal halves, found an odd batch of 3 videos"):
        small_net(torch.randn(3, 10, 16))


def test_crop_axis_input_is_refused(small_net):
    with pytest.raises(ValueError, match=r"expects \(B, T, D\) features, found shape \(2, 10, 5, 16\)"):
        small_net(torch.randn(2, 10, 5, 16))


def test_distance_kernel_hand_values():
    a, b = math.exp(-1 / math.e), math.exp(-2 / math.e)
    raw = np.array([[1, a, b], [a, 1, a], [b, a, 1]])
    row_sums = np.array([1 + a + b, 1 + 2 * a, 1 + a + b])
    expected = raw / row_sums[None, :]  # entry (i, j) / sum of row j, as translayer.py broadcasts
    kernel = distance_kernel(3, dtype=torch.float64).numpy()
    np.testing.assert_allclose(kernel, expected, rtol=1e-12)
    np.testing.assert_allclose(kernel.sum(0), np.ones(3), rtol=1e-12)  # columns sum to 1
    assert kernel[0].sum() == pytest.approx((1 + b) / row_sums[0] + a / row_sums[1], rel=1e-12)
    assert kernel[0].sum() < 1.0 < kernel[1].sum()  # rows do not sum to 1


def test_memory_unit_hand_values():
    torch.manual_seed(0)
    unit = MemoryUnit(17, 4).double()  # 17 slots: top 17 // 16 + 1 = 2 attentions
    memory = unit.memory_block.detach().numpy()
    assert np.abs(memory).max() <= 0.5  # uniform in +-1/sqrt(4)
    x = np.random.default_rng(0).normal(size=(2, 3, 4))
    att, readout = unit(torch.from_numpy(x))
    attention = 1 / (1 + np.exp(-(x @ memory.T) / 2.0))
    np.testing.assert_allclose(att.detach().numpy(), np.sort(attention, -1)[..., -2:].mean(-1), rtol=1e-12)
    np.testing.assert_allclose(readout.detach().numpy(), attention @ memory, rtol=1e-12)


# ---------------------------------------------------------------- loss


def _output(rng, half=2, length=20, channels=6) -> dict[str, torch.Tensor]:
    """A float64 network output with distinct values (no top-k ties)."""
    def unit(*shape):
        return rng.uniform(0.05, 0.95, size=shape)
    arrays = {"scores": unit(2 * half, length), "A_att": unit(half, length), "N_att": unit(half, length),
              "A_Natt": unit(half, length), "N_Aatt": unit(half, length),
              "anchor": rng.normal(size=(half, channels)), "positive": rng.normal(size=(half, channels)),
              "negative": rng.normal(size=(half, channels)), "mu": rng.normal(size=(half, length, channels)),
              "logvar": 0.3 * rng.normal(size=(half, length, channels)),
              "anchor_aug": rng.normal(size=(half, channels)), "negative_aug": rng.normal(size=(half, channels))}
    return {key: torch.from_numpy(value) for key, value in arrays.items()}


def _labels(half=2) -> torch.Tensor:
    return torch.tensor([0.0] * half + [1.0] * half, dtype=torch.float64)


def _hand_terms(o: dict[str, np.ndarray], k: int) -> dict[str, float]:
    def top(x):
        return np.sort(x, axis=-1)[:, -k:].mean(-1)

    def bce(p, y):
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))

    def unit(x):
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    half = o["A_att"].shape[0]
    y = np.array([0.0] * half + [1.0] * half)
    a, p, n = unit(o["anchor"]), unit(o["positive"]), unit(o["negative"])
    d_ap = np.linalg.norm(a - p + 1e-6, axis=-1)  # torch's pairwise_distance adds eps = 1e-6
    d_an = np.linalg.norm(a - n + 1e-6, axis=-1)
    mu, lv = o["mu"], o["logvar"]
    return {"bce": bce(top(o["scores"]), y),
            "memory_A": bce(top(o["A_att"]), np.ones(half)),
            "memory_N_A": bce(top(1 - o["N_Aatt"]), np.ones(half)),
            "memory_N": bce(o["N_att"], np.ones_like(o["N_att"])),
            "memory_A_N": bce(o["A_Natt"], np.zeros_like(o["A_Natt"])),
            "triplet": float(np.mean(np.maximum(1.0 + d_ap - d_an, 0))),
            "kl": float(np.mean(-0.5 * np.sum(1 + lv - mu ** 2 - np.exp(lv), axis=1))),
            "distance": float(np.mean(np.maximum(100 - np.linalg.norm(o["negative_aug"], axis=-1)
                                                 + np.linalg.norm(o["anchor_aug"], axis=-1), 0)))}


def test_loss_terms_and_total_match_hand_computation():
    output = _output(np.random.default_rng(1))
    total, terms = URDMULoss()(output, _labels())
    hand = _hand_terms({key: value.numpy() for key, value in output.items()}, k=20 // 16 + 1)
    assert set(terms) == set(hand)
    for name, value in hand.items():
        assert terms[name].item() == pytest.approx(value, rel=1e-10), name
    assert hand["triplet"] > 0  # the hinge is active somewhere: the case tests it
    expected = (hand["bce"] + 0.1 * (hand["memory_A"] + hand["memory_N_A"] + hand["memory_N"]
                                     + hand["memory_A_N"])
                + 0.1 * hand["triplet"] + 1e-3 * hand["kl"] + 1e-4 * hand["distance"])
    assert total.item() == pytest.approx(expected, rel=1e-10)


def test_loss_worked_numbers():
    """T = 3: k = 1, the top-k mean is the max. Normal scores max 0.9, anomalous max 0.7:
    bce = -(ln(1 - 0.9) + ln(0.7)) / 2. ||anchor_aug|| = 5, ||negative_aug|| = 10: distance 95."""
    output = _output(np.random.default_rng(2), half=1, length=3)
    output["scores"] = torch.tensor([[0.2, 0.9, 0.4], [0.7, 0.1, 0.3]], dtype=torch.float64)
    output["anchor_aug"] = torch.tensor([[3.0, 4.0]], dtype=torch.float64)
    output["negative_aug"] = torch.tensor([[6.0, 8.0]], dtype=torch.float64)
    _, terms = URDMULoss()(output, _labels(1))
    assert terms["bce"].item() == pytest.approx(-(math.log(0.1) + math.log(0.7)) / 2, rel=1e-12)
    assert terms["distance"].item() == pytest.approx(95.0, rel=1e-12)


def test_loss_weights_are_options():
    output = _output(np.random.default_rng(3))
    _, terms = URDMULoss()(output, _labels())
    total, _ = URDMULoss(memory_weight=0.0, triplet_weight=0.0, kl_weight=0.0, distance_weight=1.0,
                         distance_margin=50.0)(output, _labels())
    hand = _hand_terms({key: value.numpy() for key, value in output.items()}, k=2)
    shift = 50.0 - 100.0  # every distance hinge stays active: norms of 6 normal numbers are < 50
    assert total.item() == pytest.approx(hand["bce"] + hand["distance"] + shift, rel=1e-10)


def test_loss_hand_gradient():
    """d total / d score = (p - y) / (p (1 - p)) / (B k) at each video's top-k snippets, 0 elsewhere;
    d total / d N_att = -0.1 / (N_att * n) (the mean BCE against 1 over its n entries)."""
    output = _output(np.random.default_rng(4))
    for key in ("scores", "N_att"):
        output[key].requires_grad_(True)
    total, _ = URDMULoss()(output, _labels())
    g_scores, g_n = torch.autograd.grad(total, [output["scores"], output["N_att"]])
    s, y, k = output["scores"].detach().numpy(), _labels().numpy(), 2
    expected = np.zeros_like(s)
    for i in range(4):
        top = np.argsort(s[i])[-k:]
        p = s[i, top].mean()
        expected[i, top] = (p - y[i]) / (p * (1 - p)) / (4 * k)
    np.testing.assert_allclose(g_scores.numpy(), expected, rtol=1e-10)
    n_att = output["N_att"].detach().numpy()
    np.testing.assert_allclose(g_n.numpy(), -0.1 / (n_att * n_att.size), rtol=1e-10)


def test_loss_gradients_match_finite_differences():
    """Every input's autograd gradient of the total against central differences in float64 (as
    torch.autograd.gradcheck, whose first call costs seconds of imports)."""
    output = _output(np.random.default_rng(5), length=17, channels=3)
    for value in output.values():
        value.requires_grad_(True)
    loss = URDMULoss()
    total, _ = loss(output, _labels())
    grads = dict(zip(output, torch.autograd.grad(total, list(output.values()))))
    step = 1e-6
    with torch.no_grad():
        for key, value in output.items():
            numeric = torch.zeros_like(value)
            flat, target = value.view(-1), numeric.view(-1)
            for i in range(flat.numel()):
                flat[i] += step
                up = loss(output, _labels())[0]
                flat[i] -= 2 * step
                down = loss(output, _labels())[0]
                flat[i] += step
                target[i] = (up - down) / (2 * step)
            assert torch.allclose(grads[key], numeric, rtol=1e-5, atol=1e-7), key


def test_loss_refuses_anomalous_first_labels():
    output = _output(np.random.default_rng(6))
    with pytest.raises(ValueError, match=r"normal-first: labels = B/2 zeros then B/2 ones, "
                                         r"found \[1.0, 1.0, 0.0, 0.0\]"):
        URDMULoss()(output, torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64))


# ---------------------------------------------------------------- config


def test_config_builds_the_official_method():
    cfg = OmegaConf.load(CONFIG)
    assert cfg.defaults == [{"override /optimizer": "adam"}, {"override /scheduler": "none"}]
    assert cfg.method.name == "urdmu" and cfg.method.causal is False
    assert dict(cfg.method.inputs) == {"segments": 200, "normalise": False, "bins": "floor", "crops": "bags"}
    assert (cfg.optimizer.lr, cfg.optimizer.weight_decay, cfg.data.batch_size) == (1e-4, 5e-5, 64)
    assert (cfg.trainer.max_steps, cfg.eval.protocol) == (3000, "snippets")
    assert cfg.trainer.max_epochs * (8000 // 64) >= 3000  # the epoch bound lets max_steps stop the run

    torch.manual_seed(0)
    network = hydra.utils.instantiate(cfg.method.network, input_dim=1024)
    assert type(network) is URDMUNetwork
    assert network.embedding.conv_1[0].in_channels == 1024
    assert network.Amemory.slots == network.Nmemory.slots == 60
    assert len(network.selfatt.layers) == 2 and network.selfatt.layers[0][0].fn.heads == 4
    assert network.selfatt.layers[0][1].fn.net[2].p == 0.5

    loss = hydra.utils.instantiate(cfg.method.loss)
    assert type(loss) is URDMULoss
    assert (loss.memory_weight, loss.triplet_weight, loss.triplet_margin, loss.kl_weight,
            loss.distance_weight, loss.distance_margin) == (0.1, 0.1, 1.0, 1e-3, 1e-4, 100.0)
