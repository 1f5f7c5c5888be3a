"""The methods part of a sample run: the methods table, the choice, models, test predictions, zips.

:func:`write_sample_methods` writes what ``blemore benchmark --methods ...`` adds to a run
folder: ``compare.csv`` and ``paired.csv`` (scores with bootstrap intervals over actors, from
:mod:`blemore.protocol.stats`), ``best.json`` (chosen by
:func:`blemore.protocol.methods_table.choose_best`), ``models/<stem>/model.json`` (no weights),
``test_predictions/<stem>.csv``, ``submission/<stem>.zip`` and ``actors.json``, and, once the
test clips are scored as ``blemore demo`` does, ``test_scores.json``. Each method's
predictions are fresh draws, a little stronger than the baseline's (:data:`SAMPLE_METHODS`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from blemore.decoding import decode_thresholds
from blemore.labels import EMOTIONS, IS_BLEND, LABEL_NAMES
from blemore.protocol.challenge import challenge_predictions
from blemore.protocol.methods import Configuration
from blemore.protocol.methods_table import COMPARE_COLUMNS, PAIRED_COLUMNS, choose_best
from blemore.protocol.runfolder import RunFolder
from blemore.protocol.stats import bootstrap_ci, outcomes, paired_test
from blemore.report.sample_data import (
    COARSE,
    N_FOLDS,
    BaselineCombo,
    SampleClips,
    best_cell,
    clip_scores,
    probabilities,
    threshold_grid,
)
from blemore.submission import write_submission_zip

__all__ = ["write_sample_methods", "SAMPLE_METHODS"]

#: The methods of the sample's methods table and how much each helps.
SAMPLE_METHODS: dict[str, float] = {"baseline": 0.0, "structured": 0.05, "actor-norm": 0.3, "ensemble": 0.15}
_N_BOOT = 200


@dataclass
class _Method:
    """One configuration of the sample's methods table and what it predicts."""

    key: tuple[str, str, str]
    val_pred: np.ndarray
    test_probs: np.ndarray
    test_pred: np.ndarray
    thresholds: np.ndarray
    paper_test_pred: np.ndarray | None = None
    actor_models: list[str] = field(default_factory=list)

    @property
    def stem(self) -> str:
        return Configuration(*self.key, ()).stem


def _method_configs(
    combos: list[BaselineCombo], clips: SampleClips, rng: np.random.Generator
) -> list[_Method]:
    """Every configuration: the baseline's own predictions, the other methods' fresh (a little stronger)."""
    out = []
    for method, bonus in SAMPLE_METHODS.items():
        models = dict.fromkeys(c.model for c in combos)
        targets = (
            [(c.feature_set, c.model, c.strength) for c in combos]
            if method != "ensemble"
            else [
                (
                    ", ".join(dict.fromkeys(c.feature_set for c in combos)),
                    m,
                    max(c.strength for c in combos if c.model == m),
                )
                for m in models
            ]
        )
        for fs, model, strength in targets:
            if method == "baseline":
                combo = next(c for c in combos if (c.feature_set, c.model) == (fs, model))
                probs, test_probs, ab = combo.probs, combo.test_probs, combo.pooled
                paper = decode_thresholds(test_probs, *combo.chosen.mean(axis=0))
            else:
                probs = probabilities(clips.truth, clips.noise, strength + bonus, rng)
                test_probs = probabilities(clips.test_truth, clips.test_noise, strength + bonus, rng)
                ab, paper = best_cell(*threshold_grid(probs, clips.truth, COARSE), COARSE), None
            out.append(
                _Method(
                    (method, fs, model),
                    decode_thresholds(probs, *ab),
                    test_probs,
                    decode_thresholds(test_probs, *ab),
                    ab,
                    paper,
                    [fs] if method == "actor-norm" else [],
                )
            )
    return out


