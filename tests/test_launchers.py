"""conf/hydra/launcher/*: each config builds on its plugin's schema; joblib, submitit_local and Ray
run a tiny sweep for real; the README's SLURM and Ray commands compose."""

from __future__ import annotations

import json
import math
import re
import shlex
import shutil
from pathlib import Path

import joblib
import pytest
import torch
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException
from hydra.utils import get_class
from hydra_plugins.hydra_joblib_launcher.config import JobLibLauncherConf
from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher
from hydra_plugins.hydra_ray_launcher._config import RayLauncherConf
from hydra_plugins.hydra_ray_launcher.ray_launcher import RayLauncher
from hydra_plugins.hydra_submitit_launcher.config import LocalQueueConf, SlurmQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import (
    LocalLauncher,
    SlurmLauncher,
)
from omegaconf import OmegaConf

from tests.conftest import CONF, ROOT, hydra_compose, run_cli
from vad.config import validate
from vad.train import set_threads

LAUNCHERS = {"joblib": (JobLibLauncherConf, JoblibLauncher),
             "submitit_local": (LocalQueueConf, LocalLauncher),
             "submitit_slurm": (SlurmQueueConf, SlurmLauncher),
             "ray": (RayLauncherConf, RayLauncher)}
TINY = ["modality=RGB,FLOW", "data.fraction=0.05", "data.batch_size=5", "trainer.max_epochs=1",
        "logger=none", "trainer.enable_progress_bar=false"]


def name_of(cls: type) -> str:
    # By name: Hydra's plugin discovery imports the plugin modules anew, so classes are not identical.
    return f"{cls.__module__}.{cls.__qualname__}"


@pytest.mark.parametrize("name", sorted(LAUNCHERS))
def test_launcher_config_builds_on_the_plugin_schema(name):
    schema, launcher = LAUNCHERS[name]
    # The file alone merges into the plugin's dataclass: no key the plugin does not know.
    file = OmegaConf.load(CONF / "hydra" / "launcher" / f"{name}.yaml")
    OmegaConf.merge(OmegaConf.structured(schema), file)
    for config_name, extra in (("train", []), ("extract", ["videos=/data/videos"])):
        cfg = hydra_compose([f"hydra/launcher={name}", *extra], config_name)
        assert cfg.hydra.runtime.choices["hydra/launcher"] == name
        assert name_of(OmegaConf.get_type(cfg.hydra.launcher)) == name_of(schema)  # merged into it
        assert name_of(get_class(cfg.hydra.launcher._target_)) == name_of(launcher)


def test_launcher_values_and_threads():
    cfg = hydra_compose(["hydra/launcher=joblib"])
    assert cfg.hydra.launcher.n_jobs == 2 and cfg.threads is None
    cfg = hydra_compose(["hydra/launcher=submitit_local"])
    assert cfg.hydra.launcher.cpus_per_task == 1 and cfg.threads == 1
    cfg = hydra_compose(["hydra/launcher=submitit_slurm"])
    slurm = cfg.hydra.launcher
    assert (slurm.gpus_per_node, slurm.cpus_per_task, slurm.timeout_min) == (1, 4, 240)
    assert slurm.partition is None and slurm.mem_gb == 32 and slurm.array_parallelism == 16
    assert cfg.threads == 4  # train.yaml's threads follows cpus_per_task
    assert hydra_compose(["hydra/launcher=submitit_slurm", "hydra.launcher.cpus_per_task=8"]).threads == 8
    assert hydra_compose(["hydra/launcher=submitit_slurm", "threads=2"]).threads == 2
    cfg = hydra_compose(["hydra/launcher=ray", "hydra.launcher.ray.init.num_cpus=2"])
    assert cfg.hydra.launcher.ray.init.num_cpus == 2 and cfg.hydra.launcher.ray.init.address is None
    assert cfg.hydra.launcher.ray.remote == {"num_cpus": 1, "num_gpus": 0}
    assert cfg.threads is None
    assert hydra_compose([]).threads is None  # the basic launcher: torch's default


def test_set_threads_applies_and_validate_checks(compose_cfg):
    before = torch.get_num_threads()
    try:
        set_threads(1)
        assert torch.get_num_threads() == 1
        set_threads(None)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    for bad in ("0", "-2"):
        with pytest.raises(ValueError, match="threads="):
            validate(compose_cfg([f"threads={bad}"]))
    for bad in ("two", "1.5", "true"):  # typed by vad.schema: fails at composition
        with pytest.raises(ConfigCompositionException, match="threads="):
            compose_cfg([f"threads={bad}"])


def test_misspelt_or_mistyped_launcher_keys_are_rejected(tmp_path):
    with pytest.raises(ConfigCompositionException):
        hydra_compose(["hydra/launcher=submitit_slurm", "hydra.launcher.gpu_per_node=2"])
    with pytest.raises(ConfigCompositionException):  # typed by the schema, not by the YAML file
        hydra_compose(["hydra/launcher=submitit_slurm", "hydra.launcher.timeout_min=an_hour"])
    with pytest.raises(ConfigCompositionException):
        hydra_compose(["hydra/launcher=ray", "hydra.launcher.ray.remotes.num_gpus=1"])
    # A misspelt key in a launcher file of the primary config dir fails too.
    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf)
    slurm = conf / "hydra" / "launcher" / "submitit_slurm.yaml"
    slurm.write_text(slurm.read_text() + "gpu_per_node: 2\n")
    with pytest.raises(ConfigCompositionException, match="submitit_slurm"):
        hydra_compose(["hydra/launcher=submitit_slurm"], conf_dir=conf)


