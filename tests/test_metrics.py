"""Metrics against a plain dictionary implementation of the challenge's scorer."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blemore.errors import BlemoreError
from blemore.labels import EMOTIONS, IS_BLEND, LABEL_INDEX, N_LABELS, OTHER, VALID_LABELS
from blemore.metrics import (
    INVALID_MASK,
    PAIR_GROUPS,
    SALIENCE_GROUPS,
    UNKNOWN_EMOTION_BIT,
    accuracy_presence,
    accuracy_salience,
    breakdown_by_emotion,
    breakdown_by_pair,
    breakdown_by_salience,
    confusion_matrix,
    prediction_code,
    salience_value,
    score_codes,
    score_indices,
)


def plain_scores(truth: list[dict[str, int]], pred: list[list[dict]]) -> tuple[float, float]:
    """The challenge's scorer, written from its description."""
    n_pres = n_sal = n_blend = 0
    for t, p in zip(truth, pred):
        pmap = {e["emotion"]: round(e["salience"]) for e in p}
        n_pres += {e["emotion"] for e in p} == set(t)
        if len(t) == 2:
            n_blend += 1
            n_sal += len(p) == 2 and pmap == t
    return n_pres / len(truth), (n_sal / n_blend if n_blend else 0.0)


_labels = st.integers(0, N_LABELS - 1)
_entry = st.fixed_dictionaries(
    {
        "emotion": st.sampled_from(list(EMOTIONS) + ["angry"]),
        "salience": st.sampled_from([100, 70, 30, 50, 50.4, 69.6, 60, 40, 0]),
    }
)


@settings(max_examples=200, deadline=None)
@given(truth=st.lists(_labels, min_size=1, max_size=30), data=st.data())
def test_score_indices_matches_plain_scorer(truth, data):
    pred = data.draw(st.lists(_labels, min_size=len(truth), max_size=len(truth)))
    s = score_indices(truth, pred)
    want = plain_scores([VALID_LABELS[t].salience_map for t in truth], [VALID_LABELS[p].as_prediction() for p in pred])
    assert (s.acc_presence, s.acc_salience) == want
    assert s.score == 0.5 * want[0] + 0.5 * want[1]
    assert (accuracy_presence(truth, pred), accuracy_salience(truth, pred)) == want
    assert s.n_clips == len(truth) and s.n_blends == int(IS_BLEND[truth].sum())


@settings(max_examples=200, deadline=None)
@given(truth=st.lists(_labels, min_size=1, max_size=20), data=st.data())
def test_score_codes_matches_plain_scorer_on_any_entries(truth, data):
    preds = data.draw(st.lists(st.lists(_entry, max_size=3), min_size=len(truth), max_size=len(truth)))
    codes = [prediction_code(p) for p in preds]
    s = score_codes(truth, [c[0] for c in codes], [c[1] for c in codes])
    want = plain_scores([VALID_LABELS[t].salience_map for t in truth], preds)
    assert (s.acc_presence, s.acc_salience) == want


def test_prediction_code():
    assert prediction_code([{"emotion": "hap", "salience": 70}, {"emotion": "ang", "salience": 30}]) == (
        0b1001,
        LABEL_INDEX["ang_hap_30_70"],
    )
    assert prediction_code([{"emotion": "hap", "salience": 69.6}, {"emotion": "ang", "salience": 30.2}])[1] == (
        LABEL_INDEX["ang_hap_30_70"]
    )
    assert prediction_code([{"emotion": "hap", "salience": 60}, {"emotion": "ang", "salience": 40}]) == (0b1001, OTHER)
    assert prediction_code([{"emotion": "hap", "salience": 100}, {"emotion": "hap", "salience": 100}]) == (
        0b1000,
        OTHER,
    )
    assert prediction_code([{"emotion": "x", "salience": 100}]) == (UNKNOWN_EMOTION_BIT, OTHER)
    assert prediction_code([]) == (0, OTHER)
    assert prediction_code("hap") == (INVALID_MASK, OTHER)
    # as the challenge's scorer: presence never reads saliences; salience reads round(float(s))
    assert prediction_code([{"emotion": "hap", "salience": "100"}]) == (0b1000, LABEL_INDEX["hap"])
    assert prediction_code([{"emotion": "hap"}]) == (0b1000, LABEL_INDEX["hap"])
    assert prediction_code([{"emotion": "hap", "salience": None}]) == (0b1000, LABEL_INDEX["hap"])
    assert prediction_code([{"emotion": "hap", "salience": "70"}, {"emotion": "ang", "salience": " 30.0 "}]) == (
        0b1001,
        LABEL_INDEX["ang_hap_30_70"],
    )
    assert prediction_code([{"emotion": "hap", "salience": "x"}, {"emotion": "ang", "salience": 30}]) == (0b1001, OTHER)
    assert prediction_code([{"emotion": "hap", "salience": float("nan")}, {"emotion": "ang", "salience": 30}]) == (
        0b1001,
        OTHER,
    )
    assert prediction_code([{"salience": 100}]) == (INVALID_MASK, OTHER)
    assert prediction_code([["hap", 100]]) == (INVALID_MASK, OTHER)
    assert prediction_code([{"emotion": 3, "salience": 100}]) == (UNKNOWN_EMOTION_BIT, OTHER)


