"""Assembling the report: one self-contained HTML page per run folder.

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

import html
import itertools
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from blemore.errors import BlemoreError
from blemore.labels import EMOTIONS, IS_BLEND, LABEL_NAMES, OTHER
from blemore.report import figures
from blemore.report.analysis import (
    UNKNOWN,
    group_scores,
    label_confusion,
    label_indices,
    pair_of,
    presence_confusion,
    summarise_results,
)
from blemore.report.rundata import TRIVIAL_METHODS, RunData, chosen_thresholds, load_clip_features, load_run

__all__ = ["write_report", "render_report", "report_path", "save_page", "Section"]

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


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
        self.count += 1
        uri = figures.svg_data_uri(fig)  # type: ignore[arg-type]
        fig.clear()  # type: ignore[attr-defined]
        return (
            f'<figure class="{css}"><img src="{uri}" alt="{_e(alt)}" loading="eager" decoding="sync">'
            f"<figcaption><b>Figure {self.count}.</b> {caption}</figcaption></figure>"
        )


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _pct(value: float, digits: int = 1) -> str:
    return "—" if value is None or not np.isfinite(value) else f"{100 * value:.{digits}f}"


def _pm(mean: float, std: float) -> str:
    if mean is None or not np.isfinite(mean):
        return "—"
    if std is None or not np.isfinite(std):
        return _pct(mean)
    return f"{_pct(mean)} <span class=sd>± {_pct(std)}</span>"


def _num(value: float, fmt: str = ".2f") -> str:
    return "—" if value is None or not np.isfinite(value) else format(value, fmt)


def _note(text: str) -> str:
    return f'<p class="note">{text}</p>'


def _table(
    header: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    highlight: Iterable[int] = (),
    caption: str = "",
    groups: Sequence[tuple[str, int]] = (),
) -> str:
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
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="table-wrap">{table}</div>{cap}'


# --------------------------------------------------------------------------------------------- context


@dataclass
class Context:
    data: RunData
    figs: Figures
    summary: pd.DataFrame | None
    focus: tuple[str, str] | None
    focus_reason: str


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
            text = _e(", ".join(map(str, value)))
        elif isinstance(value, dict):
            if all(isinstance(v, (str, int, float)) and len(str(v)) < 30 for v in value.values()):
                text = _e(", ".join(f"{k} {v}" for k, v in value.items()))
            else:
                text = "".join(f"<div><i>{_e(k)}</i>: {_e(v)}</div>" for k, v in value.items())
        else:
            text = _e(value)
        items.append(f"<dt>{_e(name)}</dt><dd>{text}</dd>")

    add("run folder", data.run.resolve())
    command = get("command", "command_line", "argv")
    add("command", " ".join(map(str, command)) if isinstance(command, list) else command)
    add("created", get("created", "date", "started"))
    add("seed", get("seed", "seeds"))
    combos = data.combos()
    add("feature sets", get("feature_sets", "sets") or sorted({f for f, _ in combos}))
    add("models", sorted({m for _, m in combos}) or get("models"))
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
            f"{_e(json.dumps(data.config, indent=2, sort_keys=True, default=str))}</pre></details>"
        )
    else:
        parts.append(_note("config.json is missing: the run's settings are unknown."))
    if data.problems:
        parts.append(
            '<div class="problems"><b>Parts of the run folder that could not be used:</b><ul>'
            + "".join(f"<li>{_e(p)}</li>" for p in data.problems)
            + "</ul></div>"
        )
    return "".join(parts)


def _results_section(ctx: Context) -> Section:
    sec = Section("results", "Results")
    data, summary = ctx.data, ctx.summary
    if summary is None:
        sec.note = (
            "results.csv is missing or unusable, so there is no results table. "
            "It is written by <code>blemore benchmark</code>."
        )
        return sec
    own = summary[~summary["trivial"]].reset_index(drop=True)
    trivial = summary[summary["trivial"]].reset_index(drop=True)
    rows, focus_rows = [], []
    show_method = own["method"].nunique() > 1 or (own["method"] != "baseline").any()
    for i, r in own.iterrows():
        if ctx.focus == (r["feature_set"], r["model"]):
            focus_rows.append(i)
        rows.append(
            [_e(r["feature_set"]), _e(r["model"])]
            + ([_e(r["method"])] if show_method else [])
            + [
                _pm(r["presence_mean"], r["presence_std"]),
                _pm(r["salience_mean"], r["salience_std"]),
                f"<b>{_pm(r['score_mean'], r['score_std'])}</b>",
                _pct(r["presence_test"]),
                _pct(r["salience_test"]),
                f"<b>{_pct(r['score_test'])}</b>",
                _pct(r["score_pooled"]),
                _num(r["epoch"], ".0f"),
                f"{_num(r['alpha_mean'])} <span class=sd>± {_num(r['alpha_std'])}</span>",
                f"{_num(r['beta_mean'])} <span class=sd>± {_num(r['beta_std'])}</span>",
                f"{_num(r['test_alpha'])} / {_num(r['test_beta'])}",
            ]
        )
    names = ["feature set", "model"] + (["method"] if show_method else [])
    n_folds = int(own["n_folds"].max()) if len(own) else 0
    columns = [("", n) for n in names] + [
        (f"validation, {n_folds} folds", "presence"),
        (f"validation, {n_folds} folds", "salience"),
        (f"validation, {n_folds} folds", "score"),
        ("test", "presence"),
        ("test", "salience"),
        ("test", "score"),
        ("test", "pooled"),
        ("selection", "epoch"),
        ("selection", "α"),
        ("selection", "β"),
        ("selection", "test α / β"),
    ]
    # Columns without a single value (e.g. test rows absent) are left out to keep the table narrow.
    keep = [j for j in range(len(columns)) if any(re.sub(r"<[^>]+>|[—/\s]", "", row[j]) for row in rows)]
    keep = keep if rows else list(range(len(columns)))
    columns = [columns[j] for j in keep]
    rows = [[row[j] for j in keep] for row in rows]
    header = [name for _, name in columns]
    groups = [(g, sum(1 for _ in run)) for g, run in itertools.groupby(g for g, _ in columns)]
    body = [
        _table(
            header,
            rows,
            highlight=focus_rows,
            groups=groups,
            caption=(
                "Accuracy in %: validation folds as mean <span class=sd>± std</span> over folds; test with "
                "the paper's rule (thresholds from the folds) and, as <i>pooled</i>, the score with "
                "thresholds tuned on the pooled out-of-fold predictions. Epoch: median selected epoch; α/β: "
                "chosen thresholds per fold (mean ± std) and those used on test. Highlighted: the "
                "combination the figures below show."
            ),
        )
    ]
    has_test = data.results["fold"].eq("test") & ~data.results["method"].isin(TRIVIAL_METHODS)
    if not has_test.any():
        body.append(_note("results.csv has no <code>test</code> rows (paper rule) for the models."))
    elif own["score_test"].isna().all() and own["score_pooled"].isna().all():
        body.append(
            _note(
                "No test accuracies: the test labels are not available for this run "
                "(score the submission on CodaBench instead)."
            )
        )
    if not trivial.empty:
        trows = [
            [
                _e(r["method"]),
                str(r["n_folds"]),
                _pm(r["presence_mean"], r["presence_std"]),
                _pm(r["salience_mean"], r["salience_std"]),
                _pm(r["score_mean"], r["score_std"]),
                _pct(r["score_test"]),
            ]
            for _, r in trivial.iterrows()
        ]
        body.append(
            _table(
                ["trivial baseline", "folds", "presence", "salience", "score", "test score"],
                trows,
                caption="Constant predictions: the most frequent single label / blend label of the "
                "training folds. A model must beat these to have learnt anything.",
            )
        )
    else:
        body.append(_note("No trivial baselines (methods majority-single / majority-blend) in results.csv."))
    folds = data.results[
        data.results["fold"].str.fullmatch(r"\d+") & ~data.results["method"].isin(TRIVIAL_METHODS)
    ].copy()
    if not own.empty and not folds.empty:
        own_plot = own.copy()
        own_plot["combo"] = (
            own_plot["feature_set"]
            + " / "
            + own_plot["model"]
            + np.where(own_plot["method"] == "baseline", "", " (" + own_plot["method"] + ")")
        )
        folds["combo"] = (
            folds["feature_set"]
            + " / "
            + folds["model"]
            + np.where(folds["method"] == "baseline", "", " (" + folds["method"] + ")")
        )
        fig = figures.scores_figure(folds, own_plot, trivial)
        body.append(
            ctx.figs.html(
                fig,
                alt="scores per feature set and model",
                caption=(
                    "Presence, salience and score per feature set × model: grey dots are single validation "
                    "folds, black the fold mean ± std, diamonds and squares the test scores; dashed lines "
                    "the trivial baselines' fold means."
                ),
            )
        )
    sec.body = "".join(body)
    return sec


def _focus_predictions(ctx: Context, sec: Section) -> tuple[np.ndarray, np.ndarray, pd.DataFrame] | None:
    """Truth and predicted label indices of the focus combination's validation predictions."""
    if ctx.focus is None or ctx.focus not in ctx.data.val_predictions:
        have = "" if ctx.focus is None else f" for {_e(ctx.focus[0])} / {_e(ctx.focus[1])}"
        sec.note = (
            f"No validation predictions{have} (predictions/&lt;feature_set&gt;__&lt;model&gt;__val.csv), "
            "so this section is left out."
        )
        return None
    table = ctx.data.val_predictions[ctx.focus]
    if "label" not in table.columns:
        sec.note = "The validation predictions have no <code>label</code> column, so nothing can be scored."
        return None
    truth = label_indices(table["label"].tolist())
    bad = truth == OTHER
    if bad.any():
        ctx.data.problems.append(
            f"predictions/{ctx.focus[0]}__{ctx.focus[1]}__val.csv: {int(bad.sum())} row(s) with a label that "
            f"is none of the 36 valid labels (e.g. {table['label'][bad].iloc[0]!r}); left out"
        )
    keep = truth >= 0
    table = table[keep].reset_index(drop=True)
    truth = truth[keep]
    if len(truth) == 0:
        sec.note = "The validation predictions carry no known labels, so nothing can be scored."
        return None
    if "pred_label" in table.columns and (table["pred_label"] != "").all():
        pred = label_indices(table["pred_label"].tolist(), unknown=OTHER)
    else:
        pred = _decode_missing(ctx, table)
        if pred is None:
            sec.note = (
                "The validation predictions have no <code>pred_label</code> and no per-fold α/β were "
                "found (results.csv fold rows or grids/*.npz) to decode them."
            )
            return None
    return truth, pred, table


