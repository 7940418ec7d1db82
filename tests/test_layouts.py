"""Every feature layout over tiny datasets written from ONE set of per-snippet features: the
same video must give the same 32-segment features whichever layout holds it."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from omegaconf import OmegaConf

from tests.conftest import CONF
from vad.constants import N_SEGMENTS, NORMAL
from vad.data import load_splits
from vad.data.convert import to_segments
from vad.data.layouts.base import UnreadableFile
from vad.data.layouts.npy import load_npy
from vad.data.layouts.capstone_h5 import CapstoneH5
from vad.data.layouts.percrop_npy import PercropNpy
from vad.data.layouts.registry import LAYOUTS, open_layout
from vad.data.layouts.seed_npy import SeedNpy
from vad.data.layouts.sultani_txt import SultaniTxt, official_entries
from vad.data.layouts.tencrop_npy import TencropNpy
from vad.data.reading import load_layout, read_layout
from vad.data.ucf_crime import catalogue, shipped
from vad.types import Entry

DIM = 8
CROPS = 10
# Two of the real C3D feature files published with Sultani et al. (copied from shared/ucf_crime).
SULTANI_SAMPLES = Path(__file__).parent / "data" / "sultani_c3d_samples"
# Keys every data option has (the training ones come from conf/data/shared/ through `defaults`).
GENERIC_KEYS = {"defaults", "name", "root", "batch_size", "eval_batch_size", "val_source", "holdout_fraction",
                "crops", "crop", "dedupe"}


def _annotation_lines(name: str) -> dict[str, str]:
    """Lines of a shipped annotation file by video name."""
    return {Path(ln.split()[0]).name.split(".")[0]: ln.strip()
            for ln in shipped(name).read_text().splitlines() if ln.strip()}


def _choose():
    train, test = catalogue()
    pick = lambda videos, label, step, n: [v for v in videos if v.label == label][::step][:n]  # noqa: E731
    return (pick(train, 1, 250, 3), pick(train, 0, 300, 2),
            [v for v in test if v.label and len(v.spans) == 2][:1] + pick(test, 1, 40, 2), pick(test, 0, 50, 2))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Write the same videos in all five layouts; return roots, options and the arrays."""
    base = tmp_path_factory.mktemp("layouts")
    train_a, train_n, test_a, test_n = _choose()
    train, test = train_a + train_n, test_a + test_n
    rng = np.random.default_rng(0)
    lengths = [5, 20, 32, 33, 70, 1, 47, 12, 90]  # fewer and more snippets than segments
    clips = {v.name: np.maximum(rng.normal(0, 1, (lengths[i % len(lengths)], CROPS, DIM)) - 0.3,
                                0).astype(np.float32) for i, v in enumerate(train + test)}

    # Official-split lists (as the options of sultani_txt, capstone_h5, percrop_npy).
    train_list = base / "train_list.txt"
    train_list.write_text("".join(f"{v.path}\n" for v in train))
    by_name = _annotation_lines("Test_Annotation.txt")
    test_annotation = base / "test_annotation.txt"
    test_annotation.write_text("".join(by_name[v.name] + "\n" for v in test))

    # Ten-crop: lists of another machine's absolute paths, label by position.
    tencrop = base / "tencrop"
    tencrop.mkdir()
    for name, x in clips.items():
        np.save(tencrop / f"{name}_i3d.npy", x)
    (tencrop / "ucf-i3d.list").write_text("".join(f"/home/other/UCF_Train_ten_crop_i3d/{v.name}_i3d.npy\n"
                                                  for v in train))
    (tencrop / "ucf-i3d-test.list").write_text("".join(f"/home/other/UCF_Test_ten_crop_i3d/{v.name}_i3d.npy\n"
                                                       for v in test))

    # Per-crop: class folders; normal videos in a folder of another name.
    percrop = base / "percrop"
    for v in train + test:
        folder = percrop / ("Normal_Videos_event" if v.cls == NORMAL else v.cls)
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(CROPS):
            np.save(folder / f"{v.name}__{k}.npy", clips[v.name][:, k])

    # Pooled once: seed npy (float32), Sultani txt ('%f'), capstone h5 (float64).
    pooled = {name: to_segments(x, "clips", "mean")[0] for name, x in clips.items()}
    seed = base / "seed"
    seed_path = {v.name: (f"Normal_Videos_event/{v.name}.mp4" if v.cls == NORMAL else v.path)
                 for v in train + test}
    (seed / "all_rgbs").mkdir(parents=True)
    (seed / "train_anomaly.txt").write_text("".join(seed_path[v.name] + "\n" for v in train_a))
    (seed / "train_normal.txt").write_text("".join(seed_path[v.name] + "\n" for v in train_n))
    (seed / "test_anomalyv2.txt").write_text("".join(
        f"{v.path}|{v.frames}|{[b for span in v.spans for b in span]}\n" for v in test_a))
    (seed / "test_normalv2.txt").write_text("".join(f"{seed_path[v.name]} {v.frames} -1\n" for v in test_n))
    for name, x in pooled.items():
        file = seed / "all_rgbs" / f"{seed_path[name]}.npy"
        file.parent.mkdir(parents=True, exist_ok=True)
        np.save(file, x)

    sultani = base / "sultani"
    sultani.mkdir()
    for i, v in enumerate(train + test):
        # The three names the released files use.
        file = [sultani / f"{v.name}_C.txt", sultani / v.cls / f"{v.name}.txt", sultani / f"{v.name}.txt"][min(i, 2)]
        file.parent.mkdir(exist_ok=True)
        np.savetxt(file, pooled[v.name], fmt="%f")

    capstone = base / "capstone.h5"
    with h5py.File(capstone, "w") as f:
        for v in train + test:
            folder = {"train": "Training_Normal_Videos_Anomaly", "test": "Testing_Normal_Videos_Anomaly"}[
                "train" if v in train else "test"] if v.cls == NORMAL else v.cls
            f.create_dataset(f"{folder}/{v.name}.mp4/i3d_rgb_features", data=pooled[v.name].astype(np.float64))

    official = {"train_list": train_list, "test_annotation": test_annotation}
    return {
        "train": train, "test": test, "clips": clips, "pooled": pooled, "official": official,
        "n": (len(train_a), len(test_a)), "seed_path": seed_path,
        "layouts": {
            "tencrop": TencropNpy(tencrop, n_train_anomalous=len(train_a), n_test_anomalous=len(test_a),
                                  test_annotation=test_annotation),
            "percrop": PercropNpy(percrop, **official),
            "seed": SeedNpy(seed),
            "sultani": SultaniTxt(sultani, **official),
            "capstone": CapstoneH5(capstone, **official),
        },
        "roots": {"tencrop": tencrop, "percrop": percrop, "seed": seed, "sultani": sultani,
                  "capstone": capstone},
    }


