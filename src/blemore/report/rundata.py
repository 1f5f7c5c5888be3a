"""Reading a run folder for the report, tolerating missing or broken parts.

A run folder (written by ``blemore benchmark`` through
:class:`~blemore.protocol.runfolder.RunFolder`; see :mod:`blemore.protocol.run` for the
layout) holds ``config.json``; the baseline's ``results.csv``, ``curves.csv``,
``predictions/<feature_set>__<model>__{val,test}.csv``, ``grids/<feature_set>__<model>.npz``,
``clip_features/<feature_set>.npz``; the methods table ``compare.csv`` and ``paired.csv``;
``best.json`` (which configuration to submit, and why), ``models/<stem>/model.json``,
``test_predictions/<stem>.csv``, ``submission/<stem>.zip``, ``actors.json`` (pseudo-actors of
anonymised test clips) and, once the test clips were scored, ``test_scores.json``.

Every part is optional: a part that is absent is ``None`` (or empty), a part that cannot be
read is left out and one line naming the file and the problem is kept in
:attr:`RunData.problems`, so the report can say why a section is missing instead of failing.
A CSV cut short keeps its complete rows (the cut row is left out and named). Only a folder
where nothing that carries results can be read is an error (:func:`load_run`).

>>> import tempfile, pathlib
>>> from blemore.report.sample import write_sample_run
>>> data = load_run(write_sample_run(pathlib.Path(tempfile.mkdtemp()), n_actors=5))
>>> sorted(data.val_predictions)[0]
('facemesh', 'linear')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from blemore.errors import BlemoreError
from blemore.labels import EMOTIONS
from blemore.protocol.methods import Configuration
from blemore.report.readers import first_line, read_json_object, read_table

__all__ = [
    "RunData",
    "Key",
    "config_key",
    "load_run",
    "chosen_thresholds",
    "load_clip_features",
    "RESULTS_COLUMNS",
    "CURVES_COLUMNS",
    "PREDICTION_COLUMNS",
    "COMPARE_COLUMNS",
    "COMPARE_TEXT_COLUMNS",
    "TEST_PREDICTION_COLUMNS",
    "TRIVIAL_METHODS",
]

RESULTS_COLUMNS = ("feature_set", "model", "method", "fold", "acc_presence", "acc_salience", "score")
CURVES_COLUMNS = ("feature_set", "model", "fold", "epoch")
PREDICTION_COLUMNS = ("filename", *EMOTIONS)
COMPARE_COLUMNS = ("method", "feature_set", "model", "score", "ci_low", "ci_high")
#: Columns of ``compare.csv`` kept as text (the rest are numbers); split / selection / note are optional.
COMPARE_TEXT_COLUMNS = ("method", "feature_set", "model", "split", "selection", "note")
#: Columns every ``test_predictions/<stem>.csv`` has (the six probabilities are optional).
TEST_PREDICTION_COLUMNS = ("filename", "pred_label")
PAIRED_TEXT_COLUMNS = (
    "method",
    "feature_set",
    "model",
    "split",
    "selection",
    "reference_method",
    "reference_feature_set",
    "reference_model",
)
#: The constant-prediction baselines of ``results.csv``.
TRIVIAL_METHODS = ("majority-single", "majority-blend")
_KNOWN = (
    "config.json",
    "results.csv",
    "curves.csv",
    "predictions",
    "grids",
    "clip_features",
    "compare.csv",
    "best.json",
    "models",
    "test_predictions",
    "test_scores.json",
    "actors.json",
)

Combo = tuple[str, str]
#: A configuration of the methods table: (method, feature set, model).
Key = tuple[str, str, str]


def config_key(entry: Any) -> Key:
    """The (method, feature set, model) of a row or a ``best.json`` entry."""
    return (str(entry["method"]), str(entry["feature_set"]), str(entry["model"]))


@dataclass
class RunData:
    """What the report found in a run folder.

    ``val_predictions`` / ``test_predictions`` / ``grids`` are the baseline's, keyed by
    ``(feature_set, model)``; ``clip_features`` maps a feature set to its ``.npz`` path
    (loaded when drawn, since it can be large). ``models`` maps a configuration's stem
    (``method__set__model``) to its ``model.json``; ``method_predictions`` maps a
    ``test_predictions/`` file's stem (``<stem>`` or ``<stem>.paper``) to its table.
    ``problems`` lists one line per part that exists but could not be used.
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
    paired: pd.DataFrame | None = None
    best: dict[str, Any] | None = None
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    method_predictions: dict[str, pd.DataFrame] = field(default_factory=dict)
    test_scores: pd.DataFrame | None = None
    actors: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def combos(self) -> list[Combo]:
        """Every (feature set, model) of the run's baseline, in a stable order."""
        found: set[Combo] = set(self.val_predictions) | set(self.grids)
        if self.results is not None:
            own = self.results[~self.results["method"].isin(TRIVIAL_METHODS)]
            found |= {(str(f), str(m)) for f, m in zip(own["feature_set"], own["model"]) if f and m}
        if self.curves is not None:
            found |= {(str(f), str(m)) for f, m in zip(self.curves["feature_set"], self.curves["model"])}
        return sorted(found)

    def usable(self) -> bool:
        """Whether any part that carries results could be read (``config.json`` alone does not)."""
        frames = (self.results, self.curves, self.compare, self.test_scores)
        mappings = (
            self.val_predictions,
            self.test_predictions,
            self.grids,
            self.clip_features,
            self.models,
            self.method_predictions,
            self.actors,
        )
        return any(f is not None for f in frames) or any(mappings) or self.best is not None

    def stem_of(self, method: str, feature_set: str, model: str) -> str:
        """The file stem of a configuration: the one its ``model.json`` names, else the run's rule."""
        for stem, info in self.models.items():
            if (info.get("method"), info.get("feature_set"), info.get("model")) == (
                method,
                feature_set,
                model,
            ):
                return stem
        return Configuration(method, feature_set, model, ()).stem

    def chosen(self) -> Key | None:
        """The configuration ``best.json`` says to submit (None without ``best.json``)."""
        return None if self.best is None else config_key(self.best["chosen"])

    def best_baseline(self) -> Key | None:
        """The best baseline ``best.json`` compares the choice with (None where absent)."""
        ref = (self.best or {}).get("best_baseline")
        return (
            config_key(ref)
            if isinstance(ref, dict) and {"method", "feature_set", "model"} <= set(ref)
            else None
        )

    def chosen_stem(self) -> str | None:
        """The file stem of the chosen configuration (``models/<stem>``, ``submission/<stem>.zip``)."""
        key = self.chosen()
        if key is None:
            return None
        return str((self.best or {}).get("stem") or self.stem_of(*key))


