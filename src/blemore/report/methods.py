"""The methods in the report: the methods table and the held-out scores of every method.

Sections (each ``Context -> Section | None``, ``None`` where the run has nothing for them):

- :func:`compare_section` - ``compare.csv``: every method under every selection rule
  (``ensemble``'s feature set is the comma-separated list of the sets it averages), with a
  forest plot of the rule that chose;
- :func:`heldout_section` - the test clips' scores where they were labelled (``compare.csv``
  test rows) or scored afterwards (``test_scores.json``), beside the validation scores that
  chose, and whether validation predicted them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from blemore.report import method_figures
from blemore.report.layout import (
    Context,
    Section,
    as_float,
    config_label,
    esc,
    interval,
    num,
    pct,
    signed,
    table,
)
from blemore.report.rundata import TRIVIAL_METHODS, Key, RunData, config_key

__all__ = ["compare_section", "heldout_section"]


def _ordered_compare(tab: pd.DataFrame) -> pd.DataFrame:
    if "split" not in tab.columns:
        return tab
    order = tab["split"].map({"val": 0, "test": 1}).fillna(2)
    return tab.assign(_order=order).sort_values("_order", kind="stable").drop(columns="_order")


def _compare_rows(tab: pd.DataFrame, chosen: Key | None) -> tuple[list[str], list[list[str]], list[int]]:
    extra = [c for c in ("split", "selection") if c in tab.columns]
    header = ["method", "feature set", "model", *extra, "presence", "salience", "score", "interval"]
    rows, focus = [], []
    for i, (_, r) in enumerate(tab.iterrows()):
        if chosen is not None and config_key(r) == chosen:
            focus.append(i)
        rows.append(
            [
                esc(r["method"]),
                esc(r["feature_set"]),
                esc(r["model"]),
                *(esc(r[c]) for c in extra),
                pct(r.get("acc_presence", np.nan)),
                pct(r.get("acc_salience", np.nan)),
                f"<b>{pct(r['score'])}</b>",
                interval(r["ci_low"], r["ci_high"]),
            ]
        )
    return header, rows, focus


def _forest_rows(tab: pd.DataFrame, data: RunData) -> tuple[pd.DataFrame, str]:
    """The rows the forest plot shows: validation under the rule that chose (all rows if unknown)."""
    if not {"split", "selection"} <= set(tab.columns):
        return tab, "every row of compare.csv"
    selection = str((data.best or {}).get("selection") or "")
    if not selection:
        val = tab[tab["split"] == "val"]
        selection = "nested" if (val["selection"] == "nested").any() else "pooled"
    rows = tab[(tab["split"] == "val") & (tab["selection"] == selection)]
    return (rows, f"validation, {selection} rule") if not rows.empty else (tab, "every row of compare.csv")


def compare_section(ctx: Context) -> Section | None:
    """Every method of ``compare.csv`` with its interval; None for a run without it."""
    tab = ctx.data.compare
    if tab is None:
        return None
    sec = Section("compare", "Methods compared")
    if tab.empty:
        sec.note = "compare.csv has no rows."
        return sec
    tab = _ordered_compare(tab)
    chosen, baseline = ctx.data.chosen(), ctx.data.best_baseline()
    header, rows, focus = _compare_rows(tab, chosen)
    body = table(
        header,
        rows,
        highlight=focus,
        caption=(
            "Methods trained on the same folds; accuracy in %, interval: bootstrap 95 % over actors. "
            "Selection: <i>paper</i> = epoch and thresholds chosen on the reported fold (optimistic), "
            "<i>nested</i> = chosen inside the training folds, <i>pooled</i> = one choice on all out-of-fold "
            "validation predictions (what a deployed model uses). <i>ensemble</i> averages the probabilities "
            "of the comma-separated feature sets. Highlighted: the configuration to submit."
        ),
    )
    shown, what = _forest_rows(tab, ctx.data)
    body += ctx.figs.html(
        method_figures.forest_figure(shown.reset_index(drop=True), chosen=chosen, baseline=baseline),
        alt="forest plot of the methods",
        caption=(
            f"Score of each configuration with its bootstrap interval ({esc(what)}); star: the configuration "
            "to submit, square: the best baseline. Overlapping intervals mean the difference is not "
            "established (paired.csv holds the paired tests)."
        ),
    )
    sec.body = body
    return sec


def _heldout_scores(data: RunData) -> tuple[pd.DataFrame | None, str]:
    """Held-out scores of the deployed configurations and where they come from."""
    cols = ["method", "feature_set", "model", "acc_presence", "acc_salience", "score", "ci_low", "ci_high"]
    if data.test_scores is not None:
        t = data.test_scores.reindex(columns=cols)
        t = t[~t["method"].isin(TRIVIAL_METHODS)]
        if not t.empty:
            return t.reset_index(drop=True), "test_scores.json (every zip scored against the held-out truth)"
    tab = data.compare
    if tab is not None and {"split", "selection"} <= set(tab.columns):
        t = tab[(tab["split"] == "test") & (tab["selection"] == "pooled")].reindex(columns=cols)
        if not t.empty:
            return t.reset_index(drop=True), "compare.csv (test rows, pooled rule: what each zip holds)"
    return None, ""


def _heldout_references(data: RunData) -> dict[str, float]:
    """Held-out scores of the constant baselines (majority-single, majority-blend)."""
    if data.test_scores is not None:
        t = data.test_scores[data.test_scores["method"].isin(TRIVIAL_METHODS)]
        return {str(m): float(s) for m, s in zip(t["method"], t["score"]) if np.isfinite(s)}
    r = data.results
    if r is None:
        return {}
    t = r[r["method"].isin(TRIVIAL_METHODS) & (r["fold"] == "test")]
    return {str(m): float(s) for m, s in zip(t["method"], t["score"]) if np.isfinite(s)}


def _with_validation(scores: pd.DataFrame, data: RunData) -> pd.DataFrame:
    best = data.best or {}
    val = {
        config_key(c): as_float(c.get("score"))
        for c in best.get("candidates") or []
        if isinstance(c, dict) and "method" in c
    }
    chosen, baseline = data.chosen(), data.best_baseline()
    keys = [config_key(r) for _, r in scores.iterrows()]
    out = scores.assign(
        validation=[val.get(k, np.nan) for k in keys],
        role=["chosen" if k == chosen else "baseline" if k == baseline else "" for k in keys],
        label=[config_label(k) for k in keys],
    )
    out["rank_test"] = out["score"].rank(ascending=False, method="min")
    out["rank_val"] = out["validation"].rank(ascending=False, method="min")
    return out.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)


def _heldout_summary(t: pd.DataFrame) -> str:
    parts = []
    n = len(t)
    for role, name in (
        ("chosen", "The configuration chosen on validation"),
        ("baseline", "The best baseline"),
    ):
        row = t[t["role"] == role]
        if not row.empty:
            r = row.iloc[0]
            parts.append(
                f"{name} ({esc(r['label'])}) scores <b>{pct(r['score'])}</b> on the held-out clips: rank "
                f"{num(r['rank_test'], '.0f')} of {n} (rank {num(r['rank_val'], '.0f')} on validation)."
            )
    chosen, base = t[t["role"] == "chosen"], t[t["role"] == "baseline"]
    if not chosen.empty and not base.empty and chosen.index[0] != base.index[0]:
        parts.append(f"Difference: {signed(chosen['score'].iloc[0] - base['score'].iloc[0])} points.")
    top = t.iloc[0]
    parts.append(f"Best on the held-out clips: {esc(top['label'])} ({pct(top['score'])}).")
    both = t[["validation", "score"]].dropna()
    if len(both) >= 3:
        rho = both["validation"].rank().corr(both["score"].rank())  # Spearman: Pearson of the ranks
        parts.append(f"Rank correlation of validation and held-out scores: {num(rho)}.")
    return "<p>" + " ".join(parts) + "</p>"


def _heldout_table(t: pd.DataFrame, selection: str) -> str:
    has_ci = t["ci_low"].notna().any()
    header = [
        "method",
        "feature set",
        "model",
        "presence",
        "salience",
        "score",
        *(["interval"] if has_ci else []),
        f"validation ({esc(selection)})",
        "rank held-out",
        "rank validation",
    ]
    rows = [
        [
            esc(r["method"]),
            esc(r["feature_set"]),
            esc(r["model"]),
            pct(r["acc_presence"]),
            pct(r["acc_salience"]),
            f"<b>{pct(r['score'])}</b>",
            *([interval(r["ci_low"], r["ci_high"])] if has_ci else []),
            pct(r["validation"]),
            num(r["rank_test"], ".0f"),
            num(r["rank_val"], ".0f"),
        ]
        for _, r in t.iterrows()
    ]
    focus = [i for i, role in enumerate(t["role"]) if role]
    return table(
        header,
        rows,
        highlight=focus,
        caption="Held-out test accuracy in % of every configuration's zip, "
        "best first, beside the validation score that chose; highlighted: the chosen configuration and "
        "the best baseline.",
    )


def heldout_section(ctx: Context) -> Section | None:
    """Held-out scores of every method; a note where test clips were predicted but not scored."""
    data = ctx.data
    scores, source = _heldout_scores(data)
    if scores is None:
        if not (data.method_predictions or data.test_predictions):
            return None
        return Section(
            "heldout",
            "Held-out test scores",
            note=(
                "The test clips were predicted but their labels are not in the run, so there are no "
                "held-out scores: "
                "submit the zip, or score it against labelled metadata with <code>blemore score</code>."
            ),
        )
    sec = Section("heldout", "Held-out test scores")
    t = _with_validation(scores, data)
    selection = str((data.best or {}).get("selection", "validation"))
    body = [f"<p>From {esc(source)}.</p>", _heldout_summary(t), _heldout_table(t, selection)]
    plot = t[t["validation"].notna() & t["score"].notna()]
    if len(plot) >= 2:
        body.append(
            ctx.figs.html(
                method_figures.heldout_figure(
                    plot.rename(columns={"score": "test"}), references=_heldout_references(data)
                ),
                alt="validation against held-out scores",
                caption=(
                    "Does validation predict the held-out score? One point per configuration; star: chosen, "
                    "square: best baseline; dashed: held-out = validation; dotted: the constant baselines."
                ),
            )
        )
    sec.body = "".join(body)
    return sec
