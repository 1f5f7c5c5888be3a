"""Clip metadata in the official layout: who acted, which fold, which label.

The official ``train_metadata.csv`` / ``test_metadata.csv`` have the columns
``filename, video_id, fold, mix, emotion_1, emotion_2, emotion_1_salience,
emotion_2_salience`` (``video_id`` is the actor; singles have salience 100 and
an empty ``emotion_2``). In memory blemore uses one tidy table with the columns

- ``filename``: the clip id (no folder, no extension),
- ``actor``: ``video_id`` (or the actor part of the clip name),
- ``fold``: ``Int64``, ``<NA>`` for test clips,
- ``label``: the canonical label name (``"ang_hap_70_30"``) or ``None`` when unknown,
- ``label_index``: ``Int64`` index into :data:`blemore.labels.VALID_LABELS`, ``<NA>`` when unknown.

>>> df = metadata_from_names(["A1_ang_int1_ver1", "A2_mix_ang_hap_70_30_ver1"], n_folds=2)
>>> df[["filename", "actor", "label"]].values.tolist()
[['A1_ang_int1_ver1', 'A1', 'ang'], ['A2_mix_ang_hap_70_30_ver1', 'A2', 'ang_hap_70_30']]
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from blemore.data.folds import actor_folds
from blemore.errors import BlemoreError
from blemore.labels import LABEL_INDEX, VALID_LABELS, clip_stem, label_by_name, label_from_parts, parse_clip_name

__all__ = [
    "OFFICIAL_COLUMNS",
    "read_metadata",
    "write_metadata",
    "metadata_from_names",
    "read_clip_names",
    "metadata_frame",
]

OFFICIAL_COLUMNS = (
    "filename",
    "video_id",
    "fold",
    "mix",
    "emotion_1",
    "emotion_2",
    "emotion_1_salience",
    "emotion_2_salience",
)


def _blank(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


def metadata_frame(
    filenames: Sequence[str],
    actors: Sequence[str | None],
    folds: Sequence[int | None],
    labels: Sequence[str | None],
) -> pd.DataFrame:
    """Assemble the tidy metadata table from columns (labels as names or None)."""
    label_index = [LABEL_INDEX[l] if l is not None else pd.NA for l in labels]
    return pd.DataFrame(
        {
            "filename": pd.Series(list(filenames), dtype=object),
            "actor": pd.Series(list(actors), dtype=object),
            "fold": pd.array([pd.NA if f is None or pd.isna(f) else int(f) for f in folds], dtype="Int64"),
            "label": pd.Series(list(labels), dtype=object),
            "label_index": pd.array(label_index, dtype="Int64"),
        }
    )


def read_metadata(path: str | Path) -> pd.DataFrame:
    """Read an official metadata CSV (or a tidy one written by blemore).

    Saliences may be percentages (``70``) or fractions (``0.7``). Labels given in
    the file are checked against the clip name when the name is descriptive;
    when the emotion columns are absent or empty the label comes from the name
    (or is ``None`` for anonymised clips like ``test_0001``).

    Raises
    ------
    BlemoreError
        Missing columns, labels that are not one of the 36 valid labels, labels
        that contradict the clip name, duplicated clips, bad fold numbers.
    """
    path = Path(path)
    try:
        raw = pd.read_csv(path, dtype={"filename": str, "video_id": str})
    except pd.errors.EmptyDataError:
        raise BlemoreError(f"{path}: the file is empty; expected a metadata CSV") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise BlemoreError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from None
    if "filename" not in raw.columns:
        raise BlemoreError(
            f"{path}: no 'filename' column; expected the official columns {', '.join(OFFICIAL_COLUMNS)}"
        )
    tidy = "label" in raw.columns and "emotion_1" not in raw.columns
    filenames = [clip_stem(str(f)) for f in raw["filename"]]
    dup = pd.Series(filenames)[pd.Series(filenames).duplicated()].unique().tolist()
    if dup:
        raise BlemoreError(f"{path}: clip(s) listed twice: {', '.join(map(str, dup[:5]))}")

    actors: list[str | None] = []
    labels: list[str | None] = []
    folds: list[int | None] = []
    actor_col = "video_id" if "video_id" in raw.columns else ("actor" if "actor" in raw.columns else None)
    if not tidy:
        _check_salience_columns(raw, filenames, path)
    fractions = False
    if not tidy and "emotion_1_salience" in raw.columns:
        s = pd.to_numeric(raw["emotion_1_salience"], errors="coerce")
        fractions = bool(s.notna().any() and s.max() <= 1.0)

    for i, row in enumerate(raw.to_dict(orient="records")):
        clip = filenames[i]
        where = f"{path}: row {i + 2} (clip {clip!r})"
        try:
            parsed = parse_clip_name(clip)
        except BlemoreError:
            parsed = None
        # actor
        actor = row.get(actor_col) if actor_col else None
        if _blank(actor):
            actor = parsed.actor if parsed is not None else None
        actors.append(None if actor is None else str(actor))
        # fold
        fold = row.get("fold")
        if _blank(fold):
            folds.append(None)
        else:
            try:
                fv = float(fold)
            except (TypeError, ValueError):
                raise BlemoreError(f"{where}: fold {fold!r} is not a whole number") from None
            if not fv.is_integer() or fv < 0:
                raise BlemoreError(f"{where}: fold {fold!r} is not a whole number >= 0")
            folds.append(int(fv))
        # label
        label = _row_label(row, tidy=tidy, fractions=fractions, where=where)
        name_label = parsed.label.name if parsed is not None and parsed.label is not None else None
        if label is None:
            label = name_label
        elif name_label is not None and name_label != label:
            raise BlemoreError(
                f"{where}: metadata says {label!r} but the clip name says {name_label!r}; "
                "fix the metadata row or the file name"
            )
        labels.append(label)
    return metadata_frame(filenames, actors, folds, labels)


def _check_salience_columns(raw: pd.DataFrame, filenames: list[str], path: Path) -> None:
    """Blends need both salience columns: say which is missing (never invent a salience)."""
    if "emotion_2" not in raw.columns:
        return
    blends = [i for i, v in enumerate(raw["emotion_2"].tolist()) if not _blank(v)]
    missing = [c for c in ("emotion_1_salience", "emotion_2_salience") if c not in raw.columns]
    if blends and missing:
        i = blends[0]
        raise BlemoreError(
            f"{path}: no column {' or '.join(map(repr, missing))}, which the blends need "
            f"({len(blends)} row(s), e.g. row {i + 2}, clip {filenames[i]!r}); expected the official columns "
            f"{', '.join(OFFICIAL_COLUMNS)}"
        )


def _row_label(row: dict, *, tidy: bool, fractions: bool, where: str) -> str | None:
    if tidy:
        value = row.get("label")
        if _blank(value):
            return None
        try:
            return label_by_name(str(value).strip()).name
        except BlemoreError:
            raise BlemoreError(f"{where}: unknown label {value!r}") from None
    e1 = row.get("emotion_1")
    if _blank(e1):
        return None
    e2 = row.get("emotion_2")
    scale = 100.0 if fractions else 1.0

    def sal(key: str, default: float | None) -> float:
        v = row.get(key)
        if _blank(v):
            if default is None:
                raise BlemoreError(f"{where}: the blend {str(e1).strip()}/{str(e2).strip()} has no {key}")
            return default
        try:
            value = float(v) * scale
        except (TypeError, ValueError):
            raise BlemoreError(f"{where}: {key} {v!r} is not a number") from None
        if not math.isfinite(value):
            raise BlemoreError(f"{where}: {key} {v!r} is not a finite number")
        return value

    if _blank(e2):
        parts = [(str(e1).strip(), sal("emotion_1_salience", 100.0))]
    else:
        parts = [(str(e1).strip(), sal("emotion_1_salience", None)), (str(e2).strip(), sal("emotion_2_salience", None))]
    try:
        return label_from_parts(parts).name
    except BlemoreError:
        raise BlemoreError(
            f"{where}: {parts} is not one of the 36 valid labels (a single emotion at 100, "
            "or two of ang/disg/fea/hap/sad at 50/50, 70/30 or 30/70)"
        ) from None


def write_metadata(df: pd.DataFrame, path: str | Path) -> Path:
    """Write the tidy table in the official CSV layout (saliences as percentages)."""
    rows = []
    for r in df.itertuples(index=False):
        label = VALID_LABELS[LABEL_INDEX[r.label]] if isinstance(r.label, str) else None
        parts = list(label.parts) if label is not None else []
        rows.append(
            {
                "filename": r.filename,
                "video_id": r.actor,
                "fold": r.fold,
                "mix": (int(label.is_blend) if label is not None else pd.NA),
                "emotion_1": parts[0][0] if parts else None,
                "emotion_2": parts[1][0] if len(parts) > 1 else None,
                "emotion_1_salience": parts[0][1] if parts else pd.NA,
                "emotion_2_salience": parts[1][1] if len(parts) > 1 else pd.NA,
            }
        )
    out = pd.DataFrame(rows, columns=list(OFFICIAL_COLUMNS))
    for col in ("fold", "mix", "emotion_1_salience", "emotion_2_salience"):
        out[col] = pd.array(out[col], dtype="Int64")
    from blemore.io import write_csv

    return write_csv(Path(path), out, index=False)


def metadata_from_names(names: Iterable[str], *, n_folds: int = 5, seed: int = 0) -> pd.DataFrame:
    """Metadata from descriptive clip names, with actor-disjoint balanced folds.

    Every name must be descriptive (``A102_ang_int1_ver1``); anonymised names
    carry neither actor nor label.
    """
    names = [clip_stem(n) for n in names if str(n).strip()]
    if not names:
        raise BlemoreError("no clip names given")
    parsed = [parse_clip_name(n) for n in names]
    anonymous = [p.clip for p in parsed if p.actor is None]
    if anonymous:
        raise BlemoreError(
            f"{len(anonymous)} clip name(s) carry no actor or label (e.g. {anonymous[0]!r}); "
            "folds from names need descriptive names like 'A102_ang_int1_ver1'"
        )
    if len(set(names)) != len(names):
        dup = pd.Series(names)[pd.Series(names).duplicated()].unique().tolist()
        raise BlemoreError(f"clip(s) listed twice: {', '.join(dup[:5])}")
    actors = [p.actor for p in parsed]
    folds = actor_folds(actors, n_folds=n_folds, seed=seed)
    return metadata_frame(names, actors, folds.tolist(), [p.label.name for p in parsed])


def read_clip_names(path: str | Path) -> list[str]:
    """Clip names from a text file, one per line (blank lines and ``#`` comments skipped)."""
    lines = Path(path).read_text().splitlines()
    return [clip_stem(l.strip()) for l in lines if l.strip() and not l.strip().startswith("#")]


def check_folds(df: pd.DataFrame, *, source: str = "metadata") -> np.ndarray:
    """The fold numbers present, checking every training clip has a fold and a label.

    Raises :class:`BlemoreError` if no clip has a fold, if labels are missing, if an
    actor's clips are in more than one fold (folds must be actor-disjoint), or if a fold
    number between 0 and the largest one has no clips.
    """
    if df["fold"].isna().all():
        raise BlemoreError(f"{source}: no clip has a fold number; training metadata needs folds 0-4")
    missing_fold = df.loc[df["fold"].isna(), "filename"].tolist()
    if missing_fold:
        raise BlemoreError(
            f"{source}: {len(missing_fold)} training clip(s) have no fold (e.g. {missing_fold[0]!r})"
        )
    unlabeled = df.loc[df["label"].isna(), "filename"].tolist()
    if unlabeled:
        raise BlemoreError(
            f"{source}: {len(unlabeled)} training clip(s) have no label (e.g. {unlabeled[0]!r})"
        )
    _check_actor_folds(df, source)
    folds = np.sort(df["fold"].astype(int).unique())
    expected = np.arange(int(folds.max()) + 1)
    empty = sorted(set(expected.tolist()) - set(folds.tolist()))
    if empty:
        raise BlemoreError(
            f"{source}: fold(s) {', '.join(map(str, empty))} have no clips (folds present: "
            f"{', '.join(map(str, folds.tolist()))}); folds must be numbered 0..K-1"
        )
    if len(folds) < 2:
        raise BlemoreError(f"{source}: only one fold ({folds[0]}); cross-validation needs at least 2")
    return folds


def _check_actor_folds(df: pd.DataFrame, source: str) -> None:
    known = df[df["actor"].notna()]
    folds_of = known.groupby("actor")["fold"].agg(lambda f: sorted(set(int(v) for v in f)))
    split = folds_of[folds_of.map(len) > 1]
    if len(split):
        actor = split.index[0]
        clips = known.loc[known["actor"] == actor].drop_duplicates("fold")["filename"].tolist()
        raise BlemoreError(
            f"{source}: actor {actor!r} is in folds {', '.join(map(str, split.iloc[0]))} (e.g. clips "
            f"{', '.join(map(repr, clips[:2]))}); folds must be actor-disjoint, every actor's clips in one fold"
            + (f" ({len(split)} actors affected)" if len(split) > 1 else "")
        )


def check_actor_disjoint(train: pd.DataFrame, test: pd.DataFrame, *, source: str = "test metadata") -> None:
    """Raise :class:`BlemoreError` if a test clip's actor is a training actor.

    The protocol's test figures mean "unseen actors"; a test actor who also appears in
    training would make them optimistic. Clips without an actor (the anonymised test
    partition) cannot be checked and pass.

    >>> train = metadata_from_names(["A1_ang_int1_ver1", "A2_hap_int1_ver1"], n_folds=2)
    >>> check_actor_disjoint(train, metadata_from_names(["A3_sad_int1_ver1", "A4_sad_int1_ver1"], n_folds=2))
    >>> check_actor_disjoint(train, metadata_from_names(["A1_sad_int1_ver1", "A4_sad_int1_ver1"], n_folds=2))
    Traceback (most recent call last):
    ...
    blemore.errors.BlemoreError: test metadata: 1 test clip(s) by training actor(s) A1 (e.g. 'A1_sad_int1_ver1'); test actors must not appear in training
    """
    train_actors = set(train["actor"].dropna().astype(str))
    shared = test[test["actor"].notna() & test["actor"].astype(str).isin(train_actors)]
    if len(shared):
        actors = sorted(set(shared["actor"].astype(str)))
        shown = ", ".join(actors[:5]) + (f" and {len(actors) - 5} more" if len(actors) > 5 else "")
        raise BlemoreError(
            f"{source}: {len(shared)} test clip(s) by training actor(s) {shown} "
            f"(e.g. {shared['filename'].iloc[0]!r}); test actors must not appear in training"
        )


__all__ += ["check_folds", "check_actor_disjoint"]