def readme_commands() -> list[tuple[str, list[str]]]:
    """(module, overrides) of every README command that picks a launcher, first job of a sweep."""
    text = (ROOT / "README.md").read_text().replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        match = re.search(r"python -m (vad\.\w+) -m (.*hydra/launcher=.*)", line)
        if match:
            args = [a for a in shlex.split(match.group(2).split("#")[0]) if a != "-m"]
            first = []
            for override in OverridesParser.create().parse_overrides(args):
                if override.is_sweep_override():
                    first.append(f"{override.get_key_element()}={next(override.sweep_string_iterator())}")
                else:
                    first.append(override.input_line)
            commands.append((match.group(1), first))
    return commands


def test_readme_launcher_commands_compose():
    composed = []
    for module, overrides in readme_commands():
        cfg = hydra_compose(overrides, module.split(".")[1])
        name = cfg.hydra.runtime.choices["hydra/launcher"]
        assert name_of(get_class(cfg.hydra.launcher._target_)) == name_of(LAUNCHERS[name][1])
        OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
        composed.append((module, name, cfg))
    assert {name for _, name, _ in composed} == set(LAUNCHERS)
    slurm = [cfg.hydra.launcher for module, name, cfg in composed if name == "submitit_slurm"]
    assert {m for m, name, _ in composed if name == "submitit_slurm"} == {"vad.train", "vad.extract"}
    assert any(s.partition == "gpu" for s in slurm) and all(s.gpus_per_node == 1 for s in slurm)
    assert any(s.timeout_min == 1440 for s in slurm)  # the extraction shards
    ray = [cfg.hydra.launcher.ray for _, name, cfg in composed if name == "ray"]
    assert any(r.init.address == "auto" and r.init.num_cpus is None and r.remote.num_gpus == 1 for r in ray)


def sweep_jobs(sweep: Path) -> dict[str, dict]:
    """modality -> metrics.json, train.log and config_resolved.yaml of each job of a 2-job sweep."""
    jobs = {}
    for metrics_file in sweep.glob("*/metrics.json"):
        metrics = json.loads(metrics_file.read_text())
        assert math.isfinite(metrics["best"]["auc"]) and 0 <= metrics["best"]["auc"] <= 1
        assert f"modality={metrics['modality']}" in metrics_file.parent.name
        job = metrics_file.parent
        jobs[metrics["modality"]] = {"metrics": metrics, "log": (job / "train.log").read_text(),
                                     "resolved": OmegaConf.load(job / "config_resolved.yaml")}
    assert sorted(jobs) == ["FLOW", "RGB"]
    return jobs


def _ok(proc):
    assert proc.returncode == 0, \
        f"exit {proc.returncode}\nSTDOUT:\n{proc.stdout[-3000:]}\nSTDERR:\n{proc.stderr[-3000:]}"
    return proc


def test_joblib_sweep_runs_two_jobs_in_worker_processes(cache_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    proc = _ok(run_cli(["-m", "vad.train", "-m", "hydra/launcher=joblib", *TINY,
                        f"hydra.sweep.dir={tmp_path}/sweep"], ROOT, cache_dir, timeout=420))
    assert "Joblib.Parallel(n_jobs=2,backend=loky" in proc.stdout + proc.stderr
    # loky starts each of the n_jobs=2 workers with OMP_NUM_THREADS = cores // 2; threads stays null.
    expected = max(joblib.cpu_count() // 2, 1)
    for job in sweep_jobs(tmp_path / "sweep").values():
        assert job["resolved"].threads is None
        assert f"torch threads: {expected}\n" in job["log"]


def test_submitit_local_sweep_runs_jobs_in_their_own_processes(cache_dir, tmp_path):
    _ok(run_cli(["-m", "vad.train", "-m", "hydra/launcher=submitit_local", *TINY,
                 f"hydra.sweep.dir={tmp_path}/sweep"], ROOT, cache_dir, timeout=420))
    for job in sweep_jobs(tmp_path / "sweep").values():
        assert job["resolved"].threads == 1  # hydra.launcher.cpus_per_task
        assert "torch threads: 1\n" in job["log"]
    # One submitit job (a process, named by its pid) per sweep job, each with its log and result.
    job_dirs = [d for d in (tmp_path / "sweep" / ".submitit").iterdir() if d.name.isdigit()]
    assert len(job_dirs) == 2
    for job_dir in job_dirs:
        assert (job_dir / f"{job_dir.name}_0_result.pkl").is_file()
        assert "torch threads: 1" in (job_dir / f"{job_dir.name}_0_log.out").read_text()


def test_ray_sweep_runs_two_tasks_on_a_local_instance(cache_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    _ok(run_cli(["-m", "vad.train", "-m", "hydra/launcher=ray", "hydra.launcher.ray.init.num_cpus=2", *TINY,
                 f"hydra.sweep.dir={tmp_path}/sweep"], ROOT, cache_dir, timeout=420))
    for job in sweep_jobs(tmp_path / "sweep").values():
        assert job["resolved"].threads is None
        assert "torch threads: 1\n" in job["log"]  # Ray: OMP_NUM_THREADS = ray.remote.num_cpus = 1
