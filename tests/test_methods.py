"""Methods as plugins (``method=mil|topk_mil|rtfm|urdmu|bnwvad``): each composes with its
official values; a method from the tests folder plugs in through Hydra's search path alone; a
non-causal method is refused by ``vad.detect mode=stream``; the crop axis; the comparison
experiment runs end to end through ``vad.report``. Training per method:
``tests/test_method_training.py``; networks and losses against hand computations:
``tests/test_method_<name>.py``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.conftest import ROOT, make_cfg, make_checkpoint, run_cli
from vad.cli import UserError
from vad.evaluate import evaluate
from vad.train import train

# (method, network class, loss class, optimiser, lr, weight decay, batch, max_steps, max_epochs,
#  inputs (segments, normalise, bins, crops), causal): the official values, stated apart from the
#  config files (sources in conf/method/<name>.yaml).
OFFICIAL = [
    ("mil", "vad.models.learner.Learner", "vad.losses.mil_ranking.MILRankingLoss", "torch.optim.Adagrad",
     1e-3, 1e-3, 30, -1, 75, (32, True, "round", "bags"), True),
    ("topk_mil", "vad.models.topk.TopKNetwork", "vad.losses.topk.TopKLoss", "torch.optim.Adam",
     1e-4, 0.0, 64, -1, 50, (200, False, "floor", "bags"), True),
    ("rtfm", "vad.models.rtfm.RTFMNetwork", "vad.losses.rtfm.RTFMLoss", "torch.optim.Adam",
     1e-3, 5e-3, 32, 15000, 1000, (32, False, "floor", "axis"), False),
    ("urdmu", "vad.models.urdmu.URDMUNetwork", "vad.losses.urdmu.URDMULoss", "torch.optim.Adam",
     1e-4, 5e-5, 64, 3000, 1000, (200, False, "floor", "bags"), False),
    ("bnwvad", "vad.models.bnwvad.BNWVADNetwork", "vad.losses.bnwvad.BNWVADLoss", "torch.optim.Adam",
     1e-4, 5e-5, 64, 1000, 1000, (200, False, "floor", "bags"), False),
]


@pytest.mark.parametrize("row", OFFICIAL, ids=[r[0] for r in OFFICIAL])
def test_every_method_composes_with_its_official_values(compose_cfg, row):
    name, network, loss, optimizer, lr, wd, batch, steps, epochs, inputs, causal = row
    cfg = compose_cfg([f"method={name}"])
    assert cfg.method.name == name and cfg.method.causal is causal
    assert cfg.method.network._target_ == network and cfg.method.loss._target_ == loss
    assert (cfg.optimizer._target_, cfg.optimizer.lr, cfg.optimizer.weight_decay) == (optimizer, lr, wd)
    assert (cfg.data.batch_size, cfg.trainer.max_steps, cfg.trainer.max_epochs) == (batch, steps, epochs)
    assert tuple(cfg.method.inputs.values()) == inputs
    assert cfg.eval.protocol == ("segments" if name == "mil" else "snippets")
    # The command line still overrides a method's official values.
    cfg = compose_cfg([f"method={name}", "optimizer=sgd", "data.batch_size=7"])
    assert cfg.optimizer._target_ == "torch.optim.SGD" and cfg.data.batch_size == 7


def test_a_method_from_the_tests_folder_plugs_in_through_the_search_path(cache_dir, tmp_path):
    from tests.test_method_training import FAST

    plugin = [f"hydra.searchpath=[file://{ROOT / 'tests' / 'plugins' / 'conf'}]", "method=toy"]
    cfg = make_cfg([*plugin, *FAST, "trainer.max_epochs=6"], tmp_path / "train")
    assert cfg.method.network._target_ == "tests.plugins.toy_method.ToyNetwork"
    result = train(cfg)
    assert result["best"]["auc"] > 0.65 and result["method"] == "toy"
    evaluated = evaluate(make_cfg([f"ckpt_path={result['best']['checkpoint']}", "data.fraction=0.2",
                                   "eval.timeline_videos=0"], tmp_path / "evaluate", "evaluate"))
    assert evaluated["metrics"]["auc"] == pytest.approx(result["best"]["auc"], abs=1e-6)


def test_a_wrong_method_argument_names_the_key_before_any_data(cache_dir, tmp_path):
    with pytest.raises(ValueError, match=r"method\.network: vad\.models\.rtfm\.RTFMNetwork cannot be built "
                                         r"with .*'chanels': 8.*unexpected keyword argument 'chanels'"):
        train(make_cfg(["method=rtfm", "+method.network.chanels=8", "data.fraction=0.05"], tmp_path / "a"))
    with pytest.raises(ValueError, match=r"movement=lk .* but method=rtfm: use method=mil"):
        train(make_cfg(["method=rtfm", "movement=lk"], tmp_path / "b"))


def test_a_non_causal_method_is_refused_for_streams(cache_dir, tmp_path):
    from vad.detect import detect

    ckpt = make_checkpoint(tmp_path / "rtfm.ckpt", ["method=rtfm", "extractor=C3D", "method.network.channels=8",
                                                    "method.network.nonlocal_channels=4",
                                                    "method.network.fc1_dim=8", "method.network.fc2_dim=4"], 4096)
    with pytest.raises(UserError, match=r"trained with method=rtfm, which cannot score causally "
                                        r"\(method.causal=false.*mode=stream is refused for camera 0"):
        detect(make_cfg([f"ckpt_path={ckpt}", "source=0", "mode=stream", "weights=random"], tmp_path / "d",
                        "detect"))


def test_crop_axis_serves_every_crop_of_a_video_together(cache_dir, tmp_path):
    from vad.data.loading import load_data
    from vad.datamodule import MILDataModule

    cfg = make_cfg(["method=rtfm", "data.fraction=0.05", "data.crops=3", "data.batch_size=4",
                    "data.val_source=train_holdout"], tmp_path / "run")
    splits = load_data(cfg)
    bags = splits.train.features  # (videos x 3, 32, D): every crop its own row
    module = MILDataModule(splits, batch_size=4, val_source="train_holdout", crops="axis")
    batch, _, _ = next(iter(module.train_dataloader()))
    normal = batch["normal"][0]
    assert normal.shape == (4, 3, 32, bags.shape[-1])
    # Each sample is one video's three crops, in order; the crops differ (their own noise).
    rows = [int(np.flatnonzero((bags == normal[i, 0]).all(dim=(1, 2)).numpy())[0]) for i in range(4)]
    for i, row in enumerate(rows):
        assert row % 3 == 0 and torch.equal(normal[i], bags[row:row + 3])
        assert len({splits.train.videos[row + c].path for c in range(3)}) == 1
        assert not torch.equal(normal[i, 0], normal[i, 1])
    # A held-out video leaves with all its crops; no training sample holds a held-out crop.
    held = set(module.holdout_rows.tolist())
    assert held and all({r - r % 3 + c for c in range(3)} <= held for r in held)
    trained = {3 * int(v) for v in np.concatenate([module.normal_rows, module.anomaly_rows])}
    assert not trained & held


def test_methods_experiment_reports_last_test_selected_and_holdout_selected(cache_dir, tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli(["-m", "vad.train", "-m", "experiment=methods", "seed=0,1", "data.fraction=0.05",
                    "data.batch_size=4", "trainer.max_steps=-1", "trainer.max_epochs=1", "logger=none",
                    "trainer.enable_progress_bar=false", "eval.timeline_videos=0", "method.inputs.segments=32",
                    f"hydra.sweep.dir={sweep}"], ROOT, cache_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = sorted(sweep.glob("*/metrics.json"))
    assert len(runs) == 10
    metrics = [json.loads(p.read_text()) for p in runs]
    assert {m["method"] for m in metrics} == {"mil", "topk_mil", "rtfm", "urdmu", "bnwvad"}
    assert all(m["best"]["selection_metric"] == "holdout/video_auc" for m in metrics)
    proc = run_cli(["-m", "vad.report", str(sweep)], ROOT, cache_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = (sweep / "report" / "report.md").read_text()
    for column in ("last-epoch AUC", "test-selected AUC", "test-selected AP", "selected by"):
        assert column in table
    rows = [line for line in table.splitlines() if line.startswith("| `method=")]
    assert len(rows) == 5 and all("| ucf_crime |" in row and "| 2 | 0,1 |" in row and "holdout/video_auc" in row
                                  for row in rows)
