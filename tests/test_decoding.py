"""The vectorised decoders and threshold search against plain per-clip implementations of the rules."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from blemore.decoding import (
    GRID,
    SUM_TOLERANCE,
    check_probabilities,
    check_thresholds,
    decode_structured,
    decode_thresholds,
    search_thresholds,
)
from blemore.errors import BlemoreError
from blemore.labels import EMOTIONS, IS_BLEND, LABEL_INDEX, LABEL_NAMES, SOFT_VECTORS, VALID_LABELS

# --------------------------------------------------------------------------- plain references


def plain_decode_row(p: np.ndarray, alpha: float, beta: float) -> dict[str, int]:
    """The baseline's rule for one row, written from its description, as {emotion: salience}."""
    p = np.asarray(p, dtype=np.float64)
    # Ties: the lower column first. (numpy's default argsort is not stable on CPUs where it
    # dispatches to AVX-512 sorting; blemore fixes the documented order instead.)
    order = np.argsort(-p, kind="stable")
    vec = np.zeros(6)
    for k in order[:2]:
        vec[k] = p[k]
    top = int(np.argmax(vec))
    if vec[top] < alpha:
        return {EMOTIONS[top]: 100}
    vec = np.where(vec < alpha, 0.0, vec)
    nz = [k for k in range(6) if vec[k] > 0]
    if len(nz) == 0:  # only when alpha <= 0 and the row is all zero
        return {EMOTIONS[top]: 100}
    if len(nz) == 1:
        return {EMOTIONS[nz[0]]: 100}
    if 5 in nz:
        other = nz[0]
        return {EMOTIONS[other]: 100} if vec[other] >= vec[5] else {"neu": 100}
    i, j = nz
    if abs(vec[i] - vec[j]) <= beta:
        return {EMOTIONS[i]: 50, EMOTIONS[j]: 50}
    if vec[i] > vec[j]:
        return {EMOTIONS[i]: 70, EMOTIONS[j]: 30}
    return {EMOTIONS[i]: 30, EMOTIONS[j]: 70}


def label_of(pred: dict[str, int]) -> int:
    for k, label in enumerate(VALID_LABELS):
        if label.salience_map == pred:
            return k
    raise AssertionError(f"not a valid label: {pred}")


def plain_accuracies(probs, truth, alpha, beta) -> tuple[float, float]:
    n_pres = n_sal = n_blend = 0
    for row, t in zip(probs, truth):
        pred = plain_decode_row(row, alpha, beta)
        true = VALID_LABELS[t].salience_map
        n_pres += set(pred) == set(true)
        if len(true) == 2:
            n_blend += 1
            n_sal += len(pred) == 2 and pred == true
    return n_pres / len(truth), (n_sal / n_blend if n_blend else 0.0)


def plain_search(probs, truth, alphas, betas):
    results = []
    for a in alphas:
        for b in betas:
            pres, sal = plain_accuracies(probs, truth, a, b)
            results.append((0.5 * pres + 0.5 * sal, pres, sal, a, b))
    best = sorted(results, key=lambda r: r[0], reverse=True)[0]  # stable: first maximum
    return best, max(r[1] for r in results), max(r[2] for r in results)


def plain_kl(row: np.ndarray) -> int:
    p = np.asarray(row, dtype=np.float64)
    p = p / p.sum() if p.sum() > 0 else np.full(6, 1 / 6)
    p = np.clip(p, 1e-12, None)
    best, best_kl = -1, np.inf
    for k, q in enumerate(SOFT_VECTORS):
        kl = sum(qi * np.log(qi / pi) for qi, pi in zip(q, p) if qi > 0)
        if kl < best_kl - 1e-12:
            best, best_kl = k, kl
    return best


# --------------------------------------------------------------------------- strategies

# Values that create ties and hit grid points exactly: grid values, their neighbours, simple fractions.
_SPECIAL = [0.0, 1.0, 0.5, 0.25, 0.125] + [float(g) for g in GRID] + [float(g) + 1e-12 for g in GRID[:5]]
_value = st.one_of(st.sampled_from(_SPECIAL), st.floats(0.0, 1.0, allow_nan=False, width=64))


