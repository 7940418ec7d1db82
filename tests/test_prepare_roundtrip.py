"""``vad.prepare`` round trips: the same videos written in all five layouts, from ONE set of
per-snippet arrays, give the same store features whichever layout they were prepared from,
and the same features as reading the layout directly (the training path)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from tests.conftest import ROOT, make_cfg, run_cli
from vad.constants import N_SEGMENTS
from vad.data import load_splits, store
from vad.data.convert import to_segments
from vad.data.ucf_crime import catalogue
from vad.prepare import prepare
from vad.types import Video

DIM = 16
CROPS = 10
LAYOUTS = ("ucf_crime_npy", "sultani_txt", "capstone_h5", "tencrop_npy", "percrop_npy")
SEGMENT_LAYOUTS = ("ucf_crime_npy", "sultani_txt", "capstone_h5")
CLIP_LAYOUTS = ("tencrop_npy", "percrop_npy")
# Snippets per video, fewer and more than the 32 segments (1 snippet: every segment is it).
TRAIN_T = [5, 20, 32, 33, 70, 1, 47, 12]
TEST_T = [40, 9, 33, 64, 3, 25]


def pick_videos(counts=(4, 4, 3, 3), test_t=TEST_T) -> tuple[list[Video], list[Video]]:
    """Real UCF-Crime videos (train anomalous, train normal, test anomalous, test normal);
    test videos get frame counts with ceil(frames / 16) == T and spans inside the video."""
    train, test = catalogue()
    n_ta, n_tn, n_sa, n_sn = counts
    train_videos = ([v for v in train if v.label][::97][:n_ta] + [v for v in train if not v.label][::97][:n_tn])
    chosen = [v for v in test if v.label][::29][:n_sa] + [v for v in test if not v.label][::31][:n_sn]
    test_videos = []
    for i, v in enumerate(chosen):
        frames = 16 * test_t[i] - (i % 16)
        spans = ()
        if v.label:
            spans = (((2, frames // 3), (frames // 2, frames - 1)) if i == 0
                     else ((frames // 4, max(frames // 4, frames // 2)),))
        test_videos.append(Video(v.path, v.cls, frames, spans))
    return train_videos, test_videos


def _annotation_line(v: Video) -> str:
    bounds = [b for span in v.spans for b in span] + [-1] * (4 - 2 * len(v.spans))
    return " ".join([v.path, str(v.frames), v.cls, *map(str, bounds)])


def build(base: Path, dim: int = DIM, counts=(4, 4, 3, 3), train_t=TRAIN_T, test_t=TEST_T,
          which=LAYOUTS, seed: int = 0) -> dict:
    """Write the same videos in the layouts ``which`` under ``base``; return the videos, the
    per-snippet arrays, the pooled (32, D) arrays and each layout's ``data.*`` overrides."""
    train, test = pick_videos(counts, test_t)
    n_ta, _, n_sa, _ = counts
    rng = np.random.default_rng(seed)
    lengths = {v.name: train_t[i % len(train_t)] for i, v in enumerate(train)}
    lengths.update({v.name: test_t[i] for i, v in enumerate(test)})
    # Strictly positive: no all-zero segment whatever the crop mode.
    clips = {name: rng.random((t, CROPS, dim), dtype=np.float32) + np.float32(0.01)
             for name, t in lengths.items()}
    pooled = {name: to_segments(x, "clips", "mean")[0] for name, x in clips.items()}
    videos = train + test
    base.mkdir(parents=True, exist_ok=True)

    # Official-split lists as options (sultani_txt, capstone_h5, percrop_npy; tencrop_npy's
    # test_annotation).
    train_list, test_annotation = base / "train_list.txt", base / "test_annotation.txt"
    train_list.write_text("".join(f"{v.path}\n" for v in train))
    test_annotation.write_text("".join(_annotation_line(v) + "\n" for v in test))
    official = [f"data.train_list={train_list}", f"data.test_annotation={test_annotation}"]
    overrides = {}

    if "tencrop_npy" in which:
        root = base / "tencrop"
        root.mkdir()
        for name, x in clips.items():
            np.save(root / f"{name}_i3d.npy", x)
        (root / "ucf-i3d.list").write_text("".join(f"/home/other/train/{v.name}_i3d.npy\n" for v in train))
        (root / "ucf-i3d-test.list").write_text("".join(f"/home/other/test/{v.name}_i3d.npy\n" for v in test))
        overrides["tencrop_npy"] = [f"data.root={root}", f"data.n_train_anomalous={n_ta}",
                                    f"data.n_test_anomalous={n_sa}", f"data.test_annotation={test_annotation}"]
    if "percrop_npy" in which:
        root = base / "percrop"
        for v in videos:
            folder = root / (v.cls if v.label else Path(v.path).parent.name)
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(CROPS):
                np.save(folder / f"{v.name}__{k}.npy", clips[v.name][:, k])
        overrides["percrop_npy"] = [f"data.root={root}", *official]
    if "ucf_crime_npy" in which:
        root = base / "seed"
        (root / "train_anomaly.txt").parent.mkdir(parents=True)
        (root / "train_anomaly.txt").write_text("".join(f"{v.path}\n" for v in train if v.label))
        (root / "train_normal.txt").write_text("".join(f"{v.path}\n" for v in train if not v.label))
        (root / "test_anomalyv2.txt").write_text("".join(
            f"{v.path}|{v.frames}|{[b for span in v.spans for b in span]}\n" for v in test if v.label))
        (root / "test_normalv2.txt").write_text("".join(f"{v.path} {v.frames} -1\n"
                                                        for v in test if not v.label))
        for v in videos:
            file = root / "all_rgbs" / f"{v.path}.npy"
            file.parent.mkdir(parents=True, exist_ok=True)
            np.save(file, pooled[v.name])
        overrides["ucf_crime_npy"] = [f"data.root={root}"]
    if "sultani_txt" in which:
        root = base / "sultani"
        for i, v in enumerate(videos):
            file = [root / f"{v.name}.txt", root / f"{v.name}_C.txt", root / v.cls / f"{v.name}.txt"][i % 3]
            file.parent.mkdir(parents=True, exist_ok=True)
            np.savetxt(file, pooled[v.name], fmt="%f")
        overrides["sultani_txt"] = [f"data.root={root}", *official]
    if "capstone_h5" in which:
        root = base / "capstone.h5"
        with h5py.File(root, "w") as f:
            for v in videos:
                folder = v.cls if v.label else Path(v.path).parent.name
                f.create_dataset(f"{folder}/{v.name}.mp4/i3d_rgb_features", data=pooled[v.name].astype(np.float64))
        overrides["capstone_h5"] = [f"data.root={root}", *official]
    return {"train": train, "test": test, "clips": clips, "pooled": pooled, "lengths": lengths,
            "overrides": overrides, "base": base}


