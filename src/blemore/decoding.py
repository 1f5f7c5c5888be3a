"""From probability vectors to labels: the baseline's alpha/beta rule, its threshold search, and a threshold-free rule.

Pure: imports numpy and the standard library only.

Every function takes an ``(N, 6)`` array of non-negative scores, one column per
emotion in :data:`~blemore.labels.EMOTIONS` order (``ang, disg, fea, hap, sad, neu``),
and returns label indices into :data:`~blemore.labels.VALID_LABELS`. Inputs are cast to
float64 *before* any comparison, so a float32 model output is decoded exactly like its
float64 copy. (The reference reads a float32 output otherwise: under numpy 1.x it compares
the output with alpha in float32 (under numpy 2 in float64), and under both it takes
``p1 - p2`` in float32 before comparing with beta. The readings differ only for entries
within float32 rounding of a threshold; blemore is the exact float64 reading.)

The alpha/beta rule (:func:`decode_thresholds`), as in the official baseline
(BlEmoRe ``post_process``), for one row ``p``:

1. keep the two largest entries (ties: the lower column first), set the others to 0;
2. if the largest is below ``alpha``, predict that emotion alone;
3. otherwise drop the entries below ``alpha``; if one remains, predict it alone;
4. if neutral is one of the two that remain, predict the larger alone
   (the non-neutral one wins a tie);
5. otherwise predict the pair: 50/50 if ``|p1 - p2| <= beta``, else 70/30 with 70 on
   the larger.

Ties in step 1 go to the lower column (a stable sort): of exactly equal entries, the one
in the earlier column counts as the larger. The reference keeps the two columns numpy's
default ``argsort`` puts first, and that sort is not stable everywhere
(``benchmarks/check_ties.py``): numpy 1.x keeps the column order on CPUs without AVX-512
but not with it, numpy 2 not on AVX2 CPUs either, only without AVX2. When the second
largest entry is tied, the reference may therefore keep another column: for
``[0.1, 0, 0.2, 0.2, 0.3, 0.2]`` it keeps ``sad`` and ``hap`` where it sorts with AVX-512
(numpy 1.x) or AVX2 (numpy 2), ``sad`` and ``fea`` elsewhere, as blemore does everywhere.

So the prediction is the pair exactly when the second largest entry is ``>= alpha`` (and
``> 0``) and neither of the two is neutral; in every other case it is the top emotion
alone. :func:`search_thresholds` uses that to evaluate the whole alpha x beta grid at once.

>>> import numpy as np
>>> from blemore.labels import LABEL_NAMES
>>> p = np.array([[0.05, 0.0, 0.0, 0.55, 0.40, 0.0], [0.9, 0.0, 0.0, 0.0, 0.0, 0.1]])
>>> [LABEL_NAMES[i] for i in decode_thresholds(p, alpha=0.3, beta=0.1)]
['hap_sad_70_30', 'ang']
>>> [LABEL_NAMES[i] for i in decode_thresholds(p, alpha=0.3, beta=0.2)]
['hap_sad_50_50', 'ang']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

from blemore.errors import BlemoreError
from blemore.labels import (
    EMOTIONS,
    IS_BLEND,
    LABEL_INDEX,
    N_LABELS,
    NEUTRAL_INDEX,
    PRESENCE_MASKS,
    SOFT_VECTORS,
)

__all__ = [
    "GRID",
    "ThresholdSearch",
    "check_probabilities",
    "check_thresholds",
    "SUM_TOLERANCE",
    "decode_thresholds",
    "search_thresholds",
    "accuracy_grids",
    "decode_structured",
    "STRUCTURED_RULES",
]

#: The baseline's grid for both alpha and beta: ``np.linspace(0.05, 0.95, 20)``.
GRID: np.ndarray = np.linspace(0.05, 0.95, 20)
GRID.setflags(write=False)

#: Rules accepted by :func:`decode_structured`.
STRUCTURED_RULES: tuple[str, ...] = ("kl",)

_N_EMOTIONS = len(EMOTIONS)


def _pair_table() -> np.ndarray:
    """(6, 6, 2) label index of the pair (i, j): ``[..., 0]`` 50/50, ``[..., 1]`` 70 on i, 30 on j."""
    table = np.full((_N_EMOTIONS, _N_EMOTIONS, 2), -1, dtype=np.int64)
    for i in range(_N_EMOTIONS):
        for j in range(_N_EMOTIONS):
            if i == j or NEUTRAL_INDEX in (i, j):
                continue
            lo, hi = min(i, j), max(i, j)
            base = f"{EMOTIONS[lo]}_{EMOTIONS[hi]}"
            table[i, j, 0] = LABEL_INDEX[f"{base}_50_50"]
            table[i, j, 1] = LABEL_INDEX[f"{base}_70_30" if i == lo else f"{base}_30_70"]
    table.setflags(write=False)
    return table


_PAIR = _pair_table()


#: Largest ``|row sum - 1|`` accepted by :func:`check_probabilities` with ``sum_to_one``:
#: wide enough for probabilities written with 3 decimals (6 x 0.0005), narrow enough to
#: catch scores that are not probabilities (logits, independent sigmoids, percentages).
SUM_TOLERANCE = 0.01


def check_probabilities(
    probs: object,
    *,
    source: str = "probabilities",
    names: Sequence[str] | None = None,
    sum_to_one: bool = False,
) -> np.ndarray:
    """Validate an ``(N, 6)`` score matrix and return it as a new float64 array.

    Every entry must be finite and non-negative. The decoding rules compare entries only,
    so by default rows need not sum to 1; ``sum_to_one`` (what blemore asks of probability
    files) also requires ``|row sum - 1| <= SUM_TOLERANCE`` (0.01).

    Parameters
    ----------
    probs : array-like, shape (N, 6)
        One row per clip, columns in :data:`~blemore.labels.EMOTIONS` order.
    source : str, keyword-only
        What to call the input in error messages (e.g. a file name).
    names : sequence of str, optional, keyword-only
        Clip names of the rows, used to name a bad row in error messages.
    sum_to_one : bool, keyword-only
        Require every row to sum to 1 within :data:`SUM_TOLERANCE`.

    Raises
    ------
    BlemoreError
        Wrong shape, non-numeric, NaN/infinite or negative entries, or (``sum_to_one``) a
        row that does not sum to 1; the message names the first bad row.

    >>> check_probabilities([[0.1, 0.2, 0.3, 0.4, 0.0, 0.0]]).dtype
    dtype('float64')
    """
    try:
        arr = np.array(probs, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise BlemoreError(f"{source}: expected an (N, 6) numeric array, could not read it as numbers ({exc})") from None
    if arr.ndim != 2 or arr.shape[1] != _N_EMOTIONS:
        raise BlemoreError(
            f"{source}: expected shape (N, 6) with columns {', '.join(EMOTIONS)}, got shape {arr.shape}"
        )

    def row_name(i: int) -> str:
        if names is not None and i < len(names):
            return f"row {i} (clip {names[i]!r})"
        return f"row {i}"

    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.flatnonzero(bad.any(axis=1))[0])
        raise BlemoreError(f"{source}: {row_name(i)} has NaN or infinite values: {arr[i].tolist()}")
    neg = arr < 0
    if neg.any():
        i = int(np.flatnonzero(neg.any(axis=1))[0])
        raise BlemoreError(
            f"{source}: {row_name(i)} has negative values: {arr[i].tolist()} "
            "(expected probabilities; apply softmax to logits first)"
        )
    if sum_to_one and arr.size:
        off = np.abs(arr.sum(axis=1) - 1.0) > SUM_TOLERANCE
        if off.any():
            i = int(np.flatnonzero(off)[0])
            raise BlemoreError(
                f"{source}: {row_name(i)} sums to {arr[i].sum():.6g}, not 1 (within {SUM_TOLERANCE}); "
                f"expected probabilities: divide each row by its sum, or apply softmax to logits "
                f"({int(off.sum())} row(s) affected)"
            )
    return arr


def _check_threshold(value: float, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise BlemoreError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(v):
        raise BlemoreError(f"{name} must be finite, got {value!r}")
    return v


def check_thresholds(alpha: float, beta: float) -> tuple[float, float]:
    """``(alpha, beta)`` as floats, each checked to lie in [0, 1] (probabilities and their differences).

    >>> check_thresholds(0.3, 0.1)
    (0.3, 0.1)
    """
    out = []
    for name, value in (("alpha", alpha), ("beta", beta)):
        v = _check_threshold(value, name)
        if not 0.0 <= v <= 1.0:
            raise BlemoreError(
                f"{name} must be in [0, 1] (it is compared with probabilities), got {value!r}; "
                "`blemore tune` finds both"
            )
        out.append(v)
    return out[0], out[1]


def _check_grid(values: object, name: str) -> np.ndarray:
    try:
        arr = np.array(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise BlemoreError(f"{name} must be a sequence of numbers, got {values!r}") from None
    if arr.size == 0:
        raise BlemoreError(f"{name} must not be empty")
    if not np.isfinite(arr).all():
        raise BlemoreError(f"{name} must be finite, got {arr.tolist()}")
    return arr


def _top_two(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Indices and values of the largest and second largest entry per row (ties: lower column first)."""
    order = np.argsort(-p, axis=1, kind="stable")
    i1, i2 = order[:, 0], order[:, 1]
    rows = np.arange(p.shape[0])
    return i1, i2, p[rows, i1], p[rows, i2]


