"""The official OpenFace preprocessing, against a plain pandas reimplementation of the official scripts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blemore.errors import BlemoreError
from blemore.features.openface import OFFICIAL_COLUMNS, interpolate_forward, official_frames, openface_columns
from tests.support.official_openface import official_reference


def _frame(values: np.ndarray, success: np.ndarray, confidence: np.ndarray) -> pd.DataFrame:
    columns = [f"f{j}" for j in range(values.shape[1])]
    df = pd.DataFrame(values, columns=columns)
    df["success"], df["confidence"] = success, confidence
    return df


@st.composite
def clips(draw):
    """A clip's frames: a share of bad frames (failed, or under the confidence threshold), placed anywhere."""
    t = draw(st.integers(1, 40))
    d = draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    p_failed = draw(st.sampled_from([0.0, 0.05, 0.1, 0.2, 1.0]))
    p_unsure = draw(st.sampled_from([0.0, 0.05, 0.1, 0.2, 0.5, 1.0]))
    values = rng.normal(size=(t, d)).round(3)
    if draw(st.booleans()):
        values[rng.random((t, d)) < 0.05] = np.nan  # values OpenFace left empty
    success = (rng.random(t) >= p_failed).astype(int)
    confidence = np.where(rng.random(t) < p_unsure, rng.choice([0.0, 0.5, 0.8499], t),
                          rng.choice([0.85, 0.9, 0.98], t))
    if draw(st.booleans()):  # a gap at the start and/or the end
        k = draw(st.integers(1, max(1, t // 3)))
        confidence[:k] = 0.3 if draw(st.booleans()) else confidence[:k]
        confidence[-k:] = 0.3 if draw(st.booleans()) else confidence[-k:]
    return values, success, confidence


@settings(max_examples=300, deadline=None)
@given(clips())
def test_official_frames_match_the_official_scripts(clip):
    values, success, confidence = clip
    got, good = official_frames(values, success=success, confidence=confidence)
    df = _frame(values, success, confidence)
    ref = official_reference(df, [c for c in df.columns if c.startswith("f")])
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, ref)
    assert good == pytest.approx(np.mean((success == 1) & (confidence >= 0.85)))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.floats(-1e3, 1e3)), min_size=1, max_size=30))
def test_interpolation_is_pandas_linear_interpolation(column):
    x = np.array([np.nan if v is None else v for v in column], dtype=np.float64)[:, None]
    ref = pd.DataFrame(x).interpolate(method="linear").to_numpy()
    np.testing.assert_allclose(interpolate_forward(x), ref, rtol=1e-12, atol=1e-9, equal_nan=True)


def test_edge_cases():
    v = np.arange(10.0)[:, None] * [1.0, -1.0]
    ok = np.ones(10, int)
    # 1 of 10 frames unsure (ratio 0.9): the first frame is dropped, a trailing one repeats its neighbour
    conf = np.full(10, 0.9)
    conf[0] = 0.1
    got, good = official_frames(v, success=ok, confidence=conf)
    np.testing.assert_array_equal(got, v[1:])
    assert good == 0.9
    conf = np.full(10, 0.9)
    conf[-1] = 0.1
    got, _ = official_frames(v, success=ok, confidence=conf)
    np.testing.assert_array_equal(got[-1], v[-2])
    # every frame unsure but every frame successful: the official script keeps the clip as it is
    got, good = official_frames(v, success=ok, confidence=np.full(10, 0.2))
    np.testing.assert_array_equal(got, v)
    assert good == 0.0
    # 9 of 10 successful and none confident: everything is interpolated away -> one row of zeros
    failed = ok.copy()
    failed[3] = 0
    got, _ = official_frames(v, success=failed, confidence=np.full(10, 0.2))
    np.testing.assert_array_equal(got, np.zeros((1, 2), np.float32))
    with pytest.raises(BlemoreError, match="no frames"):
        official_frames(np.zeros((0, 2)), success=np.zeros(0), confidence=np.zeros(0))


def test_official_columns():
    assert len(OFFICIAL_COLUMNS) == 31 and OFFICIAL_COLUMNS[:2] == ("AU01_r", "AU02_r")
    assert OFFICIAL_COLUMNS[17:23] == ("pose_Rx", "pose_Ry", "pose_Rz", "pose_Tx", "pose_Ty", "pose_Tz")
    assert openface_columns(["AU01_r", "gaze_0_x"], "official") == list(OFFICIAL_COLUMNS)
    assert openface_columns(["AU01_r", "AU01_c", "gaze_0_x", "pose_Rx"]) == ["gaze_0_x", "pose_Rx", "AU01_r", "AU01_c"]
    with pytest.raises(BlemoreError, match="no AU columns"):
        openface_columns(["a", "b"], "official")
