"""The baseline in detail: its results table, confusion matrices, thresholds and training curves.

Sections (each ``Context -> Section``) read the baseline's files of the run folder
(``results.csv``, ``predictions/``, ``grids/``, ``curves.csv``) for the combination in focus
(:attr:`~blemore.report.layout.Context.focus`); a missing input becomes the section's note.
"""

from __future__ import annotations

import itertools
import re
from typing import Sequence

import numpy as np
import pandas as pd

from blemore.decoding import decode_thresholds
from blemore.labels import EMOTIONS, OTHER
from blemore.report import figures
from blemore.report.analysis import label_confusion, label_indices, presence_confusion, sample_std
from blemore.report.layout import DASH, Context, Section, esc, note, num, pct, pm, table
from blemore.report.rundata import TRIVIAL_METHODS, chosen_thresholds

__all__ = [
    "results_section",
    "confusion_section",
    "threshold_section",
    "curves_section",
    "focus_predictions",
    "fold_rows",
]


def _result_cells(r: pd.Series, show_method: bool) -> list[str]:
    """One results-table row: names, validation mean ± std, test, selection."""
    return (
        [esc(r["feature_set"]), esc(r["model"])]
        + ([esc(r["method"])] if show_method else [])
        + [
            pm(r["presence_mean"], r["presence_std"]),
            pm(r["salience_mean"], r["salience_std"]),
            f"<b>{pm(r['score_mean'], r['score_std'])}</b>",
            pct(r["presence_test"]),
            pct(r["salience_test"]),
            f"<b>{pct(r['score_test'])}</b>",
            pct(r["score_pooled"]),
            num(r["epoch"], ".0f"),
            f"{num(r['alpha_mean'])} <span class=sd>± {num(r['alpha_std'])}</span>",
            f"{num(r['beta_mean'])} <span class=sd>± {num(r['beta_std'])}</span>",
            f"{num(r['test_alpha'])} / {num(r['test_beta'])}",
        ]
    )


