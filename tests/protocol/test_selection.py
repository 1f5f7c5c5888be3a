"""Decoders and the choice of an epoch: first best, fitted on the pool; selection rules of a configuration."""

from __future__ import annotations

import numpy as np
import pytest

from blemore.labels import IS_BLEND, LABEL_INDEX, N_LABELS, SOFT_VECTORS
from blemore.metrics import score_indices
from blemore.models.multitask import decode_salreg, salreg_targets
from blemore.protocol.evaluate import validation_rows
from blemore.protocol.methods import METHODS, Configuration, UnitKey
from blemore.protocol.plans import nested_plan
from blemore.protocol.selection import (
    STRUCTURED,
    LateFusionDecoder,
    choose,
    epoch_grid,
    params_from_json,
    params_to_json,
)
from blemore.protocol.units import TrainedUnit


def test_choose_picks_the_first_best_epoch():
    truth = np.array([LABEL_INDEX["hap"], LABEL_INDEX["sad"]])
    good = SOFT_VECTORS[truth]
    bad = SOFT_VECTORS[[LABEL_INDEX["ang"], LABEL_INDEX["ang"]]]
    c = choose([np.stack([bad, good, good])], [truth], STRUCTURED)
    assert c.epoch == 2 and c.score == 0.5  # presence 1, salience 0 (no blends)
    assert choose([np.stack([bad, good, good])], [truth], STRUCTURED, epochs=[1, 3]).epoch == 3


def test_epoch_grid():
    assert epoch_grid(12, 12) == list(range(1, 13))
    grid = epoch_grid(200, 12)
    assert grid[0] == 1 and grid[-1] == 200 and len(grid) == 12


def test_late_fusion_decoder_finds_the_informative_source_and_round_trips_its_parameters():
    rng = np.random.default_rng(6)
    truth = rng.integers(0, N_LABELS, size=200)
    informative = SOFT_VECTORS[truth] * 0.9 + 0.1 / 6
    noise = rng.dirichlet(np.ones(6), size=200)
    out = np.stack([noise, informative], axis=1)
    dec = LateFusionDecoder(2)
    fit = dec.fit(out, truth)
    assert fit.params[0][1] >= 0.7 and fit.score > 0.9
    assert np.allclose(dec.weights.sum(axis=1), 1.0) and len(dec.weights) == 11
    again = params_from_json(dec, params_to_json(fit.params))
    np.testing.assert_array_equal(dec.decode(out, again), dec.decode(out, fit.params))


def test_salience_regression_decodes_its_own_targets():
    idx = np.arange(N_LABELS)
    t = salreg_targets(idx)
    presence = np.where(t[:, :6] > 0, 6.0, -6.0)
    for i in range(N_LABELS):  # the dominant emotion of a 70/30 gets the larger presence logit
        v = SOFT_VECTORS[i]
        if IS_BLEND[i] and v.max() > 0.5:
            presence[i, int(np.argmax(v))] += 1.0
    share = np.log(t[:, 6:] / np.maximum(1 - t[:, 6:], 1e-6))
    np.testing.assert_array_equal(decode_salreg(np.concatenate([presence, share], axis=1)), idx)


def _fake_unit(rng, folds, E=6):
    plan = nested_plan(folds, nested=True)
    outs = [rng.dirichlet(np.ones(6) * 0.5, size=(E, len(m.eval))) for m in plan]
    return TrainedUnit(UnitKey("kl6", "x", "linear"), plan, [0] * len(plan), outs, None)


def test_nested_choice_ignores_the_outer_folds_labels():
    rng = np.random.default_rng(5)
    folds = np.repeat(np.arange(4), 30)
    unit = _fake_unit(rng, folds)
    conf = Configuration("baseline", "x", "linear", (unit.key,))
    truth = rng.integers(0, N_LABELS, size=len(folds))
    rows, _ = validation_rows(METHODS["baseline"], conf, [unit], truth, None, True)
    nested = next(r for r in rows if r.selection == "nested")
    paper = next(r for r in rows if r.selection == "paper")
    for k in range(4):
        changed = truth.copy()
        sel = folds == k
        changed[sel] = rng.integers(0, N_LABELS, size=int(sel.sum()))
        rows2, _ = validation_rows(METHODS["baseline"], conf, [unit], changed, None, True)
        np.testing.assert_array_equal(next(r for r in rows2 if r.selection == "nested").pred[sel], nested.pred[sel])
    # the paper rule does look at the fold's labels: its predictions fit that fold at least as well
    assert score_indices(truth, paper.pred).score >= score_indices(truth, nested.pred).score


def test_pooled_choice_is_one_epoch_for_every_fold():
    rng = np.random.default_rng(8)
    folds = np.repeat(np.arange(3), 20)
    unit = _fake_unit(rng, folds)
    conf = Configuration("structured", "x", "linear", (unit.key,))
    truth = rng.integers(0, N_LABELS, size=len(folds))
    rows, choices = validation_rows(METHODS["structured"], conf, [unit], truth, None, False)
    assert [r.selection for r in rows] == ["paper", "pooled"]
    e = choices["pooled"].epoch
    outer = {m.outer: o for m, o in zip(unit.plan, unit.outputs) if m.role == "outer"}
    expected = np.concatenate([STRUCTURED.decode(outer[k][e - 1], None) for k in range(3)])
    np.testing.assert_array_equal(rows[-1].pred, expected)
    with pytest.raises(StopIteration):
        next(r for r in rows if r.selection == "nested")