def _decode_missing(ctx: Context, table: pd.DataFrame) -> np.ndarray | None:
    from blemore.decoding import decode_thresholds

    thresholds: dict[int, tuple[float, float]] = {}
    r = _fold_rows(ctx)
    if {"alpha", "beta"} <= set(r.columns):
        thresholds = {
            int(f): (a, b)
            for f, a, b in zip(r["fold"], r["alpha"], r["beta"])
            if np.isfinite(a) and np.isfinite(b)
        }
    if not thresholds and ctx.focus in ctx.data.grids:
        grid = ctx.data.grids[ctx.focus]
        chosen = chosen_thresholds(grid)
        if chosen is not None:
            ids = np.atleast_1d(grid.get("folds", np.arange(len(chosen))))
            ids = ids if len(ids) == len(chosen) else np.arange(len(chosen))
            thresholds = {int(k): (float(a), float(b)) for k, (a, b) in zip(ids, chosen)}
    if not thresholds or "fold" not in table.columns:
        return None
    folds = table["fold"].to_numpy(float)
    pred = np.full(len(table), OTHER, dtype=np.int64)
    probs = table[list(EMOTIONS)].to_numpy(float)
    for k, (a, b) in thresholds.items():
        sel = folds == k
        if sel.any():
            pred[sel] = decode_thresholds(probs[sel], a, b)
    if (pred == OTHER).any():
        return None
    return pred