def _by_name(layout) -> dict[str, Entry]:
    return {e.video.name: e for e in layout.entries()}


# --- the same features whatever the layout ------------------------------------------------

@pytest.mark.parametrize("crops,crop", [("mean", 0), ("one", 0), ("one", 7), ("all", 0)])
def test_clip_layouts_agree(world, crops, crop):
    tencrop, percrop = world["layouts"]["tencrop"], world["layouts"]["percrop"]
    assert tencrop.kind == percrop.kind == "clips"
    a, b = _by_name(tencrop), _by_name(percrop)
    assert a.keys() == b.keys() == world["clips"].keys()
    for name, clips in world["clips"].items():
        raw_a, raw_b = tencrop.read(a[name], "RGB"), percrop.read(b[name], "RGB")
        assert raw_a.dtype == raw_b.dtype == np.float32 and raw_a.shape == clips.shape
        np.testing.assert_array_equal(raw_a, clips)
        np.testing.assert_array_equal(raw_b, clips)
        seg_a = to_segments(raw_a, "clips", crops, crop)
        seg_b = to_segments(raw_b, "clips", crops, crop)
        assert seg_a.shape == ((CROPS if crops == "all" else 1), N_SEGMENTS, DIM)
        np.testing.assert_array_equal(seg_a, seg_b)


