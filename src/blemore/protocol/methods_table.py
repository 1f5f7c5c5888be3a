"""The methods table: every method under every selection rule, with intervals over actors and paired tests.

Files (written by :mod:`blemore.protocol.run`): ``compare.csv`` (one row per method x feature
set x head x split x selection, with 95 % bootstrap intervals over actors), ``paired.csv``
(every method against the baseline on the same clips: bootstrap interval of the difference
and a sign-flip permutation p-value, over actors), ``pairs.csv`` (accuracy per emotion
pair), ``sensitivity.csv`` (flatness of the baseline's alpha x beta surface around the
chosen point), ``compare_predictions.csv`` (per-clip predictions of every configuration),
``compare.md``. ``gap`` is ``val (paper) - test`` of the same configuration.

:func:`choose_best` picks the method to submit by honest validation: the nested score where
nested selection ran (nothing about a fold is chosen on that fold), else the pooled
out-of-fold score; never the test clips.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from blemore.errors import BlemoreError
from blemore.labels import IS_BLEND, LABEL_INDEX, LABEL_NAMES
from blemore.metrics import breakdown_by_pair
from blemore.protocol.evaluate import ConfigResult
from blemore.protocol.methods import METHODS
from blemore.protocol.stats import Outcomes, PairedResult, bootstrap_ci, outcomes, paired_test

__all__ = ["COMPARE_COLUMNS", "PAIRED_COLUMNS", "MethodsTables", "methods_tables", "markdown", "sensitivity_summary",
           "choose_best", "paired_from_run"]

COMPARE_COLUMNS = [
    "method", "feature_set", "model", "split", "selection", "epoch",
    "acc_presence", "acc_salience", "score", "ci_low", "ci_high",
    "presence_ci_low", "presence_ci_high", "salience_ci_low", "salience_ci_high",
    "gap", "n_clips", "n_blends", "n_actors", "note",
]
PAIRED_COLUMNS = [
    "method", "feature_set", "model", "split", "selection", "reference_method", "reference_feature_set",
    "reference_model", "diff_score", "ci_low", "ci_high", "p_value", "diff_presence", "diff_salience",
    "n_clips", "n_actors",
]

def _ci(row) -> str:
    if row is None:
        return "-"
    if np.isnan(row["ci_low"]):
        return f"{row['score']:.3f}"
    return f"{row['score']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"


def sensitivity_summary(sens: pd.DataFrame) -> str:
    """One line per feature set x model: how flat the alpha x beta surface is around the chosen point."""
    if sens is None or sens.empty:
        return ""
    lines = ["", "Threshold sensitivity (baseline, per fold at its chosen epoch):"]
    for (fs, model), g in sens.groupby(["feature_set", "model"], sort=False):
        lines.append(
            f"- {fs} / {model}: score range within one grid step of the chosen (alpha, beta) "
            f"{g.local_range.mean():.3f} on average (max {g.local_range.max():.3f}); chosen alpha "
            f"{g.alpha.min():.2f}-{g.alpha.max():.2f}, beta {g.beta.min():.2f}-{g.beta.max():.2f} across folds; "
            f"{100 * g['share_within_0.01'].mean():.1f} % of the grid within 0.01 of the best."
        )
    return "\n".join(lines) + "\n"


#: The paper's test rules as the table's footnote says them.
PAPER_TEST_WORDS = {
    "all-epochs": "the model on all training clips after every epoch",
    "best-fold-epochs": "the model on all training clips after the best fold's epoch count",
    "retrain-100": "the model on all training clips after 100 epochs",
    "best-fold-checkpoint": "the best fold's own model at its best epoch",
}


def markdown(df: pd.DataFrame, paired: pd.DataFrame, *, paper_test: str = "all-epochs",
             pseudo_actors: str | None = None) -> str:
    """The side-by-side table: score [95 % CI over actors] per selection rule, gap, difference to baseline."""
    head = (
        "| method | feature set | model | val, paper rule | val, nested | test | gap (val paper - test) "
        "| nested - baseline (p) | test - baseline (p) |\n|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    keys = df[["method", "feature_set", "model"]].drop_duplicates().itertuples(index=False)

    def get(sub, split, sel):
        s = sub[(sub.split == split) & (sub.selection == sel)]
        return None if s.empty else s.iloc[0]

    def diff(method, fs, model, split, sel):
        p = paired[(paired.method == method) & (paired.feature_set == fs) & (paired.model == model)
                   & (paired.split == split) & (paired.selection == sel)]
        if p.empty:
            return "-"
        r = p.iloc[0]
        return f"{r.diff_score:+.3f} ({r.p_value:.3f})"

    for method, fs, model in keys:
        sub = df[(df.method == method) & (df.feature_set == fs) & (df.model == model)]
        test = get(sub, "test", "pooled")
        gap = "-" if test is None or pd.isna(test["gap"]) else f"{test['gap']:+.3f}"
        vdiff = diff(method, fs, model, "val", "nested")
        if vdiff == "-" and method != "baseline":
            vdiff = diff(method, fs, model, "val", "paper")
            vdiff = "-" if vdiff == "-" else f"{vdiff} paper rule"
        lines.append(
            f"| {method} | {fs} | {model} | {_ci(get(sub, 'val', 'paper'))} | {_ci(get(sub, 'val', 'nested'))} "
            f"| {_ci(test)} | {gap} | {vdiff} | {diff(method, fs, model, 'test', 'pooled')} |"
        )
        if method == "baseline":
            tp = get(sub, "test", "paper")
            if tp is not None:
                gp = "-" if pd.isna(tp["gap"]) else f"{tp['gap']:+.3f}"
                lines.append(f"| baseline (paper test rule) | {fs} | {model} | | | {_ci(tp)} | {gp} | | |")
    foot = (
        "\nScore = (presence + salience) / 2, [95 % bootstrap interval over actors]. "
        "val, paper rule: epoch and thresholds chosen on the fold reported (optimistic); "
        "nested: chosen by inner cross-validation inside the training folds; "
        "test: epoch and parameters chosen on pooled validation, model trained on all training clips "
        f"(baseline, paper test rule: {PAPER_TEST_WORDS.get(paper_test, paper_test)}, thresholds of the best fold). "
        "Differences to the baseline (same feature set and model) with a sign-flip permutation p-value over actors.\n"
    )
    if (df.method == "actor-norm").any():
        foot += ("actor-norm is transductive: test clips are standardised with "
                 + (f"the unlabelled clips of their pseudo-actor ({pseudo_actors})" if pseudo_actors
                    else "their own actor's unlabelled clips") + ".\n")
    return head + "\n".join(lines) + "\n" + foot


@dataclass
class MethodsTables:
    """The methods table and its companions (see the module docstring)."""

    compare: pd.DataFrame
    paired: pd.DataFrame
    pairs: pd.DataFrame
    predictions: pd.DataFrame
    md: str


def _groups(actors: Sequence[object], clips: Sequence[str]) -> np.ndarray:
    from blemore.protocol.actors import is_missing_actor

    return np.array([f"clip:{c}" if is_missing_actor(a) else str(a) for a, c in zip(actors, clips)], dtype=object)


def _result_row(r: ConfigResult, split: str, selection: str, epoch: float | None, t: np.ndarray,
                groups: np.ndarray, oc: Outcomes, n_boot: int, seed: int) -> dict:
    ci = bootstrap_ci(oc, n_boot=n_boot, seed=seed)
    c = r.configuration
    return {
        "method": c.method, "feature_set": c.feature_set, "model": c.model, "split": split, "selection": selection,
        "epoch": epoch, "acc_presence": ci["acc_presence"], "acc_salience": ci["acc_salience"], "score": ci["score"],
        "ci_low": ci["score_low"], "ci_high": ci["score_high"],
        "presence_ci_low": ci["acc_presence_low"], "presence_ci_high": ci["acc_presence_high"],
        "salience_ci_low": ci["acc_salience_low"], "salience_ci_high": ci["acc_salience_high"],
        "gap": None, "n_clips": int(len(t)), "n_blends": int(IS_BLEND[t].sum()),
        "n_actors": int(len(set(groups.tolist()))), "note": METHODS[c.method].summary,
    }


def _split_rows(r: ConfigResult, test_truth: np.ndarray | None) -> list[tuple[str, str, float | None, np.ndarray]]:
    """(split, selection, epoch, predictions) of a configuration: its validation rows, then its test rows."""
    out = [(row.split, row.selection, row.epoch, row.pred) for row in r.rows]
    if test_truth is not None and r.test_pred is not None:
        out.append(("test", "pooled", float(r.deployment.rules["pooled"].epoch), r.test_pred))
        if r.paper_test_pred is not None:
            out.append(("test", "paper", float(r.deployment.rules["paper"].epoch), r.paper_test_pred))
    return out


def methods_tables(
    results: Sequence[ConfigResult],
    *,
    truth: np.ndarray,
    actors: Sequence[object],
    clips: Sequence[str],
    test_truth: np.ndarray | None,
    test_actors: Sequence[object],
    test_clips: Sequence[str],
    n_boot: int,
    n_perm: int,
    seed: int,
    sensitivity: pd.DataFrame,
    models: Sequence[str],
    paper_test: str = "all-epochs",
    pseudo_actors: str | None = None,
) -> MethodsTables:
    """Score every configuration's predictions with intervals, test each against the baseline, tabulate."""
    val_groups, test_groups = _groups(actors, clips), _groups(test_actors, test_clips)
    rows, pair_rows, oc_of = [], [], {}
    columns: dict[str, pd.Series] = {}
    all_clips = list(clips) + list(test_clips)
    for r in results:
        c = r.configuration
        for split, selection, epoch, pred in _split_rows(r, test_truth):
            t, groups = (truth, val_groups) if split == "val" else (test_truth, test_groups)
            oc = outcomes(t, pred, groups)
            oc_of[(c.method, c.feature_set, c.model, split, selection)] = oc
            rows.append(_result_row(r, split, selection, epoch, t, groups, oc, n_boot, seed))
            for b in breakdown_by_pair(t, pred):
                pair_rows.append({"method": c.method, "feature_set": c.feature_set, "model": c.model, "split": split,
                                  "selection": selection, "pair": b["group"], "n": b["n"],
                                  "acc_presence": b["acc_presence"], "acc_salience": b["acc_salience"]})
            names = list(clips) if split == "val" else list(test_clips)
            col = f"{c.method}|{c.feature_set}|{c.model}|{selection}"
            columns.setdefault(col, pd.Series("", index=pd.Index(all_clips, name="filename"), dtype=object))
            columns[col].loc[names] = [LABEL_NAMES[i] if i >= 0 else "other" for i in pred]
    df = pd.DataFrame(rows, columns=COMPARE_COLUMNS)
    _add_gaps(df)
    paired = _paired(oc_of, models, n_boot=n_boot, n_perm=n_perm, seed=seed)
    labels = [LABEL_NAMES[i] for i in truth] + (
        [LABEL_NAMES[i] for i in test_truth] if test_truth is not None else [""] * len(test_clips))
    pred_df = pd.DataFrame({"split": ["val"] * len(clips) + ["test"] * len(test_clips),
                            "actor": [str(g) for g in val_groups] + [str(g) for g in test_groups], "label": labels},
                           index=pd.Index(all_clips, name="filename"))
    pred_df = pd.concat([pred_df, pd.DataFrame(columns)], axis=1)
    md = markdown(df, paired, paper_test=paper_test, pseudo_actors=pseudo_actors) + sensitivity_summary(sensitivity)
    return MethodsTables(df, paired, pd.DataFrame(pair_rows), pred_df, md)


