"""vad.report: discovery of run folders, per-configuration statistics over seeds, failed runs,
CSV, figures, the paper's published curves and the CLI."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import ROOT
from vad.report import NO_METRICS, load_curve, load_paper_curves, report

CLASSES = ["Abuse", "Arrest", "Arson"]
# configuration -> per-seed (auc, ap, far, paired_auc, epoch, wall time)
RUNS = {"modality=RGB": [(0.60, 0.20, 0.10, 0.55, 3, 10.0), (0.70, 0.30, 0.20, 0.65, 5, 12.0),
                         (0.80, 0.40, 0.30, 0.75, 7, 14.0)],
        "modality=FLOW": [(0.50, 0.10, 0.05, 0.50, 1, 20.0), (0.55, 0.15, 0.05, 0.52, 2, 20.0),
                          (0.65, 0.20, 0.11, 0.60, 3, 26.0)]}
TRACEBACK = """[2026-01-01 00:00:00,000][vad.train][INFO] - starting
Traceback (most recent call last):
  File "vad/train.py", line 1, in <module>
    main()
ValueError: data.root=/nowhere is not a folder
"""


def make_run(folder: Path, overrides: list[str], metrics: dict | None = None, log: str = "") -> Path:
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "train.log").write_text(log)
    return folder


@pytest.fixture
def sweep(tmp_path) -> Path:
    root = tmp_path / "multirun"
    job = 0
    for config, seeds in RUNS.items():
        for seed, (auc, ap, far, paired, epoch, wall) in enumerate(seeds):
            best = {"epoch": epoch, "selection_metric": "test/auc", "auc": auc, "ap": ap, "far": far,
                    "paired_auc": paired, **{f"auc_{c}": auc + 0.01 * i for i, c in enumerate(CLASSES)}}
            run = make_run(root / f"{job}_{config}", [config, "logger=none", f"seed={seed}"],
                           {"synthetic": True, "modality": config.split("=")[1], "extractor": "I3D",
                            "last": {"epoch": 9}, "best": best, "wall_time_s": wall}, log="done\n")
            if config == "modality=RGB":  # ROC points for one configuration only
                (run / "plots").mkdir()
                fpr = np.linspace(0, 1, 50)
                np.savez(run / "plots" / "roc.npz", fpr=fpr, tpr=np.sqrt(fpr), auc=auc)
            job += 1
    make_run(root / f"{job}_modality=TWO", ["modality=TWO", "logger=none", "seed=0"], log=TRACEBACK)
    make_run(root / f"{job + 1}_modality=TWO", ["modality=TWO", "logger=none", "seed=1"])
    return root


def test_statistics_per_configuration(sweep):
    result = report([sweep])
    rows = {r["configuration"]: r for r in result["rows"]}
    assert list(rows) == ["modality=RGB", "modality=FLOW"]  # shared `logger=none` left out of labels
    rgb, flow = rows["modality=RGB"], rows["modality=FLOW"]
    assert rgb["n"] == 3 and rgb["seeds"] == [0, 1, 2]
    assert rgb["auc"]["mean"] == pytest.approx(0.7) and rgb["auc"]["std"] == pytest.approx(0.1)  # ddof=1
    assert (rgb["auc"]["min"], rgb["auc"]["max"]) == pytest.approx((0.6, 0.8))
    assert flow["auc"]["mean"] == pytest.approx(1.7 / 3)
    assert flow["auc"]["std"] == pytest.approx(np.std([0.5, 0.55, 0.65], ddof=1))
    assert flow["far"]["max"] == pytest.approx(0.11) and flow["wall_time_s"]["mean"] == pytest.approx(22.0)
    assert rgb["best_epoch"]["mean"] == pytest.approx(5.0) and rgb["best_epoch"]["std"] == pytest.approx(2.0)
    assert rgb["paired_auc"]["min"] == pytest.approx(0.55) and rgb["selection_metric"] == "test/auc"
    assert rgb["class_auc"]["Arson"] == pytest.approx(0.72)


def test_markdown_failed_runs_and_csv(sweep, tmp_path):
    result = report([sweep], tmp_path / "out")
    md = result["markdown"]
    assert "`modality=RGB` | ucf_crime | mil | 3 | 0,1,2 | 0.7000 ± 0.1000 [0.6000, 0.8000]" in md
    assert "| 5 ± 2 [3, 7] |" in md and "Shared overrides: `logger=none`" in md  # integer epochs
    assert "ValueError: data.root=/nowhere is not a folder" in md
    failed = [r for r in result["runs"] if not r.ok]
    assert sorted(r.error for r in failed) == [NO_METRICS,
                                               f"{NO_METRICS}: ValueError: data.root=/nowhere is not a folder"]
    assert (tmp_path / "out" / "report.md").read_text() == md
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "report.csv").read_text())))
    assert [r["status"] for r in rows] == ["ok", "ok", "failed", "failed"]
    assert float(rows[0]["auc_mean"]) == pytest.approx(0.7) and float(rows[0]["auc_std"]) == pytest.approx(0.1)
    assert rows[0]["n"] == "3" and rows[0]["seeds"] == "0 1 2"
    assert float(rows[1]["ap_max"]) == pytest.approx(0.2) and float(rows[1]["far_min"]) == pytest.approx(0.05)
    assert rows[2]["configuration"] == "modality=TWO" and "ValueError" in rows[2]["error"]
    for name in ("roc.png", "class_auc.png"):
        assert (tmp_path / "out" / name).stat().st_size > 10_000
    # one configuration has no plots/roc.npz: said so
    assert "not drawn for: `modality=FLOW`" in md


def test_integer_epochs_round_their_mean_and_spread(tmp_path):
    for seed, epoch in enumerate((8, 15, 13)):  # mean 12, std 3.61
        make_run(tmp_path / f"{seed}", [f"seed={seed}"], {"best": {"epoch": epoch, "auc": 0.5}})
    [row] = [line for line in report([tmp_path])["markdown"].splitlines() if line.startswith("| `")]
    assert "| 12 ± 4 [8, 15] |" in row and "12.0" not in row


def hydra_yaml(run: Path, exclude_keys: list[str]) -> None:
    """The part of Hydra's .hydra/hydra.yaml that vad.report reads."""
    (run / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(
        {"hydra": {"job": {"config": {"override_dirname": {"exclude_keys": exclude_keys}}},
                   "run": {"dir": str(run)}}}))


