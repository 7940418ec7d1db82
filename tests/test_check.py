"""The validation report (``vad.data.reading``): every problem of a dataset at once, before any
training starts; ``python -m vad.check`` prints the same report; the store's value checks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from tests.conftest import CONF, ROOT, run_cli
from vad.constants import N_SEGMENTS
from vad.data import store
from vad.data.layouts.seed_npy import SeedNpy
from vad.data.reading import SHOWN, load_layout, read_layout
from vad.data.ucf_crime import catalogue

DIM = 1024  # the default extractor (I3D)
FOLDERS = {"RGB": "all_rgbs", "FLOW": "all_flows"}
STREAMS = ("RGB", "FLOW")


def _videos():
    """4 train anomalous, 4 train normal, 3 test anomalous, 3 test normal real videos."""
    train, test = catalogue()
    return ([v for v in train if v.label][::101][:4], [v for v in train if not v.label][::101][:4],
            [v for v in test if v.label][::23][:3], [v for v in test if not v.label][::23][:3])


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A clean seed-notebook folder: its own four lists, (32, 1024) RGB and FLOW files."""
    root = tmp_path_factory.mktemp("check") / "seed"
    train_a, train_n, test_a, test_n = _videos()
    root.mkdir()
    (root / "train_anomaly.txt").write_text("".join(f"{v.path}\n" for v in train_a))
    (root / "train_normal.txt").write_text("".join(f"{v.path}\n" for v in train_n))
    (root / "test_anomalyv2.txt").write_text("".join(
        f"{v.path}|{v.frames}|{[b for span in v.spans for b in span]}\n" for v in test_a))
    (root / "test_normalv2.txt").write_text("".join(f"{v.path} {v.frames} -1\n" for v in test_n))
    rng = np.random.default_rng(0)
    for v in train_a + train_n + test_a + test_n:
        for folder in FOLDERS.values():
            file = root / folder / f"{v.path}.npy"
            file.parent.mkdir(parents=True, exist_ok=True)
            np.save(file, rng.random((N_SEGMENTS, DIM), dtype=np.float32) + np.float32(0.01))
    return root


@pytest.fixture
def root(template, tmp_path) -> Path:
    """A fresh copy of the clean folder, to break."""
    return Path(shutil.copytree(template, tmp_path / "seed"))


def paths(root: Path) -> list[str]:
    """Video paths in entry order (train anomalous, train normal, test anomalous, test normal)."""
    return [e.video.path for e in SeedNpy(root).entries()]


def file(root: Path, index: int, stream: str = "RGB") -> Path:
    return root / FOLDERS[stream] / f"{paths(root)[index]}.npy"


def report_of(root: Path, streams=STREAMS, dim=DIM, **options):
    report, splits = read_layout(SeedNpy(root), streams, dim, keep=False, **options)
    assert splits is None
    return report


def edit(path: Path, change) -> None:
    x = np.load(path)
    change(x)
    np.save(path, x)


# --- the report ---------------------------------------------------------------------------

def test_clean_folder(root):
    report = report_of(root)
    assert report.ok and report.errors == {} and report.warnings == {}
    assert (report.videos, report.files, report.layout, report.root) == (14, 28, "ucf_crime_npy", str(root))
    assert report.format() == f"ucf_crime_npy at {root}: 14 videos, 0 errors, 0 warnings"
    report, splits = read_layout(SeedNpy(root), STREAMS, DIM)
    assert report.ok and splits.train.features.shape == (8, N_SEGMENTS, 2 * DIM)
    assert splits.test.features.shape == (6, N_SEGMENTS, 2 * DIM)
    np.testing.assert_array_equal(splits.train.features[0, :, :DIM].numpy(), np.load(file(root, 0, "RGB")))
    np.testing.assert_array_equal(splits.test.features[-1, :, DIM:].numpy(), np.load(file(root, 13, "FLOW")))
    # Without an expected dimension, it is taken from the data.
    assert report_of(root, dim=None).ok


