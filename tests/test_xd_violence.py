"""XD-Violence: the shipped split and test ground truth against the published numbers, and the
``xd_i3d`` layout over tiny feature folders in the repositories' naming."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from tests.conftest import CONF
from vad.constants import NORMAL
from vad.data.layouts.registry import LAYOUTS, open_layout
from vad.data.layouts.xd_i3d import AUDIO_DIM, XdI3d
from vad.data.reading import read_layout
from vad.data.xd_violence import CLASSES, NAMES, catalogue, class_of, codes, shipped
from vad.metrics import FrameTruth

EXCERPT = Path(__file__).parent / "data" / "xd_violence"
RGB_DIM = 1024
# Test videos of few snippets (test_videos.tsv): violent (T=5, spans [0, 70)) and normal (T=9).
VIOLENT, VIOLENT_T = "v=bhZs3ALdL7Y__#1_label_G-0-0", 5
NORMAL_NAME, NORMAL_T = "v=hgoGZZSMhMQ__#1_label_A", 9
FOREIGN = "/media/peng/Samsung_T5/i3d-features"


def _tsv() -> list[dict[str, str]]:
    lines = [ln for ln in shipped("test_videos.tsv").read_text().splitlines() if not ln.startswith("#")]
    header = lines[0].split("\t")
    return [dict(zip(header, ln.split("\t"))) for ln in lines[1:]]


# --- the catalogue --------------------------------------------------------------------------

def test_split_sizes_classes_and_codes():
    train, test = catalogue()
    assert (len(train), sum(v.label for v in train), sum(1 - v.label for v in train)) == (3954, 1905, 2049)
    assert (len(test), sum(v.label for v in test), sum(1 - v.label for v in test)) == (800, 500, 300)
    assert CLASSES == ("B1", "B2", "B4", "B5", "B6", "G") and tuple(NAMES) == CLASSES
    assert NAMES["B6"] == "car accident" and NAMES["G"] == "explosion"
    assert {v.cls for v in train + test} == set(CLASSES) | {NORMAL}
    assert [v.path for v in test] == [row["video"] for row in _tsv()]  # rgb_test.list order
    assert all(v.frames == 0 and not v.spans for v in train)
    # a violent video's class is its first code; all codes stay available
    name = "Bad.Boys.1995__#01-11-55_01-12-40_label_G-B2-B6"
    assert codes(name) == ("G", "B2", "B6") and class_of(name) == "G"
    assert codes("v=S-7rRLrxnVQ__#1_label_B4-0-0") == ("B4",) and codes(NORMAL_NAME) == ()
    assert class_of(NORMAL_NAME) == NORMAL
    by_name = {v.path: v for v in test}
    assert by_name[name].cls == "G" and by_name[name].name == name  # names keep their dots
    with pytest.raises(ValueError, match=r"'clip_label_B3-0-0'.*_label_A \(normal\)"):
        codes("clip_label_B3-0-0")


def test_ground_truth_matches_the_reference_per_video():
    _, test = catalogue()
    rows = _tsv()
    truth = FrameTruth.from_snippets(list(test), [int(r["i3d_snippets"]) for r in rows])
    assert truth.pos.sum() + truth.neg.sum() == 2_330_384
    assert truth.pos.sum() == 537_805
    violent = truth.labels == 1
    assert (truth.pos + truth.neg)[violent].sum() == 1_078_016
    assert np.array_equal(truth.pos.sum(axis=1), [int(r["gt_positive_frames"]) for r in rows])
    # the same from annotations.txt by the reference builder: ones on [s, e), then cut at 16 * T
    lines = {}
    for line in shipped("annotations.txt").read_text().splitlines():
        parts = line.split()
        lines[parts[0].removesuffix(".mp4")] = [int(v) for v in parts[1:]]
    assert len(lines) == 500 and sum(len(v) // 2 for v in lines.values()) == 1238
    assert sum(1 for line in shipped("annotations.txt").read_text().splitlines()
               if line.split()[0].endswith(".mp4")) == 14
    cut = 0
    for i, video in enumerate(test):
        bounds = lines.get(video.path, [])
        assert bool(bounds) == bool(video.label)
        gt = np.zeros(max(bounds + [video.frames]), dtype=np.uint8)
        for s, e in zip(bounds[0::2], bounds[1::2]):
            gt[s:e] = 1
        cut += int(gt[video.frames:].any())
        assert truth.pos[i].sum() == gt[:video.frames].sum(), video.path
    assert cut == 71


# --- the xd_i3d layout ----------------------------------------------------------------------

def _write(folder: Path, name: str, snippets: int, rng, audio: int | None = None,
           audio_folder: Path | None = None) -> np.ndarray:
    """``<name>__<k>.npy`` (T, 1024), k = 0..4, and ``<name>__vggish.npy`` (audio, 128)."""
    folder.mkdir(parents=True, exist_ok=True)
    crops = rng.standard_normal((5, snippets, RGB_DIM)).astype(np.float32)
    for k, crop in enumerate(crops):
        np.save(folder / f"{name}__{k}.npy", crop)
    if audio is not None:
        (audio_folder or folder).mkdir(parents=True, exist_ok=True)
        np.save((audio_folder or folder) / f"{name}__vggish.npy",
                rng.standard_normal((audio, AUDIO_DIM)).astype(np.float32))
    return crops


def _test_list(path: Path, names) -> Path:
    path.write_text("".join(f"{FOREIGN}/RGBTest/{n}__{k}.npy\n" for n in names for k in range(5)))
    return path


@pytest.fixture()
def world(tmp_path):
    """The 4 training videos of the shipped excerpt and 2 test videos, in nested folders; the
    last training video's RGB has one snippet more than its audio."""
    rng = np.random.default_rng(0)
    train = [ln.rsplit("/", 1)[1].rsplit("__", 1)[0] for ln in (EXCERPT / "rgb.list").read_text().split()][::5]
    root = tmp_path / "features"
    arrays = {}
    for i, name in enumerate(train):
        arrays[name] = _write(root / "RGB", name, 3 + i, rng, audio=3 + i - (i == 3),
                              audio_folder=root / "vggish" / "train")
    arrays[VIOLENT] = _write(root / "RGBTest", VIOLENT, VIOLENT_T, rng, VIOLENT_T, root / "vggish" / "test")
    arrays[NORMAL_NAME] = _write(root / "RGBTest", NORMAL_NAME, NORMAL_T, rng, NORMAL_T, root / "vggish" / "test")
    test_list = _test_list(tmp_path / "rgb_test.list", [VIOLENT, NORMAL_NAME])
    return {"root": root, "train": train, "arrays": arrays, "train_list": EXCERPT / "rgb.list",
            "test_list": test_list, "tmp": tmp_path}


