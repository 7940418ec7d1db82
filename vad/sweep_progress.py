"""Progress of ``python -m vad.train -m ...`` sweeps: a Hydra callback (``conf/train.yaml``,
``hydra.callbacks.sweep_progress``).

* ``on_multirun_start`` (launching process): logs the sweep folder and the number of planned
  jobs (basic sweeper: the product of the sweep lists of the command line and of
  ``hydra.sweeper.params``; Optuna: ``hydra.sweeper.n_trials``), and hands the plan to the jobs
  in the environment variable ``VAD_SWEEP_PLAN``, which the joblib, submitit and ray launchers'
  workers inherit.
* ``on_job_end`` (the job's process, whatever the launcher): one line per finished job,
  ``[job 3/5] done in 41 s: variant=c3d_flow  auc 0.8123 ap 0.4100 far 0.0200`` or
  ``[job 4/5] FAILED after 3 s: variant=...: ValueError: ...`` (``[job 4]`` when the total is
  unknown).
* ``on_multirun_end`` (launching process): prints ``vad.report``'s table over the sweep folder
  and writes its files into ``<sweep dir>/report/``. Hydra 1.3 does not call it when a job
  failed (the sweeper raises after the jobs end, before the callback), so the same summary is
  also registered with ``atexit`` and runs when Hydra exits with the error. Reporting never
  fails the sweep: an error is logged as a warning.

Imports stay light (no Lightning, no torch): the module is loaded in the launching process and
unpickled in every worker.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

PLAN_ENV = "VAD_SWEEP_PLAN"


# ------------------------------------------------------------------ the plan

def _sweeper_params(sweeper: Any) -> list[str]:
    params = OmegaConf.select(sweeper, "params") if sweeper is not None else None
    if not params:
        return []
    return [f"{key}={value}" for key, value in OmegaConf.to_container(params, resolve=True).items()]


def _parser():
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    loader = GlobalHydra.instance().config_loader() if GlobalHydra.instance().is_initialized() else None
    return OverridesParser.create(config_loader=loader)


def sweep_plan(task_overrides: list[str], sweeper: Any) -> tuple[int | None, list[str]]:
    """(number of jobs or None when it cannot be known, the swept keys) of a multirun.

    ``task_overrides`` are the command line's overrides (``hydra.overrides.task``), ``sweeper``
    the ``hydra.sweeper`` node (``_target_``, ``params``, Optuna's ``n_trials``). The basic
    sweeper runs the product of the sweep lists of its ``params`` (from experiment files) and
    of the command line, the command line winning for a key in both: expanded by Hydra's own
    parser and ``BasicSweeper.split_arguments``. Optuna runs ``n_trials`` trials (an upper
    bound with its GridSampler, which stops at the grid's size).
    """
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    target = str(OmegaConf.select(sweeper, "_target_") or "") if sweeper is not None else ""
    overrides = _parser().parse_overrides(_sweeper_params(sweeper) + [str(o) for o in task_overrides])
    if target.endswith("BasicSweeper"):
        try:
            jobs = BasicSweeper.split_arguments(overrides, None)[0]
        except Exception:  # noqa: BLE001 - a sweep type it cannot expand (intervals)
            return None, []
        values: dict[str, set[str]] = {}
        for job in jobs:
            for item in job:
                key, _, value = item.partition("=")
                values.setdefault(key, set()).add(value)
        return len(jobs), [key for key, seen in values.items() if len(seen) > 1]
    swept = list(dict.fromkeys(o.get_key_element() for o in overrides if o.is_sweep_override()))
    n_trials = OmegaConf.select(sweeper, "n_trials") if sweeper is not None else None
    if n_trials is not None:
        return int(n_trials), swept
    return None, swept


def _read_plan() -> dict:
    try:
        return json.loads(os.environ.get(PLAN_ENV, "") or "{}")
    except ValueError:
        return {}


# ------------------------------------------------------------------ one line per job

def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def _one_line(text: str, limit: int = 400) -> str:
    text = " ".join(line.strip() for line in str(text).splitlines() if line.strip())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _metrics_text(output_dir: Path, return_value: Any) -> str:
    try:
        best = json.loads((output_dir / "metrics.json").read_text()).get("best") or {}
    except (OSError, ValueError):
        best = {}
    parts = [f"{name} {float(best[name]):.4f}" for name in ("auc", "ap", "far")
             if isinstance(best.get(name), (int, float))]
    if not parts and isinstance(return_value, (int, float)) and not isinstance(return_value, bool):
        parts = [f"result {float(return_value):.4f}"]
    return " ".join(parts)


def job_line(number: int, total: int | None, overrides: list[str], ok: bool, seconds: float,
             detail: str) -> str:
    """``[job k/n] done in 41 s: a=1,b=2  auc ...`` or ``[job k/n] FAILED after 3 s: ...: error``."""
    head = f"[job {number}/{total}]" if total else f"[job {number}]"
    label = ",".join(overrides) or "(no overrides)"
    if ok:
        return f"{head} done in {_duration(seconds)}: {label}" + (f"  {detail}" if detail else "")
    return f"{head} FAILED after {_duration(seconds)}: {label}: {detail}"


# ------------------------------------------------------------------ the callback

class SweepProgress(Callback):
    """Per-job progress lines and a final ``vad.report`` table for multiruns (see module doc)."""

    def __init__(self) -> None:
        self._job_started: float | None = None
        self._sweep_dir: Path | None = None
        self._hydra_logging: DictConfig | None = None
        self._verbose: Any = None
        self._pending = False

    # The launching process keeps its state; workers only need the class.
    def __getstate__(self) -> dict:
        return type(self)().__dict__  # a fresh callback's state, not a second list of the fields

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir)).absolute()
        try:
            total, keys = sweep_plan(list(config.hydra.overrides.task),
                                     OmegaConf.select(config, "hydra.sweeper"))
        except Exception as error:  # noqa: BLE001 - progress must never stop a sweep
            log.warning("could not count the sweep's jobs: %s: %s", type(error).__name__, error)
            total, keys = None, []
        os.environ[PLAN_ENV] = json.dumps({"jobs": total, "keys": keys, "dir": str(sweep_dir)})
        planned = f"{total} job{'s' if total != 1 else ''}" if total else "an unknown number of jobs"
        log.info("sweep: %s planned%s into %s", planned,
                 f" over {', '.join(keys)}" if keys else "", sweep_dir)
        self._sweep_dir = sweep_dir
        self._hydra_logging = OmegaConf.select(config, "hydra.hydra_logging")
        self._verbose = OmegaConf.select(config, "hydra.verbose", default=False)
        self._pending = True
        atexit.unregister(self._summary_at_exit)
        atexit.register(self._summary_at_exit)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._job_started = time.perf_counter()

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        from hydra.core.utils import JobStatus
        from hydra.types import RunMode

        if config.hydra.mode != RunMode.MULTIRUN:
            return
        try:
            seconds = time.perf_counter() - self._job_started if self._job_started else math.nan
            self._job_started = None
            plan = _read_plan()
            number = int(config.hydra.job.num) + 1
            overrides = [str(o) for o in (job_return.overrides or config.hydra.overrides.task)]
            keys = set(plan.get("keys") or [])
            shown = [o for o in overrides if o.partition("=")[0] in keys] if keys else overrides
            ok = job_return.status == JobStatus.COMPLETED
            if ok:
                detail = _metrics_text(Path(str(config.hydra.runtime.output_dir)),
                                       job_return._return_value)
            else:
                error = job_return._return_value
                detail = _one_line(f"{type(error).__name__}: {error}")
            line = job_line(number, plan.get("jobs"), shown or overrides, ok,
                            0.0 if math.isnan(seconds) else seconds, detail)
            (log.info if ok else log.error)(line)
        except Exception as error:  # noqa: BLE001
            log.warning("progress line failed: %s: %s", type(error).__name__, error)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._summary(finished=True)

    # ------------------------------------------------------------------ the summary

    def _summary_at_exit(self) -> None:
        self._summary(finished=False)

    def _summary(self, finished: bool) -> None:
        if not self._pending or self._sweep_dir is None:
            return
        self._pending = False
        atexit.unregister(self._summary_at_exit)
        os.environ.pop(PLAN_ENV, None)
        if self._hydra_logging is not None:
            try:  # the basic launcher leaves the last job's log file on the root logger
                from hydra.core.utils import configure_log

                configure_log(self._hydra_logging, self._verbose)
            except Exception:  # noqa: BLE001
                pass
        try:
            from vad.report import find_run_dirs, report

            if not finished and not find_run_dirs([self._sweep_dir]):
                return  # stopped before any job ran: nothing to summarise
            result = report([self._sweep_dir])
            failed = sum(not run.ok for run in result["runs"])
            state = "finished" if finished else "ended with an error"
            print(f"\nsweep {state}: {len(result['runs'])} run(s), {failed} failed; summary "
                  f"(also in {result['out']}):\n\n{result['markdown']}", end="", flush=True)
        except Exception as error:  # noqa: BLE001 - reporting must never fail the sweep
            log.warning("no sweep summary for %s: %s: %s (run `python -m vad.report %s`)",
                        self._sweep_dir, type(error).__name__, error, self._sweep_dir)
        sys.stdout.flush()
