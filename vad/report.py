"""``python -m vad.report PATH...``: one table (and figures) over many runs.

Finds every run folder under the given run or multirun folders (a folder holding
``metrics.json``, ``.hydra/overrides.yaml`` or ``config_resolved.yaml``), groups the runs by
their command-line overrides without the keys the run's own sweep folder names leave out
(``hydra.job.config.override_dirname.exclude_keys`` of its ``.hydra/hydra.yaml``: ``seed``,
...), and reports per configuration the mean, the sample standard deviation (ddof=1), the
minimum and the maximum over seeds of the best epoch's metrics. Runs without ``metrics.json``
are listed as failed with the last error of their log, interrupted runs with their resume
command. Prints the table, then writes into
``--out`` (default ``<first PATH>/report``): ``report.md``, ``report.csv``, ``roc.png`` (the
runs' ROC curves from ``plots/roc.npz`` where present, over the curves published with the CVPR
2018 paper for UCF-Crime), ``published.png`` (each configuration's headline metric of its dataset,
AUC or AP, beside the published number of its method, "published, test-selected") and
``class_auc.png`` (per-class AUC, configurations x classes). Every table row names its dataset.
Starts fast: torch and Lightning are never imported, matplotlib and scipy only to draw the figures.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import re
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable

import numpy as np
import yaml

from vad.io import save_figure, write_text

# Left out of the configuration of a run without .hydra/hydra.yaml (see excluded_keys).
FALLBACK_EXCLUDED = ("seed",)
# (column, label, where in metrics.json, decimals); "test_selected" is derived from the history
# (:func:`test_selected`).
METRICS = (("auc", "AUC", ("best", "auc"), 4),
           ("ap", "AP", ("best", "ap"), 4),
           ("far", "FAR", ("best", "far"), 4),
           ("paired_auc", "paired AUC", ("best", "paired_auc"), 4),
           ("best_epoch", "best epoch", ("best", "epoch"), 0),
           ("last_auc", "last-epoch AUC", ("last", "auc"), 4),
           ("last_ap", "last-epoch AP", ("last", "ap"), 4),
           ("test_selected_auc", "test-selected AUC", ("test_selected", "auc"), 4),
           ("test_selected_ap", "test-selected AP", ("test_selected", "ap"), 4),
           ("test_frames", "test frames", ("evaluated", "test_frames"), 0),
           ("wall_time_s", "wall time (s)", ("wall_time_s",), 1))
PAPER_CURVES = (("1_Binary_Abnormal_Normal.mat", "Binary classifier"),
                ("2_Cei_lui.mat", "Lu et al. ICCV 2013"),
                ("3_CV16_TemporalRegularity.mat", "Hasan et al. CVPR 2016"),
                ("6_C3D_Final_L1L2.mat", "Sultani et al. CVPR 2018 (MIL)"))
NO_METRICS = "no metrics.json"
# Published frame-level numbers (AUC or AP, %) of the methods on each dataset, as their papers or
# repositories report them: every one selected on the test split (../shared/reference/wsvad_methods.md).
PUBLISHED = {
    ("ucf_crime", "mil"): 75.41,      # Sultani et al. CVPR 2018, C3D (paper_results/6_C3D_Final_L1L2.mat)
    ("ucf_crime", "rtfm"): 84.30,     # Tian et al. ICCV 2021 (paper)
    ("ucf_crime", "urdmu"): 86.97,    # henrryzh1/UR-DMU outputs/ucf_best_record_2022.txt
    ("ucf_crime", "bnwvad"): 87.24,   # cool-xuan/BN-WVAD issue #5
    ("xd_violence", "topk_mil"): 78.64,  # Wu et al. ECCV 2020, HL-Net (paper)
    ("xd_violence", "rtfm"): 77.81,   # (paper)
    ("xd_violence", "urdmu"): 81.66,  # henrryzh1/UR-DMU outputs/xd_best_record_2022.txt
    ("xd_violence", "bnwvad"): 84.93,  # cool-xuan/BN-WVAD README
    ("shanghaitech", "rtfm"): 97.21,  # (paper)
}


@dataclass
class Run:
    path: Path
    overrides: list[str]
    seed: int | None
    excluded: tuple[str, ...] = FALLBACK_EXCLUDED
    metrics: dict | None = None
    error: str | None = None
    config: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.metrics is not None


@dataclass
class Curve:
    label: str
    fpr: np.ndarray
    tpr: np.ndarray
    auc: float


# ------------------------------------------------------------------ finding and reading runs

def find_run_dirs(paths: list[Path]) -> list[Path]:
    """Every run folder at or under ``paths``, each once, in path order."""
    found: dict[Path, None] = {}
    for root in map(Path, paths):
        if not root.exists():
            raise FileNotFoundError(f"{root} does not exist")
        candidates = [root / "metrics.json", root / "config_resolved.yaml",
                      root / ".hydra" / "overrides.yaml"]
        candidates += [*root.rglob("metrics.json"), *root.rglob("config_resolved.yaml"),
                       *root.rglob(".hydra/overrides.yaml")]
        for marker in candidates:
            if not marker.is_file():
                continue
            run = marker.parent.parent if marker.parent.name == ".hydra" else marker.parent
            found.setdefault(run.resolve(), None)
    return sorted(found)


def _first_line(lines: list[str]) -> str:
    """A message's first line, with the next one when it ends with ``:`` (the dataset report's
    first line follows "the dataset has problems (...):")."""
    first = lines[0].strip()
    if first.endswith(":") and len(lines) > 1 and lines[1].strip():
        first = f"{first} {lines[1].strip()}"
    return first


def last_error(run_dir: Path) -> str:
    """The exception line of the last traceback in the run's ``*.log`` files, else the message
    of the last ERROR record, else ``no metrics.json``."""
    error = None
    for log in sorted(run_dir.glob("*.log")):
        lines = log.read_text(errors="replace").splitlines()
        starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")]
        if starts:
            after = lines[starts[-1] + 1:]
            for i, line in enumerate(after):
                if line.strip() and not line[0].isspace():
                    error = _first_line(after[i:])
                    break
        elif error is None:
            errors = [i for i, line in enumerate(lines) if "[ERROR]" in line or " ERROR " in line]
            if errors:
                record = lines[errors[-1]:]
                record[0] = re.sub(r"^\[[^]]*\]\[[^]]*\]\[ERROR\] - ", "", record[0])
                error = _first_line(record)
    return f"{NO_METRICS}: {error}" if error else NO_METRICS


def excluded_keys(run_dir: Path) -> tuple[str, ...]:
    """The override keys that do not make the run's configuration: its Hydra config's
    ``hydra.job.config.override_dirname.exclude_keys`` (``seed``, ``threads`` ... in
    ``conf/train.yaml``), which also leaves them out of sweep folder names. A run without a
    readable ``.hydra/hydra.yaml`` (a folder copied without it) leaves out only ``seed``."""
    try:
        hydra = (_load_yaml(run_dir / ".hydra" / "hydra.yaml") or {}).get("hydra") or {}
        keys = hydra["job"]["config"]["override_dirname"]["exclude_keys"]
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return FALLBACK_EXCLUDED
    return tuple(str(k) for k in keys)


def _load_yaml(path: Path):
    return yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def read_run(run_dir: Path) -> Run:
    overrides_file = run_dir / ".hydra" / "overrides.yaml"
    overrides = [str(o) for o in (yaml.safe_load(overrides_file.read_text()) or [])] \
        if overrides_file.is_file() else []
    seed = None
    for item in overrides:
        key, _, value = item.lstrip("+~").partition("=")
        if key == "seed":
            seed = int(value)
    resolved = run_dir / "config_resolved.yaml"
    if seed is None and resolved.is_file():
        seed = (yaml.safe_load(resolved.read_text()) or {}).get("seed")
    run = Run(run_dir, overrides, seed, excluded_keys(run_dir))
    metrics_file = run_dir / "metrics.json"
    if metrics_file.is_file():
        metrics = json.loads(metrics_file.read_text())
        if "best" not in metrics and "metrics" in metrics:  # a vad.evaluate folder
            metrics = {**metrics, "best": metrics["metrics"]}
        if metrics.get("status", "finished") == "finished":
            run.metrics = {**metrics, "test_selected": test_selected(metrics.get("history") or [])}
        else:  # "interrupted": the message says after which epoch and how to resume
            run.error = f"{metrics['status']}: {metrics.get('message', '')}"
    else:
        run.error = last_error(run_dir)
    return run


def test_selected(history: list[dict]) -> dict | None:
    """The epoch of the highest test AUC among a run's evaluated epochs (the official
    repositories' selection, optimistic: the test split picks the checkpoint) with its AUC and AP;
    None without test metrics in the history."""
    scored = [h for h in history if h.get("auc") is not None and not math.isnan(h["auc"])]
    if not scored:
        return None
    top = max(scored, key=lambda h: h["auc"])  # the first of equal AUCs
    return {"epoch": top["epoch"], "auc": top["auc"], "ap": top.get("ap")}


def config_key(overrides: list[str], excluded: tuple[str, ...]) -> tuple[str, ...]:
    kept = [o for o in overrides if o.lstrip("+~").partition("=")[0] not in excluded]
    return tuple(sorted(kept))


def load_runs(paths: list[Path]) -> list[Run]:
    runs = [read_run(d) for d in find_run_dirs(paths)]
    for run in runs:
        run.config = config_key(run.overrides, run.excluded)
    return runs


def labels(runs: list[Run]) -> tuple[dict[tuple, str], list[str]]:
    """Configuration labels without the overrides every run shares; the shared ones."""
    keys = list(dict.fromkeys(run.config for run in runs))
    common = set.intersection(*(set(k) for k in keys)) if keys else set()
    named = {k: ",".join(o for o in k if o not in common) or "(shared overrides only)" for k in keys}
    return named, sorted(common)


# ------------------------------------------------------------------ statistics

def _get(metrics: dict, where: tuple[str, ...]) -> float:
    value = metrics
    for key in where:
        if not isinstance(value, dict) or key not in value:
            return math.nan
        value = value[key]
    return float(value) if value is not None else math.nan


def summarise(values: list[float]) -> dict:
    """mean, sample std (ddof=1; nan for one value), min, max, n over the finite values."""
    x = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    if not len(x):
        return {"mean": math.nan, "std": math.nan, "min": math.nan, "max": math.nan, "n": 0}
    return {"mean": float(x.mean()), "std": float(x.std(ddof=1)) if len(x) > 1 else math.nan,
            "min": float(x.min()), "max": float(x.max()), "n": int(len(x))}


def aggregate(runs: list[Run]) -> list[dict]:
    """One row per configuration with successful runs, in order of first appearance."""
    named, _ = labels(runs)
    rows = []
    for key, label in named.items():
        group = [r for r in runs if r.config == key and r.ok]
        if not group:
            continue
        row = {"configuration": label, "overrides": ",".join(key), "n": len(group),
               "seeds": sorted((r.seed for r in group), key=lambda s: (s is None, s)),
               "selection_metric": ",".join(sorted({str(r.metrics.get("best", {}).get("selection_metric"))
                                                    for r in group})),
               "synthetic": any(r.metrics.get("synthetic") for r in group),
               "dataset": ",".join(sorted({r.metrics.get("dataset", "ucf_crime") for r in group})),
               "headline": ",".join(sorted({r.metrics.get("headline", "auc") for r in group})),
               "method": ",".join(sorted({r.metrics.get("method", "mil") for r in group})),
               "runs": [r.path for r in group]}
        for name, _, where, _ in METRICS:
            row[name] = summarise([_get(r.metrics, where) for r in group])
        classes = sorted({k[4:] for r in group for k in r.metrics.get("best", {})
                          if k.startswith("auc_")})
        row["class_auc"] = {c: summarise([_get(r.metrics, ("best", f"auc_{c}")) for r in group])["mean"]
                            for c in classes}
        rows.append(row)
    return rows


# ------------------------------------------------------------------ tables

def _fmt(value: float, decimals: int) -> str:
    return "–" if math.isnan(value) else f"{value:.{decimals}f}"


def cell(stats: dict, decimals: int) -> str:
    if not stats["n"]:
        return "–"
    if stats["n"] == 1:
        return _fmt(stats["mean"], decimals)
    return (f"{_fmt(stats['mean'], decimals)} ± {_fmt(stats['std'], decimals)} "
            f"[{_fmt(stats['min'], decimals)}, {_fmt(stats['max'], decimals)}]")


def _title(name: str) -> str:
    """``XD-Violence`` for ``xd_violence`` (names it does not know as they are)."""
    from vad.data.datasets import DATASETS

    return DATASETS[name].title if name in DATASETS else name


def markdown(rows: list[dict], runs: list[Run]) -> str:
    named, common = labels(runs)
    failed = [r for r in runs if not r.ok]
    out = ["# Run report", "",
           f"{len(runs)} runs, {len(runs) - len(failed)} finished, {len(failed)} failed; "
           f"{len(rows)} configurations.",
           f"Shared overrides: `{','.join(common)}`" if common else "Shared overrides: none", "",
           "Test metrics per configuration over seeds: mean ± sample std (ddof=1) [min, max]; `n` = "
           "finished runs (seeds). AUC, AP, FAR, paired AUC: the best epoch, chosen by the metric in "
           "\"selected by\" (`holdout/video_auc`: held-out training videos; `test/auc`: the test split "
           "itself, optimistic). Last-epoch: the final weights, no selection. Test-selected: the epoch "
           "of the highest test AUC among the evaluated epochs, the number the official repositories "
           "of RTFM, UR-DMU and BN-WVAD report (optimistic by construction).", ""]
    if any(r["synthetic"] for r in rows):
        out += ["**Synthetic data**: numbers say nothing about real videos.", ""]
    headlines = {(row["dataset"], row["headline"]) for row in rows}
    out += ["Datasets: " + "; ".join(f"{_title(d)} (headline metric: {h.upper()})"
                                     for d, h in sorted(headlines)) + ".", ""]
    header = ["configuration", "dataset", "method", "n", "seeds", *[m[1] for m in METRICS], "selected by"]
    out += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        seeds = ",".join("?" if s is None else str(s) for s in row["seeds"])
        out.append("| " + " | ".join([f"`{row['configuration']}`", row["dataset"], row["method"], str(row["n"]),
                                       seeds, *[cell(row[m[0]], m[3]) for m in METRICS],
                                       row["selection_metric"]]) + " |")
    if failed:
        out += ["", "## Failed runs", "", "| run | configuration | seed | error |", "|---|---|---|---|"]
        for run in failed:
            error = run.error.replace("|", "\\|")
            out.append(f"| `{run.path}` | `{named[run.config]}` | {run.seed} | {error} |")
    return "\n".join(out) + "\n"


def csv_text(rows: list[dict], runs: list[Run]) -> str:
    named, _ = labels(runs)
    fields = ["configuration", "status", "n", "seeds", "selection_metric", "synthetic"]
    fields += [f"{m[0]}_{s}" for m in METRICS for s in ("mean", "std", "min", "max")]
    fields += ["overrides", "runs", "error"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        record = {"configuration": row["configuration"], "status": "ok", "n": row["n"],
                  "seeds": " ".join(str(s) for s in row["seeds"]),
                  "selection_metric": row["selection_metric"], "synthetic": row["synthetic"],
                  "overrides": row["overrides"], "runs": " ".join(map(str, row["runs"])), "error": ""}
        for m in METRICS:
            for s in ("mean", "std", "min", "max"):
                value = row[m[0]][s]
                record[f"{m[0]}_{s}"] = "" if math.isnan(value) else repr(value)
        writer.writerow(record)
    for run in (r for r in runs if not r.ok):
        writer.writerow({"configuration": named[run.config], "status": "failed", "n": 0,
                         "seeds": "" if run.seed is None else run.seed, "overrides": ",".join(run.config),
                         "runs": str(run.path), "error": run.error})
    return buffer.getvalue()


# ------------------------------------------------------------------ curves and figures

def roc_file(run_dir: Path) -> Path:
    return Path(run_dir) / "plots" / "roc.npz"


def without_roc(rows: list[dict]) -> list[str]:
    """The configurations none of whose runs saved ``plots/roc.npz`` (left out of roc.png)."""
    return [row["configuration"] for row in rows if not any(roc_file(r).is_file() for r in row["runs"])]


def load_curve(run_dir: Path) -> Curve | None:
    """The run's frame-level ROC from ``plots/roc.npz`` (arrays fpr, tpr, auc), if saved."""
    path = roc_file(run_dir)
    if not path.is_file():
        return None
    with np.load(path) as data:
        return Curve(run_dir.name, np.asarray(data["fpr"], float), np.asarray(data["tpr"], float),
                     float(data["auc"]))


