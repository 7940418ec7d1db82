"""One process per run folder: ``<run folder>/.lock`` names the process that writes it.

Two runs writing the same folder (the same ``hydra.run.dir`` twice, a resume while the first
run still trains) would interleave checkpoints, event files and ``metrics.json``. The lock is an
``flock`` on ``.lock``, which the operating system drops when its process ends however it
ends, so a lock file left by a killed process is recognised as stale (no process holds it)
and taken over with a warning; the file holds pid, host, start time and command for the
message that refuses a second run.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shlex
import socket
import sys
from datetime import datetime
from pathlib import Path

from vad.cli import UserError

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"


def _describe(holder: dict) -> str:
    return (f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')} since "
            f"{holder.get('started', '?')} ({holder.get('command', '?')})")


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


class RunLock:
    """``with RunLock(run_dir):`` holds ``run_dir/.lock`` for the block; raises
    :class:`~vad.cli.UserError` naming the folder and the holder if another process holds it."""

    def __init__(self, run_dir: Path, command: str | None = None):
        self.path = Path(run_dir) / LOCK_NAME
        self.command = command or shlex.join([Path(sys.executable).name, *sys.argv])
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise UserError(f"{self.path.parent} is in use by {_describe(_read(self.path))}; wait for it "
                                "or pick another hydra.run.dir") from None
            # The holder may have removed the file between our open and flock: lock the file
            # that is at the path now.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        previous = _read(self.path)
        if previous:
            log.warning("%s: taking over the stale lock of %s: that process no longer holds it",
                        self.path.parent, _describe(previous))
        mine = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": datetime.now().astimezone().isoformat(timespec="seconds"), "command": self.command}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(mine) + "\n").encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
