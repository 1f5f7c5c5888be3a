"""Reading a run folder for the report, tolerating missing or broken parts.

A run folder (written by ``blemore benchmark``) holds ``config.json``,
``results.csv``, ``curves.csv``, ``predictions/<feature_set>__<model>__{val,test}.csv``,
``grids/<feature_set>__<model>.npz``, ``clip_features/<feature_set>.npz`` and,
from the method comparison, ``compare.csv``. Every part is optional: a part that
is absent is ``None`` (or an empty mapping), a part that cannot be read is left
out and the reason is kept in :attr:`RunData.problems`, so the report can say
why a section is missing instead of failing.

>>> import tempfile, pathlib
>>> from blemore.report.sample import write_sample_run
>>> data = load_run(write_sample_run(pathlib.Path(tempfile.mkdtemp()), n_actors=5))
>>> sorted(data.val_predictions)[0]
('facemesh', 'linear')
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from blemore.errors import BlemoreError
from blemore.labels import EMOTIONS

__all__ = [
    "RunData",
    "load_run",
    "RESULTS_COLUMNS",
    "CURVES_COLUMNS",
    "PREDICTION_COLUMNS",
    "COMPARE_COLUMNS",
    "COMPARE_TEXT_COLUMNS",
]

RESULTS_COLUMNS = ("feature_set", "model", "method", "fold", "acc_presence", "acc_salience", "score")
CURVES_COLUMNS = ("feature_set", "model", "fold", "epoch")
PREDICTION_COLUMNS = ("filename", *EMOTIONS)
COMPARE_COLUMNS = ("method", "feature_set", "model", "score", "ci_low", "ci_high")
#: Columns of ``compare.csv`` kept as text (the rest are numbers); split / selection / note are optional.
COMPARE_TEXT_COLUMNS = ("method", "feature_set", "model", "split", "selection", "note")
_KNOWN = ("config.json", "results.csv", "curves.csv", "predictions", "grids", "clip_features", "compare.csv")

Combo = tuple[str, str]


@dataclass
class RunData:
    """What the report found in a run folder.

    ``val_predictions`` / ``test_predictions`` / ``grids`` are keyed by
    ``(feature_set, model)``; ``clip_features`` maps a feature set to its
    ``.npz`` path (loaded when drawn, since it can be large). ``problems`` lists
    one line per part that exists but could not be used.
    """

    run: Path
    config: dict[str, Any] | None = None
    results: pd.DataFrame | None = None
    curves: pd.DataFrame | None = None
    val_predictions: dict[Combo, pd.DataFrame] = field(default_factory=dict)
    test_predictions: dict[Combo, pd.DataFrame] = field(default_factory=dict)
    grids: dict[Combo, dict[str, np.ndarray]] = field(default_factory=dict)
    clip_features: dict[str, Path] = field(default_factory=dict)
    compare: pd.DataFrame | None = None
    problems: list[str] = field(default_factory=list)

    def combos(self) -> list[Combo]:
        """Every (feature set, model) of the run's own method, in a stable order."""
        found: set[Combo] = set(self.val_predictions) | set(self.grids)
        if self.results is not None:
            own = self.results[~self.results["method"].isin(TRIVIAL_METHODS)]
            found |= {(str(f), str(m)) for f, m in zip(own["feature_set"], own["model"]) if f and m}
        if self.curves is not None:
            found |= {(str(f), str(m)) for f, m in zip(self.curves["feature_set"], self.curves["model"])}
        return sorted(found)


TRIVIAL_METHODS = ("majority-single", "majority-blend")


