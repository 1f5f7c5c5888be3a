"""Actors: per-actor standardisation, pseudo-actors of anonymised clips, and how well they are found."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import adjusted_rand_score

from blemore.errors import BlemoreError
from blemore.protocol.actors import (
    actor_standardise,
    adjusted_rand_index,
    discover_actors,
    discovery_agreement,
    emotion_directions,
    estimate_actor_count,
    kmeans,
)
from tests.support.planted import planted


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=2, max_size=40), st.integers(0, 10_000))
def test_adjusted_rand_index_equals_scikit_learns(labels, seed):
    other = np.random.default_rng(seed).integers(0, 3, size=len(labels))
    assert adjusted_rand_index(labels, other) == pytest.approx(adjusted_rand_score(labels, other), abs=1e-12)
    assert adjusted_rand_index(labels, labels) == pytest.approx(1.0)


def test_actor_standardise_refuses_a_missing_actor():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3)) + np.repeat(rng.normal(scale=50, size=(3, 3)), 10, axis=0)
    Z = actor_standardise(X, np.repeat(["a", "b", "c"], 10).tolist())
    for i in range(3):
        np.testing.assert_allclose(Z[i * 10 : (i + 1) * 10].mean(axis=0), 0, atol=1e-5)
        np.testing.assert_allclose(Z[i * 10 : (i + 1) * 10].std(axis=0), 1, atol=1e-4)
    with pytest.raises(BlemoreError, match=r"1 row\(s\) have no actor \(e.g. row 29\)"):
        actor_standardise(X, np.repeat(["a", "b", "c"], 10).tolist()[:-1] + [None])


def test_kmeans_separates_separated_clusters():
    rng = np.random.default_rng(1)
    centres = rng.normal(scale=20, size=(4, 5))
    X = np.concatenate([c + rng.normal(size=(25, 5)) for c in centres])
    truth = np.repeat(np.arange(4), 25)
    assert adjusted_rand_index(kmeans(X, 4, seed=0), truth) == 1.0
    with pytest.raises(BlemoreError, match="cannot make 5 clusters of 3 clips"):
        kmeans(X[:3], 5)


def test_estimate_actor_count():
    assert estimate_actor_count(594, [54, 52, 53, 60]) == 11
    assert estimate_actor_count(10, [54]) == 1
    with pytest.raises(BlemoreError, match="no training actor"):
        estimate_actor_count(10, [])


def test_projecting_out_the_emotions_finds_the_actors(tmp_path):
    """Actor offsets hidden under a stronger emotion signal: found once the emotion directions are removed."""
    d = planted(tmp_path, n_actors=15, n_test_actors=4, dim=50, signal=2.0, actor_sd=1.0)
    X = np.load(d["sources"]["s0"])["X"].astype(np.float64)
    actors = np.array([n.split("_")[0] for n in d["names"]])
    train, test = ~d["is_test"], d["is_test"]
    agreement = discovery_agreement(X[train], actors[train], d["labels"][train], d["folds"][train])
    assert [a["k"] for a in agreement] == [3] * 5
    assert np.mean([a["ari"] for a in agreement]) > 0.8
    found = discover_actors(X[test], k=4, directions=emotion_directions(X[train], d["labels"][train]))
    without = discover_actors(X[test], k=4, directions=None)
    assert adjusted_rand_index(found, actors[test]) > 0.8 > adjusted_rand_index(without, actors[test])
