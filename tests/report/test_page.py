"""The run report: reading run folders, the numbers behind the figures, the page."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blemore.errors import BlemoreError
from blemore.labels import EMOTIONS, IS_BLEND, LABEL_INDEX, LABEL_NAMES, OTHER, PRESENCE_MASKS, VALID_LABELS
from blemore.report import analysis, write_report
from blemore.report.rundata import load_run
from blemore.report.sample import write_sample_run

SECTION_IDS = ("results", "confusion", "thresholds", "curves", "projection", "breakdown")


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample_run(tmp_path_factory.mktemp("run") / "run", n_actors=6, n_test=30, compare=True)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample_run(
        tmp_path_factory.mktemp("small") / "run",
        n_actors=5,
        n_test=10,
        compare=True,
        feature_sets=["opensmile"],
        models=["linear"],
    )


@pytest.fixture(scope="module")
def full_page(full_run: Path) -> str:
    return write_report(full_run).read_text(encoding="utf-8")


class _Page(HTMLParser):
    """Collects what the tests check: sections, notes, images, every URL-bearing attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.images: list[dict[str, str]] = []
        self.urls: list[str] = []
        self.notes: list[str] = []
        self._in_note = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "section":
            self.sections.append(a.get("id", ""))
        if tag == "img":
            self.images.append(a)
        for key in ("src", "href", "action", "data", "poster", "srcset"):
            if key in a:
                self.urls.append(a[key])
        if "note" in a.get("class", "").split():
            self._in_note += 1
            self.notes.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "p" and self._in_note:
            self._in_note -= 1

    def handle_data(self, data: str) -> None:
        if self._in_note:
            self.notes[-1] += data


def parse(page: str) -> _Page:
    p = _Page()
    p.feed(page)
    return p


# ----------------------------------------------------------------------------------------- analysis


def _independent_scores(truth: list[int], pred: list[int]) -> tuple[float, float]:
    presence = [
        p != OTHER and set(VALID_LABELS[t].emotions) == set(VALID_LABELS[p].emotions)
        for t, p in zip(truth, pred)
    ]
    blends = [(t, p) for t, p in zip(truth, pred) if VALID_LABELS[t].is_blend]
    salience = [t == p for t, p in blends]
    return float(np.mean(presence)), (float(np.mean(salience)) if salience else float("nan"))


labels = st.integers(0, len(LABEL_NAMES) - 1)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(labels, st.one_of(labels, st.just(OTHER))), min_size=1, max_size=60))
def test_confusions_and_group_scores_agree_with_plain_counting(pairs: list[tuple[int, int]]) -> None:
    truth = np.array([t for t, _ in pairs])
    pred = np.array([p for _, p in pairs])
    counts = analysis.label_confusion(truth, pred)
    assert counts.shape == (36, 37) and counts.sum() == len(pairs)
    for t, p in set(pairs):
        assert counts[t, 36 if p == OTHER else p] == pairs.count((t, p))
    presence = analysis.presence_confusion(truth, pred)
    assert presence.shape == (16, 17) and presence.sum() == len(pairs)
    # The diagonal of the presence matrix counts exactly the clips with the right set.
    expected_presence, expected_salience = _independent_scores(list(truth), list(pred))
    assert np.trace(presence[:, :16]) / len(pairs) == pytest.approx(expected_presence)
    table = analysis.group_scores(truth, pred, ["all"] * len(pairs))
    assert table["acc_presence"].iloc[0] == pytest.approx(expected_presence)
    assert table["n_blends"].iloc[0] == int(IS_BLEND[truth].sum())
    if np.isnan(expected_salience):
        assert np.isnan(table["acc_salience"].iloc[0])
    else:
        assert table["acc_salience"].iloc[0] == pytest.approx(expected_salience)


def test_group_scores_keep_groups_apart() -> None:
    truth = np.array([LABEL_INDEX["hap"], LABEL_INDEX["hap"], LABEL_INDEX["ang_sad_70_30"]])
    pred = np.array([LABEL_INDEX["hap"], LABEL_INDEX["sad"], LABEL_INDEX["ang_sad_50_50"]])
    table = analysis.group_scores(truth, pred, ["A1", "A2", "A1"]).set_index("group")
    assert table.loc["A1", "acc_presence"] == 1.0 and table.loc["A1", "acc_salience"] == 0.0
    assert table.loc["A2", "acc_presence"] == 0.0 and np.isnan(table.loc["A2", "acc_salience"])


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


