"""Fold plans: which clips each member of a training unit trains on and is evaluated on, and its seed.

A *plan* lists the members of the protocol with nested selection, as row indices into the
training clips:

- ``outer`` k: train on every fold but k, evaluate fold k (the validation figures);
- ``inner`` (k, j), with nested selection: train on the folds other than k and j, evaluate
  j — so nothing chosen for fold k ever sees fold k;
- ``all``: train on every training clip, evaluate the test clips (the model that is
  submitted).

Seeds: outer fold k (k-th fold id in order) and the ``all`` member get the seeds the
protocol has always given them (:func:`member_seed`), so the baseline's models are the
same whatever else runs beside them; inner members get seeds of their own; a seed variant
``v > 0`` (several seeds of one method) changes every member's seed.

>>> plan = nested_plan(np.array([0, 0, 1, 1, 2, 2]))
>>> [(m.role, m.outer, m.inner) for m in plan][:3]
[('outer', 0, None), ('inner', 0, 1), ('inner', 0, 2)]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

from blemore.errors import BlemoreError
from blemore.models.trainer import Member

__all__ = [
    "PlanMember",
    "Role",
    "member_seed",
    "plan_seed",
    "nested_plan",
    "clip_folds",
    "row_members",
]

Role = Literal["outer", "inner", "all"]


def member_seed(seed: int, member: int, variant: int = 0) -> int:
    """Seed of one member (fold position f, or K for the model on all training clips); ``variant`` > 0: another seed."""
    key = [int(seed), int(member)] if not variant else [int(seed), int(member), int(variant)]
    return int(np.random.SeedSequence(key).generate_state(1)[0])


@dataclass(frozen=True)
class PlanMember:
    """One training set of the plan (row indices into the training clips; ``eval`` may index test rows)."""

    role: Role
    outer: int | None
    inner: int | None
    train: np.ndarray
    eval: np.ndarray


def nested_plan(folds: np.ndarray, *, nested: bool = True, test: np.ndarray | None = None) -> list[PlanMember]:
    """Members of the protocol: ``outer`` per fold, ``inner`` per pair of folds (``nested``), ``all`` (``test``).

    ``test`` holds the row indices of the test clips in the same row space (evaluated by the
    ``all`` member); with ``test=None`` there is no ``all`` member.

    >>> len(nested_plan(np.array([0, 0, 1, 1, 2, 2])))
    9
    """
    folds = np.asarray(folds, dtype=np.int64)
    ids = sorted(set(folds.tolist()))
    plan: list[PlanMember] = []
    for k in ids:
        plan.append(PlanMember("outer", k, None, np.flatnonzero(folds != k), np.flatnonzero(folds == k)))
        if nested:
            for j in ids:
                if j != k:
                    plan.append(
                        PlanMember("inner", k, j, np.flatnonzero((folds != k) & (folds != j)), np.flatnonzero(folds == j))
                    )
    if test is not None:
        plan.append(PlanMember("all", None, None, np.arange(len(folds)), np.asarray(test, dtype=np.int64)))
    return plan


def plan_seed(seed: int, member: PlanMember, plan: Sequence[PlanMember], position: int, variant: int = 0) -> int:
    """Seed of a plan member: outer fold k and ``all`` as :func:`member_seed` numbers them; inner ones their own."""
    outer_ids = sorted({m.outer for m in plan if m.role == "outer"})
    if member.role == "outer":
        return member_seed(seed, outer_ids.index(member.outer), variant)
    if member.role == "all":
        return member_seed(seed, len(outer_ids), variant)
    return member_seed(seed, 1000 + position, variant)


def clip_folds(n: int, *, n_folds: int = 5, seed: int = 0) -> np.ndarray:
    """Random clip-level folds (0..n_folds-1) of ``n`` clips, ignoring actors (sizes differ by at most 1).

    >>> np.bincount(clip_folds(11, n_folds=5)).tolist()
    [3, 2, 2, 2, 2]
    """
    if n_folds < 2 or n < n_folds:
        raise BlemoreError(f"cannot make {n_folds} clip-level folds of {n} clips")
    perm = np.random.default_rng(seed).permutation(n)
    folds = np.empty(n, dtype=np.int64)
    folds[perm] = np.arange(n) % n_folds
    return folds


def row_members(plan: Sequence[PlanMember], seeds: Sequence[int], row_clip: np.ndarray, n_clips: int) -> list[Member]:
    """Plan members over clips -> trainer members over feature rows (one per clip, or one per window).

    A member trains on every row of its training clips and is evaluated on every row of its
    evaluation clips; ``eval_groups`` numbers each evaluation row by its clip's place in the
    member's evaluation clips, so the trainer averages a clip's row logits and returns one
    output per clip, in the order of ``eval``. With one row per clip the rows are the clips.
    """
    row_clip = np.asarray(row_clip, dtype=np.int64)
    one_per_clip = len(row_clip) == n_clips and np.array_equal(row_clip, np.arange(n_clips))
    out = []
    for m, seed in zip(plan, seeds):
        if one_per_clip:
            out.append(Member(train=m.train, eval=m.eval, seed=int(seed)))
            continue
        on = np.zeros(n_clips, dtype=bool)
        on[m.train] = True
        pos = np.full(n_clips, -1, dtype=np.int64)
        pos[m.eval] = np.arange(len(m.eval))
        ev = np.flatnonzero(pos[row_clip] >= 0)
        out.append(Member(train=np.flatnonzero(on[row_clip]), eval=ev, seed=int(seed), eval_groups=pos[row_clip[ev]]))
    return out
