"""Beyond the baseline: remedies for the paper's open problems, compared side by side with intervals.

:func:`run_compare` trains, on the same actor-disjoint folds as the protocol
(:mod:`blemore.protocol.benchmark`), the baseline (KL-trained head + alpha/beta thresholds) and
the methods asked for, and scores every one under the same selection rules:

=====================  =====================================================================
method                 what changes against ``baseline``
=====================  =====================================================================
``baseline``           the paper: KL-trained head, alpha/beta thresholds tuned on validation
``structured``         the baseline's probabilities, decoded threshold-free
                       (:func:`blemore.decoding.decode_structured`, rule ``"kl"``)
``head36``             a head over the 36 valid labels, cross-entropy, argmax
                       (``structured`` in the method list runs both rows)
``salience-reg``       a head for which emotions are present (6 sigmoids) + the share of the
                       dominant one (regression), decoded to the nearest of the 36 labels
                       (:mod:`blemore.models.multitask`)
``actor-norm``         each actor's clips standardised by that actor's own mean / std before
                       training. **Transductive**: test clips are standardised with the
                       statistics of the (unlabeled) test clips of the same actor; allowed by
                       the challenge, which hands out all test clips at once. Test clips
                       without an actor id are standardised together as one group.
``late-fusion``        the baseline heads of each single feature source, probabilities
                       combined with convex weights (step 0.1) chosen with the thresholds
``attention-fusion``   a small transformer over the frame sequences of all sources
                       (:mod:`blemore.models.attention`; frame-level sources only)
``actor-inclusive``    the baseline on random clip-level folds that ignore actors (the same
                       actor on both sides): how much identity leaks into validation
=====================  =====================================================================

Representations: as in the benchmark, ``stats`` (one row per clip) or ``windows`` (one row per
``window``-frame window mean). With windows every head trains on the windows of its training
clips, and a clip's prediction comes from its windows as the benchmark makes it (the windows'
logits averaged before the softmax, :class:`blemore.models.trainer.Member` ``eval_groups``);
``salience-reg`` averages its logits per clip the same way; ``actor-norm`` standardises each
actor's window rows by the mean / std of that actor's window rows; ``late-fusion`` combines the
per-source clip probabilities; ``attention-fusion`` reads the frames itself and is the same under
either representation.

Selection rules (column ``selection`` of ``compare.csv``); everything that is tuned
(epoch, thresholds, fusion weights) is tuned the same way for every method:

- ``paper`` (``split`` = val): per fold, the epoch and parameters that score best on
  that very fold, as in the paper - optimistic, since they are chosen on the clips
  reported. For the test split (baseline only): the model on all training clips after
  the last epoch, with the parameters of the best fold (the official baseline's rule).
- ``nested`` (val): for every outer fold, an inner cross-validation on the other folds
  (every inner fold validated by a model trained on the remaining folds) chooses the
  epoch and parameters on the pooled inner predictions; they are applied to the model
  of the outer fold. The outer fold's clips are used for nothing but the score.
- ``pooled`` (val and test): one epoch and one parameter set chosen on the pooled
  out-of-fold predictions of all folds; applied to the model trained on all training
  clips for the test split (honest: the test clips are used for nothing but the score).
  Test rows need labeled test metadata (e.g. the demo's ``test_truth.csv``); unlabeled
  test clips are left out.

Figures over clips come with 95 % bootstrap intervals over *actors* (clips of one actor
are not independent), and every method is compared with ``baseline`` by a paired test
(bootstrap interval of the difference and a sign-flip permutation p-value, both over
actors; :func:`paired_test`). ``gap`` is ``val (paper) - test`` of the same method.

Files written into the run folder: ``compare.csv``, ``compare.md``, ``paired.csv``,
``pairs.csv`` (accuracy per emotion pair), ``sensitivity.csv`` (flatness of the
alpha x beta surface around the chosen point), ``compare_predictions.csv`` (per-clip
predictions of every configuration) and ``compare.json`` (settings).

The figures are those of the data given; on the generated demo dataset they say how the
methods behave on that data only. Real BLEMORE figures need the dataset.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import pandas as pd

from blemore.errors import BlemoreError
from blemore.labels import IS_BLEND, LABEL_INDEX, LABEL_NAMES, N_LABELS, PRESENCE_MASKS, SOFT_VECTORS
from blemore.protocol.benchmark import BenchmarkConfig, member_seed

if TYPE_CHECKING:  # pragma: no cover
    from blemore.models.trainer import Member

__all__ = [
    "METHODS",
    "CompareConfig",
    "run_compare",
    "parse_methods",
    "actor_standardise",
    "clip_folds",
    "nested_plan",
    "Outcomes",
    "outcomes",
    "bootstrap_ci",
    "paired_test",
    "PairedResult",
    "choose",
    "THRESHOLDS",
    "STRUCTURED",
    "ARGMAX",
    "SALREG",
    "LateFusionDecoder",
    "COMPARE_COLUMNS",
    "PAIRED_COLUMNS",
    "paired_from_run",
    "sensitivity_summary",
]

#: Methods :func:`run_compare` knows, in table order.
METHODS: tuple[str, ...] = (
    "baseline",
    "structured",
    "head36",
    "salience-reg",
    "actor-norm",
    "late-fusion",
    "attention-fusion",
    "actor-inclusive",
)
#: Accepted in a method list, as shorthand: ``structured`` runs ``head36`` too; ``all`` runs everything;
#: ``nested``, ``bootstrap``, ``paired``, ``sensitivity``, ``pairs`` are always computed (accepted, no-op).
_ALWAYS = ("nested", "bootstrap", "paired", "sensitivity", "pairs")

COMPARE_COLUMNS = [
    "method", "feature_set", "model", "split", "selection", "epoch",
    "acc_presence", "acc_salience", "score", "ci_low", "ci_high",
    "presence_ci_low", "presence_ci_high", "salience_ci_low", "salience_ci_high",
    "gap", "n_clips", "n_blends", "n_actors", "note",
]
PAIRED_COLUMNS = [
    "method", "feature_set", "model", "split", "selection", "reference_method", "reference_feature_set",
    "reference_model", "diff_score", "ci_low", "ci_high", "p_value", "diff_presence", "diff_salience",
    "n_clips", "n_actors",
]

_NOTES = {
    "actor-norm": "transductive: test clips standardised with the statistics of their own actor's (unlabeled) test clips",
    "actor-inclusive": "random clip-level folds, actors on both sides: identity leaks into validation",
    "structured": "threshold-free KL decoding of the baseline probabilities",
    "head36": "36-way cross-entropy head, argmax",
    "salience-reg": "presence sigmoids + dominant-share regression, nearest label",
    "late-fusion": "convex weights (step 0.1) over per-source baseline heads, chosen with the thresholds (12 candidate epochs)",
    "attention-fusion": "transformer over frame sequences of all sources",
}


@dataclass
class CompareConfig(BenchmarkConfig):
    """:class:`~blemore.protocol.BenchmarkConfig` plus what :func:`run_compare` needs.

    ``models`` defaults to ``["linear"]`` here (every method trains
    ``folds + 1 + folds * (folds - 1)`` heads per feature set for nested selection).
    """

    models: list[str] = field(default_factory=lambda: ["linear"])
    methods: list[str] = field(default_factory=lambda: ["baseline", "structured", "actor-norm", "late-fusion"])
    nested: bool = True
    n_boot: int = 1000
    n_perm: int = 2000
    attention_epochs: int = 15
    attention_lr: float = 1e-3
    max_frames: int = 32
    attention_layers: int = 1

    @classmethod
    def from_benchmark(cls, config: BenchmarkConfig, *, methods: Sequence[str] | str, **options: object) -> "CompareConfig":
        """A compare configuration with the inputs of a benchmark configuration (``benchmark --compare``).

        >>> b = BenchmarkConfig(features={"a": Path("a.npz")}, epochs=5)
        >>> c = CompareConfig.from_benchmark(b, methods="structured", n_boot=10)
        >>> (c.epochs, c.methods, c.n_boot)
        (5, ['baseline', 'structured', 'head36'], 10)
        """
        from dataclasses import fields

        base = {f.name: getattr(config, f.name) for f in fields(BenchmarkConfig)}
        base.update(options)
        return cls(**base, methods=parse_methods(methods))


def parse_methods(spec: str | Sequence[str]) -> list[str]:
    """``"baseline,structured,..."`` (or a list) -> known method names in table order; ``baseline`` always included.

    >>> parse_methods("structured, actor-norm")
    ['baseline', 'structured', 'head36', 'actor-norm']
    """
    items = [spec] if isinstance(spec, str) else list(spec)
    names: set[str] = {"baseline"}
    for item in items:
        for part in str(item).split(","):
            p = part.strip().lower().replace("_", "-")
            if not p:
                continue
            if p == "all":
                names.update(METHODS)
            elif p in _ALWAYS:
                continue
            elif p not in METHODS:
                raise BlemoreError(
                    f"unknown method {part.strip()!r}: expected some of {', '.join(METHODS)} (or 'all')"
                )
            else:
                names.add(p)
                if p == "structured":
                    names.add("head36")
    return [m for m in METHODS if m in names]


# --------------------------------------------------------------------------- pure pieces


def actor_standardise(X: np.ndarray, actors: Sequence[object]) -> np.ndarray:
    """Standardise the rows of each actor by that actor's own mean and std (ddof=0; std 0 -> 1).

    Rows whose actor is missing (None, NaN or "") are standardised together as one group.
    Used transductively on test clips: only their features, never labels.

    >>> X = np.array([[1.0], [3.0], [10.0], [30.0]])
    >>> actor_standardise(X, ["a", "a", "b", "b"]).ravel().tolist()
    [-1.0, 1.0, -1.0, 1.0]
    """
    X = np.asarray(X, dtype=np.float64)
    keys = np.array(["\0missing" if _missing(a) else str(a) for a in actors], dtype=object)
    if len(keys) != X.shape[0]:
        raise BlemoreError(f"actor_standardise: {len(keys)} actors for {X.shape[0]} rows")
    out = np.empty_like(X)
    for a in dict.fromkeys(keys):
        sel = keys == a
        mu = X[sel].mean(axis=0)
        sd = X[sel].std(axis=0)
        out[sel] = (X[sel] - mu) / np.where(sd > 0, sd, 1.0)
    return out.astype(np.float32)


def _missing(a: object) -> bool:
    return a is None or (isinstance(a, float) and np.isnan(a)) or (isinstance(a, str) and not a.strip()) or a is pd.NA


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


def _window_members(members: Sequence["Member"], row_clip: np.ndarray, n_clips: int) -> list["Member"]:
    """Members over clips -> the same members over feature rows (windows), as :mod:`blemore.protocol.benchmark` builds them.

    A member trains on every window of its training clips and is evaluated on every window of
    its evaluation clips; ``eval_groups`` numbers each evaluation window by its clip's place in
    the member's evaluation clips, so :func:`~blemore.models.trainer.train_members` averages a
    clip's window logits before the softmax and returns one row per clip in that order (the
    benchmark's rule). With one row per clip (stats) the members are returned unchanged.
    """
    from blemore.models.trainer import Member

    row_clip = np.asarray(row_clip, dtype=np.int64)
    if len(row_clip) == n_clips and np.array_equal(row_clip, np.arange(n_clips)):
        return list(members)
    out = []
    for m in members:
        on = np.zeros(n_clips, dtype=bool)
        on[m.train] = True
        pos = np.full(n_clips, -1, dtype=np.int64)
        pos[m.eval] = np.arange(len(m.eval))
        ev = np.flatnonzero(pos[row_clip] >= 0)
        out.append(Member(train=np.flatnonzero(on[row_clip]), eval=ev, seed=m.seed, eval_groups=pos[row_clip[ev]]))
    return out


def _clip_means(outputs: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """``(E, R, K)`` raw outputs (logits) of evaluation rows -> ``(E, C, K)``: the mean over each clip's rows.

    For heads trained by :func:`blemore.models.multitask.train_generic`, which returns one output per
    row: the same rule as the benchmark's (logits of a clip's windows averaged before the nonlinearity).
    """
    if groups is None:
        return outputs
    g = np.asarray(groups, dtype=np.int64)
    n = int(g.max()) + 1 if g.size else 0
    sums = np.zeros((outputs.shape[0], n, outputs.shape[2]), dtype=np.float64)
    np.add.at(sums, (slice(None), g), outputs)
    return (sums / np.maximum(np.bincount(g, minlength=n), 1)[None, :, None]).astype(outputs.dtype)


@dataclass(frozen=True)
class PlanMember:
    """One training set of the plan: ``role`` is ``outer``, ``inner`` or ``all``."""

    role: str
    outer: int | None
    inner: int | None
    train: np.ndarray
    eval: np.ndarray


def _plan_seed(seed: int, member: "PlanMember", plan: list["PlanMember"], position: int) -> int:
    """Seed of a plan member: outer fold k and the ``all`` member get the seeds ``blemore benchmark`` gives them.

    So the ``baseline`` rows of a comparison are the benchmark's own models (same initial
    weights, same shuffles); inner members get seeds of their own.
    """
    outer_ids = sorted({m.outer for m in plan if m.role == "outer"})
    if member.role == "outer":
        return member_seed(seed, outer_ids.index(member.outer))
    if member.role == "all":
        return member_seed(seed, len(outer_ids))
    return member_seed(seed, 1000 + position)


def nested_plan(folds: np.ndarray, *, nested: bool = True, test: np.ndarray | None = None) -> list[PlanMember]:
    """Training sets of the protocol with nested selection, as row indices into the training clips.

    For each fold ``k`` an ``outer`` member (train on the other folds, evaluate fold ``k``); with
    ``nested``, for every other fold ``j`` an ``inner`` member (train on the folds other than
    ``k`` and ``j``, evaluate ``j``) - so nothing chosen for fold ``k`` ever sees fold ``k``;
    with ``test`` (row indices of the test clips in the same row space), an ``all`` member.

    >>> plan = nested_plan(np.array([0, 0, 1, 1, 2, 2]))
    >>> [(m.role, m.outer, m.inner) for m in plan][:3]
    [('outer', 0, None), ('inner', 0, 1), ('inner', 0, 2)]
    >>> len(plan)
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


