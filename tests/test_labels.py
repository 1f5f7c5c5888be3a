"""The label space and clip-name parsing."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from blemore.errors import BlemoreError
from blemore.labels import (
    EMOTIONS,
    IS_BLEND,
    LABEL_INDEX,
    LABEL_NAMES,
    OTHER,
    PRESENCE_MASKS,
    SOFT_VECTORS,
    VALID_LABELS,
    clip_stem,
    encode_prediction,
    label_by_name,
    labels_to_indices,
    parse_clip_name,
    soft_targets,
)


from tests.support.real_clips import CLIPS_CSV, needs_real_clips  # noqa: E402


def test_label_space():
    assert EMOTIONS == ("ang", "disg", "fea", "hap", "sad", "neu")
    assert len(VALID_LABELS) == 36 == len(set(LABEL_NAMES))
    assert int(IS_BLEND.sum()) == 30
    assert SOFT_VECTORS.shape == (36, 6)
    assert np.allclose(SOFT_VECTORS.sum(axis=1), 1.0)
    assert not SOFT_VECTORS[IS_BLEND, 5].any()  # neutral never blends
    for i, label in enumerate(VALID_LABELS):
        assert LABEL_INDEX[label.name] == i
        assert PRESENCE_MASKS[i] == sum(1 << EMOTIONS.index(e) for e in label.emotions)
        assert label_by_name(label.name) is label
        assert encode_prediction([(d["emotion"], d["salience"]) for d in label.as_prediction()]) == (PRESENCE_MASKS[i], i)
    blends = [sorted(l.salience_map.values()) for l in VALID_LABELS if l.is_blend]
    assert sorted(map(tuple, blends)) == sorted([(50, 50)] * 10 + [(30, 70)] * 20)


def test_label_by_name_any_pair_order():
    assert label_by_name("hap_ang_70_30").name == "ang_hap_30_70"
    with pytest.raises(BlemoreError, match="unknown label 'happy'"):
        label_by_name("happy")
    with pytest.raises(BlemoreError):
        label_by_name("ang_hap_60_40")


def test_encode_prediction_invalid():
    assert encode_prediction([("hap", 60), ("ang", 40)]) == (0b1001, OTHER)
    assert encode_prediction([("hap", 100), ("hap", 100)])[1] == OTHER
    assert encode_prediction([("joy", 100)]) == (0, OTHER)


@given(st.sampled_from(VALID_LABELS), st.integers(1, 4), st.integers(1, 9), st.sampled_from(["", ".mov", ".mp4"]))
def test_parse_generated_names(label, level, version, ext):
    if label.is_blend:
        (e1, s1), (e2, s2) = label.parts
        name = f"A411_mix_{e1}_{e2}_{s1}_{s2}_ver{version}{ext}"
    elif label.name == "neu":
        name = f"A411_neu_sit{level}_ver{version}{ext}"
    else:
        name = f"A411_{label.name}_int{level}_ver{version}{ext}"
    parsed = parse_clip_name("clips/" + name)
    assert parsed.label == label and parsed.actor == "A411" and parsed.version == version
    assert parsed.clip == clip_stem(name)


def test_blend_name_in_reverse_order():
    assert parse_clip_name("A411_mix_hap_ang_70_30_ver1").label.name == "ang_hap_30_70"


def test_anonymised_name():
    parsed = parse_clip_name("test_0001.mov")
    assert (parsed.clip, parsed.label, parsed.actor) == ("test_0001", None, None)


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("A102_angry_int1_ver1", "emotion 'angry'"),
        ("B102_ang_int1_ver1", "actor part 'B102'"),
        ("A102_ang_int5_ver1", "intensity part 'int5'"),
        ("A102_neu_int1_ver1", "situation part 'int1'"),
        ("A102_ang_int1_v1", "version part 'v1'"),
        ("A102_mix_ang_neu_50_50_ver1", "blend emotion 'neu'"),
        ("A102_mix_ang_ang_50_50_ver1", "same emotion 'ang' twice"),
        ("A102_mix_ang_hap_60_40_ver1", "saliences 60/40"),
        ("A102_mix_ang_hap_50_ver1", "7 parts"),
        ("A102_ang", "2 parts"),
    ],
)
def test_malformed_names_say_which_part(name, fragment):
    with pytest.raises(BlemoreError, match=f"clip name '{name}': .*{fragment}"):
        parse_clip_name(name)


def test_indices_and_soft_targets():
    idx = labels_to_indices(["ang", VALID_LABELS[14], "hap_ang_70_30"])
    assert idx.tolist() == [0, 14, 14]
    assert soft_targets(idx)[1].tolist() == [0.3, 0, 0, 0.7, 0, 0]


@needs_real_clips
def test_every_real_clip_name_parses_to_its_columns():
    with open(CLIPS_CSV, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3050
    counts = np.zeros(36, dtype=int)
    for row in rows:
        parsed = parse_clip_name(row["filename"])
        assert parsed.actor == row["actor"]
        if row["emotion_2"]:
            want = {row["emotion_1"]: int(row["emotion_1_salience"]), row["emotion_2"]: int(row["emotion_2_salience"])}
        else:
            want = {row["emotion_1"]: 100}
        assert parsed.label.salience_map == want
        counts[LABEL_INDEX[parsed.label.name]] += 1
    assert (counts > 0).all()