def load_paper_curves() -> list[Curve]:
    """The ROC curves published with Sultani et al. (CVPR 2018): MATLAB v5 files, X = FPR,
    Y = TPR, AUC."""
    from scipy.io import loadmat  # only needed here

    folder = resources.files("vad.resources") / "ucf_crime" / "paper_results"
    curves = []
    for name, label in PAPER_CURVES:
        with resources.as_file(folder / name) as path:
            mat = loadmat(str(path))
        curves.append(Curve(label, np.asarray(mat["X"], float).ravel(),
                            np.asarray(mat["Y"], float).ravel(), float(np.asarray(mat["AUC"]).ravel()[0])))
    return curves


def mean_curve(curves: list[Curve], grid: np.ndarray) -> np.ndarray:
    """Vertical average: the mean TPR of the curves at each FPR of ``grid``."""
    return np.mean([np.interp(grid, c.fpr, c.tpr) for c in curves], axis=0)


def roc_plot(rows: list[dict], out: Path) -> None:
    """Overlaid ROC of every configuration that has ``plots/roc.npz`` files, over the paper's
    curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 6))
    datasets = sorted({d for row in rows for d in row["dataset"].split(",")})
    if "ucf_crime" in datasets:  # the curves published with the UCF-Crime paper
        for curve in load_paper_curves():
            ax.plot(curve.fpr, curve.tpr, ls="--", lw=1, label=f"{curve.label} (AUC {curve.auc:.4f})")
    grid = np.linspace(0, 1, 501)
    for row in rows:
        curves = [c for c in map(load_curve, row["runs"]) if c is not None]
        if not curves:
            continue
        aucs = summarise([c.auc for c in curves])
        spread = f" ± {aucs['std']:.4f}" if aucs["n"] > 1 else ""
        ax.plot(grid, mean_curve(curves, grid), lw=1.8,
                label=f"{row['configuration']} (AUC {aucs['mean']:.4f}{spread}, n={aucs['n']})")
    ax.plot([0, 1], [0, 1], c="grey", lw=0.6)
    title = f"Frame-level ROC: {', '.join(_title(d) for d in datasets)}"
    missing = without_roc(rows)
    if missing:
        title += f"\n({len(missing)} configuration(s) without plots/roc.npz not drawn)"
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title, xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    save_figure(fig, out)
    plt.close(fig)


def published_plot(rows: list[dict], out: Path) -> None:
    """Per configuration its dataset's headline metric over seeds (mean ± std: hold-out selected,
    last epoch, test-selected), next to the number published for its method and dataset,
    labelled "published, test-selected"."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.5 + 1.1 * max(len(rows), 1), 4.5))
    kinds = (("", "selected (" + ",".join(sorted({r["selection_metric"] for r in rows})) + ")", "o"),
             ("last_", "last epoch", "s"), ("test_selected_", "test-selected", "^"))
    for offset, (prefix, label, marker) in zip((-0.2, 0.0, 0.2), kinds):
        for i, row in enumerate(rows):
            metric = row["headline"].split(",")[0]
            stats = row[f"{prefix}{metric}"]
            if stats["n"]:
                ax.errorbar(i + offset, 100 * stats["mean"], yerr=100 * np.nan_to_num(stats["std"]), fmt=marker,
                            color=f"C{kinds.index((prefix, label, marker))}", capsize=3,
                            label=label if i == 0 else None)
    published = False
    for i, row in enumerate(rows):
        value = PUBLISHED.get((row["dataset"], row["method"]))
        if value is not None:
            ax.plot(i, value, "*", ms=13, color="black", label=None if published else "published, test-selected")
            ax.annotate(f"{value:.2f}", (i, value), textcoords="offset points", xytext=(8, -3), fontsize=7)
            published = True
    ax.set_xticks(range(len(rows)), [row["configuration"] for row in rows], rotation=30, ha="right", fontsize=7)
    names = ", ".join(f"{_title(d)}: {h.upper()}" for d, h in sorted({(r["dataset"], r["headline"]) for r in rows}))
    ax.set(ylabel="frame-level metric (%)", title=f"Headline metric per configuration ({names})")
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out)
    plt.close(fig)


