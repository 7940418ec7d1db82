"""How a resumable command (``vad.train``, ``vad.prepare``, ``vad.extract``) tells the user to run it again:
its own command line rebuilt from Hydra's record of the overrides, quoted for the shell
and for Hydra, and the end of a run stopped by Ctrl-C (one message, exit status 130)."""

from __future__ import annotations

import logging
import shlex
import sys

from vad.cli import log_to_files, override

INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a Ctrl-C


def _argument(item) -> str:
    """One parsed override as the user can paste it: unchanged when the shell keeps it as it
    is, string values through :func:`vad.cli.override`, anything else quoted whole."""
    from hydra.core.override_parser.types import ValueType

    raw = item.input_line
    if shlex.quote(raw) == raw:
        return raw
    if item.value_type == ValueType.ELEMENT and isinstance(item.value(), str):
        return override(item.get_key_element(), item.value())
    return shlex.quote(raw)


def command(module: str, drop: tuple[str, ...] = ()) -> str:
    """``python -m <module> <this run's overrides>``, pasteable into a POSIX shell; the
    overrides of the keys in ``drop`` are left out (the caller gives them anew)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.override_parser.overrides_parser import OverridesParser

    task = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    items = [item for item in OverridesParser.create().parse_overrides(task)
             if item.get_key_element().lstrip("+~") not in drop]
    return " ".join(["python", "-m", module, *(_argument(item) for item in items)])


def list_override(key: str, values) -> str:
    """``key=[a,b]`` with every element quoted as :func:`vad.cli.override` quotes a value."""
    items = []
    for value in values:
        item = shlex.split(override(key, value))[0]  # key=<the value as Hydra reads it>
        items.append(item[len(key) + 1:])
    arg = f"{key}=[{','.join(items)}]"
    return arg if shlex.quote(arg) == arg else shlex.quote(arg)


def interrupted(err: KeyboardInterrupt, module: str) -> None:
    """End a command stopped by Ctrl-C: what was kept and how to resume, exit status 130."""
    message = f"{err or 'interrupted'}; run the same command again to resume: {command(module)}"
    log_to_files(logging.WARNING, message)
    print(message, file=sys.stderr, flush=True)
    sys.exit(INTERRUPTED)