def _read_csv(
    path: Path, required: tuple[str, ...], problems: list[str], **kwargs: Any
) -> pd.DataFrame | None:
    try:
        table = pd.read_csv(path, keep_default_na=True, **kwargs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        problems.append(
            f"{path}: cannot be read as CSV ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
        )
        return None
    missing = [c for c in required if c not in table.columns]
    if missing:
        problems.append(
            f"{path}: missing column(s) {', '.join(missing)}; has {', '.join(map(str, table.columns))}"
        )
        return None
    return table


def _text(series: pd.Series) -> pd.Series:
    return series.astype(object).where(series.notna(), "").astype(str).str.strip()


def load_run(run: Path) -> RunData:
    """Read every part of the run folder ``run`` that exists.

    Raises :class:`BlemoreError` if ``run`` is not a folder or holds none of the
    run-folder files; broken parts are reported in :attr:`RunData.problems`.
    """
    run = Path(run)
    if not run.exists():
        raise BlemoreError(f"{run}: no such run folder (expected the folder written by `blemore benchmark`)")
    if not run.is_dir():
        raise BlemoreError(f"{run}: is a file, expected a run folder (written by `blemore benchmark`)")
    if not any((run / name).exists() for name in _KNOWN):
        raise BlemoreError(
            f"{run}: not a run folder: none of {', '.join(_KNOWN)} found "
            "(run `blemore benchmark` or `blemore demo` first)"
        )
    data = RunData(run=run)
    problems = data.problems

    path = run / "config.json"
    if path.is_file():
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(config, dict):
                data.config = config
            else:
                problems.append(f"{path}: expected a JSON object, found {type(config).__name__}")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            problems.append(f"{path}: not valid JSON ({exc})")

    path = run / "results.csv"
    if path.is_file():
        table = _read_csv(
            path, RESULTS_COLUMNS, problems, dtype={"fold": str, "feature_set": str, "model": str}
        )
        if table is not None:
            for col in ("feature_set", "model", "method", "fold"):
                table[col] = _text(table[col])
            for col in ("acc_presence", "acc_salience", "score", "alpha", "beta", "epoch", "n_clips"):
                if col in table.columns:
                    table[col] = pd.to_numeric(table[col], errors="coerce")
            data.results = table

    path = run / "curves.csv"
    if path.is_file():
        table = _read_csv(
            path, CURVES_COLUMNS, problems, dtype={"feature_set": str, "model": str, "fold": str}
        )
        if table is not None:
            for col in ("feature_set", "model"):
                table[col] = _text(table[col])
            table["fold"] = _text(table["fold"])
            for col in table.columns:
                if col not in ("feature_set", "model", "fold"):
                    table[col] = pd.to_numeric(table[col], errors="coerce")
            data.curves = table

    folder = run / "predictions"
    if folder.is_dir():
        for path in sorted(folder.glob("*.csv")):
            parts = path.stem.rsplit("__", 2)
            if len(parts) != 3 or parts[2] not in ("val", "test"):
                problems.append(f"{path}: name is not <feature_set>__<model>__val.csv or __test.csv; skipped")
                continue
            table = _read_csv(
                path,
                PREDICTION_COLUMNS,
                problems,
                dtype={"filename": str, "actor": str, "label": str, "pred_label": str},
            )
            if table is None:
                continue
            for col in ("filename", "actor", "label", "pred_label"):
                if col in table.columns:
                    table[col] = _text(table[col])
            if "fold" in table.columns:
                table["fold"] = pd.to_numeric(table["fold"], errors="coerce")
            probs = table[list(EMOTIONS)].apply(pd.to_numeric, errors="coerce").to_numpy(float)
            if not np.isfinite(probs).all():
                problems.append(f"{path}: probability columns hold NaN or non-numbers; skipped")
                continue
            table[list(EMOTIONS)] = probs
            target = data.val_predictions if parts[2] == "val" else data.test_predictions
            target[(parts[0], parts[1])] = table

    folder = run / "grids"
    if folder.is_dir():
        for path in sorted(folder.glob("*.npz")):
            parts = path.stem.split("__")
            if len(parts) != 2:
                problems.append(f"{path}: name is not <feature_set>__<model>.npz; skipped")
                continue
            try:
                with np.load(path, allow_pickle=False) as npz:
                    grid = {k: np.asarray(npz[k]) for k in npz.files}
            except (OSError, ValueError, EOFError) as exc:
                problems.append(f"{path}: cannot be read as .npz ({exc}); skipped")
                continue
            problem = _check_grid(grid)
            if problem:
                problems.append(f"{path}: {problem}; skipped")
                continue
            data.grids[(parts[0], parts[1])] = grid

    folder = run / "clip_features"
    if folder.is_dir():
        data.clip_features = {p.stem: p for p in sorted(folder.glob("*.npz"))}

    path = run / "compare.csv"
    if path.is_file():
        table = _read_csv(path, COMPARE_COLUMNS, problems, dtype={c: str for c in COMPARE_TEXT_COLUMNS})
        if table is not None:
            for col in COMPARE_TEXT_COLUMNS:
                if col in table.columns:
                    table[col] = _text(table[col])
            for col in table.columns:
                if col not in COMPARE_TEXT_COLUMNS:
                    table[col] = pd.to_numeric(table[col], errors="coerce")
            data.compare = table
    return data


def _check_grid(grid: dict[str, np.ndarray]) -> str | None:
    for key in ("alphas", "betas", "presence", "salience"):
        if key not in grid:
            return f"missing array {key!r} (has {', '.join(sorted(grid)) or 'none'})"
    shape = (len(grid["alphas"]), len(grid["betas"]))
    for key in ("presence", "salience"):
        arr = grid[key]
        if arr.ndim == 2:
            grid[key] = arr = arr[None]
        if arr.ndim != 3 or arr.shape[1:] != shape:
            return f"{key!r} has shape {arr.shape}, expected (folds, {shape[0]}, {shape[1]})"
    if grid["presence"].shape != grid["salience"].shape:
        return f"'presence' {grid['presence'].shape} and 'salience' {grid['salience'].shape} differ in shape"
    return None


def chosen_thresholds(grid: dict[str, np.ndarray]) -> np.ndarray | None:
    """The (folds, 2) alpha/beta chosen per fold stored in a grid file, if any."""
    for a_key, b_key in (("alpha", "beta"), ("chosen_alpha", "chosen_beta"), ("alpha_chosen", "beta_chosen")):
        if a_key in grid and b_key in grid:
            a, b = np.atleast_1d(grid[a_key]).astype(float), np.atleast_1d(grid[b_key]).astype(float)
            if a.shape == b.shape and a.ndim == 1:
                return np.stack([a, b], axis=1)
    if "chosen" in grid and grid["chosen"].ndim == 2 and grid["chosen"].shape[1] == 2:
        return grid["chosen"].astype(float)
    return None


def load_clip_features(path: Path) -> dict[str, np.ndarray]:
    """Read ``clip_features/<feature_set>.npz`` (``X``, ``filenames``; ``labels``, ``actors`` optional)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            out = {k: np.asarray(npz[k]) for k in npz.files}
    except (OSError, ValueError, EOFError) as exc:
        raise BlemoreError(f"{path}: cannot be read as .npz ({exc})") from None
    for key in ("X", "filenames"):
        if key not in out:
            raise BlemoreError(f"{path}: missing array {key!r} (has {', '.join(sorted(out)) or 'none'})")
    X = out["X"]
    if X.ndim != 2 or X.shape[0] != len(out["filenames"]):
        raise BlemoreError(
            f"{path}: X has shape {X.shape}, expected (len(filenames)={len(out['filenames'])}, D)"
        )
    return out
