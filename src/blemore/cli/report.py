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
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar (warnings about the run folder still show).")] = False,
) -> None:
    """Write an HTML report of a run: one page, offline, with its tables and figures.

    The page says what to submit (best.json) and why. Missing or damaged parts of the run
    folder become notes in the page and one warning line each here (exit code 0); a run
    folder where nothing can be used is an error (exit code 2, no page written).

    The figures show the best combination unless --feature-set/--model pick one.
    """
    with user_errors():
        from blemore.report import require_matplotlib

        require_matplotlib()
        from blemore.report.page import build_report

        outcome = build_report(run, out, feature_set=feature_set, model=model, progress=not quiet)
        for problem in outcome.problems:  # about the user's files: shown even with --quiet
            print(f"blemore: warning: {problem}", file=sys.stderr)
        typer.echo(str(outcome.path))
