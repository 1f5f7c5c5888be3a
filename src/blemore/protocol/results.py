"""The paper's tables of the baseline: ``results.csv``, ``curves.csv``, threshold grids, per-clip predictions.

For every feature set x head, from the baseline's trained unit (:mod:`blemore.protocol.units`):

- per fold (``fold`` = 0..K-1): the epoch with the best ``0.5 * presence + 0.5 * salience``
  on that fold (first maximum) and its alpha/beta, as the paper does; ``mean`` and ``std``
  (sample std, ddof=1) over folds — optimistic, chosen on the clips they report;
- ``pooled``: the epoch and alpha/beta with the best score on the pooled out-of-fold
  probabilities (one choice for all folds);
- ``test`` (the paper's rule, ``--paper-test``) and ``test-pooled`` (the model on all
  training clips at the pooled epoch, pooled alpha/beta), when the test clips have labels;
- trivial baselines (``majority-single``, ``majority-blend``): the most frequent single
  emotion, and the most frequent blend pair with its most frequent salience, counted on the
  training part of each split.

``curves.csv`` has every epoch of every fold (and the pooled validation set): losses,
accuracies and the best alpha/beta of that epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from blemore.decoding import decode_thresholds, search_thresholds
from blemore.labels import EMOTIONS, IS_BLEND, LABEL_NAMES, SOFT_VECTORS, VALID_LABELS
from blemore.metrics import score_indices
from blemore.models.losses import kl_batchmean

__all__ = [
    "RESULT_COLUMNS",
    "CURVE_COLUMNS",
    "PRED_COLUMNS",
    "BaselineTables",
    "baseline_tables",
    "trivial_rows",
    "markdown_table",
    "prediction_frame",
    "format_results",
]

RESULT_COLUMNS = [
    "feature_set",
    "model",
    "method",
    "fold",
    "epoch",
    "alpha",
    "beta",
    "acc_presence",
    "acc_salience",
    "score",
    "n_clips",
]
CURVE_COLUMNS = [
    "feature_set",
    "model",
    "fold",
    "epoch",
    "train_loss",
    "val_loss",
    "acc_presence",
    "acc_salience",
    "score",
    "alpha",
    "beta",
]
PRED_COLUMNS = ["filename", "actor", "fold", "label", *EMOTIONS, "pred_label"]




def _majority_labels(train_idx: np.ndarray) -> tuple[int, int]:
    """(most frequent single label, most frequent blend label of the most frequent pair)."""
    counts = np.bincount(train_idx, minlength=len(VALID_LABELS))
    singles = np.flatnonzero(~IS_BLEND)
    single = int(singles[np.argmax(counts[singles])])
    pairs: dict[str, int] = {}
    for i in np.flatnonzero(IS_BLEND):
        pairs[VALID_LABELS[i].pair] = pairs.get(VALID_LABELS[i].pair, 0) + int(counts[i])
    best_pair = max(pairs, key=lambda k: pairs[k])  # first max in label order
    members = [i for i in np.flatnonzero(IS_BLEND) if VALID_LABELS[i].pair == best_pair]
    blend = int(members[int(np.argmax(counts[members]))])
    return single, blend


def _row(fs, model, method, fold, epoch, alpha, beta, s, n) -> dict:
    return {
        "feature_set": fs,
        "model": model,
        "method": method,
        "fold": str(fold),
        "epoch": epoch,
        "alpha": alpha,
        "beta": beta,
        "acc_presence": s[0],
        "acc_salience": s[1],
        "score": s[2],
        "n_clips": n,
    }


def _summary_rows(fs: str, model: str, method: str, fold_rows: list[dict]) -> list[dict]:
    out = []
    arr = {k: np.array([r[k] for r in fold_rows], dtype=float) for k in ("acc_presence", "acc_salience", "score")}
    ep = np.array([np.nan if r["epoch"] in (None, "") else r["epoch"] for r in fold_rows], dtype=float)
    n = int(sum(r["n_clips"] for r in fold_rows))
    ddof = 1 if len(fold_rows) > 1 else 0
    mean = [float(arr[k].mean()) for k in ("acc_presence", "acc_salience", "score")]
    std = [float(arr[k].std(ddof=ddof)) for k in ("acc_presence", "acc_salience", "score")]
    ep_mean = None if np.isnan(ep).all() else float(np.nanmean(ep))
    ep_std = None if np.isnan(ep).all() else float(np.nanstd(ep, ddof=ddof))
    out.append(_row(fs, model, method, "mean", ep_mean, None, None, mean, n))
    out.append(_row(fs, model, method, "std", ep_std, None, None, std, n))
    return out


def trivial_rows(
    train_idx: np.ndarray, folds: np.ndarray, fold_ids: Sequence[int], test_idx: np.ndarray | None
) -> list[dict]:
    """Rows of the two trivial baselines, per fold, mean/std and test."""
    rows: list[dict] = []
    for which, method in ((0, "majority-single"), (1, "majority-blend")):
        fold_rows = []
        for f in fold_ids:
            lab = _majority_labels(train_idx[folds != f])[which]
            truth = train_idx[folds == f]
            s = score_indices(truth, np.full(len(truth), lab))
            r = _row("-", method, method, f, None, None, None, [s.acc_presence, s.acc_salience, s.score], len(truth))
            r["pred_label"] = LABEL_NAMES[lab]
            fold_rows.append(r)
        rows += fold_rows + _summary_rows("-", method, method, fold_rows)
        if test_idx is not None:
            lab = _majority_labels(train_idx)[which]
            s = score_indices(test_idx, np.full(len(test_idx), lab))
            rows.append(_row("-", method, method, "test", None, None, None, [s.acc_presence, s.acc_salience, s.score], len(test_idx)))
    for r in rows:
        r.pop("pred_label", None)
    return rows


def _fmt(x: float) -> str:
    return "" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.3f}"


def markdown_table(results: pd.DataFrame) -> str:
    """The summary table: per feature set x model, validation mean ± std, pooled, test rules."""
    head = (
        "| feature set | model | val presence | val salience | val score | pooled score (epoch) "
        "| test presence | test salience | test-pooled presence | test-pooled salience |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    keys = results[["feature_set", "model"]].drop_duplicates().itertuples(index=False)
    for fs, model in keys:
        sub = results[(results.feature_set == fs) & (results.model == model)].set_index("fold")

        def get(fold: str, col: str):
            return sub.loc[fold, col] if fold in sub.index else None

        def pm(col: str) -> str:
            m, s = get("mean", col), get("std", col)
            return f"{m:.3f} ± {s:.3f}" if m is not None else ""

        pooled = ""
        if "pooled" in sub.index:
            pooled = f"{get('pooled', 'score'):.3f} ({int(get('pooled', 'epoch'))})"
        lines.append(
            f"| {fs} | {model} | {pm('acc_presence')} | {pm('acc_salience')} | {pm('score')} | {pooled} "
            f"| {_fmt(get('test', 'acc_presence'))} | {_fmt(get('test', 'acc_salience'))} "
            f"| {_fmt(get('test-pooled', 'acc_presence'))} | {_fmt(get('test-pooled', 'acc_salience'))} |"
        )
    return head + "\n".join(lines) + "\n"




def prediction_frame(meta: pd.DataFrame, probs: np.ndarray, pred: np.ndarray) -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "filename": meta["filename"].to_numpy(),
            "actor": meta["actor"].to_numpy(),
            "fold": meta["fold"].to_numpy(),
            "label": [l if isinstance(l, str) else "" for l in meta["label"]],
        }
    )
    for j, e in enumerate(EMOTIONS):
        df[e] = probs[:, j]
    df["pred_label"] = [LABEL_NAMES[i] if i >= 0 else "other" for i in pred]
    return df


@dataclass
class BaselineTables:
    """The baseline's rows of ``results.csv`` and ``curves.csv``, its grids and per-clip predictions, for one set x head."""

    rows: list[dict]
    curves: list[dict]
    grids: dict[str, np.ndarray]
    val_predictions: pd.DataFrame
    test_predictions: pd.DataFrame | None