@dataclass(frozen=True)
class Outcomes:
    """Per-clip outcomes of a set of predictions: right set, right label (blend truths), is blend, group."""

    presence_ok: np.ndarray
    salience_ok: np.ndarray
    is_blend: np.ndarray
    groups: np.ndarray

    def counts(self) -> np.ndarray:
        """``(G, 4)`` per group: clips, right sets, blend clips, right blends (groups in sorted order)."""
        _, g = np.unique(self.groups, return_inverse=True)
        G = int(g.max()) + 1 if g.size else 0
        out = np.zeros((G, 4))
        np.add.at(out, (g, 0), 1.0)
        np.add.at(out, (g, 1), self.presence_ok.astype(float))
        np.add.at(out, (g, 2), self.is_blend.astype(float))
        np.add.at(out, (g, 3), (self.salience_ok & self.is_blend).astype(float))
        return out


def outcomes(truth: np.ndarray, pred: np.ndarray, groups: Sequence[object]) -> Outcomes:
    """:class:`Outcomes` of label-index predictions (as :mod:`blemore.metrics` scores them)."""
    t = np.asarray(truth, dtype=np.int64)
    p = np.asarray(pred, dtype=np.int64)
    pm = np.where(p >= 0, PRESENCE_MASKS[np.clip(p, 0, N_LABELS - 1)], -1)
    return Outcomes(PRESENCE_MASKS[t] == pm, IS_BLEND[t] & (p == t), IS_BLEND[t].copy(), np.asarray(groups, dtype=object).astype(str))