def store_cfg(path: Path):
    return OmegaConf.create({"name": "store", "path": str(path), "batch_size": 30, "eval_batch_size": 512,
                             "val_source": "test", "holdout_fraction": 0.1})


def prepare_store(world: dict, layout: str, tag: str, extra=()) -> tuple[Path, dict, object]:
    """``vad.prepare.prepare`` on a config composed from conf/prepare.yaml, as the CLI would."""
    out = world["base"] / "stores" / f"{layout}-{tag}.h5"
    cfg = make_cfg([f"data={layout}", *world["overrides"][layout], f"out={out}", "progress=false", *extra],
                   world["base"] / "runs" / f"{layout}-{tag}", config_name="prepare")
    GlobalHydra.instance().clear()
    result = prepare(cfg)
    assert out.is_file() and not store.partial_path(out).exists()
    return out, result, cfg


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build(tmp_path_factory.mktemp("roundtrip"))


@pytest.fixture(scope="module")
def stores(world):
    """Every store once: (layout, tag) -> (path, prepare's result, the prepare config)."""
    made = {(layout, "mean"): prepare_store(world, layout, "mean") for layout in LAYOUTS}
    for layout in CLIP_LAYOUTS:
        made[(layout, "one2")] = prepare_store(world, layout, "one2", ["data.crops=one", "data.crop=2"])
    made[("tencrop_npy", "snippets")] = prepare_store(world, "tencrop_npy", "snippets", ["keep_snippets=true"])
    return made


def _load(path: Path, dim: int = DIM, **kw):
    return load_splits(store_cfg(path), ("RGB",), "test", dim, **kw)


def _same_videos(splits, world) -> None:
    assert splits.train.videos == world["train"]
    assert splits.test.videos == world["test"]
    assert splits.synthetic is False


