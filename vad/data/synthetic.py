"""Built-in synthetic UCF-Crime (and XD-Violence, ShanghaiTech: ``dataset=``): the real splits,
frame counts and test spans, fake features.

Features are made the way real ones are: one non-negative, sparse (ReLU-like) vector per
16-frame snippet, pooled to 32 segments with Sultani's bins and L2-normalised. A snippet is
``relu(scene + anomaly * class_pattern + busy * busy_pattern + noise - bias)``: anomalies differ
by class and by stream (appearance classes show in RGB, motion classes in FLOW), and normal
videos have busy moments along a pattern close to the anomaly patterns, so the task is learnable
but not trivial and two streams beat one. Training anomalies get random hidden spans; test
videos use the real annotated spans. Movement values (summed snippet motion) rise with busy
and anomalous moments.

Everything is deterministic from ``seed``: the layout per video comes from ``(seed, video)``,
the stream patterns from ``(seed, extractor, stream)``, so any subset of videos or streams is
generated on its own and cached once (written to a temp file, then renamed).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vad.constants import CLASSES, CLIP_FRAMES, FIXED_DIMS
from vad.data.features import Splits, make_splits, stack_streams
from vad.pooling import SULTANI, Pooling, pool_segments
from vad.types import Video

log = logging.getLogger(__name__)

VERSION = 1
N_SCENES = 24
# Noise per extractor: C3D features are the weaker ones, as in the literature.
NOISE = {"I3D": 1.0, "C3D": 1.25, "I3D_R50": 1.0}
BIAS = 2.2
SCENE_DENSITY = 0.25
ANOMALY_GAIN = 2.0
BUSY_GAIN = 1.3
# Per-class visibility in each stream (class order as CLASSES).
VISIBILITY = {
    #        Abu  Arr  Ars  Ass  Bur  Exp  Fig  Roa  Rob  Sho  Shop Ste  Van
    "RGB":  (0.4, 0.5, 1.3, 0.4, 0.9, 1.3, 0.5, 0.7, 0.8, 0.6, 1.0, 0.9, 1.1),
    "FLOW": (1.1, 0.9, 0.5, 1.2, 0.5, 1.1, 1.3, 1.3, 0.7, 1.1, 0.4, 0.5, 0.6),
}
STREAM_IDS = {"RGB": 1, "FLOW": 2, "AUDIO": 3}
EXTRACTOR_IDS = {"I3D": 1, "C3D": 2, "I3D_R50": 3}
DATASET_IDS = {"ucf_crime": 0, "xd_violence": 1, "shanghaitech": 2}
CROP_NOISE = 0.3  # extra noise of crops 1.. over crop 0 (data.crops > 1)
PROGRESS_EVERY_S = 5.0  # seconds between progress log lines of a generation (~35 s at full size)


@dataclass(frozen=True)
class Layout:
    """Stream-independent facts of one synthetic video."""

    video: Video  # with the (hidden, for training) anomaly spans
    busy: tuple[tuple[int, int], ...]
    scene: int
    intensity: float
    motion: float


def _random_spans(rng: np.random.Generator, frames: int, count: int, lo: float, hi: float):
    spans = []
    for _ in range(count):
        length = max(CLIP_FRAMES * 2, int(frames * rng.uniform(lo, hi)))
        length = min(length, frames)
        start = int(rng.integers(1, frames - length + 2))
        spans.append((start, start + length - 1))
    return tuple(sorted(spans))


def visibility(dataset: str, classes: tuple[str, ...], stream: str) -> np.ndarray:
    """Per-class visibility in ``stream``: UCF-Crime's table for its RGB and FLOW, else drawn
    once per (dataset, stream) in [0.4, 1.3]."""
    if dataset == "ucf_crime" and stream in VISIBILITY:
        return np.asarray(VISIBILITY[stream], dtype=np.float32)
    rng = np.random.default_rng([DATASET_IDS[dataset], STREAM_IDS[stream], 19])
    return rng.uniform(0.4, 1.3, len(classes)).astype(np.float32)


def fill_lengths(videos: tuple[Video, ...], seed: int, split: int, total_snippets: int | None = None,
                 like: tuple[Video, ...] = ()) -> list[Video]:
    """The videos with frames = 16 * T drawn where the shipped files give no length (frames 0):
    T from the snippet counts of ``like`` (the known ones), or, given ``total_snippets``, those
    counts scaled so that the drawn ones sum to it exactly (largest remainders)."""
    unknown = [i for i, v in enumerate(videos) if not v.frames]
    if not unknown:
        return list(videos)
    known = np.array([v.frames // CLIP_FRAMES for v in like or videos if v.frames], dtype=np.int64)
    rng = np.random.default_rng([seed, split, 23])
    counts = rng.choice(known, len(unknown)).astype(np.float64)
    if total_snippets is not None:
        share = counts / counts.sum() * total_snippets
        counts = np.floor(share)
        counts[np.argsort(counts - share)[: int(total_snippets - counts.sum())]] += 1
    out = list(videos)
    for i, t in zip(unknown, np.maximum(counts.astype(np.int64), 1)):
        out[i] = Video(videos[i].path, videos[i].cls, int(t) * CLIP_FRAMES, videos[i].spans)
    return out


def make_layout(video: Video, index: int, seed: int, train: bool) -> Layout:
    rng = np.random.default_rng([seed, index, 7])
    if video.label and train:
        video = Video(video.path, video.cls, video.frames,
                      _random_spans(rng, video.frames, 1 + int(rng.random() < 0.25), 0.05, 0.35))
    busy_count = rng.poisson(1.0 if video.label == 0 else 0.4)
    busy = _random_spans(rng, video.frames, busy_count, 0.02, 0.12)
    return Layout(video, busy, int(rng.integers(N_SCENES)), float(rng.uniform(0.4, 1.4)),
                  float(rng.lognormal(0.0, 0.5)))


def _coverage(spans, n_clips: int) -> np.ndarray:
    """Fraction of each 16-frame snippet inside the 1-based inclusive spans."""
    starts = np.arange(n_clips) * CLIP_FRAMES
    cover = np.zeros(n_clips)
    for s, e in spans:
        cover += np.clip(np.minimum(starts + CLIP_FRAMES, e) - np.maximum(starts, s - 1), 0, None)
    return np.minimum(cover / CLIP_FRAMES, 1.0)


def _sparse_pattern(rng: np.random.Generator, n: int, dim: int, density: float) -> np.ndarray:
    mask = rng.random((n, dim)) < density
    return (mask * rng.uniform(0.8, 2.0, (n, dim))).astype(np.float32)


def stream_patterns(seed: int, extractor: str, stream: str, dim: int, dataset: str = "ucf_crime",
                    classes: tuple[str, ...] = CLASSES) -> dict[str, torch.Tensor]:
    """Scene prototypes, class patterns and the busy pattern of one stream."""
    # UCF-Crime's draws come first and alone, as before the other datasets existed.
    other = [DATASET_IDS[dataset]] if dataset != "ucf_crime" else []
    rng = np.random.default_rng([seed, EXTRACTOR_IDS[extractor], STREAM_IDS[stream], 11, *other])
    scenes = (rng.random((N_SCENES, dim)) < SCENE_DENSITY) * rng.uniform(1.5, 3.5, (N_SCENES, dim))
    scenes = scenes.astype(np.float32)
    patterns = _sparse_pattern(rng, len(classes), dim, 0.04)
    patterns *= visibility(dataset, classes, stream)[:, None]
    busy = 0.6 * patterns.mean(axis=0) / patterns.mean(axis=0).max() + _sparse_pattern(rng, 1, dim, 0.02)[0]
    return {"scenes": torch.from_numpy(scenes), "classes": torch.from_numpy(patterns),
            "busy": torch.from_numpy(busy.astype(np.float32)), "names": classes}


def snippet_features(layout: Layout, index: int, seed: int, extractor: str, stream: str,
                     patterns: dict[str, torch.Tensor], gen: torch.Generator, crop: int = 0) -> torch.Tensor:
    """(T, D) ReLU snippet features of one video and stream, T = frames // 16 (at least 1).
    ``crop`` k > 0 is another view of the same snippets: crop 0 plus ``CROP_NOISE`` noise of its own
    (as the ten crops of a real video differ a little)."""
    n_clips = max(1, layout.video.frames // CLIP_FRAMES)
    seed_of_video = (int(seed) * 1_000_003 + int(index) * 101 + STREAM_IDS[stream] * 7
                     + EXTRACTOR_IDS[extractor])
    gen.manual_seed(seed_of_video)
    x = torch.empty(n_clips, patterns["busy"].shape[0]).normal_(0.0, NOISE[extractor], generator=gen)
    if crop:
        gen.manual_seed(seed_of_video + 7919 * crop)
        x.add_(torch.empty_like(x).normal_(0.0, CROP_NOISE, generator=gen))
    x += patterns["scenes"][layout.scene] - BIAS
    busy = torch.from_numpy(_coverage(layout.busy, n_clips).astype(np.float32))
    x.addr_(busy, patterns["busy"], alpha=BUSY_GAIN)
    if layout.video.label:
        anomaly = torch.from_numpy(_coverage(layout.video.spans, n_clips).astype(np.float32))
        pattern = patterns["classes"][patterns["names"].index(layout.video.cls)]
        x.addr_(anomaly, pattern, alpha=ANOMALY_GAIN * layout.intensity)
    return torch.relu_(x)


class Progress:
    """Log lines "generating WHAT: done/total videos, N s" every ``PROGRESS_EVERY_S`` and at the
    end (log lines, not a bar: they show in train.log and on a console that is not a terminal)."""

    def __init__(self, what: str, total: int):
        self.what, self.total = what, total
        self.started = self.last = time.perf_counter()
        log.info("generating %s for %d videos (once: later runs read the cache)", what, total)

    def update(self, done: int) -> None:
        now = time.perf_counter()
        if done == self.total or now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            log.info("generating %s: %d/%d videos, %.0f s", self.what, done, self.total, now - self.started)


def generate_stream(layouts: list[Layout], indices: np.ndarray, seed: int, extractor: str,
                    stream: str, out: np.ndarray, pooling: Pooling = SULTANI, dataset: str = "ucf_crime",
                    classes: tuple[str, ...] = CLASSES) -> None:
    """Fill ``out`` (N, C, S, D) with the features of one stream, each crop pooled by ``pooling``."""
    patterns = stream_patterns(seed, extractor, stream, out.shape[-1], dataset, classes)
    gen = torch.Generator()
    progress = Progress(f"synthetic {extractor} {stream} features", len(layouts))
    for row, (layout, index) in enumerate(zip(layouts, indices)):
        for crop in range(out.shape[1]):
            out[row, crop] = pooling(snippet_features(layout, index, seed, extractor, stream, patterns, gen,
                                                      crop).numpy())
        progress.update(row + 1)


def generate_snippets(layouts: list[Layout], indices: np.ndarray, seed: int, extractor: str,
                      stream: str, out: np.ndarray, crops: int = 1, dataset: str = "ucf_crime",
                      classes: tuple[str, ...] = CLASSES) -> None:
    """Fill ``out`` (sum of T, D) with the unpooled snippet features of the videos, in order (the
    mean over ``crops`` crops, as a store keeps them)."""
    patterns = stream_patterns(seed, extractor, stream, out.shape[1], dataset, classes)
    gen = torch.Generator()
    progress = Progress(f"synthetic {extractor} {stream} test snippets", len(layouts))
    offset = 0
    for row, (layout, index) in enumerate(zip(layouts, indices)):
        x = sum(snippet_features(layout, index, seed, extractor, stream, patterns, gen, crop)
                for crop in range(crops)) / crops
        out[offset:offset + len(x)] = x.numpy()
        offset += len(x)
        progress.update(row + 1)


def generate_movement(layouts: list[Layout], indices: np.ndarray, seed: int,
                      pooling: Pooling = SULTANI) -> np.ndarray:
    """(N, S) movement values: a per-video motion level raised by busy and anomalous moments."""
    out = np.empty((len(layouts), pooling.segments), dtype=np.float32)
    for row, (layout, index) in enumerate(zip(layouts, indices)):
        rng = np.random.default_rng([seed, int(index), 13])
        n_clips = max(1, layout.video.frames // CLIP_FRAMES)
        level = 1.0 + 1.5 * _coverage(layout.busy, n_clips)
        if layout.video.label:
            level += 2.0 * layout.intensity * _coverage(layout.video.spans, n_clips)
        motion = layout.motion * level * rng.lognormal(0.0, 0.3, n_clips)
        out[row] = pool_segments(motion[:, None], pooling.segments, normalise=False, bins=pooling.bins)[:, 0]
    return out


def select(videos: tuple[Video, ...], fraction: float, seed: int, offset: int) -> np.ndarray:
    """Catalogue indices of a stratified ``fraction`` of videos (by label), in catalogue order."""
    if fraction >= 1.0:
        return np.arange(len(videos)) + offset
    rng = np.random.default_rng([seed, 3, offset])
    chosen = []
    for label in (1, 0):
        rows = np.flatnonzero([v.label == label for v in videos])
        keep = max(2, int(round(fraction * len(rows))))
        chosen.extend(rng.permutation(rows)[:keep])
    return np.sort(np.asarray(chosen)) + offset


def _cached(path: Path, make) -> Path:
    """``path``, built first with ``make(tmp_path)`` and renamed into place when missing."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            make(tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return path


