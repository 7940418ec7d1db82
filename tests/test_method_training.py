"""Each method trains on small synthetic data and learns, and its checkpoint round-trips
through ``vad.evaluate`` (the network rebuilt from the checkpoint alone gives the same metrics).
A module of its own so that xdist runs it beside tests/test_methods.py."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import make_cfg
from vad.evaluate import evaluate
from vad.train import train

# Small enough to train in seconds: few steps, narrow networks (RTFM's 0.7 dropout then leaves
# too little of a 64-channel network: none), a higher learning rate; the 200-segment methods on
# 32 segments.
FAST = ["data.fraction=0.2", "data.batch_size=10", "logger=none", "trainer.enable_progress_bar=false",
        "eval.timeline_videos=0", "trainer.max_epochs=8", "trainer.max_steps=128"]
LEARNING = {
    "topk_mil": ["method.inputs.segments=32", "optimizer.lr=1e-2", "method.network.dropout=0.0"],
    "rtfm": ["method.network.channels=64", "method.network.nonlocal_channels=32", "method.network.fc1_dim=64",
             "method.network.fc2_dim=32", "method.network.dropout=0.0", "data.crops=2"],
    "urdmu": ["method.inputs.segments=32", "optimizer.lr=1e-3", "method.network.hidden_dim=64",
              "method.network.mlp_dim=64", "method.network.dim_head=16", "method.network.classifier_dim=32"],
    "bnwvad": ["method.inputs.segments=32", "optimizer.lr=1e-3", "method.network.dim=64",
               "method.network.mlp_dim=64", "method.network.dim_head=16"],
}


@pytest.mark.parametrize("name", list(LEARNING))
def test_method_learns_and_its_checkpoint_round_trips_through_vad_evaluate(cache_dir, tmp_path, name):
    result = train(make_cfg([f"method={name}", *FAST, *LEARNING[name]], tmp_path / "train"))
    best = result["best"]
    assert result["method"] == name and best["protocol"] == "snippets"
    assert best["auc"] > 0.65, best  # chance is 0.5
    assert len(result["history"]) >= 2 and all(np.isfinite(h["loss"]) for h in result["history"])
    # vad.evaluate rebuilds the network from the checkpoint alone: the same scores, the same metrics.
    evaluated = evaluate(make_cfg([f"ckpt_path={best['checkpoint']}", "data.fraction=0.2",
                                   "eval.timeline_videos=0"], tmp_path / "evaluate", "evaluate"))
    assert evaluated["protocol"] == "snippets" and evaluated["method"] == name
    assert evaluated["metrics"]["auc"] == pytest.approx(best["auc"], abs=1e-6)
    assert evaluated["metrics"]["ap"] == pytest.approx(best["ap"], abs=1e-6)