def _results_table(ctx: Context, own: pd.DataFrame) -> str:
    """The baseline's results per feature set x model; columns without a single value are left out."""
    show_method = own["method"].nunique() > 1 or (own["method"] != "baseline").any()
    rows = [_result_cells(r, show_method) for _, r in own.iterrows()]
    focus_rows = [i for i, (f, m) in enumerate(zip(own["feature_set"], own["model"])) if ctx.focus == (f, m)]
    names = ["feature set", "model"] + (["method"] if show_method else [])
    n_folds = int(own["n_folds"].max()) if len(own) else 0
    val = f"validation, {n_folds} folds"
    columns = [("", n) for n in names] + [
        (val, "presence"),
        (val, "salience"),
        (val, "score"),
        ("test", "presence"),
        ("test", "salience"),
        ("test", "score"),
        ("test", "pooled"),
        ("selection", "epoch"),
        ("selection", "α"),
        ("selection", "β"),
        ("selection", "test α / β"),
    ]
    keep = [
        j for j in range(len(columns)) if any(re.sub(rf"<[^>]+>|[{DASH}/\s]", "", row[j]) for row in rows)
    ]
    keep = keep if rows else list(range(len(columns)))
    columns = [columns[j] for j in keep]
    rows = [[row[j] for j in keep] for row in rows]
    groups = [(g, sum(1 for _ in run)) for g, run in itertools.groupby(g for g, _ in columns)]
    return table(
        [name for _, name in columns],
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


def _test_note(results: pd.DataFrame, own: pd.DataFrame, *, scored: bool) -> str:
    """Why the results table has no test numbers, if it has none."""
    has_test = results["fold"].eq("test") & ~results["method"].isin(TRIVIAL_METHODS)
    if not has_test.any():
        later = " (the held-out section shows the scores of the zips)" if scored else ""
        return note(f"results.csv has no <code>test</code> rows (paper rule) for the models{later}.")
    if own["score_test"].isna().all() and own["score_pooled"].isna().all():
        return note(
            "No test accuracies: the test labels are not available for this run "
            "(score the submission on CodaBench instead)."
        )
    return ""


def _trivial_table(trivial: pd.DataFrame) -> str:
    if trivial.empty:
        return note("No trivial baselines (methods majority-single / majority-blend) in results.csv.")
    rows = [
        [
            esc(r["method"]),
            str(r["n_folds"]),
            pm(r["presence_mean"], r["presence_std"]),
            pm(r["salience_mean"], r["salience_std"]),
            pm(r["score_mean"], r["score_std"]),
            pct(r["score_test"]),
        ]
        for _, r in trivial.iterrows()
    ]
    return table(
        ["trivial baseline", "folds", "presence", "salience", "score", "test score"],
        rows,
        caption="Constant predictions: the most frequent single label / blend label of the "
        "training folds. A model must beat these to have learnt anything.",
    )


def _combo_names(frame: pd.DataFrame) -> pd.Series:
    suffix = np.where(frame["method"] == "baseline", "", " (" + frame["method"] + ")")
    return frame["feature_set"] + " / " + frame["model"] + suffix


def _scores_figure(ctx: Context, results: pd.DataFrame, own: pd.DataFrame, trivial: pd.DataFrame) -> str:
    folds = results[results["fold"].str.fullmatch(r"\d+") & ~results["method"].isin(TRIVIAL_METHODS)].copy()
    if own.empty or folds.empty:
        return ""
    folds["combo"] = _combo_names(folds)
    fig = figures.scores_figure(folds, own.assign(combo=_combo_names(own)), trivial)
    return ctx.figs.html(
        fig,
        alt="scores per feature set and model",
        caption=(
            "Presence, salience and score per feature set × model: grey dots are single validation "
            "folds, black the fold mean ± std, diamonds and squares the test scores; dashed lines "
            "the trivial baselines' fold means."
        ),
    )


def results_section(ctx: Context) -> Section:
    sec = Section("results", "Results of the baseline")
    results = ctx.data.results
    if ctx.summary is None or results is None:
        sec.note = (
            "results.csv is missing or unusable, so there is no results table. "
            "It is written by <code>blemore benchmark</code>."
        )
        return sec
    own = ctx.summary[~ctx.summary["trivial"]].reset_index(drop=True)
    trivial = ctx.summary[ctx.summary["trivial"]].reset_index(drop=True)
    sec.body = (
        _results_table(ctx, own)
        + _test_note(results, own, scored=ctx.data.test_scores is not None)
        + _trivial_table(trivial)
        + _scores_figure(ctx, results, own, trivial)
    )
    return sec


def focus_predictions(ctx: Context, sec: Section) -> tuple[np.ndarray, np.ndarray, pd.DataFrame] | None:
    """Truth and predicted label indices of the focus combination's validation predictions."""
    if ctx.focus is None or ctx.focus not in ctx.data.val_predictions:
        have = "" if ctx.focus is None else f" for {esc(ctx.focus[0])} / {esc(ctx.focus[1])}"
        sec.note = (
            f"No validation predictions{have} (predictions/&lt;feature_set&gt;__&lt;model&gt;__val.csv), "
            "so this section is left out."
        )
        return None
    frame = ctx.data.val_predictions[ctx.focus]
    if "label" not in frame.columns:
        sec.note = "The validation predictions have no <code>label</code> column, so nothing can be scored."
        return None
    truth = label_indices(frame["label"].tolist())
    bad = truth == OTHER
    if bad.any():
        ctx.data.problems.append(
            f"predictions/{ctx.focus[0]}__{ctx.focus[1]}__val.csv: {int(bad.sum())} row(s) with a label that "
            f"is none of the 36 valid labels (e.g. {frame['label'][bad].iloc[0]!r}); left out"
        )
    keep = truth >= 0
    frame = frame[keep].reset_index(drop=True)
    truth = truth[keep]
    if len(truth) == 0:
        sec.note = "The validation predictions carry no known labels, so nothing can be scored."
        return None
    if "pred_label" in frame.columns and (frame["pred_label"] != "").all():
        pred = label_indices(frame["pred_label"].tolist(), unknown=OTHER)
    else:
        pred = _decode_missing(ctx, frame)
        if pred is None:
            sec.note = (
                "The validation predictions have no <code>pred_label</code> and no per-fold α/β were "
                "found (results.csv fold rows or grids/*.npz) to decode them."
            )
            return None
    return truth, pred, frame


def _decode_missing(ctx: Context, frame: pd.DataFrame) -> np.ndarray | None:
    """Decode validation probabilities without ``pred_label`` with the per-fold thresholds of the run."""
    thresholds: dict[int, tuple[float, float]] = {}
    r = fold_rows(ctx)
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
    if not thresholds or "fold" not in frame.columns:
        return None
    folds = frame["fold"].to_numpy(float)
    pred = np.full(len(frame), OTHER, dtype=np.int64)
    probs = frame[list(EMOTIONS)].to_numpy(float)
    for k, (a, b) in thresholds.items():
        sel = folds == k
        if sel.any():
            pred[sel] = decode_thresholds(probs[sel], a, b)
    if (pred == OTHER).any():
        return None
    return pred


def confusion_section(ctx: Context) -> Section:
    sec = Section("confusion", "Confusion matrices")
    got = focus_predictions(ctx, sec)
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
                f"Out-of-fold validation predictions of {esc(fs)} / {esc(model)} over the 36 labels (n = "
                f"{len(truth)}; exact label right: {pct(acc)}%). Rows are normalised to the share of each "
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
                f"Presence level: the set of emotions, saliences ignored (presence accuracy {pct(pacc)}%). "
                f"Numbers are clip counts, colour the share of the true set's clips. Above/left of the grey "
                f"lines: single emotions; below/right: pairs."
            ),
        )
    )
    sec.body = "".join(body)
    return sec


