"""Statistics over actors: outcomes, bootstrap intervals, paired tests."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blemore.errors import BlemoreError
from blemore.labels import N_LABELS
from blemore.metrics import reduce_counts, score_indices
from blemore.protocol.stats import bootstrap_ci, outcomes, paired_test

def _random_outcomes(rng, n_actors=12, per_actor=20, p_right=0.5):
    truth = rng.integers(0, N_LABELS, size=n_actors * per_actor)
    pred = np.where(rng.random(truth.size) < p_right, truth, rng.integers(0, N_LABELS, size=truth.size))
    groups = np.repeat([f"A{i}" for i in range(n_actors)], per_actor)
    return truth, pred, groups


def test_outcomes_match_metrics():
    rng = np.random.default_rng(1)
    truth, pred, groups = _random_outcomes(rng)
    pred[:5] = -1  # "other"
    r = bootstrap_ci(outcomes(truth, pred, groups), n_boot=50)
    s = score_indices(truth, pred)
    assert r["acc_presence"] == pytest.approx(s.acc_presence)
    assert r["acc_salience"] == pytest.approx(s.acc_salience)
    assert r["score"] == pytest.approx(s.score)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n_actors=st.integers(3, 15), p=st.floats(0.05, 0.95))
def test_bootstrap_interval_contains_point(seed, n_actors, p):
    rng = np.random.default_rng(seed)
    truth, pred, groups = _random_outcomes(rng, n_actors=n_actors, per_actor=36, p_right=p)
    r = bootstrap_ci(outcomes(truth, pred, groups), n_boot=400, seed=seed)
    for name in ("score", "acc_presence"):
        assert r[f"{name}_low"] <= r[name] + 1e-9
        assert r[name] <= r[f"{name}_high"] + 1e-9


def test_bootstrap_is_over_actors_not_clips():
    # Every actor all right or all wrong: the interval over actors is much wider than a clip bootstrap would be.
    truth = np.repeat(np.arange(10), 30) % N_LABELS
    pred = truth.copy()
    pred[150:] = (truth[150:] + 1) % N_LABELS
    groups = np.repeat([f"A{i}" for i in range(10)], 30)
    r = bootstrap_ci(outcomes(truth, pred, groups), n_boot=1000)
    assert r["acc_presence_high"] - r["acc_presence_low"] > 0.4


def test_paired_test_against_itself():
    rng = np.random.default_rng(2)
    truth, pred, groups = _random_outcomes(rng)
    oc = outcomes(truth, pred, groups)
    r = paired_test(oc, oc, n_boot=200, n_perm=200)
    assert r.diff == 0.0 and r.ci_low == 0.0 and r.ci_high == 0.0 and r.p_value == 1.0


def test_paired_test_detects_a_clear_difference():
    rng = np.random.default_rng(3)
    truth, _, groups = _random_outcomes(rng, n_actors=15)
    good = outcomes(truth, truth, groups)
    bad = outcomes(truth, (truth + 1) % N_LABELS, groups)
    r = paired_test(good, bad, n_boot=300, n_perm=500)
    assert r.diff > 0.5 and r.ci_low > 0 and r.p_value < 0.01
    r2 = paired_test(bad, good, n_boot=300, n_perm=500)
    assert r2.diff == pytest.approx(-r.diff) and r2.ci_high < 0


def test_paired_test_needs_the_same_clips():
    rng = np.random.default_rng(4)
    truth, pred, groups = _random_outcomes(rng)
    a = outcomes(truth, pred, groups)
    b = outcomes(truth[::-1], pred, groups)
    with pytest.raises(BlemoreError, match="same clips"):
        paired_test(a, b)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 60))
def test_the_counts_reduce_is_the_metrics_reduce(seed, n):
    """Summed outcome counts reduce to exactly what the challenge metrics give on the same clips."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, N_LABELS, size=n)
    pred = np.where(rng.random(n) < 0.5, truth, rng.integers(-1, N_LABELS, size=n))
    c = outcomes(truth, pred, ["a"] * n).counts().sum(axis=0)
    s = score_indices(truth, pred)
    assert reduce_counts(c).tolist() == [s.acc_presence, s.acc_salience, s.score]
