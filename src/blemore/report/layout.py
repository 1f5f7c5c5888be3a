"""The building blocks of the report page: sections, numbered figures, tables and number formats.

Every section of the page is a function ``Context -> Section | None`` (see
:mod:`blemore.report.page` and :mod:`blemore.report.methods`); this module holds what
they share: the :class:`Context` they read, the :class:`Section` they return, the
:class:`Figures` counter that numbers captions, and small formatters. Numbers are shown
in percent with one decimal; a missing number is an en dash.

>>> pct(0.4543), pct(float("nan")), pm(0.5, 0.021)
('45.4', '–', '50.0 <span class=sd>± 2.1</span>')
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from blemore.report import figures
from blemore.report.rundata import RunData

__all__ = [
    "Section",
    "Figures",
    "Context",
    "DASH",
    "esc",
    "pct",
    "pm",
    "num",
    "note",
    "table",
    "interval",
    "signed",
    "as_float",
    "config_label",
]

#: What the page shows for a number that does not exist.
DASH = "–"


@dataclass
class Section:
    """One part of the page: ``body`` is HTML; ``note`` (if any) says why something is missing."""

    id: str
    title: str
    body: str = ""
    note: str | None = None


@dataclass
class Figures:
    """Collects the figures of a page, numbering them for captions."""

    count: int = 0

    def html(self, fig: object, *, alt: str, caption: str, css: str = "") -> str:
        """The ``<figure>`` of ``fig`` (an SVG data URI) with its numbered caption; ``fig`` is cleared."""
        self.count += 1
        uri = figures.svg_data_uri(fig)  # type: ignore[arg-type]
        fig.clear()  # type: ignore[attr-defined]
        return (
            f'<figure class="{css}"><img src="{uri}" alt="{esc(alt)}" loading="eager" decoding="sync">'
            f"<figcaption><b>Figure {self.count}.</b> {caption}</figcaption></figure>"
        )


@dataclass
class Context:
    """What every section reads: the run, the figure counter, the results summary and the focus.

    ``focus`` is the baseline's (feature set, model) the detailed figures show.
    """

    data: RunData
    figs: Figures
    summary: pd.DataFrame | None
    focus: tuple[str, str] | None
    focus_reason: str


def esc(text: object) -> str:
    """``text`` escaped for HTML (quotes too)."""
    return html.escape(str(text), quote=True)


def _finite(value: object) -> bool:
    try:
        return value is not None and bool(np.isfinite(float(value)))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def pct(value: object, digits: int = 1) -> str:
    """A share as percent (``0.4543`` -> ``"45.4"``); :data:`DASH` if missing."""
    return format(100 * float(value), f".{digits}f") if _finite(value) else DASH  # type: ignore[arg-type]


def pm(mean: object, std: object) -> str:
    """``mean ± std`` in percent, the spread in muted type."""
    if not _finite(mean):
        return DASH
    if not _finite(std):
        return pct(mean)
    return f"{pct(mean)} <span class=sd>± {pct(std)}</span>"


def num(value: object, fmt: str = ".2f") -> str:
    """A plain number; :data:`DASH` if missing."""
    return format(float(value), fmt) if _finite(value) else DASH  # type: ignore[arg-type]


def signed(value: object) -> str:
    """A difference in percentage points with its sign (``0.183`` -> ``"+18.3"``)."""
    text = pct(value)
    return text if text == DASH or text.startswith("-") else f"+{text}"


def as_float(value: object) -> float:
    """``value`` as a float; NaN where it is none (``None``, text, a missing entry)."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")


def config_label(key: Sequence[str]) -> str:
    """``"actor-norm / opensmile+facemesh / mlp256"`` for a (method, feature set, model)."""
    return " / ".join(key)


def interval(low: object, high: object) -> str:
    """A 95 % interval in percent (``"40.3 – 50.4"``); :data:`DASH` if missing."""
    if not (_finite(low) and _finite(high)):
        return DASH
    return f"{pct(low)} – {pct(high)}"


def note(text: str) -> str:
    """A highlighted remark (something missing, a caveat); ``text`` is HTML."""
    return f'<p class="note">{text}</p>'


def table(
    header: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    highlight: Iterable[int] = (),
    caption: str = "",
    groups: Sequence[tuple[str, int]] = (),
) -> str:
    """An HTML table in a scrolling wrapper; cells are HTML, ``highlight`` rows are shaded.

    ``groups``: column-group headings as ``(title, number of columns)`` above the header.
    """
    highlight = set(highlight)
    head = "".join(f"<th>{h}</th>" for h in header)
    if groups:
        top = "".join(f'<th colspan="{n}" class="group">{g}</th>' for g, n in groups)
        head = f"{top}</tr><tr>{head}"
    body = "".join(
        f"<tr{' class=focus' if i in highlight else ''}>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>"
        for i, row in enumerate(rows)
    )
    cap = f'<p class="tcap">{caption}</p>' if caption else ""
    rows_html = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="table-wrap">{rows_html}</div>{cap}'