def _add_gaps(df: pd.DataFrame) -> None:
    """``gap`` = val (paper rule) - test, per method / set / model."""
    for i, r in df.iterrows():
        if r["split"] != "test":
            continue
        v = df[(df.method == r.method) & (df.feature_set == r.feature_set) & (df.model == r.model)
               & (df.split == "val") & (df.selection == "paper")]
        if len(v):
            df.at[i, "gap"] = float(v.score.iloc[0] - r["score"])


def _paired(oc_of: dict, models: Sequence[str], *, n_boot: int, n_perm: int, seed: int) -> pd.DataFrame:
    """Every configuration against the baseline of the same feature set and head (or the first head), same clips."""
    base_sets = sorted({k[1] for k in oc_of if k[0] == "baseline"})
    rows = []
    for (method, fs, model, split, sel), oc in oc_of.items():
        if method == "baseline":
            continue
        ref_fs = reference_set(fs, base_sets)
        ref_model = model if model in models else models[0]
        ref = oc_of.get(("baseline", ref_fs, ref_model, split, sel))
        if ref is None:
            continue
        pr = paired_test(oc, ref, n_boot=n_boot, n_perm=n_perm, seed=seed)
        rows.append({"method": method, "feature_set": fs, "model": model, "split": split, "selection": sel,
                     "reference_method": "baseline", "reference_feature_set": ref_fs, "reference_model": ref_model,
                     "diff_score": pr.diff, "ci_low": pr.ci_low, "ci_high": pr.ci_high, "p_value": pr.p_value,
                     "diff_presence": pr.diff_presence, "diff_salience": pr.diff_salience,
                     "n_clips": pr.n_clips, "n_actors": pr.n_groups})
    return pd.DataFrame(rows, columns=PAIRED_COLUMNS)


