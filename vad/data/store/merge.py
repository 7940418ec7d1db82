"""Joining complete stores (e.g. the shards of ``vad.extract ... shard=i num_shards=n``) into
one, as one unsharded run would have written it."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import h5py

from vad.data.store.format import (
    OPTION_KEYS,
    PROVENANCE_KEYS,
    attr_text,
    group_name,
    mark_complete,
    partial_path,
    skipped_of,
    stored_options,
    text,
)
from vad.data.store.reader import open_store
from vad.data.store.writer import WriteReport

log = logging.getLogger(__name__)


def merge(inputs, out: Path, expect_shards: int | None = None) -> WriteReport:
    """Join complete stores into one store ``out``: same streams, dims and options, no video
    (path) twice, every shard present when the inputs record their shard (``shard``/
    ``num_shards`` root attrs) or when ``expect_shards`` is given. Videos are ordered by path
    (as one unsharded extract orders them); skipped-video logs are joined. Written to
    ``out.partial`` and renamed at the end."""
    started = time.perf_counter()
    inputs = [Path(p) for p in inputs]
    out = Path(out)
    if not inputs:
        raise ValueError("merge needs at least one input store")
    if out.exists():
        raise ValueError(f"{out} exists: delete it or pick another out= for the merged store")
    if len(set(map(str, inputs))) != len(inputs):
        raise ValueError(f"the same input store is listed twice: {[str(p) for p in inputs]}")
    files = []
    try:
        for path in inputs:
            files.append(open_store(path, key="merge")[0])
        _check_compatible(inputs, files)
        _check_shards(files, expect_shards)
        rows, skipped = _videos(inputs, files)
        out.parent.mkdir(parents=True, exist_ok=True)
        _write_merged(partial_path(out), inputs, files, rows, skipped)
        options = stored_options(files[0])
        dims = [int(d) for d in files[0].attrs["dims"]]
    finally:
        for f in files:
            f.close()
    os.replace(partial_path(out), out)
    report = WriteReport(out, written=len(rows), videos=len(rows) + len(skipped),
                         streams=tuple(options["streams"]), crops=options["crops"],
                         dims=dict(zip(options["streams"], dims)), failed=skipped)
    report.seconds = time.perf_counter() - started
    log.info("merged %d stores into %s: %d videos, %d bad", len(inputs), out, len(rows), len(skipped))
    return report


def _check_compatible(inputs: list[Path], files: list[h5py.File]) -> None:
    """Every store has the first one's options, dims and provenance."""
    first = files[0]
    options = stored_options(first)
    dims = [int(d) for d in first.attrs["dims"]]
    for path, f in zip(inputs[1:], files[1:]):
        other = stored_options(f)
        diff = [k for k in OPTION_KEYS if other[k] != options[k]]
        if [int(d) for d in f.attrs["dims"]] != dims:
            diff.append("dims")
        diff += [key for key in PROVENANCE_KEYS
                 if attr_text(first.attrs.get(key)) != attr_text(f.attrs.get(key))]
        if diff:
            raise ValueError(f"cannot merge {path} with {inputs[0]}: they differ in {diff}")


def _check_shards(files: list[h5py.File], expect_shards: int | None) -> None:
    """Exactly one store per shard, when the stores are shards or ``expect_shards`` is given."""
    shards = [int(f.attrs["shard"]) for f in files if "shard" in f.attrs]
    if expect_shards is not None and len(files) != int(expect_shards):
        raise ValueError(f"expect_shards={expect_shards} but {len(files)} stores are given")
    if len(shards) == len(files):
        n = int(files[0].attrs.get("num_shards", len(files)))
        want = int(expect_shards) if expect_shards is not None else n
        if sorted(shards) != list(range(want)) or n != want:
            missing = sorted(set(range(want)) - set(shards))
            dup = sorted({s for s in shards if shards.count(s) > 1})
            raise ValueError(f"the stores are shards {sorted(shards)} of num_shards={n}: "
                             f"missing {missing}, duplicated {dup}; merge exactly one store "
                             "per shard")


def _videos(inputs: list[Path], files: list[h5py.File]):
    """``(path, store number, group)`` of every video sorted by path, and the joined skipped
    videos; a video in two stores is refused."""
    rows, skipped, seen = [], [], {}
    for k, (path, f) in enumerate(zip(inputs, files)):
        for name, vpath in zip(f["index/group"].asstr()[()], f["index/path"].asstr()[()]):
            if vpath in seen:
                raise ValueError(f"video {vpath!r} is in both {seen[vpath]} and {path}: the "
                                 "stores overlap (same shard twice?)")
            seen[vpath] = path
            rows.append((vpath, k, name))
        for vpath, reason in skipped_of(f):
            if vpath in seen:
                raise ValueError(f"video {vpath!r} is in both {seen[vpath]} and {path}")
            seen[vpath] = path
            skipped.append((vpath, reason))
    return sorted(rows), sorted(skipped)


def _write_merged(partial: Path, inputs: list[Path], files: list[h5py.File], rows, skipped) -> None:
    first = files[0]
    with h5py.File(partial, "w") as g:
        for key, value in first.attrs.items():
            if key not in ("shard", "complete", "finished"):
                g.attrs[key] = value
        g.attrs["complete"] = False
        g.attrs["merged_from"] = [str(p) for p in inputs]
        g.attrs["source"] = f"merge of {len(inputs)} stores: {text(first.attrs.get('source', ''))}"
        dest = g.create_group("videos")
        for index, (_, k, name) in enumerate(rows):
            new = group_name(index)
            files[k].copy(files[k]["videos"][name], dest, name=new)
            dest[new].attrs["index"] = index
        mark_complete(g, skipped)
