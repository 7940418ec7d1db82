"""``python -m vad.prepare`` as a user runs it: paths with a space and an "é" in printed
commands that can be pasted back, Ctrl-C with the resume command, start-up without torch."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from hydra.core.override_parser.overrides_parser import OverridesParser

from tests.conftest import ROOT
from vad.constants import N_SEGMENTS
from vad.data.ucf_crime import shipped

DIM = 16
LISTS = ("train_anomaly.txt", "train_normal.txt", "test_anomalyv2.txt", "test_normalv2.txt")


def seed_folder(root: Path, n: int) -> int:
    """A seed-notebook layout (data=ucf_crime_npy) of ``n`` videos per list, RGB (32, 16);
    returns the number of videos."""
    rng = np.random.default_rng(0)
    count = 0
    for name in LISTS:
        lines = [ln.strip() for ln in shipped(name).read_text().splitlines() if ln.strip()][:n]
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("\n".join(lines) + "\n")
        for line in lines:
            file = root / "all_rgbs" / f"{line.split('|')[0].split()[0]}.npy"
            file.parent.mkdir(parents=True, exist_ok=True)
            np.save(file, rng.random((N_SEGMENTS, DIM), dtype=np.float32) + np.float32(0.01))
            count += 1
    return count


def parsed_value(fragment: str):
    """What Hydra reads from one pasted ``key=value`` (after the shell has split it)."""
    (arg,) = shlex.split(fragment)
    (item,) = OverridesParser.create().parse_overrides([arg])
    return item.key_or_group, item.value()


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")


def test_printed_store_path_with_space_and_accent_pastes_back(tmp_path):
    """A real CLI run in a folder named "my feats é": the printed ``data.path=...`` parses back
    to the store path; torch and Lightning are never imported (timed to the first output)."""
    folder = tmp_path / "my feats é"
    seed_folder(folder / "data", 1)
    out = folder / "ucf é.h5"
    args = [sys.executable, "-X", "importtime", "-m", "vad.prepare", "data=ucf_crime_npy",
            f"data.root='{folder / 'data'}'", f"out='{out}'", "progress=false",
            f"hydra.run.dir='{tmp_path / 'run'}'"]
    started = time.perf_counter()
    proc = subprocess.run(args, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120)
    seconds = time.perf_counter() - started
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out.is_file()
    imported = re.findall(r"\|\s+([\w.]+)$", proc.stderr, re.M)
    assert "h5py" in imported  # -X importtime did list the imports
    assert "torch" not in imported and "pytorch_lightning" not in imported, seconds
    line = next(ln for ln in (proc.stdout + proc.stderr).splitlines() if "train with:" in ln)
    fragment = re.search(r"(\"data\.path=.*\"|'data\.path=.*'|data\.path=\S+)$", line).group(1)
    assert parsed_value(fragment) == ("data.path", str(out))
    print(f"vad.prepare on 4 videos, -X importtime: {seconds:.2f} s")


def test_ctrl_c_keeps_the_finished_videos_and_the_printed_command_resumes(tmp_path):
    """SIGINT to a real ``vad.prepare`` (its layout slowed by a sleep per read, so that the
    signal lands mid-run): exit 130, the message and resume command, no traceback, only
    OUT.partial; pasting the printed command resumes and completes the store."""
    folder = tmp_path / "feats é"
    n_videos = seed_folder(folder, 5)
    out = tmp_path / "out dir" / "s é.h5"
    overrides = ["data=ucf_crime_npy", f"data.root='{folder}'", f"out='{out}'", "progress=true"]
    slow = ("import sys, time, runpy\n"
            "from vad.data.layouts.seed_npy import SeedNpy\n"
            "read = SeedNpy.read\n"
            "def slow(self, entry, stream, dim=None):\n"
            "    print('READ', entry.video.path, flush=True)\n"
            "    time.sleep(0.3)\n"
            "    return read(self, entry, stream, dim)\n"
            "SeedNpy.read = slow\n"
            "sys.argv = ['vad.prepare', *sys.argv[1:]]\n"
            "runpy.run_module('vad.prepare', run_name='__main__')\n")
    proc = subprocess.Popen([sys.executable, "-c", slow, *overrides], cwd=tmp_path, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        reads = 0
        for line in proc.stdout:
            reads += line.startswith("READ")
            if reads == 4:
                break
        assert reads == 4, proc.stderr.read()[-3000:]
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr
    partial = out.with_name(out.name + ".partial")
    found = re.search(rf"interrupted after (\d+) of {n_videos} videos; the finished ones are kept in "
                      rf"(.+?); run the same command again to resume: (python -m vad\.prepare .*)$",
                      stderr, re.M)
    assert found, stderr[-3000:]
    kept = int(found.group(1))
    assert 3 <= kept < n_videos and found.group(2) == str(partial)
    assert partial.is_file() and not out.exists()

    command = shlex.split(found.group(3))
    assert command[:3] == ["python", "-m", "vad.prepare"]
    resumed = subprocess.run([sys.executable, *command[1:], f"hydra.run.dir={tmp_path / 'resume'}"],
                             cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    result = json.loads((tmp_path / "resume" / "prepare.json").read_text())
    assert (result["skipped"], result["written"], result["videos"]) == (kept, n_videos - kept, n_videos)
    assert out.is_file() and not partial.exists()