def test_missing_files_are_counted_and_the_first_ones_listed(root):
    gone = [file(root, i, "RGB") for i in range(3)] + [file(root, i, "FLOW") for i in (9, 12)]
    for path in gone:
        path.unlink()
    report = report_of(root)
    assert not report.ok and list(report.errors) == ["missing files"]
    assert report.errors["missing files"] == [str(p) for p in gone]  # entry order, then stream
    text = report.format()
    assert text.splitlines()[0] == f"ucf_crime_npy at {root}: 14 videos, 5 errors, 0 warnings"
    assert "ERROR missing files: 5 of 28 files" in text
    assert all(f"  - {p}" in text for p in gone) and "more" not in text

    more = [file(root, 13, "RGB"), file(root, 13, "FLOW")]
    for path in more:
        path.unlink()
    report = report_of(root)
    lines = report.format().splitlines()
    assert lines[1] == "ERROR missing files: 7 of 28 files"
    assert lines[2:2 + SHOWN] == [f"  - {p}" for p in gone]
    assert lines[2 + SHOWN] == "  ... and 2 more"
    assert not any(str(p) in report.format() for p in more)
    # One stream only: half the files.
    assert "ERROR missing files: 4 of 14 files" in report_of(root, streams=("RGB",)).format()


def test_wrong_shapes_name_the_file_expected_and_found(root):
    short, narrow = file(root, 1), file(root, 10, "FLOW")
    np.save(short, np.ones((16, DIM), dtype=np.float32))
    np.save(narrow, np.ones((N_SEGMENTS, 512), dtype=np.float32))
    report = report_of(root)
    assert list(report.errors) == ["wrong shapes"] and len(report.errors["wrong shapes"]) == 2
    first, second = report.errors["wrong shapes"]
    assert first.startswith(f"{short}: expected shape (32, D)") and "found (16, 1024)" in first
    assert second.startswith(f"{narrow}: expected (32, 1024) FLOW features") and "found (32, 512)" in second
    assert "pick the extractor" in second
    assert "ERROR wrong shapes: 2" in report.format()


def test_nan_and_inf_values(root):
    with_nan, with_inf = file(root, 2), file(root, 11, "FLOW")

    def put_nan(x):
        x[3, 7] = np.nan

    def put_inf(x):
        x[0, 0], x[31, 1023] = np.inf, -np.inf
    edit(with_nan, put_nan)
    edit(with_inf, put_inf)
    report = report_of(root)
    assert report.errors == {"NaN/Inf values": [f"{with_nan}: 1 non-finite values",
                                                f"{with_inf}: 2 non-finite values"]}
    assert "ERROR NaN/Inf values: 2" in report.format()


def test_all_zero_segments_give_their_index(root):
    path = file(root, 4)

    def zero(x):
        x[[5, 17]] = 0
    edit(path, zero)
    report = report_of(root)
    assert list(report.errors) == ["all-zero segments"]
    (detail,) = report.errors["all-zero segments"]
    assert detail.startswith(f"{path}: segments 5, 17 (2 of 32) are all zeros")
    assert "ERROR all-zero segments: 1" in report.format()


def test_all_zero_segments_are_all_named_or_counted(root):
    few, many, every = file(root, 4), file(root, 5, "FLOW"), file(root, 6)
    edit(few, lambda x: x.__setitem__(slice(3, 4), 0))
    many_rows = [0, 3, 7, 8, 9, 12, 15, 20, 21, 26, 30, 31]
    edit(many, lambda x: x.__setitem__(many_rows, 0))
    edit(every, lambda x: x.__setitem__(slice(None), 0))
    details = report_of(root).errors["all-zero segments"]
    assert [d.split(" (a failed")[0] for d in details] == [
        f"{few}: segment 3 (1 of 32) is all zeros",
        f"{many}: segments 0, 3, 7, 8, 9, 12, 15, 20, ... (12 of 32) are all zeros",
        f"{every}: all 32 segments are all zeros",
    ]  # entry order


# Unreadable files: each case with the reason the report must give (FIX appended).
FIX = "; re-extract or re-download this file"


