"""Start-up of the commands that should not wait for PyTorch or Lightning.

Times, from process start, the first output line (stdout or stderr) and the exit of
``python -m vad.check``, ``vad.report``, ``vad.prepare`` and ``vad.evaluate``, next to
``python -c "import torch"`` and ``"import pytorch_lightning"`` as references; medians of N runs,
the commands taking turns so that the drift of a shared machine hits all of them. Each run also
records whether ``torch`` and ``pytorch_lightning`` were imported: the command runs under a
``-c`` prelude that registers an ``atexit`` hook writing ``sys.modules``' verdict to a file, then
runs the module as ``-m`` would (``runpy.run_module(..., run_name="__main__", alter_sys=True)``);
nothing is printed, so the timed output is the command's own.

The inputs are built in a temp folder: a tiny seed-npy layout (``data=ucf_crime_npy``, 6 + 6
training and 3 + 3 test videos), one 1-epoch ``vad.train`` run on it (the run folder for
``vad.report``, its ``last.ckpt`` for ``vad.evaluate``), and a fresh store for every
``vad.prepare``. Goals, printed next to each: check, report and prepare print their first line
within 1.5 s; evaluate runs without Lightning. Nothing is asserted: timings depend on the machine.

    .venv/bin/python experiments/bench/bench_startup.py [--runs 5] [--out DIR] [--tiny]

``--tiny`` (one run of each, without the ``import pytorch_lightning`` reference: ~10 s that show
nothing about vad) checks that the benchmark works; its numbers mean little.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from vad.constants import N_SEGMENTS  # noqa: E402
from vad.data.ucf_crime import shipped  # noqa: E402
from vad.io import write_json  # noqa: E402

PROBED = ("torch", "pytorch_lightning")
PROBE_ENV = "VAD_BENCH_IMPORTS"
# Run as `python -c PRELUDE MODULE ARGS...`: the atexit hook records the imports at exit.
PRELUDE = f"""\
import atexit, json, os, runpy, sys
def _imports():
    with open(os.environ[{PROBE_ENV!r}], "w") as f:
        json.dump({{m: m in sys.modules for m in {PROBED!r}}}, f)
atexit.register(_imports)
"""
RUN_MODULE = "module = sys.argv.pop(1)\nrunpy.run_module(module, run_name='__main__', alter_sys=True)\n"
FIRST_LINE_GOAL_S = 1.5
TRAIN_EACH, TEST_EACH, DIM = 6, 3, 1024


def build_layout(root: Path) -> None:
    """A seed-npy folder: its own four lists (the first lines of the shipped ones) and random
    non-negative, L2-normalised (32, 1024) features per video and stream."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    paths = []
    for name, count in (("train_anomaly.txt", TRAIN_EACH), ("train_normal.txt", TRAIN_EACH),
                        ("test_anomalyv2.txt", TEST_EACH), ("test_normalv2.txt", TEST_EACH)):
        lines = [ln.strip() for ln in shipped(name).read_text().splitlines() if ln.strip()][:count]
        (root / name).write_text("\n".join(lines) + "\n")
        # train lists hold the path; test lists append frames and spans ("|" or " " separated)
        paths += [ln.split("|")[0].split()[0] for ln in lines]
    for folder in ("all_rgbs", "all_flows"):
        for path in paths:
            x = np.maximum(rng.normal(0.0, 1.0, (N_SEGMENTS, DIM)) - 0.5, 0.0)
            file = root / folder / f"{path}.npy"
            file.parent.mkdir(parents=True, exist_ok=True)
            np.save(file, (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32))


def environment() -> dict:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
                PYTHONUNBUFFERED="1", HYDRA_FULL_ERROR="1")


