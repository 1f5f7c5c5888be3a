"""Tolerant readers of a run folder's files: a cut or damaged CSV keeps what is sound and is one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blemore.report.readers import read_json_object, read_table
from blemore.report.rundata import RESULTS_COLUMNS
from blemore.report.sample import write_sample_run


@pytest.fixture(scope="module")
def results_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample_run(tmp_path_factory.mktemp("run") / "run", n_actors=5, n_test=10, parts=["results"])


def _results_text(run: Path) -> str:
    return (run / "results.csv").read_text()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.floats(0.02, 0.999))
def test_a_results_file_cut_anywhere_keeps_its_complete_rows(
    results_run: Path, tmp_path: Path, share: float
) -> None:
    whole = _results_text(results_run)
    cut = whole[: int(share * len(whole))]
    path = tmp_path / "results.csv"
    path.write_text(cut)
    problems: list[str] = []
    table = read_table(path, RESULTS_COLUMNS, problems, text=("feature_set", "model", "method", "fold"))
    complete = cut.count("\n") - 1  # rows whose line ended
    header_whole = "\n" in cut
    if not header_whole:  # the header itself is cut
        assert table is None and len(problems) == 1 and "ends inside its header line" in problems[0]
        return
    reference = pd.read_csv(results_run / "results.csv", dtype={"fold": str}, keep_default_na=False)
    assert table is not None and len(table) == complete
    assert table["fold"].tolist() == reference["fold"].head(complete).tolist()
    np.testing.assert_allclose(
        table["score"].to_numpy(float), reference["score"].head(complete).to_numpy(float)
    )
    if cut.endswith("\n"):
        assert problems == []
    else:
        assert len(problems) == 1 and problems[0].startswith(str(path)) and "ends mid-line" in problems[0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (bytes(range(256)) * 4, "not UTF-8 text"),
        (b"feature_set,model\x00,method\n", "NUL bytes"),
        (b"a,b\n1,2\n", "missing column(s) feature_set, model, method, fold"),
        (
            b"feature_set,model,method,fold,acc_presence,acc_salience,score\nf,m,baseline,0,0.5,x,0.3\n"
            b"f,m,baseline,1,0.5\nf,m,baseline,2,0.4,0.2,0.3\n",
            "1 row(s) without the header's 7 fields (e.g. line 3) are left out; "
            "column acc_salience: 1 value(s)",
        ),
    ],
)
def test_damaged_tables_become_one_line_naming_the_file(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "results.csv"
    path.write_bytes(content)
    problems: list[str] = []
    table = read_table(path, RESULTS_COLUMNS, problems, text=("feature_set", "model", "method", "fold"))
    assert len(problems) == 1 and problems[0].startswith(f"{path}: ") and message in problems[0]
    assert "\n" not in problems[0]
    if table is not None:  # what is sound is kept
        assert table["fold"].tolist() == ["0", "2"] and np.isnan(table["acc_salience"].iloc[0])


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "not valid JSON"), ("[1]", "expected a JSON object, found list"), ("", "not valid JSON")],
)
def test_json_that_is_no_object_is_one_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "best.json"
    path.write_text(content)
    problems: list[str] = []
    assert read_json_object(path, problems) is None
    assert len(problems) == 1 and problems[0].startswith(f"{path}: {message}")