def class_auc_plot(rows: list[dict], out: Path) -> None:
    """Heatmap of the mean per-class AUC: configurations x classes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = sorted({c for row in rows for c in row["class_auc"]})
    table = np.full((len(rows), len(classes)), np.nan)
    for i, row in enumerate(rows):
        for j, c in enumerate(classes):
            table[i, j] = row["class_auc"].get(c, np.nan)
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * max(len(classes), 1), 1.5 + 0.45 * max(len(rows), 1)))
    image = ax.imshow(np.ma.masked_invalid(table), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), [row["configuration"] for row in rows], fontsize=7)
    for i in range(table.shape[0]):
        for j in range(table.shape[1]):
            if not np.isnan(table[i, j]):
                ax.text(j, i, f"{table[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if table[i, j] < 0.6 else "black")
    fig.colorbar(image, ax=ax, label="frame-level AUC (mean over seeds)")
    ax.set_title("Per-class AUC (class videos + all normal test videos)")
    fig.tight_layout()
    save_figure(fig, out)
    plt.close(fig)


# ------------------------------------------------------------------ entry point

def report(paths: list[Path], out: Path | None = None, echo: Callable[[str], None] | None = None) -> dict:
    """Write report.md, report.csv, roc.png, published.png and class_auc.png; return the rows and
    texts.
    ``echo`` gets the markdown as soon as the tables are written, before the figures are drawn."""
    paths = [Path(p) for p in paths]
    out = Path(out) if out else paths[0] / "report"
    runs = load_runs(paths)
    if not runs:
        raise ValueError(f"no run folders (metrics.json, .hydra/overrides.yaml or config_resolved.yaml) "
                         f"under {', '.join(map(str, paths))}")
    rows = aggregate(runs)
    md, table = markdown(rows, runs), csv_text(rows, runs)
    missing = without_roc(rows)
    if missing:
        md += ("\nROC curves need `plots/roc.npz` (fpr, tpr, auc) in each run folder; not drawn for: "
               + ", ".join(f"`{m}`" for m in missing) + ".\n")
    write_text(out / "report.md", md)
    write_text(out / "report.csv", table)
    if echo:
        echo(md)
    roc_plot(rows, out / "roc.png")
    published_plot(rows, out / "published.png")
    class_auc_plot(rows, out / "class_auc.png")
    return {"runs": runs, "rows": rows, "markdown": md, "csv": table, "out": out}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vad.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                        help="run or multirun folders (searched recursively)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: <first PATH>/report)")
    args = parser.parse_args(argv)
    try:
        result = report(args.paths, args.out, echo=lambda md: print(md, end="", flush=True))
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"\nwritten to {result['out']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
