"""Shared fixtures: a synthetic-data cache and one real multirun that several test modules inspect,
each made once per test session even across xdist workers (``shared``), and Hydra config
composition."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

import vad.schema  # noqa: F401 - registers conf/train.yaml's schemas for compose()

# Under xdist every worker (one per core) gets one torch/OpenMP thread, and so do the commands
# the tests start: two workers with a thread per core each would oversubscribe the cores, and
# OpenMP's spinning threads burn CPU time while they wait. Tests that check thread counts set
# their own environment.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
# Small, fast runs: 20% of the videos, few epochs, no progress bar.
SMALL = ["data.fraction=0.2", "data.batch_size=10", "trainer.enable_progress_bar=false",
         "trainer.max_epochs=4", "scheduler=none"]


def shared(tmp_path_factory, name: str, make=None) -> Path:
    """A folder of the whole test session, the same for every xdist worker: ``make(folder)`` fills
    it once, under a file lock, whichever worker asks first (a fixture of scope "session" is made
    once per worker otherwise)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the basetemp every worker's own one lives in
    folder = root / name
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / ".done").exists():
            folder.mkdir(parents=True, exist_ok=True)
            if make is not None:
                make(folder)
            (folder / ".done").write_text("")
    return folder


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """The synthetic-data cache of the session (its writes are atomic, so workers share it)."""
    path = shared(tmp_path_factory, "vad_cache")
    os.environ["VAD_CACHE_DIR"] = str(path)
    return path


def make_cfg(overrides: list[str], output_dir: Path, config_name: str = "train") -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` as the CLI would, writing into ``output_dir``."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        del cfg["hydra"]  # a CLI run's config has no hydra node either
    return cfg



def make_checkpoint(path: Path, overrides: list[str], input_dim: int, seed: int = 0) -> Path:
    """A checkpoint with vad.train's key layout (the composed run config, its method's network
    seeded), for tests and benchmarks that need a detector without training one."""
    import torch
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    run = OmegaConf.to_container(make_cfg(overrides, path.parent / "run_cfg"), resolve=True)
    torch.manual_seed(seed)
    network = instantiate(run["method"]["network"], input_dim=input_dim)
    torch.save({"state_dict": {f"network.{k}": v for k, v in network.state_dict().items()},
                "epoch": 0, "global_step": 0,
                "hyper_parameters": {"run": run, "input_dim": input_dim, "network": run["method"]["network"],
                                     "loss": run["method"]["loss"]}}, path)
    return path

@pytest.fixture
def compose_cfg(cache_dir, tmp_path):
    """``compose_cfg([...overrides])`` -> config writing under a fresh ``tmp_path/run<i>``."""
    count = iter(range(1000))

    def _compose(overrides: list[str], config_name: str = "train") -> DictConfig:
        return make_cfg(overrides, tmp_path / f"run{next(count)}", config_name)
    yield _compose
    GlobalHydra.instance().clear()


def hydra_compose(overrides: list[str], config_name: str = "train", conf_dir: Path = CONF) -> DictConfig:
    """The composed config with its hydra node (sweeper, launcher); HydraConfig is set so that
    ``${hydra:...}`` interpolations resolve."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(conf_dir), version_base="1.3"):
            cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()
    HydraConfig.instance().set_config(cfg)
    return cfg


def run_cli(args: list[str], cwd: Path, env_cache: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``python <args>`` in ``cwd`` with the session cache; return the completed process."""
    env = dict(os.environ, VAD_CACHE_DIR=str(env_cache), PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


# The session's basic-launcher multirun: 2 jobs with the default TensorBoard logger.
SWEEP_MODALITIES = ("RGB", "FLOW")
SWEEP_EPOCHS = 2
SWEEP_ARGS = ["-m", "vad.train", "-m", f"modality={','.join(SWEEP_MODALITIES)}", "data.fraction=0.05",
              "data.batch_size=5", f"trainer.max_epochs={SWEEP_EPOCHS}", "trainer.enable_progress_bar=false"]


@pytest.fixture(scope="session")
def basic_sweep(cache_dir, tmp_path_factory) -> Path:
    """``python -m vad.train -m modality=RGB,FLOW ...`` run once per session (the CLI start-up and
    Lightning import cost ~10 s a process); returns the sweep folder. What the command printed is
    in ``stdout.txt`` and ``stderr.txt`` next to it."""
    def make(folder: Path) -> None:
        proc = run_cli([*SWEEP_ARGS, f"hydra.sweep.dir={folder / 'sweep'}"], ROOT, cache_dir)
        assert proc.returncode == 0, f"STDOUT:\n{proc.stdout[-3000:]}\nSTDERR:\n{proc.stderr[-3000:]}"
        (folder / "stdout.txt").write_text(proc.stdout)
        (folder / "stderr.txt").write_text(proc.stderr)

    return shared(tmp_path_factory, "basic_sweep", make) / "sweep"


# The modules that take longest (``pytest --durations``), started first: xdist hands whole modules
# (``--dist loadscope``) to whichever worker is free, so a long module picked up last would leave
# the other worker idle at the end. Only the order changes; every test still runs.
LONGEST_FIRST = ("test_benchmarks", "test_method_training", "test_methods", "test_benchmarks_methods", "test_launchers", "test_extract",
                 "test_train", "test_datasets", "test_run_lifecycle",
                 "test_experiments", "test_own_footage", "test_cli", "test_prepare_roundtrip",
                 "test_tensorboard_server", "test_detect", "test_optuna")


def pytest_collection_modifyitems(items) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.module.__name__.rsplit(".", 1)[-1], len(rank)))
