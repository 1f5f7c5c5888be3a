"""A synthetic run folder in the run-folder format, to preview and test the report.

:func:`write_sample_run` writes, through the one writer of run folders
(:class:`~blemore.protocol.runfolder.RunFolder`), what ``blemore benchmark`` writes:
``config.json``, ``results.csv``, ``results.md``, ``curves.csv``, ``predictions/``,
``grids/``, ``clip_features/`` and, with ``compare=True``, the methods part: ``compare.csv``,
``paired.csv``, ``best.json`` (chosen by :func:`blemore.protocol.methods_table.choose_best`),
``models/<stem>/model.json``, ``test_predictions/<stem>.csv``, ``submission/<stem>.zip``,
``actors.json`` and, with ``scored=True``, ``test_scores.json`` as ``blemore demo`` leaves it.
Values are random but plausible and mutually consistent: the accuracies in ``results.csv``
are those of the probabilities in ``predictions/`` decoded with the thresholds in
``results.csv``; the threshold surfaces in ``grids/`` are computed from the same
probabilities; the methods' scores are those of their predictions. Nothing here is a
result: the models hold no weights (``blemore predict`` cannot apply them). The dataset is
:mod:`blemore.report.sample_data`'s, the methods part :mod:`blemore.report.sample_methods`'.

>>> import tempfile, pathlib
>>> run = write_sample_run(pathlib.Path(tempfile.mkdtemp()) / "run", n_actors=5)
>>> sorted(p.name for p in run.iterdir())[:3]
['.blemore-run.json', 'clip_features', 'config.json']
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from blemore.decoding import decode_thresholds
from blemore.labels import EMOTIONS, LABEL_NAMES, SOFT_VECTORS
from blemore.protocol.results import RESULT_COLUMNS, markdown_table, trivial_rows
from blemore.protocol.runfolder import RunFolder
from blemore.report.sample_data import (
    GRID,
    N_FOLDS,
    BaselineCombo,
    SampleClips,
    best_cell,
    clip_scores,
    probabilities,
    sample_clips,
    threshold_grid,
)
from blemore.report.sample_methods import SAMPLE_METHODS, write_sample_methods

__all__ = ["write_sample_run", "SAMPLE_PARTS", "SAMPLE_METHODS"]

#: The parts :func:`write_sample_run` can write (``parts=`` picks a subset).
SAMPLE_PARTS: tuple[str, ...] = ("config", "results", "curves", "predictions", "grids", "clip_features")


# --------------------------------------------------------------------------------------------- the baseline


def _fit_combo(
    clips: SampleClips, feature_set: str, model: str, strength: float, n_epochs: int, rng: np.random.Generator
) -> tuple[BaselineCombo, np.ndarray, np.ndarray, list[dict]]:
    """A baseline combination: per-fold threshold grids and choices; returns it, the grids and its curves."""
    probs = probabilities(clips.truth, clips.noise, strength, rng)
    test_probs = probabilities(clips.test_truth, clips.test_noise, strength, rng)
    combo = BaselineCombo(
        feature_set,
        model,
        strength,
        probs,
        test_probs,
        np.zeros(len(probs), dtype=np.int64),
        np.zeros((N_FOLDS, 2)),
        best_cell(*threshold_grid(probs, clips.truth)),
    )
    presence = np.zeros((N_FOLDS, len(GRID), len(GRID)))
    salience = np.zeros_like(presence)
    curves: list[dict] = []
    for k in range(N_FOLDS):
        sel = clips.folds == k
        presence[k], salience[k] = threshold_grid(probs[sel], clips.truth[sel])
        combo.chosen[k] = best_cell(presence[k], salience[k])
        combo.pred[sel] = decode_thresholds(probs[sel], *combo.chosen[k])
        p, s, sc = clip_scores(clips.truth[sel], combo.pred[sel])
        epoch = int(rng.integers(n_epochs // 3, n_epochs + 1))
        combo.rows.append(
            dict(
                fold=str(k),
                epoch=epoch,
                alpha=combo.chosen[k, 0],
                beta=combo.chosen[k, 1],
                acc_presence=p,
                acc_salience=s,
                score=sc,
                n_clips=int(sel.sum()),
            )
        )
        curves += _curve(feature_set, model, k, n_epochs, epoch, (p, s), combo.chosen[k], rng)
    return combo, presence, salience, curves


def _combo_rows(combo: BaselineCombo, clips: SampleClips, test_labels: bool) -> list[dict]:
    """``results.csv`` rows of a baseline combination: folds, mean, std, test (paper rule), test-pooled."""
    rows = _summary_rows(combo.feature_set, combo.model, "baseline", combo.rows)
    n_test = len(clips.test_names)
    for fold, ab in (("test", combo.chosen.mean(axis=0)), ("test-pooled", combo.pooled)):
        pred = decode_thresholds(combo.test_probs, *ab)
        p, s, sc = clip_scores(clips.test_truth, pred) if test_labels else (np.nan,) * 3
        rows.append(
            dict(
                feature_set=combo.feature_set,
                model=combo.model,
                method="baseline",
                fold=fold,
                epoch=int(np.median([r["epoch"] for r in combo.rows])),
                alpha=ab[0],
                beta=ab[1],
                acc_presence=p,
                acc_salience=s,
                score=sc,
                n_clips=n_test,
            )
        )
    return rows


def _write_combo_files(
    folder: RunFolder,
    combo: BaselineCombo,
    clips: SampleClips,
    grids: tuple[np.ndarray, np.ndarray],
    parts: set[str],
    test_labels: bool,
) -> None:
    stem = f"{combo.feature_set}__{combo.model}"
    if "predictions" in parts:
        folder.write_csv(
            f"predictions/{stem}__val.csv",
            _prediction_table(clips.names, clips.actors, clips.folds, clips.truth, combo.probs, combo.pred),
            index=False,
        )
        if clips.test_names:
            test_pred = decode_thresholds(combo.test_probs, *combo.chosen.mean(axis=0))
            n = len(clips.test_names)
            folder.write_csv(
                f"predictions/{stem}__test.csv",
                _prediction_table(
                    clips.test_names,
                    [""] * n,
                    [None] * n,
                    clips.test_truth if test_labels else None,
                    combo.test_probs,
                    test_pred,
                ),
                index=False,
            )
    if "grids" in parts:
        folder.save_npz(
            f"grids/{stem}.npz",
            alphas=GRID,
            betas=GRID,
            presence=grids[0],
            salience=grids[1],
            alpha=combo.chosen[:, 0],
            beta=combo.chosen[:, 1],
        )


def _write_baseline(
    folder: RunFolder,
    clips: SampleClips,
    feature_sets: Sequence[str],
    models: Sequence[str],
    n_epochs: int,
    parts: set[str],
    test_labels: bool,
    rng: np.random.Generator,
) -> list[BaselineCombo]:
    """Every baseline combination's files, ``results.csv``, ``results.md`` and ``curves.csv``."""
    combos, results, curves = [], [], []
    for f_i, feature_set in enumerate(feature_sets):
        for m_i, model in enumerate(models):
            combo, presence, salience, combo_curves = _fit_combo(
                clips, feature_set, model, 1.0 + 0.2 * f_i + 0.15 * m_i, n_epochs, rng
            )
            combos.append(combo)
            curves += combo_curves
            results += _combo_rows(combo, clips, test_labels)
            _write_combo_files(folder, combo, clips, (presence, salience), parts, test_labels)
    results += trivial_rows(
        clips.truth,
        clips.folds,
        list(range(N_FOLDS)),
        clips.test_truth if test_labels and clips.test_names else None,
    )
    if "results" in parts:
        table = pd.DataFrame(results)[RESULT_COLUMNS]
        folder.write_csv("results.csv", table, index=False)
        folder.write_text("results.md", markdown_table(table))
    if "curves" in parts:
        folder.write_csv("curves.csv", pd.DataFrame(curves), index=False)
    return combos


