"""The feature store (``vad.data.store``) and ``python -m vad.prepare``, on small layouts built
here (in-test ``Layout`` subclasses, so the tests do not depend on the real readers)."""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import ROOT, run_cli
from omegaconf import OmegaConf

from vad.constants import N_SEGMENTS
from vad.data import store
from vad.data.convert import to_segments
from vad.data.layouts.base import Layout
from vad.data.ucf_crime import catalogue, shipped
from vad.prepare import prepare
from vad.types import Entry, Video

DIM = 8
CROPS = 3
STREAM_IDS = {"RGB": 1, "FLOW": 2}
HAS_REGISTRY = (ROOT / "vad" / "data" / "layouts" / "registry.py").exists()


def _entries(n_each: int = 2) -> list[Entry]:
    """A few real videos: anomalous and normal of each split (short ones, to stay fast)."""
    train, test = catalogue()
    short = lambda vs, label: [v for v in vs if v.label == label and v.frames < 4000][:n_each]  # noqa: E731
    anomalous = short(train, 1)
    # A training video with (hidden) spans: the store must not keep them.
    anomalous[0] = Video(anomalous[0].path, anomalous[0].cls, anomalous[0].frames, ((17, 400),))
    tiny = Video("Normal_Videos_event/Normal_Videos_tiny_x264.mp4", "Normal", 20)  # 2 snippets
    train_videos = anomalous + short(train, 0) + [tiny]
    test_videos = short(test, 1) + short(test, 0)
    return [Entry(v, "train") for v in train_videos] + [Entry(v, "test") for v in test_videos]


class ClipsLayout(Layout):
    """(T, C, D) random clip features, T = ceil(frames / 16); ``fail_at`` makes one video fail."""

    name = "test_clips"
    kind = "clips"

    def __init__(self, root: Path, entries: list[Entry], streams=("RGB", "FLOW"), crops: int = CROPS,
                 dim: int = DIM, fail_at: int | None = None):
        super().__init__(root)
        self._entries, self._streams, self.crops, self.dim = entries, tuple(streams), crops, dim
        self.fail_at = fail_at
        self.reads = []

    def entries(self) -> list[Entry]:
        return list(self._entries)

    def streams(self) -> tuple[str, ...]:
        return self._streams

    def source(self, entry: Entry, stream: str) -> str:
        return str(self.root / stream / f"{entry.video.name}.npy")

    def raw(self, index: int, stream: str) -> np.ndarray:
        frames = self._entries[index].video.frames
        rng = np.random.default_rng([index, STREAM_IDS[stream]])
        return rng.random((max(1, math.ceil(frames / 16)), self.crops, self.dim), dtype=np.float32)

    def read(self, entry: Entry, stream: str) -> np.ndarray:
        index = self._entries.index(entry)
        if index == self.fail_at:
            raise OSError("input/output error")
        self.reads.append((index, stream))
        return self.raw(index, stream)


class SegmentsLayout(ClipsLayout):
    """(32, D) already pooled features, with movement values."""

    name = "test_segments"
    kind = "segments"

    def raw(self, index: int, stream: str) -> np.ndarray:
        rng = np.random.default_rng([index, STREAM_IDS[stream], 5])
        return rng.random((N_SEGMENTS, self.dim), dtype=np.float32)

    def movement(self, entry: Entry) -> np.ndarray:
        return np.arange(N_SEGMENTS, dtype=np.float32) + self._entries.index(entry)


def data_cfg(path) -> OmegaConf:
    return OmegaConf.create({"name": "store", "path": None if path is None else str(path), "batch_size": 30,
                             "eval_batch_size": 512, "val_source": "test", "holdout_fraction": 0.1})


def contents(path: Path) -> dict:
    """Every attribute (but timestamps) and dataset of a store, for comparisons."""
    out = {}
    with h5py.File(path, "r") as f:
        out["/"] = {k: np.asarray(v).tolist() for k, v in f.attrs.items() if k not in ("created", "finished")}

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name] = obj[()]
            else:
                out[name] = {k: np.asarray(v).tolist() for k, v in obj.attrs.items()}
        f.visititems(visit)
    return out


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], np.ndarray):
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        else:
            assert a[key] == b[key], key