# --------------------------------------------------------------------------------------------- parts


def _load_config(data: RunData) -> None:
    path = data.run / "config.json"
    if path.is_file():
        data.config = read_json_object(path, data.problems)


def _load_results(data: RunData) -> None:
    path = data.run / "results.csv"
    if path.is_file():
        table = read_table(
            path, RESULTS_COLUMNS, data.problems, text=("feature_set", "model", "method", "fold")
        )
        if table is not None and table.empty:
            data.problems.append(f"{path}: has a header but no rows")
            table = None
        data.results = table


def _load_curves(data: RunData) -> None:
    path = data.run / "curves.csv"
    if path.is_file():
        data.curves = read_table(path, CURVES_COLUMNS, data.problems, text=("feature_set", "model", "fold"))


def _probabilities_ok(table: pd.DataFrame, path: Path, problems: list[str]) -> bool:
    probs = table[list(EMOTIONS)].to_numpy(float)
    if not np.isfinite(probs).all():
        problems.append(f"{path}: probability columns hold NaN or non-numbers; skipped")
        return False
    return True


def _load_predictions(data: RunData) -> None:
    folder = data.run / "predictions"
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*.csv")):
        parts = path.stem.rsplit("__", 2)
        if len(parts) != 3 or parts[2] not in ("val", "test"):
            data.problems.append(
                f"{path}: name is not <feature_set>__<model>__val.csv or __test.csv; skipped"
            )
            continue
        table = read_table(
            path, PREDICTION_COLUMNS, data.problems, text=("filename", "actor", "label", "pred_label")
        )
        if table is None or not _probabilities_ok(table, path, data.problems):
            continue
        target = data.val_predictions if parts[2] == "val" else data.test_predictions
        target[(parts[0], parts[1])] = table


def _load_grids(data: RunData) -> None:
    folder = data.run / "grids"
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*.npz")):
        parts = path.stem.split("__")
        if len(parts) != 2:
            data.problems.append(f"{path}: name is not <feature_set>__<model>.npz; skipped")
            continue
        try:
            with np.load(path, allow_pickle=False) as npz:
                grid = {k: np.asarray(npz[k]) for k in npz.files}
        except (OSError, ValueError, EOFError) as exc:
            data.problems.append(f"{path}: cannot be read as .npz ({first_line(exc)}); skipped")
            continue
        problem = _check_grid(grid)
        if problem:
            data.problems.append(f"{path}: {problem}; skipped")
            continue
        data.grids[(parts[0], parts[1])] = grid


def _load_clip_features(data: RunData) -> None:
    folder = data.run / "clip_features"
    if folder.is_dir():
        data.clip_features = {p.stem: p for p in sorted(folder.glob("*.npz"))}


def _load_compare(data: RunData) -> None:
    path = data.run / "compare.csv"
    if path.is_file():
        data.compare = read_table(path, COMPARE_COLUMNS, data.problems, text=COMPARE_TEXT_COLUMNS)
    path = data.run / "paired.csv"
    if path.is_file():
        data.paired = read_table(
            path, ("method", "feature_set", "model", "diff_score"), data.problems, text=PAIRED_TEXT_COLUMNS
        )