def _break_files(root: Path) -> dict[Path, str]:
    """Damage five files in five ways; return path -> the expected report line."""
    empty, truncated, text, pickled, ragged = (file(root, 0), file(root, 3, "FLOW"), file(root, 8),
                                               file(root, 10, "FLOW"), file(root, 12))
    empty.write_bytes(b"")
    data = truncated.read_bytes()
    header = len(data) - N_SEGMENTS * DIM * 4  # the whole file minus its float32 data
    truncated.write_bytes(data[:-1000])
    text.write_text("hello world\n")
    np.save(pickled, {"rgb": [1.0, 2.0]}, allow_pickle=True)
    rows = np.empty(2, dtype=object)
    rows[:] = [np.zeros(DIM), np.zeros(DIM - 1)]
    np.save(ragged, rows, allow_pickle=True)
    return {
        empty: f"{empty}: empty file (0 bytes){FIX}",
        truncated: f"{truncated}: truncated: header says (32, 1024) float32 = {N_SEGMENTS * DIM * 4} bytes, "
                   f"file has {len(data) - 1000 - header}{FIX}",
        text: f"{text}: not a .npy array (starts with 'hello world\\n'){FIX}",
        pickled: f"{pickled}: a pickled dict, not an array of numbers{FIX}",
        ragged: f"{ragged}: an object (pickled) array that is not a regular grid of floats",
    }


def _assert_unreadable(details: list[str], expected: dict[Path, str]) -> None:
    assert len(details) == len(expected)
    for detail, line in zip(details, expected.values()):
        assert detail.startswith(line), (detail, line)


def test_unreadable_files_are_listed_with_path_and_reason(root):
    expected = _break_files(root)
    edit(file(root, 2), lambda x: x.__setitem__((0, 0), np.nan))
    report = report_of(root)
    assert set(report.errors) == {"unreadable files", "NaN/Inf values"}  # the other problems too
    _assert_unreadable(report.errors["unreadable files"], expected)
    assert "ERROR unreadable files: 5" in report.format()


def test_load_layout_raises_unreadable_files(root):
    expected = _break_files(root)
    with pytest.raises(ValueError) as info:
        load_layout(SeedNpy(root), STREAMS, DIM)
    message = str(info.value)
    assert "ERROR unreadable files: 5" in message and "python -m vad.check" in message
    listed = [ln[4:] for ln in message.splitlines() if ln.startswith("  - ")]
    _assert_unreadable(listed, expected)


def test_duplicate_entries_warned_and_kept_unless_dedupe(root):
    normal = paths(root)[5]
    with open(root / "train_normal.txt", "a") as f:
        f.write(normal + "\n")
    kept = "duplicate list entries (kept; data.dedupe=true drops them)"
    report = report_of(root)
    assert report.ok and report.warnings == {kept: [f"train: {normal} listed 2 times"]}
    assert (report.videos, report.files) == (15, 30)
    assert f"WARNING {kept}: 1" in report.format() and "0 errors, 1 warnings" in report.format()
    _, splits = read_layout(SeedNpy(root), STREAMS, DIM)
    assert len(splits.train) == 9 and [v.path for v in splits.train.videos].count(normal) == 2

    dropped = "duplicate list entries (dropped: data.dedupe=true)"
    report = report_of(root, dedupe=True)
    assert report.ok and list(report.warnings) == [dropped] and report.videos == 14
    _, splits = read_layout(SeedNpy(root), STREAMS, DIM, dedupe=True)
    assert len(splits.train) == 8 and [v.path for v in splits.train.videos].count(normal) == 1


def test_train_test_overlap_is_an_error(root):
    leaked = paths(root)[12]  # a test normal video
    with open(root / "train_normal.txt", "a") as f:
        f.write(leaked + "\n")
    report = report_of(root)
    assert not report.ok
    assert report.errors == {"train/test overlap": [f"{leaked} is in both the train and the test list"]}
    assert "ERROR train/test overlap: 1" in report.format()


def test_absent_stream(root):
    shutil.rmtree(root / "all_flows")
    report = report_of(root)
    assert list(report.errors) == ["stream absent"]
    (detail,) = report.errors["stream absent"]
    assert "['FLOW']" in detail and f"{root} has only ['RGB']" in detail
    assert "ERROR stream absent: 1" in report.format()
    assert report_of(root, streams=("RGB",)).ok
    shutil.rmtree(root / "all_rgbs")
    assert "has only []" in report_of(root, streams=("RGB",)).errors["stream absent"][0]


