"""Actors of clips: per-actor standardisation, and pseudo-actors for clips whose actor is unknown.

Methods that use the actor (``actor-norm``) need one for every clip. The anonymised test
partition (``test_0001`` ...) has none, so its clips are grouped into *pseudo-actors* by
:func:`discover_actors`:

1. the clip features are standardised; the directions along which the *emotions* differ
   (the principal directions of the 36 label centroids, learned on labelled training clips)
   are projected out, so that what is left is mostly who is acting;
2. the rest is reduced to its leading principal components and clustered by k-means
   (k-means++ starts, the best of several);
3. the number of actors is given, or estimated from the clip count: BLEMORE actors each play
   the same set of clips, so ``k = round(n clips / median clips per training actor)``.

How well this finds actors is measured where the truth is known: :func:`discovery_agreement`
runs the same procedure on each training fold (emotion directions learned on the other
folds) and reports the adjusted Rand index against the true actors (1 = the actors exactly,
0 = chance).

>>> X = np.array([[1.0], [3.0], [10.0], [30.0]])
>>> actor_standardise(X, ["a", "a", "b", "b"]).ravel().tolist()
[-1.0, 1.0, -1.0, 1.0]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from blemore.errors import BlemoreError

__all__ = [
    "actor_standardise",
    "is_missing_actor",
    "emotion_directions",
    "kmeans",
    "adjusted_rand_index",
    "ActorDiscovery",
    "discover_actors",
    "estimate_actor_count",
    "discovery_agreement",
]


def is_missing_actor(actor: object) -> bool:
    """None, NaN, pandas' NA or an empty string."""
    if actor is None or (isinstance(actor, float) and np.isnan(actor)):
        return True
    if isinstance(actor, str):
        return not actor.strip()
    return str(actor) in ("<NA>", "nan")


def actor_standardise(X: np.ndarray, actors: Sequence[object]) -> np.ndarray:
    """Standardise the rows of each actor by that actor's own mean and std (ddof=0; std 0 -> 1).

    Every row needs an actor; a missing one is an error (give the actors, or discover
    pseudo-actors first). Only features are used, never labels, so test clips may be
    standardised with their own actor's (unlabelled) clips.
    """
    X = np.asarray(X, dtype=np.float64)
    keys = np.array([str(a) for a in actors], dtype=object)
    if len(keys) != X.shape[0]:
        raise BlemoreError(f"actor_standardise: {len(keys)} actors for {X.shape[0]} rows")
    missing = [i for i, a in enumerate(actors) if is_missing_actor(a)]
    if missing:
        raise BlemoreError(f"actor_standardise: {len(missing)} row(s) have no actor (e.g. row {missing[0]})")
    out = np.empty_like(X)
    for a in dict.fromkeys(keys):
        sel = keys == a
        mu = X[sel].mean(axis=0)
        sd = X[sel].std(axis=0)
        out[sel] = (X[sel] - mu) / np.where(sd > 0, sd, 1.0)
    return out.astype(np.float32)


def _standardise(X: np.ndarray, mean: np.ndarray | None = None, scale: np.ndarray | None = None):
    X = np.asarray(X, dtype=np.float64)
    mean = X.mean(axis=0) if mean is None else mean
    scale = X.std(axis=0) if scale is None else scale
    scale = np.where(scale > 0, scale, 1.0)
    return (X - mean) / scale, mean, scale


def emotion_directions(X: np.ndarray, labels: np.ndarray, *, max_dims: int = 35) -> np.ndarray:
    """Orthonormal directions ``(D, r)`` spanned by the label centroids of standardised ``X`` (r <= max_dims).

    Projecting them out leaves the variation that is not about the emotion label.
    """
    Z, _, _ = _standardise(X)
    labels = np.asarray(labels)
    cents = np.stack([Z[labels == c].mean(axis=0) for c in np.unique(labels)])
    cents -= cents.mean(axis=0)
    if not np.any(cents):
        return np.zeros((Z.shape[1], 0))
    _, s, vt = np.linalg.svd(cents, full_matrices=False)
    keep = int(min(max_dims, np.sum(s > s[0] * 1e-6)))
    return vt[:keep].T


def kmeans(X: np.ndarray, k: int, *, seed: int = 0, n_init: int = 10, max_iter: int = 100) -> np.ndarray:
    """Cluster labels ``(n,)`` of k-means (k-means++ starts, the lowest inertia of ``n_init`` runs)."""
    X = np.asarray(X, dtype=np.float64)
    n = X.shape[0]
    if not 1 <= k <= n:
        raise BlemoreError(f"cannot make {k} clusters of {n} clips")
    rng = np.random.default_rng(seed)
    sq = (X**2).sum(axis=1)
    best, best_inertia = np.zeros(n, dtype=np.int64), np.inf
    for _ in range(n_init):
        centres = [X[rng.integers(n)]]
        for _ in range(1, k):
            d2 = np.min(sq[:, None] - 2 * X @ np.array(centres).T + (np.array(centres) ** 2).sum(axis=1)[None], axis=1)
            d2 = np.clip(d2, 0, None)
            p = d2 / d2.sum() if d2.sum() > 0 else np.full(n, 1.0 / n)
            centres.append(X[rng.choice(n, p=p)])
        C = np.array(centres)
        labels = np.zeros(n, dtype=np.int64)
        for _ in range(max_iter):
            d2 = sq[:, None] - 2 * X @ C.T + (C**2).sum(axis=1)[None]
            new = np.argmin(d2, axis=1)
            if np.array_equal(new, labels) and _ > 0:
                break
            labels = new
            for j in range(k):
                members = X[labels == j]
                C[j] = members.mean(axis=0) if len(members) else X[rng.integers(n)]
        inertia = float(np.min(sq[:, None] - 2 * X @ C.T + (C**2).sum(axis=1)[None], axis=1).sum())
        if inertia < best_inertia:
            best, best_inertia = labels.copy(), inertia
    _, relabelled = np.unique(best, return_inverse=True)
    return relabelled.astype(np.int64)