def decode_thresholds(probs: object, alpha: float, beta: float) -> np.ndarray:
    """Decode rows by the baseline's alpha/beta rule (see the module docstring).

    Parameters
    ----------
    probs : array-like, shape (N, 6)
        Non-negative scores (probabilities), columns in ``EMOTIONS`` order. Cast to
        float64 before comparing.
    alpha : float
        Presence threshold: an emotion is present when its score is ``>= alpha``.
    beta : float
        Salience threshold: a pair is 50/50 when its two scores differ by ``<= beta``.

    Returns
    -------
    numpy.ndarray of int64, shape (N,)
        Indices into :data:`~blemore.labels.VALID_LABELS`.

    >>> decode_thresholds([[0.0, 0.0, 0.0, 0.5, 0.5, 0.0]], 0.3, 0.1).tolist() == [LABEL_INDEX["hap_sad_50_50"]]
    True
    """
    p = check_probabilities(probs)
    a, b = check_thresholds(alpha, beta)
    i1, i2, v1, v2 = _top_two(p)
    is_pair = (v2 >= a) & (v2 > 0) & (i1 != NEUTRAL_INDEX) & (i2 != NEUTRAL_INDEX)
    pair_label = np.where(v1 - v2 <= b, _PAIR[i1, i2, 0], _unequal_pair(i1, i2, v1, v2))
    return np.where(is_pair, pair_label, i1).astype(np.int64)


