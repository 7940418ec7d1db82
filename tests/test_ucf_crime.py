"""UCF-Crime annotation readers and the shipped catalogue (vad.data.ucf_crime)."""

from __future__ import annotations

from collections import Counter

import pytest

from vad.constants import CLASSES, NORMAL
from vad.data.ucf_crime import (
    catalogue,
    class_of,
    read_test_annotation,
    read_v2_test_lists,
    shipped,
)
from vad.types import Video


@pytest.fixture(scope="module")
def split():
    return catalogue()


def test_train_counts(split):
    train, _ = split
    assert len(train) == 1610
    assert sum(v.label for v in train) == 810
    assert sum(v.cls == NORMAL for v in train) == 800
    assert all(v.frames > 0 for v in train)
    assert all(v.spans == () for v in train)


def test_test_counts(split):
    _, test = split
    assert len(test) == 290
    assert sum(v.label for v in test) == 140
    assert sum(v.cls == NORMAL for v in test) == 150
    assert sum(v.frames for v in test) == 1_111_808


def test_classes(split):
    train, test = split
    assert len(CLASSES) == 13
    assert {v.cls for v in test} - {NORMAL} == set(CLASSES)
    assert {v.cls for v in train} - {NORMAL} == set(CLASSES)
    # every anomalous test video has 1 or 2 spans, normal ones none
    for v in test:
        assert (1 <= len(v.spans) <= 2) if v.label else v.spans == ()


def test_spans_within_frames(split):
    _, test = split
    for v in test:
        for s, e in v.spans:
            assert 1 <= s <= e <= v.frames, v


def test_explosion033_span_clipped(split):
    # Test_Annotation.txt: "Explosion/Explosion033_x264.mp4 3154 Explosion 970 1350 1550 3156"
    _, test = split
    (video,) = [v for v in test if v.name == "Explosion033_x264"]
    assert video.frames == 3154
    assert video.spans == ((970, 1350), (1550, 3154))


def test_first_test_line(split):
    _, test = split
    assert test[0] == Video("Arson/Arson022_x264.mp4", "Arson", 8640, ((3500, 4000),))
    assert test[0].name == "Arson022_x264" and test[0].label == 1


def test_read_v2_test_lists():
    videos = read_v2_test_lists(shipped("test_anomalyv2.txt"), shipped("test_normalv2.txt"))
    assert len(videos) == 290
    assert [v.label for v in videos] == [1] * 140 + [0] * 150  # anomalous first
    assert videos[0] == Video("Arrest/Arrest039_x264.mp4", "Arrest", 15836, ((7215, 10335),))
    assert videos[140] == Video("Normal_Videos_event/Normal_Videos_897_x264.mp4", NORMAL, 876)
    # "Explosion/Explosion033_x264.mp4|3155|[970, 1350, 1550, 3156]": end 3156 clipped to 3155
    (exp,) = [v for v in videos if v.name == "Explosion033_x264"]
    assert exp.frames == 3155 and exp.spans == ((970, 1350), (1550, 3155))
    assert Counter(len(v.spans) for v in videos[:140]) == Counter({1: 124, 2: 16})
    # same videos as the official test annotation (frame counts may differ by 1)
    official = {v.name: v for v in catalogue()[1]}
    assert set(official) == {v.name for v in videos}
    assert all(abs(official[v.name].frames - v.frames) <= 1 for v in videos)


def test_read_v2_malformed(tmp_path):
    bad = tmp_path / "anom.txt"
    bad.write_text("Arrest/Arrest039_x264.mp4|15836|[7215, 10335]\nArrest/Arrest001_x264.mp4 2375\n")
    normal = tmp_path / "normal.txt"
    normal.write_text("")
    with pytest.raises(ValueError, match=r"anom\.txt:2"):
        read_v2_test_lists(bad, normal)


@pytest.mark.parametrize("path, expected", [
    ("Normal_Videos_event/Normal_Videos_897_x264.mp4", NORMAL),
    ("Training_Normal_Videos_Anomaly/Normal_Videos001_x264.mp4", NORMAL),
    ("Testing_Normal_Videos_Anomaly/Normal_Videos_872_x264.mp4", NORMAL),
    ("Arson/Arson022_x264.mp4", "Arson"),
    ("RoadAccidents/RoadAccidents021_x264.mp4", "RoadAccidents"),
    ("Shoplifting001_x264.mp4", "Shoplifting"),
    ("Abuse028_x264.mp4", "Abuse"),
    ("Stealing/whatever_x264.mp4", "Stealing"),
])
def test_class_of(path, expected):
    assert class_of(path) == expected


@pytest.mark.parametrize("path", ["Foo/Foo001_x264.mp4", "video.mp4", "Normal/Abnormal001.mp4"])
def test_class_of_unknown_raises(path):
    with pytest.raises(ValueError, match="class"):
        class_of(path)


def test_read_test_annotation_tmp(tmp_path):
    f = tmp_path / "ann.txt"
    f.write_text("Arson/Arson022_x264.mp4 100 Arson 0 40 90 120\n\n"
                 "Testing_Normal_Videos_Anomaly/Normal_Videos_872_x264.mp4 530 Normal -1 -1 -1 -1\n")
    videos = read_test_annotation(f)
    assert videos == [Video("Arson/Arson022_x264.mp4", "Arson", 100, ((1, 40), (90, 100))),
                      Video("Testing_Normal_Videos_Anomaly/Normal_Videos_872_x264.mp4", NORMAL, 530)]


def test_read_test_annotation_malformed(tmp_path):
    f = tmp_path / "broken_annotation.txt"
    f.write_text("Arson/Arson022_x264.mp4 8640 Arson 3500 4000 -1 -1\n"
                 "Arson/Arson023_x264.mp4 8640 Arson 3500 4000\n")
    with pytest.raises(ValueError) as err:
        read_test_annotation(f)
    assert "broken_annotation.txt" in str(err.value)
    assert ":2:" in str(err.value)