def _summary_rows(feature_set: str, model: str, method: str, rows: list[dict]) -> list[dict]:
    table = pd.DataFrame(rows)
    out = [dict(feature_set=feature_set, model=model, method=method, **r) for r in rows]
    for stat in ("mean", "std"):
        row = dict(feature_set=feature_set, model=model, method=method, fold=stat)
        for col in ("epoch", "alpha", "beta", "acc_presence", "acc_salience", "score"):
            row[col] = table[col].std(ddof=1) if stat == "std" else table[col].mean()
        row["n_clips"] = int(table["n_clips"].sum())
        out.append(row)
    return out


def _curve(
    feature_set: str,
    model: str,
    fold: int,
    n_epochs: int,
    best: int,
    final: tuple[float, float],
    ab: np.ndarray,
    rng: np.random.Generator,
) -> list[dict]:
    rows = []
    for epoch in range(1, n_epochs + 1):
        rise = 1 - np.exp(-2.5 * epoch / best)
        rows.append(
            dict(
                feature_set=feature_set,
                model=model,
                fold=fold,
                epoch=epoch,
                train_loss=0.35 + 0.9 * np.exp(-epoch / 6) + rng.normal(scale=0.01),
                val_loss=0.55
                + 0.7 * np.exp(-epoch / 5)
                + 0.004 * max(0, epoch - best) ** 1.5
                + rng.normal(scale=0.015),
                acc_presence=float(np.clip(final[0] * rise + rng.normal(scale=0.015), 0, 1)),
                acc_salience=float(np.clip(final[1] * rise + rng.normal(scale=0.01), 0, 1)),
                alpha=float(np.clip(ab[0] + rng.normal(scale=0.05), 0.05, 0.95)),
                beta=float(np.clip(ab[1] + rng.normal(scale=0.05), 0.05, 0.95)),
            )
        )
        rows[-1]["score"] = 0.5 * (rows[-1]["acc_presence"] + rows[-1]["acc_salience"])
    return rows


