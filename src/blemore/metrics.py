"""The challenge's metrics: presence and salience accuracy, breakdowns, the confusion matrix.

Pure: imports numpy and the standard library only.

Semantics (as the challenge's scorer):

- **ACC_presence** - share of scored clips whose predicted *set* of emotions equals the
  true set (saliences ignored);
- **ACC_salience** - over the clips whose truth is a blend only: the prediction counts
  when it has exactly two emotions and the maps ``emotion -> round(salience)`` are equal;
  0.0 when no truth is a blend;
- **score** - the mean of the two.

Accuracies are ``count / n`` in float64.

Predictions are given either as label indices into :data:`~blemore.labels.VALID_LABELS`
(what decoders return; :data:`~blemore.labels.OTHER` for anything else) or, for
submissions that may hold invalid entries, as *codes* ``(presence mask, label index)``
from :func:`prediction_code`, which keep the emotion set of an invalid entry so that
presence is scored exactly as the challenge's scorer does.

>>> from blemore.labels import labels_to_indices
>>> truth = labels_to_indices(["ang_hap_30_70", "sad", "neu"])
>>> pred = labels_to_indices(["ang_hap_50_50", "sad", "hap"])
>>> s = score_indices(truth, pred)
>>> (round(s.acc_presence, 4), s.acc_salience, s.n_blends)
(0.6667, 0.0, 1)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from blemore.errors import BlemoreError
from blemore.labels import (
    EMOTION_INDEX,
    EMOTIONS,
    IS_BLEND,
    LABEL_INDEX,
    N_LABELS,
    OTHER,
    PRESENCE_MASKS,
    VALID_LABELS,
    label_from_parts,
)

__all__ = [
    "Scores",
    "UNKNOWN_EMOTION_BIT",
    "INVALID_MASK",
    "prediction_code",
    "accuracy_presence",
    "accuracy_salience",
    "score_indices",
    "score_codes",
    "score_outcomes",
    "confusion_matrix",
    "breakdown_by_emotion",
    "breakdown_by_salience",
    "breakdown_by_pair",
    "SALIENCE_GROUPS",
    "PAIR_GROUPS",
]

#: Bit set in a presence mask when a prediction names an emotion outside ``EMOTIONS``.
UNKNOWN_EMOTION_BIT = 1 << len(EMOTIONS)
#: Presence mask of a prediction that cannot be read at all (never equals a true mask).
INVALID_MASK = -1

_PRED_MASKS = np.append(PRESENCE_MASKS, INVALID_MASK)  # index OTHER (-1) -> INVALID_MASK


@dataclass(frozen=True)
class Scores:
    """Accuracies on a set of clips.

    ``n_clips`` clips were scored for presence, ``n_blends`` of them (blend truths) for
    salience.
    """

    acc_presence: float
    acc_salience: float
    score: float
    n_clips: int
    n_blends: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _as_indices(values: object, name: str, *, allow_other: bool) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise BlemoreError(f"{name} must be a 1-d array of label indices, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise BlemoreError(f"{name} must hold integer label indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    low = OTHER if allow_other else 0
    bad = (arr < low) | (arr >= N_LABELS)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        allowed = f"{OTHER} (other) or 0..{N_LABELS - 1}" if allow_other else f"0..{N_LABELS - 1}"
        raise BlemoreError(f"{name}[{i}] = {int(arr[i])} is not a label index ({allowed})")
    return arr


def _pair(truth_idx: object, pred_idx: object) -> tuple[np.ndarray, np.ndarray]:
    t = _as_indices(truth_idx, "truth", allow_other=False)
    p = _as_indices(pred_idx, "predictions", allow_other=True)
    if t.shape != p.shape:
        raise BlemoreError(f"truth and predictions differ in length: {t.size} vs {p.size}")
    return t, p


def score_outcomes(presence_ok: object, salience_ok: object, truth_is_blend: object) -> Scores:
    """Reduce per-clip outcomes to :class:`Scores` through :func:`reduce_counts`, the one reduce every scorer uses.

    ``salience_ok`` is only counted where ``truth_is_blend`` is true.
    """
    pres = np.asarray(presence_ok, dtype=bool)
    sal = np.asarray(salience_ok, dtype=bool)
    blend = np.asarray(truth_is_blend, dtype=bool)
    n, n_blends = int(pres.size), int(blend.sum())
    acc_p, acc_s, score = reduce_counts(
        np.array([n, np.count_nonzero(pres), n_blends, np.count_nonzero(sal & blend)], dtype=np.float64)
    ).tolist()
    return Scores(acc_presence=acc_p, acc_salience=acc_s, score=score, n_clips=n, n_blends=n_blends)


def _outcomes(t: np.ndarray, pred_mask: np.ndarray, pred_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    presence_ok = PRESENCE_MASKS[t] == pred_mask
    salience_ok = IS_BLEND[t] & (pred_idx == t)
    return presence_ok, salience_ok


def accuracy_presence(truth_idx: object, pred_idx: object) -> float:
    """Share of clips whose predicted emotion set equals the true set.

    A prediction of :data:`~blemore.labels.OTHER` counts as wrong (use :func:`score_codes`
    to score invalid entries by their emotion set).

    >>> accuracy_presence([0, 6], [0, 7])  # 'ang' right; 'ang_disg_50_50' vs '..._70_30': same set
    1.0
    """
    t, p = _pair(truth_idx, pred_idx)
    ok, _ = _outcomes(t, _PRED_MASKS[p], p)
    return float(np.count_nonzero(ok)) / t.size if t.size else 0.0


def accuracy_salience(truth_idx: object, pred_idx: object) -> float:
    """Share of blend truths predicted with exactly their label; 0.0 when no truth is a blend.

    >>> accuracy_salience([0, 6], [0, 7])
    0.0
    """
    t, p = _pair(truth_idx, pred_idx)
    _, ok = _outcomes(t, _PRED_MASKS[p], p)
    n_blends = int(IS_BLEND[t].sum())
    return float(np.count_nonzero(ok)) / n_blends if n_blends else 0.0


def score_indices(truth_idx: object, pred_idx: object) -> Scores:
    """Presence, salience and score of label-index predictions."""
    t, p = _pair(truth_idx, pred_idx)
    pres, sal = _outcomes(t, _PRED_MASKS[p], p)
    return score_outcomes(pres, sal, IS_BLEND[t])


def score_codes(truth_idx: object, pred_masks: object, pred_idx: object) -> Scores:
    """Score predictions given as codes (presence masks + label indices, see :func:`prediction_code`)."""
    t, p = _pair(truth_idx, pred_idx)
    m = np.asarray(pred_masks, dtype=np.int64)
    if m.shape != t.shape:
        raise BlemoreError(f"truth and prediction masks differ in length: {t.size} vs {m.size}")
    pres, sal = _outcomes(t, m, p)
    return score_outcomes(pres, sal, IS_BLEND[t])


def is_number(value: Any) -> bool:
    """Whether a JSON value is a finite number (booleans are not)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def salience_value(value: object) -> int | None:
    """A salience as the challenge's scorer reads it, ``round(float(value))``, or None when unreadable.

    Numbers, numeric strings (``"70"``, ``" 30.0 "``) and booleans are read; NaN, infinities and
    anything else are not.

    >>> (salience_value(69.5), salience_value("70"), salience_value("abc"), salience_value(float("nan")))
    (70, 70, None, None)
    """
    try:
        return round(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None


def prediction_code(entries: object) -> tuple[int, int]:
    """``(presence mask, label index)`` of one clip's submitted entries, as the challenge's scorer reads them.

    Presence reads the emotion names alone: the mask has bit i for ``EMOTIONS[i]`` and
    :data:`UNKNOWN_EMOTION_BIT` for any other name; saliences are not read (they may be
    absent). The label index is what salience is scored with:

    - two entries: the valid blend whose ``emotion -> round(float(salience))`` map equals the
      entries' (:func:`salience_value`; ``"70"`` reads as 70), else :data:`~blemore.labels.OTHER`;
    - one known emotion: that single label (its salience is never read);
    - anything else: :data:`~blemore.labels.OTHER`.

    Entries that cannot be read at all (not a list of objects with an ``"emotion"`` key) give
    ``(INVALID_MASK, OTHER)``.

    >>> prediction_code([{"emotion": "hap", "salience": 70}, {"emotion": "ang", "salience": "30"}])
    (9, 14)
    >>> prediction_code([{"emotion": "angry", "salience": 100}])
    (64, -1)
    """
    if not isinstance(entries, list):
        return INVALID_MASK, OTHER
    mask = 0
    for entry in entries:
        if not isinstance(entry, Mapping) or "emotion" not in entry:
            return INVALID_MASK, OTHER
        emotion = entry["emotion"]
        known = isinstance(emotion, str) and emotion in EMOTION_INDEX
        mask |= (1 << EMOTION_INDEX[emotion]) if known else UNKNOWN_EMOTION_BIT  # type: ignore[index]
    if mask & UNKNOWN_EMOTION_BIT:
        return mask, OTHER
    if len(entries) == 1:
        return mask, LABEL_INDEX[entries[0]["emotion"]]
    if len(entries) != 2:
        return mask, OTHER
    saliences = {entry["emotion"]: salience_value(entry.get("salience")) for entry in entries}
    if len(saliences) != 2 or any(v is None for v in saliences.values()):
        return mask, OTHER
    try:
        label = label_from_parts(saliences.items())  # type: ignore[arg-type]
    except BlemoreError:
        return mask, OTHER
    return mask, LABEL_INDEX[label.name]


def confusion_matrix(truth_idx: object, pred_idx: object) -> np.ndarray:
    """``(36, 37)`` counts: row = true label, column = predicted label, last column "other".

    >>> confusion_matrix([0, 0], [0, -1])[0, [0, 36]].tolist()
    [1, 1]
    """
    t, p = _pair(truth_idx, pred_idx)
    cols = np.where(p == OTHER, N_LABELS, p)
    out = np.zeros((N_LABELS, N_LABELS + 1), dtype=np.int64)
    np.add.at(out, (t, cols), 1)
    return out


def _group_row(name: str, pres: np.ndarray, sal: np.ndarray, blend: np.ndarray, **extra: object) -> dict:
    s = score_outcomes(pres, sal, blend)
    row: dict[str, object] = {"group": name, "n": s.n_clips}
    row.update(extra)
    row.update(
        {"acc_presence": s.acc_presence if s.n_clips else None, "acc_salience": s.acc_salience if s.n_blends else None}
    )
    return row


def _codes(truth_idx: object, pred_idx: object, pred_masks: object | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t, p = _pair(truth_idx, pred_idx)
    m = _PRED_MASKS[p] if pred_masks is None else np.asarray(pred_masks, dtype=np.int64)
    if m.shape != t.shape:
        raise BlemoreError(f"truth and prediction masks differ in length: {t.size} vs {m.size}")
    return t, p, m


def breakdown_by_emotion(
    truth_idx: object, pred_idx: object, *, pred_masks: object | None = None
) -> list[dict[str, object]]:
    """Per true emotion: the clips whose truth contains it.

    Each row: ``group`` (emotion), ``n``, ``recall`` (share of those clips whose prediction
    contains the emotion), ``acc_presence`` (exact set) and ``acc_salience`` (over their blend
    truths; None when there are none).
    """
    t, p, m = _codes(truth_idx, pred_idx, pred_masks)
    pres, sal = _outcomes(t, m, p)
    truth_masks = PRESENCE_MASKS[t]
    rows = []
    for i, e in enumerate(EMOTIONS):
        sel = (truth_masks >> i) & 1 == 1
        hit = (m[sel] >= 0) & ((m[sel] >> i) & 1 == 1)
        recall = float(np.count_nonzero(hit)) / int(sel.sum()) if sel.any() else None
        rows.append(_group_row(e, pres[sel], sal[sel], IS_BLEND[t[sel]], recall=recall))
    return rows


#: Groups of :func:`breakdown_by_salience`: singles and the three blend configurations
#: (saliences in canonical emotion order, e.g. ``70_30`` = 70 on the earlier of ``EMOTIONS``).
SALIENCE_GROUPS: tuple[str, ...] = ("single", "50_50", "70_30", "30_70")


def _salience_group(label_index: int) -> str:
    label = VALID_LABELS[label_index]
    if not label.is_blend:
        return "single"
    return f"{label.parts[0][1]}_{label.parts[1][1]}"


_SALIENCE_GROUP_OF = np.array([SALIENCE_GROUPS.index(_salience_group(i)) for i in range(N_LABELS)])
#: Groups of :func:`breakdown_by_pair`: the 6 singles, then the 10 pairs, in label order.
PAIR_GROUPS: tuple[str, ...] = tuple(dict.fromkeys(label.pair for label in VALID_LABELS))
_PAIR_GROUP_OF = np.array([PAIR_GROUPS.index(label.pair) for label in VALID_LABELS])


def _breakdown(
    truth_idx: object, pred_idx: object, pred_masks: object | None, group_of: np.ndarray, names: Sequence[str]
) -> list[dict[str, object]]:
    """One row per group of the truth labels (``group_of[label index]`` -> position in ``names``)."""
    t, p, m = _codes(truth_idx, pred_idx, pred_masks)
    pres, sal = _outcomes(t, m, p)
    groups = group_of[t]
    return [
        _group_row(name, pres[groups == g], sal[groups == g], IS_BLEND[t[groups == g]])
        for g, name in enumerate(names)
    ]


def breakdown_by_salience(
    truth_idx: object, pred_idx: object, *, pred_masks: object | None = None
) -> list[dict[str, object]]:
    """Per salience configuration of the truth (:data:`SALIENCE_GROUPS`): ``n``, ``acc_presence``, ``acc_salience``."""
    return _breakdown(truth_idx, pred_idx, pred_masks, _SALIENCE_GROUP_OF, SALIENCE_GROUPS)


def breakdown_by_pair(
    truth_idx: object, pred_idx: object, *, pred_masks: object | None = None
) -> list[dict[str, object]]:
    """Per true emotion set: the 6 singles and the 10 pairs (``"ang_hap"``), with ``n``, ``acc_presence``, ``acc_salience``."""
    return _breakdown(truth_idx, pred_idx, pred_masks, _PAIR_GROUP_OF, PAIR_GROUPS)


__all__ += ["is_number", "salience_value"]


def reduce_counts(counts: object) -> np.ndarray:
    """``(..., 4)`` summed counts (clips, right sets, blend clips, right blends) -> ``(..., 3)`` presence, salience, score.

    The counts form of :func:`score_outcomes` (salience 0.0 where no clip is a blend), for
    scorers that sum outcomes over groups or bootstrap draws.

    >>> reduce_counts(np.array([4.0, 3.0, 2.0, 1.0])).tolist()
    [0.75, 0.5, 0.625]
    """
    c = np.asarray(counts, dtype=np.float64)
    pres = np.where(c[..., 0] > 0, c[..., 1] / np.maximum(c[..., 0], 1e-300), 0.0)
    sal = np.where(c[..., 2] > 0, c[..., 3] / np.maximum(c[..., 2], 1e-300), 0.0)
    return np.stack([pres, sal, 0.5 * pres + 0.5 * sal], axis=-1)


__all__ += ["reduce_counts"]