def _load_best(data: RunData) -> None:
    path = data.run / "best.json"
    if not path.is_file():
        return
    best = read_json_object(path, data.problems)
    if not best:
        return  # unreadable (a problem is noted), or empty: a run with nothing deployable
    chosen = best.get("chosen")
    if not isinstance(chosen, dict) or not {"method", "feature_set", "model"} <= set(chosen):
        data.problems.append(f"{path}: no 'chosen' configuration (method, feature_set, model); ignored")
        return
    data.best = best


def _load_models(data: RunData) -> None:
    folder = data.run / "models"
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*/model.json")):
        info = read_json_object(path, data.problems)
        if info is not None:
            data.models[path.parent.name] = info


def _load_method_predictions(data: RunData) -> None:
    folder = data.run / "test_predictions"
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*.csv")):
        table = read_table(path, TEST_PREDICTION_COLUMNS, data.problems, text=("filename", "pred_label"))
        if table is None:
            continue
        if set(EMOTIONS) <= set(table.columns) and not _probabilities_ok(table, path, data.problems):
            continue
        data.method_predictions[path.stem] = table


def _load_test_scores(data: RunData) -> None:
    path = data.run / "test_scores.json"
    if not path.is_file():
        return
    scores = read_json_object(path, data.problems)
    if scores is None:
        return
    rows = scores.get("scores")
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        data.problems.append(f"{path}: 'scores' is not a non-empty list of objects; ignored")
        return
    table = pd.DataFrame(rows)
    missing = [c for c in ("method", "feature_set", "model", "score") if c not in table.columns]
    if missing:
        data.problems.append(f"{path}: scores lack {', '.join(missing)}; ignored")
        return
    for col in ("method", "feature_set", "model"):
        table[col] = table[col].fillna("").astype(str)
    for col in ("acc_presence", "acc_salience", "score", "n_clips", "missing"):
        if col in table.columns:
            table[col] = pd.to_numeric(table[col], errors="coerce")
    data.test_scores = table


def _load_actors(data: RunData) -> None:
    path = data.run / "actors.json"
    if not path.is_file():
        return
    actors = read_json_object(path, data.problems)
    if actors is None:
        return
    for fs, info in actors.items():
        if not isinstance(info, dict) or not isinstance(info.get("training_folds", []), list):
            data.problems.append(
                f"{path}: the entry of {fs!r} is not an object with a list of training folds; skipped"
            )
            continue
        data.actors[str(fs)] = info


#: The steps of :func:`load_run`, one per part of the run folder.
_PARTS: tuple[Callable[[RunData], None], ...] = (
    _load_config,
    _load_results,
    _load_curves,
    _load_predictions,
    _load_grids,
    _load_clip_features,
    _load_compare,
    _load_best,
    _load_models,
    _load_method_predictions,
    _load_test_scores,
    _load_actors,
)


def _check_folder(run: Path) -> Path:
    if not run.exists():
        raise BlemoreError(f"{run}: no such run folder (expected the folder written by `blemore benchmark`)")
    if not run.is_dir():
        raise BlemoreError(f"{run}: is a file, expected a run folder (written by `blemore benchmark`)")
    if not any((run / name).exists() for name in _KNOWN):
        raise BlemoreError(
            f"{run}: not a run folder: none of {', '.join(_KNOWN)} found "
            "(run `blemore benchmark` or `blemore demo` first)"
        )
    return run


def load_run(run: Path) -> RunData:
    """Read every part of the run folder ``run`` that exists.

    Raises :class:`BlemoreError` if ``run`` is not a folder, holds none of the run-folder
    files, or holds nothing that carries results that can be read (the message names the
    first damaged file and its problem); other broken parts are reported in
    :attr:`RunData.problems`.
    """
    data = RunData(run=_check_folder(Path(run)))
    for step in _PARTS:
        step(data)
    if not data.usable():
        if data.problems:
            more = f" (and {len(data.problems) - 1} more problem(s))" if len(data.problems) > 1 else ""
            raise BlemoreError(f"{data.problems[0]}{more}; nothing else in {run} can be reported")
        raise BlemoreError(
            f"{run}: holds no results to report (only config.json); run `blemore benchmark` to the end"
        )
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
        raise BlemoreError(f"{path}: cannot be read as .npz ({first_line(exc)})") from None
    for key in ("X", "filenames"):
        if key not in out:
            raise BlemoreError(f"{path}: missing array {key!r} (has {', '.join(sorted(out)) or 'none'})")
    X = out["X"]
    if X.ndim != 2 or X.shape[0] != len(out["filenames"]):
        raise BlemoreError(
            f"{path}: X has shape {X.shape}, expected (len(filenames)={len(out['filenames'])}, D)"
        )
    return out
