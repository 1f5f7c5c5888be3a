"""Run folders shared by the report's tests: sample runs and small real runs of ``blemore benchmark``."""

from __future__ import annotations

from pathlib import Path

import pytest

from blemore.report import write_report
from blemore.report.sample import write_sample_run
from tests.support.report_html import real_run


@pytest.fixture(scope="session")
def scored_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample_run(
        tmp_path_factory.mktemp("scored") / "run", n_actors=10, n_test=30, compare=True, scored=True
    )


@pytest.fixture(scope="session")
def scored_page(scored_sample: Path) -> str:
    return write_report(scored_sample).read_text()


@pytest.fixture(scope="session")
def anonymous_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return real_run(tmp_path_factory.mktemp("anonymous"), anonymous=True)


@pytest.fixture(scope="session")
def labelled_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return real_run(
        tmp_path_factory.mktemp("labelled"), anonymous=False, methods="baseline,structured,ensemble"
    )
