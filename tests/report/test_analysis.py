"""The numbers behind the report's figures, checked against plain per-clip counting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blemore.labels import EMOTIONS, LABEL_INDEX, LABEL_NAMES, OTHER, PRESENCE_MASKS, VALID_LABELS
from blemore.metrics import score_indices
from blemore.report import analysis
from blemore.report.rundata import load_run
from blemore.report.sample import write_sample_run

labels = st.integers(0, len(LABEL_NAMES) - 1)


def _plain_scores(truth: list[int], pred: list[int]) -> tuple[float, float, int]:
    """Presence, salience (0.0 without blends, as the challenge scores it) and blends, one clip at a time."""
    presence = [
        p != OTHER and set(VALID_LABELS[t].emotions) == set(VALID_LABELS[p].emotions)
        for t, p in zip(truth, pred)
    ]
    blends = [(t, p) for t, p in zip(truth, pred) if VALID_LABELS[t].is_blend]
    salience = sum(t == p for t, p in blends) / len(blends) if blends else 0.0
    return sum(presence) / len(presence), salience, len(blends)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(labels, st.one_of(labels, st.just(OTHER)), st.sampled_from(["A1", "A2", "A3"])),
        min_size=1,
        max_size=60,
    )
)
def test_confusions_and_group_scores_agree_with_plain_counting(rows: list[tuple[int, int, str]]) -> None:
    truth = np.array([t for t, _, _ in rows])
    pred = np.array([p for _, p, _ in rows])
    groups = [g for _, _, g in rows]
    counts = analysis.label_confusion(truth, pred)
    pairs = [(t, p) for t, p, _ in rows]
    assert counts.shape == (36, 37) and counts.sum() == len(rows)
    for t, p in set(pairs):
        assert counts[t, 36 if p == OTHER else p] == pairs.count((t, p))
    presence = analysis.presence_confusion(truth, pred)
    assert presence.shape == (16, 17) and presence.sum() == len(rows)
    # The diagonal of the presence matrix counts exactly the clips with the right set.
    assert np.trace(presence[:, :16]) / len(rows) == pytest.approx(_plain_scores(list(truth), list(pred))[0])
    table = analysis.group_scores(truth, pred, groups)
    assert table["group"].tolist() == list(dict.fromkeys(groups))  # order of first appearance
    for r in table.itertuples():
        sel = [i for i, g in enumerate(groups) if g == r.group]
        p, s, n_blends = _plain_scores([truth[i] for i in sel], [pred[i] for i in sel])
        assert (r.n, r.n_blends) == (len(sel), n_blends)
        assert (r.acc_presence, r.acc_salience) == pytest.approx((p, s))
        # The same numbers as the challenge's scorer on the group's clips.
        if (pred[sel] != OTHER).all():
            official = score_indices(truth[sel], pred[sel])
            assert (r.acc_presence, r.acc_salience) == pytest.approx(
                (official.acc_presence, official.acc_salience)
            )


def test_group_without_blends_scores_salience_zero_with_no_blends() -> None:
    truth = np.array([LABEL_INDEX["hap"], LABEL_INDEX["hap"], LABEL_INDEX["ang_sad_70_30"]])
    pred = np.array([LABEL_INDEX["hap"], LABEL_INDEX["sad"], LABEL_INDEX["ang_sad_50_50"]])
    table = analysis.group_scores(truth, pred, ["A1", "A2", "A1"]).set_index("group")
    assert table.loc["A1", "acc_presence"] == 1.0 and table.loc["A1", "acc_salience"] == 0.0
    assert table.loc["A1", "n_blends"] == 1
    # No blend truth: the challenge's 0.0, flagged by n_blends == 0 (the page shows a dash).
    assert table.loc["A2", "acc_presence"] == 0.0 and table.loc["A2", "acc_salience"] == 0.0
    assert table.loc["A2", "n_blends"] == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(labels, st.just(-1), st.just(analysis.UNKNOWN)), max_size=80))
def test_label_shares_agree_with_plain_counting(values: list[int]) -> None:
    valid = [v for v in values if v >= 0]
    by_label = analysis.label_shares(np.array(values, dtype=np.int64))
    by_set = analysis.label_shares(np.array(values, dtype=np.int64), by="set")
    by_kind = analysis.label_shares(np.array(values, dtype=np.int64), by="kind")
    if not valid:
        assert not by_label.any() and not by_set.any() and not by_kind.any()
        return
    for i in range(len(LABEL_NAMES)):
        assert by_label[i] == pytest.approx(valid.count(i) / len(valid))
    for j, mask in enumerate(analysis.PRESENCE_SETS):
        assert by_set[j] == pytest.approx(sum(int(PRESENCE_MASKS[v]) == mask for v in valid) / len(valid))
    kinds = [
        0 if not VALID_LABELS[v].is_blend else 1 if VALID_LABELS[v].parts[0][1] == 50 else 2 for v in valid
    ]
    assert by_kind.tolist() == pytest.approx([kinds.count(k) / len(valid) for k in range(3)])
    assert by_kind.sum() == pytest.approx(1.0) and by_set.sum() == pytest.approx(1.0)


def test_grouped_label_order_is_a_permutation_grouped_by_pair() -> None:
    order = analysis.GROUPED_LABELS
    assert sorted(order) == list(range(36))
    assert [LABEL_NAMES[i] for i in order[:6]] == list(EMOTIONS)
    for start in range(6, 36, 3):
        group = [VALID_LABELS[i] for i in order[start : start + 3]]
        assert len({lab.pair for lab in group}) == 1
        assert [lab.parts[0][1] for lab in group] == [70, 50, 30]
    assert len(analysis.PRESENCE_SETS) == 16 == len(set(int(m) for m in PRESENCE_MASKS))


def test_salience_position_orders_a_pair_from_first_to_second_emotion() -> None:
    pair = ("ang", "hap")
    names = ["ang", "ang_hap_70_30", "ang_hap_50_50", "ang_hap_30_70", "hap", "sad", "ang_sad_50_50"]
    assert [analysis.salience_position(LABEL_INDEX[n], pair) for n in names] == [0, 1, 2, 3, 4, None, None]


def test_label_indices_map_empty_to_unknown_and_junk_to_other() -> None:
    got = analysis.label_indices(["hap", "", "nan", "angry", "ang_hap_30_70"])
    assert got.tolist() == [
        LABEL_INDEX["hap"],
        analysis.UNKNOWN,
        analysis.UNKNOWN,
        OTHER,
        LABEL_INDEX["ang_hap_30_70"],
    ]


@settings(max_examples=40, deadline=None)
@given(st.integers(3, 40), st.integers(1, 8), st.integers(0, 2**31 - 1))
def test_pca_matches_covariance_eigendecomposition(n: int, d: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.1, 100, size=d) + rng.normal(size=d) * 50
    Z, ratio = analysis.pca_2d(X)
    assert Z.shape == (n, 2) and np.all(ratio >= 0) and ratio.sum() <= 1 + 1e-9
    S = (X - X.mean(0)) / X.std(0)
    evals = np.sort(np.linalg.eigvalsh(S.T @ S))[::-1]
    k = min(2, d)
    # Variance along each component equals the covariance eigenvalues; components are uncorrelated.
    np.testing.assert_allclose((Z[:, :k] ** 2).sum(0), evals[:k], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ratio[:k], evals[:k] / evals.sum(), rtol=1e-6, atol=1e-9)
    if k == 2:
        assert abs(Z[:, 0] @ Z[:, 1]) <= 1e-6 * max(1.0, evals[0])


def test_pca_survives_constant_and_nan_columns() -> None:
    X = np.column_stack([np.ones(5), np.arange(5.0), [np.nan, 1, 2, 3, 4]])
    Z, ratio = analysis.pca_2d(X)
    assert np.isfinite(Z).all() and ratio[0] == pytest.approx(1.0)
    Z, ratio = analysis.pca_2d(np.ones((4, 3)))
    assert not Z.any() and not ratio.any()


def test_summary_computes_mean_and_std_when_rows_are_missing(tmp_path: Path) -> None:
    results = load_run(write_sample_run(tmp_path / "run", n_actors=6, n_test=10, parts=["results"])).results
    full = analysis.summarise_results(results).set_index(["method", "feature_set", "model"])
    bare = analysis.summarise_results(results[~results["fold"].isin(["mean", "std"])])
    bare = bare.set_index(["method", "feature_set", "model"])
    cols = ["presence_mean", "presence_std", "salience_mean", "score_mean", "score_std"]
    np.testing.assert_allclose(full[cols].to_numpy(float), bare[cols].to_numpy(float), rtol=1e-9, atol=1e-12)
    assert full.loc[("baseline", "opensmile", "linear"), "n_folds"] == 5
    folds = results[(results["model"] == "linear") & (results["feature_set"] == "opensmile")]
    folds = folds[folds["fold"].str.fullmatch(r"\d")]["score"].to_numpy(float)
    assert full.loc[("baseline", "opensmile", "linear"), "score_std"] == pytest.approx(np.std(folds, ddof=1))
