"""Top-k BCE MIL (Roc-Ng/XDVioDet): the network against a numpy forward and the official layer
sizes, its causality, the loss against hand computations, and conf/method/topk_mil.yaml."""

from __future__ import annotations

import math
import warnings

import hydra
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from tests.conftest import CONF
from vad.losses.topk import TopKLoss, top_k_count
from vad.models.topk import TopKNetwork

OFFICIAL_DIM = 1024 + 128  # option.py --feature-size: I3D RGB + VGGish audio


def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


# ------------------------------------------------------------------ network


@pytest.mark.parametrize("window", [0, 5])
@pytest.mark.parametrize("t", [1, 2, 5, 32, 500])
def test_eval_scores_are_b_by_t_in_unit_interval(window, t):
    net = TopKNetwork(16, causal_window=window).eval()
    scores = net(torch.randn(3, t, 16) * 5)
    assert scores.shape == (3, t)
    assert scores.dtype == torch.float32
    assert bool(((scores >= 0) & (scores <= 1)).all())


def test_training_output_holds_logits_and_their_sigmoid():
    net = TopKNetwork(16, causal_window=5).train()
    out = net(torch.randn(4, 32, 16))
    assert set(out) == {"logits", "scores"}
    assert out["logits"].shape == out["scores"].shape == (4, 32)
    assert torch.allclose(out["scores"], torch.sigmoid(out["logits"]))


def test_dropout_is_active_in_training_only():
    torch.manual_seed(6)
    net = TopKNetwork(16)
    x = torch.randn(2, 8, 16)
    net.train()
    assert not torch.equal(net(x)["logits"], net(x)["logits"])
    net.eval()
    assert torch.equal(net(x), net(x))


@pytest.mark.parametrize("window, last_layer", [(5, 32 * 5 + 1), (0, 32 * 1 + 1)])
def test_parameter_count_is_the_official_layers(window, last_layer):
    # model.py: conv1d1 (1152 -> 512), conv1d2 (512 -> 128), approximator (128 -> 64 -> 32), all
    # kernel 1 with bias; conv1d_approximator (32 -> 1, kernel 5; kernel 1 when pointwise).
    expected = (1152 * 512 + 512) + (512 * 128 + 128) + (128 * 64 + 64) + (64 * 32 + 32) + last_layer
    assert expected == (666_497 if window == 5 else 666_369)
    net = TopKNetwork(OFFICIAL_DIM, causal_window=window)
    assert sum(p.numel() for p in net.parameters()) == expected


def test_weights_are_xavier_uniform_biases_torch_default():
    torch.manual_seed(0)
    net = TopKNetwork(OFFICIAL_DIM)
    first = net.embed[0]
    bound = math.sqrt(6.0 / (OFFICIAL_DIM + 512))  # xavier_uniform_, gain 1
    w = first.weight.detach()
    assert w.abs().max() <= bound and w.abs().max() > 0.99 * bound
    assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.01)  # std of U(-b, b)
    assert first.bias.abs().max() <= 1 / math.sqrt(OFFICIAL_DIM)  # nn.Linear's default bias


def _numpy_forward(net: TopKNetwork, x: np.ndarray) -> np.ndarray:
    """The eval forward written out: four ReLU layers per snippet, then sum_j w_j . h[t - k + 1 + j]
    with zeros before the first snippet."""
    p = {k: v.detach().double().numpy() for k, v in net.state_dict().items()}
    h = x
    for name in ("embed.0", "embed.3", "head.0", "head.2"):
        h = np.maximum(h @ p[f"{name}.weight"].T + p[f"{name}.bias"], 0.0)
    w = p["score.weight"][0]  # (32, k)
    k = w.shape[1]
    b, t, _ = h.shape
    out = np.full((b, t), p["score.bias"][0])
    for i in range(t):
        for j in range(k):
            src = i - (k - 1) + j
            if src >= 0:
                out[:, i] += h[:, src] @ w[:, j]
    return 1.0 / (1.0 + np.exp(-out))


