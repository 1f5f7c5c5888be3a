"""A synthetic run folder in the run-folder format, to preview and test the report.

:func:`write_sample_run` writes what ``blemore benchmark`` writes (``config.json``,
``results.csv``, ``results.md``, ``curves.csv``, ``predictions/``, ``grids/``,
``clip_features/`` and, on request, ``compare.csv``), filled with random but
plausible, mutually consistent values: the accuracies in ``results.csv`` are
those of the probabilities in ``predictions/`` decoded with the thresholds in
``results.csv``; the threshold surfaces in ``grids/`` are computed from the same
probabilities. Nothing here is a result; it is a stand-in with the right shape.

>>> import tempfile, pathlib
>>> run = write_sample_run(pathlib.Path(tempfile.mkdtemp()) / "run", n_actors=5)
>>> sorted(p.name for p in run.iterdir())[:3]
['clip_features', 'config.json', 'curves.csv']
"""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from blemore.decoding import decode_thresholds
from blemore.labels import (
    BLEND_EMOTIONS,
    EMOTIONS,
    IS_BLEND,
    LABEL_INDEX,
    LABEL_NAMES,
    SOFT_VECTORS,
    label_from_parts,
)
from blemore.metrics import score_indices

__all__ = ["write_sample_run", "SAMPLE_PARTS"]

#: The parts :func:`write_sample_run` can write (``parts=`` picks a subset).
SAMPLE_PARTS: tuple[str, ...] = (
    "config",
    "results",
    "curves",
    "predictions",
    "grids",
    "clip_features",
)
_GRID = np.linspace(0.05, 0.95, 20)
_N_FOLDS = 5


def _sample_names(n_actors: int) -> tuple[list[str], list[str]]:
    names, actors = [], []
    for a in range(n_actors):
        actor = f"A{101 + a}"
        for e in BLEND_EMOTIONS:
            for level in (1, 2):
                names.append(f"{actor}_{e}_int{level}_ver1")
        names.append(f"{actor}_neu_sit1_ver1")
        for e1, e2 in combinations(BLEND_EMOTIONS, 2):
            for s1, s2 in ((50, 50), (70, 30), (30, 70)):
                names.append(f"{actor}_mix_{e1}_{e2}_{s1}_{s2}_ver1")
        actors += [actor] * (len(names) - len(actors))
    return names, actors


def _label_of(name: str) -> int:
    parts = name.split("_")
    if parts[1] == "mix":
        e1, e2, s1, s2 = parts[2:6]
        return LABEL_INDEX[label_from_parts([(e1, int(s1)), (e2, int(s2))]).name]
    return LABEL_INDEX[parts[1]]