def threshold_section(ctx: Context) -> Section:
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
        f"Validation accuracy over the threshold grid for {esc(ctx.focus[0])} / {esc(ctx.focus[1])}: "
        "presence "
        f"and salience on fold {esc(fold_names[fold])} (the fold with the median best score; × marks its "
        f"chosen thresholds) and the score averaged over folds with each fold's choice. Choices that scatter "
        f"widely mean the thresholds are not stable across actors."
    )
    sec.body = ctx.figs.html(fig, alt="alpha-beta heatmaps", caption=caption, css="wide") + _threshold_table(
        ctx, chosen, fold_names
    )
    return sec


def fold_rows(ctx: Context) -> pd.DataFrame:
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
    r = fold_rows(ctx)
    if r.empty or not {"alpha", "beta"} <= set(r.columns) or (n_folds is not None and len(r) != n_folds):
        return None
    out = r[["alpha", "beta"]].to_numpy(float)
    return out if np.isfinite(out).all() else None


def _threshold_table(ctx: Context, chosen: np.ndarray | None, fold_names: Sequence[str] | None = None) -> str:
    if chosen is None:
        chosen = _thresholds_from_results(ctx)
        fold_names = fold_rows(ctx)["fold"].tolist()
    if chosen is None:
        return note("No chosen α/β per fold found in results.csv or the grid file.")
    names = fold_names if fold_names is not None and len(fold_names) == len(chosen) else range(len(chosen))
    rows = [[esc(k), num(a), num(b)] for k, (a, b) in zip(names, chosen)]
    rows.append(
        [
            "mean ± std",
            f"{num(chosen[:, 0].mean())} ± {num(sample_std(chosen[:, 0]))}",
            f"{num(chosen[:, 1].mean())} ± {num(sample_std(chosen[:, 1]))}",
        ]
    )
    return table(["fold", "α", "β"], rows, caption="Chosen thresholds per validation fold.")


def curves_section(ctx: Context) -> Section:
    sec = Section("curves", "Training curves")
    curves = ctx.data.curves
    if curves is None or ctx.focus is None:
        sec.note = "curves.csv is missing or unusable, so there are no per-epoch curves."
        return sec
    part = curves[(curves["feature_set"] == ctx.focus[0]) & (curves["model"] == ctx.focus[1])]
    if part.empty:
        sec.note = f"curves.csv has no rows for {esc(ctx.focus[0])} / {esc(ctx.focus[1])}."
        return sec
    r = fold_rows(ctx)
    selected = {str(f): float(e) for f, e in zip(r["fold"], r["epoch"])} if "epoch" in r.columns else {}
    fig = figures.curves_figure(part, selected)
    sec.body = ctx.figs.html(
        fig,
        alt="validation curves per fold",
        css="wide",
        caption=(
            f"Per-epoch curves of {esc(ctx.focus[0])} / {esc(ctx.focus[1])}, one colour per validation fold; "
            f"dotted lines mark each fold's selected epoch. Accuracies are at each epoch's own tuned "
            f"thresholds."
        ),
    )
    return sec