def reference_set(feature_set: str, base_sets: Sequence[str]) -> str | None:
    """The baseline feature set a configuration is compared with: its own, else the last fused set it averages.

    >>> reference_set("a, b, a+b", ["a", "b", "a+b"])
    'a+b'
    """
    if feature_set in base_sets:
        return feature_set
    members = [s.strip() for s in feature_set.split(",")]
    inside = [s for s in members if s in base_sets]
    fused = [s for s in inside if "+" in s]
    return (fused or inside or [None])[-1]


def choose_best(compare: pd.DataFrame, deployable: Sequence[tuple[str, str, str]]) -> dict:
    """The configuration to submit: the best nested validation score (else pooled) among deployable ones.

    Ties go to the first in table order (the baseline first). Returns what was chosen, by
    which score, and every candidate's score.
    """
    val = compare[compare.split == "val"]
    selection = "nested" if (val.selection == "nested").any() else "pooled"
    cands = []
    for method, fs, model in deployable:
        row = val[(val.method == method) & (val.feature_set == fs) & (val.model == model) & (val.selection == selection)]
        if len(row):
            cands.append({"method": method, "feature_set": fs, "model": model,
                          "score": float(row.score.iloc[0]), "ci_low": float(row.ci_low.iloc[0]),
                          "ci_high": float(row.ci_high.iloc[0])})
    if not cands:
        return {}
    best = max(range(len(cands)), key=lambda i: (cands[i]["score"], -i))
    base = [c for c in cands if c["method"] == "baseline"]
    ref = max(base, key=lambda c: c["score"]) if base else None
    return {"chosen": cands[best], "selection": selection,
            "why": (f"highest {selection} validation score ({cands[best]['score']:.4f}) of {len(cands)} deployable "
                    "configurations; the test clips were not used"),
            "best_baseline": ref, "candidates": cands}