def _ci_row(
    key: tuple[str, str, str],
    split: str,
    selection: str,
    truth: np.ndarray,
    pred: np.ndarray,
    groups: Sequence[str],
    shift: float,
    seed: int,
) -> dict:
    ci = bootstrap_ci(outcomes(truth, pred, groups), n_boot=_N_BOOT, seed=seed)
    p, s = ci["acc_presence"] + shift, ci["acc_salience"] + shift
    return dict(
        zip(("method", "feature_set", "model"), key),
        split=split,
        selection=selection,
        epoch=10.0,
        acc_presence=p,
        acc_salience=s,
        score=0.5 * (p + s),
        ci_low=ci["score_low"] + shift,
        ci_high=ci["score_high"] + shift,
        presence_ci_low=ci["acc_presence_low"] + shift,
        presence_ci_high=ci["acc_presence_high"] + shift,
        salience_ci_low=ci["acc_salience_low"] + shift,
        salience_ci_high=ci["acc_salience_high"] + shift,
        gap=np.nan,
        n_clips=len(truth),
        n_blends=int(IS_BLEND[truth].sum()),
        n_actors=len(set(groups)),
        note="synthetic",
    )


def _compare_table(methods: list[_Method], clips: SampleClips, *, test_rows: bool, seed: int) -> pd.DataFrame:
    """``compare.csv``: validation under each rule (pooled as scored, paper and nested shifted from it)."""
    rows = []
    for m in methods:
        for selection, shift in (("paper", 0.03), ("nested", -0.02), ("pooled", 0.0)):
            rows.append(_ci_row(m.key, "val", selection, clips.truth, m.val_pred, clips.actors, shift, seed))
        tests = [("pooled", m.test_pred)] + (
            [("paper", m.paper_test_pred)] if m.paper_test_pred is not None else []
        )
        for selection, pred in tests if test_rows else []:
            rows.append(
                _ci_row(m.key, "test", selection, clips.test_truth, pred, clips.test_names, 0.0, seed)
            )
    return pd.DataFrame(rows).reindex(columns=COMPARE_COLUMNS)


def _paired_table(methods: list[_Method], clips: SampleClips, seed: int) -> pd.DataFrame:
    """``paired.csv``: every other method against the baseline of its model, pooled rule, over actors."""
    base = {m.key[2]: m for m in methods if m.key[0] == "baseline"}
    rows = []
    for m in methods:
        ref = next(
            (b for b in methods if b.key[0] == "baseline" and b.key[1:] == m.key[1:]), base.get(m.key[2])
        )
        if m.key[0] == "baseline" or ref is None:
            continue
        r = paired_test(
            outcomes(clips.truth, m.val_pred, clips.actors),
            outcomes(clips.truth, ref.val_pred, clips.actors),
            n_boot=_N_BOOT,
            n_perm=_N_BOOT,
            seed=seed,
        )
        for selection in ("paper", "nested", "pooled"):
            rows.append(
                dict(
                    zip(("method", "feature_set", "model"), m.key),
                    split="val",
                    selection=selection,
                    **dict(zip(("reference_method", "reference_feature_set", "reference_model"), ref.key)),
                    diff_score=r.diff,
                    ci_low=r.ci_low,
                    ci_high=r.ci_high,
                    p_value=r.p_value,
                    diff_presence=r.diff_presence,
                    diff_salience=r.diff_salience,
                    n_clips=r.n_clips,
                    n_actors=r.n_groups,
                )
            )
    return pd.DataFrame(rows).reindex(columns=PAIRED_COLUMNS)


def _write_method(folder: RunFolder, m: _Method, clips: SampleClips, validation: dict[str, float]) -> None:
    """``models/<stem>/model.json`` (no weights), and with test clips the predictions and the zip."""
    folder.write_json(
        f"models/{m.stem}/model.json",
        {
            "format": "blemore-model",
            "version": 1,
            "method": m.key[0],
            "feature_set": m.key[1],
            "model": m.key[2],
            "rules": {"pooled": {"epoch": 10, "params": [float(m.thresholds[0]), float(m.thresholds[1])]}},
            "validation": validation,
            "actor_models": m.actor_models,
            "note": "synthetic sample: no weights, `blemore predict` cannot apply it",
        },
    )
    if not clips.test_names:
        return
    for suffix, pred in (("", m.test_pred), (".paper", m.paper_test_pred)):
        if pred is None:
            continue
        frame = pd.DataFrame({"filename": clips.test_names})
        for j, e in enumerate(EMOTIONS):
            frame[e] = m.test_probs[:, j]
        frame["pred_label"] = [LABEL_NAMES[i] for i in pred]
        folder.write_csv(f"test_predictions/{m.stem}{suffix}.csv", frame, index=False)
        preds = challenge_predictions(clips.test_names, pred)
        folder.write_with(
            f"submission/{m.stem}{suffix}.zip", lambda p, preds=preds: write_submission_zip(preds, p)
        )