def _prediction_table(
    names: Sequence[str],
    actors: Sequence[str],
    folds: Sequence,
    truth: np.ndarray | None,
    probs: np.ndarray,
    pred: np.ndarray,
) -> pd.DataFrame:
    table = pd.DataFrame(
        {
            "filename": list(names),
            "actor": list(actors),
            "fold": pd.array([None if f is None else int(f) for f in folds], dtype="Int64"),
            "label": [LABEL_NAMES[t] for t in truth] if truth is not None else [""] * len(names),
        }
    )
    for j, e in enumerate(EMOTIONS):
        table[e] = probs[:, j]
    table["pred_label"] = [LABEL_NAMES[p] for p in pred]
    return table


# --------------------------------------------------------------------------------------------- other parts


def _write_clip_features(
    folder: RunFolder,
    clips: SampleClips,
    feature_sets: Sequence[str],
    test_labels: bool,
    rng: np.random.Generator,
) -> None:
    n_test = len(clips.test_names)
    all_truth = np.concatenate([clips.truth, clips.test_truth]) if n_test else clips.truth
    labels = [LABEL_NAMES[t] for t in clips.truth] + (
        [LABEL_NAMES[t] for t in clips.test_truth] if test_labels else [""] * n_test
    )
    for f_i, feature_set in enumerate(feature_sets):
        dim = 24 + 8 * f_i
        basis = rng.normal(size=(6, dim))
        offsets = {a: rng.normal(scale=0.8, size=dim) for a in clips.actor_ids + [""]}
        X = SOFT_VECTORS[all_truth] @ basis * 2.0
        X += np.stack([offsets[a] for a in clips.actors + [""] * n_test])
        X += rng.normal(scale=0.7, size=X.shape)
        X = X * rng.uniform(0.1, 50, size=dim) + rng.normal(scale=10, size=dim)
        folder.save_npz(
            f"clip_features/{feature_set}.npz",
            X=X.astype(np.float32),
            filenames=np.array(clips.names + clips.test_names),
            labels=np.array(labels),
            actors=np.array(clips.actors + [""] * n_test),
        )