@pytest.fixture
def entries():
    return _entries()


def test_round_trip_clips(tmp_path, entries):
    layout = ClipsLayout(tmp_path / "feats", entries)
    out = tmp_path / "store.h5"
    report = store.write(layout, out, keep_snippets=True, progress=False)
    assert out.exists() and not store.partial_path(out).exists()
    assert (report.written, report.skipped, report.videos) == (len(entries), 0, len(entries))
    assert report.bytes_read == sum(layout.raw(i, s).nbytes
                                    for i in range(len(entries)) for s in ("RGB", "FLOW"))
    with h5py.File(out, "r") as f:
        assert f.attrs["format"] == "vad-store" and f.attrs["version"] == 1
        assert list(f.attrs["streams"]) == ["RGB", "FLOW"] and list(f.attrs["dims"]) == [DIM, DIM]
        assert f.attrs["n_segments"] == N_SEGMENTS and f.attrs["crops"] == "mean"
        assert f.attrs["complete"] and "test_clips" in f.attrs["source"] and f.attrs["created"]
        names = sorted(f["videos"])
        assert len(names) == len(entries)
        for i, (name, entry) in enumerate(zip(names, entries)):
            g = f["videos"][name]
            assert g.attrs["done"] and g.attrs["index"] == i
            assert (g.attrs["path"], g.attrs["cls"], g.attrs["frames"], g.attrs["split"]) == (
                entry.video.path, entry.video.cls, entry.video.frames, entry.split)
            spans = entry.video.spans if entry.split == "test" else ()
            assert [tuple(s) for s in g.attrs["spans"]] == list(spans)
            for stream in ("RGB", "FLOW"):
                raw = layout.raw(i, stream)
                segments = g[f"segments/{stream}"]
                assert segments.dtype == np.float32 and segments.shape == (1, N_SEGMENTS, DIM)
                np.testing.assert_array_equal(segments[()], to_segments(raw, "clips", "mean"))
                if entry.split == "train":  # snippets are kept for the test videos only
                    assert "snippets" not in g
                    continue
                snippets = g[f"snippets/{stream}"]
                assert snippets.dtype == np.float32 and snippets.shape == (raw.shape[0], DIM)
                np.testing.assert_allclose(snippets[()], raw.mean(axis=1), rtol=1e-6)
            assert "movement" not in g
    # The (hidden) training spans of the first video are not stored.
    assert entries[0].video.spans and entries[0].split == "train"


@pytest.mark.parametrize("crops, crop", [("one", 2), ("all", 0)])
def test_crop_modes(tmp_path, entries, crops, crop):
    layout = ClipsLayout(tmp_path, entries, streams=("RGB",))
    out = store.write(layout, tmp_path / "s.h5", crops=crops, crop=crop, progress=False).path
    with h5py.File(out, "r") as f:
        assert f.attrs["crops"] == crops and f.attrs["crop"] == (crop if crops == "one" else -1)
        assert list(f.attrs["streams"]) == ["RGB"]
        for i, name in enumerate(sorted(f["videos"])):
            stored = f["videos"][name]["segments/RGB"][()]
            assert stored.shape == ((1 if crops == "one" else CROPS), N_SEGMENTS, DIM)
            np.testing.assert_array_equal(stored, to_segments(layout.raw(i, "RGB"), "clips", crops, crop))
            assert "snippets" not in f["videos"][name]


def test_segments_layout_with_movement(tmp_path, entries):
    layout = SegmentsLayout(tmp_path, entries)
    out = store.write(layout, tmp_path / "s.h5", crops="one", progress=False).path
    with h5py.File(out, "r") as f:
        assert f.attrs["crops"] == "none" and f.attrs["layout_kind"] == "segments"
        for i, name in enumerate(sorted(f["videos"])):
            g = f["videos"][name]
            np.testing.assert_array_equal(g["segments/FLOW"][0], layout.raw(i, "FLOW"))
            np.testing.assert_array_equal(g["movement"][()], layout.movement(entries[i]))
            assert "snippets" not in g  # nothing per snippet in a segment layout


