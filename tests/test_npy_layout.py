"""The seed notebook's npy layout (``data=ucf_crime_npy``) on a tiny folder built here."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from vad.constants import N_SEGMENTS
from vad.data import load_splits
from vad.data.layouts.seed_npy import LISTS, list_file
from vad.data.loading import load_data
from vad.data.ucf_crime import read_list, read_v2_test_lists, shipped
from vad.metrics import FrameTruth
from vad.train import train

DIM = 1024
N_TRAIN_EACH = 12
N_TEST_EACH = 6
# Anomalous segments carry a stream-specific pattern on a few dimensions.
PATTERN_DIMS = {"all_rgbs": slice(0, 48), "all_flows": slice(100, 148)}


def _lines(name: str) -> list[str]:
    return [ln.strip() for ln in shipped(name).read_text().splitlines() if ln.strip()]


def build_root(root: Path, dim: int = DIM, seed: int = 0) -> dict:
    """Write lists and (32, dim) float32 files for every listed video; return what was written."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    anomaly = _lines("train_anomaly.txt")[::67][:N_TRAIN_EACH]
    normal = _lines("train_normal.txt")[::67][:N_TRAIN_EACH]
    assert len(anomaly) == len(normal) == N_TRAIN_EACH and len(set(anomaly)) == N_TRAIN_EACH
    normal_lines = normal + [normal[3]]  # one duplicate, as in the shipped list
    test_anomaly = _lines("test_anomalyv2.txt")[:N_TEST_EACH]
    test_normal = _lines("test_normalv2.txt")[:N_TEST_EACH]
    (root / "train_anomaly.txt").write_text("\n".join(anomaly) + "\n")
    (root / "train_normal.txt").write_text("\n".join(normal_lines) + "\n")
    (root / "test_anomalyv2.txt").write_text("\n".join(test_anomaly) + "\n")
    (root / "test_normalv2.txt").write_text("\n".join(test_normal) + "\n")

    test_videos = read_v2_test_lists(root / "test_anomalyv2.txt", root / "test_normalv2.txt")
    test_segments = FrameTruth.from_videos(test_videos).pos[:, :N_SEGMENTS] > 0
    anomalous = {}
    for path in anomaly:
        mask = np.zeros(N_SEGMENTS, dtype=bool)
        start = rng.integers(0, N_SEGMENTS - 6)
        mask[start:start + 6] = True
        anomalous[path] = mask
    for path in normal:
        anomalous[path] = np.zeros(N_SEGMENTS, dtype=bool)
    for video, mask in zip(test_videos, test_segments):
        anomalous[video.path] = mask

    arrays = {}
    for folder in ("all_rgbs", "all_flows"):
        for path, mask in anomalous.items():
            x = np.maximum(rng.normal(0.0, 1.0, (N_SEGMENTS, dim)) - 0.5, 0.0)
            if dim == DIM:
                x[mask, PATTERN_DIMS[folder]] += 3.0
            x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
            file = root / folder / f"{path}.npy"
            file.parent.mkdir(parents=True, exist_ok=True)
            np.save(file, x)
            arrays[folder, path] = x
    return {"train_paths": anomaly + normal_lines, "test_videos": test_videos,
            "test_anomaly": test_anomaly, "arrays": arrays, "duplicate": normal[3]}


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    root = tmp_path_factory.mktemp("npy_layout")
    return root, build_root(root)


def _cfg(root) -> OmegaConf:
    return OmegaConf.create({"name": "ucf_crime_npy", "root": str(root) if root is not None else None,
                             "dedupe": False})


def test_load_two_streams_concatenates_files_rgb_first(layout, caplog):
    root, built = layout
    with caplog.at_level(logging.WARNING):
        splits = load_splits(_cfg(root), ("RGB", "FLOW"), "I3D", DIM)

    train_paths = built["train_paths"]
    assert [v.path for v in splits.train.videos] == train_paths
    assert len(splits.train) == 2 * N_TRAIN_EACH + 1  # the duplicate is kept
    assert splits.train.labels.tolist() == [1] * N_TRAIN_EACH + [0] * (N_TRAIN_EACH + 1)
    assert all(v.frames > 0 and v.spans == () for v in splits.train.videos)
    assert splits.feature_dim == 2 * DIM and not splits.synthetic and splits.train.movement is None

    arrays = built["arrays"]
    for split, paths in ((splits.train, train_paths), (splits.test, [v.path for v in built["test_videos"]])):
        expected = np.stack([np.concatenate([arrays["all_rgbs", p], arrays["all_flows", p]], axis=1)
                             for p in paths])
        assert split.features.dtype.is_floating_point
        np.testing.assert_array_equal(split.features.numpy(), expected)

    # Test videos: anomalous first, frame counts and spans from the lists.
    assert splits.test.videos == built["test_videos"]
    first = built["test_anomaly"][0].split("|")
    assert splits.test.videos[0].path == first[0]
    assert splits.test.videos[0].frames == int(first[1])
    assert splits.test.videos[0].spans[0][0] == int(first[2].strip("[]").split(",")[0])
    assert splits.test.labels.tolist() == [1] * N_TEST_EACH + [0] * N_TEST_EACH
    assert all(v.spans for v in splits.test.videos[:N_TEST_EACH])
    assert not any(v.spans for v in splits.test.videos[N_TEST_EACH:])

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("duplicate list entries" in m and f"{built['duplicate']} listed 2 times" in m
               for m in warnings), warnings


