"""The TensorBoard event files of a run, read back with TensorBoard's own reader."""

from __future__ import annotations

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import SMALL
from vad.train import train

# SMALL on 5 % of the videos: every tag is written all the same.
TINY = [*SMALL, "data.fraction=0.05", "data.batch_size=5", "trainer.max_epochs=3"]


@pytest.fixture(scope="module")
def events(cache_dir, tmp_path_factory):
    from tests.conftest import make_cfg
    out = tmp_path_factory.mktemp("tb")
    result = train(make_cfg(TINY, out))
    acc = EventAccumulator(str(out), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc, result


def test_scalars_per_epoch(events):
    acc, result = events
    tags = set(acc.Tags()["scalars"])
    assert {"train/loss", "test/auc", "test/ap", "test/far", "test/paired_auc", "val/auc"} <= tags
    assert any(t.startswith("lr-") for t in tags)
    aucs = acc.Scalars("test/auc")
    assert len(aucs) == 3
    assert aucs[-1].value == pytest.approx(result["last"]["auc"], abs=1e-6)


def test_figures_and_hparams(events):
    acc, result = events
    assert {"test/roc", "test/pr", "test/timelines"} <= set(acc.Tags()["images"])
    assert acc.Scalars("hp/auc")[-1].value == pytest.approx(result["best"]["auc"], abs=1e-6)
    plugins = acc.PluginTagToContent("hparams")
    assert "_hparams_/session_start_info" in plugins
    assert b"optimizer/lr" in plugins["_hparams_/session_start_info"]
