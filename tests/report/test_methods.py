"""The methods table and the held-out scores of every method, on sample runs and small real runs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from blemore.report import write_report
from tests.support.report_html import copy_run, parse, sections, tables, text


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def test_methods_section_shows_every_method_including_the_ensemble(anonymous_run: Path) -> None:
    page = write_report(anonymous_run).read_text()
    (table,) = tables(sections(page)["compare"])
    compare = pd.read_csv(anonymous_run / "compare.csv", keep_default_na=False)
    assert len(table) == 1 + len(compare)
    assert {r[0] for r in table[1:]} == {"baseline", "actor-norm", "ensemble"}
    assert ["ensemble", "s0, s1", "linear"] in [r[:3] for r in table[1:]]
    assert "<img" in sections(page)["compare"]


# ------------------------------------------------------------------------------------------ held-out scores


def _heldout_rows(page: str) -> dict[tuple[str, str, str], list[str]]:
    (table,) = tables(sections(page)["heldout"])
    header = table[0]
    return {tuple(r[:3]): dict(zip(header, r)) for r in table[1:]}  # type: ignore[misc]


def test_heldout_scores_from_test_scores_json(scored_sample: Path, scored_page: str) -> None:
    rows = _heldout_rows(scored_page)
    scores = json.loads((scored_sample / "test_scores.json").read_text())["scores"]
    assert len(rows) == len(scores)
    for s in scores:
        row = rows[(s["method"], s["feature_set"], s["model"])]
        assert (row["presence"], row["salience"], row["score"]) == (
            _pct(s["acc_presence"]),
            _pct(s["acc_salience"]),
            _pct(s["score"]),
        )
    assert "test_scores.json" in text(sections(scored_page)["heldout"])
    assert sections(scored_page)["heldout"].count("<img") == 1


def test_heldout_scores_of_a_real_anonymised_run_scored_afterwards(anonymous_run: Path) -> None:
    page = write_report(anonymous_run).read_text()
    rows = _heldout_rows(page)
    scores = json.loads((anonymous_run / "test_scores.json").read_text())["scores"]
    methods = [s for s in scores if s["method"] not in ("majority-single", "majority-blend")]
    assert len(rows) == len(methods) >= 5
    best = json.loads((anonymous_run / "best.json").read_text())
    chosen = best["chosen"]
    row = rows[(chosen["method"], chosen["feature_set"], chosen["model"])]
    (expected,) = [
        s
        for s in methods
        if (s["method"], s["feature_set"], s["model"])
        == (chosen["method"], chosen["feature_set"], chosen["model"])
    ]
    assert row["score"] == _pct(expected["score"]) and row[f"validation ({best['selection']})"] == _pct(
        chosen["score"]
    )
    shown = text(sections(page)["heldout"])
    assert (
        f"The configuration chosen on validation ({chosen['method']} / {chosen['feature_set']} / "
        f"{chosen['model']}) scores {_pct(expected['score'])} on the held-out clips" in shown
    )


def test_heldout_scores_from_compare_test_rows(labelled_run: Path) -> None:
    page = write_report(labelled_run).read_text()
    rows = _heldout_rows(page)
    compare = pd.read_csv(labelled_run / "compare.csv", keep_default_na=False)
    test = compare[(compare["split"] == "test") & (compare["selection"] == "pooled")]
    assert len(rows) == len(test) and ("ensemble", "s0, s1", "linear") in rows
    for r in test.itertuples():
        row = rows[(r.method, r.feature_set, r.model)]
        assert row["score"] == _pct(r.score) and row["interval"] == f"{_pct(r.ci_low)} – {_pct(r.ci_high)}"
    assert "compare.csv (test rows" in text(sections(page)["heldout"])
    assert "actors" not in parse(page).sections  # labelled test clips carry their actors


def test_unscored_test_clips_get_a_note(anonymous_run: Path, tmp_path: Path) -> None:
    run = copy_run(anonymous_run, tmp_path / "run", drop=("test_scores.json",))
    body = sections(write_report(run).read_text())["heldout"]
    assert "there are no held-out scores" in text(body) and "blemore score" in body