def test_segment_layouts_agree_with_pooled_clips(world):
    seed, sultani, capstone = (world["layouts"][k] for k in ("seed", "sultani", "capstone"))
    tencrop = _by_name(world["layouts"]["tencrop"])
    entries = [_by_name(layout) for layout in (seed, sultani, capstone)]
    for name, pooled in world["pooled"].items():
        from_clips = to_segments(world["layouts"]["tencrop"].read(tencrop[name], "RGB"), "clips", "mean")
        out = [to_segments(layout.read(e[name], "RGB"), layout.kind) for layout, e in
               zip((seed, sultani, capstone), entries)]
        for x in out:
            assert x.shape == (1, N_SEGMENTS, DIM) and x.dtype == np.float32
        np.testing.assert_array_equal(out[0], from_clips)
        np.testing.assert_allclose(out[0][0], pooled, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(out[2], out[0])  # float64 in the file, float32 read
        np.testing.assert_allclose(out[1], out[0], rtol=0, atol=1e-6)  # '%f' text


# --- listing ---------------------------------------------------------------------------

def test_official_entries_order_labels_frames_spans(world):
    train, test = world["train"], world["test"]
    expected = [Entry(v, "train") for v in train] + [Entry(v, "test") for v in test]
    for key in ("sultani", "capstone", "percrop", "tencrop"):
        assert world["layouts"][key].entries() == expected, key
    entries = world["layouts"]["sultani"].entries()
    n_train_a, n_test_a = world["n"]
    assert [e.video.label for e in entries] == ([1] * n_train_a + [0] * (len(train) - n_train_a)
                                                + [1] * n_test_a + [0] * (len(test) - n_test_a))
    frames = {Path(p).name.split(".")[0]: int(f) for p, f in
              (ln.split() for ln in shipped("Train_Annotation.txt").read_text().splitlines() if ln.strip())}
    assert all(e.video.frames == frames[e.video.name] > 0 for e in entries if e.split == "train")
    annotation = _annotation_lines("Test_Annotation.txt")
    for e in entries[len(train):]:
        fields = annotation[e.video.name].split()
        assert e.video.frames == int(fields[1]) and e.video.path == fields[0]
        bounds = [int(b) for b in fields[3:] if int(b) >= 0]
        assert [b for span in e.video.spans for b in span] == bounds
    assert len(entries[len(train)].video.spans) == 2
    assert all(e.video.spans == () for e in entries if e.split == "train" or not e.video.label)
    # Without options: the full official split.
    full = official_entries()
    assert [e.split for e in full].count("train") == 1610 and [e.split for e in full].count("test") == 290


def test_seed_entries_follow_its_lists(world):
    layout, train, test = world["layouts"]["seed"], world["train"], world["test"]
    entries = layout.entries()
    assert [e.video.path for e in entries] == [world["seed_path"][v.name] for v in train] + [
        v.path if v.label else world["seed_path"][v.name] for v in test]
    assert [e.split for e in entries] == ["train"] * len(train) + ["test"] * len(test)
    assert [e.video.label for e in entries] == [v.label for v in train + test]
    assert [(e.video.frames, e.video.spans) for e in entries] == [(v.frames, v.spans) for v in train + test]
    assert layout.streams() == ("RGB",)
    assert layout.source(entries[0], "RGB") == str(world["roots"]["seed"] / "all_rgbs" /
                                                    f"{train[0].path}.npy")


def test_tencrop_labels_by_position_and_resolves_file_names(world, tmp_path):
    root = world["roots"]["tencrop"]
    train, test = world["train"], world["test"]
    unknown = "Abuse999_x264"  # not in the shipped annotations: class from the name, 0 frames
    np.save(tmp_path / f"{unknown}_i3d.npy", world["clips"][train[0].name])
    lines = [f"C:\\features\\{v.name}_i3d.npy" for v in train] + [f"/x/{unknown}_i3d.npy"]
    (tmp_path / "train.list").write_text("\n".join([lines[-1]] + lines[:-1]) + "\n")
    shutil.copy(root / "ucf-i3d-test.list", tmp_path / "ucf-i3d-test.list")
    for v in train + test:
        shutil.copy(root / f"{v.name}_i3d.npy", tmp_path)
    n_train_a, n_test_a = world["n"]
    layout = TencropNpy(tmp_path, train_list=tmp_path / "train.list", n_train_anomalous=n_train_a + 1,
                        n_test_anomalous=n_test_a)
    entries = layout.entries()
    assert entries[0].video.name == unknown and entries[0].video.cls == "Abuse"
    assert entries[0].video.frames == 0 and entries[0].video.label == 1
    assert [e.video for e in entries[1:len(train) + 1]] == train
    # Test videos get the shipped annotation's frames and spans.
    assert [e.video for e in entries[len(train) + 1:]] == test
    assert layout.source(entries[1], "RGB") == str(tmp_path / f"{train[0].name}_i3d.npy")
    np.testing.assert_array_equal(layout.read(entries[0], "RGB"), world["clips"][train[0].name])

    # A normal video at an anomalous position: the count option is wrong.
    wrong = TencropNpy(tmp_path, train_list=tmp_path / "train.list", n_train_anomalous=n_train_a + 2,
                       n_test_anomalous=n_test_a)
    with pytest.raises(ValueError, match=r"train\.list:\d+: .*Normal video but sits at an anomalous "
                                         r"position.*n_train_anomalous"):
        wrong.entries()
    with pytest.raises(ValueError, match="n_test_anomalous=99 but the list has only"):
        TencropNpy(tmp_path, train_list=tmp_path / "train.list", n_train_anomalous=n_train_a + 1,
                   n_test_anomalous=99).entries()
    (tmp_path / "ucf-i3d-test.list").write_text("/x/Abuse999_x264_i3d.npy\n")
    with pytest.raises(ValueError, match="Abuse999_x264 is not in the test annotation"):
        TencropNpy(tmp_path, train_list=tmp_path / "train.list", n_train_anomalous=n_train_a + 1,
                   n_test_anomalous=1).entries()
    with pytest.raises(FileNotFoundError, match=r"ucf-i3d\.list does not exist.*data\.train_list"):
        TencropNpy(tmp_path).entries()


def test_percrop_finds_any_folder_and_names_sources(world):
    layout = world["layouts"]["percrop"]
    normal = next(e for e in layout.entries() if not e.video.label)
    assert layout.folder(normal) == "Normal_Videos_event"
    assert layout.source(normal, "RGB") == str(world["roots"]["percrop"] / "Normal_Videos_event" /
                                               f"{normal.video.name}__{{0..9}}.npy")
    small = PercropNpy(world["roots"]["percrop"], n_crops=3, **world["official"])
    assert small.read(normal, "RGB").shape == (world["clips"][normal.video.name].shape[0], 3, DIM)


def test_capstone_autodetects_dataset_and_reopens_after_pickling(world):
    layout = world["layouts"]["capstone"]
    entry = layout.entries()[-1]
    assert layout.dataset == "i3d_rgb_features" and layout.streams() == ("RGB",)
    assert layout.source(entry, "RGB") == (f"{world['roots']['capstone']}::Testing_Normal_Videos_Anomaly/"
                                           f"{entry.video.name}.mp4/i3d_rgb_features")
    first = layout.read(entry, "RGB")
    clone = pickle.loads(pickle.dumps(layout))
    np.testing.assert_array_equal(clone.read(entry, "RGB"), first)
    clone.close()


# --- the real Sultani files --------------------------------------------------------------

def test_real_sultani_samples(tmp_path):
    names = sorted(p.stem for p in SULTANI_SAMPLES.glob("*.txt"))
    assert names == ["Explosion008_x264", "Normal_Videos_006_x264"]
    for name in names:
        shutil.copy(SULTANI_SAMPLES / f"{name}.txt", tmp_path)
    annotation = _annotation_lines("Test_Annotation.txt")
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "test.txt").write_text("".join(annotation[n] + "\n" for n in names))
    (tmp_path / "lists" / "train.txt").write_text("")
    layout = SultaniTxt(tmp_path, train_list=tmp_path / "lists" / "train.txt",
                        test_annotation=tmp_path / "lists" / "test.txt")
    entries = layout.entries()
    assert [e.video.name for e in entries] == names and {e.split for e in entries} == {"test"}
    assert [e.video.label for e in entries] == [int(not n.startswith("Normal")) for n in names]
    for entry in entries:
        x = layout.read(entry, "RGB")
        assert x.shape == (N_SEGMENTS, 4096) and x.dtype == np.float32
        assert (x >= 0).all()
        np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-3)
        assert to_segments(x, "segments").shape == (1, N_SEGMENTS, 4096)