def _layout(world, **options) -> XdI3d:
    options = {"train_list": world["train_list"], "test_list": world["test_list"], **options}
    return XdI3d(world["root"], **options)


def test_layout_reads_lists_of_another_machine(world, caplog):
    layout = _layout(world)
    assert layout.streams() == ("RGB", "AUDIO")
    with caplog.at_level(logging.INFO, logger="vad.data.layouts.xd_i3d"):
        entries = layout.entries()
    assert [e.video.path for e in entries] == world["train"] + [VIOLENT, NORMAL_NAME]
    assert [e.split for e in entries] == ["train"] * 4 + ["test"] * 2
    assert [e.video.label for e in entries] == [1, 1, 0, 0, 1, 0]
    assert [e.video.cls for e in entries[:2]] == ["B2", "B2"]
    # train lengths from the features (the last one's RGB cut to its audio), test from the tsv
    assert [e.video.frames for e in entries] == [48, 64, 80, 80, 80, 144]
    assert entries[4].video.spans == ((1, 70),)
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["1 videos: RGB has one snippet more than audio, the last RGB snippet dropped "
                        "(as the XD-Violence repositories do)"]
    for entry in entries:
        rgb = layout.read(entry, "RGB")
        expected = world["arrays"][entry.video.path].transpose(1, 0, 2)[:entry.video.frames // 16]
        np.testing.assert_array_equal(rgb, expected)  # (T, 5, 1024), crops in k order
        audio = layout.read(entry, "AUDIO")
        assert audio.shape == (len(rgb), 1, AUDIO_DIM)
        assert layout.source(entry, "AUDIO").endswith(f"vggish/{entry.split}/{entry.video.path}__vggish.npy")
    assert layout.source(entries[0], "RGB") == str(world["root"] / "RGB" / f"{world['train'][0]}__{{0..4}}.npy")
    # the audio has no crops: with crops=all (or one) it goes with each RGB crop
    everyone = _layout(world, crops="all")
    audio = everyone.read(entries[0], "AUDIO")
    assert audio.shape == (3, 5, AUDIO_DIM) and all(np.array_equal(audio[:, k], audio[:, 0]) for k in range(5))
    report, splits = read_layout(layout, ("RGB",), RGB_DIM, crops="one", crop=3)
    assert report.ok, report.format()
    assert splits.train.features.shape[0] == 4 and splits.test.features.shape[0] == 2
    report, _ = read_layout(everyone, ("AUDIO",), AUDIO_DIM, crops="all", keep=False)
    assert report.ok, report.format()


def test_default_order_and_streams_without_audio(tmp_path):
    root = tmp_path / "rgb"
    _write(root, VIOLENT, VIOLENT_T, np.random.default_rng(1))
    layout = XdI3d(root)
    assert layout.streams() == ("RGB",)
    train, test = catalogue()
    assert [e.video.path for e in layout.entries()] == [v.path for v in train + test]
    report, _ = read_layout(layout, ("RGB",), RGB_DIM, keep=False)
    assert len(report.errors["missing files"]) == 4754 - 1  # every video but the one written


def test_config_opens_the_layout(world):
    cfg = OmegaConf.load(CONF / "data" / "xd_i3d.yaml")
    assert LAYOUTS["xd_i3d"] is XdI3d and cfg.name == "xd_i3d" and cfg.root is None
    assert set(cfg) - {"defaults", "name", "root", "crops", "crop", "dedupe"} <= set(XdI3d.options)
    cfg.root, cfg.train_list, cfg.test_list = str(world["root"]), str(world["train_list"]), str(world["test_list"])
    layout = open_layout(cfg)
    assert isinstance(layout, XdI3d) and len(layout.entries()) == 6


def test_features_of_another_length_are_reported(world):
    root, rng = world["root"], np.random.default_rng(2)
    # a test video with one snippet more (as VadCLIP's CLIP features have for 57 videos)
    _write(root / "RGBTest", VIOLENT, VIOLENT_T + 1, rng, VIOLENT_T + 1, root / "vggish" / "test")
    # audio two snippets shorter than the RGB of a training video
    name = world["train"][1]
    np.save(root / "vggish" / "train" / f"{name}__vggish.npy", np.zeros((2, AUDIO_DIM), np.float32))
    layout = _layout(world)
    report, _ = read_layout(layout, ("RGB",), RGB_DIM, keep=False)
    (wrong,) = report.errors["wrong shapes"]
    assert f"RGBTest/{VIOLENT}__0.npy" in wrong and "expected T=5" in wrong and "found T=6" in wrong
    assert "VadCLIP's CLIP features have one snippet more for 57 videos" in wrong
    report, _ = read_layout(layout, ("AUDIO",), AUDIO_DIM, keep=False)
    audio_error, test_error = report.errors["wrong shapes"]
    assert f"{name}__vggish.npy: 2 audio snippets but " in audio_error
    assert f"RGB/{name}__0.npy has 4 RGB snippets" in audio_error and "re-extract one of them" in audio_error
    assert f"{VIOLENT}__vggish.npy: expected T=5" in test_error and "found T=6" in test_error


def test_bad_lists_and_files(world):
    root, tmp = world["root"], world["tmp"]
    # a list naming a crop file that is not there
    missing = root / "RGBTest" / f"{NORMAL_NAME}__3.npy"
    missing.unlink()
    report, _ = read_layout(_layout(world), ("RGB",), RGB_DIM, keep=False)
    assert report.errors["missing files"] == [str(root / "RGBTest" / f"{NORMAL_NAME}__{{0..4}}.npy")]
    with pytest.raises(FileNotFoundError, match=rf"{missing}.*crop 3 of {NORMAL_NAME} \(test\); restore it"):
        _layout(world).read(_layout(world).entries()[-1], "RGB")
    # a list leaving out a crop
    short = tmp / "short.list"
    short.write_text("".join(f"{FOREIGN}/RGBTest/{VIOLENT}__{k}.npy\n" for k in range(4)))
    with pytest.raises(ValueError, match=rf"short.list:1: {VIOLENT} is listed with crops \[0, 1, 2, 3\], "
                                         r"expected each of __0 .. __4 once"):
        _layout(world, test_list=short).entries()
    # a training video in the test list, an audio list, a video name without a label
    train_in_test = _test_list(tmp / "t.list", [world["train"][0]])
    with pytest.raises(ValueError, match="t.list:1: .* is not an XD-Violence test video.*data.test_list"):
        _layout(world, test_list=train_in_test).entries()
    with pytest.raises(ValueError, match=r"audio.list:1: expected a path ending in <name>__<k>.npy.*an audio list"):
        _layout(world, train_list=EXCERPT / "audio.list").entries()
    unlabelled = tmp / "u.list"
    unlabelled.write_text("".join(f"/x/my_clip__{k}.npy\n" for k in range(5)))
    with pytest.raises(ValueError, match=r"u.list:1: cannot tell the class of XD-Violence video 'my_clip'"):
        _layout(world, train_list=unlabelled).entries()
    with pytest.raises(FileNotFoundError, match=r"data.train_list=.*nope.list does not exist"):
        _layout(world, train_list=tmp / "nope.list").entries()
    # two files of one name under the root
    copy = root / "copy" / f"{VIOLENT}__0.npy"
    copy.parent.mkdir()
    copy.write_bytes((root / "RGBTest" / f"{VIOLENT}__0.npy").read_bytes())
    with pytest.raises(ValueError, match=r"two files named .*__0.npy under data.root=.*: .* and .*; keep one"):
        _layout(world)


def test_rgb_and_audio_are_read_together_and_stored(world, tmp_path):
    """RGB (1024) and AUDIO (128) concatenated in that order by the reader and through a store."""
    from vad.data import store
    from vad.data.convert import to_segments

    layout = _layout(world)
    report, splits = read_layout(layout, ("RGB", "AUDIO"), RGB_DIM)
    assert report.ok, report.format()
    assert splits.train.features.shape[1:] == (32, RGB_DIM + AUDIO_DIM)
    entries = layout.entries()
    rgb, audio = (to_segments(layout.read(entries[0], s), "clips")[0] for s in ("RGB", "AUDIO"))
    np.testing.assert_array_equal(splits.train.features[0].numpy(), np.concatenate([rgb, audio], axis=1))
    out = store.write(layout, tmp_path / "xd.h5", streams=("RGB", "AUDIO"), progress=False).path
    cfg = OmegaConf.create({"name": "store", "path": str(out), "batch_size": 2, "eval_batch_size": 8,
                            "val_source": "test", "holdout_fraction": 0.1})
    stored = store.load(cfg, ("RGB", "AUDIO"), RGB_DIM, dataset="xd_violence")
    np.testing.assert_array_equal(stored.train.features.numpy(), splits.train.features.numpy())
    with pytest.raises(ValueError, match="prepared from data=xd_i3d, xd_violence features, but dataset=ucf_crime"):
        store.load(cfg, ("RGB", "AUDIO"), RGB_DIM, dataset="ucf_crime")
