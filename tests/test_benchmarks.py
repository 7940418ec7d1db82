"""Every benchmark of experiments/bench/ runs: its ``--tiny`` mode, as a real subprocess, exits 0
and prints its ratio lines, and the ratios it prints follow from the times it wrote. Nothing
here asserts a timing."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import ROOT, run_cli

BENCH = ROOT / "experiments" / "bench"
NUMBER = r"(\d+\.\d+|nan)"


def run_tiny(name: str, cache_dir, tmp_path, *args: str) -> str:
    proc = run_cli([str(BENCH / name), "--tiny", *args], tmp_path, cache_dir, timeout=600)
    assert proc.returncode == 0, f"{name} exit {proc.returncode}\nSTDOUT:\n{proc.stdout[-3000:]}\n" \
                                 f"STDERR:\n{proc.stderr[-3000:]}"
    assert "--tiny" in proc.stdout
    return proc.stdout


def number(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    assert match, f"no line matching {pattern!r} in:\n{text}"
    return float(match.group(1))


def test_bench_train_tiny(cache_dir, tmp_path):
    out = run_tiny("bench_train.py", cache_dir, tmp_path, "--out", str(tmp_path / "out"))
    results = json.loads((tmp_path / "out" / "bench_train.json").read_text())
    epochs, steps, memory = results["epochs"], results["steps"], results["memory"]
    ratio = number(rf"ratio Lightning/plain, epochs\s+{NUMBER}\s+<= 1\.15", out)
    assert ratio == pytest.approx(epochs["median_s"]["framework"] / epochs["median_s"]["plain"], abs=1e-3)
    number(rf"ratio Lightning/plain, {steps['pairs']} paired steps\s+{NUMBER}\s+<= 1\.15", out)
    assert steps["pairs"] >= 1 and epochs["rounds"] == 1 and epochs["epochs_per_run"] == 2
    added = number(rf"\(peak - baseline\) / feature bytes\s+{NUMBER}\s+<= 2", out)
    assert added == pytest.approx(1024 * (memory["peak_kib"] - memory["baseline_kib"]) / memory["feature_bytes"],
                                  abs=0.01)
    assert re.search(r"frame_metrics \(\d+, 32\), [\d,]+ frames\s+\d+\.\d+ ms\s+<= 20 ms", out), out


def test_bench_store_tiny(tmp_path):
    out = run_tiny("bench_store.py", tmp_path, tmp_path, "--out", str(tmp_path / "out"))
    results = json.loads((tmp_path / "out" / "bench_store.json").read_text())
    small, large = results["sizes"]
    assert (small["every"], large["every"]) == (380, 190) and (small["videos"], large["videos"]) == (5, 10)
    raw = number(rf"size 190 vs 380: raw bytes x{NUMBER}, write RSS delta x", out)
    assert raw == pytest.approx(large["raw_gb"] / small["raw_gb"], abs=0.01)
    number(rf"RSS delta / largest raw video = {NUMBER}", out)
    assert re.search(r"at \d+ MB/s: ~\d+\.\d min of conversion", out), out
    assert re.search(r"load\(\): 100-video I3D TWO store .* in \d+\.\d+ s", out), out


def test_bench_extract_tiny(tmp_path):
    out = run_tiny("bench_extract.py", tmp_path, tmp_path)
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [(r["extractor"], r["stream"]) for r in rows] == [("C3D", "RGB"), ("I3D", "RGB"), ("I3D", "FLOW")]
    for row in rows:
        assert row["clips"] == 1 and row["rounds"] == 1
        # end to end / forward time = forward / end-to-end clips/s (each rounded to 3 decimals)
        assert row["ratio"] == pytest.approx(row["forward_clips_per_s"] / row["end_to_end_clips_per_s"], rel=0.05)


def test_bench_sweep_tiny(cache_dir, tmp_path):
    out = run_tiny("bench_sweep.py", cache_dir, tmp_path, "--work", str(tmp_path / "work"))
    rows = {r["sweep"].split("-")[0]: r for r in map(json.loads, (ln for ln in out.splitlines() if ln.startswith("{")))}
    assert set(rows) == {"basic", "joblib"}
    for row in rows.values():
        assert len(row["fit_s"]) == len(row["auc"]) == 1  # the I3D RGB model
    # same seeds, same data: the same models (up to the summation order of other thread counts)
    assert rows["basic"]["auc"] == pytest.approx(rows["joblib"]["auc"], abs=2e-3)
    ratio = number(rf"joblib/basic wall ratio {NUMBER}; worst per-job overhead/fit: basic", out)
    assert ratio == pytest.approx(rows["joblib"]["wall_s"] / rows["basic"]["wall_s"], abs=0.01)


def test_bench_startup_tiny(tmp_path):
    out = run_tiny("bench_startup.py", tmp_path, tmp_path, "--out", str(tmp_path / "out"))
    results = json.loads((tmp_path / "out" / "bench_startup.json").read_text())["results"]
    names = ["import torch", "vad.check", "vad.report", "vad.prepare", "vad.evaluate"]
    assert list(results) == names  # --tiny leaves out the import pytorch_lightning reference
    # The reference imports what it names, so the import probe works.
    assert results["import torch"]["imports"] == {"torch": True, "pytorch_lightning": False}
    torch_s = results["import torch"]["first_line_s"]
    for name in names:
        r = results[name]
        assert 0 < r["first_line_s"] <= r["exit_s"]
        line = number(rf"(?m)^{re.escape(name)}\s+\d+\.\d+ s\s+\d+\.\d+ s\s+{NUMBER}\s+(yes|no)\s+(yes|no)\s+", out)
        assert line == pytest.approx(r["first_line_s"] / torch_s, abs=0.01)
    for name in ("vad.check", "vad.report", "vad.prepare"):
        assert re.search(rf"(?m)^{re.escape(name)} .*first line <= 1\.5 s: (met|MISSED)$", out), out
    assert re.search(r"(?m)^vad\.evaluate .*without Lightning: (met|MISSED)$", out), out


def test_bench_metrics_tiny(tmp_path):
    out = run_cli([str(BENCH / "bench_metrics.py"), "--tiny"], tmp_path, tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    for metric in ("auc", "ap"):
        hand = number(rf"{metric}: hand-written\s+{NUMBER} ms", out.stdout)
        sklearn = number(rf"{metric}: hand-written\s+\S+ ms\s+scikit-learn\s+{NUMBER} ms", out.stdout)
        ratio = number(rf"{metric}: .* ratio sklearn/hand\s+{NUMBER}x", out.stdout)
        assert ratio == pytest.approx(sklearn / hand, rel=0.05, abs=0.1)
        # both implementations give the same value
        assert number(rf"{metric}: .*\|difference\| (\d\.\de[-+]\d+)", out.stdout) < 1e-12
    assert "decision: none from --tiny" in out.stdout


def test_bench_detect_tiny(tmp_path):
    out = run_tiny("bench_detect.py", tmp_path, tmp_path, "--out", str(tmp_path / "out"))
    results = json.loads((tmp_path / "out" / "bench_detect.json").read_text())
    (row,) = results["extractors"]
    assert (row["extractor"], row["stream"], row["rounds"]) == ("C3D", "RGB", 1)
    assert row["clips"] == 2 and row["frames"] == 40  # 2 clips + 8 tail frames
    median = row["median_s"]
    forward = number(rf"C3D RGB: forward on prepared clips\s+{NUMBER} clips/s", out)
    assert forward == pytest.approx(row["clips"] / median["forward"], abs=1e-3)
    for mode in ("video", "stream"):
        line = rf"C3D RGB: mode={mode}\s+{NUMBER} clips/s\s+ratio {mode}/forward {NUMBER}\s+>= 0\.9: (met|MISSED)" \
               rf"\s+real-time factor {NUMBER}"
        match = re.search(line, out)
        assert match, f"no line matching {line!r} in:\n{out}"
        clips_per_s, ratio, verdict, factor = match.groups()
        assert float(clips_per_s) == pytest.approx(row["clips"] / median[mode], abs=1e-3)
        assert float(ratio) == pytest.approx(median["forward"] / median[mode], abs=1e-3)
        assert verdict == ("met" if float(ratio) >= 0.9 else "MISSED")
        assert float(factor) == pytest.approx(row["frames"] / row["fps"] / median[mode], abs=1e-3)
    live = row["realtime"]
    assert live["clips_scored"] + live["clips_dropped"] == row["clips"]
    p50 = number(rf"C3D RGB: realtime=true\s+latency 16th frame -> score p50 {NUMBER} s p95", out)
    assert p50 == pytest.approx(live["latency_p50_s"], abs=1e-3)
    assert re.search(rf"p95 \d+\.\d+ s, {live['clips_dropped']} of 2 clips dropped", out), out
    memory = results["memory"]
    assert memory["frames"] == 900 and memory["network"].startswith("CheapExtractor")  # 30 s at 30 fps
    assert memory["clips_scored"] + memory["clips_dropped"] == 900 // 16
    assert "memory, CheapExtractor (C3D-shaped 4096-d output), not C3D" in out
    growth = number(r"memory: RSS .* growth (-?\d+\.\d+) %\s+<= 5 %", out)
    assert growth == pytest.approx(100 * (memory["end_kib"] - memory["start_kib"]) / memory["start_kib"], abs=0.01)
