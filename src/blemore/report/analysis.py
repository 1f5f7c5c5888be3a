"""The numbers behind the report's figures: pure functions on arrays and tables.

Scores are the challenge's: per-clip outcomes (:func:`blemore.protocol.stats.outcomes`)
reduced by :func:`blemore.metrics.reduce_counts` (presence: same set of emotions; salience:
blend truths only, exact label, 0.0 where a group holds no blend). Label orders used by the
figures:

- :data:`GROUPED_LABELS` - the 36 labels grouped by pair, each pair's salience
  configurations in the order 70/30, 50/50, 30/70 (first emotion's share falling);
- :data:`PRESENCE_SETS` - the 16 emotion sets (6 singles, 10 pairs);
- :data:`LABEL_KINDS` - singles, 50/50 blends, 70/30 blends.

>>> from blemore.labels import labels_to_indices
>>> t = labels_to_indices(["hap", "ang_hap_70_30"]); p = labels_to_indices(["hap", "ang_hap_50_50"])
>>> presence_confusion(t, p).sum(), group_scores(t, p, ["a", "b"])["acc_presence"].tolist()
(2, [1.0, 1.0])
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
import pandas as pd

from blemore.errors import BlemoreError
from blemore.labels import LABEL_INDEX, N_LABELS, OTHER, PRESENCE_MASKS, VALID_LABELS
from blemore.metrics import confusion_matrix, reduce_counts
from blemore.protocol.stats import outcomes

__all__ = [
    "GROUPED_LABELS",
    "PRESENCE_SETS",
    "label_indices",
    "label_confusion",
    "presence_confusion",
    "group_scores",
    "label_shares",
    "label_kind",
    "LABEL_KINDS",
    "PRESENCE_NAMES",
    "UNKNOWN",
    "summarise_results",
    "sample_std",
    "pair_of",
    "salience_position",
    "pca_2d",
]

#: Sentinel for "no known truth" (empty label cell).
UNKNOWN = -2


def _grouped() -> tuple[int, ...]:
    singles = [i for i, lab in enumerate(VALID_LABELS) if not lab.is_blend]
    order = {(70, 30): 0, (50, 50): 1, (30, 70): 2}
    blends = sorted(
        (i for i, lab in enumerate(VALID_LABELS) if lab.is_blend),
        key=lambda i: (i // 3, order[tuple(s for _, s in VALID_LABELS[i].parts)]),
    )
    return tuple(singles + blends)


#: Label indices in display order: singles, then each pair as 70/30, 50/50, 30/70.
GROUPED_LABELS: tuple[int, ...] = _grouped()
#: The 16 presence sets as bit masks (6 singles then 10 pairs, label order).
PRESENCE_SETS: tuple[int, ...] = tuple(dict.fromkeys(int(m) for m in PRESENCE_MASKS))
PRESENCE_NAMES: tuple[str, ...] = tuple(
    "+".join(VALID_LABELS[int(np.argmax(PRESENCE_MASKS == m))].emotions) for m in PRESENCE_SETS
)


def label_indices(names: Sequence[str], *, unknown: int = UNKNOWN) -> np.ndarray:
    """Label indices of label names: empty -> ``unknown``, not a valid label -> OTHER."""
    out = np.empty(len(names), dtype=np.int64)
    for i, name in enumerate(names):
        name = "" if name is None else str(name).strip()
        out[i] = unknown if name in ("", "nan", "None") else LABEL_INDEX.get(name, OTHER)
    return out


def _check(truth: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(truth, dtype=np.int64)
    p = np.asarray(pred, dtype=np.int64)
    if t.shape != p.shape or t.ndim != 1:
        raise BlemoreError(f"truth {t.shape} and predictions {p.shape} must be 1-D and of equal length")
    if t.size and (t.min() < 0 or t.max() >= N_LABELS):
        raise BlemoreError("truth holds values that are not label indices 0..35")
    if p.size and (p.min() < OTHER or p.max() >= N_LABELS):
        raise BlemoreError("predictions hold values that are not label indices 0..35 or OTHER (-1)")
    return t, p


def label_confusion(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """(36, 37) counts, row = true label, column = predicted label, last column "other".

    Counted by :func:`blemore.metrics.confusion_matrix`.
    """
    t, p = _check(truth, pred)
    return np.asarray(confusion_matrix(t, p))


def presence_confusion(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """(16, 17) counts over :data:`PRESENCE_SETS`; last column: predictions that are no valid label."""
    t, p = _check(truth, pred)
    col_of = {m: i for i, m in enumerate(PRESENCE_SETS)}
    rows = np.array([col_of[int(m)] for m in PRESENCE_MASKS[t]], dtype=np.int64)
    cols = np.array(
        [col_of[int(PRESENCE_MASKS[x])] if x != OTHER else len(PRESENCE_SETS) for x in p], dtype=np.int64
    )
    out = np.zeros((len(PRESENCE_SETS), len(PRESENCE_SETS) + 1), dtype=np.int64)
    np.add.at(out, (rows, cols), 1)
    return out


def group_scores(truth: np.ndarray, pred: np.ndarray, groups: Sequence[str]) -> pd.DataFrame:
    """Presence and salience accuracy per group (actor, pair, ...), in order of first appearance.

    Columns ``group, n, n_blends, acc_presence, acc_salience``. The numbers are the
    challenge's (:func:`blemore.metrics.reduce_counts` of summed per-clip outcomes): a
    group without blend truths has salience 0.0 and ``n_blends`` 0, which the page shows
    as a dash, not as a score.
    """
    t, p = _check(truth, pred)
    groups = np.asarray([str(g) for g in groups])
    if len(groups) != len(t):
        raise BlemoreError(f"{len(groups)} groups for {len(t)} clips")
    names, first = np.unique(groups, return_index=True)  # counts() orders groups as np.unique does
    counts = outcomes(t, p, groups).counts()
    reduced = reduce_counts(counts)
    order = np.argsort(first, kind="stable")
    return pd.DataFrame(
        {
            "group": names[order].astype(str),
            "n": counts[order, 0].astype(np.int64),
            "n_blends": counts[order, 2].astype(np.int64),
            "acc_presence": reduced[order, 0],
            "acc_salience": reduced[order, 1],
        },
        columns=["group", "n", "n_blends", "acc_presence", "acc_salience"],
    )


#: The kinds of label :func:`label_shares` groups by: singles, equal blends, unequal blends.
LABEL_KINDS: tuple[str, ...] = ("single", "blend 50/50", "blend 70/30")


def label_kind(index: int) -> int:
    """0 for a single emotion (or neutral), 1 for a 50/50 blend, 2 for a 70/30 (or 30/70) blend."""
    label = VALID_LABELS[index]
    if not label.is_blend:
        return 0
    return 1 if label.parts[0][1] == 50 else 2


_KIND_OF = np.array([label_kind(i) for i in range(N_LABELS)], dtype=np.int64)
_SET_OF = np.array([PRESENCE_SETS.index(int(m)) for m in PRESENCE_MASKS], dtype=np.int64)


def label_shares(labels: np.ndarray, *, by: Literal["label", "set", "kind"] = "label") -> np.ndarray:
    """Share of the valid labels in ``labels`` (indices; negative ones left out) per group.

    ``by``: ``"label"`` - the 36 labels in label order; ``"set"`` - the 16 emotion sets of
    :data:`PRESENCE_SETS`; ``"kind"`` - :data:`LABEL_KINDS`. Zeros if there is no valid label.

    >>> from blemore.labels import labels_to_indices
    >>> label_shares(labels_to_indices(["hap", "ang_hap_70_30", "ang_hap_50_50", "sad"]), by="kind").tolist()
    [0.5, 0.25, 0.25]
    """
    idx = np.asarray(labels, dtype=np.int64)
    idx = idx[(idx >= 0) & (idx < N_LABELS)]
    if by == "set":
        idx, size = _SET_OF[idx], len(PRESENCE_SETS)
    elif by == "kind":
        idx, size = _KIND_OF[idx], len(LABEL_KINDS)
    else:
        size = N_LABELS
    counts = np.bincount(idx, minlength=size).astype(np.float64)
    return counts / counts.sum() if counts.sum() else counts


def pair_of(index: int) -> str:
    """``"ang+hap"`` for a blend label, the emotion for a single."""
    return "+".join(VALID_LABELS[index].emotions)


def salience_position(index: int, pair: tuple[str, str]) -> int | None:
    """Where a label sits on the line from ``pair[0]`` alone (0) to ``pair[1]`` alone (4).

    1, 2, 3 are 70/30, 50/50, 30/70 (share of ``pair[0]`` falling); None if the
    label is neither of the two emotions nor a blend of exactly them.
    """
    label = VALID_LABELS[index]
    if not label.is_blend:
        return {pair[0]: 0, pair[1]: 4}.get(label.emotions[0])
    if set(label.emotions) != set(pair):
        return None
    share = label.salience_map[pair[0]]
    return {70: 1, 50: 2, 30: 3}[share]


def pca_2d(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project rows of ``X`` on their first two principal components.

    Columns are centred and scaled to unit variance first (constant and non-finite
    columns dropped). Returns ``(scores (N, 2), explained variance ratio (2,))``;
    missing components are zero.

    >>> Z, ratio = pca_2d(np.array([[0.0, 0], [1, 1], [2, 2.1]]))
    >>> Z.shape, bool(ratio[0] > 0.99)
    ((3, 2), True)
    """
    X = np.asarray(X, dtype=np.float64)
    X = X[:, np.isfinite(X).all(axis=0)]
    scores = np.zeros((X.shape[0], 2))
    ratio = np.zeros(2)
    if X.shape[0] < 2 or X.shape[1] == 0:
        return scores, ratio
    X = X - X.mean(axis=0)
    sd = X.std(axis=0)
    X = X[:, sd > 1e-12 * max(1.0, float(sd.max()))] / sd[sd > 1e-12 * max(1.0, float(sd.max()))]
    if X.shape[1] == 0:
        return scores, ratio
    u, s, vt = np.linalg.svd(X, full_matrices=False)
    k = min(2, len(s))
    # Fix the sign so that the largest loading of each component is positive (deterministic output).
    signs = np.sign(vt[np.arange(k), np.argmax(np.abs(vt[:k]), axis=1)])
    signs[signs == 0] = 1
    scores[:, :k] = u[:, :k] * s[:k] * signs
    total = float(np.sum(s**2))
    if total > 0:
        ratio[:k] = s[:k] ** 2 / total
    return scores, ratio