# --- errors ------------------------------------------------------------------------------

def _copy(world, key, tmp_path) -> tuple[Path, dict]:
    root = world["roots"][key]
    if root.is_dir():
        shutil.copytree(root, tmp_path / key)
    else:
        shutil.copy(root, tmp_path / root.name)
    return tmp_path / root.name, world["official"]


def test_missing_files_are_named(world, tmp_path):
    root, official = _copy(world, "sultani", tmp_path)
    layout = SultaniTxt(root, **official)
    entry = layout.entries()[0]
    (root / f"{entry.video.name}_C.txt").unlink()
    with pytest.raises(FileNotFoundError) as info:
        layout.read(entry, "RGB")
    for candidate in (f"{entry.video.name}.txt", f"{entry.video.name}_C.txt", f"{entry.video.cls}/"):
        assert candidate in str(info.value)

    root, _ = _copy(world, "seed", tmp_path)
    layout = SeedNpy(root)
    entry = layout.entries()[1]
    Path(layout.source(entry, "RGB")).unlink()
    with pytest.raises(FileNotFoundError, match=f"{entry.video.path}.npy does not exist"):
        layout.read(entry, "RGB")

    root, _ = _copy(world, "tencrop", tmp_path)
    world_layout = world["layouts"]["tencrop"]
    layout = TencropNpy(root, n_train_anomalous=world_layout.n_anomalous["train"],
                        n_test_anomalous=world_layout.n_anomalous["test"],
                        test_annotation=world_layout.test_annotation)
    entry = layout.entries()[2]
    (root / f"{entry.video.name}_i3d.npy").unlink()
    with pytest.raises(FileNotFoundError, match=f"{entry.video.name}_i3d.npy does not exist"):
        layout.read(entry, "RGB")

    layout = world["layouts"]["capstone"]
    ghost = Entry(catalogue()[0][700], "train")
    with pytest.raises(FileNotFoundError, match=f"no group \\*/{ghost.video.name}.mp4"):
        layout.read(ghost, "RGB")
    with pytest.raises(FileNotFoundError, match=f"no .*/\\*/{ghost.video.name}__0.npy"):
        world["layouts"]["percrop"].read(ghost, "RGB")
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        SultaniTxt(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="is not a file.*data.root=PATH/TO/FEATURES.h5"):
        CapstoneH5(tmp_path)