def test_every_problem_in_one_report(root):
    names = paths(root)
    file(root, 0, "FLOW").unlink()
    np.save(file(root, 1), np.ones((8, DIM), dtype=np.float32))
    edit(file(root, 2), lambda x: x.__setitem__((0, 0), np.nan))
    edit(file(root, 3, "FLOW"), lambda x: x.__setitem__(9, 0))
    with open(root / "train_anomaly.txt", "a") as f:
        f.write(f"{names[0]}\n{names[9]}\n")  # a duplicate, and a test video
    report = report_of(root)
    assert set(report.errors) == {"missing files", "wrong shapes", "NaN/Inf values", "all-zero segments",
                                  "train/test overlap"}
    assert set(report.warnings) == {"duplicate list entries (kept; data.dedupe=true drops them)"}
    lines = report.format().splitlines()
    assert lines[0] == f"ucf_crime_npy at {root}: 16 videos, 6 errors, 1 warnings"
    kinds = [ln.split(":")[0] for ln in lines if not ln.startswith(" ")][1:]
    assert kinds[-1].startswith("WARNING") and all(k.startswith("ERROR") for k in kinds[:-1])
    # The duplicate's second read finds the same missing FLOW file.
    assert report.errors["missing files"] == [str(file(root, 0, "FLOW"))] * 2
    assert "ERROR missing files: 2 of 32 files" in lines


def test_load_layout_raises_the_whole_report(root):
    edit(file(root, 6), lambda x: x.__setitem__((1, 1), np.inf))
    file(root, 7, "FLOW").unlink()
    layout = SeedNpy(root)
    with pytest.raises(ValueError) as info:
        load_layout(layout, STREAMS, DIM)
    message = str(info.value)
    assert "python -m vad.check" in message
    assert report_of(root).format() in message
    assert "NaN/Inf values" in message and "missing files: 1 of 28 files" in message


def test_load_layout_returns_splits_with_warnings_only(root):
    """Warnings alone do not stop training."""
    with open(root / "train_normal.txt", "a") as f:
        f.write(paths(root)[4] + "\n")
    splits = load_layout(SeedNpy(root), ("RGB",), DIM)
    assert len(splits.train) == 9 and splits.train.features.shape[-1] == DIM
    assert len(load_layout(SeedNpy(root), ("RGB",), DIM, dedupe=True).train) == 8


# --- vad.check ---------------------------------------------------------------------------

