"""ShanghaiTech (weakly-supervised split): the catalogue from the shipped files against RTFM's
ground truth ``gt-sh.npy`` (tests/data/shanghaitech), and the ``sh_i3d`` layout on tiny folders in
the real naming."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from vad.constants import NORMAL
from vad.data import shanghaitech as sh
from vad.data.layouts.registry import open_layout
from vad.data.layouts.sh_i3d import ShI3d
from vad.data.reading import read_layout
from vad.metrics import FrameTruth, weighted_auc
from vad.types import Video

REF = Path(__file__).parent / "data" / "shanghaitech"
ROOT = Path(__file__).resolve().parents[1]
DIM = 8


def _gt() -> np.ndarray:
    with np.load(REF / "gt-sh.npz") as ref:
        return np.unpackbits(ref["bits"])[:int(ref["length"])]


def _tsv(name: str = "test_videos.tsv") -> list[dict]:
    lines = [ln for ln in (REF / name).read_text().splitlines() if not ln.startswith("#")]
    header = lines[0].split("\t")
    return [dict(zip(header, ln.split("\t"))) for ln in lines[1:]]


def _expand(video: Video) -> np.ndarray:
    """0/1 labels of a video's frames from its spans, by hand."""
    labels = np.zeros(video.frames, dtype=np.uint8)
    for start, end in video.spans:
        labels[start - 1:end] = 1
    return labels


# --- catalogue ---------------------------------------------------------------------------

def test_split_sizes_order_classes_and_labels():
    train, test = sh.catalogue()
    assert sh.CLASSES == ("Anomaly",)
    assert (len(train), len(test)) == (238, 199)
    for videos, n_anomalous, split_file in ((train, 63, "SH_Train.txt"), (test, 44, "SH_Test.txt")):
        assert [v.label for v in videos] == [1] * n_anomalous + [0] * (len(videos) - n_anomalous)
        assert sorted(v.path for v in videos) == sorted(sh.shipped(split_file).read_text().split())
        assert {v.cls for v in videos[:n_anomalous]} == {"Anomaly"}
        assert all(v.cls == NORMAL and v.frames == 0 and v.spans == () for v in videos[n_anomalous:])
        assert all((sh.mask(v.name) is not None) == bool(v.label) for v in videos)
    assert not {v.path for v in train} & {v.path for v in test}
    assert all(v.spans == () for v in train)
    # the 107 masks: 63 training + 44 test videos, four-digit names
    assert sum(v.label for v in train + test) == 107
    assert all(len(v.path.split("_")[1]) == 4 for v in train + test if v.label)