# --- the same features whatever the layout ----------------------------------------------

def test_prepare_reports_counts(world, stores):
    n = len(world["train"]) + len(world["test"])
    for (layout, tag), (out, result, _) in stores.items():
        assert result["out"] == str(out) and result["videos"] == result["written"] == n, (layout, tag)
        assert result["skipped"] == 0 and result["streams"] == ["RGB"] and result["dims"] == {"RGB": DIM}
        crops = {"mean": "mean", "one2": "one", "snippets": "mean"}[tag] if layout in CLIP_LAYOUTS else "none"
        assert result["crops"] == crops, (layout, tag)
        assert result["source"].startswith(layout + " ")
        with h5py.File(out, "r") as f:
            assert f.attrs["layout"] == layout and bool(f.attrs["complete"])
            assert int(f.attrs["n_videos"]) == n


def test_segment_layouts_give_identical_stores(world, stores):
    seed, sultani, capstone = (_load(stores[(layout, "mean")][0]) for layout in SEGMENT_LAYOUTS)
    for splits in (seed, sultani, capstone):
        _same_videos(splits, world)
        assert splits.train.features.shape == (len(world["train"]), N_SEGMENTS, DIM)
        assert splits.test.features.shape == (len(world["test"]), N_SEGMENTS, DIM)
    expected = np.stack([world["pooled"][v.name] for v in world["train"] + world["test"]])
    for part, rows in (("train", slice(0, len(world["train"]))), ("test", slice(len(world["train"]), None))):
        np.testing.assert_array_equal(getattr(seed, part).features.numpy(), expected[rows])
        # float64 in the file, the same float32 values back.
        np.testing.assert_array_equal(getattr(capstone, part).features.numpy(), expected[rows])
        # '%f' text: six decimals.
        np.testing.assert_allclose(getattr(sultani, part).features.numpy(), expected[rows], rtol=0, atol=1e-6)


@pytest.mark.parametrize("tag,crops,crop", [("mean", "mean", 0), ("one2", "one", 2)])
def test_clip_layouts_give_identical_stores(world, stores, tag, crops, crop):
    tencrop, percrop = (_load(stores[(layout, tag)][0]) for layout in CLIP_LAYOUTS)
    _same_videos(tencrop, world)
    _same_videos(percrop, world)
    for part in ("train", "test"):
        np.testing.assert_array_equal(getattr(tencrop, part).features.numpy(),
                                      getattr(percrop, part).features.numpy())
    expected = np.stack([to_segments(world["clips"][v.name], "clips", crops, crop)[0]
                         for v in world["train"] + world["test"]])
    got = np.concatenate([tencrop.train.features.numpy(), tencrop.test.features.numpy()])
    np.testing.assert_array_equal(got, expected)
    with h5py.File(stores[("tencrop_npy", tag)][0], "r") as f:
        assert (f.attrs["crops"], int(f.attrs["crop"])) == (crops, crop if crops == "one" else -1)
    if crops == "mean":
        # The clip layouts' mean-crop pooling is exactly what the segment layouts hold.
        seed = _load(stores[("ucf_crime_npy", "mean")][0])
        for part in ("train", "test"):
            np.testing.assert_array_equal(getattr(tencrop, part).features.numpy(),
                                          getattr(seed, part).features.numpy())
    else:
        assert not np.allclose(got, np.stack([world["pooled"][v.name] for v in world["train"] + world["test"]]))


@pytest.mark.parametrize("layout,extra,tag", [(name, [], "mean") for name in LAYOUTS]
                         + [("tencrop_npy", ["data.crops=one", "data.crop=2"], "one2"),
                            ("percrop_npy", ["data.crops=one", "data.crop=2"], "one2")])
def test_direct_loading_equals_the_store(world, stores, tmp_path, layout, extra, tag):
    """The training path (load_splits on the layout's data config: reading.load_layout) gives
    the store's features and videos."""
    cfg = make_cfg(["data=" + layout, *world["overrides"][layout], *extra], tmp_path / "run")
    GlobalHydra.instance().clear()
    assert cfg.data.name == layout
    direct = load_splits(cfg.data, ("RGB",), "test", DIM)
    stored = _load(stores[(layout, tag)][0])
    _same_videos(direct, world)
    for part in ("train", "test"):
        np.testing.assert_array_equal(getattr(direct, part).features.numpy(),
                                      getattr(stored, part).features.numpy())
    assert direct.description.startswith(layout) and stored.description.startswith("vad store")
    with pytest.raises(ValueError, match="keep_snippets=true"):
        load_splits(cfg.data, ("RGB",), "test", DIM, snippets=True)