def _actors_json(clips: SampleClips, methods: list[_Method], rng: np.random.Generator) -> dict:
    """Pseudo-actors as ``actors.json`` holds them; a fold of one actor has ARI 1.0 by construction."""
    out = {}
    per_fold = [sorted({a for a, f in zip(clips.actors, clips.folds) if f == k}) for k in range(N_FOLDS)]
    k = max(1, round(len(clips.test_names) / 41))
    for fs in dict.fromkeys(s for m in methods for s in m.actor_models):
        folds = [
            {
                "fold": i,
                "clips": int((clips.folds == i).sum()),
                "actors": len(a),
                "k": len(a),
                "ari": 1.0 if len(a) == 1 else float(rng.uniform(0.6, 1.0)),
            }
            for i, a in enumerate(per_fold)
        ]
        out[fs] = {
            "k": k,
            "k_rule": "test clips / median clips per training actor",
            "mean_ari_on_training_folds": float(np.mean([f["ari"] for f in folds])),
            "training_folds": folds,
            "method": "synthetic clustering",
            "test_actors": {c: f"pseudo-{i % k + 1:02d}" for i, c in enumerate(clips.test_names)},
        }
    return out


def _test_scores(methods: list[_Method], clips: SampleClips, run: Path) -> dict:
    """``test_scores.json`` as ``blemore demo`` writes it after scoring every zip on the held-out truth."""
    scores = []
    for m in methods:
        p, s, sc = clip_scores(clips.test_truth, m.test_pred)
        scores.append(
            dict(
                zip(("method", "feature_set", "model"), m.key),
                acc_presence=p,
                acc_salience=s,
                score=sc,
                n_clips=len(clips.test_names),
                missing=0,
                submission=str(run / f"submission/{m.stem}.zip"),
            )
        )
    return {"truth": "synthetic test labels", "scores": scores, "reports": {}}


def write_sample_methods(
    folder: RunFolder,
    clips: SampleClips,
    combos: list[BaselineCombo],
    *,
    test_labels: bool,
    scored: bool,
    seed: int,
    rng: np.random.Generator,
) -> None:
    methods = _method_configs(combos, clips, rng)
    compare = _compare_table(
        methods, clips, test_rows=test_labels and not scored and bool(clips.test_names), seed=seed
    )
    folder.write_csv("compare.csv", compare, index=False, float_format="%.6g")
    folder.write_csv("paired.csv", _paired_table(methods, clips, seed), index=False, float_format="%.6g")
    val = compare[compare["split"] == "val"]
    for m in methods:
        rows = val[
            (val["method"] == m.key[0]) & (val["feature_set"] == m.key[1]) & (val["model"] == m.key[2])
        ]
        _write_method(folder, m, clips, {str(r.selection): float(r.score) for r in rows.itertuples()})
    best = choose_best(compare, [m.key for m in methods])
    stem = Configuration(
        best["chosen"]["method"], best["chosen"]["feature_set"], best["chosen"]["model"], ()
    ).stem
    best |= {"stem": stem, "submission": f"submission/{stem}.zip" if clips.test_names else None}
    folder.write_json("best.json", best)
    if clips.test_names and any(m.actor_models for m in methods):
        folder.write_json("actors.json", _actors_json(clips, methods, rng))
    if scored:
        folder.write_json("test_scores.json", _test_scores(methods, clips, folder.out))
