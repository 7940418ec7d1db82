"""vad.sweep_progress: the plan's job count, one progress line per job and the final vad.report
table of a multirun, also when a job fails."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from tests.conftest import CONF, ROOT, SWEEP_MODALITIES, run_cli
from vad.sweep_progress import PLAN_ENV, SweepProgress, job_line, sweep_plan

BASIC = OmegaConf.create({"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
                          "max_batch_size": None, "params": None})
OPTUNA = OmegaConf.create({"_target_": "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper",
                           "n_trials": 20, "n_jobs": 1,
                           "params": {"optimizer.lr": "tag(log, interval(1e-4, 1e-1))",
                                      "data.batch_size": "choice(10, 20)"}})
JOB = re.compile(r"\[job (\d+)/(\d+)\] done in \d+ (?:s|min \d+ s): (\S+)  auc (\d\.\d{4}) ap \S+ far \S+")


def hydra_sweeper(overrides: list[str]):
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(CONF), version_base="1.3"):
            return compose("train", overrides=overrides, return_hydra_config=True).hydra.sweeper
    finally:
        GlobalHydra.instance().clear()


def test_job_count_of_parsed_overrides():
    assert sweep_plan(["a=1,2", "b=x,y,z"], BASIC) == (6, ["a", "b"])
    assert sweep_plan(["a=1,2", "c=fixed"], BASIC) == (2, ["a"])
    assert sweep_plan(["seed=range(0,4)", "a=1"], BASIC) == (4, ["seed"])
    assert sweep_plan(["a=1,2", "a=3"], BASIC) == (1, [])  # the last value of a key wins
    assert sweep_plan(["a=interval(0,1)"], BASIC) == (None, [])  # not a basic sweep: unknown
    assert sweep_plan(["a=1,2"], OmegaConf.create({"_target_": "some.OtherSweeper"})) == (None, ["a"])


def test_job_count_with_an_experiments_sweeper_params():
    capstone = hydra_sweeper(["experiment=capstone"])
    assert sweep_plan(["experiment=capstone"], capstone) == (5, ["variant"])
    assert sweep_plan(["experiment=capstone", "seed=0,1,2"], capstone) == (15, ["variant", "seed"])
    # the command line's value replaces the experiment's list
    assert sweep_plan(["experiment=capstone", "variant=i3d_rgb"], capstone) == (1, [])
    grid = hydra_sweeper(["experiment=modality_extractor"])
    assert sweep_plan(["experiment=modality_extractor", "seed=0,1"], grid)[0] == 12


def test_job_count_of_optuna_is_n_trials():
    total, keys = sweep_plan(["seed=0,1", "method.network.dropout=0.5"], OPTUNA)
    assert total == 20
    assert keys == ["optimizer.lr", "data.batch_size", "seed"]


def test_job_line_formats():
    assert job_line(3, 5, ["variant=c3d_flow"], True, 41.2, "auc 0.8123") == \
        "[job 3/5] done in 41 s: variant=c3d_flow  auc 0.8123"
    assert job_line(4, None, ["a=1", "b=2"], False, 125, "ValueError: bad") == \
        "[job 4] FAILED after 2 min 05 s: a=1,b=2: ValueError: bad"


def test_summary_never_raises_and_plan_reaches_the_environment(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv(PLAN_ENV, raising=False)
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "empty")},
                                         "overrides": {"task": ["a=1,2", "b=x,y,z"]},
                                         "sweeper": OmegaConf.to_container(BASIC)}})
    callback = SweepProgress()
    with caplog.at_level(logging.INFO, logger="vad.sweep_progress"):
        callback.on_multirun_start(config)
        plan = json.loads(os.environ[PLAN_ENV])
        assert plan["jobs"] == 6 and plan["keys"] == ["a", "b"]
        callback.on_multirun_end(config)  # no run folder at all: a warning, no exception
    assert "6 jobs planned" in caplog.text
    assert "no sweep summary" in caplog.text and "python -m vad.report" in caplog.text
    assert PLAN_ENV not in os.environ


def test_callback_module_keeps_lightning_out():
    code = ("import sys, vad.sweep_progress, vad.report; "
            "print(sorted(m for m in sys.modules if 'lightning' in m or m == 'torch'))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def table_rows(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("| `")]


def test_sweep_prints_plan_jobs_and_final_table(basic_sweep):
    sweep_dir = basic_sweep  # conftest.SWEEP_ARGS: modality=RGB,FLOW with the basic launcher
    stdout = (sweep_dir.parent / "stdout.txt").read_text()
    output = stdout + (sweep_dir.parent / "stderr.txt").read_text()
    assert re.search(rf"sweep: 2 jobs planned over modality into {re.escape(str(sweep_dir))}", output)

    metrics = {json.loads(p.read_text())["modality"]: (p.parent.name, json.loads(p.read_text()))
               for p in sweep_dir.glob("*/metrics.json")}
    assert set(metrics) == set(SWEEP_MODALITIES)
    lines = JOB.findall(output)
    assert len(lines) == 2, output[-3000:]
    assert {int(k) for k, *_ in lines} == {1, 2} and {n for _, n, *_ in lines} == {"2"}
    for number, _, label, auc in lines:
        modality = label.removeprefix("modality=")
        folder, result = metrics[modality]
        assert folder.startswith(f"{int(number) - 1}_")  # hydra.job.num starts at 0
        assert auc == f"{result['best']['auc']:.4f}"

    assert "sweep finished: 2 run(s), 0 failed" in output
    rows = table_rows(output.split("sweep finished", 1)[1])
    assert sorted(row.split("`")[1] for row in rows) == ["modality=FLOW", "modality=RGB"]
    report_md = sweep_dir / "report" / "report.md"
    assert report_md.is_file() and (sweep_dir / "report" / "report.csv").is_file()
    assert report_md.read_text() in stdout  # the printed table is vad.report's


def test_failed_job_is_named_and_summarised(cache_dir, tmp_path):
    # data.batch_size=0 fails vad.config.validate in the job (a negative lr is not checked there)
    sweep_dir = tmp_path / "sweep"
    proc = run_cli(["-m", "vad.train", "-m", "data.batch_size=5,0", "data.fraction=0.05",
                    "trainer.max_epochs=1", "logger=none", "trainer.enable_progress_bar=false",
                    f"hydra.sweep.dir={sweep_dir}"], ROOT, cache_dir, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]  # Hydra still fails the multirun
    assert "sweep: 2 jobs planned over data.batch_size" in output
    assert re.search(r"\[job 1/2\] done in \d+ s: data\.batch_size=5  auc \d\.\d{4}", output)
    assert re.search(r"\[job 2/2\] FAILED after \d+ s: data\.batch_size=0: ValueError: invalid "
                     r"configuration: - data\.batch_size=0: expected >= 1", output), output[-3000:]
    # Hydra skips on_multirun_end when a job failed; the summary comes from the exit hook.
    assert "sweep ended with an error: 2 run(s), 1 failed" in output
    summary = output.split("sweep ended with an error", 1)[1]
    assert "## Failed runs" in summary
    failed = summary.split("## Failed runs", 1)[1]
    assert [row.split("`")[3] for row in table_rows(failed)] == ["data.batch_size=0"]
    assert "expected >= 1" in failed
    report_md = (sweep_dir / "report" / "report.md").read_text()
    assert "## Failed runs" in report_md and "data.batch_size=0" in report_md

