"""``blemore report RUN``: output, options, one-line errors with exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from blemore.cli import app
from blemore.report.sample import write_sample_run


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample_run(
        tmp_path_factory.mktemp("cli") / "run",
        n_actors=5,
        n_test=10,
        feature_sets=["opensmile"],
        models=["linear", "mlp-256"],
        parts=["config", "results", "predictions"],
    )


def invoke(*args: str):
    return CliRunner().invoke(app, ["report", *args])


def test_report_writes_page_and_prints_its_path(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "page.html"
    result = invoke(str(run), "-o", str(out), "--quiet", "--model", "linear")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "opensmile / linear (chosen on the command line)" in page


def test_report_defaults_to_run_folder_and_warns_about_broken_parts(run: Path, tmp_path: Path) -> None:
    import shutil

    copy = Path(shutil.copytree(run, tmp_path / "run"))
    (copy / "curves.csv").write_text("nothing,useful\n")
    result = invoke(str(copy))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(copy / "report.html") and (copy / "report.html").is_file()
    assert len([line for line in result.stderr.splitlines() if "curves.csv" in line]) == 1
    assert "blemore: warning:" in result.stderr and "curves.csv: missing column(s)" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{tmp}/missing"], "no such run folder"),
        (["{tmp}"], "not a run folder"),
        (["{run}", "--feature-set", "nope"], "no results for feature set 'nope'"),
        (["{run}", "-o", "{tmp}"], "is a folder"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    run: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    before = sorted(p.name for p in tmp_path.iterdir()) + sorted(p.name for p in run.iterdir())
    result = invoke(*[a.format(tmp=tmp_path, run=run) for a in args])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("blemore: error: ") and message in lines[0]
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) + sorted(p.name for p in run.iterdir()) == before


def _damage_cut(path: Path) -> str:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 + 7])  # mid-line
    return "ends mid-line (cut short?)"


def _damage_garbage(path: Path) -> str:
    path.write_bytes(bytes(range(256)) * 8)
    return "cannot be read as CSV (not UTF-8 text"


def _damage_columns(path: Path) -> str:
    import pandas as pd

    pd.read_csv(path).drop(columns=["score", "fold"]).to_csv(path, index=False)
    return "missing column(s) fold, score"


@pytest.mark.parametrize("damage", [_damage_cut, _damage_garbage, _damage_columns])
def test_a_damaged_results_file_is_one_warning_line_and_the_page_is_written(
    run: Path, tmp_path: Path, damage
) -> None:
    import shutil

    copy = Path(shutil.copytree(run, tmp_path / "run"))
    message = damage(copy / "results.csv")
    result = invoke(str(copy), "-o", str(tmp_path / "page.html"))
    assert result.exit_code == 0, result.output
    lines = [
        line for line in result.stderr.splitlines() if line.startswith("blemore:")
    ]  # no progress bar lines
    assert all(line.startswith("blemore: warning: ") for line in lines)
    (line,) = [line for line in lines if "results.csv" in line]
    assert line.startswith(f"blemore: warning: {copy / 'results.csv'}: ") and message in line
    assert "Traceback" not in result.output and (tmp_path / "page.html").is_file()


@pytest.fixture(scope="module")
def methods_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample_run(
        tmp_path_factory.mktemp("methods") / "run",
        n_actors=5,
        n_test=10,
        compare=True,
        scored=True,
        feature_sets=["opensmile"],
        models=["linear"],
    )


@pytest.mark.parametrize(
    ("part", "content", "message"),
    [
        ("best.json", b'{"chosen": ', "not valid JSON"),
        ("best.json", b'{"why": "x"}', "no 'chosen' configuration"),
        ("test_scores.json", b"\x00\x01", "not valid JSON"),
        ("test_scores.json", b'{"scores": {}}', "'scores' is not a non-empty list"),
        ("actors.json", b"[]", "expected a JSON object"),
        ("compare.csv", b"method,score\nbaseline,0.3\n", "missing column(s) feature_set, model"),
        ("paired.csv", b"\xff\xfe", "not UTF-8 text"),
        ("models/baseline__opensmile__linear/model.json", b"{", "not valid JSON"),
        (
            "test_predictions/baseline__opensmile__linear.csv",
            b"filename,pred_label\ntest_0001,hap\ntest_0",
            "ends mid-line",
        ),
    ],
)
def test_every_damaged_part_of_the_methods_is_one_warning_line(
    methods_run: Path, tmp_path: Path, part: str, content: bytes, message: str
) -> None:
    import shutil

    copy = Path(shutil.copytree(methods_run, tmp_path / "run", ignore=shutil.ignore_patterns("report.html")))
    (copy / part).write_bytes(content)
    result = invoke(str(copy), "-o", str(tmp_path / "page.html"))
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("blemore:")]
    assert lines == [line for line in lines if line.startswith(f"blemore: warning: {copy / part}: ")]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.output
    assert (tmp_path / "page.html").read_text().rstrip().endswith("</html>")


def test_nothing_usable_is_one_error_line_exit_2_and_no_page(tmp_path: Path) -> None:
    run = write_sample_run(tmp_path / "run", n_actors=5, n_test=0, parts=["config", "results"])
    _damage_garbage(run / "results.csv")
    before = sorted(p.name for p in run.iterdir())
    result = invoke(str(run))
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"blemore: error: {run / 'results.csv'}: cannot be read as CSV (not UTF-8 text")
    assert "nothing else in" in line and "Traceback" not in result.output
    assert sorted(p.name for p in run.iterdir()) == before


def test_the_default_page_is_recorded_in_the_run_folder(run: Path, tmp_path: Path) -> None:
    import shutil

    from blemore.protocol.runfolder import read_marker

    copy = Path(shutil.copytree(run, tmp_path / "run"))
    assert invoke(str(copy), "-q").exit_code == 0
    assert "report.html" in read_marker(copy)["files"]


def test_missing_matplotlib_is_a_user_error(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a)
    )
    result = invoke(str(run), "-o", str(tmp_path / "r.html"))
    assert result.exit_code == 2 and "pip install 'blemore[report]'" in result.stderr
    assert not (tmp_path / "r.html").exists()
