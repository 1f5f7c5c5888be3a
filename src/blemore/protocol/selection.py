"""Choosing an epoch and a decoder's parameters on predictions with known truth.

A :class:`Decoder` turns a method's outputs into label indices, with parameters fitted on
outputs whose truth is known: the paper's alpha/beta thresholds, threshold-free structured
decoding, the argmax of a 36-way head, the salience-regression decoding, and late fusion's
convex source weights (with thresholds). :func:`choose` picks, among candidate epochs, the
epoch and parameters with the best score on pooled outputs (the first maximum). Every
selection rule of the protocol (per fold, nested, pooled) is :func:`choose` on other
outputs.

>>> import numpy as np
>>> outs = [np.stack([np.eye(6)[[0, 1]], np.eye(6)[[0, 0]]])]  # 2 epochs x 2 clips
>>> choose(outs, [np.array([0, 1])], STRUCTURED).epoch
1
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from typing import Any, Sequence

import numpy as np

from blemore.decoding import decode_structured, decode_thresholds, search_thresholds
from blemore.metrics import score_indices
from blemore.models.multitask import decode_salreg

__all__ = [
    "Fit",
    "Decoder",
    "Thresholds",
    "Structured",
    "Argmax",
    "SalienceRegression",
    "LateFusionDecoder",
    "THRESHOLDS",
    "STRUCTURED",
    "ARGMAX",
    "SALREG",
    "Choice",
    "choose",
    "epoch_grid",
    "params_to_json",
    "params_from_json",
    "sensitivity_row",
]


@dataclass(frozen=True)
class Fit:
    """Decoder parameters fitted on some outputs, with the figures they reach there."""

    params: Any
    score: float
    acc_presence: float
    acc_salience: float


class Decoder:
    """Outputs -> label indices; parameters fitted on outputs with known truth (none by default)."""

    name = "decoder"

    def fit(self, outputs: np.ndarray, truth: np.ndarray) -> Fit:
        s = score_indices(truth, self.decode(outputs, None))
        return Fit(None, s.score, s.acc_presence, s.acc_salience)

    def decode(self, outputs: np.ndarray, params: Any) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


class Thresholds(Decoder):
    """The paper's alpha/beta rule; parameters: the best ``(alpha, beta)`` of the grid search."""

    name = "thresholds"

    def fit(self, outputs: np.ndarray, truth: np.ndarray) -> Fit:
        r = search_thresholds(outputs, truth)
        return Fit((r.alpha, r.beta), r.score, r.acc_presence, r.acc_salience)

    def decode(self, outputs: np.ndarray, params: Any) -> np.ndarray:
        return decode_thresholds(outputs, *params)


class Structured(Decoder):
    """Threshold-free: the valid label whose soft vector is closest to the probabilities (KL)."""

    name = "structured-kl"

    def decode(self, outputs: np.ndarray, params: Any) -> np.ndarray:
        return decode_structured(outputs, rule="kl")


class Argmax(Decoder):
    """The most probable of the 36 labels (outputs of a 36-way head)."""

    name = "argmax36"

    def decode(self, outputs: np.ndarray, params: Any) -> np.ndarray:
        return np.argmax(outputs, axis=1).astype(np.int64)


class SalienceRegression(Decoder):
    """The nearest label to presence sigmoids + dominant share (:func:`blemore.models.multitask.decode_salreg`)."""

    name = "salience-reg"

    def decode(self, outputs: np.ndarray, params: Any) -> np.ndarray:
        return decode_salreg(outputs)


