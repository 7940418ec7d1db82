"""``experiments/bench/bench_methods.py --tiny`` runs (a module of its own: xdist runs it beside
the other benchmarks, which share a worker as one module). Nothing here asserts a timing."""

from __future__ import annotations

import json
import re

import pytest

from tests.test_benchmarks import NUMBER, number, run_tiny


def test_bench_methods_tiny(cache_dir, tmp_path):
    # One torch thread: on a loaded 2-core machine two threads per process make each step ~25x slower.
    out = run_tiny("bench_methods.py", cache_dir, tmp_path, "--out", str(tmp_path / "out"), "--threads", "1")
    results = json.loads((tmp_path / "out" / "bench_methods.json").read_text())
    methods = results["methods"]
    assert list(methods) == ["mil", "topk_mil", "rtfm", "urdmu", "bnwvad"]
    assert (results["steps_per_run"], results["warmup_steps"], results["rounds"]) == (3, 2, 1)
    keys = {"step_ms_framework", "step_ms_plain", "ratio", "steps_per_epoch", "epoch_s", "official_steps",
            "official_s_estimate", "peak_rss_mb", "feature_mb", "peak_over_features", "eval_s", "batch", "inputs"}
    for name, r in methods.items():
        assert keys <= set(r), f"{name}: missing {keys - set(r)}"
        assert r["batch"] == 4 and len(r["steady_steps_s"]["framework"]) == len(r["steady_steps_s"]["plain"]) == 1
        assert (r["peak_rss_mb"] is None) == (name != "mil")  # --tiny probes the first method's memory only
        assert r["ratio"] == pytest.approx(r["step_ms_framework"] / r["step_ms_plain"], rel=1e-6)
        assert r["epoch_s"] == pytest.approx(r["steps_per_epoch"] * r["step_ms_framework"] / 1e3, rel=1e-6)
        assert r["official_s_estimate"] == pytest.approx(r["official_steps"] * r["step_ms_framework"] / 1e3,
                                                         rel=1e-6)
        printed = number(rf"(?m)^{name}: ratio framework/plain {NUMBER} \(target <= 1\.15: (met|MISSED)\)", out)
        assert printed == pytest.approx(r["ratio"], abs=1e-3)
        assert re.search(rf"(?m)^\| {name} \| 4 \| ", out), out
    # Each method's official inputs and schedule; RTFM's crop axis carries --tiny's two crops.
    assert [methods[m]["inputs"]["segments"] for m in methods] == [32, 200, 32, 200, 200]
    assert methods["rtfm"]["inputs"]["crops"] == "axis" and methods["rtfm"]["inputs"]["data_crops"] == 2
    spe = {m: r["steps_per_epoch"] for m, r in methods.items()}
    assert {m: r["official_steps"] for m, r in methods.items()} == {
        "mil": 75 * spe["mil"], "topk_mil": 50 * spe["topk_mil"], "rtfm": min(15000, 1000 * spe["rtfm"]),
        "urdmu": min(3000, 1000 * spe["urdmu"]), "bnwvad": min(1000, 1000 * spe["bnwvad"])}
    assert "EXTRAPOLATION from the step time" in out
