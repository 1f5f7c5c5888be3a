"""Reading run folders for the report: every part, and damaged parts as one line each."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from blemore.errors import BlemoreError
from blemore.report.rundata import load_run
from blemore.report.sample import write_sample_run
from tests.support.report_html import copy_run


@pytest.fixture(scope="module")
def methods_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample_run(
        tmp_path_factory.mktemp("methods") / "run",
        n_actors=5,
        n_test=12,
        compare=True,
        scored=True,
        feature_sets=["opensmile"],
        models=["linear"],
    )


def test_every_part_of_the_run_folder_is_read(methods_run: Path) -> None:
    data = load_run(methods_run)
    assert data.problems == []
    assert data.config is not None and data.results is not None and data.curves is not None
    assert (
        set(data.val_predictions)
        == set(data.test_predictions)
        == set(data.grids)
        == {("opensmile", "linear")}
    )
    assert set(data.clip_features) == {"opensmile"}
    assert data.compare is not None and data.paired is not None
    best = json.loads((methods_run / "best.json").read_text())
    assert data.best == best
    assert set(data.models) == {p.name for p in (methods_run / "models").iterdir()}
    assert set(data.method_predictions) == {p.stem for p in (methods_run / "test_predictions").iterdir()}
    assert data.test_scores is not None and set(data.test_scores["method"]) >= {"baseline", "ensemble"}
    assert set(data.actors) == {"opensmile"}
    assert data.stem_of(**{k: best["chosen"][k] for k in ("method", "feature_set", "model")}) == best["stem"]


def test_broken_parts_are_reported_not_fatal(methods_run: Path, tmp_path: Path) -> None:
    run = copy_run(methods_run, tmp_path / "run")
    (run / "config.json").write_text("{not json")
    (run / "curves.csv").write_text("a,b\n1,2\n")
    (run / "grids" / "opensmile__linear.npz").write_bytes(b"garbage")
    (run / "predictions" / "stray.csv").write_text("x\n")
    (run / "best.json").write_text("[1, 2]")
    (run / "actors.json").write_text('{"opensmile": 3}')
    (run / "test_scores.json").write_text('{"scores": [{"method": "baseline"}]}')
    stem = next(iter(load_run(methods_run).method_predictions))
    (run / "test_predictions" / f"{stem}.csv").write_text("filename\ntest_0001\n")
    data = load_run(run)
    assert data.config is None and data.curves is None and data.grids == {} and data.best is None
    assert data.actors == {} and data.test_scores is None and stem not in data.method_predictions
    problems = "\n".join(data.problems)
    for expected in (
        "config.json: not valid JSON",
        "curves.csv: missing column(s) feature_set, model, fold, epoch",
        "opensmile__linear.npz: cannot be read",
        "stray.csv: name is not",
        "best.json: expected a JSON object, found list",
        "actors.json: the entry of 'opensmile' is not an object",
        "test_scores.json: scores lack feature_set, model, score",
        f"{stem}.csv: missing column(s) pred_label",
    ):
        assert expected in problems
    assert len(data.problems) == 8


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


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p, "no such run folder"),
        (lambda p: (p.mkdir(), p)[1], "not a run folder: none of config.json"),
        (lambda p: (p.write_text("x"), p)[1], "is a file, expected a run folder"),
    ],
)
def test_not_a_run_folder_is_a_user_error(tmp_path: Path, make, message: str) -> None:
    with pytest.raises(BlemoreError, match=message):
        load_run(make(tmp_path / "run"))


def test_a_run_with_nothing_usable_is_a_user_error_naming_the_file(tmp_path: Path) -> None:
    run = write_sample_run(tmp_path / "run", n_actors=5, n_test=0, parts=["config", "results"])
    (run / "results.csv").write_bytes(b"\xff\xfe garbage \x00" * 20)
    with pytest.raises(
        BlemoreError, match=r"results\.csv: cannot be read as CSV \(not UTF-8 text.*nothing else in"
    ):
        load_run(run)
    (run / "results.csv").unlink()
    with pytest.raises(BlemoreError, match="holds no results to report"):
        load_run(run)
