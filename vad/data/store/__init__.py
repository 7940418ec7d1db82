"""The feature store: one HDF5 file of 32-segment features made once by ``python -m vad.prepare``
from any layout, then read by ``data=store data.path=STORE.h5`` in seconds.

Format (``format="vad-store"``, ``version=1``)::

    /                      attrs: format, version, streams, dims (per stream, 0 until known),
                                  n_segments=32, crops ("mean"/"one"/"all"; "none" for segment
                                  layouts), crop, keep_snippets, source ("<layout> <root>"),
                                  layout, layout_kind, root, n_videos, created, complete, finished
    /videos/<000000>       one group per layout entry, named by its index (sorted = entry order)
        attrs: index, path, cls, frames, split ("train"/"test"), spans (int64 (k, 2), 1-based
               inclusive; empty for train videos, as training must not see them), done=True
               written LAST (a group without it was interrupted and is rewritten on resume)
        segments/<STREAM>  float32 (C', 32, D); C' = 1 except crops="all" (C' = crops)
        snippets/<STREAM>  float32 (T, D) mean over crops, only with keep_snippets and only for
                           test videos (what the snippets evaluation protocol needs: ~0.6 GB for
                           UCF-Crime's test set at 2048-d, against ~7 GB for every video);
                           keep_snippets="all" keeps them for every video (``vad.extract``)
        attrs fps          only when the layout reports it (``layout.facts``, see below)
        movement           float32 (32,), only when the layout gives movement values
    /skipped/<000000>      attrs index, path, reason: a video the layout refused (it raised
                           :class:`SkipVideo`, e.g. an unreadable or too-short video file); it is
                           not written, and a resume does not retry it (delete the store to retry)
    /log                   written with /index: path and reason (strings) of every skipped video;
                           root attrs n_listed (videos the layout lists), n_skipped, and n_videos
                           becomes the number of videos written (= rows of /index)
    /index                 written once every video is done, for fast loading (one read per
                           column instead of per-video attributes): group (names), path, cls,
                           split (strings), frames, n_spans, has_movement (per video) and spans
                           (int64 (sum n_spans, 2)), in entry order

The writer streams one video at a time (memory is bounded by one video's raw array, whatever
the dataset size), writes ``<out>.partial``, flushes after every video and renames the file to
``out`` once every video is done: ``out`` is never half-written, and re-running the same
command resumes the ``.partial`` file.

Optional layout hooks (all backward compatible; the file layouts have none of them):
``layout.movement(entry)`` -> (32,) movement values; ``layout.facts(entry)`` -> dict of facts
known only once the video is read (``frames``, ``fps``, ``spans``), overriding the entry's;
``layout.store_attrs()`` -> dict of root attributes recorded at creation (provenance, e.g. the
extractor and its weights) that a resume must match.

Modules: :mod:`~vad.data.store.format` (the file's layout, attributes, option checks),
:mod:`~vad.data.store.writer` (``write``), :mod:`~vad.data.store.merge` (``merge``) and
:mod:`~vad.data.store.reader` (``load``, ``open_store``).
"""

from vad.data.store.format import (
    FORMAT,
    KEEP_ALL,
    PARTIAL,
    VERSION,
    SkipVideo,
    keep_mode,
    partial_path,
    skipped_of,
)
from vad.data.store.merge import merge
from vad.data.store.reader import load, open_store, video_fps
from vad.data.store.writer import Interrupted, StoreReadError, WriteReport, write

__all__ = ["FORMAT", "KEEP_ALL", "PARTIAL", "VERSION", "Interrupted", "SkipVideo", "StoreReadError",
           "WriteReport", "keep_mode", "load", "merge", "open_store", "partial_path", "skipped_of",
           "video_fps", "write"]