def _curve(fs: str, model: str, fold: str, epoch: int, train_loss: float, val_loss: float, r) -> dict:
    return {"feature_set": fs, "model": model, "fold": fold, "epoch": epoch, "train_loss": train_loss,
            "val_loss": val_loss, "acc_presence": r.acc_presence, "acc_salience": r.acc_salience, "score": r.score,
            "alpha": r.alpha, "beta": r.beta}


def _epoch_searches(fs: str, model: str, fold_ids: Sequence[int], outs: Sequence[np.ndarray],
                    truths: Sequence[np.ndarray], train_loss: np.ndarray):
    """Per epoch: the threshold search of every fold and of the pool; the first best of each; the curves."""
    K, E = len(outs), outs[0].shape[0]
    pool_truth = np.concatenate(truths)
    best = [(-np.inf, 0, None)] * K
    best_pooled = (-np.inf, 0, None)
    curves: list[dict] = []
    for epoch in range(1, E + 1):
        probs = [np.asarray(o[epoch - 1], dtype=np.float64) for o in outs]
        for k in range(K):
            r = search_thresholds(probs[k], truths[k])
            curves.append(_curve(fs, model, str(fold_ids[k]), epoch, float(train_loss[epoch - 1, k]),
                                 kl_batchmean(SOFT_VECTORS[truths[k]], probs[k]), r))
            if r.score > best[k][0]:
                best[k] = (r.score, epoch, r)
        pooled = np.concatenate(probs)
        r = search_thresholds(pooled, pool_truth)
        curves.append(_curve(fs, model, "pooled", epoch, float(train_loss[epoch - 1, K]),
                             kl_batchmean(SOFT_VECTORS[pool_truth], pooled), r))
        if r.score > best_pooled[0]:
            best_pooled = (r.score, epoch, r)
    return best, best_pooled, curves