def test_single_stream_reads_only_its_folder(layout):
    root, built = layout
    splits = load_splits(_cfg(root), ("FLOW",), "I3D", DIM)
    path = built["train_paths"][0]
    np.testing.assert_array_equal(splits.train.features[0].numpy(), built["arrays"]["all_flows", path])
    assert splits.feature_dim == DIM


def test_training_learns_on_separable_npy_features(layout, compose_cfg):
    root, _ = layout
    cfg = compose_cfg(["data=ucf_crime_npy", f"data.root={root}", "modality=TWO", "data.batch_size=4",
                       "trainer.max_epochs=5", "optimizer=adam", "optimizer.lr=1e-3", "scheduler=none",
                       "logger=none", "trainer.enable_progress_bar=false"])
    result = train(cfg)
    on_disk = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert on_disk["synthetic"] is False
    assert "SYNTHETIC" not in on_disk["data"] and str(root) in on_disk["data"]
    assert on_disk["modality"] == "TWO"
    assert result["best"]["auc"] > 0.8, result["best"]


def test_unset_root_is_named(compose_cfg):
    cfg = compose_cfg(["data=ucf_crime_npy"])
    assert cfg.data.root is None
    with pytest.raises(ValueError, match=r"data\.root"):
        load_data(cfg)


def test_root_that_is_not_a_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="data.root"):
        load_splits(_cfg(tmp_path / "nowhere"), ("RGB",), "I3D", DIM)


def test_missing_flow_folder_is_named(tmp_path):
    build_root(tmp_path)
    shutil.rmtree(tmp_path / "all_flows")
    with pytest.raises(ValueError, match=r"stream absent: 1\n  - modality needs \['FLOW'\] but .* has only \['RGB'\]"):
        load_splits(_cfg(tmp_path), ("RGB", "FLOW"), "I3D", DIM)
    # RGB alone does not need it.
    assert load_splits(_cfg(tmp_path), ("RGB",), "I3D", DIM).feature_dim == DIM


def test_missing_files_are_counted_with_an_example(tmp_path):
    built = build_root(tmp_path)
    total = len(built["train_paths"]) + len(built["test_videos"])
    gone = [built["train_paths"][0], built["train_paths"][1], built["test_videos"][-1].path]
    assert built["duplicate"] not in gone
    for path in gone:
        (tmp_path / "all_rgbs" / f"{path}.npy").unlink()
    with pytest.raises(ValueError) as info:
        load_splits(_cfg(tmp_path), ("RGB", "FLOW"), "I3D", DIM)
    message = str(info.value)
    assert f"missing files: 3 of {2 * total} files" in message
    assert any(f"{path}.npy" in message for path in gone)


def test_wrong_shape_names_file_expected_and_found(tmp_path):
    built = build_root(tmp_path)
    bad = tmp_path / "all_flows" / f"{built['test_videos'][2].path}.npy"
    np.save(bad, np.zeros((N_SEGMENTS, 512), dtype=np.float32))
    with pytest.raises(ValueError) as info:
        load_splits(_cfg(tmp_path), ("RGB", "FLOW"), "I3D", DIM)
    message = str(info.value)
    assert str(bad) in message
    assert "(32, 1024)" in message and "(32, 512)" in message


def test_extractor_dimension_mismatch(layout, compose_cfg):
    root, _ = layout
    cfg = compose_cfg(["data=ucf_crime_npy", f"data.root={root}", "extractor=C3D"])
    assert int(cfg.extractor.dim) == 4096
    with pytest.raises(ValueError, match=r"4096") as info:
        load_data(cfg)
    assert "(32, 1024)" in str(info.value)


def test_shipped_lists_when_folder_has_none(tmp_path, layout):
    own_root, _ = layout
    for name in LISTS:
        assert list_file(tmp_path, name) == shipped(name)
        assert shipped(name).exists()
        assert list_file(own_root, name) == own_root / name
    # A folder without lists is read with the full shipped lists: 810 + 810 + 140 + 150 videos.
    (tmp_path / "all_rgbs").mkdir()
    n_shipped = sum(len(read_list(shipped(n))) for n in LISTS)
    assert n_shipped == 1910
    with pytest.raises(ValueError, match=f"missing files: {n_shipped} of {n_shipped} files"):
        load_splits(_cfg(tmp_path), ("RGB",), "I3D", DIM)