# --- per-snippet test features ----------------------------------------------------------

def test_keep_snippets_stores_test_snippets(world, stores):
    path = stores[("tencrop_npy", "snippets")][0]
    splits = store.load(store_cfg(path), ("RGB",), DIM, snippets=True)
    _same_videos(splits, world)
    counts = [world["lengths"][v.name] for v in world["test"]]
    assert list(splits.test.snippet_counts) == counts
    assert all(math.ceil(v.frames / 16) == t for v, t in zip(splits.test.videos, counts))
    expected = np.concatenate([world["clips"][v.name].mean(axis=1, dtype=np.float64).astype(np.float32)
                               for v in world["test"]])
    assert splits.test.snippets.shape == (sum(counts), DIM)
    np.testing.assert_array_equal(splits.test.snippets.numpy(), expected)
    assert splits.train.snippets is None
    # Same 32-segment features as without snippets; train videos keep no snippets.
    mean = _load(stores[("tencrop_npy", "mean")][0])
    np.testing.assert_array_equal(splits.test.features.numpy(), mean.test.features.numpy())
    with h5py.File(path, "r") as f:
        kept = {f["videos"][g].attrs["split"]: "snippets" in f["videos"][g] for g in f["videos"]}
        assert kept == {"train": False, "test": True}
    assert store.load(store_cfg(path), ("RGB",), DIM).test.snippets is None
    with pytest.raises(ValueError, match="prepared without keep_snippets=true"):
        store.load(store_cfg(stores[("tencrop_npy", "mean")][0]), ("RGB",), DIM, snippets=True)
    with pytest.raises(ValueError, match="32-segment features only"):
        store.load(store_cfg(stores[("ucf_crime_npy", "mean")][0]), ("RGB",), DIM, snippets=True)


def test_keep_snippets_on_a_segment_layout_is_refused_clearly(world):
    """keep_snippets is for clip layouts only: prepare refuses it before writing anything."""
    with pytest.raises(ValueError, match="keep_snippets=true needs per-snippet features") as err:
        prepare_store(world, "ucf_crime_npy", "keep", ["keep_snippets=true"])
    assert "ucf_crime_npy" in str(err.value) and "tencrop_npy" in str(err.value)


# --- end to end through the command line ---------------------------------------------

def test_prepare_then_train_cli(tmp_path, cache_dir):
    """python -m vad.prepare (ten-crop, 2048-d) then python -m vad.train data=store on it."""
    world = build(tmp_path / "data", dim=2048, counts=(3, 3, 2, 2), train_t=[20, 27, 33, 40, 24, 31],
                  test_t=[36, 22, 29, 40], which=("tencrop_npy",))
    out = tmp_path / "store.h5"
    proc = run_cli(["-m", "vad.prepare", "data=tencrop_npy", *world["overrides"]["tencrop_npy"],
                    f"out={out}", "keep_snippets=true", "progress=false",
                    f"hydra.run.dir={tmp_path / 'prepare'}"], cwd=tmp_path, env_cache=cache_dir, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out.is_file()
    prepared = json.loads((tmp_path / "prepare" / "prepare.json").read_text())
    assert prepared["written"] == 10 and prepared["dims"] == {"RGB": 2048}

    run = tmp_path / "train"
    proc = run_cli(["-m", "vad.train", "data=store", f"data.path={out}", "extractor=I3D_R50", "modality=RGB",
                    "data.batch_size=2", "trainer.max_epochs=2", "logger=none", "eval.protocol=snippets",
                    "trainer.enable_progress_bar=false", f"hydra.run.dir={run}"],
                   cwd=ROOT, env_cache=cache_dir, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["synthetic"] is False and metrics["extractor"] == "I3D_R50"
    assert metrics["best"]["protocol"] == "snippets"
    assert math.isfinite(metrics["best"]["auc"]) and 0 <= metrics["best"]["auc"] <= 1
    assert "vad store" in metrics["data"]
