"""What every ``python -m vad.*`` command shares: a user's mistake ends the command with one
clear message and exit status 1 instead of a traceback.

A user error is any exception of :data:`USER_ERRORS` (the package raises them with messages
that name the file or key, the expected and the found value, and the fix). The message goes to
stderr and into the run's log file (``train.log`` ...); ``HYDRA_FULL_ERROR=1`` re-raises it, after
writing it to the log file, so that Hydra prints the whole traceback. In a multirun the
exception is written to the log file and re-raised as well, so that the launcher records the job
as failed.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shlex
import sys
from typing import Callable

log = logging.getLogger("vad")


class UserError(ValueError):
    """A problem with the user's input, configuration or files (shown without a traceback)."""


USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)


def multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def log_to_files(level: int, message: str) -> None:
    """Write ``message`` to the log files only (the console gets it once, on stderr)."""
    record = logging.LogRecord("vad", level, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def fail(message: str, status: int = 1) -> None:
    """End the command: ``message`` to stderr and the log files, then exit with ``status``."""
    log_to_files(logging.ERROR, message)
    print(f"Error: {message}", file=sys.stderr, flush=True)
    sys.exit(status)


def user_errors(task: Callable) -> Callable:
    """Decorate a ``@hydra.main`` task function (put it below ``@hydra.main``)."""

    @functools.wraps(task)
    def wrapper(*args, **kwargs):
        try:
            return task(*args, **kwargs)
        except USER_ERRORS as err:
            if os.environ.get("HYDRA_FULL_ERROR") == "1" or multirun():
                log_to_files(logging.ERROR, str(err))  # the launcher or Hydra shows it, not the log
                raise
            fail(f"{err}\n(HYDRA_FULL_ERROR=1 shows the traceback)")

    return wrapper


SAFE_VALUE = re.compile(r"[A-Za-z0-9_./:+@%,-]*[A-Za-z0-9_./:+@%-]")


def override(key: str, value) -> str:
    """``key=value`` as a user pastes it into a POSIX shell: a value with spaces, quotes or
    non-ASCII characters is quoted for Hydra's override grammar and then for the shell."""
    text = str(value)
    if SAFE_VALUE.fullmatch(text) and "," not in text:
        return f"{key}={text}"
    # Hydra: inside single quotes, a quote and the backslashes right before it are escaped.
    quoted = "'" + re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", text) + "'"
    if text.endswith("\\"):
        quoted = quoted[:-1] + re.search(r"\\*$", text).group(0) + "'"
    arg = f"{key}={quoted}"
    return f'"{arg}"' if not re.search(r'["$`\\!]', arg) else shlex.quote(arg)
