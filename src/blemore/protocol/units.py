"""Training units: one kind of head on one feature set, trained for every member of the fold plan.

:func:`train_unit` is the one place where the protocol trains. Its members:

- the *main* call of the batched trainer: the outer folds in fold order, then the model on
  all training clips (evaluated on the test clips) — exactly the members the paper's
  protocol has always trained together, so the baseline's figures do not depend on what
  else runs beside it;
- with nested selection, a second call for the inner members;
- the attention model trains member by member; its model on all training clips is trained
  at deployment, for the chosen number of epochs (:func:`fit_deployed`).

While the main call runs, an epoch callback keeps copies of the model on all clips where
a selection rule will want them (the epoch with the best pooled validation score of each
method decoding this unit alone; the paper's test rules for the baseline), so that no
second training is needed. Everything here is a plain function of picklable inputs, so a
unit can run as a Ray task.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Sequence

import numpy as np

from blemore.errors import BlemoreError
from blemore.labels import N_LABELS, SOFT_VECTORS
from blemore.models.trainer import HeadParams, TrainConfig, forward_outputs, train_members
from blemore.protocol.methods import UnitKey
from blemore.protocol.plans import PlanMember, nested_plan, plan_seed, row_members
from blemore.protocol.selection import THRESHOLDS, Decoder

__all__ = [
    "PaperTest",
    "UnitData",
    "UnitSpec",
    "TrainedUnit",
    "train_unit",
    "fit_deployed",
    "unit_targets",
    "loss_of",
    "outputs_of",
    "stored_outputs",
    "unit_plan",
]

#: How the paper-rule test model is made: the model on all clips after every epoch; after the
#: best validation fold's selected epoch count; after 100 epochs (the official retraining
#: branch); or the best fold's own model at its best epoch (the official default branch).
PaperTest = Literal["all-epochs", "best-fold-epochs", "retrain-100", "best-fold-checkpoint"]


@dataclass
class UnitData:
    """What a unit reads: feature rows of training and test clips, truth and folds of the training clips.

    ``X`` rows belong to clips ``row_clip`` (0..n_train-1 training clips in metadata order,
    then the test clips); ``folds`` are the training clips' folds (actor folds, or random
    clip folds for the ``clips`` fold kind); ``sequences`` are the packed frame sequences of
    the attention model.
    """

    X: np.ndarray | None
    row_clip: np.ndarray | None
    n_train: int
    n_clips: int
    truth: np.ndarray
    folds: np.ndarray
    sequences: Any = None


@dataclass(frozen=True)
class UnitSpec:
    """How to train one unit: its key, the training settings and what the epoch callback tracks."""

    key: UnitKey
    config: TrainConfig
    seed: int
    nested: bool
    deploy: bool = True
    #: (tag, decoder) pairs: keep the model on all clips at each one's best pooled epoch
    tracked: tuple[tuple[str, Decoder], ...] = ()
    paper_test: PaperTest | None = None
    attention: Any = None  # AttentionConfig for the attention trainer


@dataclass
class TrainedUnit:
    """A trained unit: eval outputs of every plan member after every epoch, kept models, losses."""

    key: UnitKey
    plan: list[PlanMember]
    seeds: list[int]
    outputs: list[np.ndarray | None]
    train_loss: np.ndarray | None
    kept: dict[str, tuple[int, Any]] = field(default_factory=dict)
    flops: float = 0.0

    def role_outputs(self, role: str) -> list[tuple[PlanMember, np.ndarray]]:
        return [(m, o) for m, o in zip(self.plan, self.outputs) if m.role == role and o is not None]

    def outer(self) -> dict[int, np.ndarray]:
        return {int(m.outer): o for m, o in self.role_outputs("outer")}

    def inner(self, k: int) -> list[tuple[PlanMember, np.ndarray]]:
        return [(m, o) for m, o in self.role_outputs("inner") if m.outer == k]

    def all_member(self) -> tuple[int, PlanMember] | None:
        for i, m in enumerate(self.plan):
            if m.role == "all":
                return i, m
        return None

    def test_outputs(self) -> np.ndarray | None:
        found = self.all_member()
        return None if found is None else self.outputs[found[0]]


def loss_of(trainer: str) -> str:
    """The loss a trainer's heads are trained with (and their outputs: softmax for ``kl``)."""
    return "salience" if trainer == "salreg" else "kl"