def test_summary_computes_mean_and_std_when_rows_are_missing(full_run: Path) -> None:
    results = load_run(full_run).results
    full = analysis.summarise_results(results).set_index(["method", "feature_set", "model"])
    bare = analysis.summarise_results(results[~results["fold"].isin(["mean", "std"])])
    bare = bare.set_index(["method", "feature_set", "model"])
    cols = ["presence_mean", "presence_std", "salience_mean", "score_mean", "score_std"]
    np.testing.assert_allclose(full[cols].to_numpy(float), bare[cols].to_numpy(float), rtol=1e-9, atol=1e-12)
    assert full.loc[("baseline", "opensmile", "linear"), "n_folds"] == 5


# ----------------------------------------------------------------------------------------- sample


def test_sample_run_is_consistent_and_reproducible(tmp_path: Path, full_run: Path) -> None:
    from blemore.metrics import score_indices

    again = write_sample_run(tmp_path / "again", n_actors=6, n_test=30, compare=True)
    for name in ("results.csv", "curves.csv", "predictions/facemesh__linear__val.csv"):
        assert (again / name).read_bytes() == (full_run / name).read_bytes()
    results = pd.read_csv(full_run / "results.csv", dtype={"fold": str})
    val = pd.read_csv(full_run / "predictions" / "opensmile__mlp-256__val.csv")
    assert set(val["actor"].groupby(val["fold"]).nunique().index) == {0, 1, 2, 3, 4}
    assert val.groupby("actor")["fold"].nunique().max() == 1  # actor-disjoint folds
    np.testing.assert_allclose(val[list(EMOTIONS)].sum(axis=1), 1.0)
    for k in range(5):
        part = val[val["fold"] == k]
        row = results[
            (results["model"] == "mlp-256")
            & (results["feature_set"] == "opensmile")
            & (results["fold"] == str(k))
        ].iloc[0]
        s = score_indices(
            analysis.label_indices(part["label"].tolist()),
            analysis.label_indices(part["pred_label"].tolist()),
        )
        assert (s.acc_presence, s.acc_salience) == pytest.approx((row["acc_presence"], row["acc_salience"]))


# ----------------------------------------------------------------------------------------- page


def test_full_report_has_every_section_and_no_notes(full_page: str) -> None:
    page = parse(full_page)
    assert page.sections == [*SECTION_IDS, "compare"]
    assert page.notes == []
    # 1 scores + 2 confusions + 1 thresholds + 1 curves + 2 projections + 2 breakdowns + 1 forest
    assert len(page.images) == 10
    for heading in (
        "Results",
        "Confusion matrices",
        "Thresholds",
        "Training curves",
        "Feature projections",
        "Accuracy per actor",
        "Method comparison",
    ):
        assert heading in full_page
    for n in range(1, 11):
        assert f"Figure {n}." in full_page


def test_report_is_self_contained(full_page: str) -> None:
    page = parse(full_page)
    assert all(url.startswith(("data:image/svg+xml;base64,", "#")) for url in page.urls), [
        u[:60] for u in page.urls if not u.startswith(("data:", "#"))
    ]
    assert "Content-Security-Policy" in full_page and "default-src 'none'" in full_page
    assert not re.search(r"@import|url\(\s*['\"]?(https?:|//)|<link\b|<iframe\b", full_page)
    for img in page.images:
        svg = base64.b64decode(img["src"].split(",", 1)[1]).decode("utf-8")
        assert svg.lstrip().startswith("<?xml") and "<svg" in svg
        # The only URLs inside the figures are XML namespaces, never something to fetch.
        hrefs = re.findall(r'(?:href|src)="([^"#][^"]*)"', svg)
        assert all(h.startswith("data:image/png;base64,") for h in hrefs), hrefs[:3]
        assert img["alt"]