def test_missing_crop_file_is_named(world, tmp_path):
    root, official = _copy(world, "percrop", tmp_path)
    layout = PercropNpy(root, **official)
    entry = layout.entries()[0]
    gone = root / entry.video.cls / f"{entry.video.name}__3.npy"
    gone.unlink()
    with pytest.raises(FileNotFoundError, match=f"{gone}.*crop 3 of data.n_crops=10"):
        layout.read(entry, "RGB")
    assert PercropNpy(root, n_crops=3, **official).read(entry, "RGB").shape[1] == 3
    bad = root / entry.video.cls / f"{entry.video.name}__1.npy"
    np.save(bad, np.zeros((2, DIM), dtype=np.float32))
    with pytest.raises(ValueError, match=f"{bad}: expected the shape of crop 0"):
        layout.read(entry, "RGB")
    np.save(bad, np.zeros((2, 3, DIM), dtype=np.float32))
    with pytest.raises(ValueError, match=r"expected \(T, D\) float features of one crop.*found \(2, 3, 8\)"):
        layout.read(entry, "RGB")


def _tencrop_copy(world, tmp_path) -> tuple[Path, TencropNpy]:
    """A copy of the ten-crop folder (to damage) and its layout with the same options."""
    root, _ = _copy(world, "tencrop", tmp_path)
    layout = world["layouts"]["tencrop"]
    return root, TencropNpy(root, n_train_anomalous=layout.n_anomalous["train"],
                            n_test_anomalous=layout.n_anomalous["test"], test_annotation=layout.test_annotation)


def test_wrong_shapes_name_file_expected_and_found(world, tmp_path):
    root, layout = _tencrop_copy(world, tmp_path)
    entry = layout.entries()[0]
    file = root / f"{entry.video.name}_i3d.npy"
    np.save(file, np.zeros((5, 2048), dtype=np.float32))
    with pytest.raises(ValueError) as info:
        layout.read(entry, "RGB")
    assert f"{file}: expected (T, 10, D) float features (D = 2048" in str(info.value)
    assert "found (5, 2048)" in str(info.value)
    np.save(file, np.zeros((10, 7, DIM), dtype=np.float32))
    with pytest.raises(ValueError, match="looks crop-first"):
        layout.read(entry, "RGB")

    root, _ = _copy(world, "seed", tmp_path)
    layout = SeedNpy(root)
    entry = layout.entries()[0]
    np.save(layout.source(entry, "RGB"), np.zeros((16, DIM), dtype=np.float32))
    with pytest.raises(ValueError, match=r"expected shape \(32, D\) for RGB features.*found \(16, 8\)"):
        layout.read(entry, "RGB")
    with pytest.raises(ValueError, match=r"expected shape \(32, 1024\).*found \(16, 8\)"):
        layout.read(entry, "RGB", dim=1024)

    root, official = _copy(world, "sultani", tmp_path)
    layout = SultaniTxt(root, **official)
    entry = layout.entries()[-1]
    file = Path(layout.source(entry, "RGB"))
    np.savetxt(file, np.zeros((31, DIM)), fmt="%f")
    with pytest.raises(ValueError, match=f"{file}: expected 32 rows.*found 31 rows"):
        layout.read(entry, "RGB")
    np.savetxt(file, np.zeros((32, DIM)), fmt="%f")
    file.write_text(file.read_text().replace("0.000000\n", "0.000000 0.5\n", 1))
    with pytest.raises(ValueError) as info:
        layout.read(entry, "RGB")
    assert str(info.value).startswith(f"{file}:2: {DIM} values, line 1 has {DIM + 1}; a feature file holds "
                                      "32 rows of whitespace-separated floats, all of the same length")
    file.write_text(file.read_text().replace(" 0.5", "", 1).replace("0.000000", "0.0x0000", 1))
    with pytest.raises(ValueError) as info:
        layout.read(entry, "RGB")
    assert str(info.value).startswith(f"{file}:1: column 1: expected a float, found '0.0x0000'; ")
    file.write_text(file.read_text().replace("0.0x0000", "1_0", 1))  # a float to Python, not to numpy
    with pytest.raises(ValueError) as info:
        layout.read(entry, "RGB")
    assert str(info.value).startswith(f"{file}: could not convert string '1_0' to float64 at row 0, column 1; ")
    file.write_text("\n\n")
    with pytest.raises(ValueError, match="expected 32 rows of segment features.*found 0 rows"):
        layout.read(entry, "RGB")

    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("Abuse/Abuse001_x264.mp4/c3d_features", data=np.zeros((32, 4096)))
        f.create_dataset("Abuse/Abuse002_x264.mp4/c3d_features", data=np.zeros((30, 4096)))
    layout = CapstoneH5(path)
    entries = _by_name(layout)
    assert layout.read(entries["Abuse001_x264"], "RGB").dtype == np.float32
    with pytest.raises(ValueError, match=r"bad\.h5::Abuse/Abuse002_x264\.mp4/c3d_features: expected "
                                         r"shape \(32, D\).*found \(30, 4096\)"):
        layout.read(entries["Abuse002_x264"], "RGB")


