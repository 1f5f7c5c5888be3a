"""What to submit and why: the section of the report that reads ``best.json``.

:func:`submit_section` shows the configuration to submit, its zip, why it was chosen (the
honest validation score with its interval against the best baseline's, the paired
difference from ``paired.csv``, the score under every selection rule and the deployed
thresholds from ``models/<stem>/model.json``), every candidate, and the label distribution of
its test predictions (``test_predictions/<stem>.csv``) beside the training labels'.
"""

from __future__ import annotations

import numpy as np

from blemore.labels import OTHER
from blemore.report import method_figures
from blemore.report.analysis import LABEL_KINDS, label_indices, label_shares
from blemore.report.layout import (
    DASH,
    Context,
    Section,
    as_float,
    config_label,
    esc,
    interval,
    note,
    num,
    pct,
    signed,
    table,
)
from blemore.report.rundata import Key, RunData, config_key

__all__ = ["submit_section"]


def _zip_line(data: RunData) -> str:
    rel = (data.best or {}).get("submission")
    if not rel:
        return note(
            "The run had no test clips, so there is no zip: apply the chosen configuration to the test "
            f"clips with <code>blemore predict {esc(data.run)} --method best ...</code>."
        )
    path = data.run / str(rel)
    if not path.is_file():
        return note(f"best.json names <code>{esc(rel)}</code>, but the file is not in the run folder.")
    return f'<p class="verdict">Submit <code>{esc(path.resolve())}</code></p>'


def _paired_line(data: RunData, chosen: Key, selection: str) -> str:
    """The paired difference of the chosen configuration to its baseline (``paired.csv``), if any."""
    paired = data.paired
    if paired is None or not {"split", "selection", "ci_low", "ci_high"} <= set(paired.columns):
        return ""
    rows = paired[
        (paired["method"] == chosen[0])
        & (paired["feature_set"] == chosen[1])
        & (paired["model"] == chosen[2])
        & (paired["split"] == "val")
        & (paired["selection"] == selection)
    ]
    if rows.empty:
        return ""
    r = rows.iloc[0]
    ref = " / ".join(
        str(r.get(c, "")) for c in ("reference_method", "reference_feature_set", "reference_model")
    )
    p = f", permutation p = {num(r['p_value'], '.3f')}" if "p_value" in r else ""
    return (
        f"<dt>paired difference</dt><dd>{signed(r['diff_score'])} points against {esc(ref)} "
        "on the same clips "
        f"(95 % interval over actors {signed(r['ci_low'])} to {signed(r['ci_high'])}{p})</dd>"
    )


def _rules_line(data: RunData, stem: str) -> str:
    info = data.models.get(stem, {})
    validation = info.get("validation") if isinstance(info.get("validation"), dict) else {}
    rules = info.get("rules") if isinstance(info.get("rules"), dict) else {}
    items = []
    if validation:
        shown = [f"{esc(k)} {pct(v)}" for k, v in validation.items()]
        items.append(
            f"<dt>validation by rule</dt><dd>{' · '.join(shown)} (paper: chosen on the reported fold, "
            "optimistic)</dd>"
        )
    for name, rule in rules.items():
        if isinstance(rule, dict):
            params = rule.get("params") or []
            ab = f", α {num(params[0])}, β {num(params[1])}" if len(params) == 2 else ""
            items.append(
                f"<dt>deployed ({esc(name)} rule)</dt><dd>epoch {esc(rule.get('epoch', DASH))}{ab}</dd>"
            )
    return "".join(items)


def _decision(data: RunData, chosen: Key) -> str:
    best = data.best or {}
    baseline = data.best_baseline()
    selection = str(best.get("selection", "validation"))
    c = best["chosen"]
    ref = best.get("best_baseline") if isinstance(best.get("best_baseline"), dict) else None
    items = [
        f"<dt>method</dt><dd><b>{esc(chosen[0])}</b></dd>",
        f"<dt>feature set</dt><dd>{esc(chosen[1])}</dd>",
        f"<dt>head</dt><dd>{esc(chosen[2])}</dd>",
        f"<dt>why</dt><dd>{esc(best.get('why', DASH))}</dd>",
        f"<dt>{esc(selection)} validation score</dt><dd><b>{pct(c.get('score'))}</b> "
        f"(95 % interval over actors {interval(c.get('ci_low'), c.get('ci_high'))})</dd>",
    ]
    if ref is not None and baseline is not None:
        same = " — the chosen configuration is the best baseline" if baseline == chosen else ""
        items.append(
            f"<dt>best baseline</dt><dd>{esc(config_label(baseline))}: {pct(ref.get('score'))} "
            f"({interval(ref.get('ci_low'), ref.get('ci_high'))}); difference "
            f"{signed(_difference(c.get('score'), ref.get('score')))} points{same}</dd>"
        )
    items.append(_paired_line(data, chosen, selection))
    items.append(_rules_line(data, data.chosen_stem() or ""))
    return f'<div class="choice">{_zip_line(data)}<dl class="config">{"".join(items)}</dl></div>'


