"""Fold plans: outer, inner and all members; seeds; rows of windows."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blemore.errors import BlemoreError
from blemore.protocol.plans import clip_folds, member_seed, nested_plan, plan_seed, row_members


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=10, max_size=60).filter(lambda f: len(set(f)) >= 3))
def test_nested_plan_never_uses_the_outer_fold(fold_list):
    folds = np.array(fold_list)
    plan = nested_plan(folds, nested=True, test=np.arange(len(folds), len(folds) + 3))
    ids = sorted(set(fold_list))
    for m in plan:
        if m.role == "outer":
            assert set(folds[m.train]) == set(ids) - {m.outer}
            assert set(folds[m.eval]) == {m.outer}
        elif m.role == "inner":
            assert m.outer not in set(folds[m.train]) and m.outer not in set(folds[m.eval])
            assert set(folds[m.eval]) == {m.inner} and m.inner not in set(folds[m.train])
        else:
            assert len(m.train) == len(folds) and m.eval.tolist() == list(range(len(folds), len(folds) + 3))
    assert len([m for m in plan if m.role == "inner"]) == len(ids) * (len(ids) - 1)


def test_seeds_of_outer_and_all_members_are_the_protocols_whatever_else_runs():
    folds = np.repeat(np.arange(5), 4)
    plain = nested_plan(folds, nested=False, test=np.arange(20, 22))
    nested = nested_plan(folds, nested=True, test=np.arange(20, 22))
    seeds_plain = {(m.role, m.outer): plan_seed(7, m, plain, i) for i, m in enumerate(plain)}
    seeds_nested = {(m.role, m.outer): plan_seed(7, m, nested, i) for i, m in enumerate(nested) if m.role != "inner"}
    assert seeds_plain == seeds_nested
    assert seeds_plain[("outer", 2)] == member_seed(7, 2) and seeds_plain[("all", None)] == member_seed(7, 5)
    inner = [plan_seed(7, m, nested, i) for i, m in enumerate(nested) if m.role == "inner"]
    assert len(set(inner)) == len(inner) and not set(inner) & set(seeds_plain.values())
    assert member_seed(7, 2, variant=1) != member_seed(7, 2)


def test_row_members_map_clips_to_their_windows():
    row_clip = np.array([0, 0, 1, 2, 2, 2, 3])
    plan = nested_plan(np.array([0, 0, 1, 1]), nested=False)
    members = row_members(plan, [1, 2], row_clip, 4)
    m0 = members[0]  # trains on fold 1 = clips 2, 3; evaluates fold 0 = clips 0, 1
    assert m0.train.tolist() == [3, 4, 5, 6] and m0.eval.tolist() == [0, 1, 2]
    assert m0.eval_groups.tolist() == [0, 0, 1] and m0.seed == 1
    same = row_members(plan, [1, 2], np.arange(4), 4)
    assert same[0].eval_groups is None and same[0].train.tolist() == [2, 3]


def test_clip_folds():
    f = clip_folds(103, n_folds=5, seed=1)
    assert sorted(set(f.tolist())) == [0, 1, 2, 3, 4] and np.bincount(f).max() - np.bincount(f).min() <= 1
    with pytest.raises(BlemoreError, match="cannot make 5 clip-level folds of 3 clips"):
        clip_folds(3, n_folds=5)