def sample_std(values: np.ndarray) -> float:
    """Standard deviation with ``ddof=1`` over the finite values; NaN for fewer than two.

    >>> sample_std(np.array([1.0, 3.0, np.nan]))
    1.4142135623730951
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.std(ddof=1)) if v.size > 1 else float("nan")


def summarise_results(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, feature set, model): fold mean/std, test, test-pooled, thresholds.

    Uses the ``mean``/``std`` rows where present, else computes them from the fold
    rows ``0``..``4`` (sample std, ``ddof=1``, as the run writes it). Columns: ``method, feature_set, model,
    n_folds, {presence,salience,score}_{mean,std,test,pooled}, alpha_mean, alpha_std,
    beta_mean, beta_std, epoch, test_alpha, test_beta``.
    """
    rows = []
    keys = ["method", "feature_set", "model"]
    for key, group in results.groupby(keys, sort=False):
        folds = group[group["fold"].str.fullmatch(r"\d+")]
        by_fold = {str(f): r for f, r in zip(group["fold"], group.to_dict("records"))}
        row = dict(zip(keys, key), n_folds=len(folds))
        for metric, name in (("acc_presence", "presence"), ("acc_salience", "salience"), ("score", "score")):
            for stat in ("mean", "std"):
                if stat in by_fold and pd.notna(by_fold[stat][metric]):
                    row[f"{name}_{stat}"] = float(by_fold[stat][metric])
                elif len(folds):
                    values = folds[metric].to_numpy(float)
                    row[f"{name}_{stat}"] = float(
                        np.nanmean(values) if stat == "mean" else sample_std(values)
                    )
                else:
                    row[f"{name}_{stat}"] = np.nan
            row[f"{name}_test"] = float(by_fold["test"][metric]) if "test" in by_fold else np.nan
            row[f"{name}_pooled"] = (
                float(by_fold["test-pooled"][metric]) if "test-pooled" in by_fold else np.nan
            )
        for col in ("alpha", "beta"):
            values = folds[col].to_numpy(float) if col in folds else np.array([])
            finite = values[np.isfinite(values)]
            row[f"{col}_mean"] = float(finite.mean()) if finite.size else np.nan
            row[f"{col}_std"] = sample_std(finite)
            row[f"test_{col}"] = float(by_fold["test"].get(col, np.nan)) if "test" in by_fold else np.nan
        epochs = folds["epoch"].to_numpy(float) if "epoch" in folds else np.array([])
        epochs = epochs[np.isfinite(epochs)]
        row["epoch"] = float(np.median(epochs)) if epochs.size else np.nan
        rows.append(row)
    return pd.DataFrame(rows)