def _write_config(
    folder: RunFolder, seed: int, feature_sets: Sequence[str], models: Sequence[str], n_epochs: int
) -> None:
    folder.write_json(
        "config.json",
        {
            "command": f"blemore benchmark --features {','.join(feature_sets)} --models {','.join(models)}",
            "seed": seed,
            "feature_sets": list(feature_sets),
            "models": list(models),
            "epochs": n_epochs,
            "folds": N_FOLDS,
            "selection": "epoch and thresholds by mean validation score over folds",
            "versions": {"blemore": "0.1.0", "numpy": np.__version__, "pandas": pd.__version__},
            "created": "2026-01-01T00:00:00+00:00",
            "note": "synthetic run written by blemore.report.sample.write_sample_run",
        },
    )


def _check_options(
    parts: Iterable[str], n_actors: int, scored: bool, test_labels: bool, n_test: int
) -> set[str]:
    chosen = set(parts)
    unknown = chosen - set(SAMPLE_PARTS)
    if unknown:
        raise ValueError(f"unknown sample parts {sorted(unknown)}; choose from {list(SAMPLE_PARTS)}")
    if n_actors < N_FOLDS:
        raise ValueError(f"n_actors={n_actors} is fewer than the {N_FOLDS} folds")
    if scored and not (test_labels and n_test):
        raise ValueError("scored=True needs labelled test clips (test_labels=True, n_test > 0)")
    return chosen


def write_sample_run(
    run: Path,
    *,
    seed: int = 0,
    n_actors: int = 15,
    feature_sets: Sequence[str] = ("opensmile", "facemesh"),
    models: Sequence[str] = ("linear", "mlp-256"),
    n_epochs: int = 20,
    n_test: int = 90,
    test_labels: bool = True,
    parts: Iterable[str] = SAMPLE_PARTS,
    compare: bool = False,
    scored: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write a synthetic run folder at ``run`` and return its path.

    Parameters
    ----------
    run
        Folder to create (its parents too); an existing sample run is replaced only with
        ``overwrite`` (the rules of :class:`~blemore.protocol.runfolder.RunFolder`).
    seed
        Seed of every random draw: the same seed writes the same files.
    n_actors
        Training actors (41 clips each: 2 intensities of each of five emotions, one
        neutral clip and the 30 blends), spread over 5 actor-disjoint folds.
    feature_sets, models
        The feature set x model grid of the run.
    n_epochs
        Epochs in ``curves.csv``.
    n_test
        Anonymised test clips (``test_0001`` ...); 0 for none.
    test_labels
        Whether the test clips' labels are known: the ``label`` column of the test
        predictions is filled, ``results.csv`` and ``compare.csv`` get test scores.
    parts
        Which of :data:`SAMPLE_PARTS` to write.
    compare
        Also write the methods part (:data:`SAMPLE_METHODS`): ``compare.csv``, ``paired.csv``,
        ``best.json``, ``models/``, ``test_predictions/``, ``submission/`` and, with test clips,
        ``actors.json``.
    scored
        Score the test clips afterwards as ``blemore demo`` does: their scores go to
        ``test_scores.json`` instead of ``compare.csv`` (needs ``compare`` and ``test_labels``).
    overwrite
        Replace an existing run at ``run``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> run = write_sample_run(pathlib.Path(tempfile.mkdtemp()), n_actors=5, parts=["results"])
    >>> sorted(p.name for p in run.iterdir())
    ['.blemore-run.json', 'results.csv', 'results.md']
    """
    chosen = _check_options(parts, n_actors, scored, test_labels, n_test)
    rng = np.random.default_rng(seed)
    clips = sample_clips(rng, n_actors, n_test)
    with RunFolder.create(Path(run), overwrite=overwrite) as folder:
        combos = _write_baseline(folder, clips, feature_sets, models, n_epochs, chosen, test_labels, rng)
        if "clip_features" in chosen:
            _write_clip_features(folder, clips, feature_sets, test_labels, rng)
        if "config" in chosen:
            _write_config(folder, seed, feature_sets, models, n_epochs)
        if compare:
            write_sample_methods(
                folder, clips, combos, test_labels=test_labels, scored=scored, seed=seed, rng=rng
            )
    return Path(run)
