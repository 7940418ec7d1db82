"""Reading a complete store into :class:`~vad.data.features.Splits` for ``data=store``: one
low-level HDF5 read per dataset straight into one preloaded array."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import h5py
import numpy as np

from vad.cli import override
from vad.constants import FIXED_DIMS, N_SEGMENTS
from vad.data.features import stream_columns
from vad.data.datasets import LAYOUT_DATASETS
from vad.data.store.format import KEEP_ALL, PARTIAL, open_existing, partial_path, stored_options, text, texts
from vad.pooling import SULTANI, Pooling
from vad.types import Video

log = logging.getLogger(__name__)

PREPARE = "python -m vad.prepare data=<layout> data.root=..."


def _modality_hint(streams: list[str]) -> str:
    if set(streams) == {"RGB", "FLOW"}:
        return "modality=TWO, modality=RGB or modality=FLOW"
    return " or ".join(f"modality={s}" for s in streams)


def open_store(path, key: str = "data.path") -> tuple[h5py.File, Path]:
    """Open a complete store read-only, with errors that say how to make or finish it;
    ``key`` is the option that named ``path`` (in the messages)."""
    if path is None:
        raise ValueError(f"data=store needs {key}=STORE.h5 (a file made by "
                         f"`{PREPARE} out=STORE.h5`)")
    path = Path(os.path.expanduser(str(path)))
    if path.name.endswith(PARTIAL):
        final = path.with_name(path.name[:-len(PARTIAL)])
        raise ValueError(f"{key}={path} is an unfinished store (a {PARTIAL} file): re-run the same "
                         f"`python -m vad.prepare ...` (or vad.extract) command that writes "
                         f"{override('out', final)} to finish it, then use {override(key, final)}")
    if not path.exists():
        hint = ""
        if partial_path(path).exists():
            hint = (f"; {partial_path(path)} exists: the preparation was interrupted, re-run the same "
                    f"`python -m vad.prepare ...` (or vad.extract) command to finish it")
        raise FileNotFoundError(f"{key}={path} does not exist{hint}; make it with "
                                f"`{PREPARE} {override('out', path)}`")
    f = open_existing(path, "r", writing=False)
    if not bool(f.attrs.get("complete", False)):
        f.close()
        raise ValueError(f"{path} is an unfinished store: re-run the vad.prepare (or vad.extract) "
                         f"command with {override('out', path)} to finish it")
    return f, path


def load(data_cfg, streams: tuple[str, ...], extractor_dim: int, snippets: bool = False,
         need_train: bool = True, pooling: Pooling = SULTANI, dataset: str | None = None):
    """Reader for ``data=store``: the 32-segment features of ``streams`` (concatenated in that
    order) for every video, preloaded into one float32 array (train videos first).

    ``snippets`` also loads the test videos' per-snippet features (stores prepared with
    ``keep_snippets=true``) into ``test.snippets`` (sum of T, D x streams) and
    ``test.snippet_counts``, for the snippets evaluation protocol. ``need_train=False``
    (evaluation) accepts a store without training videos (an empty training set). A method
    pooling otherwise than Sultani (``pooling``) pools the snippets of a store that keeps them for
    every video (``keep_snippets=all``). A store prepared from a benchmark's own layout
    (``xd_i3d``...) is refused under another ``dataset``.
    """
    import torch

    from vad.data.features import make_splits

    started = time.perf_counter()
    streams, dim = tuple(streams), int(extractor_dim)
    f, path = open_store(data_cfg.path)
    with f:
        made_from = text(f.attrs.get("source", "")).split(" ")[0]
        if dataset and LAYOUT_DATASETS.get(made_from, dataset) != dataset:
            raise ValueError(f"store {path} was prepared from data={made_from}, "
                             f"{LAYOUT_DATASETS[made_from]} features, but dataset={dataset}: add "
                             f"dataset={LAYOUT_DATASETS[made_from]}")
        _check_streams(f, path, streams, dim)
        index = _read_index(f, path)
        split = index["split"]
        train_rows = np.flatnonzero(split == "train")
        test_rows = np.flatnonzero(split == "test")
        if need_train and not train_rows.size:
            raise ValueError(f"store {path} has no training videos ({test_rows.size} test videos): "
                             "training needs training videos; a store of test videos only serves "
                             "`python -m vad.evaluate ckpt_path=... data=store "
                             f"{override('data.path', path)}`")
        order = np.concatenate([train_rows, test_rows]).astype(int)
        if pooling == SULTANI:
            features, movement = _read_segments(f, path, index, order, streams, dim)
        else:
            features, movement = _pooled_snippets(f, path, [index["names"][i] for i in order], streams,
                                                  dim, pooling), None
        test_snippets, counts = None, None
        if snippets:
            test_snippets, counts = _read_snippets(f, path, [index["names"][i] for i in test_rows],
                                                   streams, dim, bool(f.attrs["keep_snippets"]),
                                                   text(f.attrs.get("layout_kind", "")))
        crops, source = text(f.attrs["crops"]), text(f.attrs.get("source", ""))
    paths = index["paths"]
    starts = np.concatenate([[0], np.cumsum(index["n_spans"])])

    def video(i: int, with_spans: bool) -> Video:
        spans = index["spans"][starts[i]:starts[i + 1]] if with_spans else ()
        return Video(paths[i], index["classes"][i], int(index["frames"][i]),
                     tuple((int(s), int(e)) for s, e in spans))

    # Training videos carry no spans (the store keeps them for test videos only).
    train_videos = [video(i, False) for i in train_rows]
    test_videos = [video(i, True) for i in test_rows]
    _check_values(features, [paths[i] for i in order], path, stream_columns(streams, dim)[0])
    log.info("store %s: %d videos (%d train, %d test) loaded in %.2f s", path, len(paths),
             len(train_rows), len(test_rows), time.perf_counter() - started)
    return make_splits(
        features, train_videos, test_videos, movement=movement,
        description=f"vad store {path} ({'+'.join(streams)}, crops={crops}) prepared from {source}",
        snippets=torch.from_numpy(test_snippets) if test_snippets is not None else None,
        snippet_counts=counts)


def video_fps(path) -> dict[str, float]:
    """``{video path: decoded fps}`` of a complete store's videos that record one (``vad.extract``
    stores do; stores prepared from feature files have none)."""
    f, path = open_store(path)
    with f:
        return {text(g.attrs["path"]): float(g.attrs["fps"]) for g in f["videos"].values()
                if "fps" in g.attrs}


def _check_streams(f: h5py.File, path: Path, streams: tuple[str, ...], dim: int) -> None:
    """The modality's streams are in the store, with the extractor's dimension."""
    present = texts(f.attrs["streams"])
    missing = [s for s in streams if s not in present]
    if missing:
        raise ValueError(f"store {path} has streams {present}, the modality needs {list(streams)} "
                         f"(missing {missing}): pick {_modality_hint(present)}, or prepare a "
                         "store with those streams")
    dims = dict(zip(present, (int(d) for d in f.attrs["dims"])))
    wrong = {s: dims[s] for s in streams if dims[s] != FIXED_DIMS.get(s, dim)}
    if wrong:
        raise ValueError(f"store {path} has feature dimension {wrong} per stream, but the "
                         f"extractor expects {dim}: pick the extractor= with "
                         f"dim {sorted(set(wrong.values()))} (conf/extractor/*.yaml), or the store "
                         "made with this extractor's features")


def _read_index(f: h5py.File, path: Path) -> dict:
    """The /index columns (one read each) and whether every video has movement values."""
    if "index" not in f:
        raise ValueError(f"{path} has no /index (damaged file?): prepare it again")
    index = f["index"]
    columns = {"names": list(index["group"].asstr()[()]), "paths": list(index["path"].asstr()[()]),
               "classes": list(index["cls"].asstr()[()]),
               "split": np.asarray(index["split"].asstr()[()]), "frames": index["frames"][()],
               "n_spans": index["n_spans"][()], "spans": index["spans"][()]}
    with_movement = index["has_movement"][()]
    n = len(columns["names"])
    columns["has_movement"] = bool(n) and bool(np.all(with_movement))
    if np.any(with_movement) and not columns["has_movement"]:
        log.warning("store %s has movement values for %d of %d videos only: loading none",
                    path, int(np.sum(with_movement)), n)
    if n != int(f.attrs["n_videos"]):
        raise ValueError(f"{path} lists {int(f.attrs['n_videos'])} videos but indexes {n}: the "
                         "file is damaged; prepare it again")
    return columns


def _read_segments(f: h5py.File, path: Path, index: dict, order: np.ndarray,
                   streams: tuple[str, ...], dim: int):
    """(N, C, 32, D x streams) features in ``order`` and (N, 32) movement values (or None)."""
    names, has_movement = index["names"], index["has_movement"]
    n = len(names)
    bags = h5py.h5d.open(f.id, f"videos/{names[0]}/segments/{streams[0]}".encode()).shape[0] if n else 1
    widths, starts = stream_columns(streams, dim)
    features = np.empty((len(order), bags, N_SEGMENTS, sum(widths)), dtype=np.float32)
    movement = np.empty((len(order), N_SEGMENTS), dtype=np.float32) if has_movement else None
    # Low-level reads straight into the destination slices: one HDF5 call per dataset,
    # none of the high-level per-object overhead (1900 videos x 2 streams in ~0.5 s).
    fid = f.id
    space = h5py.h5s.create_simple(features.shape)
    move_space = h5py.h5s.create_simple(movement.shape) if has_movement else None
    for row, i in enumerate(order):
        base = f"videos/{names[i]}/"
        for k, stream in enumerate(streams):
            dset = h5py.h5d.open(fid, f"{base}segments/{stream}".encode())
            file_space = dset.get_space()
            if file_space.shape != (bags, N_SEGMENTS, widths[k]):
                raise ValueError(f"{path}: {base}segments/{stream} has shape {file_space.shape}, "
                                 f"expected ({bags}, {N_SEGMENTS}, {widths[k]}): prepare the store again")
            space.select_hyperslab((row, 0, 0, starts[k]), (1, bags, N_SEGMENTS, widths[k]))
            dset.read(space, file_space, features)
        if has_movement:
            dset = h5py.h5d.open(fid, f"{base}movement".encode())
            move_space.select_hyperslab((row, 0), (1, N_SEGMENTS))
            dset.read(move_space, dset.get_space(), movement)
    return features, movement


def _pooled_snippets(f: h5py.File, path: Path, names: list[str], streams, dim: int,
                     pooling: Pooling) -> np.ndarray:
    """(N, 1, S, dim x streams) segments pooled by ``pooling`` from the named videos' snippets."""
    if stored_options(f)["keep_snippets"] != KEEP_ALL:
        raise ValueError(f"the method trains on {pooling.tag} segments (method.inputs), which store "
                         f"{path} cannot give: it keeps Sultani's 32 segments and no snippets of its "
                         "training videos; prepare it again with keep_snippets=all (vad.prepare or "
                         "vad.extract), or use method=mil")
    flat, counts = _read_snippets(f, path, names, streams, dim, True, "clips")
    bounds = np.concatenate([[0], np.cumsum(counts)])
    return np.stack([pooling(flat[a:b]) for a, b in zip(bounds[:-1], bounds[1:])])[:, None]


