"""The real entry points: the README's main command and evaluate in a subprocess, the session's
multirun's folders, and the errors a user sees before training."""

from __future__ import annotations

import json
import sys

import pytest
from hydra.core.global_hydra import GlobalHydra

from tests.conftest import CONF, ROOT, run_cli


def _ok(proc):
    assert proc.returncode == 0, f"exit {proc.returncode}\nSTDOUT:\n{proc.stdout[-3000:]}\nSTDERR:\n{proc.stderr[-3000:]}"
    return proc


def test_readme_main_command_with_few_epochs(cache_dir, tmp_path):
    """The README's command (fewer videos and epochs) through the real entry point: a quiet
    console (no Lightning tips or warnings, no progress bar when stdout is no terminal), one line
    per epoch on the console and in train.log, one TensorBoard event file; vad.evaluate of its
    best checkpoint gives its numbers."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    readme = (ROOT / "README.md").read_text()
    assert "uv run python -m vad.train modality=RGB" in readme
    run_dir = tmp_path / "run"
    proc = _ok(run_cli(["-m", "vad.train", "modality=RGB", "data.fraction=0.05", "data.batch_size=5",
                        "trainer.max_epochs=2", f"hydra.run.dir={run_dir}"], ROOT, cache_dir))
    output = proc.stdout + proc.stderr
    assert "SYNTHETIC" in output
    assert "litlogger" not in output and "LeafSpec" not in output and "Traceback" not in output
    assert "it/s" not in output  # no progress bar: stdout is no terminal
    epoch_lines = [ln.split(" - ", 1)[1] for ln in proc.stdout.splitlines() if "[vad.train][INFO] - epoch " in ln]
    assert [ln.split()[:2] for ln in epoch_lines] == [["epoch", "1/2"], ["epoch", "2/2"]]
    assert epoch_lines == [ln.split(" - ", 1)[1] for ln in (run_dir / "train.log").read_text().splitlines()
                           if "[vad.train][INFO] - epoch " in ln]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["modality"] == "RGB" and metrics["last"]["epoch"] == 1
    assert f"auc {metrics['last']['auc']:.4f}  ap {metrics['last']['ap']:.4f}" in epoch_lines[-1]
    assert (run_dir / ".hydra" / "config.yaml").exists() and (run_dir / "plots" / "roc.png").exists()
    events = list(run_dir.glob("events.out.tfevents.*"))
    assert len(events) == 1, events
    acc = EventAccumulator(str(events[0]), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    assert {"train/loss", "test/auc", "hp/auc", "hp/ap"} <= set(acc.Tags()["scalars"])
    assert len(acc.Scalars("test/auc")) == 2
    assert acc.Scalars("hp/auc")[-1].value == pytest.approx(metrics["best"]["auc"], abs=1e-6)
    assert {"test/roc", "test/pr"} <= set(acc.Tags()["images"])
    assert "_hparams_/session_start_info" in acc.PluginTagToContent("hparams")
    assert not (run_dir / ".lock").exists()

    # vad.evaluate on the best checkpoint reproduces the run's best metrics.
    ckpt = metrics["best"]["checkpoint"]
    proc = _ok(run_cli(["-m", "vad.evaluate", f"ckpt_path={ckpt}", "data.fraction=0.05",
                        f"hydra.run.dir={tmp_path}/eval"], ROOT, cache_dir))
    evaluated = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert evaluated["metrics"]["auc"] == pytest.approx(metrics["best"]["auc"], abs=1e-9)
    assert sorted(p.name for p in (tmp_path / "eval" / "plots").iterdir()) == ["pr.png", "roc.npz", "roc.png",
                                                                             "timelines.png"]


def test_multirun_names_folders_by_overrides(basic_sweep):
    # conftest.SWEEP_ARGS; trainer.enable_progress_bar is one of the keys left out of the names.
    jobs = {p.parent.name: json.loads(p.read_text()) for p in basic_sweep.glob("*/metrics.json")}
    assert set(jobs) == {"0_data.batch_size=5,data.fraction=0.05,modality=RGB,trainer.max_epochs=2",
                         "1_data.batch_size=5,data.fraction=0.05,modality=FLOW,trainer.max_epochs=2"}
    assert [jobs[name]["modality"] for name in sorted(jobs)] == ["RGB", "FLOW"]


def test_unknown_key_is_rejected_before_training(tmp_path, monkeypatch, capsys):
    # In-process through the real entry point: Hydra refuses the key while composing, before
    # the task (and its logging set-up) runs. --config-path: imported, not run as __main__,
    # vad.train would look for a config module instead of conf/.
    from vad.train import main

    monkeypatch.setattr(sys, "argv", ["vad.train", f"--config-path={CONF}", "optimiser.lr=0.1",
                                      f"hydra.run.dir={tmp_path}/run"])
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    try:
        with pytest.raises(SystemExit) as exit_info:
            main()
    finally:
        GlobalHydra.instance().clear()
    assert exit_info.value.code == 1
    assert "Could not override 'optimiser.lr'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_missing_npy_root_is_a_clear_error(cache_dir, tmp_path):
    proc = run_cli(["-m", "vad.train", "data=ucf_crime_npy", f"data.root={tmp_path}/nowhere",
                    f"hydra.run.dir={tmp_path}/run"], ROOT, cache_dir)
    assert proc.returncode == 1
    assert f"Error: data.root={tmp_path}/nowhere is not a folder" in proc.stderr
    assert "Traceback" not in proc.stderr
