"""Actor-disjoint, balanced, seeded cross-validation folds.

Every actor's clips go to one fold; folds are balanced by clip count (largest
actors first, each to the currently smallest fold, ties broken by a seeded
shuffle). Same actors + same seed -> same folds.

>>> actor_folds(["A1", "A1", "A2", "A3", "A3", "A3"], n_folds=2, seed=0).tolist()
[1, 1, 1, 0, 0, 0]
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from blemore.errors import BlemoreError

__all__ = ["actor_folds"]


def actor_folds(actors: Sequence[str], *, n_folds: int = 5, seed: int = 0) -> np.ndarray:
    """Fold number (0 .. n_folds-1) of every item, grouped by actor.

    Parameters
    ----------
    actors
        The actor of every clip.
    n_folds
        Number of folds; needs at least that many actors.
    seed
        Seed of the tie-breaking shuffle.

    Returns
    -------
    (N,) int64 array of fold numbers.
    """
    actors = [str(a) for a in actors]
    names, counts = np.unique(np.array(actors, dtype=object).astype(str), return_counts=True)
    if n_folds < 2:
        raise BlemoreError(f"need at least 2 folds, got n_folds={n_folds}")
    if len(names) < n_folds:
        raise BlemoreError(
            f"cannot make {n_folds} actor-disjoint folds from {len(names)} actor(s); "
            "use fewer folds or more actors"
        )
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(names))
    # Largest actors first; the seeded permutation breaks ties (stable sort).
    order = order[np.argsort(-counts[order], kind="stable")]
    sizes = np.zeros(n_folds, dtype=np.int64)
    fold_of: dict[str, int] = {}
    for i in order:
        f = int(np.argmin(sizes))  # first smallest fold
        fold_of[str(names[i])] = f
        sizes[f] += counts[i]
    return np.array([fold_of[a] for a in actors], dtype=np.int64)