def baseline_tables(
    fs: str,
    model: str,
    *,
    train: pd.DataFrame,
    test: pd.DataFrame | None,
    fold_ids: Sequence[int],
    outer: Sequence[np.ndarray],
    val_clips: Sequence[np.ndarray],
    train_loss: np.ndarray,
    test_outputs: np.ndarray | None,
    rules: dict[str, dict],
    submission_rule: str = "pooled",
) -> BaselineTables:
    """The baseline's tables from its unit: ``outer[k]`` are fold k's probabilities after every epoch.

    ``rules`` holds the deployed test rules (``{"paper": {"epoch", "alpha", "beta"}, "pooled": ...}``);
    ``test_outputs`` the model on all clips' test probabilities after every epoch.
    """
    truth_all = train["label_index"].to_numpy(dtype=np.int64)
    truths = [truth_all[vc] for vc in val_clips]
    best, best_pooled, curves = _epoch_searches(fs, model, fold_ids, outer, truths, train_loss)
    rows, fold_rows, val_frames, presence, salience = [], [], [], [], []
    for k, f in enumerate(fold_ids):
        _, epoch, r = best[k]
        fold_rows.append(_row(fs, model, "baseline", f, epoch, r.alpha, r.beta,
                              [r.acc_presence, r.acc_salience, r.score], len(val_clips[k])))
        presence.append(r.presence_grid)
        salience.append(r.salience_grid)
        p = np.asarray(outer[k][epoch - 1], dtype=np.float64)
        val_frames.append(prediction_frame(train.iloc[val_clips[k]], p, decode_thresholds(p, r.alpha, r.beta)))
    rows += fold_rows + _summary_rows(fs, model, "baseline", fold_rows)
    pscore, pepoch, pr = best_pooled
    rows.append(_row(fs, model, "baseline", "pooled", pepoch, pr.alpha, pr.beta,
                     [pr.acc_presence, pr.acc_salience, pr.score], int(sum(len(v) for v in val_clips))))
    test_frame = None
    if test is not None and len(test) and test_outputs is not None:
        test_truth = test["label_index"].to_numpy(dtype=np.int64) if test["label_index"].notna().all() else None
        for rule, fold in (("paper", "test"), ("pooled", "test-pooled")):
            if rule not in rules or test_truth is None:
                continue
            ru = rules[rule]
            p = np.asarray(ru["probs"] if "probs" in ru else test_outputs[ru["epoch"] - 1], dtype=np.float64)
            s = score_indices(test_truth, decode_thresholds(p, ru["alpha"], ru["beta"]))
            rows.append(_row(fs, model, "baseline", fold, ru["epoch"], ru["alpha"], ru["beta"],
                             [s.acc_presence, s.acc_salience, s.score], len(test_truth)))
        ru = rules[submission_rule]
        p = np.asarray(ru["probs"] if "probs" in ru else test_outputs[ru["epoch"] - 1], dtype=np.float64)
        test_frame = prediction_frame(test, p, decode_thresholds(p, ru["alpha"], ru["beta"]))
    grids = {
        "alphas": pr.alphas, "betas": pr.betas, "presence": np.stack(presence), "salience": np.stack(salience),
        "folds": np.array(list(fold_ids)), "epoch": np.array([b[1] for b in best]),
        "alpha": np.array([b[2].alpha for b in best]), "beta": np.array([b[2].beta for b in best]),
        "pooled_presence": pr.presence_grid, "pooled_salience": pr.salience_grid,
        "pooled_alpha": np.array(pr.alpha), "pooled_beta": np.array(pr.beta), "pooled_epoch": np.array(pepoch),
    }
    return BaselineTables(rows, curves, grids, pd.concat(val_frames, ignore_index=True), test_frame)


def format_results(rows: Sequence[dict]) -> pd.DataFrame:
    """``results.csv``'s table: the columns in order, accuracies rounded to 12 digits (a std of equal values -> 0)."""
    results = pd.DataFrame(list(rows), columns=RESULT_COLUMNS)
    num = ["alpha", "beta", "acc_presence", "acc_salience", "score"]
    results[num] = results[num].astype(float).round(12)
    return results
