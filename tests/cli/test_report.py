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
