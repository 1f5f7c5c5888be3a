"""Metadata in the official layout, folds from clip names, actor-disjointness."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blemore.data.folds import actor_folds
from blemore.data.metadata import (
    OFFICIAL_COLUMNS,
    check_actor_disjoint,
    check_folds,
    metadata_from_names,
    read_metadata,
    write_metadata,
)
from blemore.errors import BlemoreError


from tests.support.real_clips import CLIPS_CSV, needs_real_clips  # noqa: E402
CLIPS = CLIPS_CSV


def _official(tmp_path: Path, rows: list[dict]) -> Path:
    p = tmp_path / "meta.csv"
    pd.DataFrame(rows).to_csv(p, index=False)
    return p


ROW_SINGLE = dict(filename="A102_ang_int1_ver1", video_id="A102", fold=0, mix=0, emotion_1="ang",
                  emotion_2=None, emotion_1_salience=100, emotion_2_salience=None)
ROW_BLEND = dict(filename="A103_mix_ang_hap_30_70_ver1", video_id="A103", fold=1, mix=1, emotion_1="ang",
                 emotion_2="hap", emotion_1_salience=30, emotion_2_salience=70)


def test_read_official_rows(tmp_path):
    df = read_metadata(_official(tmp_path, [ROW_SINGLE, ROW_BLEND]))
    assert list(df.columns) == ["filename", "actor", "fold", "label", "label_index"]
    assert df["label"].tolist() == ["ang", "ang_hap_30_70"]
    assert df["actor"].tolist() == ["A102", "A103"]
    assert df["fold"].tolist() == [0, 1]
    assert str(df["fold"].dtype) == "Int64"


def test_saliences_as_fractions(tmp_path):
    rows = [dict(ROW_SINGLE, emotion_1_salience=1.0), dict(ROW_BLEND, emotion_1_salience=0.3, emotion_2_salience=0.7)]
    assert read_metadata(_official(tmp_path, rows))["label"].tolist() == ["ang", "ang_hap_30_70"]


def test_label_contradicting_name(tmp_path):
    bad = dict(ROW_BLEND, emotion_1_salience=70, emotion_2_salience=30)
    with pytest.raises(BlemoreError, match="A103_mix_ang_hap_30_70_ver1.*'ang_hap_70_30'.*clip name says 'ang_hap_30_70'"):
        read_metadata(_official(tmp_path, [ROW_SINGLE, bad]))


def test_invalid_label(tmp_path):
    bad = dict(ROW_BLEND, filename="clip9", emotion_1_salience=60, emotion_2_salience=40)
    with pytest.raises(BlemoreError, match="row 3 .*not one of the 36 valid labels"):
        read_metadata(_official(tmp_path, [ROW_SINGLE, bad]))


def test_anonymous_test_clips_have_no_label(tmp_path):
    rows = [dict(filename="test_0001.mov", video_id=None, fold=None, mix=None, emotion_1=None, emotion_2=None,
                 emotion_1_salience=None, emotion_2_salience=None)]
    df = read_metadata(_official(tmp_path, rows))
    assert df["filename"].tolist() == ["test_0001"]
    assert df["label"].tolist() == [None] and df["label_index"].isna().all() and df["fold"].isna().all()


@needs_real_clips
def test_roundtrip_real_clip_list(tmp_path):
    real = pd.read_csv(CLIPS)
    train = real[real.partition == "train"].rename(columns={"actor": "video_id"})[list(OFFICIAL_COLUMNS)]
    p = tmp_path / "train.csv"
    train.to_csv(p, index=False)
    df = read_metadata(p)
    assert len(df) == 2456 and df["label"].notna().all()
    write_metadata(df, tmp_path / "again.csv")
    assert list(pd.read_csv(tmp_path / "again.csv").columns) == list(OFFICIAL_COLUMNS)
    again = read_metadata(tmp_path / "again.csv")
    pd.testing.assert_frame_equal(df, again)
    assert check_folds(df).tolist() == [0, 1, 2, 3, 4]


def test_fold_without_clips(tmp_path):
    rows = [ROW_SINGLE, dict(ROW_BLEND, fold=2)]
    with pytest.raises(BlemoreError, match=r"fold\(s\) 1 have no clips"):
        check_folds(read_metadata(_official(tmp_path, rows)), source="meta.csv")


def test_missing_columns(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("name,fold\na,1\n")
    with pytest.raises(BlemoreError, match="no 'filename' column"):
        read_metadata(p)


@needs_real_clips
def test_metadata_from_names_real_list():
    names = pd.read_csv(CLIPS).query("partition == 'train'")["filename"].tolist()
    a = metadata_from_names(names, n_folds=5, seed=3)
    b = metadata_from_names(names, n_folds=5, seed=3)
    pd.testing.assert_frame_equal(a, b)
    # actor-disjoint
    assert (a.groupby("actor")["fold"].nunique() == 1).all()
    sizes = a.groupby("fold").size()
    per_actor = a.groupby("actor").size()
    assert len(sizes) == 5 and sizes.max() - sizes.min() <= per_actor.max()
    assert a["label"].notna().all()


def test_metadata_from_names_rejects_anonymous():
    with pytest.raises(BlemoreError, match="carry no actor"):
        metadata_from_names(["A1_ang_int1_ver1", "test_0001"], n_folds=2)


@settings(max_examples=40, deadline=None)
@given(
    counts=st.lists(st.integers(1, 30), min_size=3, max_size=25),
    n_folds=st.integers(2, 5),
    seed=st.integers(0, 1000),
)
def test_actor_folds_properties(counts, n_folds, seed):
    actors = np.repeat([f"A{i}" for i in range(len(counts))], counts)
    if len(counts) < n_folds:
        with pytest.raises(BlemoreError, match="actor"):
            actor_folds(actors, n_folds=n_folds, seed=seed)
        return
    folds = actor_folds(actors, n_folds=n_folds, seed=seed)
    assert set(folds.tolist()) == set(range(n_folds))  # no empty fold
    for a in set(actors):  # no actor on two folds
        assert len(set(folds[actors == a].tolist())) == 1
    sizes = np.bincount(folds, minlength=n_folds)
    assert sizes.max() - sizes.min() <= max(counts)  # balanced within one actor
    assert np.array_equal(folds, actor_folds(actors, n_folds=n_folds, seed=seed))


# --------------------------------------------------------------------------- saliences that are not there


def test_missing_salience_column_is_named_not_invented(tmp_path):
    rows = [dict(ROW_SINGLE), dict(ROW_BLEND)]
    for row in rows:
        del row["emotion_2_salience"]
    with pytest.raises(BlemoreError, match=r"no column 'emotion_2_salience', which the blends need \(1 row\(s\), "
                       r"e.g. row 3, clip 'A103_mix_ang_hap_30_70_ver1'\)") as info:
        read_metadata(_official(tmp_path, rows))
    assert "50" not in str(info.value).replace(str(tmp_path), "")  # no invented salience (the path may hold digits)
    for row in rows:
        del row["emotion_1_salience"]
    with pytest.raises(BlemoreError, match="no column 'emotion_1_salience' or 'emotion_2_salience'"):
        read_metadata(_official(tmp_path, rows))


def test_singles_need_no_salience_column(tmp_path):
    row = {k: v for k, v in ROW_SINGLE.items() if "salience" not in k}
    assert read_metadata(_official(tmp_path, [row]))["label"].tolist() == ["ang"]


def test_blend_with_an_empty_salience_is_named(tmp_path):
    rows = [ROW_SINGLE, dict(ROW_BLEND, emotion_2_salience=None)]
    with pytest.raises(BlemoreError, match=r"row 3 \(clip 'A103_mix_ang_hap_30_70_ver1'\): the blend ang/hap has no "
                       "emotion_2_salience"):
        read_metadata(_official(tmp_path, rows))


# --------------------------------------------------------------------------- actors


def test_one_actor_in_two_folds_is_refused(tmp_path):
    rows = [ROW_SINGLE, dict(ROW_BLEND, filename="A102_mix_ang_hap_30_70_ver1", video_id="A102", fold=1),
            dict(ROW_SINGLE, filename="A104_ang_int1_ver1", video_id="A104", fold=1)]
    with pytest.raises(BlemoreError, match=r"meta.csv: actor 'A102' is in folds 0, 1 \(e.g. clips 'A102_ang_int1_ver1', "
                       r"'A102_mix_ang_hap_30_70_ver1'\); folds must be actor-disjoint"):
        check_folds(read_metadata(_official(tmp_path, rows)), source="meta.csv")


def test_test_actors_must_not_be_training_actors():
    train = metadata_from_names(["A1_ang_int1_ver1", "A2_hap_int1_ver1", "A3_sad_int1_ver1"], n_folds=2)
    test = metadata_from_names(["A4_sad_int1_ver1", "A5_sad_int1_ver1"], n_folds=2)
    check_actor_disjoint(train, test)
    leaky = metadata_from_names(["A2_sad_int1_ver1", "A2_ang_int2_ver1", "A5_sad_int1_ver1"], n_folds=2)
    with pytest.raises(BlemoreError, match=r"test.csv: 2 test clip\(s\) by training actor\(s\) A2 "
                       r"\(e.g. 'A2_sad_int1_ver1'\); test actors must not appear in training"):
        check_actor_disjoint(train, leaky, source="test.csv")


def test_anonymised_test_clips_pass_the_actor_check(tmp_path):
    train = metadata_from_names(["A1_ang_int1_ver1", "A2_hap_int1_ver1"], n_folds=2)
    rows = [dict(filename="test_0001.mov", video_id=None, fold=None, mix=None, emotion_1=None, emotion_2=None,
                 emotion_1_salience=None, emotion_2_salience=None)]
    check_actor_disjoint(train, read_metadata(_official(tmp_path, rows)))
