"""The report page: its sections, self-containment, the baseline's tables, notes for what is missing."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from blemore.errors import BlemoreError
from blemore.protocol.runfolder import read_marker
from blemore.report import analysis, write_report
from blemore.report.page import build_report
from blemore.report.rundata import load_run
from blemore.report.sample import write_sample_run
from tests.support.report_html import copy_run, parse, sections, tables

METHOD_IDS = ("submit", "compare", "heldout", "actors")
BASELINE_IDS = ("results", "confusion", "thresholds", "curves", "projection", "breakdown")
#: Figures of a full sample page: distribution, forest, held-out scatter, scores, 2 confusions, thresholds,
#: curves, 2 projections, actors and pairs.
FULL_FIGURES = 12


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


def test_full_report_has_every_section_and_no_notes(full_page: str) -> None:
    page = parse(full_page)
    assert page.sections == [*METHOD_IDS, *BASELINE_IDS]
    assert page.notes == [] or all("one actor" in n for n in page.notes)
    assert len(page.images) == FULL_FIGURES
    for heading in (
        "What to submit",
        "Methods compared",
        "Held-out test scores",
        "Pseudo-actors",
        "Results",
        "Confusion matrices",
        "Thresholds",
        "Training curves",
        "Feature projections",
        "Accuracy per actor",
    ):
        assert heading in full_page
    for n in range(1, FULL_FIGURES + 1):
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


def test_the_report_is_recorded_in_the_run_folder(full_run: Path, full_page: str) -> None:
    marker = read_marker(full_run)
    assert marker is not None and "report.html" in marker["files"]


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
        assert f"{100 * mean['score'].iloc[0]:.1f}" in sections(full_page)["results"]
    assert "majority-single" in full_page and "majority-blend" in full_page
    assert "class=focus" in full_page


def test_groups_without_blends_show_a_dash_for_salience(full_run: Path, full_page: str) -> None:
    (pairs,) = [t for t in tables(sections(full_page)["breakdown"]) if t[0][0] == "true emotion / pair"]
    rows = {r[0]: r for r in pairs[1:]}
    assert [r[4] for name, r in rows.items() if "+" not in name] == ["–"] * 6  # the singles and neutral
    assert all(r[2] == "0" for name, r in rows.items() if "+" not in name)
    data = load_run(full_run)
    val = data.val_predictions[("facemesh", "mlp-256")]
    truth = analysis.label_indices(val["label"].tolist())
    pred = analysis.label_indices(val["pred_label"].tolist())
    scores = analysis.group_scores(truth, pred, [analysis.pair_of(int(t)) for t in truth]).set_index("group")
    for name in ("ang+hap", "fea+sad"):
        assert rows[name][4] == f"{100 * scores.loc[name, 'acc_salience']:.1f}"


def test_focus_defaults_to_best_mean_score_and_can_be_chosen(
    full_run: Path, full_page: str, tmp_path: Path
) -> None:
    results = load_run(full_run).results
    means = results[(results["fold"] == "mean") & (results["method"] == "baseline")]
    best = means.sort_values("score").iloc[-1]
    assert f"{best['feature_set']} / {best['model']} (best mean validation score)" in full_page
    run = copy_run(full_run, tmp_path / "run", drop=("clip_features", "grids", "curves.csv"))
    other = write_report(run, feature_set="opensmile", model="linear").read_text()
    assert "opensmile / linear (chosen on the command line)" in other
    assert "Out-of-fold validation predictions of opensmile / linear" in other
    with pytest.raises(BlemoreError, match="no results for feature set 'nope'.*opensmile/linear"):
        write_report(run, tmp_path / "x.html", feature_set="nope")
    assert not (tmp_path / "x.html").exists()


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
    run = copy_run(small_run, tmp_path / "run", drop=drop)
    page = write_report(run).read_text()
    parsed = parse(page)
    assert [s for s in parsed.sections if s in BASELINE_IDS] == list(BASELINE_IDS)
    body = sections(page)
    with_note = {name for name, html in body.items() if 'class="note"' in html}
    assert noted <= with_note
    # Sections whose inputs are there are still drawn.
    for name in set(BASELINE_IDS) - noted - {"results"}:
        assert "<img" in body[name], name


def test_a_run_without_the_methods_part_has_only_the_baseline_sections(tmp_path: Path) -> None:
    run = write_sample_run(tmp_path / "run", n_actors=5, n_test=0, feature_sets=["f"], models=["m"])
    assert parse(write_report(run).read_text()).sections == list(BASELINE_IDS)


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


def test_broken_parts_are_listed_in_the_page(small_run: Path, tmp_path: Path) -> None:
    run = copy_run(small_run, tmp_path / "run")
    (run / "config.json").write_text("{not json")
    val = run / "predictions" / "opensmile__linear__val.csv"
    table = pd.read_csv(val)
    table.loc[0, "label"] = "angry"
    table.to_csv(val, index=False)
    outcome = build_report(run)
    page = outcome.path.read_text()
    assert "could not be used" in page and "&#x27;angry&#x27;" in page
    assert "config.json: not valid JSON" in page
    assert any("config.json: not valid JSON" in p for p in outcome.problems)
    assert all("\n" not in p for p in outcome.problems)


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
    nested = write_report(run, run / "pages" / "r.html")
    assert "pages/r.html" in read_marker(run)["files"] and nested.is_file()


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
    assert sections(page)["projection"].count("<img") == 2


def test_benchmark_style_extras_are_understood(small_run: Path, tmp_path: Path) -> None:
    """What `blemore benchmark` adds: a pooled curve, fold ids in grids, settings nested in config.json."""
    run = copy_run(small_run, tmp_path / "run")
    curves = pd.read_csv(run / "curves.csv", dtype={"fold": str})
    pooled = curves[curves["fold"] == "0"].assign(fold="pooled")
    pd.concat([curves, pooled]).to_csv(run / "curves.csv", index=False)
    grid_path = run / "grids" / "opensmile__linear.npz"
    grid = dict(np.load(grid_path))
    np.savez(grid_path, **grid, folds=np.arange(10, 15), epoch=np.arange(5))
    (run / "config.json").write_text(json.dumps({"config": {"epochs": 77, "command": ["blemore", "x"]}}))
    page = write_report(run).read_text()
    assert all("one actor" in n for n in parse(page).notes)
    assert "<dt>epochs</dt><dd>77</dd>" in page and "<dd>blemore x</dd>" in page
    assert re.search(r"presence and salience on fold 1[0-4] ", page)  # fold names: the grid's fold ids