def _scores(c: np.ndarray) -> np.ndarray:
    """``(..., 4)`` summed counts -> ``(..., 3)`` presence, salience (0 without blends), score."""
    pres = c[..., 1] / np.maximum(c[..., 0], 1e-300)
    sal = np.where(c[..., 2] > 0, c[..., 3] / np.maximum(c[..., 2], 1e-300), 0.0)
    return np.stack([pres, sal, 0.5 * pres + 0.5 * sal], axis=-1)


def bootstrap_ci(
    oc: Outcomes, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> dict[str, float]:
    """Point estimates and percentile bootstrap intervals over groups (actors).

    Actors are drawn with replacement (as many as there are); each draw's accuracies are
    computed from the pooled clips of the drawn actors. Returns ``acc_presence``,
    ``acc_salience``, ``score`` and ``<name>_low`` / ``<name>_high`` for each.

    >>> oc = outcomes(np.array([0, 0, 6, 6]), np.array([0, 1, 6, 7]), ["a", "a", "b", "b"])
    >>> r = bootstrap_ci(oc, n_boot=200)
    >>> r["score_low"] <= r["score"] <= r["score_high"]
    True
    """
    c = oc.counts()
    point = _scores(c.sum(axis=0))
    names = ("acc_presence", "acc_salience", "score")
    out = {n: float(v) for n, v in zip(names, point)}
    G = c.shape[0]
    if G == 0 or n_boot < 1:
        for n in names:
            out[f"{n}_low"] = out[f"{n}_high"] = float("nan")
        return out
    rng = np.random.default_rng(seed)
    W = rng.multinomial(G, np.full(G, 1.0 / G), size=n_boot).astype(float)
    boot = _scores(W @ c)  # (n_boot, 3)
    lo, hi = np.quantile(boot, [(1 - level) / 2, 1 - (1 - level) / 2], axis=0)
    for i, n in enumerate(names):
        out[f"{n}_low"], out[f"{n}_high"] = float(lo[i]), float(hi[i])
    return out


@dataclass(frozen=True)
class PairedResult:
    """``diff`` = score(a) - score(b) on the same clips, bootstrap interval over actors, permutation p-value."""

    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    diff_presence: float
    diff_salience: float
    n_clips: int
    n_groups: int


def paired_test(
    a: Outcomes, b: Outcomes, *, n_boot: int = 1000, n_perm: int = 2000, level: float = 0.95, seed: int = 0
) -> PairedResult:
    """Paired comparison of two configurations scored on the same clips.

    The interval is a paired bootstrap over actors (the same actors drawn for both); the
    p-value (two-sided) is a sign-flip permutation test over actors: under "no difference"
    the two configurations' outcomes of an actor may be swapped. A configuration against
    itself gives ``diff == 0`` and ``p_value == 1``.

    >>> oc = outcomes(np.array([0, 6, 1]), np.array([0, 6, 2]), ["x", "y", "z"])
    >>> r = paired_test(oc, oc, n_boot=100, n_perm=100)
    >>> (r.diff, r.p_value)
    (0.0, 1.0)
    """
    if not np.array_equal(a.groups, b.groups) or not np.array_equal(a.is_blend, b.is_blend):
        raise BlemoreError("paired test: the two configurations were not scored on the same clips")
    ca, cb = a.counts(), b.counts()
    sa, sb = _scores(ca.sum(axis=0)), _scores(cb.sum(axis=0))
    d = sa - sb
    G = ca.shape[0]
    rng = np.random.default_rng(seed)
    W = rng.multinomial(G, np.full(G, 1.0 / G), size=max(n_boot, 1)).astype(float)
    boot = _scores(W @ ca)[:, 2] - _scores(W @ cb)[:, 2]
    lo, hi = np.quantile(boot, [(1 - level) / 2, 1 - (1 - level) / 2])
    flips = rng.integers(0, 2, size=(max(n_perm, 1), G)).astype(float)[..., None]  # 1: swap this actor
    pa = (ca[None] * (1 - flips) + cb[None] * flips).sum(axis=1)
    pb = (cb[None] * (1 - flips) + ca[None] * flips).sum(axis=1)
    stat = _scores(pa)[:, 2] - _scores(pb)[:, 2]
    obs = abs(float(d[2]))
    p = (1.0 + float(np.count_nonzero(np.abs(stat) >= obs - 1e-12))) / (1.0 + len(stat))
    return PairedResult(float(d[2]), float(lo), float(hi), min(1.0, p), float(d[0]), float(d[1]), int(a.groups.size), G)


# --------------------------------------------------------------------------- decoders + selection


class _Decoder:
    """Turns model outputs into labels, with parameters fitted on predictions with known truth."""

    name = "decoder"

    def fit(self, out: np.ndarray, truth: np.ndarray) -> tuple[object, float]:
        pred = self.decode(out, None)
        return None, _fast_score(truth, pred)

    def decode(self, out: np.ndarray, params: object) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


def _fast_score(truth: np.ndarray, pred: np.ndarray) -> float:
    oc = outcomes(truth, pred, np.zeros(len(truth), dtype=int))
    return float(_scores(oc.counts().sum(axis=0))[2])


class _Thresholds(_Decoder):
    name = "thresholds"

    def fit(self, out, truth):
        from blemore.decoding import search_thresholds

        r = search_thresholds(out, truth)
        return (r.alpha, r.beta), r.score

    def decode(self, out, params):
        from blemore.decoding import decode_thresholds

        return decode_thresholds(out, *params)


class _Structured(_Decoder):
    name = "structured-kl"

    def decode(self, out, params):
        from blemore.decoding import decode_structured

        return decode_structured(out, rule="kl")


class _Argmax(_Decoder):
    name = "argmax36"

    def decode(self, out, params):
        return np.argmax(out, axis=1).astype(np.int64)


class _SalReg(_Decoder):
    name = "salience-reg"

    def decode(self, out, params):
        from blemore.models.multitask import decode_salreg

        return decode_salreg(out)


class LateFusionDecoder(_Decoder):
    """Outputs ``(n, S, 6)``: per-source probabilities; params = (weights, alpha, beta).

    Weights run over the convex grid with step ``step`` (all ``S``-tuples of multiples of
    ``step`` summing to 1); for each, the alpha/beta search; the best pair is kept
    (first maximum in grid order).
    """

    name = "late-fusion"

    def __init__(self, n_sources: int, *, step: float = 0.1) -> None:
        k = int(round(1 / step))
        self.weights = np.array([w for w in product(range(k + 1), repeat=n_sources) if sum(w) == k], dtype=float) / k

    def fit(self, out, truth):
        from blemore.decoding import search_thresholds

        best: tuple[object, float] = (None, -np.inf)
        for w in self.weights:
            r = search_thresholds(np.einsum("nsk,s->nk", out, w), truth)
            if r.score > best[1]:
                best = ((w, r.alpha, r.beta), r.score)
        return best

    def decode(self, out, params):
        from blemore.decoding import decode_thresholds

        w, a, b = params
        return decode_thresholds(np.einsum("nsk,s->nk", out, w), a, b)


THRESHOLDS = _Thresholds()
STRUCTURED = _Structured()
ARGMAX = _Argmax()
SALREG = _SalReg()


@dataclass(frozen=True)
class Choice:
    """An epoch (from 1) and decoder parameters, with the score they reached where chosen."""

    epoch: int
    params: object
    score: float


def choose(
    outs: Sequence[np.ndarray], truths: Sequence[np.ndarray], decoder: _Decoder, *, epochs: Sequence[int] | None = None
) -> Choice:
    """The epoch and parameters with the best score on the pooled ``outs`` (first maximum).

    ``outs[i]`` is ``(E, n_i, ...)`` - outputs after every epoch on clips with truth ``truths[i]``;
    at each candidate epoch the members' outputs are pooled and the decoder fitted on the pool.
    """
    truth = np.concatenate(truths)
    E = outs[0].shape[0]
    cands = range(1, E + 1) if epochs is None else epochs
    best = Choice(0, None, -np.inf)
    for e in cands:
        pooled = np.concatenate([o[e - 1] for o in outs])
        params, score = decoder.fit(pooled, truth)
        if score > best.score:
            best = Choice(int(e), params, float(score))
    return best


def _epoch_grid(E: int, max_points: int) -> list[int]:
    if E <= max_points:
        return list(range(1, E + 1))
    return sorted(set(np.round(np.linspace(1, E, max_points)).astype(int).tolist()))


# --------------------------------------------------------------------------- the run


@dataclass
class _Trained:
    """Outputs of one training kind on one feature set x model, by plan member."""

    plan: list[PlanMember]
    outputs: list[np.ndarray]  # per plan member: (E, n_eval, ...)
    folds: np.ndarray

    def outer(self) -> dict[int, np.ndarray]:
        return {m.outer: o for m, o in zip(self.plan, self.outputs) if m.role == "outer"}

    def inner(self, k: int) -> list[tuple[PlanMember, np.ndarray]]:
        return [(m, o) for m, o in zip(self.plan, self.outputs) if m.role == "inner" and m.outer == k]

    def test(self) -> np.ndarray | None:
        for m, o in zip(self.plan, self.outputs):
            if m.role == "all":
                return o
        return None


@dataclass
class _Row:
    method: str
    feature_set: str
    model: str
    split: str
    selection: str
    epoch: float | None
    pred: np.ndarray  # label indices aligned with the split's clips
    extra: dict = field(default_factory=dict)


def _evaluate(
    method: str, fs: str, model: str, tr: _Trained, decoder: _Decoder, truth: np.ndarray,
    *, nested: bool, with_test: bool, paper_test: bool, epochs_grid: list[int] | None,
    sensitivity: list[dict] | None = None,
) -> list[_Row]:
    """All selection rules for one trained kind + decoder."""
    n = len(truth)
    rows: list[_Row] = []
    outer = tr.outer()
    fold_ids = sorted(outer)
    val_idx = {k: np.flatnonzero(tr.folds == k) for k in fold_ids}
    # paper: chosen on the fold itself
    pred = np.full(n, -1, dtype=np.int64)
    choices = {}
    for k in fold_ids:
        c = choose([outer[k]], [truth[val_idx[k]]], decoder, epochs=epochs_grid)
        choices[k] = c
        pred[val_idx[k]] = decoder.decode(outer[k][c.epoch - 1], c.params)
        if sensitivity is not None and isinstance(decoder, _Thresholds):
            sensitivity.append(_sensitivity_row(fs, model, k, c, outer[k], truth[val_idx[k]]))
    rows.append(_Row(method, fs, model, "val", "paper", float(np.mean([c.epoch for c in choices.values()])), pred,
                     {"params": {str(k): _params_json(c.params) for k, c in choices.items()}}))
    # nested: chosen by inner CV inside the training folds
    if nested and all(tr.inner(k) for k in fold_ids):
        pred = np.full(n, -1, dtype=np.int64)
        eps = []
        for k in fold_ids:
            inner = tr.inner(k)
            c = choose([o for _, o in inner], [truth[m.eval] for m, _ in inner], decoder, epochs=epochs_grid)
            eps.append(c.epoch)
            pred[val_idx[k]] = decoder.decode(outer[k][c.epoch - 1], c.params)
        rows.append(_Row(method, fs, model, "val", "nested", float(np.mean(eps)), pred))
    # pooled: one choice on all out-of-fold predictions
    pooled = choose([outer[k] for k in fold_ids], [truth[val_idx[k]] for k in fold_ids], decoder, epochs=epochs_grid)
    pred = np.full(n, -1, dtype=np.int64)
    for k in fold_ids:
        pred[val_idx[k]] = decoder.decode(outer[k][pooled.epoch - 1], pooled.params)
    rows.append(_Row(method, fs, model, "val", "pooled", float(pooled.epoch), pred,
                     {"params": _params_json(pooled.params)}))
    test_out = tr.test()
    if with_test and test_out is not None:
        rows.append(_Row(method, fs, model, "test", "pooled", float(pooled.epoch),
                         decoder.decode(test_out[pooled.epoch - 1], pooled.params)))
        if paper_test:
            best_k = max(fold_ids, key=lambda k: choices[k].score)  # first best fold
            E = test_out.shape[0]
            rows.append(_Row(method, fs, model, "test", "paper", float(E),
                             decoder.decode(test_out[E - 1], choices[best_k].params)))
    return rows


def _params_json(params: object) -> object:
    if params is None:
        return None
    if isinstance(params, tuple):
        return [_params_json(p) for p in params]
    if isinstance(params, np.ndarray):
        return [round(float(x), 4) for x in params]
    return float(params)


def _sensitivity_row(fs: str, model: str, fold: int, c: Choice, out: np.ndarray, truth: np.ndarray) -> dict:
    from blemore.decoding import search_thresholds

    r = search_thresholds(out[c.epoch - 1], truth)
    grid = r.score_grid
    ia = int(np.argmin(np.abs(r.alphas - r.alpha)))
    ib = int(np.argmin(np.abs(r.betas - r.beta)))
    win = grid[max(ia - 1, 0) : ia + 2, max(ib - 1, 0) : ib + 2]
    return {
        "feature_set": fs, "model": model, "fold": fold, "epoch": c.epoch, "alpha": r.alpha, "beta": r.beta,
        "score": r.score, "local_min": float(win.min()), "local_max": float(win.max()),
        "local_range": float(win.max() - win.min()), "grid_median": float(np.median(grid)),
        "grid_min": float(grid.min()), "share_within_0.01": float(np.mean(grid >= r.score - 0.01)),
    }


def _resolve(config: CompareConfig):
    from blemore.protocol.benchmark import resolve_inputs

    # The benchmark's own checks of metadata, folds, test overlap, training settings, sets and models.
    inputs = resolve_inputs(config)
    train, test, sets, models = inputs.train, inputs.test, inputs.sets, inputs.models
    if config.n_boot < 0 or config.n_perm < 0:
        raise BlemoreError(f"n_boot and n_perm must be >= 0, got {config.n_boot} and {config.n_perm}")
    methods = parse_methods(config.methods)
    sources = list(dict.fromkeys(p for s in sets for p in s.split("+")))
    if any(m in methods for m in ("late-fusion", "attention-fusion")) and len(sources) < 2:
        raise BlemoreError("late-fusion and attention-fusion need at least two feature sources (--features a=... --features b=...)")
    if "attention-fusion" in methods:
        flat = [s for s in sources if not Path(config.features[s]).is_dir()]
        if flat:
            raise BlemoreError(
                f"attention-fusion needs frame-level features (a folder of <clip>.npy); "
                f"{flat[0]}={config.features[flat[0]]} is a clip-level file"
            )
    return train, test, methods, sets, models, sources


def check_compare_inputs(config: CompareConfig) -> None:
    """Check a comparison's inputs and methods without training (``benchmark --compare`` checks first)."""
    _resolve(config)


def _prepare(out: Path) -> None:
    if out.exists():
        if not out.is_dir():
            raise BlemoreError(f"{out}: exists and is not a folder; choose another --out")
        known = any((out / f).exists() for f in ("config.json", "compare.json"))
        if any(out.iterdir()) and not known:
            raise BlemoreError(f"{out}: folder exists, is not empty and is not a blemore run; choose another --out")


def run_compare(
    config: CompareConfig,
    *,
    echo: Callable[[str], None] | None = None,
    map_units: Callable[[Callable, list], list] | None = None,
) -> Path:
    """Train and score every method of ``config.methods`` against the baseline; write the files into the run folder.

    ``config.out`` may be an existing run folder of ``blemore benchmark`` (the compare files are
    added to it) or a new folder. Files are written under temporary names and renamed at the
    end, so a failed run leaves no half-written compare file. Returns the folder.

    ``map_units(train_unit, units)`` runs the training units (one per method kind x feature set x
    model) and returns their results in order; the default runs them here, one after the other.
    :func:`blemore.protocol.ray.compare_on_ray` passes one that makes each unit a Ray task. Seeds
    belong to the units, so the results do not depend on where they ran.

    Examples
    --------
    >>> run = run_compare(CompareConfig(features={"a": Path("a.npz"), "b": Path("b.npz")},
    ...                                 train_metadata=Path("train_metadata.csv"), epochs=60, lr=1e-3,
    ...                                 methods=["all"], out=Path("runs/compare")))  # doctest: +SKIP
    >>> print((run / "compare.md").read_text())  # doctest: +SKIP
    """
    from tqdm.auto import tqdm

    from blemore.features.loading import load_feature_set
    from blemore.models.heads import hidden_size
    from blemore.models.trainer import Member, TrainConfig, train_members

    started = time.time()
    train, test, methods, sets, models, sources = _resolve(config)
    tcfg = TrainConfig(epochs=config.epochs, lr=config.lr, weight_decay=config.weight_decay,
                       batch_size=config.batch_size, threads=config.threads)
    out = Path(config.out) if config.out is not None else Path("runs") / time.strftime("compare-%Y%m%d-%H%M%S")
    _prepare(out)

    n_train = len(train)
    truth = train["label_index"].to_numpy(dtype=np.int64)
    folds = train["fold"].to_numpy(dtype=np.int64)
    actors = train["actor"].tolist()
    test_truth = None
    test_clips: list[str] = []
    test_actors: list[object] = []
    # Test clips count only with labels (e.g. the demo's test_truth.csv); unlabeled ones are left out.
    if test is not None and len(test) and test["label_index"].notna().all():
        test_clips = test["filename"].tolist()
        test_actors = test["actor"].tolist()
        test_truth = test["label_index"].to_numpy(dtype=np.int64)
    clips = train["filename"].tolist() + test_clips
    test_rows = np.arange(n_train, len(clips)) if test_clips else None

    fused = "+".join(sources)
    need_sets = list(sets)
    if any(m in methods for m in ("late-fusion", "attention-fusion")):
        for s in sources + [fused]:
            if s not in need_sets:
                need_sets.append(s)
    cache: dict = {}
    # Rows as the benchmark builds them: one per clip (stats) or one per window (row_clip says whose).
    feats = {s: load_feature_set(s, config.features, clips, representation=config.representation,
                                 window=config.window, cache=cache, progress=config.progress) for s in need_sets}
    actors_all = actors + test_actors

    # ---- jobs: (kind, feature set, model)
    kinds: list[tuple[str, str, str]] = []
    for fs in need_sets:
        for model in models:
            kinds.append(("kl6", fs, model))
            if fs in sets:
                if "head36" in methods:
                    kinds.append(("ce36", fs, model))
                if "salience-reg" in methods:
                    kinds.append(("salreg", fs, model))
                if "actor-norm" in methods:
                    kinds.append(("kl6-actor", fs, model))
                if "actor-inclusive" in methods:
                    kinds.append(("kl6-inclusive", fs, model))
    if "attention-fusion" in methods:
        kinds.append(("attention", fused, "attention"))

    plan = nested_plan(folds, nested=config.nested, test=test_rows)
    incl_folds = clip_folds(n_train, n_folds=len(set(folds.tolist())), seed=config.seed)
    plan_incl = nested_plan(incl_folds, nested=False)

    def members_of(p: list[PlanMember], offset: int) -> list[Member]:
        return [Member(train=m.train, eval=m.eval, seed=_plan_seed(config.seed, m, p, offset + i)) for i, m in enumerate(p)]

    total_epochs = sum(config.attention_epochs * (len(set(folds.tolist())) + (test_rows is not None)) if k == "attention"
                       else config.epochs for k, _, _ in kinds)

    def train_unit(unit: tuple[str, str, str], progress: Callable[[int], object] | None = None) -> _Trained:
        """Train one (kind, feature set, model): all its members at once. Runs here or on a Ray worker."""
        kind, fs, model = unit
        if kind == "attention":
            return _train_attention(config, clips, sources, truth, folds, test_rows, progress)
        X, row_clip = feats[fs].X, feats[fs].row_clip
        p = plan_incl if kind == "kl6-inclusive" else plan
        fold_vec = incl_folds if kind == "kl6-inclusive" else folds
        mem = _window_members(members_of(p, 0), row_clip, len(clips))
        hidden = hidden_size(model)
        T = np.zeros((len(clips), 6), dtype=np.float32)
        T[:n_train] = SOFT_VECTORS[truth]
        if kind == "kl6-actor":
            X = actor_standardise(X, [actors_all[c] for c in row_clip])
        if kind in ("kl6", "kl6-actor", "kl6-inclusive"):
            outs = train_members(X, T[row_clip], mem, hidden=hidden, config=tcfg, progress=progress).eval_probs
        elif kind == "ce36":
            T36 = np.zeros((len(clips), N_LABELS), dtype=np.float32)
            T36[np.arange(n_train), truth] = 1.0
            outs = train_members(X, T36[row_clip], mem, hidden=hidden, config=tcfg, progress=progress).eval_probs
        else:  # salreg
            from blemore.models.multitask import SALREG_OUTPUTS, salreg_loss, salreg_targets

            Ts = np.zeros((len(clips), SALREG_OUTPUTS), dtype=np.float32)
            Ts[:n_train] = salreg_targets(truth)
            outs = _train_generic(X, Ts[row_clip], mem, hidden, SALREG_OUTPUTS, salreg_loss, tcfg, progress)
            outs = [_clip_means(o, m.eval_groups) for o, m in zip(outs, mem)]
        return _Trained(p, list(outs), fold_vec)

    if map_units is not None:  # e.g. Ray tasks (blemore.protocol.ray.compare_on_ray); same seeds, same results
        trained = dict(zip(kinds, map_units(train_unit, kinds)))
    else:
        bar = tqdm(total=total_epochs, desc="compare: training", unit="epoch", disable=not config.progress,
                   file=sys.stderr)
        trained = {}
        try:
            for unit in kinds:
                bar.set_postfix_str(" ".join(unit))
                trained[unit] = train_unit(unit, bar.update)
        finally:
            bar.close()

    # ---- selection + scoring
    E = config.epochs
    grid = _epoch_grid(E, 60)
    rows: list[_Row] = []
    sensitivity: list[dict] = []
    with_test = test_truth is not None
    for fs in need_sets:
        for model in models:
            base = trained[("kl6", fs, model)]
            rows += _evaluate("baseline", fs, model, base, THRESHOLDS, truth, nested=config.nested, with_test=with_test,
                              paper_test=True, epochs_grid=grid, sensitivity=sensitivity)
            if fs not in sets:
                continue
            if "structured" in methods:
                rows += _evaluate("structured", fs, model, base, STRUCTURED, truth, nested=config.nested,
                                  with_test=with_test, paper_test=False, epochs_grid=grid)
            if "head36" in methods:
                rows += _evaluate("head36", fs, model, trained[("ce36", fs, model)], ARGMAX, truth,
                                  nested=config.nested, with_test=with_test, paper_test=False, epochs_grid=grid)
            if "salience-reg" in methods:
                rows += _evaluate("salience-reg", fs, model, trained[("salreg", fs, model)], SALREG, truth,
                                  nested=config.nested, with_test=with_test, paper_test=False, epochs_grid=grid)
            if "actor-norm" in methods:
                rows += _evaluate("actor-norm", fs, model, trained[("kl6-actor", fs, model)], THRESHOLDS, truth,
                                  nested=config.nested, with_test=with_test, paper_test=False, epochs_grid=grid)
            if "actor-inclusive" in methods:
                rows += _evaluate("actor-inclusive", fs, model, trained[("kl6-inclusive", fs, model)], THRESHOLDS,
                                  truth, nested=False, with_test=False, paper_test=False, epochs_grid=grid)
    if "late-fusion" in methods:
        for model in models:
            parts = [trained[("kl6", s, model)] for s in sources]
            stacked = _Trained(plan, [np.stack([p.outputs[i] for p in parts], axis=2) for i in range(len(plan))], folds)
            rows += _evaluate("late-fusion", fused, model, stacked, LateFusionDecoder(len(sources)), truth,
                              nested=config.nested, with_test=with_test, paper_test=False,
                              epochs_grid=_epoch_grid(E, 12))
    if "attention-fusion" in methods:
        rows += _evaluate("attention-fusion", fused, "attention", trained[("attention", fused, "attention")], THRESHOLDS,
                          truth, nested=False, with_test=with_test, paper_test=False, epochs_grid=None)

    tables = _tables(rows, truth, test_truth, actors, test_actors, clips, n_train, models, config, sensitivity)
    _write(out, tables, sensitivity, config, methods, sets, models, sources, started)
    if echo is not None:
        echo(tables["md"])
    return out


def _train_generic(X, T, mem, hidden, out_dim, loss, tcfg, progress):
    from blemore.models.multitask import train_generic

    return train_generic(X, T, mem, hidden=hidden, out_dim=out_dim, loss=loss, config=tcfg, progress=progress)


def _train_attention(config: CompareConfig, clips, sources, truth, folds, test_rows, progress) -> _Trained:
    from blemore.labels import clip_stem
    from blemore.models.attention import AttentionConfig, pack_sequences, train_attention
    from blemore.models.trainer import Member

    seqs = []
    for s in sources:
        folder = Path(config.features[s])
        files = {p.stem: p for p in folder.glob("*.npy")}
        missing = [c for c in clips if c not in files]
        if missing:
            raise BlemoreError(f"{s}={folder}: no frame features for {len(missing)} clip(s), e.g. {missing[0]!r}")
        seqs.append([np.load(files[clip_stem(c)], allow_pickle=False) for c in clips])
    acfg = AttentionConfig(epochs=config.attention_epochs, lr=config.attention_lr, max_frames=config.max_frames,
                           layers=config.attention_layers, batch_size=config.batch_size)
    packed = pack_sequences(seqs, max_frames=acfg.max_frames)
    plan = nested_plan(folds, nested=False, test=test_rows)
    mem = [Member(train=m.train, eval=m.eval, seed=member_seed(config.seed, 1000 + i)) for i, m in enumerate(plan)]
    T = np.zeros((len(clips), 6), dtype=np.float32)
    T[: len(truth)] = SOFT_VECTORS[truth]
    outs = train_attention(packed, T, mem, config=acfg, progress=progress)
    return _Trained(plan, outs, folds)


def _tables(rows, truth, test_truth, actors, test_actors, clips, n_train, models, config, sensitivity) -> dict:
    val_groups = np.array([str(a) for a in actors], dtype=object)
    test_groups = np.array(
        [f"clip:{c}" if _missing(a) else str(a) for a, c in zip(test_actors, clips[n_train:])], dtype=object
    )
    results = []
    pair_rows = []
    paired_rows = []
    oc_of: dict[tuple, Outcomes] = {}
    for r in rows:
        t = truth if r.split == "val" else test_truth
        groups = val_groups if r.split == "val" else test_groups
        oc = outcomes(t, r.pred, groups)
        oc_of[(r.method, r.feature_set, r.model, r.split, r.selection)] = oc
        ci = bootstrap_ci(oc, n_boot=config.n_boot, seed=config.seed)
        results.append({
            "method": r.method, "feature_set": r.feature_set, "model": r.model, "split": r.split,
            "selection": r.selection, "epoch": r.epoch,
            "acc_presence": ci["acc_presence"], "acc_salience": ci["acc_salience"], "score": ci["score"],
            "ci_low": ci["score_low"], "ci_high": ci["score_high"],
            "presence_ci_low": ci["acc_presence_low"], "presence_ci_high": ci["acc_presence_high"],
            "salience_ci_low": ci["acc_salience_low"], "salience_ci_high": ci["acc_salience_high"],
            "gap": None, "n_clips": int(len(t)), "n_blends": int(IS_BLEND[t].sum()),
            "n_actors": int(len(set(groups.tolist()))), "note": _NOTES.get(r.method, ""),
        })
        from blemore.metrics import breakdown_by_pair

        for b in breakdown_by_pair(t, r.pred):
            pair_rows.append({"method": r.method, "feature_set": r.feature_set, "model": r.model, "split": r.split,
                              "selection": r.selection, "pair": b["group"], "n": b["n"],
                              "acc_presence": b["acc_presence"], "acc_salience": b["acc_salience"]})
    df = pd.DataFrame(results, columns=COMPARE_COLUMNS)
    # gap: val (paper) - test, per method / set / model
    for i, r in df.iterrows():
        if r["split"] != "test":
            continue
        v = df[(df.method == r.method) & (df.feature_set == r.feature_set) & (df.model == r.model)
               & (df.split == "val") & (df.selection == "paper")]
        if len(v):
            df.at[i, "gap"] = float(v.score.iloc[0] - r["score"])
    # paired tests against the baseline
    base_sets = sorted({k[1] for k in oc_of if k[0] == "baseline"})
    for key, oc in oc_of.items():
        method, fs, model, split, sel = key
        if method == "baseline":
            continue
        ref_fs = fs if fs in base_sets else None
        ref_model = model if model in models else models[0]
        ref = oc_of.get(("baseline", ref_fs, ref_model, split, sel))
        if ref is None:
            continue
        pr = paired_test(oc, ref, n_boot=config.n_boot, n_perm=config.n_perm, seed=config.seed)
        paired_rows.append({
            "method": method, "feature_set": fs, "model": model, "split": split, "selection": sel,
            "reference_method": "baseline", "reference_feature_set": ref_fs, "reference_model": ref_model,
            "diff_score": pr.diff, "ci_low": pr.ci_low, "ci_high": pr.ci_high, "p_value": pr.p_value,
            "diff_presence": pr.diff_presence, "diff_salience": pr.diff_salience,
            "n_clips": pr.n_clips, "n_actors": pr.n_groups,
        })
    paired = pd.DataFrame(paired_rows, columns=PAIRED_COLUMNS)
    labels = [LABEL_NAMES[i] for i in truth] + (
        [LABEL_NAMES[i] for i in test_truth] if test_truth is not None else [""] * (len(clips) - n_train)
    )
    pred_df = pd.DataFrame(
        {"split": ["val"] * n_train + ["test"] * (len(clips) - n_train),
         "actor": [str(g) for g in val_groups] + [str(g) for g in test_groups], "label": labels},
        index=pd.Index(clips, name="filename"),
    )
    cols = {}
    for r in rows:
        names = clips[:n_train] if r.split == "val" else clips[n_train:]
        col = f"{r.method}|{r.feature_set}|{r.model}|{r.selection}"
        cols.setdefault(col, pd.Series("", index=pred_df.index, dtype=object))
        cols[col].loc[names] = [LABEL_NAMES[i] if i >= 0 else "other" for i in r.pred]
    pred_df = pd.concat([pred_df, pd.DataFrame(cols)], axis=1)
    return {"compare": df, "paired": paired, "pairs": pd.DataFrame(pair_rows), "predictions": pred_df,
            "md": markdown(df, paired) + sensitivity_summary(pd.DataFrame(sensitivity))}


def _ci(row) -> str:
    if row is None:
        return "-"
    if np.isnan(row["ci_low"]):
        return f"{row['score']:.3f}"
    return f"{row['score']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"


def sensitivity_summary(sens: pd.DataFrame) -> str:
    """One line per feature set x model: how flat the alpha x beta surface is around the chosen point."""
    if sens is None or sens.empty:
        return ""
    lines = ["", "Threshold sensitivity (baseline, per fold at its chosen epoch):"]
    for (fs, model), g in sens.groupby(["feature_set", "model"], sort=False):
        lines.append(
            f"- {fs} / {model}: score range within one grid step of the chosen (alpha, beta) "
            f"{g.local_range.mean():.3f} on average (max {g.local_range.max():.3f}); chosen alpha "
            f"{g.alpha.min():.2f}-{g.alpha.max():.2f}, beta {g.beta.min():.2f}-{g.beta.max():.2f} across folds; "
            f"{100 * g['share_within_0.01'].mean():.1f} % of the grid within 0.01 of the best."
        )
    return "\n".join(lines) + "\n"


def markdown(df: pd.DataFrame, paired: pd.DataFrame) -> str:
    """The side-by-side table: score [95 % CI over actors] per selection rule, gap, difference to baseline."""
    head = (
        "| method | feature set | model | val, paper rule | val, nested | test | gap (val paper - test) "
        "| nested - baseline (p) | test - baseline (p) |\n|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    keys = df[["method", "feature_set", "model"]].drop_duplicates().itertuples(index=False)

    def get(sub, split, sel):
        s = sub[(sub.split == split) & (sub.selection == sel)]
        return None if s.empty else s.iloc[0]

    def diff(method, fs, model, split, sel):
        p = paired[(paired.method == method) & (paired.feature_set == fs) & (paired.model == model)
                   & (paired.split == split) & (paired.selection == sel)]
        if p.empty:
            return "-"
        r = p.iloc[0]
        return f"{r.diff_score:+.3f} ({r.p_value:.3f})"

    for method, fs, model in keys:
        sub = df[(df.method == method) & (df.feature_set == fs) & (df.model == model)]
        test = get(sub, "test", "pooled")
        gap = "-" if test is None or pd.isna(test["gap"]) else f"{test['gap']:+.3f}"
        vdiff = diff(method, fs, model, "val", "nested")
        if vdiff == "-" and method != "baseline":
            vdiff = diff(method, fs, model, "val", "paper")
            vdiff = "-" if vdiff == "-" else f"{vdiff} paper rule"
        lines.append(
            f"| {method} | {fs} | {model} | {_ci(get(sub, 'val', 'paper'))} | {_ci(get(sub, 'val', 'nested'))} "
            f"| {_ci(test)} | {gap} | {vdiff} | {diff(method, fs, model, 'test', 'pooled')} |"
        )
        if method == "baseline":
            tp = get(sub, "test", "paper")
            if tp is not None:
                gp = "-" if pd.isna(tp["gap"]) else f"{tp['gap']:+.3f}"
                lines.append(f"| baseline (paper test rule) | {fs} | {model} | | | {_ci(tp)} | {gp} | | |")
    foot = (
        "\nScore = (presence + salience) / 2, [95 % bootstrap interval over actors]. "
        "val, paper rule: epoch and thresholds chosen on the fold reported (optimistic); "
        "nested: chosen by inner cross-validation inside the training folds; "
        "test: epoch and parameters chosen on pooled validation, model trained on all training clips "
        "(baseline, paper test rule: last epoch, thresholds of the best fold). "
        "Differences to the baseline (same feature set and model) with a sign-flip permutation p-value over actors.\n"
    )
    if (df.method == "actor-norm").any():
        foot += "actor-norm is transductive: test clips are standardised with their own actor's unlabeled clips.\n"
    return head + "\n".join(lines) + "\n" + foot


def _atomic_csv(df: pd.DataFrame, path: Path, **kw) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    df.to_csv(tmp, float_format="%.6g", **kw)
    tmp.replace(path)


def _atomic_text(text: str, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    tmp.replace(path)


def _write(out: Path, tables: dict, sensitivity: list[dict], config: CompareConfig, methods, sets, models, sources,
           started: float) -> None:
    import torch

    new = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        _atomic_csv(tables["compare"], out / "compare.csv", index=False)
        _atomic_csv(tables["paired"], out / "paired.csv", index=False)
        _atomic_csv(tables["pairs"], out / "pairs.csv", index=False)
        _atomic_csv(pd.DataFrame(sensitivity), out / "sensitivity.csv", index=False)
        _atomic_csv(tables["predictions"], out / "compare_predictions.csv")
        _atomic_text(tables["md"], out / "compare.md")
        info = {
            "config": config.to_json(),
            "methods": methods, "sets": sets, "models": models, "sources": sources,
            "nested": config.nested, "n_boot": config.n_boot, "n_perm": config.n_perm,
            "test_scored": bool((tables["compare"].split == "test").any()),
            "selection": {
                "paper": "epoch and parameters chosen on the fold reported (val); test: last epoch, best fold's thresholds",
                "nested": "inner cross-validation on the training folds of each outer fold chooses epoch and parameters",
                "pooled": "epoch and parameters chosen on pooled out-of-fold predictions; test: model on all training clips",
            },
            "intervals": "95% percentile bootstrap over actors; paired: bootstrap over actors + sign-flip permutation p-value",
            "transductive": "actor-norm standardises test clips by their own actor's unlabeled test clips" if "actor-norm" in methods else None,
            "seconds": round(time.time() - started, 3),
            "torch": torch.__version__,
            "command": config.command if config.command is not None else sys.argv,
        }
        _atomic_text(json.dumps(info, indent=2, default=str), out / "compare.json")
    except BaseException:
        if new:
            shutil.rmtree(out, ignore_errors=True)
        raise


def paired_from_run(
    run: str | Path, a: str, b: str, *, split: str = "val", n_boot: int = 1000, n_perm: int = 2000, seed: int = 0
) -> PairedResult:
    """Paired test between any two configurations of a compare run (``compare_predictions.csv``).

    A configuration is ``method|feature_set|model|selection`` (a column of that file), e.g.
    ``actor-norm|facemesh|linear|nested``; ``split`` is ``val`` or ``test``.
    """
    path = Path(run) / "compare_predictions.csv"
    if not path.exists():
        raise BlemoreError(f"{run}: no compare_predictions.csv; run `blemore compare` with --out {run} first")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    configs = [c for c in df.columns if c.count("|") == 3]
    for c in (a, b):
        if c not in configs:
            shown = ", ".join(configs[:6]) + (" ..." if len(configs) > 6 else "")
            raise BlemoreError(f"{path}: no configuration {c!r}; known (method|feature_set|model|selection): {shown}")
    if split not in ("val", "test"):
        raise BlemoreError(f"split must be 'val' or 'test', got {split!r}")
    sub = df[(df["split"] == split) & (df[a] != "") & (df[b] != "") & (df["label"] != "")]
    if sub.empty:
        raise BlemoreError(f"{path}: no {split} clip with labels and predictions of both {a!r} and {b!r}")

    def idx(values) -> np.ndarray:
        return np.array([LABEL_INDEX.get(v, -1) for v in values], dtype=np.int64)

    truth = idx(sub["label"])
    groups = sub["actor"].to_numpy()
    return paired_test(outcomes(truth, idx(sub[a]), groups), outcomes(truth, idx(sub[b]), groups),
                       n_boot=n_boot, n_perm=n_perm, seed=seed)
