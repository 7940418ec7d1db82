"""``dataset=ucf_crime|xd_violence|shanghaitech``: the synthetic versions keep each benchmark's
split sizes, test lengths and spans (so the field's ground-truth totals), the AUDIO stream of
XD-Violence; a short training per dataset records in metrics.json which ground truth its numbers
rest on; the sweep objective is the dataset's headline metric. The catalogues and readers are
tested against the shipped reference files in tests/test_xd_violence.py and
tests/test_shanghaitech.py."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import make_cfg
from vad.config import input_dim, validate
from vad.data.datasets import dataset
from vad.data.loading import load_data
from vad.evaluation import frame_truth
from vad.train import objective, train


def test_synthetic_shanghaitech_has_the_fields_ground_truth(cache_dir, tmp_path):
    # Full size (437 small videos): 199 test videos, 142,912 frames of 16 per snippet, 8,028 anomalous
    # (RTFM's gt-sh.npy); the 155 normal test videos' lengths, in no public file, are drawn to
    # fill the 7,809 snippets they hold together.
    cfg = make_cfg(["dataset=shanghaitech", "extractor=I3D_R50", "method=rtfm", "eval.protocol=snippets"], tmp_path)
    splits = load_data(cfg)
    assert (len(splits.train), len(splits.test)) == (238, 199) and "SYNTHETIC ShanghaiTech" in splits.description
    truth = frame_truth(splits.test, "snippets")
    assert (truth.pos.sum() + truth.neg.sum(), truth.pos.sum()) == (142_912, 8_028)
    assert int(sum(splits.test.snippet_counts[44:])) == 7_809
    _, test = dataset("shanghaitech").catalogue()
    assert [(v.path, v.frames, v.spans) for v in splits.test.videos[:44]] == [
        (v.path, v.frames, v.spans) for v in test[:44]]


def test_synthetic_xd_violence_has_its_test_videos_and_an_audio_stream(cache_dir, tmp_path):
    cfg = make_cfg(["dataset=xd_violence", "modality=RGB_AUDIO", "data.fraction=0.05"], tmp_path)
    assert input_dim(cfg) == 1024 + 128
    splits = load_data(cfg)
    assert splits.train.features.shape[-1] == 1152 and "SYNTHETIC XD-Violence (I3D RGB+AUDIO" in splits.description
    _, test = dataset("xd_violence").catalogue()
    by_name = {v.path: v for v in test}
    assert all(by_name[v.path] == v for v in splits.test.videos)  # the real lengths and spans
    assert {v.cls for v in splits.train.videos} <= {"Normal", *dataset("xd_violence").classes}
    audio = splits.train.features[..., 1024:]
    assert audio.abs().sum() > 0 and not np.allclose(audio.numpy(), splits.train.features[..., :128].numpy())


@pytest.mark.parametrize("name,overrides,headline", [
    ("xd_violence", ["modality=RGB_AUDIO"], "ap"),
    ("shanghaitech", ["extractor=I3D_R50"], "auc"),
])
def test_a_short_training_per_dataset_records_its_ground_truth(cache_dir, tmp_path, name, overrides, headline):
    cfg = make_cfg([f"dataset={name}", *overrides, "data.fraction=0.2", "data.batch_size=10", "trainer.max_epochs=6",
                    "logger=none", "trainer.enable_progress_bar=false", "eval.timeline_videos=0"], tmp_path)
    result = train(cfg)
    assert result["dataset"] == name and cfg.dataset.headline == headline
    evaluated = result["evaluated"]
    truth = frame_truth(load_data(cfg).test, "segments")
    assert evaluated["protocol"] == "segments" and evaluated["test_videos"] == len(truth.labels)
    assert evaluated["test_frames"] == int(truth.pos.sum() + truth.neg.sum())
    assert result["best"]["auc"] > 0.6  # learns: chance is 0.5
    assert objective(result["best"], headline) == result["best"][headline]


def test_a_benchmarks_layout_under_another_dataset_is_refused(compose_cfg):
    assert compose_cfg(["data=xd_i3d"]).dataset.name == "xd_violence"  # the layout selects its dataset
    assert compose_cfg(["data=sh_i3d"]).dataset.name == "shanghaitech"
    with pytest.raises(ValueError, match=r"data=xd_i3d holds xd_violence features, but dataset=ucf_crime: "
                                         r"drop dataset="):
        validate(compose_cfg(["data=xd_i3d", "dataset=ucf_crime"]))
    with pytest.raises(ValueError, match=r"dataset='kitti': expected one of ucf_crime, xd_violence, shanghaitech"):
        dataset("kitti")


def test_vad_extract_knows_a_benchmarks_videos_by_name():
    from vad.data.layouts.videos import label_of

    name = "Bad.Boys.1995__#01-11-55_01-12-40_label_G-B2-B6"  # dots in the name, G first of its codes
    split, cls, spans = label_of(f"xd/{name}.mp4", dataset="xd_violence")
    _, test = dataset("xd_violence").catalogue()
    assert (split, cls, spans) == ("test", "G", next(v.spans for v in test if v.path == name))
    assert label_of("sh/01_0015.avi", dataset="shanghaitech")[:2] == ("test", "Anomaly")
    assert label_of("sh/01_0015.avi")[:2] == ("test", "Normal")  # not a UCF-Crime name: a test video of one's own