@st.composite
def prob_rows(draw, max_rows: int = 25) -> np.ndarray:
    n = draw(st.integers(1, max_rows))
    kind = draw(st.sampled_from(["free", "special", "equal", "neutral", "dirichlet", "float32"]))
    if kind == "equal":
        v = draw(_value)
        return np.full((n, 6), v)
    if kind == "dirichlet":
        seed = draw(st.integers(0, 2**32 - 1))
        return np.random.default_rng(seed).dirichlet(np.full(6, 0.5), size=n)
    elements = st.sampled_from(_SPECIAL) if kind == "special" else _value
    arr = draw(hnp.arrays(np.float64, (n, 6), elements=elements))
    if kind == "neutral":  # neutral among the two largest
        arr[:, 5] = arr.max(axis=1)
    if kind == "float32":
        arr = arr.astype(np.float32)
    return arr


_thresholds = st.one_of(st.sampled_from([float(g) for g in GRID]), st.floats(0.0, 1.0, allow_nan=False))


# --------------------------------------------------------------------------- decode_thresholds


@settings(max_examples=300, deadline=None)
@given(probs=prob_rows(), alpha=_thresholds, beta=_thresholds)
def test_decode_thresholds_matches_plain_rule(probs, alpha, beta):
    got = decode_thresholds(probs, alpha, beta)
    want = [label_of(plain_decode_row(row, alpha, beta)) for row in probs.astype(np.float64)]
    assert got.dtype == np.int64
    assert got.tolist() == want


@settings(max_examples=100, deadline=None)
@given(probs=prob_rows(), alpha=st.floats(0.0, 1.0), beta=st.floats(0.0, 1.0))
def test_decode_thresholds_any_threshold_in_range(probs, alpha, beta):
    want = [label_of(plain_decode_row(row, alpha, beta)) for row in probs.astype(np.float64)]
    assert decode_thresholds(probs, alpha, beta).tolist() == want


def test_decode_examples_from_the_rule():
    def name(row, a=0.3, b=0.1):
        return LABEL_NAMES[decode_thresholds(np.array([row]), a, b)[0]]

    assert name([0.1, 0.1, 0.1, 0.25, 0.2, 0.25]) == "hap"  # largest < alpha: tie -> lower column
    assert name([0.0, 0.0, 0.0, 0.5, 0.2, 0.3]) == "hap"  # second < alpha
    assert name([0.0, 0.0, 0.0, 0.4, 0.0, 0.6]) == "neu"  # neutral larger
    assert name([0.0, 0.0, 0.0, 0.45, 0.0, 0.45]) == "hap"  # non-neutral wins a tie with neutral
    assert name([0.0, 0.0, 0.0, 0.4, 0.5, 0.0]) == "hap_sad_50_50"  # |diff| = 0.1 <= beta
    assert name([0.0, 0.0, 0.0, 0.35, 0.55, 0.0]) == "hap_sad_30_70"
    assert name([0.0, 0.0, 0.0, 0.55, 0.35, 0.0]) == "hap_sad_70_30"
    assert name([0.3, 0.3, 0.0, 0.0, 0.0, 0.0]) == "ang_disg_50_50"  # exactly at alpha counts
    assert name([1 / 6] * 6) == "ang"
    assert name([0.0] * 6) == "ang"


def test_float32_is_compared_in_float64():
    row32 = np.array([[0.0, 0.0, 0.0, 0.6, 0.3, 0.1]], dtype=np.float32)
    # float32(0.3) > 0.3 in float64, so at alpha=0.3 the pair is kept, exactly as for the float64 copy.
    assert decode_thresholds(row32, 0.3, 0.1).tolist() == decode_thresholds(row32.astype(np.float64), 0.3, 0.1).tolist()


# --------------------------------------------------------------------------- search_thresholds


def _truths(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, len(VALID_LABELS), size=n)


@settings(max_examples=60, deadline=None)
@given(probs=prob_rows(max_rows=12), seed=st.integers(0, 10_000), grid=st.sampled_from(["small", "full"]))
def test_search_matches_plain_search(probs, seed, grid):
    truth = _truths(len(probs), seed)
    if grid == "full":
        alphas = betas = GRID
    else:
        alphas = np.array([0.05, 0.2, 0.25, 0.5, 0.95])
        betas = np.array([0.0, 0.05, 0.1, 0.5])
    got = search_thresholds(probs, truth, alphas=alphas, betas=betas)
    (score, pres, sal, a, b), pres_only, sal_only = plain_search(probs, truth, alphas, betas)
    assert (got.alpha, got.beta) == (a, b)
    assert (got.acc_presence, got.acc_salience, got.score) == (pres, sal, score)
    assert (got.presence_only, got.salience_only) == (pres_only, sal_only)
    assert got.presence_grid.shape == got.salience_grid.shape == (len(alphas), len(betas))
    for ia in (0, len(alphas) - 1):
        for ib in (0, len(betas) - 1):
            assert (got.presence_grid[ia, ib], got.salience_grid[ia, ib]) == plain_accuracies(
                probs, truth, alphas[ia], betas[ib]
            )


