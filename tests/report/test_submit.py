"""What to submit and why (``best.json``), on sample runs and on a small real run of ``blemore benchmark``."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from blemore.report import write_report
from blemore.report.analysis import label_indices, label_shares
from blemore.report.rundata import load_run
from blemore.report.sample import write_sample_run
from tests.support.report_html import copy_run, parse, sections, tables, text


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _check_submit_section(run: Path, page: str) -> None:
    """The decision as best.json states it: zip, configuration, reason, scores with intervals."""
    best = json.loads((run / "best.json").read_text())
    body = sections(page)["submit"]
    shown = text(body)
    zip_path = (run / best["submission"]).resolve()
    assert zip_path.is_file() and f"Submit {zip_path}" in shown
    chosen, base = best["chosen"], best["best_baseline"]
    for key in ("method", "feature_set", "model"):
        assert chosen[key] in shown
    assert best["why"] in shown
    assert (
        f"{best['selection']} validation score {_pct(chosen['score'])} (95 % interval over actors "
        f"{_pct(chosen['ci_low'])} – {_pct(chosen['ci_high'])})" in shown
    )
    assert f"{base['method']} / {base['feature_set']} / {base['model']}: {_pct(base['score'])}" in shown
    (candidates,) = tables(body)
    assert len(candidates) == 1 + len(best["candidates"])
    assert candidates[1][1:4] == [chosen["method"], chosen["feature_set"], chosen["model"]]
    assert candidates[1][-1] == "chosen"
    assert body.count("<img") == 1 and "label distribution" in body


def _check_distribution_caption(run: Path, page: str) -> None:
    """The caption's blend shares are those of the training labels and of the chosen test predictions."""
    data = load_run(run)
    best = data.best
    train = label_indices(next(iter(data.val_predictions.values()))["label"].tolist())
    pred = label_indices(pd.read_csv(run / "test_predictions" / f"{best['stem']}.csv")["pred_label"].tolist())
    shown = text(sections(page)["submit"])
    for labels in (train, pred):
        kinds = label_shares(labels[labels >= 0], by="kind")
        assert f"{_pct(1 - kinds[0])} % blends ({_pct(kinds[1])} % blend 50/50)" in shown


def test_submit_section_from_a_sample_run(scored_sample: Path, scored_page: str) -> None:
    _check_submit_section(scored_sample, scored_page)
    _check_distribution_caption(scored_sample, scored_page)
    shown = text(sections(scored_page)["submit"])
    assert "paired difference" in shown and "validation by rule paper" in shown
    assert parse(scored_page).sections[0] == "submit"


def test_submit_section_from_a_real_run(anonymous_run: Path) -> None:
    page = write_report(anonymous_run).read_text()
    _check_submit_section(anonymous_run, page)
    _check_distribution_caption(anonymous_run, page)


def test_a_run_without_test_clips_says_how_to_get_the_zip(tmp_path: Path) -> None:
    run = write_sample_run(
        tmp_path / "run", n_actors=5, n_test=0, compare=True, feature_sets=["f"], models=["m"]
    )
    page = write_report(run).read_text()
    assert "there is no zip" in text(sections(page)["submit"]) and "--method best" in page
    assert "heldout" not in parse(page).sections and "actors" not in parse(page).sections


def test_missing_test_predictions_of_the_chosen_become_a_note(scored_sample: Path, tmp_path: Path) -> None:
    stem = json.loads((scored_sample / "best.json").read_text())["stem"]
    run = copy_run(scored_sample, tmp_path / "run")
    (run / "test_predictions" / f"{stem}.csv").unlink()
    (run / "submission" / f"{stem}.zip").unlink()
    body = sections(write_report(run).read_text())["submit"]
    assert "No test predictions of the chosen configuration" in text(body)
    assert "but the file is not in the run folder" in text(body) and "<img" not in body