def test_results_table_shows_every_combination_with_its_numbers(full_run: Path, full_page: str) -> None:
    results = load_run(full_run).results
    for fs, model in [
        ("opensmile", "linear"),
        ("opensmile", "mlp-256"),
        ("facemesh", "linear"),
        ("facemesh", "mlp-256"),
    ]:
        mean = results[
            (results["feature_set"] == fs) & (results["model"] == model) & (results["fold"] == "mean")
        ]
        assert f"{100 * mean['score'].iloc[0]:.1f}" in full_page
    assert "majority-single" in full_page and "majority-blend" in full_page
    assert "class=focus" in full_page


def test_focus_defaults_to_best_mean_score_and_can_be_chosen(
    full_run: Path, full_page: str, tmp_path: Path
) -> None:
    results = load_run(full_run).results
    means = results[(results["fold"] == "mean") & (results["method"] == "baseline")]
    best = means.sort_values("score").iloc[-1]
    assert f"{best['feature_set']} / {best['model']} (best mean validation score)" in full_page
    run = _copy_run(full_run, tmp_path / "run", drop=("clip_features", "grids", "curves.csv"))
    other = write_report(run, feature_set="opensmile", model="linear").read_text()
    assert "opensmile / linear (chosen on the command line)" in other
    assert "Out-of-fold validation predictions of opensmile / linear" in other
    with pytest.raises(BlemoreError, match="no results for feature set 'nope'.*opensmile/linear"):
        write_report(run, tmp_path / "x.html", feature_set="nope")
    assert not (tmp_path / "x.html").exists()


def _copy_run(src: Path, dst: Path, *, drop: tuple[str, ...] = ()) -> Path:
    import shutil

    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("report.html"))
    for name in drop:
        target = dst / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    return dst


@pytest.mark.parametrize(
    ("drop", "noted"),
    [
        (("results.csv",), {"results"}),
        (("grids",), {"thresholds"}),
        (("curves.csv",), {"curves"}),
        (("clip_features",), {"projection"}),
        (("predictions",), {"confusion", "breakdown"}),
        (
            ("predictions", "grids", "curves.csv", "clip_features", "config.json", "compare.csv"),
            {"confusion", "thresholds", "curves", "projection", "breakdown"},
        ),
    ],
)
def test_missing_parts_become_notes(
    small_run: Path, tmp_path: Path, drop: tuple[str, ...], noted: set[str]
) -> None:
    run = _copy_run(small_run, tmp_path / "run", drop=drop)
    page = write_report(run).read_text()
    parsed = parse(page)
    assert [s for s in parsed.sections if s != "compare"] == list(SECTION_IDS)
    sections = dict(re.findall(r'<section id="(\w+)">(.*?)</section>', page, flags=re.S))
    with_note = {name for name, body in sections.items() if 'class="note"' in body}
    assert noted <= with_note
    # Sections whose inputs are there are still drawn.
    for name in set(SECTION_IDS) - noted - {"results"}:
        assert "<img" in sections[name], name


def test_missing_test_labels_and_pred_label_are_handled(tmp_path: Path) -> None:
    run = write_sample_run(
        tmp_path / "run",
        n_actors=5,
        n_test=10,
        test_labels=False,
        feature_sets=["opensmile"],
        models=["linear"],
        parts=["results", "predictions"],
    )
    reference = parse(write_report(run, tmp_path / "a.html").read_text())
    val = run / "predictions" / "opensmile__linear__val.csv"
    table = pd.read_csv(val)
    table.drop(columns="pred_label").to_csv(val, index=False)
    page = write_report(run, tmp_path / "b.html").read_text()
    assert "test labels are not available" in page
    decoded = parse(page)
    # Decoding with the per-fold thresholds of results.csv reproduces the stored predictions exactly.
    assert [i["src"] for i in decoded.images] == [i["src"] for i in reference.images]


def test_broken_parts_are_reported_not_fatal(small_run: Path, tmp_path: Path) -> None:
    run = _copy_run(small_run, tmp_path / "run")
    (run / "config.json").write_text("{not json")
    (run / "curves.csv").write_text("a,b\n1,2\n")
    (run / "grids" / "opensmile__linear.npz").write_bytes(b"garbage")
    (run / "predictions" / "stray.csv").write_text("x\n")
    val = run / "predictions" / "opensmile__linear__val.csv"
    table = pd.read_csv(val)
    table.loc[0, "label"] = "angry"
    table.to_csv(val, index=False)
    data = load_run(run)
    assert data.config is None and data.curves is None and data.grids == {}
    problems = "\n".join(data.problems)
    assert "config.json: not valid JSON" in problems
    assert "curves.csv: missing column(s) feature_set, model, fold, epoch" in problems
    assert "opensmile__linear.npz: cannot be read" in problems
    assert "stray.csv: name is not" in problems
    page = write_report(run).read_text()
    assert "could not be used" in page and "&#x27;angry&#x27;" in page
    assert "config.json: not valid JSON" in page