def test_search_grid_agrees_with_decoding_everywhere():
    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.full(6, 0.4), size=80)
    truth = _truths(80, 4)
    r = search_thresholds(probs, truth)
    from blemore.metrics import score_indices

    for ia, a in enumerate(r.alphas):
        for ib, b in enumerate(r.betas):
            s = score_indices(truth, decode_thresholds(probs, a, b))
            assert (s.acc_presence, s.acc_salience) == (r.presence_grid[ia, ib], r.salience_grid[ia, ib])
    assert r.score == r.score_grid.max()
    assert r.n_clips == 80 and r.n_blends == int(IS_BLEND[truth].sum())


def test_search_ties_go_to_first_pair_alpha_major():
    probs = np.tile([1.0, 0, 0, 0, 0, 0], (3, 1))  # every threshold gives the same result
    r = search_thresholds(probs, np.array([0, 0, 0]))
    assert (r.alpha, r.beta) == (GRID[0], GRID[0])
    assert (r.acc_presence, r.acc_salience, r.score) == (1.0, 0.0, 0.5)


def test_search_presence_weight():
    probs = np.array([[0.0, 0, 0, 0.6, 0.4, 0], [0, 0, 0, 0.6, 0.4, 0]])
    truth = np.array([LABEL_INDEX["hap_sad_50_50"], LABEL_INDEX["hap"]])
    only_presence = search_thresholds(probs, truth, presence_weight=1.0)
    assert only_presence.score == only_presence.presence_only


def test_search_default_grid_is_the_baselines():
    assert np.array_equal(GRID, np.linspace(0.05, 0.95, 20))
    r = search_thresholds(np.full((2, 6), 1 / 6), np.array([0, 1]))
    assert np.array_equal(r.alphas, GRID) and np.array_equal(r.betas, GRID)


@pytest.mark.parametrize(
    ("truth", "kwargs", "message"),
    [
        (np.array([0]), {}, "shape (2,)"),
        (np.array([0, 36]), {}, "truth row 1: 36"),
        (np.array([0.0, 1.0]), {}, "integer"),
        (np.array([0, 1]), {"alphas": []}, "alphas must not be empty"),
        (np.array([0, 1]), {"betas": [0.1, np.nan]}, "betas must be finite"),
        (np.array([0, 1]), {"presence_weight": 2.0}, "presence_weight"),
    ],
)
def test_search_bad_input(truth, kwargs, message):
    with pytest.raises(BlemoreError, match=message.replace("(", r"\(").replace(")", r"\)")):
        search_thresholds(np.full((2, 6), 1 / 6), truth, **kwargs)


def test_search_on_no_clips_is_an_error():
    with pytest.raises(BlemoreError, match="0 clips"):
        search_thresholds(np.zeros((0, 6)), np.zeros(0, dtype=np.int64))


# --------------------------------------------------------------------------- check_probabilities


@pytest.mark.parametrize(
    ("probs", "message"),
    [
        (np.array([[0.2] * 6, [0.1, np.nan, 0, 0, 0, 0]]), "row 1 has NaN"),
        (np.array([[0.2] * 6, [0.1, np.inf, 0, 0, 0, 0]]), "row 1 has NaN or infinite"),
        (np.array([[0.2] * 6, [0.2] * 6, [0.5, -0.1, 0, 0, 0, 0]]), "row 2 has negative"),
        (np.zeros((3, 5)), r"shape \(N, 6\).*got shape \(3, 5\)"),
        (np.zeros(6), r"got shape \(6,\)"),
        ([["a"] * 6], "numeric"),
    ],
)
def test_bad_probabilities_name_the_row(probs, message):
    for decode in (lambda p: decode_thresholds(p, 0.5, 0.1), decode_structured, check_probabilities):
        with pytest.raises(BlemoreError, match=message):
            decode(probs)


