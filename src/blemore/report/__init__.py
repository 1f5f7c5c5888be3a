"""The run report: one self-contained HTML page with the run's tables and figures.

>>> from blemore.report import write_report   # doctest: +SKIP
>>> write_report(Path("runs/demo"))            # doctest: +SKIP
PosixPath('runs/demo/report.html')

Modules: :mod:`~blemore.report.rundata` (reading a run folder, tolerant of missing or
damaged parts, with :mod:`~blemore.report.readers`), :mod:`~blemore.report.analysis` (the
numbers behind the figures), :mod:`~blemore.report.layout` (sections, tables, formats), the
sections — :mod:`~blemore.report.submit` (what to submit and why),
:mod:`~blemore.report.methods` (the methods, held-out scores), :mod:`~blemore.report.actors`
(pseudo-actors), :mod:`~blemore.report.baseline` (the baseline in detail),
:mod:`~blemore.report.clips` (projections, accuracy per actor and pair) — their figures
(:mod:`~blemore.report.figures`, :mod:`~blemore.report.method_figures`,
:mod:`~blemore.report.clip_figures`, SVG via matplotlib), :mod:`~blemore.report.page` (the
page) and :mod:`~blemore.report.sample` (a synthetic run folder to preview and test the
report). Matplotlib is imported only when a report is drawn.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from blemore.report.rundata import RunData

__all__ = ["write_report", "render_report", "load_run", "require_matplotlib"]


def require_matplotlib() -> None:
    """Raise :class:`~blemore.errors.BlemoreError` with the install command if matplotlib is missing."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        from blemore.errors import BlemoreError

        raise BlemoreError("the report needs matplotlib: pip install 'blemore[report]'")


def write_report(
    run: Path,
    out: Path | None = None,
    *,
    feature_set: str | None = None,
    model: str | None = None,
    progress: bool = False,
) -> Path:
    """Write the report of run folder ``run`` to ``out`` (default ``run/report.html``) and return its path.

    See :func:`blemore.report.page.write_report`.
    """
    require_matplotlib()
    from blemore.report.page import write_report as _write

    return _write(run, out, feature_set=feature_set, model=model, progress=progress)


def render_report(
    data: "RunData", *, feature_set: str | None = None, model: str | None = None, progress: bool = False
) -> str:
    """The page of a loaded run as an HTML string (see :func:`blemore.report.page.render_report`)."""
    require_matplotlib()
    from blemore.report.page import render_report as _render

    return _render(data, feature_set=feature_set, model=model, progress=progress)


def load_run(run: Path) -> "RunData":
    """Read a run folder (see :func:`blemore.report.rundata.load_run`)."""
    from blemore.report.rundata import load_run as _load

    return _load(run)
