"""``vad.evaluate`` and what every evaluation writes (``scores.npz``), on one tiny real run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from tests.conftest import SMALL, make_cfg, run_cli
from vad.cli import UserError
from vad.data.ucf_crime import catalogue
from vad.evaluate import evaluate

TINY = SMALL + ["data.fraction=0.1", "data.batch_size=5", "trainer.max_epochs=2", "logger=none"]


@pytest.fixture(scope="module")
def run(cache_dir, tmp_path_factory):
    """A tiny RGB training run: (its metrics.json, its folder)."""
    from vad.train import train

    out = tmp_path_factory.mktemp("run")
    return train(make_cfg(TINY, out)), out


def evaluate_cfg(compose_cfg, ckpt, *overrides):
    return compose_cfg([f"ckpt_path={ckpt}", *overrides], config_name="evaluate")


def expand(saved) -> tuple[np.ndarray, np.ndarray]:
    """Frame scores and labels of every video of a scores.npz, written from the README's rules:
    segment j covers frames [16 b_j, 16 b_{j+1}), b = round(linspace(0, F // 16, 33)), later
    frames take the last score; snippet t covers [16 t, 16 t + 16) and a video has T * 16 frames."""
    all_scores, all_labels = [], []
    for i in range(len(saved["path"])):
        s = saved["scores"][saved["offsets"][i]:saved["offsets"][i + 1]].astype(np.float64)
        frames = int(saved["frames"][i])
        if str(saved["protocol"]) == "snippets":
            per_frame = np.repeat(s, 16)
        else:
            assert len(s) == 32
            clips = frames // 16
            b = np.round(np.linspace(0, clips, 33)).astype(int)
            per_frame = np.zeros(frames)
            for j in range(32):
                per_frame[16 * b[j]:16 * b[j + 1]] = s[j]
            per_frame[16 * clips:] = per_frame[16 * clips - 1]
        truth = np.zeros(len(per_frame))
        for start, end in saved["spans"][saved["span_offsets"][i]:saved["span_offsets"][i + 1]]:
            truth[start - 1:end] = 1
        all_scores.append(per_frame)
        all_labels.append(truth)
    return np.concatenate(all_scores), np.concatenate(all_labels)


def check_videos(saved) -> None:
    """The per-video fields are the annotation's test videos (frames, class, label, spans)."""
    known = {v.path: v for v in catalogue()[1]}
    for i, path in enumerate(saved["path"]):
        video = known[str(path)]
        assert str(saved["name"][i]) == video.name and str(saved["cls"][i]) == video.cls
        assert int(saved["label"][i]) == video.label and int(saved["frames"][i]) == video.frames
        spans = saved["spans"][saved["span_offsets"][i]:saved["span_offsets"][i + 1]]
        assert [tuple(s) for s in spans.tolist()] == [tuple(s) for s in video.spans]


def test_training_saves_scores_that_give_its_auc(run):
    result, out = run
    saved = np.load(out / "scores.npz")
    check_videos(saved)
    assert set(saved["label"].tolist()) == {0, 1} and np.all(np.diff(saved["offsets"]) == 32)
    frames, labels = expand(saved)
    assert len(frames) == int(saved["frames"].sum())
    assert roc_auc_score(labels, frames) == pytest.approx(result["best"]["auc"], abs=1e-9)
    assert average_precision_score(labels, frames) == pytest.approx(result["best"]["ap"], abs=1e-9)


def test_evaluate_writes_the_runs_scores_and_metrics(run, compose_cfg):
    """vad.evaluate of the best checkpoint goes through the same path: the same scores, the
    same metrics, the same files."""
    result, out = run
    cfg = evaluate_cfg(compose_cfg, result["best"]["checkpoint"])
    evaluated = evaluate(cfg)
    folder = cfg.paths.output_dir
    assert json.loads((out / "metrics.json").read_text())["best"]["auc"] == evaluated["metrics"]["auc"]
    assert evaluated["metrics"] == {k: v for k, v in result["best"].items() if k in evaluated["metrics"]}
    assert evaluated["epoch"] == result["best"]["epoch"] and evaluated["protocol"] == "segments"
    trained, again = np.load(out / "scores.npz"), np.load(f"{folder}/scores.npz")
    assert sorted(trained.files) == sorted(again.files)
    for key in trained.files:
        np.testing.assert_array_equal(trained[key], again[key], err_msg=key)
    for name in ("roc.png", "pr.png", "timelines.png", "roc.npz"):
        assert (out / "plots" / name).is_file() and (Path(folder) / "plots" / name).is_file()


def test_snippet_scores_give_the_snippets_auc(run, compose_cfg):
    result, _ = run
    cfg = evaluate_cfg(compose_cfg, result["best"]["checkpoint"], "eval.protocol=snippets")
    evaluated = evaluate(cfg)
    saved = np.load(f"{cfg.paths.output_dir}/scores.npz")
    assert str(saved["protocol"]) == "snippets"
    counts = np.diff(saved["offsets"])
    assert np.all((counts == saved["frames"] // 16) | (counts == -(-saved["frames"] // 16)))
    frames, labels = expand(saved)
    assert len(frames) == 16 * int(counts.sum())
    assert roc_auc_score(labels, frames) == pytest.approx(evaluated["metrics"]["auc"], abs=1e-9)
    assert "paired_auc" not in evaluated["metrics"]


def test_another_modality_of_the_same_dimension_is_refused(run, compose_cfg):
    """RGB and FLOW I3D features are both 1024-d: the checkpoint's modality must be asked for."""
    result, _ = run
    cfg = evaluate_cfg(compose_cfg, result["best"]["checkpoint"], "modality=FLOW")
    with pytest.raises(UserError) as err:
        evaluate(cfg, overridden={"modality"})
    message = str(err.value)
    assert "trained modality=RGB, asked modality=FLOW" in message
    assert result["best"]["checkpoint"] in message and "allow_other_modality=true" in message
    assert not Path(cfg.paths.output_dir).exists()  # refused before anything is written


def test_another_modality_is_scored_when_allowed(run, compose_cfg):
    result, _ = run
    cfg = evaluate_cfg(compose_cfg, result["best"]["checkpoint"], "modality=FLOW", "allow_other_modality=true")
    evaluated = evaluate(cfg, overridden={"modality"})
    assert evaluated["modality"] == "FLOW" and 0 <= evaluated["metrics"]["auc"] <= 1
    assert evaluated["metrics"]["auc"] != result["best"]["auc"]  # other features, other scores


def test_importing_vad_evaluate_leaves_lightning_out(tmp_path, cache_dir):
    proc = run_cli(["-c", "import sys, vad.evaluate; assert 'pytorch_lightning' not in sys.modules, "
                          "'pytorch_lightning imported'; assert 'vad.train' not in sys.modules"],
                   cwd=tmp_path, env_cache=cache_dir, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_evaluate_cli_runs_without_lightning(run, tmp_path, cache_dir):
    """A real ``python -m vad.evaluate``: -X importtime lists every module the process imported."""
    result, _ = run
    out = tmp_path / "eval"
    proc = run_cli(["-X", "importtime", "-m", "vad.evaluate", f"ckpt_path={result['best']['checkpoint']}",
                    f"hydra.run.dir={out}"], cwd=tmp_path, env_cache=cache_dir, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "torch" in imported and "vad.evaluation" in imported  # the check sees real imports
    assert not {m for m in imported if m.split(".")[0] in ("pytorch_lightning", "lightning_fabric")}
    evaluated = json.loads((out / "metrics.json").read_text())
    assert evaluated["metrics"]["auc"] == pytest.approx(result["best"]["auc"], abs=1e-9)


def test_a_file_that_is_not_a_checkpoint_is_named(tmp_path, compose_cfg):
    garbage = tmp_path / "model.ckpt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(UserError, match=f"not a vad checkpoint: {garbage} \\(torch.load failed"):
        evaluate(evaluate_cfg(compose_cfg, garbage))