def test_bad_row_named_by_clip():
    with pytest.raises(BlemoreError, match=r"probs.csv: row 1 \(clip 'b'\) has negative"):
        check_probabilities([[0.1] * 6, [-1, 0, 0, 0, 0, 0]], source="probs.csv", names=["a", "b"])


def test_bad_thresholds():
    with pytest.raises(BlemoreError, match="alpha must be finite"):
        decode_thresholds(np.full((1, 6), 0.1), float("nan"), 0.1)
    with pytest.raises(BlemoreError, match="beta must be a number"):
        decode_thresholds(np.full((1, 6), 0.1), 0.1, "x")  # type: ignore[arg-type]
    for alpha, beta, name in ((2, 0.1, "alpha"), (0.3, -1, "beta"), (-0.01, 0.1, "alpha"), (0.3, 1.5, "beta")):
        with pytest.raises(BlemoreError, match=rf"{name} must be in \[0, 1\].*got {beta if name == 'beta' else alpha}"):
            decode_thresholds(np.full((1, 6), 1 / 6), alpha, beta)
    assert check_thresholds(0, 1) == (0.0, 1.0)


@pytest.mark.parametrize("total", [3.0, 0.5, 1.0 + 1.01 * SUM_TOLERANCE, 1.0 - 1.01 * SUM_TOLERANCE])
def test_rows_that_do_not_sum_to_one_are_refused_when_asked(total):
    probs = np.array([[1 / 6] * 6, [total / 6] * 6])
    assert check_probabilities(probs).shape == (2, 6)  # the rules themselves compare entries only
    with pytest.raises(BlemoreError, match=rf"p.csv: row 1 \(clip 'b'\) sums to {total:.6g}, not 1 \(within 0.01\)"):
        check_probabilities(probs, source="p.csv", names=["a", "b"], sum_to_one=True)


def test_rows_within_the_tolerance_pass():
    rounded = np.round(np.array([[0.1234, 0.2345, 0.3456, 0.0505, 0.1, 0.146]]), 3)  # 3 decimals
    assert check_probabilities(rounded, sum_to_one=True).shape == (1, 6)
    soft = np.float32([[0.2, 0.2, 0.2, 0.2, 0.1, 0.1]])
    assert check_probabilities(soft, sum_to_one=True).dtype == np.float64


def test_check_probabilities_returns_float64_copy():
    src = np.full((2, 6), 0.5, dtype=np.float32)
    out = check_probabilities(src)
    assert out.dtype == np.float64 and out is not src
    out[0, 0] = 9
    assert src[0, 0] == np.float32(0.5)


# --------------------------------------------------------------------------- decode_structured


@settings(max_examples=200, deadline=None)
@given(probs=prob_rows())
def test_structured_matches_plain_kl(probs):
    got = decode_structured(probs)
    want = [plain_kl(row) for row in probs.astype(np.float64)]
    # Near-ties in floating point may resolve differently; then both labels must be equally close.
    for g, w, row in zip(got.tolist(), want, probs.astype(np.float64)):
        if g != w:
            p = row / row.sum() if row.sum() > 0 else np.full(6, 1 / 6)
            p = np.clip(p, 1e-12, None)

            def kl(k):
                q = SOFT_VECTORS[k]
                return sum(qi * np.log(qi / pi) for qi, pi in zip(q, p) if qi > 0)

            assert kl(g) == pytest.approx(kl(w), abs=1e-9)


def test_structured_recovers_soft_vectors():
    # Each label's own soft vector decodes to that label.
    assert decode_structured(SOFT_VECTORS).tolist() == list(range(len(VALID_LABELS)))


def test_structured_examples():
    names = [LABEL_NAMES[i] for i in decode_structured(np.array([[0, 0, 0, 0.62, 0.38, 0], [0.05, 0, 0, 0.9, 0.05, 0]]))]
    assert names == ["hap_sad_70_30", "hap"]
    assert decode_structured(np.zeros((0, 6))).shape == (0,)


def test_structured_unknown_rule():
    with pytest.raises(BlemoreError, match="unknown structured decoding rule 'nearest'"):
        decode_structured(np.full((1, 6), 0.1), rule="nearest")  # type: ignore[arg-type]


def test_docstring_examples_of_the_core_modules():
    import doctest

    import blemore.decoding
    import blemore.metrics
    import blemore.submission

    for module in (blemore.decoding, blemore.metrics, blemore.submission):
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.failed == 0 and result.attempted > 0, module.__name__
