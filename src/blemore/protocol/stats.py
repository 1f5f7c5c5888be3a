"""Statistics over actors: per-clip outcomes, bootstrap intervals and paired tests.

Clips of one actor are not independent, so intervals resample *actors* (percentile
bootstrap) and paired comparisons flip actors (sign-flip permutation test). Every figure is
reduced from summed outcome counts by :func:`blemore.metrics.reduce_counts`, the same
reduce every scorer uses.

>>> oc = outcomes(np.array([0, 6, 1]), np.array([0, 6, 2]), ["x", "y", "z"])
>>> paired_test(oc, oc, n_boot=100, n_perm=100).p_value
1.0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from blemore.errors import BlemoreError
from blemore.labels import IS_BLEND, N_LABELS, PRESENCE_MASKS
from blemore.metrics import reduce_counts

__all__ = ["Outcomes", "outcomes", "bootstrap_ci", "PairedResult", "paired_test"]


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
    point = reduce_counts(c.sum(axis=0))
    names = ("acc_presence", "acc_salience", "score")
    out = {n: float(v) for n, v in zip(names, point)}
    G = c.shape[0]
    if G == 0 or n_boot < 1:
        for n in names:
            out[f"{n}_low"] = out[f"{n}_high"] = float("nan")
        return out
    rng = np.random.default_rng(seed)
    W = rng.multinomial(G, np.full(G, 1.0 / G), size=n_boot).astype(float)
    boot = reduce_counts(W @ c)  # (n_boot, 3)
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
    sa, sb = reduce_counts(ca.sum(axis=0)), reduce_counts(cb.sum(axis=0))
    d = sa - sb
    G = ca.shape[0]
    rng = np.random.default_rng(seed)
    W = rng.multinomial(G, np.full(G, 1.0 / G), size=max(n_boot, 1)).astype(float)
    boot = reduce_counts(W @ ca)[:, 2] - reduce_counts(W @ cb)[:, 2]
    lo, hi = np.quantile(boot, [(1 - level) / 2, 1 - (1 - level) / 2])
    flips = rng.integers(0, 2, size=(max(n_perm, 1), G)).astype(float)[..., None]  # 1: swap this actor
    pa = (ca[None] * (1 - flips) + cb[None] * flips).sum(axis=1)
    pb = (cb[None] * (1 - flips) + ca[None] * flips).sum(axis=1)
    stat = reduce_counts(pa)[:, 2] - reduce_counts(pb)[:, 2]
    obs = abs(float(d[2]))
    p = (1.0 + float(np.count_nonzero(np.abs(stat) >= obs - 1e-12))) / (1.0 + len(stat))
    return PairedResult(float(d[2]), float(lo), float(hi), min(1.0, p), float(d[0]), float(d[1]), int(a.groups.size), G)