def adjusted_rand_index(a: Sequence[object], b: Sequence[object]) -> float:
    """Adjusted Rand index of two partitions of the same items (1: identical; about 0: chance).

    >>> adjusted_rand_index([0, 0, 1, 1], ["x", "x", "y", "y"])
    1.0
    """
    _, ia = np.unique(np.asarray(a, dtype=object).astype(str), return_inverse=True)
    _, ib = np.unique(np.asarray(b, dtype=object).astype(str), return_inverse=True)
    if ia.size != ib.size:
        raise BlemoreError(f"adjusted_rand_index: {ia.size} and {ib.size} items")
    n = ia.size
    table = np.zeros((ia.max() + 1 if n else 0, ib.max() + 1 if n else 0))
    np.add.at(table, (ia, ib), 1)

    def pairs(x: np.ndarray) -> float:
        return float((x * (x - 1) / 2).sum())

    index, rows, cols = pairs(table), pairs(table.sum(axis=1)), pairs(table.sum(axis=0))
    total = n * (n - 1) / 2
    if total == 0:
        return 1.0
    expected = rows * cols / total
    maximum = (rows + cols) / 2
    if maximum == expected:
        return 1.0
    return float((index - expected) / (maximum - expected))


def estimate_actor_count(n_clips: int, clips_per_actor: Sequence[int]) -> int:
    """``round(n_clips / median clips per actor)``, at least 1 and at most ``n_clips``.

    >>> estimate_actor_count(594, [54, 52, 53])
    11
    """
    per = float(np.median(np.asarray(clips_per_actor, dtype=float))) if len(clips_per_actor) else 0.0
    if per <= 0:
        raise BlemoreError("cannot estimate the number of actors: no training actor with clips")
    return int(min(max(1, round(n_clips / per)), n_clips))


@dataclass
class ActorDiscovery:
    """Pseudo-actors of clips: ``actors[i]`` is ``"pseudo-01"`` ... ; how k was set; the agreement measured."""

    actors: list[str]
    k: int
    k_rule: str
    agreement: list[dict] = field(default_factory=list)

    @property
    def mean_ari(self) -> float | None:
        values = [a["ari"] for a in self.agreement]
        return float(np.mean(values)) if values else None

    def as_json(self) -> dict:
        return {"k": self.k, "k_rule": self.k_rule, "mean_ari_on_training_folds": self.mean_ari,
                "training_folds": self.agreement,
                "method": "emotion directions projected out, PCA, k-means (k-means++, 10 starts)"}


def discover_actors(
    X: np.ndarray,
    *,
    k: int,
    directions: np.ndarray | None = None,
    seed: int = 0,
    components: int = 20,
) -> np.ndarray:
    """Cluster ids ``(n,)`` of clips ``X`` into ``k`` pseudo-actors (see the module docstring)."""
    Z, _, _ = _standardise(X)
    if directions is not None and directions.size:
        Z = Z - (Z @ directions) @ directions.T
    Z = Z - Z.mean(axis=0)
    r = int(min(components, Z.shape[1], max(Z.shape[0] - 1, 1)))
    u, s, _ = np.linalg.svd(Z, full_matrices=False)
    return kmeans(u[:, :r] * s[:r], k, seed=seed)


def discovery_agreement(
    X: np.ndarray, actors: Sequence[object], labels: np.ndarray, folds: np.ndarray, *, seed: int = 0
) -> list[dict]:
    """Per training fold: pseudo-actors found by :func:`discover_actors` against the true actors (ARI).

    For fold f, the emotion directions are learned on the other folds' labelled clips and k
    is estimated from the other folds' clips per actor, as for the test clips.
    """
    actors = np.asarray([str(a) for a in actors], dtype=object)
    folds = np.asarray(folds)
    labels = np.asarray(labels)
    out = []
    for f in sorted(set(folds.tolist())):
        here, rest = folds == f, folds != f
        _, per_actor = np.unique(actors[rest], return_counts=True)
        k = estimate_actor_count(int(here.sum()), per_actor)
        dirs = emotion_directions(X[rest], labels[rest])
        found = discover_actors(X[here], k=k, directions=dirs, seed=seed)
        out.append({"fold": int(f), "clips": int(here.sum()), "actors": int(len(set(actors[here].tolist()))),
                    "k": int(k), "ari": adjusted_rand_index(found, actors[here])})
    return out