def _unequal_pair(i1: np.ndarray, i2: np.ndarray, v1: np.ndarray, v2: np.ndarray) -> np.ndarray:
    """The 70/30 label: 70 on the larger; on equal values (only when beta < 0) 70 on the later column, as the reference."""
    return np.where(v1 > v2, _PAIR[i1, i2, 1], _PAIR[i2, i1, 1])


@dataclass(frozen=True, eq=False)
class ThresholdSearch:
    """Result of :func:`search_thresholds`.

    ``alpha``/``beta`` are the chosen thresholds, ``acc_presence``/``acc_salience``/``score``
    the accuracies there; ``presence_only`` and ``salience_only`` the best presence and the
    best salience accuracy anywhere on the grid; ``presence_grid``/``salience_grid`` the
    accuracy surfaces, shape ``(len(alphas), len(betas))``.
    """

    alpha: float
    beta: float
    acc_presence: float
    acc_salience: float
    score: float
    presence_only: float
    salience_only: float
    alphas: np.ndarray
    betas: np.ndarray
    presence_grid: np.ndarray
    salience_grid: np.ndarray
    n_clips: int = 0
    n_blends: int = 0
    presence_weight: float = 0.5

    @property
    def score_grid(self) -> np.ndarray:
        """``presence_weight * presence + (1 - presence_weight) * salience`` on the grid."""
        w = self.presence_weight
        return w * self.presence_grid + (1.0 - w) * self.salience_grid

    def as_dict(self) -> dict[str, float | int]:
        """The scalar fields, for JSON output."""
        return {
            "alpha": self.alpha,
            "beta": self.beta,
            "acc_presence": self.acc_presence,
            "acc_salience": self.acc_salience,
            "score": self.score,
            "presence_only": self.presence_only,
            "salience_only": self.salience_only,
            "n_clips": self.n_clips,
            "n_blends": self.n_blends,
        }