def _decode(probs: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    return decode_thresholds(probs, float(alpha), float(beta))


def _scores(truth: np.ndarray, pred: np.ndarray) -> tuple[float, float, float]:
    if len(truth) == 0:
        return float("nan"), float("nan"), float("nan")
    s = score_indices(truth, pred)
    return s.acc_presence, s.acc_salience, s.score


def _grid(probs: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    presence = np.zeros((len(_GRID), len(_GRID)))
    salience = np.zeros_like(presence)
    for a, alpha in enumerate(_GRID):
        for b, beta in enumerate(_GRID):
            presence[a, b], salience[a, b], _ = _scores(truth, _decode(probs, alpha, beta))
    return presence, salience


def _probabilities(
    truth: np.ndarray, noise: np.ndarray, strength: float, rng: np.random.Generator
) -> np.ndarray:
    """The soft target blurred towards random Dirichlet draws; weaker models and harder actors blur more."""
    w = np.clip(noise / strength, 0.02, 0.98)[:, None]
    return (1 - w) * SOFT_VECTORS[truth] + w * rng.dirichlet(np.full(6, 0.6), size=len(truth))


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
) -> Path:
    """Write a synthetic run folder at ``run`` and return its path.

    Parameters
    ----------
    run
        Folder to create (its parents too); existing files are overwritten.
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
        Whether the test predictions carry the true label (the ``label`` column
        is empty otherwise and the test rows of ``results.csv`` are NaN).
    parts
        Which of :data:`SAMPLE_PARTS` to write.
    compare
        Also write ``compare.csv`` (method comparison with bootstrap intervals).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> run = write_sample_run(pathlib.Path(tempfile.mkdtemp()), n_actors=5, parts=["results"])
    >>> sorted(p.name for p in run.iterdir())
    ['results.csv', 'results.md']
    """
    parts = set(parts)
    unknown = parts - set(SAMPLE_PARTS)
    if unknown:
        raise ValueError(f"unknown sample parts {sorted(unknown)}; choose from {list(SAMPLE_PARTS)}")
    if n_actors < _N_FOLDS:
        raise ValueError(f"n_actors={n_actors} is fewer than the {_N_FOLDS} folds")
    rng = np.random.default_rng(seed)
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)

    names, actors = _sample_names(n_actors)
    truth = np.array([_label_of(n) for n in names], dtype=np.int64)
    actor_ids = sorted(set(actors))
    actor_fold = {a: i % _N_FOLDS for i, a in enumerate(rng.permutation(actor_ids))}
    folds = np.array([actor_fold[a] for a in actors])
    actor_noise = {a: rng.uniform(0.35, 0.95) for a in actor_ids}
    noise = np.array([actor_noise[a] for a in actors])
    test_truth = rng.integers(0, len(LABEL_NAMES), size=n_test)
    test_noise = rng.uniform(0.35, 0.95, size=n_test)
    test_names = [f"test_{i + 1:04d}" for i in range(n_test)]

    results: list[dict] = []
    curves: list[dict] = []
    for f_i, feature_set in enumerate(feature_sets):
        for m_i, model in enumerate(models):
            strength = 1.0 + 0.2 * f_i + 0.15 * m_i
            probs = _probabilities(truth, noise, strength, rng)
            test_probs = _probabilities(test_truth, test_noise, strength, rng)
            pred = np.zeros(len(names), dtype=np.int64)
            presence_grid = np.zeros((_N_FOLDS, len(_GRID), len(_GRID)))
            salience_grid = np.zeros_like(presence_grid)
            chosen = np.zeros((_N_FOLDS, 2))
            rows = []
            for k in range(_N_FOLDS):
                sel = folds == k
                presence_grid[k], salience_grid[k] = _grid(probs[sel], truth[sel])
                a, b = np.unravel_index(
                    np.argmax(presence_grid[k] + salience_grid[k]), presence_grid[k].shape
                )
                chosen[k] = _GRID[a], _GRID[b]
                pred[sel] = _decode(probs[sel], *chosen[k])
                p, s, sc = _scores(truth[sel], pred[sel])
                epoch = int(rng.integers(n_epochs // 3, n_epochs + 1))
                rows.append(
                    dict(
                        fold=str(k),
                        epoch=epoch,
                        alpha=chosen[k, 0],
                        beta=chosen[k, 1],
                        acc_presence=p,
                        acc_salience=s,
                        score=sc,
                        n_clips=int(sel.sum()),
                    )
                )
                curves += _curve(feature_set, model, k, n_epochs, epoch, (p, s), chosen[k], rng)
            results += _summary_rows(feature_set, model, "baseline", rows)
            mean_ab = chosen.mean(axis=0)
            test_pred = _decode(test_probs, *mean_ab)
            pooled_ab = _GRID[
                np.array(np.unravel_index(np.argmax(sum(_grid(probs, truth))), (len(_GRID), len(_GRID))))
            ]
            pooled_pred = _decode(test_probs, *pooled_ab)
            for fold, ab, tp in (("test", mean_ab, test_pred), ("test-pooled", pooled_ab, pooled_pred)):
                p, s, sc = _scores(test_truth, tp) if test_labels else (np.nan,) * 3
                results.append(
                    dict(
                        feature_set=feature_set,
                        model=model,
                        method="baseline",
                        fold=fold,
                        epoch=int(np.median([r["epoch"] for r in rows])),
                        alpha=ab[0],
                        beta=ab[1],
                        acc_presence=p,
                        acc_salience=s,
                        score=sc,
                        n_clips=n_test,
                    )
                )
            stem = f"{feature_set}__{model}"
            if "predictions" in parts:
                (run / "predictions").mkdir(exist_ok=True)
                _prediction_table(names, actors, folds, truth, probs, pred).to_csv(
                    run / "predictions" / f"{stem}__val.csv", index=False
                )
                if n_test:
                    _prediction_table(
                        test_names,
                        [""] * n_test,
                        [None] * n_test,
                        test_truth if test_labels else None,
                        test_probs,
                        test_pred,
                    ).to_csv(run / "predictions" / f"{stem}__test.csv", index=False)
            if "grids" in parts:
                (run / "grids").mkdir(exist_ok=True)
                np.savez(
                    run / "grids" / f"{stem}.npz",
                    alphas=_GRID,
                    betas=_GRID,
                    presence=presence_grid,
                    salience=salience_grid,
                    alpha=chosen[:, 0],
                    beta=chosen[:, 1],
                )

    results += _trivial_rows(truth, folds, test_truth if test_labels else None, n_test)
    if "results" in parts:
        from blemore.protocol.results import RESULT_COLUMNS

        table = pd.DataFrame(results)[RESULT_COLUMNS]
        table.to_csv(run / "results.csv", index=False)
        (run / "results.md").write_text(_markdown(table))
    if "curves" in parts:
        pd.DataFrame(curves).to_csv(run / "curves.csv", index=False)
    if "clip_features" in parts:
        (run / "clip_features").mkdir(exist_ok=True)
        all_names = names + test_names
        all_truth = np.concatenate([truth, test_truth]) if n_test else truth
        for f_i, feature_set in enumerate(feature_sets):
            dim = 24 + 8 * f_i
            basis = rng.normal(size=(6, dim))
            offsets = {a: rng.normal(scale=0.8, size=dim) for a in actor_ids + [""]}
            X = SOFT_VECTORS[all_truth] @ basis * 2.0
            X += np.stack([offsets[a] for a in actors + [""] * n_test])
            X += rng.normal(scale=0.7, size=X.shape)
            X = X * rng.uniform(0.1, 50, size=dim) + rng.normal(scale=10, size=dim)
            labels = [LABEL_NAMES[t] for t in truth] + (
                [LABEL_NAMES[t] for t in test_truth] if test_labels else [""] * n_test
            )
            np.savez(
                run / "clip_features" / f"{feature_set}.npz",
                X=X.astype(np.float32),
                filenames=np.array(all_names),
                labels=np.array(labels),
                actors=np.array(actors + [""] * n_test),
            )
    if "config" in parts:
        config = {
            "command": "blemore benchmark --features "
            + ",".join(feature_sets)
            + " --models "
            + ",".join(models),
            "seed": seed,
            "feature_sets": list(feature_sets),
            "models": list(models),
            "epochs": n_epochs,
            "folds": _N_FOLDS,
            "selection": "epoch and thresholds by mean validation score over folds",
            "versions": {"blemore": "0.1.0", "numpy": np.__version__, "pandas": pd.__version__},
            "created": "2026-01-01T00:00:00+00:00",
            "note": "synthetic run written by blemore.report.sample.write_sample_run",
        }
        (run / "config.json").write_text(json.dumps(config, indent=2))
    if compare:
        _write_compare(run, feature_sets, models, rng)
    return run


def _summary_rows(feature_set: str, model: str, method: str, rows: list[dict]) -> list[dict]:
    table = pd.DataFrame(rows)
    out = [dict(feature_set=feature_set, model=model, method=method, **r) for r in rows]
    for stat in ("mean", "std"):
        row = dict(feature_set=feature_set, model=model, method=method, fold=stat)
        for col in ("epoch", "alpha", "beta", "acc_presence", "acc_salience", "score"):
            row[col] = getattr(table[col], stat)(ddof=0) if stat == "std" else table[col].mean()
        row["n_clips"] = int(table["n_clips"].sum())
        out.append(row)
    return out


def _trivial_rows(
    truth: np.ndarray, folds: np.ndarray, test_truth: np.ndarray | None, n_test: int
) -> list[dict]:
    out: list[dict] = []
    for method, candidates in (("majority-single", ~IS_BLEND), ("majority-blend", IS_BLEND)):
        rows = []
        for k in range(_N_FOLDS):
            train = truth[folds != k]
            counts = np.bincount(train, minlength=len(LABEL_NAMES)) * candidates
            guess = int(np.argmax(counts))
            sel = folds == k
            p, s, sc = _scores(truth[sel], np.full(sel.sum(), guess))
            rows.append(
                dict(
                    fold=str(k),
                    epoch=np.nan,
                    alpha=np.nan,
                    beta=np.nan,
                    acc_presence=p,
                    acc_salience=s,
                    score=sc,
                    n_clips=int(sel.sum()),
                )
            )
        out += _summary_rows("", "", method, rows)
        counts = np.bincount(truth, minlength=len(LABEL_NAMES)) * candidates
        guess = int(np.argmax(counts))
        p, s, sc = (
            _scores(test_truth, np.full(len(test_truth), guess)) if test_truth is not None else (np.nan,) * 3
        )
        out.append(
            dict(
                feature_set="",
                model="",
                method=method,
                fold="test",
                epoch=np.nan,
                alpha=np.nan,
                beta=np.nan,
                acc_presence=p,
                acc_salience=s,
                score=sc,
                n_clips=n_test,
            )
        )
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
        t = epoch / best
        rise = 1 - np.exp(-2.5 * t)
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


def _markdown(table: pd.DataFrame) -> str:
    lines = ["| feature set | model | method | fold | presence | salience | score |", "|---" * 7 + "|"]
    for r in table.itertuples():
        lines.append(
            f"| {r.feature_set} | {r.model} | {r.method} | {r.fold} | {r.acc_presence:.3f} | "
            f"{r.acc_salience:.3f} | {r.score:.3f} |"
        )
    return "\n".join(lines) + "\n"


def _write_compare(
    run: Path, feature_sets: Sequence[str], models: Sequence[str], rng: np.random.Generator
) -> None:
    rows = []
    for method in ("baseline", "structured-kl", "structured-expected"):
        for feature_set in feature_sets:
            for model in models:
                p, s = rng.uniform(0.45, 0.7), rng.uniform(0.1, 0.3)
                score = 0.5 * (p + s)
                half = rng.uniform(0.02, 0.05)
                rows.append(
                    dict(
                        method=method,
                        feature_set=feature_set,
                        model=model,
                        acc_presence=p,
                        acc_salience=s,
                        score=score,
                        ci_low=score - half,
                        ci_high=score + half * 1.1,
                    )
                )
    pd.DataFrame(rows).to_csv(run / "compare.csv", index=False)