def unit_targets(trainer: str, truth: np.ndarray, n_clips: int) -> np.ndarray:
    """Per-clip targets of a trainer (training clips first; test clips get zeros, never used)."""
    from blemore.models.multitask import SALREG_OUTPUTS, salreg_targets

    n_train = len(truth)
    if trainer == "ce36":
        T = np.zeros((n_clips, N_LABELS), dtype=np.float32)
        T[np.arange(n_train), truth] = 1.0
    elif trainer == "salreg":
        T = np.zeros((n_clips, SALREG_OUTPUTS), dtype=np.float32)
        T[:n_train] = salreg_targets(truth)
    else:
        T = np.zeros((n_clips, SOFT_VECTORS.shape[1]), dtype=np.float32)
        T[:n_train] = SOFT_VECTORS[truth]
    return T


def unit_plan(spec: UnitSpec, data: UnitData) -> tuple[list[PlanMember], list[int]]:
    """The unit's fold plan (outer folds, model on all clips, inner members) and each member's seed."""
    test = np.arange(data.n_train, data.n_clips) if spec.deploy else None
    plan = nested_plan(data.folds, nested=spec.nested, test=test)
    seeds = [plan_seed(spec.seed, m, plan, i, spec.key.variant) for i, m in enumerate(plan)]
    return plan, seeds


class _Tracker:
    """The epoch callback of the main call: which copies of which member to keep."""

    def __init__(self, spec: UnitSpec, data: UnitData, plan: Sequence[PlanMember]) -> None:
        self.spec = spec
        outer = [m for m in plan if m.role == "outer"]
        self.K = len(outer)
        self.fold_truth = [data.truth[m.eval] for m in outer]
        self.pool_truth = np.concatenate(self.fold_truth)
        self.best_pooled = {tag: -np.inf for tag, _ in spec.tracked}
        self.best_fold = [-np.inf] * self.K
        self.has_all = spec.deploy

    def __call__(self, epoch: int, outs: list[np.ndarray], loss: np.ndarray) -> list[tuple[int, str]]:
        keep: list[tuple[int, str]] = []
        if not self.has_all:
            return keep
        K = self.K
        if self.spec.tracked:
            pooled = np.concatenate(outs[:K])
            for tag, decoder in self.spec.tracked:
                fit = decoder.fit(pooled, self.pool_truth)
                if fit.score > self.best_pooled[tag]:
                    self.best_pooled[tag] = fit.score
                    keep.append((K, f"pooled:{tag}"))
        rule = self.spec.paper_test
        if rule in ("best-fold-epochs", "best-fold-checkpoint"):
            for k in range(K):
                fit = THRESHOLDS.fit(outs[k], self.fold_truth[k])
                if fit.score > self.best_fold[k]:
                    self.best_fold[k] = fit.score
                    keep.append((K, f"fold{k}") if rule == "best-fold-epochs" else (k, f"checkpoint{k}"))
        if rule == "retrain-100" and epoch == 100:
            keep.append((K, "epoch100"))
        return keep


def train_unit(spec: UnitSpec, data: UnitData, progress: Callable[[int], object] | None = None) -> TrainedUnit:
    """Train every member of one unit; see the module docstring."""
    plan, seeds = unit_plan(spec, data)
    if spec.key.trainer == "attention":
        return _train_attention_unit(spec, data, plan, seeds, progress)
    if spec.paper_test == "retrain-100" and spec.config.epochs < 100:
        raise BlemoreError(f"--paper-test retrain-100 needs at least 100 epochs, got --epochs {spec.config.epochs}")
    T = unit_targets(spec.key.trainer, data.truth, data.n_clips)[data.row_clip]
    members = row_members(plan, seeds, data.row_clip, data.n_clips)
    main = [i for i, m in enumerate(plan) if m.role != "inner"]
    inner = [i for i, m in enumerate(plan) if m.role == "inner"]
    hidden = _hidden(spec.key.model)
    loss = loss_of(spec.key.trainer)
    tracker = _Tracker(spec, data, [plan[i] for i in main])
    keep = stored_outputs(spec.key.trainer)
    res = train_members(data.X, T, [members[i] for i in main], hidden=hidden, config=spec.config, loss=loss,
                        on_epoch=tracker, progress=progress, keep=keep)
    outputs: list[np.ndarray | None] = [None] * len(plan)
    for j, i in enumerate(main):
        outputs[i] = res.eval_probs[j]
    kept = {tag: value for (_, tag), value in res.kept.items()}
    if spec.deploy:
        kept["final"] = (spec.config.epochs, res.final[len(main) - 1])
    flops = res.flops
    if inner:
        res_in = train_members(data.X, T, [members[i] for i in inner], hidden=hidden, config=spec.config,
                               loss=loss, progress=progress, keep=keep)
        for j, i in enumerate(inner):
            outputs[i] = res_in.eval_probs[j]
        flops += res_in.flops
    return TrainedUnit(spec.key, plan, seeds, outputs, res.train_loss, kept, flops)


