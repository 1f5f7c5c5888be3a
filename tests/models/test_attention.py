"""Attention fusion: packing frame sequences, training, and a trained model saved and loaded as plain arrays."""

from __future__ import annotations

import numpy as np
import pytest

from blemore.errors import BlemoreError
from blemore.labels import SOFT_VECTORS
from blemore.models.attention import AttentionConfig, AttentionState, fit_attention, pack_sequences
from blemore.models.trainer import Member


def _packed(n=24, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 36, n)
    seqs = [[(rng.normal(size=(int(rng.integers(3, 12)), d)) + SOFT_VECTORS[l, :1] * 3).astype(np.float32)
             for l in labels] for d in (3, 5)]
    return pack_sequences(seqs, max_frames=6), SOFT_VECTORS[labels].astype(np.float32)


def test_a_trained_model_round_trips_through_plain_arrays():
    packed, T = _packed()
    cfg = AttentionConfig(epochs=2, max_frames=6, d_model=16, heads=2)
    outs, state = fit_attention(packed, T, Member(np.arange(16), np.arange(16, 24), seed=3), config=cfg)
    assert outs.shape == (2, 8, 6)
    arrays = state.to_arrays()
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in arrays.values())
    again = AttentionState.from_arrays(state.settings(), arrays)
    probs = again.predict(packed)
    np.testing.assert_allclose(probs[16:], outs[-1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)


def test_damaged_weights_are_refused():
    packed, T = _packed()
    cfg = AttentionConfig(epochs=1, max_frames=6, d_model=16, heads=2)
    _, state = fit_attention(packed, T, Member(np.arange(16), np.arange(16, 24), seed=3), config=cfg)
    arrays = state.to_arrays()
    arrays.pop(next(k for k in arrays if k.startswith("weights/")))
    with pytest.raises(BlemoreError, match="do not fit its architecture"):
        AttentionState.from_arrays(state.settings(), arrays)
    with pytest.raises(BlemoreError, match="settings are incomplete"):
        AttentionState.from_arrays({"dims": [3, 5]}, state.to_arrays(), source="m.npz")