def paired_from_run(
    run: str | Path, a: str, b: str, *, split: str = "val", n_boot: int = 1000, n_perm: int = 2000, seed: int = 0
) -> PairedResult:
    """Paired test between any two configurations of a compare run (``compare_predictions.csv``).

    A configuration is ``method|feature_set|model|selection`` (a column of that file), e.g.
    ``actor-norm|facemesh|linear|nested``; ``split`` is ``val`` or ``test``.
    """
    path = Path(run) / "compare_predictions.csv"
    if not path.exists():
        raise BlemoreError(f"{run}: no compare_predictions.csv; run `blemore benchmark --methods ...` with --out {run} first")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    configs = [c for c in df.columns if c.count("|") == 3]
    for c in (a, b):
        if c not in configs:
            shown = ", ".join(configs[:6]) + (" ..." if len(configs) > 6 else "")
            raise BlemoreError(f"{path}: no configuration {c!r}; known (method|feature_set|model|selection): {shown}")
    if split not in ("val", "test"):
        raise BlemoreError(f"split must be 'val' or 'test', got {split!r}")
    sub = df[(df["split"] == split) & (df[a] != "") & (df[b] != "") & (df["label"] != "")]
    if sub.empty:
        raise BlemoreError(f"{path}: no {split} clip with labels and predictions of both {a!r} and {b!r}")

    def idx(values) -> np.ndarray:
        return np.array([LABEL_INDEX.get(v, -1) for v in values], dtype=np.int64)

    truth = idx(sub["label"])
    groups = sub["actor"].to_numpy()
    return paired_test(outcomes(truth, idx(sub[a]), groups), outcomes(truth, idx(sub[b]), groups),
                       n_boot=n_boot, n_perm=n_perm, seed=seed)