def stored_outputs(trainer: str) -> Callable[[np.ndarray], np.ndarray]:
    """What a unit keeps of each epoch's outputs: probabilities as float32 (lossless), or the decoded labels.

    The 36-way and salience-regression heads are decoded without parameters (argmax, nearest
    label), so their labels are all that selection needs; 36 float probabilities per clip,
    epoch and member would not fit in memory on the real dataset.
    """
    if trainer == "ce36":
        return _argmax_labels
    if trainer == "salreg":
        return _salreg_labels
    return _float32


def _float32(outputs: np.ndarray) -> np.ndarray:
    return outputs.astype(np.float32)


def _argmax_labels(outputs: np.ndarray) -> np.ndarray:
    return np.argmax(outputs, axis=1).astype(np.int16)


def _salreg_labels(outputs: np.ndarray) -> np.ndarray:
    from blemore.models.multitask import decode_salreg

    return decode_salreg(outputs).astype(np.int16)


def _hidden(model: str) -> int:
    from blemore.models.heads import hidden_size

    return hidden_size(model)


def _train_attention_unit(spec: UnitSpec, data: UnitData, plan: list[PlanMember], seeds: list[int],
                          progress: Callable[[int], object] | None) -> TrainedUnit:
    from blemore.models.attention import fit_attention
    from blemore.models.trainer import Member, torch_threads

    T = unit_targets("kl6", data.truth, data.n_clips)
    outputs: list[np.ndarray | None] = [None] * len(plan)
    with torch_threads(spec.config.threads):
        for i, (m, seed) in enumerate(zip(plan, seeds)):
            if m.role == "all":
                continue  # trained at deployment, for the chosen number of epochs
            outputs[i], _ = fit_attention(data.sequences, T, Member(m.train, m.eval, seed), config=spec.attention,
                                          device=spec.config.device, progress=progress)
    return TrainedUnit(spec.key, plan, seeds, outputs, None, {}, 0.0)


def fit_deployed(spec: UnitSpec, data: UnitData, epochs: int) -> Any:
    """The model on all training clips after ``epochs`` epochs, trained alone (same seed, same rows as in the unit)."""
    plan, seeds = unit_plan(spec, data)
    i = next(i for i, m in enumerate(plan) if m.role == "all")
    if spec.key.trainer == "attention":
        from blemore.models.attention import fit_attention
        from blemore.models.trainer import Member, torch_threads

        T = unit_targets("kl6", data.truth, data.n_clips)
        with torch_threads(spec.config.threads):
            _, state = fit_attention(data.sequences, T, Member(plan[i].train, plan[i].eval, seeds[i]),
                                     config=spec.attention, epochs=epochs, device=spec.config.device)
        return state
    from dataclasses import replace

    T = unit_targets(spec.key.trainer, data.truth, data.n_clips)[data.row_clip]
    member = row_members([plan[i]], [seeds[i]], data.row_clip, data.n_clips)
    res = train_members(data.X, T, member, hidden=_hidden(spec.key.model),
                        config=replace(spec.config, epochs=int(epochs)), loss=loss_of(spec.key.trainer))
    return res.final[0]


def outputs_of(model: Any, trainer: str, X: np.ndarray | None = None, row_clip: np.ndarray | None = None,
               sequences: Any = None) -> np.ndarray:
    """A deployed unit model's per-clip outputs on new rows (or packed sequences for attention)."""
    if trainer == "attention":
        return model.predict(sequences)
    if not isinstance(model, HeadParams):  # pragma: no cover - guarded by the model files' kind
        raise BlemoreError(f"a {trainer} unit needs a head, got {type(model).__name__}")
    return forward_outputs(model, X, groups=row_clip, loss=loss_of(trainer))
