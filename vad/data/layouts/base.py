"""What every feature layout provides, so that training, ``vad.prepare`` and ``vad.check``
read any of them the same way, one video at a time (bounded memory)."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable

import numpy as np

from vad.types import Entry

REFETCH = "re-extract or re-download this file"


def files_by_key(root: Path, key_of: Callable[[str], str | None], described: str) -> dict[str, Path]:
    """``{key: path}`` of every file anywhere under ``root`` whose name ``key_of`` maps to a key
    (None: not a file of the layout), found in one walk for layouts that find files by name
    wherever they lie; two files of one key are an error (``described.format(key)`` names them)."""
    found: dict[str, Path] = {}
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for file in sorted(files):
            key = key_of(file)
            if key is None:
                continue
            path = Path(folder) / file
            if key in found:
                raise ValueError(f"two {described.format(key)} under data.root={root}: {found[key]} and "
                                 f"{path}; keep one of them (remove one, or point data.root at a folder holding one)")
            found[key] = path
    return found


class UnreadableFile(ValueError):
    """A feature file that exists but cannot be read as features (empty, truncated, another
    format): ``read`` raises it so that the report lists it under its path with the others."""

    def __init__(self, path, reason: str, fix: str = REFETCH):
        self.path, self.reason = str(path), reason
        super().__init__(f"{self.path}: {reason}; {fix}")


def preview(head: bytes) -> str:
    """The first bytes of a file as printable text, for "not a ... (starts with '...')"."""
    escapes = {9: "\\t", 10: "\\n", 13: "\\r"}
    return "'" + "".join(escapes.get(b) or (chr(b) if 32 <= b < 127 else f"\\x{b:02x}") for b in head) + "'"


class Layout(ABC):
    """A folder (or file) of features in one of the known layouts.

    ``kind`` says what ``read`` returns: ``"segments"`` -> (32, D) already pooled features;
    ``"clips"`` -> (T, C, D) per-16-frame-snippet features with C crops (C = 1 without crops).
    """

    name: str
    kind: str

    def __init__(self, root: Path):
        self.root = Path(root)

    @abstractmethod
    def entries(self) -> list[Entry]:
        """Train videos then test videos, in list order (duplicates kept; check() reports them)."""

    @abstractmethod
    def streams(self) -> tuple[str, ...]:
        """Streams present in the data (subset of ("RGB", "FLOW"))."""

    @abstractmethod
    def source(self, entry: Entry, stream: str) -> str:
        """Where ``read`` takes this video's stream from (a file path, or file::dataset), for messages."""

    @abstractmethod
    def read(self, entry: Entry, stream: str) -> np.ndarray:
        """The raw float array of one video and stream, shape as ``kind`` says.

        Raises ``FileNotFoundError`` for a missing file, :class:`UnreadableFile` for a file
        that is not features, ``ValueError`` for features of the wrong shape."""