def test_bad_crop_index_names_the_video(tmp_path, entries):
    layout = ClipsLayout(tmp_path / "feats", entries)
    with pytest.raises(store.StoreReadError, match=r"crop=5 but the features have 3 crops") as err:
        store.write(layout, tmp_path / "s.h5", crops="one", crop=5, progress=False)
    assert entries[0].video.path in str(err.value) and str(tmp_path / "feats") in str(err.value)


def test_resume_after_interruption(tmp_path, entries):
    out = tmp_path / "store.h5"
    partial = store.partial_path(out)
    layout = ClipsLayout(tmp_path / "feats", entries, fail_at=2)
    with pytest.raises(store.StoreReadError) as err:
        store.write(layout, out, keep_snippets=True, progress=False)
    message = str(err.value)
    assert entries[2].video.path in message and layout.source(entries[2], "RGB") in message
    assert "input/output error" in message and "resume" in message and str(partial) in message
    assert not out.exists() and partial.exists()
    with h5py.File(partial, "r") as f:
        assert sorted(f["videos"]) == ["000000", "000001"]
        assert all(f["videos"][n].attrs["done"] for n in f["videos"]) and not f.attrs["complete"]
    # An interruption in the middle of a video leaves a group without `done`: rewritten.
    with h5py.File(partial, "r+") as f:
        g = f["videos"].create_group("000002")
        g.attrs["path"] = "half written"
        g.create_dataset("segments/RGB", data=np.zeros((1, N_SEGMENTS, DIM), np.float32))

    layout.fail_at, layout.reads = None, []
    report = store.write(layout, out, keep_snippets=True, progress=False)
    assert (report.written, report.skipped) == (len(entries) - 2, 2)
    assert {i for i, _ in layout.reads} == set(range(2, len(entries)))
    assert out.exists() and not partial.exists()

    fresh = store.write(ClipsLayout(tmp_path / "feats", entries), tmp_path / "fresh.h5",
                              keep_snippets=True, progress=False).path
    assert_same(contents(out), contents(fresh))


def test_rerun_on_complete_store_skips(tmp_path, entries):
    out = tmp_path / "store.h5"
    store.write(ClipsLayout(tmp_path, entries), out, progress=False)
    before = out.stat().st_mtime_ns
    layout = ClipsLayout(tmp_path, entries)
    report = store.write(layout, out, progress=False)
    assert (report.written, report.skipped) == (0, len(entries)) and layout.reads == []
    assert report.dims == {"RGB": DIM, "FLOW": DIM} and out.stat().st_mtime_ns == before


def test_option_mismatch(tmp_path, entries):
    out = tmp_path / "store.h5"
    store.write(ClipsLayout(tmp_path, entries), out, streams=("RGB",), progress=False)
    with pytest.raises(ValueError) as err:
        store.write(ClipsLayout(tmp_path, entries), out, progress=False)
    message = str(err.value)
    assert str(out) in message and "['RGB']" in message and "['RGB', 'FLOW']" in message
    assert "delete" in message and "out=" in message

    out2 = tmp_path / "other.h5"
    with pytest.raises(store.StoreReadError):
        store.write(ClipsLayout(tmp_path, entries, fail_at=1), out2, crops="mean", progress=False)
    with pytest.raises(ValueError, match=r"crops: stored 'mean', requested 'one'") as err:
        store.write(ClipsLayout(tmp_path, entries), out2, crops="one", progress=False)
    assert str(store.partial_path(out2)) in str(err.value)
    with pytest.raises(ValueError, match="holds a store of"):
        store.write(ClipsLayout(tmp_path, entries[:-1]), out2, progress=False)
    swapped = entries[:2][::-1] + entries[2:]
    with pytest.raises(ValueError, match="holds other videos") as err:
        store.write(ClipsLayout(tmp_path, swapped), out, streams=("RGB",), progress=False)
    assert swapped[0].video.path in str(err.value)
    with pytest.raises(ValueError, match="comes from another list"):
        store.write(ClipsLayout(tmp_path, swapped), out2, progress=False)
    with pytest.raises(ValueError, match=r"streams \['DEPTH'\] requested"):
        store.write(ClipsLayout(tmp_path, entries), tmp_path / "x.h5", streams=("DEPTH",), progress=False)


