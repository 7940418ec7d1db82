"""A training run's lifecycle: the run folder's lock, the failure written into train.log (and
shown by vad.report), one line per epoch, Ctrl-C with a resume command, and a quiet console with
one TensorBoard event file (the last two through the real ``python -m vad.train``)."""

from __future__ import annotations

import json
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli
from vad.cli import UserError, user_errors
from vad.epoch_end import line
from vad.report import last_error, read_run
from vad.run_lock import RunLock
from vad.train import check_resume, train, trainer_args

TINY = ["data.fraction=0.05", "data.batch_size=5", "trainer.enable_progress_bar=false", "scheduler=none"]
NPY = ["data=ucf_crime_npy", "data.batch_size=2", "trainer.enable_progress_bar=false", "logger=none"]
HYDRA_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"  # Hydra's job log format


# --- the lock -------------------------------------------------------------------------------

@pytest.fixture
def holder(tmp_path):
    """A live child process holding ``tmp_path/run``'s lock until it is killed."""
    run_dir = tmp_path / "run"
    code = ("import sys, time; from vad.run_lock import RunLock; RunLock(sys.argv[1], 'python -m vad.train "
            "seed=7').acquire(); print('locked', flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(run_dir)], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.stdout.readline().strip() == "locked"
    yield run_dir, proc
    proc.kill()
    proc.wait()


def test_a_folder_in_use_is_refused_and_a_stale_lock_taken_over(holder, compose_cfg, caplog):
    run_dir, proc = holder
    with pytest.raises(UserError) as err:
        RunLock(run_dir).acquire()
    assert str(err.value) == (f"{run_dir} is in use by pid {proc.pid} on host {socket.gethostname()} since "
                              f"{json.loads((run_dir / '.lock').read_text())['started']} (python -m vad.train "
                              "seed=7); wait for it or pick another hydra.run.dir")
    cfg = compose_cfg(TINY)
    cfg.paths.output_dir = str(run_dir)
    with pytest.raises(UserError, match=f"is in use by pid {proc.pid} "):
        train(cfg)
    assert sorted(p.name for p in run_dir.iterdir()) == [".lock"]  # refused before writing anything

    proc.kill()  # gone without releasing: its .lock stays, held by nobody
    proc.wait()
    assert json.loads((run_dir / ".lock").read_text())["pid"] == proc.pid
    with caplog.at_level(logging.WARNING, logger="vad.run_lock"), RunLock(run_dir, "mine") as lock:
        mine = json.loads(lock.path.read_text())
        assert (mine["pid"], mine["host"], mine["command"]) == (os.getpid(), socket.gethostname(), "mine")
    assert f"{run_dir}: taking over the stale lock of pid {proc.pid} on host " in caplog.text
    assert "that process no longer holds it" in caplog.text
    assert not (run_dir / ".lock").exists()  # released


def test_each_folder_has_its_own_lock(tmp_path):
    with RunLock(tmp_path / "0_modality=RGB"), RunLock(tmp_path / "1_modality=FLOW"):
        with pytest.raises(UserError, match="0_modality=RGB is in use by pid"):
            RunLock(tmp_path / "0_modality=RGB").acquire()


# --- failures in train.log ------------------------------------------------------------------

@pytest.fixture
def train_log(monkeypatch):
    """``run_dir -> path``: a FileHandler on the root logger as Hydra installs for train.log."""
    handlers = []

    def attach(run_dir: Path) -> Path:
        run_dir.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(run_dir / "train.log")
        handler.setFormatter(logging.Formatter(HYDRA_FORMAT))
        logging.getLogger().addHandler(handler)
        handlers.append(handler)
        return run_dir / "train.log"
    yield attach
    for handler in handlers:
        logging.getLogger().removeHandler(handler)
        handler.close()


def test_an_unexpected_exception_lands_in_train_log_with_its_traceback(compose_cfg, train_log, monkeypatch):
    def bug(self, batch, batch_idx):
        raise RuntimeError("simulated bug in training_step")
    monkeypatch.setattr("vad.lit_module.MILModule.training_step", bug)
    cfg = compose_cfg(TINY + ["trainer.max_epochs=1", "logger=none"])
    run_dir = Path(cfg.paths.output_dir)
    log_file = train_log(run_dir)
    with pytest.raises(RuntimeError, match="simulated bug"):  # propagates as before
        train(cfg)
    text = log_file.read_text()
    assert "[ERROR] - training failed:\nTraceback (most recent call last):\n" in text
    assert 'in bug\n    raise RuntimeError("simulated bug in training_step")\n' in text
    assert last_error(run_dir) == "no metrics.json: RuntimeError: simulated bug in training_step"
    assert not (run_dir / ".lock").exists()


def test_bad_data_lands_in_train_log_with_the_dataset_report(compose_cfg, train_log, tmp_path, capsys):
    empty = tmp_path / "features"
    empty.mkdir()
    cfg = compose_cfg(NPY + [f"data.root={empty}"])
    run_dir = Path(cfg.paths.output_dir)
    log_file = train_log(run_dir)
    with pytest.raises(SystemExit) as stop:  # as `python -m vad.train`: vad.cli's message, exit 1
        user_errors(train)(cfg)
    assert stop.value.code == 1
    assert "Traceback" not in capsys.readouterr().err
    text = log_file.read_text()
    assert "Traceback" not in text
    head = ("the dataset has problems (run `python -m vad.check` with the same data options for this report "
            f"alone): ucf_crime_npy at {empty}: ")
    assert last_error(run_dir).startswith(f"no metrics.json: {head}")
    assert last_error(run_dir).endswith(" videos, 1 errors, 0 warnings")
    assert f"{empty} has only []: pick a modality of those streams" in text  # the whole report
    assert not (run_dir / ".lock").exists()


def test_a_user_error_in_a_multirun_job_lands_in_its_train_log(compose_cfg, train_log, tmp_path, monkeypatch):
    monkeypatch.setattr("vad.cli.multirun", lambda: True)  # vad.cli re-raises it for the launcher
    cfg = compose_cfg(NPY + [f"data.root={tmp_path / 'nowhere'}"])
    log_file = train_log(Path(cfg.paths.output_dir))
    with pytest.raises(FileNotFoundError, match="is not a folder") as err:
        user_errors(train)(cfg)  # as vad.train's main calls it
    assert f"[ERROR] - {err.value}\n" in log_file.read_text()


def test_resume_past_max_steps_is_refused():
    from omegaconf import OmegaConf

    trainer = OmegaConf.create({"max_epochs": 1000, "max_steps": 200})
    with pytest.raises(UserError) as err:
        check_resume("a.ckpt", {"epoch": 9, "global_step": 200}, trainer)
    assert str(err.value) == ("ckpt_path=a.ckpt ended at global step 200 (epoch 10), but trainer.max_steps=200: "
                              "nothing is left to train; raise trainer.max_steps above 200 to continue")
    assert check_resume("a.ckpt", {"epoch": 9, "global_step": 199}, trainer) == {
        "checkpoint": "a.ckpt", "epoch": 9, "global_step": 199}


# --- epoch lines and the progress bar -------------------------------------------------------

def test_epoch_line_format():
    record = {"epoch": 2, "global_step": 81, "loss": 0.81234, "auc": 0.77121, "ap": 0.22096, "far": 0.03124,
              "lr": 0.001, "seconds": 4.14}
    assert line(record, 75) == "epoch 3/75  step 81  loss 0.8123  auc 0.7712  ap 0.2210  far 0.0312  lr 1.0e-03  4.1 s"
    record.update(holdout_auc=0.5, lr=2.5e-05)
    assert line(record, 1000, 20000) == ("epoch 3/1000  step 81/20000  loss 0.8123  auc 0.7712  ap 0.2210  "
                                         "far 0.0312  holdout_auc 0.5000  lr 2.5e-05  4.1 s")


def test_one_line_per_epoch_with_the_holdout_auc(compose_cfg, caplog):
    with caplog.at_level(logging.INFO, logger="vad.train"):
        result = train(compose_cfg(TINY + ["data.val_source=train_holdout", "trainer.max_epochs=2", "logger=none"]))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert [ln.split()[:2] for ln in lines] == [["epoch", "1/2"], ["epoch", "2/2"]]
    last = result["last"]
    assert f"auc {last['auc']:.4f}  ap {last['ap']:.4f}  far {last['far']:.4f}  " \
           f"holdout_auc {last['holdout/video_auc']:.4f}  lr 1.0e-03  " in lines[-1]
    assert [h["holdout_auc"] for h in result["history"]][-1] == last["holdout/video_auc"]


@pytest.mark.parametrize(("setting", "tty", "shown"), [("null", True, True), ("null", False, False),
                                                        ("true", False, True), ("false", True, False)])
def test_progress_bar_only_on_a_terminal_unless_forced(compose_cfg, monkeypatch, setting, tty, shown):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: tty)
    cfg = compose_cfg([f"trainer.enable_progress_bar={setting}"])
    assert trainer_args(cfg)["enable_progress_bar"] is shown