def _read_snippets(f: h5py.File, path: Path, names: list[str], streams, dim: int,
                   kept: bool, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(sum of T, dim x streams) float32 snippet features of the named videos, and their T."""
    if not kept:
        why = ("its layout gives 32-segment features only (no snippets to keep)" if kind == "segments"
               else "it was prepared without keep_snippets=true")
        raise ValueError(f"eval.protocol=snippets needs per-snippet test features, but store {path} has "
                         f"none: {why}; prepare a store from a clip layout with keep_snippets=true "
                         "and train on it, or use eval.protocol=segments")
    fid = f.id
    counts = np.empty(len(names), dtype=np.int64)
    for row, name in enumerate(names):
        lengths = {h5py.h5d.open(fid, f"videos/{name}/snippets/{s}".encode()).shape[0] for s in streams}
        if len(lengths) != 1:
            raise ValueError(f"{path}: video group {name} has snippet counts {sorted(lengths)} across "
                             f"streams {list(streams)}: the streams disagree; prepare the store again")
        counts[row] = next(iter(lengths))
    widths, columns = stream_columns(streams, dim)
    out = np.empty((int(counts.sum()), sum(widths)), dtype=np.float32)
    space = h5py.h5s.create_simple(out.shape)
    start = 0
    for row, name in enumerate(names):
        for k, stream in enumerate(streams):
            dset = h5py.h5d.open(fid, f"videos/{name}/snippets/{stream}".encode())
            if counts[row]:
                space.select_hyperslab((start, columns[k]), (int(counts[row]), widths[k]))
                dset.read(space, dset.get_space(), out)
        start += int(counts[row])
    return out, counts


def _check_values(features: np.ndarray, paths: list[str], path: Path, widths: list[int]) -> None:
    """NaN/Inf values and all-zero segments of any stream (``widths``: the streams' columns), one
    vectorised pass per stream."""
    edges = np.cumsum([0, *widths])
    zero = np.zeros(len(features), dtype=bool)
    for start, end in zip(edges[:-1], edges[1:]):
        zero |= ~features[..., start:end].any(axis=-1).all(axis=(1, 2))
    problems = []
    for label, bad in (("NaN/Inf values", ~np.isfinite(features).all(axis=(1, 2, 3))),
                       ("all-zero segments", zero)):
        rows = np.flatnonzero(bad)
        if rows.size:
            problems.append(f"{label} in {rows.size} videos, e.g. {[paths[r] for r in rows[:5]]}")
    if problems:
        raise ValueError(f"store {path} has bad features: " + "; ".join(problems) +
                         ": fix the source features and prepare the store again")