def test_capstone_dataset_choice(tmp_path):
    path = tmp_path / "both.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("Abuse/Abuse001_x264.mp4/c3d_features", data=np.ones((32, 4096)))
        f.create_dataset("Abuse/Abuse001_x264.mp4/i3d_rgb_features", data=np.ones((32, 1024)))
    entry = _by_name(CapstoneH5(path))["Abuse001_x264"]
    with pytest.raises(ValueError, match=r"expected exactly one of the datasets.*data\.dataset=NAME"):
        CapstoneH5(path).read(entry, "RGB")
    assert CapstoneH5(path, dataset="c3d_features").read(entry, "RGB").shape == (32, 4096)
    assert CapstoneH5(path, dataset="i3d_rgb_features").read(entry, "RGB").shape == (32, 1024)
    with pytest.raises(ValueError, match=r"no dataset 'flow' in any video group, found "
                                         r"\['c3d_features', 'i3d_rgb_features'\]"):
        CapstoneH5(path, dataset="flow").read(entry, "RGB")


def test_object_arrays_are_loaded(world, tmp_path):
    root, layout = _tencrop_copy(world, tmp_path)
    entry = layout.entries()[1]
    clips = world["clips"][entry.video.name]
    file = root / f"{entry.video.name}_i3d.npy"
    rows = np.empty(len(clips), dtype=object)
    rows[:] = [c.astype(np.float64) for c in clips]  # one (10, D) array per snippet, pickled
    np.save(file, rows, allow_pickle=True)
    got = layout.read(entry, "RGB")
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, clips)
    ragged = np.empty(2, dtype=object)
    ragged[:] = [np.zeros((10, DIM)), np.zeros((9, DIM))]
    np.save(file, ragged, allow_pickle=True)
    with pytest.raises(ValueError, match=f"{file}: an object \\(pickled\\) array that is not a regular grid"):
        layout.read(entry, "RGB")
    file.write_bytes(b"not an npy file")
    with pytest.raises(ValueError, match=f"{file}: not a .npy array \\(starts with 'not an npy file'\\)"):
        layout.read(entry, "RGB")


# --- unreadable files: listed by the report with their path and reason ---------------------

FIX = "re-extract or re-download this file"


def _read_all(layout, dim=DIM, **options):
    """The report of the reading pass (as vad.check) and the message training raises with it."""
    report, _ = read_layout(layout, ("RGB",), dim, keep=False, **options)
    with pytest.raises(ValueError) as info:
        load_layout(layout, ("RGB",), dim, **options)
    assert report.format() in str(info.value)
    return report


