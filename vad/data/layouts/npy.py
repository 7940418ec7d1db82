"""Reading one ``.npy`` feature file, with the reason when it is not one: empty, truncated,
another format, a pickled object that is not numbers. Shared by every ``.npy`` layout."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from vad.data.layouts.base import UnreadableFile, preview

MAGIC = b"\x93NUMPY"


def _header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and data size in the file of a ``.npy`` file, or the reason it has none."""
    size = path.stat().st_size
    if size == 0:
        raise UnreadableFile(path, "empty file (0 bytes)")
    with open(path, "rb") as fh:
        head = fh.read(len(MAGIC))
        if head != MAGIC:
            raise UnreadableFile(path, f"not a .npy array (starts with {preview(head + fh.read(10))})")
        fh.seek(0)
        try:
            major, _ = np.lib.format.read_magic(fh)
            read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(fh)
        except (ValueError, OSError, EOFError) as err:
            raise UnreadableFile(path, f"not a .npy array (bad header: {err})") from err
        return shape, dtype, size - fh.tell()


def snippet_count(path: Path | None) -> int | None:
    """T, the leading length of a ``.npy`` file, from its header alone; None without a file or
    when it cannot be read (``read`` then says why)."""
    if path is None:
        return None
    try:
        shape = _header(Path(path))[0]
    except (OSError, UnreadableFile):
        return None
    return int(shape[0]) if shape else None


def load_npy(path: Path) -> np.ndarray:
    """A numeric array from a ``.npy`` file; object (pickled) arrays of per-snippet rows, as some
    extraction scripts save them, are converted to one float32 array. Pickle is only used when
    the header says the file needs it. A file that is not such an array raises
    :class:`UnreadableFile` with the reason; a missing one ``FileNotFoundError``."""
    path = Path(path)
    try:
        shape, dtype, have = _header(path)
        if dtype.hasobject:
            try:
                array = np.load(path, allow_pickle=True)
            except (ValueError, OSError, EOFError, pickle.UnpicklingError) as err:
                raise UnreadableFile(path, f"truncated or corrupt pickled object array ({err})") from err
        else:
            need = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            if have < need:
                raise UnreadableFile(path, f"truncated: header says {shape} {dtype} = {need} bytes, "
                                           f"file has {have}")
            array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except OSError as err:  # permissions, a folder of that name, I/O errors
        raise UnreadableFile(path, f"cannot be read ({err.strerror or err})") from err
    if array.dtype == object:
        if array.ndim == 0:
            raise UnreadableFile(path, f"a pickled {type(array.item()).__name__}, not an array of numbers")
        try:
            array = np.asarray(array.tolist(), dtype=np.float32)
        except (ValueError, TypeError) as err:
            raise UnreadableFile(path, f"an object (pickled) array that is not a regular grid of floats "
                                       f"({err})", "expected per-snippet rows of equal shape, re-export "
                                       "the features as one float array") from err
    if array.dtype.kind not in "fiu":
        raise UnreadableFile(path, f"expected float features, found dtype {array.dtype}",
                             "re-export the features as float32")
    return array