def _check_truth(truth: object, n: int) -> np.ndarray:
    try:
        t = np.asarray(truth)
    except (TypeError, ValueError):
        raise BlemoreError("truth must be an array of label indices") from None
    if t.shape != (n,):
        raise BlemoreError(f"truth must have shape ({n},) to match the probabilities, got {t.shape}")
    if t.size and not np.issubdtype(t.dtype, np.integer):
        raise BlemoreError(f"truth must hold integer label indices, got dtype {t.dtype}")
    t = t.astype(np.int64)
    bad = (t < 0) | (t >= N_LABELS)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise BlemoreError(f"truth row {i}: {int(t[i])} is not a label index in 0..{N_LABELS - 1}")
    return t


def accuracy_grids(p: np.ndarray, t: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Presence and salience accuracy of the alpha/beta rule at every (alpha, beta), shape ``(len(a), len(b))``.

    ``p`` checked float64 probabilities, ``t`` checked truth indices, ``a``/``b`` the grids. The
    prediction is the pair exactly where the second largest entry reaches alpha (and neither
    of the two is neutral), so presence depends on alpha alone and salience on both.
    """
    n = p.shape[0]
    i1, i2, v1, v2 = _top_two(p)
    truth_mask = PRESENCE_MASKS[t]
    blend = IS_BLEND[t]
    n_blends = int(blend.sum())
    pair_possible = (i1 != NEUTRAL_INDEX) & (i2 != NEUTRAL_INDEX) & (v2 > 0)

    # Outcomes of the two possible predictions per clip.
    single_present = truth_mask == (np.int64(1) << i1)
    pair_present = truth_mask == ((np.int64(1) << i1) | (np.int64(1) << i2))
    match50 = pair_possible & blend & (_PAIR[i1, i2, 0] == t)
    match70 = pair_possible & blend & (_unequal_pair(i1, i2, v1, v2) == t)

    # (A, N): is the prediction the pair at this alpha?
    is_pair = pair_possible[None, :] & (v2[None, :] >= a[:, None])
    presence_counts = np.where(is_pair, pair_present[None, :], single_present[None, :]).sum(axis=1)
    # (B, N): would the pair be right at this beta?
    pair_right = np.where((v1 - v2)[None, :] <= b[:, None], match50[None, :], match70[None, :])
    salience_counts = is_pair.astype(np.int64) @ pair_right.astype(np.int64).T  # (A, B)

    presence_grid = np.broadcast_to((presence_counts.astype(np.float64) / n)[:, None], (a.size, b.size)).copy()
    if n_blends:
        return presence_grid, salience_counts.astype(np.float64) / n_blends
    return presence_grid, np.zeros((a.size, b.size))


def search_thresholds(
    probs: object,
    truth: object,
    *,
    alphas: object = GRID,
    betas: object = GRID,
    presence_weight: float = 0.5,
) -> ThresholdSearch:
    """Find the alpha/beta pair that maximises ``w * presence + (1 - w) * salience``.

    Every pair of the grid is evaluated at once (vectorised; a few milliseconds for a
    few hundred clips). Ties are broken as the baseline does: the first best pair with
    alpha in the outer and beta in the inner loop. Accuracies are count / n in float64;
    salience accuracy is over the clips whose truth is a blend, 0.0 when there are none.

    Parameters
    ----------
    probs : array-like, shape (N, 6)
        Scores, as for :func:`decode_thresholds`.
    truth : array-like of int, shape (N,)
        True label indices into :data:`~blemore.labels.VALID_LABELS`.
    alphas, betas : array-like of float, keyword-only
        The grids; default :data:`GRID` (``linspace(0.05, 0.95, 20)``) for both.
    presence_weight : float, keyword-only
        ``w`` above; 0.5 is the challenge's score.

    >>> import numpy as np
    >>> p = np.array([[0.0, 0.0, 0.0, 0.6, 0.4, 0.0], [0.0, 0.0, 0.0, 1.0, 0.0, 0.0]])
    >>> from blemore.labels import labels_to_indices
    >>> r = search_thresholds(p, labels_to_indices(["hap_sad_70_30", "hap"]))
    >>> (r.acc_presence, r.acc_salience, round(r.alpha, 3), round(r.beta, 3))
    (1.0, 1.0, 0.05, 0.05)
    """
    p = check_probabilities(probs)
    n = p.shape[0]
    if n == 0:
        raise BlemoreError("cannot search thresholds on 0 clips")
    t = _check_truth(truth, n)
    a = _check_grid(alphas, "alphas")
    b = _check_grid(betas, "betas")
    w = _check_threshold(presence_weight, "presence_weight")
    if not 0.0 <= w <= 1.0:
        raise BlemoreError(f"presence_weight must be in [0, 1], got {presence_weight!r}")

    presence_grid, salience_grid = accuracy_grids(p, t, a, b)
    n_blends = int(IS_BLEND[t].sum())
    score_grid = w * presence_grid + (1.0 - w) * salience_grid
    best = int(np.argmax(score_grid))  # first maximum in alpha-major order
    ia, ib = divmod(best, b.size)
    for grid in (presence_grid, salience_grid, a, b):
        grid.setflags(write=False)
    return ThresholdSearch(
        alpha=float(a[ia]),
        beta=float(b[ib]),
        acc_presence=float(presence_grid[ia, ib]),
        acc_salience=float(salience_grid[ia, ib]),
        score=float(score_grid[ia, ib]),
        presence_only=float(presence_grid.max()),
        salience_only=float(salience_grid.max()),
        alphas=a,
        betas=b,
        presence_grid=presence_grid,
        salience_grid=salience_grid,
        n_clips=n,
        n_blends=n_blends,
        presence_weight=w,
    )


_EPS = 1e-12
# -H(q) for each label: sum q log q over the label's non-zero entries.
_NEG_ENTROPY = np.array(
    [float(np.sum(v[v > 0] * np.log(v[v > 0]))) for v in SOFT_VECTORS], dtype=np.float64
)


def decode_structured(probs: object, *, rule: Literal["kl"] = "kl") -> np.ndarray:
    """Decode rows without thresholds: the valid label closest to each distribution.

    Rule ``"kl"``: each row is normalised to sum to 1 (an all-zero row becomes uniform)
    and clipped below at ``1e-12``; the prediction is the label ``l`` among the 36 that
    minimises ``KL(q_l || p) = sum_k q_lk log(q_lk / p_k)``, where ``q_l`` is the label's
    soft vector (:data:`~blemore.labels.SOFT_VECTORS`). This is the loss the baseline's
    heads are trained with, so the rule picks the label under which the model's output
    would have had the smallest training loss. Ties go to the lower label index
    (singles before pairs).

    Parameters
    ----------
    probs : array-like, shape (N, 6)
        Non-negative scores, columns in ``EMOTIONS`` order.
    rule : {"kl"}, keyword-only
        The decoding rule.

    Returns
    -------
    numpy.ndarray of int64, shape (N,)
        Indices into :data:`~blemore.labels.VALID_LABELS`.

    >>> from blemore.labels import LABEL_NAMES
    >>> [LABEL_NAMES[i] for i in decode_structured([[0.0, 0.0, 0.0, 0.65, 0.35, 0.0], [0.9, 0, 0, 0, 0, 0.1]])]
    ['hap_sad_70_30', 'ang']
    """
    if rule not in STRUCTURED_RULES:
        raise BlemoreError(f"unknown structured decoding rule {rule!r}: expected one of {', '.join(STRUCTURED_RULES)}")
    p = check_probabilities(probs)
    if p.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    total = p.sum(axis=1, keepdims=True)
    p = np.where(total > 0, p / np.where(total > 0, total, 1.0), 1.0 / _N_EMOTIONS)
    log_p = np.log(np.clip(p, _EPS, None))
    # KL(q_l || p) = -H(q_l) - q_l . log p  ->  (N, 36)
    kl = _NEG_ENTROPY[None, :] - log_p @ SOFT_VECTORS.T
    return np.argmin(kl, axis=1).astype(np.int64)