def test_unreadable_tencrop_files(world, tmp_path):
    root, layout = _tencrop_copy(world, tmp_path)
    entries = layout.entries()
    empty, truncated, text = (root / f"{entries[i].video.name}_i3d.npy" for i in (0, 2, 5))
    empty.write_bytes(b"")
    data = truncated.read_bytes()
    n_data = world["clips"][entries[2].video.name].nbytes
    truncated.write_bytes(data[:-7])
    text.write_text("1.0 2.0 3.0\n")
    report = _read_all(layout)
    shape = world["clips"][entries[2].video.name].shape
    assert report.errors == {"unreadable files": [
        f"{empty}: empty file (0 bytes); {FIX}",
        f"{truncated}: truncated: header says {shape} float32 = {n_data} bytes, file has {n_data - 7}; {FIX}",
        f"{text}: not a .npy array (starts with '1.0 2.0 3.0\\n'); {FIX}"]}


def test_load_npy_reasons(tmp_path):
    """The reasons not covered by the layouts' tests, on load_npy itself."""
    rows = np.empty(3, dtype=object)
    rows[:] = [np.zeros((CROPS, DIM))] * 3
    pickled = tmp_path / "pickled.npy"
    np.save(pickled, rows, allow_pickle=True)
    pickled.write_bytes(pickled.read_bytes()[:-50])
    folder = tmp_path / "folder.npy"
    folder.mkdir()
    strings = tmp_path / "strings.npy"
    np.save(strings, np.array(["a", "b"]))
    for path, start in ((pickled, f"{pickled}: truncated or corrupt pickled object array ("),
                        (folder, f"{folder}: cannot be read (Is a directory); {FIX}"),
                        (strings, f"{strings}: expected float features, found dtype <U1; re-export the "
                                  "features as float32")):
        with pytest.raises(UnreadableFile) as info:
            load_npy(path)
        assert str(info.value).startswith(start), str(info.value)
        assert info.value.path == str(path)
    with pytest.raises(FileNotFoundError):
        load_npy(tmp_path / "absent.npy")


def test_unreadable_percrop_file(world, tmp_path):
    root, official = _copy(world, "percrop", tmp_path)
    layout = PercropNpy(root, **official)
    entry = layout.entries()[1]
    crop = root / entry.video.cls / f"{entry.video.name}__4.npy"
    crop.write_bytes(crop.read_bytes()[:60])  # inside the header
    first_video = layout.entries()[0].video
    other = root / first_video.cls / f"{first_video.name}__0.npy"
    other.write_bytes(b"")
    report = _read_all(layout)
    (first, second) = report.errors["unreadable files"]
    assert first == f"{other}: empty file (0 bytes); {FIX}"
    assert second.startswith(f"{crop}: not a .npy array (bad header: ") and second.endswith(FIX)
    assert list(report.errors) == ["unreadable files"]


def test_unreadable_sultani_files(world, tmp_path):
    root, official = _copy(world, "sultani", tmp_path)
    layout = SultaniTxt(root, **official)
    entries = layout.entries()
    empty, binary, token, latin = (Path(layout.source(entries[i], "RGB")) for i in (0, 1, 3, 4))
    empty.write_bytes(b"")
    np.save(binary.with_suffix(".npy"), np.zeros((32, DIM), dtype=np.float32))
    binary.write_bytes(binary.with_suffix(".npy").read_bytes())
    lines = token.read_text().splitlines()
    lines[6] = lines[6].replace(" ", " 1,5 ", 1).rsplit(" ", 1)[0]  # same width, a bad third value
    token.write_text("\n".join(lines) + "\n")
    lines = latin.read_text().splitlines()
    lines[20] = lines[20] + " \xe9"
    latin.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    report = _read_all(layout)
    form = f"a feature file holds 32 rows of whitespace-separated floats, all of the same length: {FIX}"
    assert report.errors == {"unreadable files": [
        f"{empty}: empty file (0 bytes); {FIX}",
        f"{binary}: not a text file (starts with '\\x93NUMPY\\x01\\x00v\\x00{{'desc'); {FIX}",
        f"{token}:7: column 2: expected a float, found '1,5'; {form}",
        f"{latin}:21: byte 0xe9 is not UTF-8 text; {form}"]}


def test_unreadable_capstone_file_is_refused_with_its_reason(world, tmp_path):
    good = world["roots"]["capstone"]
    data = good.read_bytes()
    path = tmp_path / "features.h5"
    fix = "re-download or re-export the .h5 file, or set data.root to the capstone .h5 file"
    for content, reason in ((b"", "empty file (0 bytes)"),
                            (b"Abuse001 0.1 0.2\n", "not an HDF5 file (starts with 'Abuse001 0.1 0.2')"),
                            (b"\x89HDF\r\n\x1a\n" + b"\x07" * 600, "a damaged HDF5 file (h5py: "),
                            (data[:-100], f"truncated: header says {len(data)} bytes, file has {len(data) - 100}")):
        path.write_bytes(content)
        with pytest.raises(ValueError) as info:
            CapstoneH5(path, **world["official"])
        message = str(info.value)
        assert message.startswith(f"{path}: {reason}") and message.endswith(f"; {fix}"), message
        if reason.startswith("a damaged"):
            assert "bad superblock" in message  # HDF5's own words
        else:
            assert message == f"{path}: {reason}; {fix}"
        # Training's reading pass (data=capstone_h5) stops with the same message.
        with pytest.raises(ValueError) as info:
            load_splits(OmegaConf.create({"name": "capstone_h5", "root": str(path), "dedupe": False, **{
                k: str(v) for k, v in world["official"].items()}}), ("RGB",), "I3D", DIM)
        assert str(info.value) == message


