"""Selection rules for one configuration, its test predictions and its deployment.

For a configuration (a method on a feature set with a head) and its trained units:

- ``paper`` (validation): per fold, the epoch and parameters that score best on that very
  fold, as in the paper — optimistic, chosen on the clips reported;
- ``nested`` (validation): for every outer fold, an inner cross-validation on the other
  folds chooses the epoch and parameters, applied to the outer fold's model;
- ``pooled`` (validation): one epoch and one parameter set chosen on the pooled
  out-of-fold predictions of all folds;
- ``test`` under ``pooled``: the model on all training clips at the pooled epoch, decoded
  with the pooled parameters — what is deployed and submitted; for the baseline also the
  paper's test rule (``--paper-test``).

A method decoding one unit takes its test outputs from the unit's model on all clips
(kept at the chosen epoch while training); one that combines several units, or the
attention model, has its models on all clips trained at the chosen epoch
(:func:`blemore.protocol.units.fit_deployed`) and predicts through the deployment, as
``blemore predict`` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from blemore.protocol.context import RunContext
from blemore.protocol.deploy import ActorModel, Deployment, RuleChoice, probabilities_of
from blemore.protocol.methods import METHODS, Configuration, Method, UnitKey, decoder_for
from blemore.protocol.selection import Choice, Decoder, choose, epoch_grid
from blemore.protocol.units import TrainedUnit, UnitSpec, fit_deployed, outputs_of

__all__ = ["SelectionRow", "ConfigResult", "evaluate_configuration", "validation_rows", "LABELS", "candidate_epochs"]


class _Labels(Decoder):
    """Outputs that are already label indices (what a unit kept of a 36-way or regression head)."""

    name = "labels"

    def decode(self, outputs: np.ndarray, params: Any) -> np.ndarray:
        return np.asarray(outputs, dtype=np.int64)


LABELS = _Labels()


@dataclass
class SelectionRow:
    """Predictions of one selection rule on one split (label indices aligned with the split's clips)."""

    split: str
    selection: str
    epoch: float | None
    pred: np.ndarray
    params: Any = None


@dataclass
class ConfigResult:
    """Everything a configuration produced: rows of the methods table, the deployment, test predictions."""

    configuration: Configuration
    rows: list[SelectionRow]
    choices: dict[str, Any] = field(default_factory=dict)
    deployment: Deployment | None = None
    test_pred: np.ndarray | None = None
    test_probs: np.ndarray | None = None
    paper_test_pred: np.ndarray | None = None
    paper_test_probs: np.ndarray | None = None

    @property
    def method(self) -> Method:
        return METHODS[self.configuration.method]


def candidate_epochs(method: Method, epochs: int) -> list[int] | None:
    """The epochs a method's selection considers (None: all)."""
    return None if method.max_epoch_points is None else epoch_grid(epochs, method.max_epoch_points)


def _combined(method: Method, units: Sequence[TrainedUnit], index: int) -> np.ndarray:
    return method.combine([np.asarray(u.outputs[index]) for u in units])


def _decoder(method: Method, configuration: Configuration, units: Sequence[TrainedUnit]) -> Decoder:
    if len(units) == 1 and np.asarray(units[0].outputs[0]).ndim == 2:
        return LABELS  # the unit kept labels, decoded while training
    return decoder_for(method, configuration.feature_set)


def validation_rows(method: Method, configuration: Configuration, units: Sequence[TrainedUnit], truth: np.ndarray,
                epochs: list[int] | None, nested: bool) -> tuple[list[SelectionRow], dict[str, Any]]:
    decoder = _decoder(method, configuration, units)
    first = units[0]
    outer_idx = {int(m.outer): i for i, m in enumerate(first.plan) if m.role == "outer"}
    folds = sorted(outer_idx)
    val = {k: first.plan[outer_idx[k]].eval for k in folds}
    outer = {k: _combined(method, units, outer_idx[k]) for k in folds}
    rows, choices = [], {}
    pred = np.full(len(truth), -1, dtype=np.int64)
    per_fold = {}
    for k in folds:
        c = choose([outer[k]], [truth[val[k]]], decoder, epochs=epochs)
        per_fold[k] = c
        pred[val[k]] = decoder.decode(outer[k][c.epoch - 1], c.params)
    rows.append(SelectionRow("val", "paper", float(np.mean([c.epoch for c in per_fold.values()])), pred,
                             {str(k): c.params for k, c in per_fold.items()}))
    choices["paper"] = per_fold
    inner_idx = [(i, m) for i, m in enumerate(first.plan) if m.role == "inner"]
    if nested and inner_idx:
        pred = np.full(len(truth), -1, dtype=np.int64)
        eps = []
        for k in folds:
            mine = [(i, m) for i, m in inner_idx if m.outer == k]
            c = choose([_combined(method, units, i) for i, _ in mine], [truth[m.eval] for _, m in mine], decoder,
                       epochs=epochs)
            eps.append(c.epoch)
            pred[val[k]] = decoder.decode(outer[k][c.epoch - 1], c.params)
        rows.append(SelectionRow("val", "nested", float(np.mean(eps)), pred))
    pooled = choose([outer[k] for k in folds], [truth[val[k]] for k in folds], decoder, epochs=epochs)
    pred = np.full(len(truth), -1, dtype=np.int64)
    for k in folds:
        pred[val[k]] = decoder.decode(outer[k][pooled.epoch - 1], pooled.params)
    rows.append(SelectionRow("val", "pooled", float(pooled.epoch), pred, pooled.params))
    choices["pooled"] = pooled
    return rows, choices


def _paper_rule(spec: UnitSpec, per_fold: dict[int, Choice], epochs: int) -> tuple[int, int, str]:
    """(best fold position, epoch, kept-model tag) of the paper's test rule."""
    folds = sorted(per_fold)
    best = int(np.argmax([per_fold[k].score for k in folds]))  # first best fold
    rule = spec.paper_test
    if rule == "best-fold-epochs":
        return best, per_fold[folds[best]].epoch, f"fold{best}"
    if rule == "retrain-100":
        return best, 100, "epoch100"
    if rule == "best-fold-checkpoint":
        return best, per_fold[folds[best]].epoch, f"checkpoint{best}"
    return best, epochs, "final"


def evaluate_configuration(
    ctx: RunContext,
    configuration: Configuration,
    trained: dict[UnitKey, TrainedUnit],
    specs: dict[UnitKey, UnitSpec],
    *,
    retrain: Callable[[UnitSpec, int], Any] | None = None,
) -> ConfigResult:
    """Selection rules, test predictions and the deployment of one configuration (see the module docstring)."""
    method = METHODS[configuration.method]
    units = [trained[k] for k in configuration.units]
    E = ctx.config.effective_epochs
    rows, choices = validation_rows(method, configuration, units, ctx.truth, candidate_epochs(method, E),
                                ctx.config.nested)
    result = ConfigResult(configuration, rows, choices)
    if not method.deployable:
        return result
    pooled: Choice = choices["pooled"]
    deployment = _deploy(ctx, configuration, method, units, specs, pooled, retrain)
    result.deployment = deployment
    if configuration.method == "baseline":
        _add_paper_rule(ctx, result, units[0], specs[configuration.units[0]], choices["paper"])
    _test_predictions(ctx, result, units)
    return result


def _deploy(ctx: RunContext, configuration: Configuration, method: Method, units: Sequence[TrainedUnit],
            specs: dict[UnitKey, UnitSpec], pooled: Choice, retrain: Callable[[UnitSpec, int], Any] | None) -> Deployment:
    models = []
    for key, unit in zip(configuration.units, units):
        kept = unit.kept.get(f"pooled:{configuration.method}")
        if len(units) == 1 and kept is not None and kept[0] == pooled.epoch:
            models.append(kept[1])
        else:
            models.append((retrain or _retrain_here(ctx))(specs[key], pooled.epoch))
    dims = [0 if k.trainer == "attention" else ctx.features[k.feature_set].dim for k in configuration.units]
    actor_models = {}
    for key in configuration.units:
        if key.transform == "actor-norm":
            actor_models[key.feature_set] = _actor_model(ctx, key.feature_set)
    return Deployment(configuration, ctx.config.representation, ctx.config.effective_window, ctx.config.max_frames,
                      dims, {"pooled": RuleChoice(pooled.epoch, pooled.params, models)}, {}, actor_models)


def _retrain_here(ctx: RunContext) -> Callable[[UnitSpec, int], Any]:
    def retrain(spec: UnitSpec, epoch: int) -> Any:
        return fit_deployed(spec, ctx.unit_data(spec.key), epoch)

    return retrain


def _actor_model(ctx: RunContext, feature_set: str) -> ActorModel:
    from blemore.protocol.actors import emotion_directions

    X = ctx.features[feature_set].clip_matrix().astype(np.float64)[: ctx.n_train]
    _, per_actor = np.unique(ctx.train_actors, return_counts=True)
    return ActorModel(emotion_directions(X, ctx.truth), float(np.median(per_actor)))


def _add_paper_rule(ctx: RunContext, result: ConfigResult, unit: TrainedUnit, spec: UnitSpec,
                    per_fold: dict[int, Choice]) -> None:
    best, epoch, tag = _paper_rule(spec, per_fold, ctx.config.effective_epochs)
    folds = sorted(per_fold)
    epoch_kept, model = unit.kept[tag]
    note = {"best_fold": folds[best], "paper_test": spec.paper_test, "kept_epoch": int(epoch_kept)}
    result.deployment.rules["paper"] = RuleChoice(int(epoch), per_fold[folds[best]].params, [model], note)
    result.choices["paper_test"] = (folds[best], int(epoch), per_fold[folds[best]].params)


def _kept_test_outputs(units: Sequence[TrainedUnit], rule: str, choice: RuleChoice) -> np.ndarray | None:
    """The test outputs a single unit's model on all clips gave at the rule's epoch while training (None: none kept)."""
    if len(units) != 1 or units[0].test_outputs() is None:
        return None
    if choice.note.get("paper_test") == "best-fold-checkpoint":
        return None  # a fold's own model, not the model on all clips
    out = np.asarray(units[0].test_outputs()[choice.epoch - 1])
    return out if out.ndim == 1 else out.astype(np.float64)


def _test_predictions(ctx: RunContext, result: ConfigResult, units: Sequence[TrainedUnit]) -> None:
    """Test labels and probabilities of the deployed rules (nothing when the run has no test clips)."""
    if not ctx.test_clips:
        return
    dep, method = result.deployment, result.method
    for rule, choice in dep.rules.items():
        outputs = _kept_test_outputs(units, rule, choice)
        if outputs is not None:
            decoder = _decoder(method, result.configuration, units)
        else:
            decoder = decoder_for(method, result.configuration.feature_set)
            outputs = _deployed_outputs(ctx, dep, rule, method)
        labels = np.asarray(decoder.decode(outputs, choice.params), dtype=np.int64)
        probs = probabilities_of(method, outputs, choice.params)
        if rule == "pooled":
            result.test_pred, result.test_probs = labels, probs
        else:
            result.paper_test_pred, result.paper_test_probs = labels, probs


def _deployed_outputs(ctx: RunContext, dep: Deployment, rule: str, method: Method) -> np.ndarray:
    """The decoder's input on the test clips, from the deployed models (the path ``blemore predict`` takes)."""
    outs = []
    n = ctx.n_train
    for key, model in zip(dep.configuration.units, dep.rules[rule].models):
        if key.trainer == "attention":
            from blemore.models.attention import PackedSequences

            seqs = ctx.sequences[key.feature_set]
            test = PackedSequences([t[n:] for t in seqs.tokens], seqs.mask[n:], seqs.positions[n:])
            outs.append(outputs_of(model, key.trainer, sequences=test))
            continue
        data = ctx.unit_data(key)
        on_test = data.row_clip >= n
        outs.append(outputs_of(model, key.trainer, data.X[on_test], data.row_clip[on_test] - n))
    return method.combine(outs)