@pytest.mark.parametrize("window", [0, 3, 5])
def test_eval_forward_equals_a_numpy_forward(window):
    torch.manual_seed(1)
    net = TopKNetwork(12, causal_window=window).eval()
    x = np.random.default_rng(0).normal(size=(2, 9, 12))
    got = net(torch.tensor(x, dtype=torch.float32)).detach().numpy()
    np.testing.assert_allclose(got, _numpy_forward(net, x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("window", [0, 5])
def test_a_snippet_changes_its_own_and_the_next_window_minus_one_scores_only(window):
    torch.manual_seed(4)
    net = TopKNetwork(8, causal_window=window).eval()
    x = torch.randn(1, 20, 8)
    y = x.clone()
    y[0, 10] += 3.0
    changed = (net(x) != net(y))[0].nonzero().flatten().tolist()
    assert changed == list(range(10, 10 + max(1, window)))


def test_scoring_the_last_window_snippets_gives_the_whole_video_scores():
    torch.manual_seed(5)
    net = TopKNetwork(8, causal_window=5).eval()
    x = torch.randn(1, 30, 8)
    whole = net(x)[0]
    streamed = torch.stack([net(x[:, max(0, t - 4): t + 1])[0, -1] for t in range(30)])
    assert torch.allclose(streamed, whole, atol=1e-6)


def test_negative_causal_window_is_refused():
    with pytest.raises(ValueError, match=r"causal_window must be >= 0 .* found -1"):
        TopKNetwork(8, causal_window=-1)


def test_non_3d_input_is_refused():
    with pytest.raises(ValueError, match=r"expects \(B, T, D\) snippet features, found shape \(4, 8\)"):
        TopKNetwork(8).eval()(torch.randn(4, 8))


# ------------------------------------------------------------------ loss


def test_k_is_snippets_over_16_plus_1():
    # train.py:CLAS int(seq_len // 16 + 1), worked by hand.
    assert [top_k_count(t) for t in (1, 15, 16, 31, 32, 200)] == [1, 1, 2, 2, 3, 13]


# Normal video: 16 snippets, the two largest logits 2.0 and 1.0 (k = 2); anomalous: 3.0 and -1.0 largest.
NORMAL = [2.0, 1.0] + [-2.0] * 14
ANOMALOUS = [-1.0, 3.0] + [-4.0] * 14


def _hand_bce(mean_normal: float, mean_anomalous: float) -> float:
    return (-math.log(1 - sigmoid(mean_normal)) - math.log(sigmoid(mean_anomalous))) / 2


def test_loss_is_bce_of_the_sigmoid_of_the_top_k_mean_logit_averaged_over_videos():
    logits = torch.tensor([NORMAL, ANOMALOUS], dtype=torch.float64)
    total, terms = TopKLoss()({"logits": logits}, torch.tensor([0.0, 1.0], dtype=torch.float64))
    # (log(1 + e^1.5) + log(1 + e^-1)) / 2 = (1.70141 + 0.31326) / 2
    expected = _hand_bce((2.0 + 1.0) / 2, (3.0 - 1.0) / 2)
    assert total.item() == pytest.approx(expected, rel=1e-12)
    assert total.item() == pytest.approx(1.007337, abs=1e-6)
    assert set(terms) == {"bce"} and terms["bce"].item() == total.item()
    assert not terms["bce"].requires_grad


def test_loss_gradient_reaches_the_top_k_logits_only():
    logits = torch.tensor([NORMAL, ANOMALOUS], dtype=torch.float64, requires_grad=True)
    total, _ = TopKLoss()({"logits": logits}, torch.tensor([0.0, 1.0], dtype=torch.float64))
    (grad,) = torch.autograd.grad(total, logits)
    # d/dz_j = (sigmoid(m) - y) / (B * k) for the k top logits of a video, 0 elsewhere.
    expected = np.zeros((2, 16))
    expected[0, [0, 1]] = (sigmoid(1.5) - 0.0) / (2 * 2)
    expected[1, [0, 1]] = (sigmoid(1.0) - 1.0) / (2 * 2)
    np.testing.assert_allclose(grad.numpy(), expected, rtol=1e-12, atol=1e-15)


def test_loss_equals_an_official_style_per_video_loop():
    # train.py:CLAS: per video top-k of the logits, mean, then sigmoid; BCELoss's mean over videos.
    torch.manual_seed(3)
    logits = torch.randn(6, 200) * 2
    labels = torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    pooled = torch.stack([torch.sort(row, descending=True).values[:13].mean() for row in logits])
    reference = torch.nn.BCELoss()(torch.sigmoid(pooled), labels)
    total, _ = TopKLoss()({"logits": logits}, labels)
    assert total.item() == pytest.approx(reference.item(), rel=1e-5)


def test_labels_not_row_positions_decide_which_videos_are_anomalous():
    logits = torch.tensor([NORMAL, ANOMALOUS], dtype=torch.float64)
    labels = torch.tensor([0.0, 1.0], dtype=torch.float64)
    loss = TopKLoss()
    base = loss({"logits": logits}, labels)[0].item()
    # Both halves swapped together: the same loss.
    assert loss({"logits": logits.flip(0)}, labels.flip(0))[0].item() == pytest.approx(base, rel=1e-12)
    # Only the scores swapped (the anomalous video's scores in the normal half): the hand value.
    swapped = loss({"logits": logits.flip(0)}, labels)[0].item()
    expected = (-math.log(1 - sigmoid(1.0)) - math.log(sigmoid(1.5))) / 2
    assert swapped == pytest.approx(expected, rel=1e-12) and swapped != pytest.approx(base)


def test_loss_refuses_an_output_without_logits():
    with pytest.raises(ValueError, match=r"TopKLoss needs the training output of vad.models.topk.TopKNetwork.*"
                                         r"found \['scores'\].*method.network=vad.models.topk.TopKNetwork"):
        TopKLoss()({"scores": torch.rand(2, 32)}, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"for 2 labels, found Tensor"):
        TopKLoss()(torch.rand(2, 32), torch.tensor([0.0, 1.0]))


# ------------------------------------------------------------------ config


@pytest.fixture(scope="module")
def method_cfg():
    return OmegaConf.load(CONF / "method" / "topk_mil.yaml")


def test_config_builds_the_official_network_and_loss(method_cfg):
    m = method_cfg.method
    assert m.name == "topk_mil" and m.causal is True
    net = hydra.utils.instantiate(m.network, input_dim=OFFICIAL_DIM)
    assert isinstance(net, TopKNetwork)
    assert net.causal_window == 0 and net.embed[2].p == 0.6 and net.input_dim == OFFICIAL_DIM
    assert isinstance(hydra.utils.instantiate(m.loss), TopKLoss)
    assert dict(m.inputs) == {"segments": 200, "normalise": False, "bins": "floor", "crops": "bags"}


def test_config_training_values_are_the_official_ones(method_cfg):
    cfg = method_cfg
    assert list(cfg.defaults) == [{"override /optimizer": "adam"}, {"override /scheduler": "multistep"}]
    assert cfg.optimizer.lr == 1e-4 and cfg.optimizer.weight_decay == 0.0
    assert list(cfg.scheduler.milestones) == [9] and cfg.scheduler.gamma == 0.1
    assert cfg.data.batch_size == 64  # half of the official mixed batch of 128
    assert cfg.trainer.max_epochs == 50 and "max_steps" not in cfg.trainer
    assert cfg.eval.protocol == "snippets"


def test_milestone_9_stepped_after_each_epoch_is_the_official_milestone_10_stepped_before():
    def lrs(milestone, step_first):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-4)
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[milestone], gamma=0.1)
        seen = []
        for _ in range(50):
            if step_first:  # main.py: scheduler.step() then train(...)
                sched.step()
            seen.append(opt.param_groups[0]["lr"])
            if not step_first:  # Lightning, interval "epoch"
                sched.step()
        return seen

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns of scheduler.step() without optimizer.step()
        official, ours = lrs(10, step_first=True), lrs(9, step_first=False)
    assert ours == pytest.approx(official)
    assert ours[:9] == pytest.approx([1e-4] * 9) and ours[9:] == pytest.approx([1e-5] * 41)
