"""MILDataModule on hand-built splits: balanced batches, the whole-video hold-out, the snippets
test matrix and its error messages. Every training row is tagged (feature[..., 0] = video id,
feature[..., 1] = crop) so that batches say which videos they hold."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vad.data.features import make_splits
from vad.datamodule import MILDataModule
from vad.evaluation import Evaluator
from vad.types import Video

DIM = 4


def videos(labels, start: int = 0, frames: int = 640) -> list[Video]:
    return [Video(f"{'Arson' if y else 'Normal'}/v{start + i}.mp4", "Arson" if y else "Normal", frames)
            for i, y in enumerate(labels)]


def tagged_splits(labels, crops: int = 1, movement=None, train=None, test=None):
    """Splits of ``labels`` training videos (or the given ``train`` list) and 4 test videos; the
    features of training video i, crop c are tagged (i, c)."""
    train = train if train is not None else videos(labels)
    test = test if test is not None else videos([0, 1, 0, 1], start=1000)
    features = np.zeros((len(train) + len(test), crops, 32, DIM), dtype=np.float32)
    features[:, :, :, 0] = np.arange(len(features))[:, None, None]
    features[:, :, :, 1] = np.arange(crops)[None, :, None]
    return make_splits(features, train, test, "tagged", movement=movement)


def ids(part) -> list[int]:
    """Video ids of one side of a batch (the tag of segment 0)."""
    return [int(v) for v in part[0][:, 0, 0]]


def bags(part) -> list[tuple[int, int]]:
    """(video id, crop) of every bag of a batch."""
    return [(int(v), int(c)) for v, c in part[0][:, 0, :2].tolist()]


def epoch(loader) -> list[tuple[list[int], list[int]]]:
    """One pass of the training loader: (normal ids, anomalous ids) per batch."""
    return [(ids(batch["normal"]), ids(batch["anomalous"])) for batch, _, _ in loader]


def holdout_bags(dm: MILDataModule) -> list[tuple[int, int]]:
    loaders = dm.val_dataloader()
    assert len(loaders) == 2, "train_holdout must add the hold-out as the second validation loader"
    return [bag for batch in loaders[1] for bag in bags(batch)]


def trained_bags(dm: MILDataModule, epochs: int) -> set[tuple[int, int]]:
    loader = dm.train_dataloader()
    return {bag for _ in range(epochs) for batch, _, _ in loader
            for side in ("normal", "anomalous") for bag in bags(batch[side])}


# --- batching and balance -------------------------------------------------------------------

LABELS = [0] * 23 + [1] * 17  # 23 normal (ids 0..22), 17 anomalous (ids 23..39)


def test_batches_hold_batch_size_of_each_label_and_drop_the_rest():
    dm = MILDataModule(tagged_splits(LABELS), batch_size=5, seed=0)
    batches = epoch(dm.train_dataloader())
    assert len(batches) == min(23 // 5, 17 // 5) == 3
    for normal, anomalous in batches:
        assert len(normal) == len(anomalous) == 5
        assert all(LABELS[i] == 0 for i in normal) and all(LABELS[i] == 1 for i in anomalous)
    for side in (0, 1):
        seen = [i for batch in batches for i in batch[side]]
        assert len(seen) == len(set(seen)) == 15, "a video appears twice in one epoch"


def test_batches_differ_between_epochs_and_repeat_for_a_seed():
    def three_epochs(seed):
        loader = MILDataModule(tagged_splits(LABELS), batch_size=5, seed=seed).train_dataloader()
        return [epoch(loader) for _ in range(3)]

    first = three_epochs(seed=7)
    assert first[0] != first[1] and first[1] != first[2] and first[0] != first[2]
    assert three_epochs(seed=7) == first
    assert three_epochs(seed=8) != first


def test_movement_term_travels_with_its_rows():
    # Movement of video i grows by the factor 1 + i/100 per segment, so its change
    # |m_t / m_{t-1} - 1| is 0 at t = 0 and i/100 after.
    n = len(LABELS) + 4
    ratio = 1 + np.arange(n) / 100
    movement = (ratio[:, None] ** np.arange(32)[None, :]).astype(np.float32)
    dm = MILDataModule(tagged_splits(LABELS, movement=movement), batch_size=5, seed=0, use_movement=True)
    checked = 0
    for batch, _, _ in dm.train_dataloader():
        for side in ("normal", "anomalous"):
            features, term = batch[side]
            assert term.shape == (5, 32)
            for row, video in enumerate(ids(batch[side])):
                expected = np.r_[0.0, np.full(31, video / 100)]
                np.testing.assert_allclose(term[row].numpy(), expected, atol=1e-4)
                checked += 1
    assert checked == 30


# --- hold-out ---------------------------------------------------------------------------------

def test_holdout_is_stratified_and_never_trains():
    labels = [0] * 30 + [1] * 20
    dm = MILDataModule(tagged_splits(labels), batch_size=4, val_source="train_holdout",
                       holdout_fraction=0.2, seed=3)
    held = [video for video, _ in holdout_bags(dm)]
    assert len(held) == len(set(held))
    assert sum(labels[i] == 0 for i in held) == round(0.2 * 30) == 6
    assert sum(labels[i] == 1 for i in held) == round(0.2 * 20) == 4
    assert list(dm.holdout_labels) == [labels[i] for i in held]
    trained = {video for video, _ in trained_bags(dm, epochs=6)}
    assert trained.isdisjoint(held)
    assert trained == set(range(50)) - set(held), "six epochs should reach every other video"


def test_holdout_takes_at_least_one_video_of_each_label():
    labels = [0] * 12 + [1] * 10
    dm = MILDataModule(tagged_splits(labels), batch_size=4, val_source="train_holdout",
                       holdout_fraction=0.01)
    held = [video for video, _ in holdout_bags(dm)]
    assert sorted(labels[i] for i in held) == [0, 1]


def test_holdout_without_train_holdout_is_absent():
    dm = MILDataModule(tagged_splits(LABELS), batch_size=5, val_source="test")
    assert len(dm.val_dataloader()) == 1
    assert len(dm.holdout_labels) == 0


def test_holdout_keeps_every_crop_of_a_video_together():
    labels = [0] * 20 + [1] * 10
    dm = MILDataModule(tagged_splits(labels, crops=3), batch_size=6, val_source="train_holdout",
                       holdout_fraction=0.2, seed=1)
    held = holdout_bags(dm)
    held_videos = {video for video, _ in held}
    # round(0.2 * n) per label counts videos, not crop bags.
    assert sorted(labels[i] for i in held_videos) == [0] * 4 + [1] * 2
    assert sorted(held) == sorted((video, crop) for video in held_videos for crop in range(3))
    trained = trained_bags(dm, epochs=6)
    assert {video for video, _ in trained}.isdisjoint(held_videos)
    assert {video for video, _ in trained} == set(range(30)) - held_videos


def test_holdout_keeps_repeated_list_entries_together():
    # The list names normal videos 0..9 twice and anomalous videos 10..17 once: rows 0..17,
    # then rows 18..27 repeat videos 0..9.
    unique = videos([0] * 10 + [1] * 8)
    train = unique + unique[:10]
    labels = [v.label for v in train]
    video_of = {row: unique.index(v) for row, v in enumerate(train)}
    dm = MILDataModule(tagged_splits(labels, train=train), batch_size=3, val_source="train_holdout",
                       holdout_fraction=0.2, seed=5)
    held_rows = [row for row, _ in holdout_bags(dm)]
    held_videos = {video_of[row] for row in held_rows}
    assert sorted(labels[v] for v in held_videos) == [0, 0, 1, 1]  # round(0.2 * 10), round(0.2 * 8)
    assert sorted(held_rows) == sorted(row for row, v in video_of.items() if v in held_videos)
    trained = {video_of[row] for row, _ in trained_bags(dm, epochs=8)}
    assert trained.isdisjoint(held_videos)


# --- test loader and the evaluator's score matrix ------------------------------------------------------------------------------

def test_snippet_scores_are_padded_per_video_in_order():
    test = [Video("Arson/t0.mp4", "Arson", 48), Video("Normal/t1.mp4", "Normal", 20),
            Video("Arson/t2.mp4", "Arson", 64)]
    counts = np.array([3, 1, 4])  # frames // 16 (or its ceiling: 20 frames -> 1 or 2)
    snippets = torch.arange(8, dtype=torch.float32)[:, None].repeat(1, DIM)
    splits = tagged_splits(LABELS, test=test)
    splits.test.snippets, splits.test.snippet_counts = snippets, counts
    dm = MILDataModule(splits, batch_size=5, protocol="snippets")
    videos = [batch[0] for batch in dm.test_loader()]  # one whole video per batch, as (1, T, D)
    assert [tuple(v.shape) for v in videos] == [(1, 3, DIM), (1, 1, DIM), (1, 4, DIM)]
    served = torch.cat([v[0] for v in videos])
    assert served[:, 0].tolist() == list(range(8)), "the snippets loader must keep the rows' order"
    matrix = Evaluator(splits.test, "snippets").matrix(np.arange(1.0, 9.0))  # scores in that order
    np.testing.assert_array_equal(matrix, [[1, 2, 3, 0],
                                           [4, 0, 0, 0],
                                           [5, 6, 7, 8]])


def test_segment_scores_are_the_score_matrix():
    splits = tagged_splits(LABELS)
    dm = MILDataModule(splits, batch_size=5)
    scores = np.random.default_rng(0).random((4, 32))
    np.testing.assert_array_equal(Evaluator(splits.test).matrix(scores), scores)
    served = torch.cat([batch[0] for batch in dm.test_loader()])
    assert served[:, 0, 0].tolist() == [40, 41, 42, 43], "test videos must be served in list order"


# --- errors -----------------------------------------------------------------------------------

def test_batch_size_larger_than_a_class_names_the_class_and_count():
    with pytest.raises(ValueError, match=r"data.batch_size=18 but only 17 anomalous training videos "
                                         r"are available: lower data.batch_size"):
        MILDataModule(tagged_splits(LABELS), batch_size=18)
    with pytest.raises(ValueError, match=r"data.batch_size=20 but only 18 normal training videos"):
        # The hold-out (round(0.2 * 23) = 5 normal videos) is not training data.
        MILDataModule(tagged_splits(LABELS), batch_size=20, val_source="train_holdout",
                      holdout_fraction=0.2)


def test_snippets_protocol_without_snippet_features_says_how_to_get_them():
    with pytest.raises(ValueError, match=r"eval.protocol=snippets needs per-snippet test features.*"
                                         r"keep_snippets=true, or use eval.protocol=segments"):
        MILDataModule(tagged_splits(LABELS), batch_size=5, protocol="snippets")


def test_unknown_protocol_is_named():
    with pytest.raises(ValueError, match=r"eval.protocol='frames': expected segments or snippets"):
        MILDataModule(tagged_splits(LABELS), batch_size=5, protocol="frames")
