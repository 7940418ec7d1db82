"""A real TensorBoard server over a real multirun: `tensorboard --logdir <sweep dir>` shows each
job folder as one run, serves its scalars over HTTP exactly as the event files hold them, and its
HPARAMS view lists the hp/* metrics with each job's best auc."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import SWEEP_EPOCHS as EPOCHS
from tests.conftest import SWEEP_MODALITIES as MODALITIES

HP_METRICS = {"hp/auc", "hp/ap", "hp/far", "hp/paired_auc"}
DEADLINE_S = 60  # how long to wait for the server to load the runs (not a timing assertion)
# Straight to 127.0.0.1, whatever http_proxy says.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fetch(url: str, body: dict | None = None):
    """GET ``url`` (or POST ``body`` as JSON) and decode the JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    headers = {} if body is None else {"Content-Type": "application/json", "X-XSRF-Protected": "1"}
    with OPENER.open(urllib.request.Request(url, data=data, headers=headers), timeout=20) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def jobs(basic_sweep) -> dict[str, dict]:
    """Job folder name (= TensorBoard run) of the session's 2-job multirun (conftest) -> its
    metrics.json."""
    found = {p.parent.name: json.loads(p.read_text()) for p in basic_sweep.glob("*/metrics.json")}
    assert sorted(m["modality"] for m in found.values()) == sorted(MODALITIES)
    return found


@pytest.fixture(scope="module")
def server(basic_sweep, jobs, tmp_path_factory):
    """``tensorboard --logdir <sweep>`` on a free port; yields its base URL once both runs are listed."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("tb_server_log") / "tensorboard.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(basic_sweep),
                                 "--host", "127.0.0.1", "--port", str(port)],
                                cwd=log_path.parent, stdout=log, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            runs = poll(lambda: _runs_if_all(base, set(jobs)), proc, log_path, "both runs in /data/runs")
            # One log root: every job folder is a run, and nothing else is (no version_0/ below them).
            assert set(runs) == set(jobs), runs
            yield base, proc, log_path
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _runs_if_all(base: str, expected: set[str]):
    runs = fetch(f"{base}/data/runs")
    return runs if expected <= set(runs) else None


def poll(probe, proc: subprocess.Popen, log_path: Path, what: str):
    """Call ``probe()`` until it returns something other than None; fail with the server log on
    ``DEADLINE_S`` or if the server exits."""
    deadline, last_error = time.monotonic() + DEADLINE_S, None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"tensorboard exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            found = probe()
            if found is not None:
                return found
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:  # not serving yet
            last_error = exc
        time.sleep(0.5)
    pytest.fail(f"no {what} within {DEADLINE_S} s (last error: {last_error}):\n{log_path.read_text()[-3000:]}")


def event_scalars(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


@pytest.mark.parametrize("tag", ["test/auc", "hp/auc", "train/loss"])
def test_scalars_over_http_equal_the_event_files(server, basic_sweep, jobs, tag):
    base, proc, log_path = server
    for run, metrics in jobs.items():
        expected = event_scalars(basic_sweep / run, tag)
        query = urllib.parse.urlencode({"run": run, "tag": tag})
        url = f"{base}/data/plugin/scalars/scalars?{query}"

        def complete(url=url, run=run, expected=expected):  # the server may still be reading the run's later event files
            series = fetch(url) if tag in fetch(f"{base}/data/plugin/scalars/tags")[run] else []
            return series if len(series) >= len(expected) else None
        served = poll(complete, proc, log_path, f"{tag} of {run}")
        assert [(step, value) for _, step, value in served] == expected

        values = [value for _, value in expected]
        if tag == "test/auc":  # one point per epoch, the last one is metrics.json's last epoch
            assert len(values) == EPOCHS
            assert values[-1] == pytest.approx(metrics["last"]["auc"], abs=1e-6)
        elif tag == "hp/auc":  # placeholder 0 at the start, the best checkpoint's test auc at the end
            assert values[-1] == pytest.approx(metrics["best"]["auc"], abs=1e-6)
        else:
            assert len(values) >= 1 and all(v == v for v in values)


def test_hparams_view_lists_the_metrics_per_run(server, jobs):
    base, proc, log_path = server
    experiment = fetch(f"{base}/data/plugin/hparams/experiment", {})
    assert HP_METRICS <= {m["name"]["tag"] for m in experiment["metricInfos"]}
    assert {"modality/name", "optimizer/lr", "method/network/dropout"} <= {h["name"] for h in experiment["hparamInfos"]}

    request = {"startIndex": 0, "sliceSize": 100,
               "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
               "colParams": [{"metric": {"tag": "hp/auc"}}, {"hparam": "modality/name"}]}

    def all_sessions():
        groups = fetch(f"{base}/data/plugin/hparams/session_groups", request)["sessionGroups"]
        return groups if len(groups) == len(jobs) else None
    groups = poll(all_sessions, proc, log_path, "one hparams session per run")
    for group in groups:
        [session] = group["sessions"]
        metrics = jobs[session["name"]]
        assert group["hparams"]["modality/name"] == metrics["modality"]
        values = {m["name"]["tag"]: m.get("value", 0.0) for m in group["metricValues"]}
        assert HP_METRICS <= set(values)
        for key in ("auc", "ap", "paired_auc"):
            assert values[f"hp/{key}"] == pytest.approx(metrics["best"][key], abs=1e-6)