def test_load_into_splits(tmp_path, entries):
    layout = ClipsLayout(tmp_path, entries)
    out = store.write(layout, tmp_path / "s.h5", keep_snippets=True, progress=False).path
    splits = store.load(data_cfg(out), ("RGB", "FLOW"), DIM)
    train = [e for e in entries if e.split == "train"]
    test = [e for e in entries if e.split == "test"]
    assert not splits.synthetic and str(out) in splits.description and "test_clips" in splits.description
    assert splits.train.features.shape == (len(train), N_SEGMENTS, 2 * DIM)
    assert splits.test.features.shape == (len(test), N_SEGMENTS, 2 * DIM)
    assert splits.train.features.dtype == splits.test.features.dtype == __import__("torch").float32
    assert splits.train.movement is None and not splits.has_movement
    assert list(splits.train.labels) == [e.video.label for e in train]
    assert list(splits.test.labels) == [e.video.label for e in test]
    assert all(v.spans == () for v in splits.train.videos)
    assert [v.spans for v in splits.test.videos] == [e.video.spans for e in test]
    assert [(v.path, v.cls, v.frames) for v in splits.train.videos + splits.test.videos] == [
        (e.video.path, e.video.cls, e.video.frames) for e in entries]
    features = np.concatenate([splits.train.features.numpy(), splits.test.features.numpy()])
    for i in range(len(entries)):
        expected = np.concatenate([to_segments(layout.raw(i, s), "clips")[0] for s in ("RGB", "FLOW")],
                                  axis=1)
        np.testing.assert_array_equal(features[i], expected)
    assert splits.test.snippets is None
    with_snippets = store.load(data_cfg(out), ("RGB", "FLOW"), DIM, snippets=True)
    counts = [math.ceil(e.video.frames / 16) for e in test]
    assert list(with_snippets.test.snippet_counts) == counts and with_snippets.train.snippets is None
    assert with_snippets.test.snippets.shape == (sum(counts), 2 * DIM)
    rows = np.cumsum([0] + counts)
    for j, e in enumerate(test):
        i = entries.index(e)
        expected = np.concatenate([layout.raw(i, s).mean(axis=1) for s in ("RGB", "FLOW")], axis=1)
        np.testing.assert_allclose(with_snippets.test.snippets[rows[j]:rows[j + 1]].numpy(), expected,
                                   rtol=1e-6)
    flow = store.load(data_cfg(out), ("FLOW",), DIM)
    np.testing.assert_array_equal(flow.test.features.numpy(), splits.test.features[:, :, DIM:].numpy())

    seg_out = store.write(SegmentsLayout(tmp_path, entries), tmp_path / "seg.h5", progress=False).path
    seg = store.load(data_cfg(seg_out), ("RGB",), DIM)
    assert seg.has_movement and seg.train.movement.shape == (len(train), N_SEGMENTS)
    np.testing.assert_array_equal(seg.test.movement[0].numpy(), np.arange(N_SEGMENTS) + len(train))


def test_load_errors(tmp_path, entries):
    with pytest.raises(ValueError, match="data.path=STORE.h5"):
        store.load(data_cfg(None), ("RGB",), DIM)
    missing = tmp_path / "missing.h5"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        store.load(data_cfg(missing), ("RGB",), DIM)

    out = tmp_path / "s.h5"
    with pytest.raises(store.StoreReadError):
        store.write(ClipsLayout(tmp_path, entries, fail_at=3), out, streams=("RGB",), progress=False)
    partial = store.partial_path(out)
    with pytest.raises(ValueError, match="re-run") as err:
        store.load(data_cfg(partial), ("RGB",), DIM)
    assert str(partial) in str(err.value)
    with pytest.raises(FileNotFoundError, match="interrupted") as err:
        store.load(data_cfg(out), ("RGB",), DIM)
    assert str(partial) in str(err.value)

    store.write(ClipsLayout(tmp_path, entries), out, streams=("RGB",), progress=False)
    with pytest.raises(ValueError) as err:
        store.load(data_cfg(out), ("RGB", "FLOW"), DIM)
    message = str(err.value)
    assert str(out) in message and "['RGB']" in message and "modality=RGB" in message
    with pytest.raises(ValueError) as err:
        store.load(data_cfg(out), ("RGB",), 1024)
    message = str(err.value)
    assert str(out) in message and f"{DIM}" in message and "1024" in message and "extractor=" in message

    with pytest.raises(ValueError, match="keep_snippets=true") as err:
        store.load(data_cfg(out), ("RGB",), DIM, snippets=True)
    assert str(out) in str(err.value) and "eval.protocol=segments" in str(err.value)

    not_store = tmp_path / "other.h5"
    with h5py.File(not_store, "w") as f:
        f.attrs["format"] = "something"
    with pytest.raises(ValueError, match="not a vad-store"):
        store.load(data_cfg(not_store), ("RGB",), DIM)