class LateFusionDecoder(Decoder):
    """Outputs ``(n, S, 6)``: per-source probabilities; params = (weights, alpha, beta).

    Weights run over the convex grid with step ``step`` (all ``S``-tuples of multiples of
    ``step`` summing to 1); for each, the alpha/beta search; the best is kept (first
    maximum in grid order).
    """

    name = "late-fusion"

    def __init__(self, n_sources: int, *, step: float = 0.1) -> None:
        k = int(round(1 / step))
        self.weights = np.array([w for w in product(range(k + 1), repeat=n_sources) if sum(w) == k], dtype=float) / k

    def fit(self, outputs: np.ndarray, truth: np.ndarray) -> Fit:
        best = Fit(None, -np.inf, 0.0, 0.0)
        for w in self.weights:
            r = search_thresholds(np.einsum("nsk,s->nk", outputs, w), truth)
            if r.score > best.score:
                best = Fit((w, r.alpha, r.beta), r.score, r.acc_presence, r.acc_salience)
        return best

    def decode(self, outputs: np.ndarray, params: Any) -> np.ndarray:
        w, a, b = params
        return decode_thresholds(np.einsum("nsk,s->nk", outputs, np.asarray(w, dtype=float)), a, b)


THRESHOLDS = Thresholds()
STRUCTURED = Structured()
ARGMAX = Argmax()
SALREG = SalienceRegression()


@dataclass(frozen=True)
class Choice:
    """An epoch (from 1) and decoder parameters, with the figures they reached where chosen."""

    epoch: int
    fit: Fit

    @property
    def params(self) -> Any:
        return self.fit.params

    @property
    def score(self) -> float:
        return self.fit.score


def choose(
    outs: Sequence[np.ndarray], truths: Sequence[np.ndarray], decoder: Decoder, *, epochs: Sequence[int] | None = None
) -> Choice:
    """The epoch and parameters with the best score on the pooled ``outs`` (first maximum).

    ``outs[i]`` is ``(E, n_i, ...)`` — outputs after every epoch on clips with truth
    ``truths[i]``; at each candidate epoch the outputs are pooled and the decoder fitted on
    the pool.
    """
    truth = np.concatenate(truths)
    E = outs[0].shape[0]
    best = Choice(0, Fit(None, -np.inf, 0.0, 0.0))
    for e in range(1, E + 1) if epochs is None else epochs:
        pooled = outs[0][e - 1] if len(outs) == 1 else np.concatenate([o[e - 1] for o in outs])
        fit = decoder.fit(pooled, truth)
        if fit.score > best.score:
            best = Choice(int(e), fit)
    return best


def epoch_grid(epochs: int, max_points: int) -> list[int]:
    """Every epoch up to ``max_points`` of them; else ``max_points`` evenly spaced ones, the last included.

    >>> epoch_grid(5, 12)
    [1, 2, 3, 4, 5]
    >>> epoch_grid(200, 3)
    [1, 100, 200]
    """
    if epochs <= max_points:
        return list(range(1, epochs + 1))
    return sorted(set(np.round(np.linspace(1, epochs, max_points)).astype(int).tolist()))


def params_to_json(params: Any) -> Any:
    """Decoder parameters as JSON values (tuples -> lists, arrays -> lists of floats)."""
    if params is None:
        return None
    if isinstance(params, (tuple, list)):
        return [params_to_json(p) for p in params]
    if isinstance(params, np.ndarray):
        return [float(x) for x in params]
    return float(params)


def params_from_json(decoder: Decoder, value: Any) -> Any:
    """The parameters :func:`params_to_json` wrote, in the form ``decoder.decode`` takes."""
    if value is None:
        return None
    if isinstance(decoder, LateFusionDecoder):
        w, a, b = value
        return np.asarray(w, dtype=float), float(a), float(b)
    if isinstance(decoder, Thresholds):
        a, b = value
        return float(a), float(b)
    return value


def sensitivity_row(outputs: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """How flat the alpha x beta score surface is around its best point (probabilities at the chosen epoch)."""
    r = search_thresholds(outputs, truth)
    grid = r.score_grid
    ia = int(np.argmin(np.abs(r.alphas - r.alpha)))
    ib = int(np.argmin(np.abs(r.betas - r.beta)))
    win = grid[max(ia - 1, 0) : ia + 2, max(ib - 1, 0) : ib + 2]
    return {
        "alpha": r.alpha, "beta": r.beta, "score": r.score, "local_min": float(win.min()),
        "local_max": float(win.max()), "local_range": float(win.max() - win.min()),
        "grid_median": float(np.median(grid)), "grid_min": float(grid.min()),
        "share_within_0.01": float(np.mean(grid >= r.score - 0.01)),
    }