def test_default_progress_bar_is_automatic(compose_cfg):
    assert compose_cfg([]).trainer.enable_progress_bar is None


# --- the real command: quiet console, one event file ----------------------------------------

# --- Ctrl-C ---------------------------------------------------------------------------------

def test_ctrl_c_ends_with_a_resume_command_that_continues(cache_dir, tmp_path):
    run_dir = tmp_path / "run dir"  # a space: the printed command must quote it
    args = ["-m", "vad.train", *TINY, "trainer.max_epochs=50", "logger=none", f"hydra.run.dir={run_dir}"]
    env = dict(os.environ, VAD_CACHE_DIR=str(cache_dir), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    watchdog = threading.Timer(400, proc.kill)
    watchdog.start()
    try:
        seen = []
        for text in proc.stdout:
            seen.append(text)
            if "[vad.train][INFO] - epoch 2/50 " in text:
                proc.send_signal(signal.SIGINT)
                break
        output = "".join(seen) + proc.stdout.read()
        status = proc.wait()
    finally:
        watchdog.cancel()
    assert status == 130, output[-3000:]
    assert "Traceback" not in output
    [message] = [ln.split(" - ", 1)[1] for ln in output.splitlines() if "interrupted after epoch" in ln]
    assert message.startswith("interrupted after epoch 2/50; resume with python -m vad.train ")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "interrupted" and metrics["message"] == message
    assert metrics["last"]["epoch"] == 1 and 0 <= metrics["last"]["auc"] <= 1
    assert [h["epoch"] for h in metrics["history"]][:2] == [0, 1]
    assert not (run_dir / ".lock").exists()
    assert read_run(run_dir).error == f"interrupted: {message}"  # a failed run for vad.report

    command = shlex.split(message.split("resume with ", 1)[1])
    assert command[:3] == ["python", "-m", "vad.train"]
    assert f"hydra.run.dir='{run_dir}'" in command  # quoted for Hydra
    assert f"ckpt_path='{run_dir}/checkpoints/last.ckpt'" in command
    resumed_args = [a for a in command[1:] if not a.startswith("trainer.max_epochs=")] + ["trainer.max_epochs=4"]
    resumed = run_cli(resumed_args, ROOT, cache_dir)
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-3000:]
    epoch_lines = [ln.split(" - ", 1)[1] for ln in resumed.stdout.splitlines() if "[vad.train][INFO] - epoch " in ln]
    assert [ln.split()[1] for ln in epoch_lines] == ["3/4", "4/4"]
    finished = json.loads((run_dir / "metrics.json").read_text())
    assert finished["status"] == "finished" and finished["resumed_from"]["epoch"] == 1
    assert [h["epoch"] for h in finished["history"]] == [2, 3]
    assert finished["history"][0]["global_step"] > finished["resumed_from"]["global_step"]
