"""Assembling the report: one self-contained HTML page per run folder.

The page's sections come from :mod:`blemore.report.submit` (what to submit and why),
:mod:`blemore.report.methods` (the methods, held-out scores), :mod:`blemore.report.actors`
(pseudo-actors of anonymised test clips), :mod:`blemore.report.baseline` (the baseline's results,
confusions, thresholds, curves) and :mod:`blemore.report.clips` (feature projections,
accuracy per actor and pair); this module chooses the combination in focus, writes the
header, and assembles, renders and writes the page.

The page makes no network request: figures are SVG in ``data:`` URIs, styles
and the one small script are inline, fonts are the system's, and a
Content-Security-Policy forbids anything else. A section whose inputs are
missing or unusable is replaced by a note that says what is missing and how to
get it; the page is written atomically (a half-written report never appears).

The inline script sets ``data-ready="ok"`` on ``<body>`` once every figure has
loaded (``"broken"`` and a console error otherwise), ``data-figures`` to the
number of figures and ``data-fits-width`` to whether the page needs no
horizontal scrolling; the browser test reads them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import pandas as pd

from blemore.errors import BlemoreError
from blemore.io import write_text
from blemore.protocol.runfolder import RunFolder, is_run_folder
from blemore.report.actors import actors_section
from blemore.report.analysis import summarise_results
from blemore.report.baseline import (
    confusion_section,
    curves_section,
    results_section,
    threshold_section,
)
from blemore.report.clips import breakdown_section, projection_section
from blemore.report.layout import Context, Figures, Section, esc, note
from blemore.report.methods import compare_section, heldout_section
from blemore.report.rundata import TRIVIAL_METHODS, RunData, load_run
from blemore.report.submit import submit_section

__all__ = ["write_report", "build_report", "ReportOutcome", "render_report", "report_path", "save_page"]

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


# --------------------------------------------------------------------------------------------- context


def _summary(data: RunData) -> pd.DataFrame | None:
    if data.results is None or data.results.empty:
        return None
    summary = summarise_results(data.results)
    summary["trivial"] = summary["method"].isin(TRIVIAL_METHODS)
    return summary


def _choose_focus(
    data: RunData, summary: pd.DataFrame | None, feature_set: str | None, model: str | None
) -> tuple[tuple[str, str] | None, str]:
    combos = data.combos()
    wanted = [
        c for c in combos if (feature_set is None or c[0] == feature_set) and (model is None or c[1] == model)
    ]
    if (feature_set or model) and not wanted:
        have = ", ".join(f"{f}/{m}" for f, m in combos) or "none"
        raise BlemoreError(
            f"{data.run}: no results for feature set {feature_set or 'any'!r} and model {model or 'any'!r}; "
            f"the run has {have}"
        )
    if not wanted:
        return None, ""
    if summary is not None:
        own = summary[~summary["trivial"]].copy()
        own = own[[(f, m) in wanted for f, m in zip(own["feature_set"], own["model"])]]
        own = own[own["score_mean"].notna()]
        if not own.empty:
            # Prefer combinations whose validation predictions exist (the figures need them).
            own["has_val"] = [
                (f, m) in data.val_predictions for f, m in zip(own["feature_set"], own["model"])
            ]
            best = own.sort_values(["has_val", "score_mean"], ascending=False).iloc[0]
            reason = "chosen on the command line" if (feature_set or model) else "best mean validation score"
            return (best["feature_set"], best["model"]), reason
    with_val = [c for c in wanted if c in data.val_predictions]
    return (with_val or wanted)[0], "first combination with validation predictions"


# --------------------------------------------------------------------------------------------- sections


def _header(ctx: Context) -> str:
    data = ctx.data
    config = data.config or {}
    nested = config.get("config") if isinstance(config.get("config"), dict) else {}
    items = []

    def get(*keys: str) -> object:
        """The first of ``keys`` found at the top of config.json or in its ``config`` object."""
        for source in (config, nested):
            for key in keys:
                if source.get(key) not in (None, "", [], {}):
                    return source[key]
        return None

    def add(name: str, value: object) -> None:
        if value in (None, "", [], {}):
            return
        if isinstance(value, (list, tuple)):
            text = esc(", ".join(map(str, value)))
        elif isinstance(value, dict):
            if all(isinstance(v, (str, int, float)) and len(str(v)) < 30 for v in value.values()):
                text = esc(", ".join(f"{k} {v}" for k, v in value.items()))
            else:
                text = "".join(f"<div><i>{esc(k)}</i>: {esc(v)}</div>" for k, v in value.items())
        else:
            text = esc(value)
        items.append(f"<dt>{esc(name)}</dt><dd>{text}</dd>")

    add("run folder", data.run.resolve())
    command = get("command", "command_line", "argv")
    add("command", " ".join(map(str, command)) if isinstance(command, list) else command)
    add("created", get("created", "date", "started"))
    add("seed", get("seed", "seeds"))
    combos = data.combos()
    add("feature sets", get("feature_sets", "sets") or sorted({f for f, _ in combos}))
    add("models", sorted({m for _, m in combos}) or get("models"))
    add("methods", get("methods"))
    add("epochs", get("epochs"))
    add("folds", get("folds", "n_folds"))
    for key in ("representation", "lr", "batch_size", "submission_rule", "device"):
        add(key.replace("_", " "), get(key))
    add(
        "clips", ", ".join(f"{get(k)} {k.split('_')[1]}" for k in ("n_train_clips", "n_test_clips") if get(k))
    )
    add("selection", get("selection"))
    add("versions", get("versions"))
    if ctx.focus:
        add("figures below for", f"{ctx.focus[0]} / {ctx.focus[1]} ({ctx.focus_reason})")
    parts = [f'<dl class="config">{"".join(items)}</dl>']
    if data.config:
        parts.append(
            "<details><summary>full config.json</summary><pre>"
            f"{esc(json.dumps(data.config, indent=2, sort_keys=True, default=str))}</pre></details>"
        )
    else:
        parts.append(note("config.json is missing: the run's settings are unknown."))
    if data.problems:
        parts.append(
            '<div class="problems"><b>Parts of the run folder that could not be used:</b><ul>'
            + "".join(f"<li>{esc(p)}</li>" for p in data.problems)
            + "</ul></div>"
        )
    return "".join(parts)


# --------------------------------------------------------------------------------------------- page

_STYLE = """
:root{--fg:#1b1b1b;--muted:#5a5a5a;--line:#dddddd;--accent:#0072B2;--bg:#ffffff;--soft:#f5f7fa}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,
"Helvetica Neue",Arial,sans-serif}
.wrap{max-width:1120px;margin:0 auto;padding:0 20px 40px}
header{background:var(--soft);border-bottom:1px solid var(--line);margin-bottom:8px}
header .wrap{padding-top:18px;padding-bottom:12px}
h1{font-size:1.6rem;margin:0 0 8px}
h2{font-size:1.25rem;margin:32px 0 8px;padding-top:8px;border-top:1px solid var(--line)}
nav{position:sticky;top:0;background:rgba(255,255,255,.96);border-bottom:1px solid var(--line);z-index:2}
nav .wrap{padding-top:6px;padding-bottom:6px}
nav .wrap{display:flex;flex-wrap:wrap;gap:2px 16px}
nav a{color:var(--accent);text-decoration:none;white-space:nowrap;font-size:.92rem}
nav a:hover{text-decoration:underline}
dl.config{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:0;font-size:.9rem}
dl.config dt{color:var(--muted)}
dl.config dd{margin:0;word-break:break-word}
details{margin:8px 0;font-size:.9rem}
pre{background:#fff;border:1px solid var(--line);padding:8px;overflow:auto;max-height:320px;font-size:.8rem}
figure{margin:14px 0 22px}
figure img{display:block;max-width:100%;height:auto;margin:0 auto}
figure.wide img{width:100%}
figcaption{font-size:.88rem;color:var(--muted);margin-top:6px}
.table-wrap{overflow-x:auto;margin:10px 0 16px}
table{border-collapse:collapse;font-size:.86rem;font-variant-numeric:tabular-nums}
.tcap{font-size:.82rem;color:var(--muted);margin:-8px 0 16px}
th,td{padding:4px 7px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
th{background:var(--soft);font-weight:600}
thead th.group{text-align:center;border-bottom:2px solid #ffffff;font-weight:500;color:var(--muted)}
td:first-child,td:nth-child(2),th:first-child,th:nth-child(2){text-align:left}
tr.focus td{background:#e8f1f8}
.sd{color:var(--muted);font-size:.92em}
.note{background:#fff8e6;border-left:4px solid #E69F00;padding:8px 12px;font-size:.9rem}
.problems{background:#fdeeea;border-left:4px solid #D55E00;padding:8px 12px;font-size:.88rem;margin-top:10px}
.problems ul{margin:4px 0 0 18px;padding:0}
.choice{background:#eef6ec;border-left:4px solid #009E73;padding:8px 14px;margin:8px 0 14px}
.choice .verdict{font-size:1.05rem;margin:2px 0 8px;word-break:break-all}
.choice dl.config dd{word-break:break-word}
details>summary{cursor:pointer;color:var(--accent)}
footer{color:var(--muted);font-size:.8rem;margin-top:36px;border-top:1px solid var(--line);padding-top:8px}
code{font-size:.9em}
@media (max-width:640px){body{font-size:14px}.wrap{padding:0 10px 30px}dl.config{grid-template-columns:1fr}
dl.config dt{margin-top:4px}}
"""

_SCRIPT = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images), bad = [];
  imgs.forEach(function (im) { if (!im.complete || im.naturalWidth === 0) { bad.push(im.alt); } });
  document.body.setAttribute('data-figures', String(imgs.length));
  var wide = document.documentElement.scrollWidth > window.innerWidth + 1;
  document.body.setAttribute('data-fits-width', wide ? 'no' : 'yes');
  document.body.setAttribute('data-ready', bad.length ? 'broken' : 'ok');
  if (bad.length) { console.error('blemore report: figures failed to load: ' + bad.join('; ')); }
});
"""


def _page(title: str, header: str, sections: list[Section], footer: str) -> str:
    nav = "".join(f'<a href="#{s.id}">{esc(s.title)}</a>' for s in sections)
    parts = []
    for s in sections:
        remark = note(s.note) if s.note else ""
        parts.append(f'<section id="{s.id}"><h2>{esc(s.title)}</h2>{remark}{s.body}</section>')
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="generator" content="blemore report"><title>{esc(title)}</title>'
        f"<style>{_STYLE}</style></head>\n"
        f'<body data-ready="pending"><header><div class="wrap"><h1>{esc(title)}</h1>{header}</div></header>'
        f'<nav><div class="wrap">{nav}</div></nav><main class="wrap">{"".join(parts)}'
        f"<footer>{footer}</footer></main><script>{_SCRIPT}</script></body></html>\n"
    )


#: The page's sections in order: the decision first, then the methods, then the baseline in detail.
_SECTIONS: tuple[Callable[[Context], Section | None], ...] = (
    submit_section,
    compare_section,
    heldout_section,
    actors_section,
    results_section,
    confusion_section,
    threshold_section,
    curves_section,
    projection_section,
    breakdown_section,
)


def _run_step(step: Callable[[Context], Section | None], ctx: Context) -> Section | None:
    """One section; data the section cannot handle becomes a note instead of a crash."""
    try:
        return step(ctx)
    except (BlemoreError, ValueError, KeyError, IndexError, TypeError) as exc:
        name = step.__name__.strip("_").removesuffix("_section")
        ctx.data.problems.append(f"section {name!r} could not be drawn: {type(exc).__name__}: {exc}")
        return Section(name, name.capitalize(), note=f"This section could not be drawn: {esc(exc)}")


def render_report(
    data: RunData, *, feature_set: str | None = None, model: str | None = None, progress: bool = False
) -> str:
    """The report page for an already loaded run, as an HTML string.

    ``feature_set`` / ``model`` pick the combination the detailed figures show
    (default: best mean validation score).
    """
    from blemore import __version__

    summary = _summary(data)
    focus, reason = _choose_focus(data, summary, feature_set, model)
    ctx = Context(data=data, figs=Figures(), summary=summary, focus=focus, focus_reason=reason)
    steps: Iterable = _SECTIONS
    if progress:
        from tqdm import tqdm

        steps = tqdm(_SECTIONS, desc="report", unit="section", leave=False)
    sections = [s for s in (_run_step(step, ctx) for step in steps) if s is not None]
    title = f"blemore report — {data.run.resolve().name}"
    footer = (
        f"Written by blemore {esc(__version__)} on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} "
        f"from {esc(data.run.resolve())}. Self-contained: no network requests."
    )
    return _page(title, _header(ctx), sections, footer)


@dataclass
class ReportOutcome:
    """What :func:`build_report` did: where the page went, and one line per part it could not use."""

    path: Path
    problems: list[str]


def build_report(
    run: Path,
    out: Path | None = None,
    *,
    feature_set: str | None = None,
    model: str | None = None,
    progress: bool = False,
) -> ReportOutcome:
    """Read the run ``run``, write its page to ``out`` (default ``run/report.html``), say what was unusable.

    A page written inside a blemore run folder is recorded in the run's marker
    (:meth:`~blemore.protocol.runfolder.RunFolder.add`), so a later ``--overwrite`` knows it.
    Raises :class:`BlemoreError` only where there is nothing to report (see
    :func:`~blemore.report.rundata.load_run`) or ``out`` is a folder; nothing is written then.
    """
    data = load_run(Path(run))
    out = report_path(data.run, out)
    page = render_report(data, feature_set=feature_set, model=model, progress=progress)
    rel = _inside_run(out, data.run)
    if rel is not None:
        RunFolder.open(data.run).add(rel, lambda p: save_page(page, p))
    else:
        save_page(page, out)
    return ReportOutcome(out, [" ".join(p.split()) for p in data.problems])


def _inside_run(out: Path, run: Path) -> str | None:
    """``out`` relative to ``run`` if ``run`` is a blemore run folder holding ``out``, else None."""
    if not is_run_folder(run):
        return None
    try:
        return out.resolve().relative_to(run.resolve()).as_posix()
    except ValueError:
        return None


def write_report(
    run: Path,
    out: Path | None = None,
    *,
    feature_set: str | None = None,
    model: str | None = None,
    progress: bool = False,
) -> Path:
    """Write the report of run folder ``run`` to ``out`` (default ``run/report.html``); return its path.

    Parts of the run folder that are missing or unusable become notes in the page
    (see :attr:`RunData.problems`); only a ``run`` with nothing to report raises
    :class:`BlemoreError`. The file is replaced atomically (see :func:`build_report`).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from blemore.report.sample import write_sample_run
    >>> run = write_sample_run(pathlib.Path(tempfile.mkdtemp()) / "run", n_actors=5, parts=["results"])
    >>> write_report(run).name
    'report.html'
    """
    return build_report(run, out, feature_set=feature_set, model=model, progress=progress).path


def report_path(run: Path, out: Path | None) -> Path:
    """Where the report goes: ``out``, or ``run/report.html``; a folder is refused."""
    out = Path(out) if out is not None else Path(run) / "report.html"
    if out.is_dir():
        raise BlemoreError(f"{out}: is a folder; give the report's file name, e.g. {out / 'report.html'}")
    return out


def save_page(page: str, out: Path) -> Path:
    """Write ``page`` to ``out`` atomically (:func:`blemore.io.write_text`), creating parent folders."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, page)
    return out