def checked(args: list[str], what: str) -> None:
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env=environment(), capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{what} failed ({done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}")


def prepare_inputs(work: Path) -> Path:
    """The tiny layout and a 1-epoch run on it; returns the run folder."""
    layout, run = work / "layout", work / "run"
    build_layout(layout)
    checked(["-m", "vad.train", "data=ucf_crime_npy", f"data.root={layout}", "modality=RGB",
             "data.batch_size=3", "trainer.max_epochs=1", "scheduler=none", "logger=none",
             "trainer.enable_progress_bar=false", f"hydra.run.dir={run}"], "the 1-epoch vad.train run")
    return run


def commands(work: Path, run: Path) -> dict[str, Callable[[int], list[str]]]:
    """name -> function(i) giving the ``python`` arguments of run ``i`` (fresh output folders)."""
    layout = work / "layout"
    return {
        "import torch": lambda i: ["-c", PRELUDE + "import torch\nprint('torch imported')"],
        "import pytorch_lightning": lambda i: ["-c", PRELUDE + "import pytorch_lightning\nprint('imported')"],
        "vad.check": lambda i: ["-c", PRELUDE + RUN_MODULE, "vad.check", "data=ucf_crime_npy",
                                f"data.root={layout}", f"hydra.run.dir={work}/check{i}"],
        "vad.report": lambda i: ["-c", PRELUDE + RUN_MODULE, "vad.report", str(run), "--out",
                                 str(work / f"report{i}")],
        "vad.prepare": lambda i: ["-c", PRELUDE + RUN_MODULE, "vad.prepare", "data=ucf_crime_npy",
                                  f"data.root={layout}", f"out={work}/store{i}.h5", "progress=false",
                                  f"hydra.run.dir={work}/prepare{i}"],
        "vad.evaluate": lambda i: ["-c", PRELUDE + RUN_MODULE, "vad.evaluate",
                                   f"ckpt_path={run}/checkpoints/last.ckpt", f"hydra.run.dir={work}/evaluate{i}"],
    }


def timed(args: list[str], probe: Path, name: str) -> dict:
    """Seconds from ``Popen`` to the first output line and to the exit; the imports at exit."""
    env = dict(environment(), **{PROBE_ENV: str(probe)})
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    first, lines = None, []
    for line in proc.stdout:
        if first is None and line.strip():
            first = time.perf_counter() - started
        lines.append(line)
    proc.wait()
    exited = time.perf_counter() - started
    if proc.returncode:
        sys.exit(f"{name} failed ({proc.returncode}):\n{''.join(lines)[-3000:]}")
    return {"first_line_s": exited if first is None else first, "exit_s": exited,
            "imports": json.loads(probe.read_text())}


def goal(name: str, first_s: float, imports: dict) -> str:
    if name in ("vad.check", "vad.report", "vad.prepare"):
        return f"first line <= {FIRST_LINE_GOAL_S} s: {'met' if first_s <= FIRST_LINE_GOAL_S else 'MISSED'}"
    if name == "vad.evaluate":
        return f"without Lightning: {'MISSED' if imports['pytorch_lightning'] else 'met'}"
    return "reference"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each command (medians)")
    parser.add_argument("--out", type=Path, help="folder for bench_startup.json (default: a temp dir)")
    parser.add_argument("--tiny", action="store_true", help="one run of each: checks that it works")
    args = parser.parse_args()
    if args.tiny:
        args.runs = 1
        print("--tiny: one run of each command, no Lightning reference; the numbers mean little")
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_startup_"))
    with tempfile.TemporaryDirectory(prefix="bench_startup_work_") as tmp:
        work = Path(tmp)
        run = prepare_inputs(work)
        todo = commands(work, run)
        if args.tiny:
            del todo["import pytorch_lightning"]
        samples = {name: [] for name in todo}
        for i in range(args.runs):  # the commands take turns: drift hits all of them
            for name, make in todo.items():
                samples[name].append(timed(make(i), work / "imports.json", name))

    results = {}
    for name, runs in samples.items():
        imports = {m: any(r["imports"][m] for r in runs) for m in PROBED}
        results[name] = {"runs": len(runs),
                         "first_line_s": statistics.median(r["first_line_s"] for r in runs),
                         "exit_s": statistics.median(r["exit_s"] for r in runs), "imports": imports}
    torch_s = results["import torch"]["first_line_s"]
    width = max(len(n) for n in results)
    print(f"{args.runs} run(s) each, medians; ratio = first line / first line of `import torch`")
    print(f"{'command':<{width}}  {'first line':>10}  {'exit':>7}  {'ratio':>5}  {'torch':>5}  {'lightning':>9}  goal")
    for name, r in results.items():
        r["ratio_to_import_torch"] = r["first_line_s"] / torch_s
        r["goal"] = goal(name, r["first_line_s"], r["imports"])
        yes = {m: "yes" if r["imports"][m] else "no" for m in PROBED}
        print(f"{name:<{width}}  {r['first_line_s']:>8.2f} s  {r['exit_s']:>5.2f} s  "
              f"{r['ratio_to_import_torch']:>5.2f}  {yes['torch']:>5}  {yes['pytorch_lightning']:>9}  {r['goal']}")
    write_json(out / "bench_startup.json", {"python": sys.version.split()[0], "cpus": os.cpu_count(),
                                            "results": results})
    print(f"wrote {out / 'bench_startup.json'}")


if __name__ == "__main__":
    main()
