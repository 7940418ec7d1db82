"""The real entry points in a subprocess: the README's main command, multirun sweeps, evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli

FAST = ["data.fraction=0.1", "data.batch_size=10", "trainer.max_epochs=2",
        "trainer.enable_progress_bar=false"]


def _ok(proc):
    assert proc.returncode == 0, f"exit {proc.returncode}\nSTDOUT:\n{proc.stdout[-3000:]}\nSTDERR:\n{proc.stderr[-3000:]}"
    return proc


def test_readme_main_command_with_few_epochs(cache_dir, tmp_path):
    readme = (ROOT / "README.md").read_text()
    assert "uv run python -m vad.train modality=RGB" in readme
    proc = _ok(run_cli(["-m", "vad.train", "modality=RGB", *FAST, f"hydra.run.dir={tmp_path}/run"],
                       ROOT, cache_dir))
    assert "SYNTHETIC" in proc.stderr + proc.stdout
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["modality"] == "RGB" and metrics["last"]["epoch"] == 1
    assert (tmp_path / "run" / ".hydra" / "config.yaml").exists()
    assert (tmp_path / "run" / "plots" / "roc.png").exists()

    # vad.evaluate on the best checkpoint reproduces the run's best metrics.
    ckpt = metrics["best"]["checkpoint"]
    proc = _ok(run_cli(["-m", "vad.evaluate", f"ckpt_path={ckpt}", "data.fraction=0.1",
                        f"hydra.run.dir={tmp_path}/eval"], ROOT, cache_dir))
    evaluated = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert evaluated["metrics"]["auc"] == pytest.approx(metrics["best"]["auc"], abs=1e-9)
    assert sorted(p.name for p in (tmp_path / "eval" / "plots").iterdir()) == ["pr.png", "roc.npz", "roc.png",
                                                                             "timelines.png"]


def _jobs(sweep_dir: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sweep_dir.glob("*/metrics.json")}


def test_multirun_names_folders_by_overrides(cache_dir, tmp_path):
    _ok(run_cli(["-m", "vad.train", "-m", "modality=RGB,FLOW", "logger=none", *FAST,
                 f"hydra.sweep.dir={tmp_path}/sweep"], ROOT, cache_dir))
    jobs = _jobs(tmp_path / "sweep")
    assert set(jobs) == {
        "0_data.batch_size=10,data.fraction=0.1,logger=none,modality=RGB,trainer.max_epochs=2",
        "1_data.batch_size=10,data.fraction=0.1,logger=none,modality=FLOW,trainer.max_epochs=2"}
    assert {j["modality"] for j in jobs.values()} == {"RGB", "FLOW"}


def test_multirun_with_joblib_launcher(cache_dir, tmp_path):
    _ok(run_cli(["-m", "vad.train", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                 "extractor=I3D", "modality=RGB,TWO", "logger=none", *FAST,
                 f"hydra.sweep.dir={tmp_path}/sweep"], ROOT, cache_dir))
    jobs = _jobs(tmp_path / "sweep")
    assert len(jobs) == 2 and {j["modality"] for j in jobs.values()} == {"RGB", "TWO"}


def test_unknown_key_is_rejected_before_training(cache_dir, tmp_path):
    proc = run_cli(["-m", "vad.train", "optimiser.lr=0.1", f"hydra.run.dir={tmp_path}/run"], ROOT, cache_dir)
    assert proc.returncode != 0
    assert "optimiser" in proc.stderr
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_missing_npy_root_is_a_clear_error(cache_dir, tmp_path):
    proc = run_cli(["-m", "vad.train", "data=ucf_crime_npy", f"data.root={tmp_path}/nowhere",
                    f"hydra.run.dir={tmp_path}/run"], ROOT, cache_dir)
    assert proc.returncode != 0
    assert f"data.root={tmp_path}/nowhere is not a folder" in proc.stderr