def test_predictions_with_nan_probabilities_are_skipped(tmp_path: Path) -> None:
    run = write_sample_run(
        tmp_path / "run",
        n_actors=5,
        n_test=0,
        feature_sets=["f"],
        models=["m"],
        parts=["results", "predictions"],
    )
    val = run / "predictions" / "f__m__val.csv"
    table = pd.read_csv(val)
    table.loc[3, "hap"] = np.nan
    table.to_csv(val, index=False)
    data = load_run(run)
    assert data.val_predictions == {} and "NaN" in data.problems[0]
    assert "No validation predictions" in write_report(run).read_text()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p, "no such run folder"),
        (lambda p: (p.mkdir(), p)[1], "not a run folder: none of config.json"),
        (lambda p: (p.write_text("x"), p)[1], "is a file, expected a run folder"),
    ],
)
def test_not_a_run_folder_is_a_user_error(tmp_path: Path, make, message: str) -> None:
    run = make(tmp_path / "run")
    with pytest.raises(BlemoreError, match=message):
        write_report(run, tmp_path / "out.html")
    assert not (tmp_path / "out.html").exists()


def test_output_is_replaced_atomically(tmp_path: Path) -> None:
    run = write_sample_run(tmp_path / "run", n_actors=5, n_test=0, parts=["results"])
    out = tmp_path / "deep" / "folder" / "report.html"
    out.parent.mkdir(parents=True)
    out.write_text("old")
    out_path = write_report(run, out, feature_set="facemesh", model="linear")
    assert out_path == out and out.read_text().rstrip().endswith("</html>")
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]  # no temporary left behind
    with pytest.raises(BlemoreError, match="is a folder"):
        write_report(run, tmp_path)


def test_clip_features_labels_may_be_indices_or_absent(tmp_path: Path) -> None:
    run = write_sample_run(
        tmp_path / "run", n_actors=5, n_test=0, feature_sets=["f"], models=["m"], parts=["clip_features"]
    )
    npz = dict(np.load(run / "clip_features" / "f.npz"))
    np.savez(
        run / "clip_features" / "f.npz",
        X=npz["X"],
        filenames=npz["filenames"],
        labels=analysis.label_indices(npz["labels"].tolist()),
    )
    np.savez(run / "clip_features" / "g.npz", X=npz["X"], filenames=npz["filenames"])  # labels from names
    page = write_report(run).read_text()
    sections = dict(re.findall(r'<section id="(\w+)">(.*?)</section>', page, flags=re.S))
    assert sections["projection"].count("<img") == 2


def test_benchmark_style_extras_are_understood(small_run: Path, tmp_path: Path) -> None:
    """What `blemore benchmark` adds: a pooled curve, fold ids in the grids, settings nested in config.json."""
    import json

    run = _copy_run(small_run, tmp_path / "run")
    curves = pd.read_csv(run / "curves.csv", dtype={"fold": str})
    pooled = curves[curves["fold"] == "0"].assign(fold="pooled")
    pd.concat([curves, pooled]).to_csv(run / "curves.csv", index=False)
    grid_path = run / "grids" / "opensmile__linear.npz"
    grid = dict(np.load(grid_path))
    np.savez(grid_path, **grid, folds=np.arange(10, 15), epoch=np.arange(5))
    (run / "config.json").write_text(json.dumps({"config": {"epochs": 77, "command": ["blemore", "x"]}}))
    page = write_report(run).read_text()
    assert parse(page).notes == []
    assert "<dt>epochs</dt><dd>77</dd>" in page and "<dd>blemore x</dd>" in page
    assert re.search(r"presence and salience on fold 1[0-4] ", page)  # fold names: the grid's fold ids