def test_training_masks_stay_available():
    """The 63 anomalous training videos: masks of train_videos.tsv's lengths, 16 * ceil(n / 16)
    frames, no spans (``mask(name)`` keeps the facts)."""
    train = sh.catalogue()[0]
    rows = _tsv("train_videos.tsv")
    assert [r["video"] for r in rows] == [v.path for v in train]
    for video, row in zip(train, rows):
        labels = sh.mask(video.name)
        if row["anomalous"] == "1":
            n = int(row["n_frames"])
            assert labels.dtype == np.uint8 and len(labels) == n and set(np.unique(labels)) <= {0, 1}
            assert video == Video(video.path, "Anomaly", 16 * -(-n // 16))
        else:
            assert labels is None and video == Video(video.path, NORMAL, 0)
    assert sh.mask("01_0014").sum() > 0 and sh.video("01_0014").spans == sh.runs(sh.padded(sh.mask("01_0014")))


def test_runs_and_padding_by_hand():
    assert sh.runs(np.array([0, 1, 1, 0, 1])) == ((2, 3), (5, 5))
    assert sh.runs(np.array([0, 0])) == ()
    assert sh.padded(np.array([0] * 17 + [1], dtype=np.uint8)).tolist() == [0] * 17 + [1] * 15
    assert sh.snippets(16) == 1 and sh.snippets(17) == 2


def test_anomalous_test_ground_truth_equals_rtfm_per_video():
    gt = _gt()
    assert len(gt) == 142_912 and int(gt.sum()) == 8_028
    test = sh.catalogue()[1]
    rows = _tsv()
    assert [r["video"] for r in rows] == [v.path for v in test]
    anomalous = [v for v in test if v.label]
    counts = [v.frames // 16 for v in anomalous]
    truth = FrameTruth.from_snippets(anomalous, counts)
    assert int(truth.pos.sum()) == 8_028 and int((truth.pos + truth.neg).sum()) == 17_968
    for i, (video, row) in enumerate(zip(anomalous, rows)):
        n, t, offset = int(row["n_frames"]), int(row["rtfm_snippets"]), int(row["gt_offset"])
        assert len(sh.mask(video.name)) == n and video.frames == 16 * t == int(row["rtfm_gt_frames"])
        ref = gt[offset:offset + 16 * t]
        np.testing.assert_array_equal(_expand(video), ref, err_msg=video.path)
        np.testing.assert_array_equal(truth.pos[i, :t], ref.reshape(t, 16).sum(1), err_msg=video.path)
        np.testing.assert_array_equal(truth.neg[i, :t], 16 - ref.reshape(t, 16).sum(1), err_msg=video.path)
    assert not gt[17_968:].any()  # the normal videos' share


def test_whole_test_set_with_normal_lengths_matches_rtfm_auc():
    """Normal videos given T summing to 7,809 (their share of gt-sh.npy): 142,912 frames, and the
    frame AUC of snippet scores repeated x16 equals sklearn's on gt-sh.npy."""
    gt = _gt()
    test = list(sh.catalogue()[1])
    normal_t = [51] * 59 + [50] * 96
    assert len(normal_t) == 155 and sum(normal_t) == 7_809
    videos = test[:44] + [Video(v.path, v.cls, 16 * t) for v, t in zip(test[44:], normal_t)]
    counts = [v.frames // 16 for v in videos]
    truth = FrameTruth.from_snippets(videos, counts)
    assert int((truth.pos + truth.neg).sum()) == 142_912 and int(truth.pos.sum()) == 8_028
    rng = np.random.default_rng(0)
    scores = np.zeros((len(videos), truth.pos.shape[1] - 1))
    flat = []
    for i, t in enumerate(counts):
        scores[i, :t] = rng.random(t) + 0.3 * truth.pos[i, :t] / 16
        flat.append(np.repeat(scores[i, :t], 16))
    expected = roc_auc_score(gt, np.concatenate(flat))
    assert weighted_auc(*truth.entries(scores)) == pytest.approx(expected, abs=1e-12)


# --- the sh_i3d layout -------------------------------------------------------------------

TRAIN = ["01_0014", "01_0016", "01_002", "01_003"]  # two anomalous, two normal
TEST = ["01_0015", "01_0025", "01_001", "01_006"]
NORMAL_T = {"01_002": 30, "01_003": 7, "01_001": 12, "01_006": 41}


def _features(name: str, t: int) -> np.ndarray:
    seed = sum(map(ord, name))
    return np.random.default_rng(seed).random((t, 10, DIM), dtype=np.float32)


def _make(root: Path, wrong: dict | None = None) -> dict[str, Path]:
    """RTFM's naming: train and test folders at different depths, lists of another machine."""
    wrong = wrong or {}
    files = {}
    for split, names in (("train", TRAIN), ("test", TEST)):
        folder = root / ("SH_Train_ten_crop_i3d" if split == "train" else "deep/SH_Test_ten_crop_i3d")
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            mask = sh.mask(name)
            t = wrong.get(name, NORMAL_T.get(name) if mask is None else sh.snippets(len(mask)))
            files[name] = folder / f"{name}_i3d.npy"
            np.save(files[name], _features(name, t))
        (root / f"{split}.list").write_text("".join(f"/home/yu/yu_ssd/SH_{split}/{n}_i3d.npy\n" for n in names))
    return files


def _layout(root: Path) -> ShI3d:
    return ShI3d(root, train_list=root / "train.list", test_list=root / "test.list")


def test_layout_reads_tiny_folder_in_real_naming(tmp_path):
    files = _make(tmp_path)
    layout = _layout(tmp_path)
    entries = layout.entries()
    assert [e.video.path for e in entries] == TRAIN + TEST
    assert [e.split for e in entries] == ["train"] * 4 + ["test"] * 4
    by_name = {e.video.name: e.video for e in entries}
    for name, t in NORMAL_T.items():  # normal videos: 16 * T from the file
        assert by_name[name] == Video(name, NORMAL, 16 * t)
    assert by_name["01_0015"] == sh.video("01_0015") and by_name["01_0015"].spans == ((87, 374),)
    assert by_name["01_0014"].spans == () and by_name["01_0014"].frames == 272
    for entry in entries:
        assert layout.source(entry, "RGB") == str(files[entry.video.name])
        raw = layout.read(entry, "RGB")
        assert raw.dtype == np.float32 and raw.shape == (entry.video.frames // 16, 10, DIM)
        np.testing.assert_array_equal(raw, _features(entry.video.name, len(raw)))
    report, _ = read_layout(layout, ("RGB",), DIM, crops="mean", keep=False)  # keep=False: no torch
    assert report.ok and report.videos == 8, report.format()
    assert [e.video.frames for e in entries if e.split == "test"] == [448, 608, 16 * 12, 16 * 41]
    assert layout.streams() == ("RGB",)
    with pytest.raises(ValueError, match="only the RGB stream.*modality=RGB"):
        layout.read(entries[0], "FLOW")


def test_config_opens_the_layout_with_the_shipped_lists(tmp_path, compose_cfg):
    _make(tmp_path)
    cfg = compose_cfg(["data=sh_i3d", f"data.root={tmp_path}"]).data
    assert cfg.train_list is None and cfg.test_list is None and cfg.crops == "mean"
    layout = open_layout(cfg)
    assert isinstance(layout, ShI3d)
    for entry in layout.entries():  # normal videos without a file keep frames 0
        assert entry.video.frames == (16 * NORMAL_T[entry.video.name] if entry.video.name in NORMAL_T
                                      else sh.video(entry.video.name).frames)
    assert [e.video.path for e in layout.entries()] == [v.path for v in sh.catalogue()[0] + sh.catalogue()[1]]
    report, _ = read_layout(layout, ("RGB",), DIM, keep=False)
    assert report.errors.keys() == {"missing files"} and len(report.errors["missing files"]) == 437 - 8
    assert f"{tmp_path}/**/01_0027_i3d.npy" in report.errors["missing files"]


def test_package_data_is_declared():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    shipped = sorted(p.name for p in sh.shipped("").iterdir())
    patterns = [p.split("/", 1)[1] for p in data["vad.resources"] if p.startswith("shanghaitech/")]
    assert all(any(Path(name).match(p) for p in patterns) for name in shipped), (shipped, patterns)
    assert {"SH_Train.txt", "SH_Test.txt", "test_frame_mask.npz", *sh.LISTS.values()} <= set(shipped)


# --- bad input ---------------------------------------------------------------------------

def test_wrong_snippet_count_names_file_mask_length_and_both_counts(tmp_path):
    files = _make(tmp_path, wrong={"01_0025": 37})  # 601 mask frames -> 38 snippets
    layout = _layout(tmp_path)
    entry = next(e for e in layout.entries() if e.video.name == "01_0025")
    with pytest.raises(ValueError) as info:
        layout.read(entry, "RGB")
    message = str(info.value)
    assert str(files["01_0025"]) in message and "n = 601 frames" in message
    assert "expected T = ceil(n / 16) = 38" in message and "found T = 37" in message and "re-download" in message
    report, _ = read_layout(layout, ("RGB",), DIM, keep=False)
    assert list(report.errors) == ["wrong shapes"] and report.errors["wrong shapes"] == [message]


def test_list_naming_a_missing_file(tmp_path):
    files = _make(tmp_path)
    files["01_006"].unlink()
    layout = _layout(tmp_path)
    entry = next(e for e in layout.entries() if e.video.name == "01_006")
    assert entry.video.frames == 0  # no file: no length; the read reports it
    with pytest.raises(FileNotFoundError) as info:
        layout.read(entry, "RGB")
    assert str(info.value) == (f"no 01_006_i3d.npy under data.root={tmp_path} (test list {tmp_path}/test.list); "
                               "download it, or drop 01_006 from the list")
    report, _ = read_layout(layout, ("RGB",), DIM, keep=False)
    assert report.errors == {"missing files": [f"{tmp_path}/**/01_006_i3d.npy"]}


def test_list_and_root_errors(tmp_path):
    _make(tmp_path)
    (tmp_path / "other.list").write_text("/x/01_0014_i3d.npy\n/x/01_0015_i3d.npy\n")
    with pytest.raises(ValueError) as info:
        ShI3d(tmp_path, train_list=tmp_path / "other.list", test_list=tmp_path / "test.list").entries()
    assert str(info.value) == (f"{tmp_path}/other.list:2: 01_0015 is not a train video of the ShanghaiTech "
                               "weakly-supervised split (SH_Train.txt); fix the list")
    with pytest.raises(FileNotFoundError, match=r"nope.list does not exist: data.test_list names RTFM's "
                                                r"shanghai-i3d-test-10crop.list; fix the path, or set "
                                                r"data.test_list=null for the shipped one"):
        ShI3d(tmp_path, test_list=tmp_path / "nope.list").entries()
    with pytest.raises(FileNotFoundError, match="data.root=.*missing is not a folder"):
        ShI3d(tmp_path / "missing")
    copy = tmp_path / "copy" / "01_002_i3d.npy"
    copy.parent.mkdir()
    np.save(copy, _features("01_002", 3))
    with pytest.raises(ValueError) as info:
        _layout(tmp_path)
    message = str(info.value)
    assert "two feature files of video 01_002" in message and str(copy) in message
    assert str(tmp_path / "SH_Train_ten_crop_i3d" / "01_002_i3d.npy") in message and "remove one" in message


def test_crops_other_than_ten_are_refused(tmp_path):
    files = _make(tmp_path)
    np.save(files["01_003"], np.zeros((7, 5, DIM), dtype=np.float32))
    layout = _layout(tmp_path)
    entry = next(e for e in layout.entries() if e.video.name == "01_003")
    with pytest.raises(ValueError, match=r"01_003_i3d.npy: expected \(T, 10, D\) float features "
                                         r"\(D = 2048 for RTFM's ResNet-50 I3D\), found \(7, 5, 8\)"):
        layout.read(entry, "RGB")