def test_excluded_keys_come_from_each_runs_hydra_config(tmp_path):
    best = {"best": {"epoch": 1, "auc": 0.5}}
    # a sweep that left data.batch_size out of its folder names: one configuration over it
    for seed, batch in enumerate((10, 20)):
        run = make_run(tmp_path / f"a{seed}", ["modality=RGB", f"data.batch_size={batch}", f"seed={seed}"], best)
        hydra_yaml(run, ["seed", "data.batch_size"])
    # threads is a configuration where the run's Hydra config does not exclude it ...
    hydra_yaml(make_run(tmp_path / "b0", ["modality=RGB", "threads=2", "seed=0"], best), ["seed"])
    # ... and without .hydra/hydra.yaml only seed is left out
    make_run(tmp_path / "b1", ["modality=RGB", "threads=2", "seed=1"], best)
    rows = {r["configuration"]: r for r in report([tmp_path])["rows"]}
    assert set(rows) == {"(shared overrides only)", "threads=2"}
    assert rows["(shared overrides only)"]["seeds"] == [0, 1] and rows["threads=2"]["seeds"] == [0, 1]
    assert rows["(shared overrides only)"]["overrides"] == "modality=RGB"


PROBE = """
import runpy, sys
WATCHED = ("torch", "pytorch_lightning", "lightning", "matplotlib", "scipy")
loaded = lambda: sorted(m for m in WATCHED if m in sys.modules)
class Probe:
    def __init__(self, out):
        self.out, self.at_table = out, None
    def write(self, text):
        if self.at_table is None and text.strip():
            self.at_table = loaded()
        return self.out.write(text)
    def flush(self):
        self.out.flush()
probe = sys.stdout = Probe(sys.stdout)
sys.argv = ["vad.report", *sys.argv[1:]]
try:
    runpy.run_module("vad.report", run_name="__main__", alter_sys=True)
except SystemExit as end:
    assert not end.code, end.code
sys.stdout = probe.out
print("AT TABLE", probe.at_table)
print("AT END", loaded())
"""


def test_table_is_printed_before_heavy_imports(sweep, tmp_path):
    proc = subprocess.run([sys.executable, "-c", PROBE, str(sweep), "--out", str(tmp_path / "out")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "# Run report"  # the table came first
    assert lines[-2] == "AT TABLE []"  # no torch, Lightning, matplotlib or scipy yet
    assert lines[-1] == "AT END ['matplotlib', 'scipy']"  # the figures need them; never torch
    assert (tmp_path / "out" / "roc.png").is_file()


def test_default_out_and_single_run_folder(sweep):
    run = sweep / "0_modality=RGB"
    result = report([run])
    assert result["out"] == run / "report" and (run / "report" / "report.md").exists()
    assert result["rows"][0]["n"] == 1 and np.isnan(result["rows"][0]["auc"]["std"])
    curve = load_curve(run)
    assert curve.auc == pytest.approx(0.6) and len(curve.fpr) == 50


def test_paper_curves_from_the_shipped_mat_files():
    curves = load_paper_curves()
    assert [round(c.auc, 4) for c in curves] == pytest.approx([0.4999, 0.6551, 0.5066, 0.7541], abs=1e-3)
    for c in curves:
        assert c.fpr.shape == c.tpr.shape and c.fpr.min() >= 0 and c.fpr.max() <= 1
        # the stored AUC is the area under the stored points
        assert np.trapezoid(c.tpr, c.fpr) == pytest.approx(c.auc, abs=0.01)


def test_cli(sweep, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "vad.report", str(sweep), "--out", str(tmp_path / "cli")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "| `modality=FLOW` | ucf_crime | mil | 3 |" in proc.stdout and "## Failed runs" in proc.stdout
    assert sorted(p.name for p in (tmp_path / "cli").iterdir()) == ["class_auc.png", "published.png",
                                                                   "report.csv", "report.md", "roc.png"]
    missing = subprocess.run([sys.executable, "-m", "vad.report", str(tmp_path / "nowhere")],
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert missing.returncode == 1 and "does not exist" in missing.stderr


def test_test_selected_is_the_epoch_of_the_highest_test_auc():
    from vad.report import test_selected

    history = [{"epoch": 0, "auc": 0.61, "ap": 0.2}, {"epoch": 1, "auc": 0.74, "ap": 0.3},
               {"epoch": 2, "auc": 0.74, "ap": 0.5}, {"epoch": 3, "auc": 0.70, "ap": 0.6},
               {"epoch": 4, "loss": 0.3}]  # an epoch without evaluation
    assert test_selected(history) == {"epoch": 1, "auc": 0.74, "ap": 0.3}  # the first of equal AUCs
    assert test_selected([{"epoch": 0, "loss": 1.0}]) is None and test_selected([]) is None