def _confusion_section(ctx: Context) -> Section:
    sec = Section("confusion", "Confusion matrices")
    got = _focus_predictions(ctx, sec)
    if got is None:
        return sec
    truth, pred, _ = got
    fs, model = ctx.focus  # type: ignore[misc]
    counts = label_confusion(truth, pred)
    acc = np.trace(counts[:, :36]) / max(1, counts.sum())
    body = [
        ctx.figs.html(
            figures.label_confusion_figure(counts),
            alt="confusion matrix over the 36 labels",
            caption=(
                f"Out-of-fold validation predictions of {_e(fs)} / {_e(model)} over the 36 labels (n = "
                f"{len(truth)}; exact label right: {_pct(acc)}%). Rows are normalised to the share of each "
                f"true label's clips; labels are grouped by emotion pair, each pair's blends ordered 70/30, "
                f"50/50, 30/70 (share of the first emotion falling); the diagonal is outlined; the last "
                f"column counts predictions that are none of the 36 labels."
            ),
            css="wide",
        )
    ]
    pcounts = presence_confusion(truth, pred)
    pacc = np.trace(pcounts[:, :16]) / max(1, pcounts.sum())
    body.append(
        ctx.figs.html(
            figures.presence_confusion_figure(pcounts),
            alt="presence-level confusion matrix",
            caption=(
                f"Presence level: the set of emotions, saliences ignored (presence accuracy {_pct(pacc)}%). "
                f"Numbers are clip counts, colour the share of the true set's clips. Above/left of the grey "
                f"lines: single emotions; below/right: pairs."
            ),
        )
    )
    sec.body = "".join(body)
    return sec