def test_salience_value_reads_like_the_scorer():
    assert [salience_value(v) for v in (70, 69.5, 70.5, "70", " 30 ", "7e1", True)] == [70, 70, 70, 70, 30, 70, 1]
    assert [salience_value(v) for v in (None, "abc", "", float("nan"), float("inf"), [70], {"a": 1})] == [None] * 7


def test_no_blend_truth_gives_zero_salience():
    s = score_indices([0, 1, 2], [0, 1, 3])
    assert s.acc_salience == 0.0 and s.n_blends == 0
    assert s.score == pytest.approx(0.5 * 2 / 3)


def test_other_predictions_are_wrong():
    truth = [LABEL_INDEX["ang"], LABEL_INDEX["ang_hap_50_50"]]
    s = score_indices(truth, [OTHER, OTHER])
    assert (s.acc_presence, s.acc_salience) == (0.0, 0.0)


def test_salience_needs_the_exact_label():
    t = LABEL_INDEX["ang_hap_30_70"]
    assert accuracy_salience([t], [LABEL_INDEX["ang_hap_70_30"]]) == 0.0
    assert accuracy_presence([t], [LABEL_INDEX["ang_hap_70_30"]]) == 1.0
    assert accuracy_salience([t], [t]) == 1.0


@settings(max_examples=50, deadline=None)
@given(truth=st.lists(_labels, min_size=1, max_size=40), data=st.data())
def test_confusion_matrix(truth, data):
    pred = data.draw(st.lists(st.integers(-1, N_LABELS - 1), min_size=len(truth), max_size=len(truth)))
    cm = confusion_matrix(truth, pred)
    assert cm.shape == (36, 37) and cm.sum() == len(truth)
    for t, p in zip(truth, pred):
        assert cm[t, 36 if p == OTHER else p] >= 1
    assert np.trace(cm[:, :36]) == sum(t == p for t, p in zip(truth, pred))
    assert cm[:, 36].sum() == pred.count(OTHER)


def test_breakdowns_agree_with_totals():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, N_LABELS, 300)
    pred = np.where(rng.random(300) < 0.5, truth, rng.integers(-1, N_LABELS, 300))
    total = score_indices(truth, pred)
    for rows, names in ((breakdown_by_salience(truth, pred), SALIENCE_GROUPS), (breakdown_by_pair(truth, pred), PAIR_GROUPS)):
        assert [r["group"] for r in rows] == list(names)
        assert sum(r["n"] for r in rows) == 300
        n_right = sum(r["acc_presence"] * r["n"] for r in rows if r["n"])
        assert n_right == pytest.approx(total.acc_presence * 300)
        n_blend_right = sum(r["acc_salience"] * r["n"] for r in rows if r["acc_salience"] is not None)
        assert n_blend_right == pytest.approx(total.acc_salience * total.n_blends)
    emo = breakdown_by_emotion(truth, pred)
    assert [r["group"] for r in emo] == list(EMOTIONS)
    for k, row in enumerate(emo):
        has = np.array([EMOTIONS[k] in VALID_LABELS[t].emotions for t in truth])
        hit = np.array([p != OTHER and EMOTIONS[k] in VALID_LABELS[p].emotions for p in pred])
        assert row["n"] == has.sum()
        assert row["recall"] == pytest.approx(hit[has].mean())


def test_breakdown_empty_groups_are_none():
    rows = breakdown_by_salience([0], [0])
    assert rows[0] == {"group": "single", "n": 1, "acc_presence": 1.0, "acc_salience": None}
    assert rows[1]["n"] == 0 and rows[1]["acc_presence"] is None


@pytest.mark.parametrize(
    ("truth", "pred", "message"),
    [
        ([0, 1], [0], "differ in length"),
        ([0, 36], [0, 0], r"truth\[1\] = 36"),
        ([0, -1], [0, 0], r"truth\[1\] = -1"),
        ([0], [37], r"predictions\[0\] = 37"),
        ([0.5], [0], "integer"),
        ([[0]], [[0]], "1-d"),
    ],
)
def test_bad_indices(truth, pred, message):
    with pytest.raises(BlemoreError, match=message):
        score_indices(truth, pred)