def test_a_method_pooling_otherwise_pools_the_snippets_a_store_keeps(tmp_path, entries):
    from vad.pooling import Pooling

    layout = ClipsLayout(tmp_path, entries)
    pooling = Pooling(5, False, "floor")  # RTFM-family pooling, 5 segments (tiny videos here)
    kept = store.write(layout, tmp_path / "all.h5", keep_snippets="all", progress=False).path
    splits = store.load(data_cfg(kept), ("RGB", "FLOW"), DIM, pooling=pooling)
    features = np.concatenate([splits.train.features.numpy(), splits.test.features.numpy()])
    assert features.shape == (len(entries), 5, 2 * DIM)
    for i in range(len(entries)):  # the crop mean of every snippet, then floor bins, no L2
        snippets = np.concatenate([layout.raw(i, s).mean(axis=1) for s in ("RGB", "FLOW")], axis=1)
        edges = np.linspace(0, len(snippets), 6).astype(int)
        expected = [snippets[a:b].mean(axis=0) if b > a else snippets[a] for a, b in zip(edges[:-1], edges[1:])]
        np.testing.assert_allclose(features[i], np.stack(expected), rtol=1e-5)
    test_only = store.write(layout, tmp_path / "test.h5", keep_snippets=True, progress=False).path
    with pytest.raises(ValueError, match=r"trains on 5-floor segments \(method.inputs\), which store .* cannot "
                                         r"give: .*prepare it again with keep_snippets=all"):
        store.load(data_cfg(test_only), ("RGB",), DIM, pooling=pooling)


def test_a_store_of_a_benchmarks_features_is_refused_under_another_dataset(tmp_path, entries):
    out = store.write(ClipsLayout(tmp_path, entries), tmp_path / "s.h5", streams=("RGB",), progress=False).path
    with h5py.File(out, "r+") as f:
        f.attrs["source"] = "xd_i3d /data/xd-violence"  # as vad.prepare data=xd_i3d records it
    assert len(store.load(data_cfg(out), ("RGB",), DIM, dataset="xd_violence").test) == 4
    with pytest.raises(ValueError, match=r"prepared from data=xd_i3d, xd_violence features, but "
                                         r"dataset=ucf_crime: add dataset=xd_violence"):
        store.load(data_cfg(out), ("RGB",), DIM, dataset="ucf_crime")


def test_every_crop_is_its_own_training_bag(tmp_path, entries):
    """crops=all: each training crop is a bag of its video; test videos keep (C, 32, D)."""
    layout = ClipsLayout(tmp_path, entries)
    every = store.write(layout, tmp_path / "all.h5", crops="all", progress=False).path
    splits = store.load(data_cfg(every), ("RGB",), DIM)
    train = [e for e in entries if e.split == "train"]
    test = [e for e in entries if e.split == "test"]
    assert splits.train.features.shape == (len(train) * CROPS, N_SEGMENTS, DIM)
    assert splits.test.features.shape == (len(test), CROPS, N_SEGMENTS, DIM)
    assert [v.path for v in splits.train.videos] == [e.video.path for e in train for _ in range(CROPS)]
    raw = layout.read(train[1], "RGB")
    for c in range(CROPS):
        np.testing.assert_array_equal(splits.train.features[CROPS + c].numpy(),
                                      to_segments(raw, "clips", "one", c)[0])