def load(cfg, streams: tuple[str, ...], extractor: str, dim: int, snippets: bool = False,
         pooling: Pooling = SULTANI, dataset: str = "ucf_crime") -> Splits:
    """Reader for ``data=synthetic``: the full-size (or ``fraction``) synthetic ``dataset``.

    ``snippets`` also provides the test videos' unpooled snippet features (snippets protocol);
    ``pooling`` is the method's; ``data.crops`` > 1 gives every video that many crops (training
    crops are bags of their video, test crops are scored apart and averaged). Lengths that no
    shipped file gives (XD-Violence's training videos, ShanghaiTech's normal ones) are drawn
    from the known ones (:func:`fill_lengths`); the AUDIO stream is 128-d.
    """
    from vad.data.datasets import dataset as find_dataset

    info = find_dataset(dataset)
    if extractor not in EXTRACTOR_IDS:
        raise ValueError(f"synthetic data has extractors {sorted(EXTRACTOR_IDS)}, found {extractor!r}")
    seed, fraction, crops = int(cfg.seed), float(cfg.fraction), int(cfg.crops)
    if not 0 < fraction <= 1:
        raise ValueError(f"data.fraction must be in (0, 1], found {fraction}")
    if crops < 1:
        raise ValueError(f"data.crops must be >= 1, found {crops}")
    train, test = info.catalogue()
    classes = info.classes
    train = tuple(fill_lengths(train, seed, 0, like=test))  # UCF-Crime's lengths are all known
    test = tuple(fill_lengths(test, seed, 1, info.unknown_test_snippets))
    indices = np.concatenate([select(train, fraction, seed, 0), select(test, fraction, seed, len(train))])
    everything = train + test
    layouts = [make_layout(everything[i], int(i), seed, i < len(train)) for i in indices]
    key = hashlib.sha1(indices.tobytes()).hexdigest()[:10]
    # Sultani's pooling of one crop keeps the names of the caches made before methods had their own.
    variant = "" if pooling == SULTANI and crops == 1 else f"-{pooling.tag}-crops{crops}"
    seeded = f"{'' if dataset == 'ucf_crime' else dataset + '-'}seed{seed}"
    cache = Path(os.path.expanduser(str(cfg.cache_dir)))

    started = time.perf_counter()
    parts = []
    for stream in streams:
        width = FIXED_DIMS.get(stream, dim)
        path = cache / f"synthetic-v{VERSION}-{seeded}-{extractor}{width}-{stream}-{key}{variant}.npy"

        def make(tmp, stream=stream, width=width):
            shape = (len(indices), crops, pooling.segments, width)
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32,
                                            shape=shape if crops > 1 else (shape[0],) + shape[2:])
            generate_stream(layouts, indices, seed, extractor, stream, out.reshape(shape), pooling, dataset,
                            classes)
            out.flush()
            del out

        parts.append(_cached(path, make))
    moves = "" if pooling == SULTANI else f"-{pooling.tag}"
    movement_path = cache / f"synthetic-v{VERSION}-{seeded}-movement-{key}{moves}.npy"

    def make_movement(tmp):
        with open(tmp, "wb") as fh:
            np.save(fh, generate_movement(layouts, indices, seed, pooling))

    movement = np.load(_cached(movement_path, make_movement))
    features = stack_streams(parts).numpy()
    n_train = int(np.sum(indices < len(train)))
    test_snippets, counts = None, None
    if snippets:
        counts = np.array([max(1, lay.video.frames // CLIP_FRAMES) for lay in layouts[n_train:]])
        flat = []
        crops_tag = f"-crops{crops}" if crops > 1 else ""
        for stream in streams:
            width = FIXED_DIMS.get(stream, dim)
            path = (cache / f"synthetic-v{VERSION}-{seeded}-{extractor}{width}-{stream}-{key}-test-snippets"
                    f"{crops_tag}.npy")

            def make_snippets(tmp, stream=stream, width=width):
                out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(int(counts.sum()), width))
                generate_snippets(layouts[n_train:], indices[n_train:], seed, extractor, stream, out, crops,
                                  dataset, classes)
                out.flush()
                del out

            flat.append(_cached(path, make_snippets))
        test_snippets = stack_streams(flat)
    log.info("synthetic data ready in %.1f s (cache %s)", time.perf_counter() - started, cache)

    videos = [layout.video for layout in layouts]
    # Training spans are hidden: the learner sees only video labels, as with real data.
    train_videos = [Video(v.path, v.cls, v.frames) for v in videos[:n_train]]
    splits = make_splits(
        features.reshape(len(indices), crops, pooling.segments, -1), train_videos, videos[n_train:],
        description=f"SYNTHETIC {info.title} ({extractor} {'+'.join(streams)}, seed {seed}, fraction "
                    f"{fraction:g}{f', {crops} crops' if crops > 1 else ''}): not real video features",
        movement=movement, snippets=test_snippets, snippet_counts=counts)
    return dataclasses.replace(splits, synthetic=True)