def _difference(a: object, b: object) -> float:
    return as_float(a) - as_float(b)


def _candidates(data: RunData, chosen: Key) -> str:
    best = data.best or {}
    cands = [c for c in best.get("candidates") or [] if isinstance(c, dict) and "method" in c]
    if not cands:
        return ""
    baseline = data.best_baseline()
    order = sorted(
        range(len(cands)), key=lambda i: -np.nan_to_num(as_float(cands[i].get("score")), nan=-np.inf)
    )
    rows, focus = [], []
    for rank, i in enumerate(order, 1):
        c = cands[i]
        key = config_key(c)
        if key in (chosen, baseline):
            focus.append(rank - 1)
        role = "chosen" if key == chosen else "best baseline" if key == baseline else ""
        zip_ok = (data.run / "submission" / f"{data.stem_of(*key)}.zip").is_file()
        rows.append(
            [
                str(rank),
                esc(key[0]),
                esc(key[1]),
                esc(key[2]),
                f"<b>{pct(c.get('score'))}</b>",
                interval(c.get("ci_low"), c.get("ci_high")),
                "yes" if zip_ok else DASH,
                role,
            ]
        )
    body = table(
        ["rank", "method", "feature set", "model", "score", "interval", "zip", ""],
        rows,
        highlight=focus,
        caption="Validation score (%) of every configuration that can be deployed, under the rule that "
        "chose; interval: bootstrap 95 % over actors.",
    )
    return (
        f"<details><summary>All {len(cands)} candidates by {esc(best.get('selection', ''))} validation "
        f"score</summary>{body}</details>"
    )


def _training_labels(data: RunData) -> np.ndarray | None:
    """True labels of the training clips: any baseline's out-of-fold validation predictions hold them all."""
    for key in sorted(data.val_predictions):
        tab = data.val_predictions[key]
        if "label" in tab.columns:
            idx = label_indices(tab["label"].tolist())
            idx = idx[idx >= 0]
            if idx.size:
                return idx
    return None


def _predicted_labels(data: RunData, key: Key) -> np.ndarray | None:
    """Label indices of a configuration's test predictions (its zip's), if the run holds them."""
    tab = data.method_predictions.get(data.stem_of(*key))
    if tab is None:
        return None
    idx = label_indices(tab["pred_label"].tolist(), unknown=OTHER)
    return idx[idx >= 0]


def _shares_sentence(series: list[tuple[str, np.ndarray]]) -> str:
    parts = []
    for name, labels in series:
        kinds = label_shares(labels, by="kind")
        parts.append(f"{esc(name)}: {pct(1 - kinds[0])} % blends ({pct(kinds[1])} % {LABEL_KINDS[1]})")
    return "; ".join(parts)


def _distribution(ctx: Context, chosen: Key) -> str:
    data = ctx.data
    baseline = data.best_baseline()
    train = _training_labels(data)
    predicted = _predicted_labels(data, chosen)
    if predicted is None or not predicted.size:
        stem = data.chosen_stem() or ""
        return note(
            f"No test predictions of the chosen configuration (test_predictions/{esc(stem)}.csv), so "
            "their label distribution is not shown."
        )
    series = [] if train is None else [(f"training clips, true labels (n = {train.size})", train)]
    series.append((f"chosen ({config_label(chosen)}), test predictions (n = {predicted.size})", predicted))
    base = _predicted_labels(data, baseline) if baseline is not None and baseline != chosen else None
    if baseline is not None and base is not None and base.size:
        series.append((f"best baseline ({config_label(baseline)}), test predictions", base))
    missing = "" if train is not None else " The training labels were not found (predictions/*__val.csv)."
    return ctx.figs.html(
        method_figures.label_distribution_figure(series),
        alt="label distribution of the test predictions beside the training labels",
        css="wide",
        caption=(
            "What the chosen configuration predicts for the test clips, beside the training clips' labels "
            "(the "
            "test partition is built like the training one): share of singles and blends, of the 16 emotion "
            f"sets and of the 36 labels. {_shares_sentence(series)}. A predicted share far from the training "
            f"share (of blends, say) is worth a look before submitting.{missing}"
        ),
    )


def submit_section(ctx: Context) -> Section | None:
    """What to submit and why (``best.json``); None for a run without it."""
    chosen = ctx.data.chosen()
    if chosen is None:
        return None
    sec = Section("submit", "What to submit")
    sec.body = _decision(ctx.data, chosen) + _candidates(ctx.data, chosen) + _distribution(ctx, chosen)
    return sec