def test_prepare_config(compose_cfg, tmp_path, entries):
    """conf/prepare.yaml composes; prepare() picks the modality's streams and returns counts."""
    out = tmp_path / "p.h5"
    cfg = compose_cfg([f"out={out}", "progress=false"], config_name="prepare")
    assert cfg.data.name == "ucf_crime_npy" and cfg.get("modality") is None
    assert cfg.keep_snippets is False and "crops" not in cfg.data  # segment layout: no crops
    result = prepare(cfg, layout=ClipsLayout(tmp_path, entries))
    assert result["written"] == len(entries) and result["streams"] == ["RGB", "FLOW"]
    assert result["mb_read"] > 0 and result["seconds"] > 0 and result["out"] == str(out)

    cfg = compose_cfg([f"out={tmp_path / 'rgb.h5'}", "modality=RGB", "data=tencrop_npy", "data.crops=one", "data.crop=1",
                       "progress=false"], config_name="prepare")
    result = prepare(cfg, layout=ClipsLayout(tmp_path, entries))
    assert result["streams"] == ["RGB"] and result["crops"] == "one"
    with pytest.raises(ValueError, match="not a feature layout"):
        prepare(compose_cfg([f"out={out}", "data=store"], config_name="prepare"))


def _seed_folder(root: Path, n: int = 3, dim: int = 1024) -> dict:
    """A tiny seed-notebook folder: own lists and (32, dim) files in all_rgbs/ and all_flows/."""
    arrays = {}
    rng = np.random.default_rng(0)
    for name in ("train_anomaly.txt", "train_normal.txt", "test_anomalyv2.txt", "test_normalv2.txt"):
        lines = [ln.strip() for ln in shipped(name).read_text().splitlines() if ln.strip()][:n]
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("\n".join(lines) + "\n")
        for line in lines:
            path = line.split("|")[0].split()[0]
            for folder in ("all_rgbs", "all_flows"):
                file = root / folder / f"{path}.npy"
                file.parent.mkdir(parents=True, exist_ok=True)
                arrays[(folder, path)] = rng.random((N_SEGMENTS, dim), dtype=np.float32)
                np.save(file, arrays[(folder, path)])
    return arrays


