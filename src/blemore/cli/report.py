"""``blemore report RUN``: one self-contained HTML page with the run's tables and figures."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from typing_extensions import Annotated

from blemore.cli.app import app, user_errors

__all__ = ["report"]


@app.command()
def report(
    run: Annotated[
        Path, typer.Argument(help="Run folder written by `blemore benchmark` (or `blemore demo`).")
    ],
    out: Annotated[
        Optional[Path],
        typer.Option("--out", "-o", help="Where to write the page \\[default: RUN/report.html]."),
    ] = None,
    feature_set: Annotated[
        Optional[str], typer.Option("--feature-set", "-f", help="Feature set the detailed figures show.")
    ] = None,
    model: Annotated[
        Optional[str], typer.Option("--model", "-m", help="Model the detailed figures show.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar, no warnings.")] = False,
) -> None:
    """Write an HTML report of a run: one page, offline, with its tables and figures.

    Missing parts of the run folder become notes in the page and warnings here.

    The figures show the best combination unless --feature-set/--model pick one.
    """
    with user_errors():
        from blemore.report import require_matplotlib

        require_matplotlib()
        from blemore.report.page import render_report, report_path, save_page
        from blemore.report.rundata import load_run

        data = load_run(run)
        target = report_path(data.run, out)
        page = render_report(data, feature_set=feature_set, model=model, progress=not quiet)
        if not quiet:
            for problem in data.problems:
                print(f"blemore: warning: {problem}", file=sys.stderr)
        typer.echo(str(save_page(page, target)))