def test_damaged_capstone_dataset_is_listed(tmp_path):
    path = tmp_path / "damaged.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("Abuse/Abuse001_x264.mp4/c3d_features", data=np.ones((32, 64)))
        chunked = f.create_dataset("Abuse/Abuse002_x264.mp4/c3d_features", data=np.ones((32, 64)),
                                   chunks=(32, 64), compression="gzip")
        offset = chunked.id.get_chunk_info(0).byte_offset
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(b"\xff" * 16)
    layout = CapstoneH5(path)
    entries = _by_name(layout)
    assert layout.read(entries["Abuse001_x264"], "RGB").shape == (32, 64)
    with pytest.raises(UnreadableFile) as info:
        layout.read(entries["Abuse002_x264"], "RGB")
    assert str(info.value).startswith(f"{path}::Abuse/Abuse002_x264.mp4/c3d_features: cannot be read (h5py: ")
    assert str(info.value).endswith("; re-download or re-export the .h5 file, or set data.root to the "
                                    "capstone .h5 file")
    report, _ = read_layout(layout, ("RGB",), 64, keep=False)  # the other official videos are missing
    assert report.errors["unreadable files"] == [str(info.value)]


def test_only_rgb(world):
    for key in ("sultani", "capstone", "tencrop", "percrop"):
        layout = world["layouts"][key]
        assert layout.streams() == ("RGB",)
        with pytest.raises(ValueError, match="only the RGB stream.*modality=RGB"):
            layout.read(layout.entries()[0], "FLOW")


# --- registry and configs ----------------------------------------------------------------

def test_registry_errors():
    with pytest.raises(ValueError) as info:
        open_layout(OmegaConf.create({"name": "sultani_text", "root": "/x"}))
    assert "'sultani_text'" in str(info.value)
    assert all(name in str(info.value) for name in LAYOUTS)
    for name in LAYOUTS:
        with pytest.raises(ValueError, match=f"data={name} needs data.root=PATH"):
            open_layout(OmegaConf.create({"name": name, "root": None}))


@pytest.mark.parametrize("name,key,cls", [("ucf_crime_npy", "seed", SeedNpy), ("sultani_txt", "sultani", SultaniTxt),
                                          ("capstone_h5", "capstone", CapstoneH5),
                                          ("tencrop_npy", "tencrop", TencropNpy),
                                          ("percrop_npy", "percrop", PercropNpy)])
def test_configs_open_their_layout(world, name, key, cls):
    cfg = OmegaConf.load(CONF / "data" / f"{name}.yaml")
    assert cfg.name == name and cfg.root is None and LAYOUTS[name] is cls and cls.name == name
    assert set(cfg) - GENERIC_KEYS <= set(cls.options), "every layout key of the config is an option"
    assert ("crops" in cfg) == (cls.kind == "clips")
    cfg.root = str(world["roots"][key])
    if name != "ucf_crime_npy":
        cfg.test_annotation = str(world["official"]["test_annotation"])
    if "train_list" in cfg and name != "tencrop_npy":
        cfg.train_list = str(world["official"]["train_list"])
    if name == "tencrop_npy":
        cfg.n_train_anomalous, cfg.n_test_anomalous = world["n"]
    layout = open_layout(cfg)
    assert isinstance(layout, cls)
    assert layout.entries() == world["layouts"][key].entries()
    entry = layout.entries()[0]
    segments = to_segments(layout.read(entry, "RGB"), layout.kind, **(
        {"crops": cfg.crops, "crop": cfg.crop} if cls.kind == "clips" else {}))
    np.testing.assert_allclose(segments[0], world["pooled"][entry.video.name], atol=1e-6)


def test_extractor_config():
    cfg = OmegaConf.load(CONF / "extractor" / "I3D_R50.yaml")
    assert cfg.name == "I3D_R50" and cfg.dim == 2048