def _check_cfg(overrides: list[str]):
    """conf/check.yaml composed as the CLI would (conftest's make_cfg needs a ``paths`` node,
    which check.yaml has not)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("check", overrides=overrides)


def test_check_reads_the_config(root):
    from vad.check import check

    with open(root / "train_normal.txt", "a") as f:
        f.write(paths(root)[4] + "\n")
    cfg = _check_cfg(["data=ucf_crime_npy", f"data.root={root}"])
    assert cfg.get("modality") is None and cfg.get("extractor") is None
    report = check(cfg)
    assert report.ok and report.files == 30  # every stream present, no modality
    report = check(_check_cfg(["data=ucf_crime_npy", f"data.root={root}", "data.dedupe=true", "modality=FLOW"]))
    assert report.ok and report.files == 14
    assert list(report.warnings) == ["duplicate list entries (dropped: data.dedupe=true)"]
    # An extractor of another dimension: every file has the wrong shape.
    report = check(_check_cfg(["data=ucf_crime_npy", f"data.root={root}", "modality=RGB", "extractor=C3D"]))
    assert len(report.errors["wrong shapes"]) == 15 and "expected (32, 4096)" in report.errors["wrong shapes"][0]
    GlobalHydra.instance().clear()


def test_check_cli(root, tmp_path, cache_dir, template):
    edit(file(root, 2), lambda x: x.__setitem__((3, 3), np.nan))
    file(root, 8).unlink()
    file(root, 5, "FLOW").write_bytes(b"")  # a 0-byte file once aborted the whole report
    proc = run_cli(["-m", "vad.check", "data=ucf_crime_npy", f"data.root={root}",
                    f"hydra.run.dir={tmp_path / 'bad'}"], cwd=tmp_path, env_cache=cache_dir, timeout=120)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert report_of(root).format() in proc.stdout
    assert "ERROR missing files: 1 of 28 files" in proc.stdout and "ERROR NaN/Inf values: 1" in proc.stdout
    assert (f"ERROR unreadable files: 1\n  - {file(root, 5, 'FLOW')}: empty file (0 bytes); re-extract or "
            "re-download this file") in proc.stdout

    # The clean folder, with Python's import log: neither torch nor Lightning is imported.
    proc = run_cli(["-X", "importtime", "-m", "vad.check", "data=ucf_crime_npy", f"data.root={template}",
                    "modality=RGB", "extractor=I3D", f"hydra.run.dir={tmp_path / 'clean'}"], cwd=tmp_path,
                   env_cache=cache_dir, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == f"ucf_crime_npy at {template}: 14 videos, 0 errors, 0 warnings"
    imported = {ln.rsplit("|", 1)[-1].strip() for ln in proc.stderr.splitlines() if ln.startswith("import time:")}
    assert {"numpy", "hydra", "vad.data.reading"} <= imported  # the log is there
    assert not imported & {"torch", "pytorch_lightning", "lightning"}, sorted(imported)


def test_check_imports_no_torch():
    """Importing vad.check (and the layout readers it uses) loads neither torch nor Lightning."""
    code = ("import sys, vad.check, vad.data.reading, vad.data.layouts.registry; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'pytorch_lightning', "
            "'lightning')); assert not bad, bad; print('ok')")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


# --- before training ------------------------------------------------------------------------

def test_training_refuses_bad_data_before_training(root, compose_cfg):
    from vad.train import train

    edit(file(root, 3, "FLOW"), lambda x: x.__setitem__((0, 5), np.nan))
    cfg = compose_cfg(["data=ucf_crime_npy", f"data.root={root}", "modality=TWO", "extractor=I3D",
                       "logger=none", "trainer.max_epochs=1", "data.batch_size=2",
                       "trainer.enable_progress_bar=false"])
    with pytest.raises(ValueError) as info:
        train(cfg)
    assert "NaN/Inf values" in str(info.value) and str(file(root, 3, "FLOW")) in str(info.value)
    assert "python -m vad.check" in str(info.value)
    run = Path(cfg.paths.output_dir)
    assert not (run / "checkpoints").exists() and not (run / "metrics.json").exists()


# --- the store's value checks ---------------------------------------------------------------

def _store_cfg(path: Path):
    return OmegaConf.create({"name": "store", "path": str(path)})


@pytest.fixture
def bad_store(root, tmp_path) -> tuple[Path, list[str]]:
    """A store (written from the seed folder: store.write only warns about bad values) whose
    video 9 has an all-zero FLOW segment and video 1 an Inf RGB value."""
    edit(file(root, 9, "FLOW"), lambda x: x.__setitem__(31, 0))
    edit(file(root, 1), lambda x: x.__setitem__((2, 2), np.inf))
    out = tmp_path / "bad.h5"
    store.write(SeedNpy(root), out, progress=False)
    return out, paths(root)


def test_store_load_refuses_bad_values(bad_store, root, tmp_path):
    out, names = bad_store
    for streams, expected in ((("FLOW",), [f"all-zero segments in 1 videos, e.g. ['{names[9]}']"]),
                              (("RGB",), [f"NaN/Inf values in 1 videos, e.g. ['{names[1]}']"])):
        with pytest.raises(ValueError) as info:
            store.load(_store_cfg(out), streams, DIM)
        message = str(info.value)
        assert message.startswith(f"store {out} has bad features: ") and "prepare the store again" in message
        assert all(e in message for e in expected), message
    assert "all-zero" not in message

    # Both problems in one stream: both named at once.
    edit(file(root, 4), lambda x: x.__setitem__(0, 0))
    store.write(SeedNpy(root), tmp_path / "both.h5", progress=False)
    with pytest.raises(ValueError) as info:
        store.load(_store_cfg(tmp_path / "both.h5"), ("RGB",), DIM)
    assert (f"NaN/Inf values in 1 videos, e.g. ['{names[1]}']; all-zero segments in 1 videos, "
            f"e.g. ['{names[4]}']") in str(info.value)


def test_store_load_finds_one_streams_zero_segment_with_two_streams(bad_store, root):
    out, names = bad_store
    edit(file(root, 1), lambda x: x.__setitem__((2, 2), 1.0))  # only the FLOW zero segment left
    assert "all-zero segments" in report_of(root).errors  # the direct path refuses it
    fixed = out.with_name("zero_only.h5")
    store.write(SeedNpy(root), fixed, progress=False)
    with pytest.raises(ValueError, match=r"all-zero segments in 1 videos"):
        store.load(_store_cfg(fixed), STREAMS, DIM)