@pytest.mark.skipif(not HAS_REGISTRY, reason="vad/data/layouts/registry.py (open_layout) is not there yet")
def test_prepare_cli(tmp_path, cache_dir, compose_cfg):
    root = tmp_path / "feats"
    arrays = _seed_folder(root)
    out = tmp_path / "store.h5"
    # -X importtime lists every module imported: prepare must not pull in Lightning.
    proc = run_cli(["-X", "importtime", "-m", "vad.prepare", "data=ucf_crime_npy", f"data.root={root}",
                    f"out={out}", "progress=false", f"hydra.run.dir={tmp_path / 'run'}"],
                   cwd=tmp_path, env_cache=cache_dir, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "pytorch_lightning" not in proc.stderr and "lightning_fabric" not in proc.stderr
    assert out.exists() and (tmp_path / "run" / "prepare.json").exists()

    splits = store.load(data_cfg(out), ("RGB", "FLOW"), 1024)
    assert len(splits.train) == 6 and len(splits.test) == 6
    first = splits.train.videos[0].path
    np.testing.assert_array_equal(splits.train.features[0, :, :1024].numpy(), arrays[("all_rgbs", first)])
    np.testing.assert_array_equal(splits.train.features[0, :, 1024:].numpy(), arrays[("all_flows", first)])
    assert all(v.spans for v in splits.test.videos if v.label)

    cfg = compose_cfg(["data=ucf_crime_npy", f"data.root={root}", f"out={out}", "progress=false"],
                      config_name="prepare")
    result = prepare(cfg)
    assert (result["written"], result["skipped"]) == (0, 12)


def test_training_on_every_crop_averages_test_crops(tmp_path, compose_cfg):
    """A real training run on a crops=all store: each test video's saved scores are the mean
    over its crops of the best checkpoint's learner applied to each crop, computed by hand."""
    import torch

    from vad.train import train

    every = store.write(ClipsLayout(tmp_path, _entries(3)), tmp_path / "all.h5", crops="all",
                        progress=False).path
    cfg = compose_cfg(["data=store", f"data.path={every}", "extractor.dim=8", "modality=TWO",
                       "data.batch_size=4", "trainer.max_epochs=2", "scheduler=none",
                       "logger=none", "trainer.enable_progress_bar=false"])
    result = train(cfg)
    assert result["synthetic"] is False and "crops=all" in result["data"]

    test = store.load(data_cfg(every), ("RGB", "FLOW"), DIM).test
    assert test.features.shape == (len(test), CROPS, N_SEGMENTS, 2 * DIM)
    weights = torch.load(result["best"]["checkpoint"], map_location="cpu", weights_only=False)["state_dict"]
    w = {k: v.double().numpy() for k, v in weights.items()}
    x = test.features.double().numpy()  # (videos, crops, 32, 2 * DIM)
    hidden = np.maximum(x @ w["network.net.0.weight"].T + w["network.net.0.bias"], 0)
    hidden = hidden @ w["network.net.3.weight"].T + w["network.net.3.bias"]
    per_crop = 1 / (1 + np.exp(-(hidden @ w["network.net.5.weight"].T + w["network.net.5.bias"])[..., 0]))
    saved = np.load(Path(cfg.paths.output_dir) / "scores.npz")
    assert [str(p) for p in saved["path"]] == [v.path for v in test.videos]
    np.testing.assert_array_equal(saved["offsets"], np.arange(len(test) + 1) * N_SEGMENTS)
    np.testing.assert_allclose(saved["scores"].reshape(len(test), N_SEGMENTS), per_crop.mean(axis=1),
                               rtol=0, atol=1e-6)
    assert not np.allclose(per_crop.mean(axis=1), per_crop[:, 0], atol=1e-4)  # the crops differ


def _junk_stores(tmp_path: Path) -> dict:
    """Files at a store's path that are no usable store: not HDF5, foreign HDF5, version 2."""
    junk = tmp_path / "junk.h5"
    junk.write_text("not an HDF5 file")
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f.attrs["format"] = "something else"
    future = tmp_path / "future.h5"
    with h5py.File(future, "w") as f:
        f.attrs["format"], f.attrs["version"] = store.FORMAT, 2
    return {"cannot be opened as HDF5": junk, "is not a vad-store file": foreign,
            "of version 2, this code reads and writes version 1": future}


def test_another_out_is_advised_when_writing_only(tmp_path, entries):
    """Reading a bad file (training, evaluation) says how to make the store again, not to use
    another out=; writing over it (vad.prepare, vad.extract) does advise another out=."""
    for problem, path in _junk_stores(tmp_path).items():
        with pytest.raises(ValueError) as err:
            store.load(data_cfg(path), ("RGB",), DIM)
        message = str(err.value)
        assert str(path) in message and problem in message
        assert "another out=" not in message
        assert "python -m vad.prepare" in message and "point data.path at another store" in message
        with pytest.raises(ValueError) as err:
            store.write(ClipsLayout(tmp_path, entries), path, progress=False)
        assert str(path) in str(err.value) and problem in str(err.value)
        assert str(err.value).endswith("or use another out=")

    out = store.write(ClipsLayout(tmp_path, entries), tmp_path / "s.h5", progress=False).path
    with pytest.raises(ValueError, match="keep_snippets=true") as err:
        store.load(data_cfg(out), ("RGB",), DIM, snippets=True)
    assert "out=" not in str(err.value)


def test_store_of_test_videos_only_loads_for_evaluation(tmp_path, entries):
    """need_train=False (vad.evaluate): an empty training set and every test video;
    need_train=True (training): an error naming the store and saying why."""
    from vad.data import load_splits

    test = [e for e in entries if e.split == "test"]
    layout = ClipsLayout(tmp_path, test)
    out = store.write(layout, tmp_path / "test only.h5", progress=False).path
    splits = load_splits(data_cfg(out), ("RGB", "FLOW"), "I3D", DIM, need_train=False)
    assert len(splits.train) == 0 and splits.train.features.shape == (0, N_SEGMENTS, 2 * DIM)
    assert [v.path for v in splits.test.videos] == [e.video.path for e in test]
    assert [v.spans for v in splits.test.videos] == [e.video.spans for e in test]
    for i in range(len(test)):
        expected = np.concatenate([to_segments(layout.raw(i, s), "clips")[0] for s in ("RGB", "FLOW")],
                                  axis=1)
        np.testing.assert_array_equal(splits.test.features[i].numpy(), expected)
    assert splits.feature_dim == 2 * DIM
    with pytest.raises(ValueError) as err:
        load_splits(data_cfg(out), ("RGB", "FLOW"), "I3D", DIM)
    message = str(err.value)
    assert f"store {out} has no training videos ({len(test)} test videos)" in message
    assert "python -m vad.evaluate" in message and "\"data.path='" in message


def test_evaluate_on_a_store_of_test_videos_only(tmp_path, compose_cfg):
    """vad.evaluate on a store without training videos (as vad.extract writes from unlabelled
    footage) scores its test videos like the training run scored them."""
    from vad.evaluate import evaluate
    from vad.train import train

    entries = _entries(3)
    full = store.write(ClipsLayout(tmp_path, entries), tmp_path / "full.h5", progress=False).path
    result = train(compose_cfg(["data=store", f"data.path={full}", "extractor.dim=8", "modality=TWO",
                                "data.batch_size=3", "trainer.max_epochs=1", "scheduler=none",
                                "logger=none", "trainer.enable_progress_bar=false"]))
    class TestOnly(ClipsLayout):  # the same features, test videos only
        def entries(self):
            return [e for e in self._entries if e.split == "test"]

    only = store.write(TestOnly(tmp_path, entries), tmp_path / "test only.h5", progress=False).path
    evaluated = evaluate(compose_cfg([f"ckpt_path={result['best']['checkpoint']}", "data=store",
                                      f"data.path={only}"], config_name="evaluate"), overridden={"data"})
    assert evaluated["metrics"]["auc"] == pytest.approx(result["best"]["auc"], abs=1e-9)
    assert evaluated["metrics"]["ap"] == pytest.approx(result["best"]["ap"], abs=1e-9)


def test_summary_says_each_count_once(tmp_path, entries, caplog):
    """The summary of a write: written now + already done + bad = videos, each said once."""
    caplog.set_level("INFO")

    class WithBad(ClipsLayout):
        def read(self, entry, stream):
            if self._entries.index(entry) in (1, 4):
                raise store.SkipVideo(entry.video.path, "unreadable")
            return super().read(entry, stream)

    n = len(entries)
    out = tmp_path / "s.h5"
    with pytest.raises(store.StoreReadError):
        store.write(WithBad(tmp_path, entries, fail_at=6), out, progress=False)
    caplog.clear()
    report = store.write(WithBad(tmp_path, entries), out, progress=False)
    assert (report.written, report.already_done, len(report.failed)) == (n - 6, 4, 2)
    assert report.counts() == f"{n} videos: {n - 6} written, 4 already done, 2 bad"
    assert f"store {out}: {report.counts()}" in caplog.text
    assert "skipped" not in caplog.text.replace("skipping video", "")
    caplog.clear()
    again = store.write(WithBad(tmp_path, entries), out, progress=False)
    assert again.counts() == f"{n} videos: 0 written, {n - 2} already done, 2 bad"
    assert again.as_dict()["already_done"] == n - 2 and again.as_dict()["skipped"] == n


def test_ctrl_c_during_a_write_keeps_the_finished_videos(tmp_path, entries):
    """KeyboardInterrupt while reading video 3: Interrupted says 3 of N are kept in the partial
    file (closed, resumable); the resumed store equals one written in one go."""
    out = tmp_path / "s.h5"

    class CtrlC(ClipsLayout):
        def read(self, entry, stream):
            if self._entries.index(entry) == 3 and self.fail_at == 3:
                raise KeyboardInterrupt
            return super().read(entry, stream)

    with pytest.raises(store.Interrupted) as err:
        store.write(CtrlC(tmp_path, entries, fail_at=3), out, progress=False)
    partial = store.partial_path(out)
    assert str(err.value) == (f"interrupted after 3 of {len(entries)} videos; the finished ones are "
                              f"kept in {partial}")
    assert isinstance(err.value, KeyboardInterrupt) and partial.is_file() and not out.exists()
    layout = CtrlC(tmp_path, entries)
    report = store.write(layout, out, progress=False)
    assert (report.skipped, report.written) == (3, len(entries) - 3)
    assert {i for i, _ in layout.reads} == set(range(3, len(entries)))
    fresh = store.write(ClipsLayout(tmp_path, entries), tmp_path / "fresh.h5", progress=False).path
    assert_same(contents(out), contents(fresh))