def _threshold_section(ctx: Context) -> Section:
    sec = Section("thresholds", "Thresholds α × β")
    if ctx.focus is None or ctx.focus not in ctx.data.grids:
        sec.note = (
            "No threshold grid for the shown combination (grids/&lt;feature_set&gt;__&lt;model&gt;.npz), "
            "so the α × β surfaces are left out."
        )
        if ctx.focus is not None:
            sec.body = _threshold_table(ctx, None)
        return sec
    grid = ctx.data.grids[ctx.focus]
    n_folds = grid["presence"].shape[0]
    fold_ids = np.atleast_1d(grid.get("folds", np.arange(n_folds)))
    fold_names = [str(k) for k in (fold_ids if len(fold_ids) == n_folds else range(n_folds))]
    chosen = chosen_thresholds(grid)
    if chosen is not None and len(chosen) != n_folds:
        chosen = None
    chosen = chosen if chosen is not None else _thresholds_from_results(ctx, n_folds)
    # The fold shown: the one whose best score is the median one (a typical fold).
    score = 0.5 * (grid["presence"] + grid["salience"])
    best = score.reshape(n_folds, -1).max(axis=1)
    fold = int(np.argsort(best, kind="stable")[(n_folds - 1) // 2])
    fig = figures.threshold_figure(
        grid["alphas"],
        grid["betas"],
        grid["presence"],
        grid["salience"],
        fold=fold,
        fold_names=fold_names,
        chosen=chosen,
    )
    caption = (
        f"Validation accuracy over the threshold grid for {_e(ctx.focus[0])} / {_e(ctx.focus[1])}: presence "
        f"and salience on fold {_e(fold_names[fold])} (the fold with the median best score; × marks its "
        f"chosen thresholds) and the score averaged over folds with each fold's choice. Choices that scatter "
        f"widely mean the thresholds are not stable across actors."
    )
    sec.body = ctx.figs.html(fig, alt="alpha-beta heatmaps", caption=caption, css="wide") + _threshold_table(
        ctx, chosen, fold_names
    )
    return sec


def _fold_rows(ctx: Context) -> pd.DataFrame:
    """results.csv rows of the shown combination's validation folds (method ``baseline`` if several)."""
    r = ctx.data.results
    if r is None or ctx.focus is None:
        return pd.DataFrame(columns=["fold", "alpha", "beta", "epoch"])
    fs, model = ctx.focus
    r = r[(r["feature_set"] == fs) & (r["model"] == model) & r["fold"].str.fullmatch(r"\d+")]
    if r["method"].nunique() > 1:
        r = r[r["method"] == ("baseline" if (r["method"] == "baseline").any() else r["method"].iloc[0])]
    return r.sort_values("fold", key=lambda s: s.astype(int))


def _thresholds_from_results(ctx: Context, n_folds: int | None = None) -> np.ndarray | None:
    r = _fold_rows(ctx)
    if r.empty or not {"alpha", "beta"} <= set(r.columns) or (n_folds is not None and len(r) != n_folds):
        return None
    out = r[["alpha", "beta"]].to_numpy(float)
    return out if np.isfinite(out).all() else None


def _threshold_table(ctx: Context, chosen: np.ndarray | None, fold_names: Sequence[str] | None = None) -> str:
    if chosen is None:
        chosen = _thresholds_from_results(ctx)
        fold_names = _fold_rows(ctx)["fold"].tolist()
    if chosen is None:
        return _note("No chosen α/β per fold found in results.csv or the grid file.")
    names = fold_names if fold_names is not None and len(fold_names) == len(chosen) else range(len(chosen))
    rows = [[_e(k), _num(a), _num(b)] for k, (a, b) in zip(names, chosen)]
    rows.append(
        [
            "mean ± std",
            f"{_num(chosen[:, 0].mean())} ± {_num(chosen[:, 0].std())}",
            f"{_num(chosen[:, 1].mean())} ± {_num(chosen[:, 1].std())}",
        ]
    )
    return _table(["fold", "α", "β"], rows, caption="Chosen thresholds per validation fold.")


def _curves_section(ctx: Context) -> Section:
    sec = Section("curves", "Training curves")
    curves = ctx.data.curves
    if curves is None or ctx.focus is None:
        sec.note = "curves.csv is missing or unusable, so there are no per-epoch curves."
        return sec
    part = curves[(curves["feature_set"] == ctx.focus[0]) & (curves["model"] == ctx.focus[1])]
    if part.empty:
        sec.note = f"curves.csv has no rows for {_e(ctx.focus[0])} / {_e(ctx.focus[1])}."
        return sec
    r = _fold_rows(ctx)
    selected = {str(f): float(e) for f, e in zip(r["fold"], r["epoch"])} if "epoch" in r.columns else {}
    fig = figures.curves_figure(part, selected)
    sec.body = ctx.figs.html(
        fig,
        alt="validation curves per fold",
        css="wide",
        caption=(
            f"Per-epoch curves of {_e(ctx.focus[0])} / {_e(ctx.focus[1])}, one colour per validation fold; "
            f"dotted lines mark each fold's selected epoch. Accuracies are at each epoch's own tuned "
            f"thresholds."
        ),
    )
    return sec


def _projection_section(ctx: Context) -> Section:
    sec = Section("projection", "Feature projections per emotion pair")
    if not ctx.data.clip_features:
        sec.note = (
            "No clip-level features (clip_features/&lt;feature_set&gt;.npz), so the projections are left out."
        )
        return sec
    order = sorted(ctx.data.clip_features, key=lambda f: (ctx.focus is None or f != ctx.focus[0], f))
    body, notes = [], []
    for fs in order:
        path = ctx.data.clip_features[fs]
        try:
            npz = load_clip_features(path)
        except BlemoreError as exc:
            notes.append(_e(str(exc)))
            continue
        labels = npz.get("labels")
        if labels is not None and labels.dtype.kind in "iu":
            idx = np.where((labels >= 0) & (labels < len(LABEL_NAMES)), labels, UNKNOWN).astype(np.int64)
        elif labels is not None:
            idx = label_indices([str(x) for x in labels])
        else:
            idx = _labels_from_names(npz["filenames"])
        idx = np.where(idx == OTHER, UNKNOWN, idx)
        n = int((idx >= 0).sum())
        if n == 0:
            notes.append(f"{_e(path.name)}: no clip with a known label.")
            continue
        fig = figures.pca_figure(np.asarray(npz["X"], dtype=np.float64), idx)
        body.append(
            ctx.figs.html(
                fig,
                alt=f"PCA projections of {fs} features",
                css="wide",
                caption=(
                    f"<b>{_e(fs)}</b> ({npz['X'].shape[1]} dimensions, {n} labelled clips): for each emotion "
                    f"pair, the first two principal components of the clips of its two single emotions and "
                    f"its three blends (each panel its own PCA of standardised features). Blue: first "
                    f"emotion (in the panel title) alone; orange/vermillion: second alone; blends in "
                    f"between. Blends that sit between the singles, ordered by salience, are what a model "
                    f"can learn."
                ),
            )
        )
    if notes:
        body.append(_note("Left out: " + " ".join(notes)))
    sec.body = "".join(body)
    if not body:
        sec.note = "No usable clip-level features."
    return sec


def _labels_from_names(names: Iterable[str]) -> np.ndarray:
    from blemore.labels import LABEL_INDEX, parse_clip_name

    out = []
    for name in names:
        try:
            label = parse_clip_name(str(name)).label
        except BlemoreError:
            label = None
        out.append(UNKNOWN if label is None else LABEL_INDEX[label.name])
    return np.array(out, dtype=np.int64)


def _breakdown_section(ctx: Context) -> Section:
    sec = Section("breakdown", "Accuracy per actor and per emotion pair")
    got = _focus_predictions(ctx, sec)
    if got is None:
        return sec
    truth, pred, table = got
    body = []
    actors = table["actor"] if "actor" in table.columns else pd.Series([""] * len(table))
    if (actors == "").any():
        from blemore.labels import parse_clip_name

        def actor_of(name: str) -> str:
            try:
                return parse_clip_name(name).actor or ""
            except BlemoreError:
                return ""

        actors = pd.Series([a or actor_of(f) for a, f in zip(actors, table["filename"])])
    if (actors != "").any():
        known = (actors != "").to_numpy()
        per_actor = group_scores(truth[known], pred[known], actors[known].tolist())
        spread = per_actor["acc_presence"]
        body.append(
            ctx.figs.html(
                figures.actor_figure(per_actor),
                alt="accuracy per actor",
                css="wide" if len(per_actor) > 30 else "",
                caption=(
                    f"Out-of-fold validation accuracy per actor ({len(per_actor)} actors), sorted by "
                    f"presence accuracy; dashed lines: overall. Presence ranges from {_pct(spread.min())}% "
                    f"to {_pct(spread.max())}% — the spread between actors (their acting style) bounds what "
                    f"the model can do."
                ),
            )
        )
    else:
        body.append(
            _note("No actor column and no actor in the clip names: the per-actor figure is left out.")
        )
    groups = [pair_of(int(t)) for t in truth]
    per_pair = group_scores(truth, pred, groups)
    order = {name: i for i, name in enumerate(dict.fromkeys(pair_of(i) for i in range(len(LABEL_NAMES))))}
    per_pair = per_pair.sort_values("group", key=lambda s: s.map(order)).reset_index(drop=True)
    body.append(
        ctx.figs.html(
            figures.pair_figure(per_pair),
            alt="accuracy per emotion and pair",
            css="wide",
            caption=(
                f"Accuracy per true single emotion and per blended pair (all three salience configurations); "
                f"salience accuracy applies to blends only. Blends: {int(IS_BLEND[truth].sum())} of "
                f"{len(truth)} clips."
            ),
        )
    )
    sec.body = "".join(body)
    return sec


def _compare_section(ctx: Context) -> Section | None:
    table = ctx.data.compare
    if table is None:
        return None
    sec = Section("compare", "Method comparison")
    if table.empty:
        sec.note = "compare.csv has no rows."
        return sec
    has_split = "split" in table.columns
    has_selection = "selection" in table.columns
    if has_split or has_selection:
        # Validation first, then test; within each, the order of compare.csv.
        order = table["split"].map({"val": 0, "test": 1}).fillna(2) if has_split else 0
        table = table.assign(_order=order).sort_values("_order", kind="stable").drop(columns="_order")
    rows = [
        [
            _e(r["method"]),
            _e(r["feature_set"]),
            _e(r["model"]),
            *([_e(r["split"])] if has_split else []),
            *([_e(r["selection"])] if has_selection else []),
            _pct(r.get("acc_presence", np.nan)),
            _pct(r.get("acc_salience", np.nan)),
            f"<b>{_pct(r['score'])}</b>",
            f"{_pct(r['ci_low'])} – {_pct(r['ci_high'])}",
        ]
        for _, r in table.iterrows()
    ]
    body = _table(
        [
            "method",
            "feature set",
            "model",
            *(["split"] if has_split else []),
            *(["selection"] if has_selection else []),
            "presence",
            "salience",
            "score",
            "interval",
        ],
        rows,
        caption=(
            "Methods compared on the same folds; accuracy in %, interval: bootstrap 95 % over actors. "
            "Selection: <i>paper</i> = epoch and thresholds chosen on the reported fold (optimistic), "
            "<i>nested</i> = chosen inside the training folds, <i>pooled</i> = one choice on all "
            "out-of-fold validation predictions."
        ),
    )
    body += ctx.figs.html(
        figures.forest_figure(table),
        alt="forest plot of method comparison",
        caption=(
            "Score of each method with its bootstrap interval; overlapping intervals mean the difference is "
            "not established."
        ),
    )
    sec.body = body
    return sec


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
    nav = "".join(f'<a href="#{s.id}">{_e(s.title)}</a>' for s in sections)
    parts = []
    for s in sections:
        note = _note(s.note) if s.note else ""
        parts.append(f'<section id="{s.id}"><h2>{_e(s.title)}</h2>{note}{s.body}</section>')
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="generator" content="blemore report"><title>{_e(title)}</title>'
        f"<style>{_STYLE}</style></head>\n"
        f'<body data-ready="pending"><header><div class="wrap"><h1>{_e(title)}</h1>{header}</div></header>'
        f'<nav><div class="wrap">{nav}</div></nav><main class="wrap">{"".join(parts)}'
        f"<footer>{footer}</footer></main><script>{_SCRIPT}</script></body></html>\n"
    )


_SECTIONS: tuple[Callable[[Context], Section | None], ...] = (
    _results_section,
    _confusion_section,
    _threshold_section,
    _curves_section,
    _projection_section,
    _breakdown_section,
    _compare_section,
)


def _run_step(step: Callable[[Context], Section | None], ctx: Context) -> Section | None:
    """One section; data the section cannot handle becomes a note instead of a crash."""
    try:
        return step(ctx)
    except (BlemoreError, ValueError, KeyError, IndexError, TypeError) as exc:
        name = step.__name__.strip("_").removesuffix("_section")
        ctx.data.problems.append(f"section {name!r} could not be drawn: {type(exc).__name__}: {exc}")
        return Section(name, name.capitalize(), note=f"This section could not be drawn: {_e(exc)}")


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
        f"Written by blemore {_e(__version__)} on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} "
        f"from {_e(data.run.resolve())}. Self-contained: no network requests."
    )
    return _page(title, _header(ctx), sections, footer)


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
    (see :attr:`RunData.problems`); only a ``run`` that is no run folder at all
    raises :class:`BlemoreError`. The file is replaced atomically.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from blemore.report.sample import write_sample_run
    >>> run = write_sample_run(pathlib.Path(tempfile.mkdtemp()) / "run", n_actors=5, parts=["results"])
    >>> write_report(run).name
    'report.html'
    """
    data = load_run(Path(run))
    out = report_path(data.run, out)
    page = render_report(data, feature_set=feature_set, model=model, progress=progress)
    from blemore.protocol.runfolder import RunFolder, is_run_folder

    if is_run_folder(data.run) and out.resolve().parent == data.run.resolve():
        RunFolder.open(data.run).add(out.name, lambda p: save_page(page, p))
        return out
    return save_page(page, out)


def report_path(run: Path, out: Path | None) -> Path:
    """Where the report goes: ``out``, or ``run/report.html``; a folder is refused."""
    out = Path(out) if out is not None else Path(run) / "report.html"
    if out.is_dir():
        raise BlemoreError(f"{out}: is a folder; give the report's file name, e.g. {out / 'report.html'}")
    return out


def save_page(page: str, out: Path) -> Path:
    """Write ``page`` to ``out`` atomically (temporary file + rename), creating parent folders."""
    from blemore.io import write_text

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, page)
    return out
