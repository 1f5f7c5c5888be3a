"""Predictions on disk: read, validate, write (local JSON and the challenge's zip), and score them.

Imports numpy and the standard library only (no pandas, no torch).

Two formats hold the same thing, a mapping from clip to its predicted emotions:

- local: ``{"A102_ang_int1_ver1": [{"emotion": "ang", "salience": 100}], ...}`` (``.json``);
- challenge (CodaBench): ``{"predictions": {...}}``, as the only ``.json`` file of a ``.zip``.

:func:`read_predictions` reads either (``.json`` or ``.zip``) and validates every clip; a
problem is reported as ``"<file>: clip '<clip>': <problem>"``. Writers validate first and
write atomically (a temporary file renamed into place), so a failed write leaves nothing.

Truth for scoring comes from descriptive clip names or from a metadata CSV
(:func:`read_truth`, official columns ``filename, video_id, fold, mix, emotion_1,
emotion_2, emotion_1_salience, emotion_2_salience``).

>>> preds = predictions_from_indices(["A102_ang_int1_ver1.mov"], [0])
>>> preds
{'A102_ang_int1_ver1': [{'emotion': 'ang', 'salience': 100}]}
>>> score_predictions(preds).scores.acc_presence
1.0
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from blemore.errors import BlemoreError
from blemore.io import atomic_write, load_npz
from blemore.labels import (
    EMOTION_INDEX,
    EMOTIONS,
    LABEL_INDEX,
    LABEL_NAMES,
    N_LABELS,
    NEUTRAL,
    OTHER,
    VALID_LABELS,
    clip_name_problem,
    clip_stem,
    label_by_name,
    label_from_parts,
    parse_clip_name,
)
from blemore.metrics import (
    INVALID_MASK,
    Scores,
    breakdown_by_emotion,
    breakdown_by_pair,
    breakdown_by_salience,
    confusion_matrix,
    is_number,
    prediction_code,
    score_codes,
)

__all__ = [
    "Predictions",
    "predictions_from_indices",
    "clip_problem",
    "find_problems",
    "validate_predictions",
    "parse_predictions",
    "load_predictions",
    "read_predictions",
    "write_predictions",
    "write_submission_zip",
    "format_predictions",
    "read_truth",
    "truth_from_names",
    "ScoreReport",
    "score_predictions",
    "example_files",
    "SUBMISSION_MEMBER",
    "MAX_PREDICTIONS_BYTES",
]

#: ``{clip: [{"emotion": e, "salience": s}, ...]}``
Predictions = dict[str, list[dict[str, Any]]]

#: Name of the JSON file inside a challenge zip written by :func:`write_submission_zip`.
SUBMISSION_MEMBER = "predictions.json"

#: The most bytes of predictions read from a ``.json`` file or a zip's member (64 MiB; a
#: submission of all 594 test clips is about 100 KB). A zip member whose header lies about
#: its size is cut off there too, so a small zip can never fill the memory.
MAX_PREDICTIONS_BYTES = 64 * 2**20



# --------------------------------------------------------------------------- building


def predictions_from_indices(filenames: Sequence[str], label_indices: Sequence[int] | np.ndarray) -> Predictions:
    """Predictions from clip names and label indices into :data:`~blemore.labels.VALID_LABELS`.

    Clip names lose their folder and extension (``clips/test_0001.mov`` -> ``test_0001``).

    >>> predictions_from_indices(["test_0001.mov"], [14])
    {'test_0001': [{'emotion': 'ang', 'salience': 30}, {'emotion': 'hap', 'salience': 70}]}
    """
    idx = np.asarray(label_indices)
    names = [clip_stem(str(f)) for f in filenames]
    if idx.ndim != 1 or idx.size != len(names):
        raise BlemoreError(f"got {len(names)} clip names but label indices of shape {idx.shape}")
    out: Predictions = {}
    for name, i in zip(names, idx.tolist()):
        if not isinstance(i, int) or not 0 <= i < N_LABELS:
            raise BlemoreError(f"clip {name!r}: {i!r} is not a label index in 0..{N_LABELS - 1}")
        if name in out:
            raise BlemoreError(f"clip {name!r} appears twice")
        out[name] = VALID_LABELS[i].as_prediction()
    return out


# --------------------------------------------------------------------------- validation


def clip_problem(entries: Any) -> str | None:
    """What is wrong with one clip's entries, or None when they form one of the 36 valid labels.

    Saliences are compared after rounding to whole numbers, as the scorer does.

    >>> clip_problem([{"emotion": "hap", "salience": 60}, {"emotion": "sad", "salience": 40}])
    'saliences 60/40 of hap/sad are not 50/50, 70/30 or 30/70'
    """
    if not isinstance(entries, list):
        return f'expected a list of {{"emotion": ..., "salience": ...}} objects, got {_kind(entries)}'
    if not entries:
        return "empty list: predict one emotion or a pair"
    if len(entries) > 2:
        return f"{len(entries)} emotions given, at most 2 allowed"
    seen: list[str] = []
    values: list[float] = []
    for k, entry in enumerate(entries):
        if not isinstance(entry, dict):
            return f'entry {k + 1} is {_kind(entry)}, expected an object {{"emotion": ..., "salience": ...}}'
        for key in ("emotion", "salience"):
            if key not in entry:
                return f"entry {k + 1} has no {key!r} key"
        emotion, salience = entry["emotion"], entry["salience"]
        if not isinstance(emotion, str) or emotion not in EMOTION_INDEX:
            return f"unknown emotion {emotion!r} (expected one of {', '.join(EMOTIONS)})"
        if not is_number(salience):
            return f"salience of {emotion!r} is not a finite number: {salience!r}"
        if emotion in seen:
            return f"emotion {emotion!r} appears twice"
        seen.append(emotion)
        values.append(salience)
    if len(seen) == 1:
        if round(values[0]) != 100:
            return f"single emotion {seen[0]!r} has salience {values[0]!r}, expected 100"
        return None
    if NEUTRAL in seen:
        return f"{NEUTRAL!r} cannot be part of a blend ({seen[0]}/{seen[1]})"
    rounded = (int(round(values[0])), int(round(values[1])))
    if rounded not in ((50, 50), (70, 30), (30, 70)):
        return f"saliences {_fmt(values[0])}/{_fmt(values[1])} of {seen[0]}/{seen[1]} are not 50/50, 70/30 or 30/70"
    return None


def _fmt(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    return str(int(value)) if value.is_integer() else repr(value)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__
    )


def find_problems(preds: Mapping[str, Any]) -> dict[str, str]:
    """``{clip: problem}`` for every clip whose entries are not a valid label (see :func:`clip_problem`).

    Also reports clips whose names collide once folder and extension are dropped.
    """
    problems: dict[str, str] = {}
    stems: dict[str, str] = {}
    for clip, entries in preds.items():
        stem = clip_stem(clip)
        if not stem:
            problems[clip] = "empty clip name"
            continue
        if stem in stems:
            problems[clip] = f"same clip as {stems[stem]!r}"
            continue
        stems[stem] = clip
        problem = clip_problem(entries)
        if problem:
            problems[clip] = problem
    return problems


def validate_predictions(preds: Mapping[str, Any], *, source: str = "predictions") -> Predictions:
    """Return ``preds`` if every clip is valid; else raise :class:`BlemoreError` naming the first bad clip.

    Valid: entries that form one of the 36 labels (:func:`clip_problem`), and clip names a
    scorer can read (:func:`~blemore.labels.clip_name_problem`: a name that starts like a
    BLEMORE clip must be one), so nothing is written that ``blemore score`` would refuse.
    """
    if not isinstance(preds, Mapping):
        raise BlemoreError(f"{source}: expected an object {{clip: [...]}}, got {_kind(preds)}")
    if not preds:
        raise BlemoreError(f"{source}: no predictions (the object is empty)")
    for clip in preds:
        name_problem = clip_name_problem(clip) if isinstance(clip, str) else "clip names must be strings"
        if name_problem:
            raise BlemoreError(f"{source}: clip {clip!r}: {name_problem}")
    problems = find_problems(preds)
    if problems:
        clip, problem = next(iter(problems.items()))
        more = f" (and {len(problems) - 1} more clips with problems)" if len(problems) > 1 else ""
        raise BlemoreError(f"{source}: clip {clip!r}: {problem}{more}")
    return dict(preds)


def parse_predictions(obj: Any, *, source: str = "predictions") -> dict[str, Any]:
    """Unwrap either format to ``{clip: entries}`` (entries not yet validated).

    ``{"predictions": {...}}`` is the challenge format; any other object is the local one.
    """
    if not isinstance(obj, dict):
        raise BlemoreError(
            f"{source}: expected a JSON object {{clip: [...]}} or {{\"predictions\": {{...}}}}, got {_kind(obj)}"
        )
    if set(obj) == {"predictions"} or isinstance(obj.get("predictions"), dict):
        inner = obj["predictions"]
        if not isinstance(inner, dict):
            raise BlemoreError(f"{source}: \"predictions\" must be an object {{clip: [...]}}, got {_kind(inner)}")
        others = [k for k in obj if k != "predictions"]
        if others:
            raise BlemoreError(
                f"{source}: the challenge format holds only the key \"predictions\", also found {', '.join(map(repr, others[:5]))}"
            )
        return inner
    return obj


def _no_duplicate_keys(source: str) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise BlemoreError(f"{source}: key {key!r} appears twice in one JSON object")
            out[key] = value
        return out

    return hook


def _loads(data: bytes, source: str) -> Any:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BlemoreError(f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys(source))
    except json.JSONDecodeError as exc:
        raise BlemoreError(f"{source}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise BlemoreError(f"{source}: JSON nested too deeply") from None
    except BlemoreError:
        raise
    except ValueError as exc:  # e.g. an integer of more digits than Python converts to int
        raise BlemoreError(f"{source}: not readable as JSON ({str(exc).split(';')[0]})") from None


def _unsafe_member(name: str) -> bool:
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return True
    return ".." in PurePosixPath(name.replace("\\", "/")).parts


def _too_large(source: str, size: int | None = None) -> BlemoreError:
    what = f" ({size:,} bytes)" if size is not None else ""
    return BlemoreError(
        f"{source}: larger than {MAX_PREDICTIONS_BYTES // 2**20} MiB{what}; a submission of every test clip "
        "is about 100 KB: is this the right file?"
    )


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, source: str) -> bytes:
    """The member's bytes, refusing more than :data:`MAX_PREDICTIONS_BYTES` whatever its header says."""
    if info.file_size > MAX_PREDICTIONS_BYTES:
        raise _too_large(source, info.file_size)
    with zf.open(info) as fh:
        data = fh.read(MAX_PREDICTIONS_BYTES + 1)
    if len(data) > MAX_PREDICTIONS_BYTES:  # the header lied about the size
        raise _too_large(source)
    return data


def _read_zip_json(path: Path) -> tuple[bytes, str]:
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            for info in infos:
                if _unsafe_member(info.filename):
                    raise BlemoreError(f"{path}: unsafe path {info.filename!r} inside the zip (absolute or with '..')")
            members = [
                i
                for i in infos
                if not i.is_dir()
                and i.filename.lower().endswith(".json")
                and not i.filename.startswith("__MACOSX/")
                and not PurePosixPath(i.filename).name.startswith("._")
            ]
            if not members:
                raise BlemoreError(f"{path}: the zip holds no .json file (expected exactly one, e.g. {SUBMISSION_MEMBER})")
            if len(members) > 1:
                names = ", ".join(repr(m.filename) for m in members[:5])
                raise BlemoreError(f"{path}: the zip holds {len(members)} .json files ({names}), expected exactly one")
            source = f"{path}:{members[0].filename}"
            return _read_member(zf, members[0], source), source
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error, NotImplementedError) as exc:
        raise BlemoreError(f"{path}: not a readable zip file ({type(exc).__name__}: {exc})") from None
    except RuntimeError as exc:  # an encrypted member
        raise BlemoreError(f"{path}: cannot read the zip ({exc}); submit an unencrypted zip") from None


def _read_json_file(path: Path) -> bytes:
    if path.is_file() and path.stat().st_size > MAX_PREDICTIONS_BYTES:
        raise _too_large(str(path), path.stat().st_size)
    with open(path, "rb") as fh:
        data = fh.read(MAX_PREDICTIONS_BYTES + 1)
    if len(data) > MAX_PREDICTIONS_BYTES:  # e.g. a pipe or a file still growing
        raise _too_large(str(path))
    return data


def load_predictions(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a ``.json`` or ``.zip`` of either format; check the file's shape but not each clip.

    Use :func:`find_problems` on the result to list invalid clips, or :func:`read_predictions`
    to fail on the first.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".json", ".zip"):
        raise BlemoreError(f"{p}: expected a .json or .zip file of predictions, got {suffix or 'no extension'!r}")
    if suffix == ".zip":
        data, source = _read_zip_json(p)
    else:
        data, source = _read_json_file(p), str(p)
    return parse_predictions(_loads(data, source), source=source)


def read_predictions(path: str | os.PathLike[str]) -> Predictions:
    """Read and validate predictions from a ``.json`` or ``.zip`` in either format.

    Raises :class:`BlemoreError` naming the file, and the clip when one is invalid.
    """
    return validate_predictions(load_predictions(path), source=str(path))


# --------------------------------------------------------------------------- writing


def _write_file(path: Path, write: Callable[[io.BufferedWriter], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        raise BlemoreError(f"{path}: is a directory, expected a file name")
    atomic_write(path, write, durable=True)


def format_predictions(preds: Mapping[str, Any], *, challenge: bool = False) -> str:
    """JSON text of predictions, one clip per line; ``challenge`` wraps it as ``{"predictions": {...}}``.

    >>> print(format_predictions({"test_0001": [{"emotion": "hap", "salience": 100}]}), end="")
    {
     "test_0001": [{"emotion": "hap", "salience": 100}]
    }
    """
    return _json_bytes(preds, wrap=challenge).decode("utf-8")


def _json_bytes(preds: Mapping[str, Any], *, wrap: bool = False) -> bytes:
    """JSON text with one clip per line (``{"predictions": ...}`` around it when ``wrap``)."""
    indent = "  " if wrap else " "
    lines = [
        f"{indent}{json.dumps(clip, ensure_ascii=False)}: {json.dumps(entries, ensure_ascii=False)}"
        for clip, entries in preds.items()
    ]
    body = "{\n" + ",\n".join(lines) + ("\n" if lines else "") + ("  }" if wrap else "}")
    text = '{"predictions": ' + body + "}" if wrap else body
    return (text + "\n").encode("utf-8")


def write_predictions(preds: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Validate ``preds`` and write them atomically as local-format JSON; returns the path."""
    p = Path(path)
    valid = validate_predictions(preds, source=str(p))
    data = _json_bytes(valid)
    _write_file(p, lambda fh: fh.write(data))
    return p


def write_submission_zip(
    preds: Mapping[str, Any], path: str | os.PathLike[str], *, member: str = SUBMISSION_MEMBER
) -> Path:
    """Validate ``preds`` and write the challenge zip: one JSON file ``{"predictions": {...}}``.

    Written atomically; returns the path.
    """
    p = Path(path)
    if p.suffix.lower() != ".zip":
        raise BlemoreError(f"{p}: a challenge submission must be a .zip file")
    valid = validate_predictions(preds, source=str(p))
    data = _json_bytes(valid, wrap=True)

    def write(fh: io.BufferedWriter) -> None:
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            # a fixed time stamp: the same predictions always make the same bytes
            info = zipfile.ZipInfo(member, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)

    _write_file(p, write)
    return p


# --------------------------------------------------------------------------- truth

_EMOTION_COLUMNS = ("emotion_1", "emotion_2", "emotion_1_salience", "emotion_2_salience")


def _truth_label(row: dict[str, str], where: str) -> int | None:
    label = (row.get("label") or "").strip()
    if label:
        try:
            return LABEL_INDEX[label_by_name(label).name]
        except BlemoreError as exc:
            raise BlemoreError(f"{where}: {exc}") from None
    e1 = (row.get("emotion_1") or "").strip()
    if not e1:
        return None  # unlabelled (e.g. the anonymised test partition)
    e2 = (row.get("emotion_2") or "").strip()

    def salience(key: str) -> float | None:
        text = (row.get(key) or "").strip()
        if not text:
            return None
        try:
            value = float(text)
        except ValueError:
            raise BlemoreError(f"{where}: {key} {text!r} is not a number") from None
        if not math.isfinite(value):
            raise BlemoreError(f"{where}: {key} {text!r} is not a finite number")
        return value

    s1, s2 = salience("emotion_1_salience"), salience("emotion_2_salience")
    for e in (e1, e2):
        if e and e not in EMOTION_INDEX:
            raise BlemoreError(f"{where}: unknown emotion {e!r} (expected one of {', '.join(EMOTIONS)})")
    if not e2:
        if s1 is not None and round(s1 * 100 if s1 <= 1.0 else s1) != 100:
            raise BlemoreError(f"{where}: single emotion {e1!r} with emotion_1_salience {s1:g}, expected 100 (or 1.0)")
        return LABEL_INDEX[e1]
    if s1 is None or s2 is None:
        raise BlemoreError(f"{where}: blend {e1}/{e2} needs emotion_1_salience and emotion_2_salience")
    if s1 <= 1.0 and s2 <= 1.0:  # fractions
        s1, s2 = s1 * 100, s2 * 100
    try:
        return LABEL_INDEX[label_from_parts([(e1, s1), (e2, s2)]).name]
    except BlemoreError:
        raise BlemoreError(
            f"{where}: {e1}/{e2} with saliences {s1:g}/{s2:g} is not one of the 36 valid labels "
            "(blends of two non-neutral emotions at 50/50, 70/30 or 30/70)"
        ) from None


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a UTF-8 CSV file; unreadable text becomes a :class:`BlemoreError`."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            return list(reader.fieldnames or []), rows
    except UnicodeDecodeError as exc:
        raise BlemoreError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); expected a CSV file") from None
    except csv.Error as exc:
        raise BlemoreError(f"{path}: not a readable CSV file ({exc})") from None


def _fold_key(value: str) -> str:
    text = value.strip()
    try:
        return str(int(float(text)))
    except ValueError:
        return text


def read_truth(path: str | os.PathLike[str], *, folds: Sequence[str] | None = None) -> dict[str, int]:
    """``{clip: label index}`` from a metadata CSV; unlabelled rows are left out.

    Accepts the official columns (``filename``, ``emotion_1``, ``emotion_2``,
    ``emotion_1_salience``, ``emotion_2_salience``; saliences as percentages or 0-1
    fractions; a single has an empty ``emotion_2``) or a ``label`` column holding label
    names (``"ang"``, ``"ang_hap_70_30"``). Clip names lose folder and extension.

    ``folds`` keeps only the rows whose ``fold`` column is one of them (``"0"`` ... ``"4"``);
    ``"test"`` selects the rows with an empty fold (or ``partition`` = ``test``).
    """
    p = Path(path)
    wanted = None if folds is None else {_fold_key(str(f)) for f in folds}
    columns, rows = _read_csv(p)
    if "filename" not in columns:
        raise BlemoreError(f"{p}: no 'filename' column (found {', '.join(columns) or 'no header'})")
    has_emotions = all(c in columns for c in _EMOTION_COLUMNS)
    if "label" not in columns and not has_emotions:
        missing = [c for c in _EMOTION_COLUMNS if c not in columns]
        raise BlemoreError(f"{p}: no label columns: missing {', '.join(missing)} (or a 'label' column)")
    if wanted is not None and "fold" not in columns and "partition" not in columns:
        raise BlemoreError(f"{p}: no 'fold' column to select folds {', '.join(sorted(wanted))} from")
    truth: dict[str, int] = {}
    for line, row in enumerate(rows, start=2):
        if wanted is not None:
            fold = _fold_key(row.get("fold") or "")
            is_test = not fold or (row.get("partition") or "").strip() == "test"
            if fold not in wanted and not ("test" in wanted and is_test):
                continue
        name = clip_stem((row.get("filename") or "").strip())
        where = f"{p}: line {line} (clip {name!r})"
        if not name:
            raise BlemoreError(f"{p}: line {line}: empty filename")
        label = _truth_label(row, where)
        if label is None:
            continue
        if name in truth:
            raise BlemoreError(f"{where}: clip appears twice")
        truth[name] = label
    if not truth:
        selected = "" if wanted is None else f" in fold(s) {', '.join(sorted(wanted))}"
        raise BlemoreError(f"{p}: no labelled clips{selected} (every row has an empty emotion_1/label)")
    return truth


def truth_from_names(names: Iterable[str]) -> dict[str, int]:
    """``{clip: label index}`` parsed from descriptive clip names.

    Raises :class:`BlemoreError` for an anonymised name (``test_0001``: pass a metadata
    CSV) or a malformed one.
    """
    truth: dict[str, int] = {}
    for name in names:
        parsed = parse_clip_name(name)
        if parsed.label is None:
            raise BlemoreError(
                f"clip {parsed.clip!r} carries no label in its name; give the labels with --truth METADATA.csv"
            )
        truth[parsed.clip] = LABEL_INDEX[parsed.label.name]
    return truth


# --------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class ScoreReport:
    """The result of :func:`score_predictions`.

    ``scores`` are over ``n_scored`` clips: every truth clip (strict) or the submitted clips
    that have a truth (lenient). ``missing``: truth clips not submitted; ``extra``: submitted
    clips without truth (never scored); ``invalid``: ``{clip: problem}`` for submitted clips
    that are not one of the 36 labels.
    """

    scores: Scores
    mode: str
    n_submitted: int
    missing: list[str]
    extra: list[str]
    invalid: dict[str, str]
    truth_idx: np.ndarray = field(repr=False)
    pred_idx: np.ndarray = field(repr=False)
    pred_masks: np.ndarray = field(repr=False)

    @property
    def n_scored(self) -> int:
        return self.scores.n_clips

    def confusion(self) -> np.ndarray:
        """(36, 37) confusion matrix over the scored clips (last column: other / missing)."""
        return confusion_matrix(self.truth_idx, self.pred_idx)

    def breakdowns(self) -> dict[str, list[dict[str, object]]]:
        args = (self.truth_idx, self.pred_idx)
        return {
            "per_emotion": breakdown_by_emotion(*args, pred_masks=self.pred_masks),
            "per_salience": breakdown_by_salience(*args, pred_masks=self.pred_masks),
            "per_pair": breakdown_by_pair(*args, pred_masks=self.pred_masks),
        }

    def as_dict(self, *, details: bool = True, max_names: int | None = None) -> dict[str, Any]:
        """A JSON-ready summary; ``details`` adds breakdowns and the confusion matrix."""

        def names(values: Sequence[str]) -> list[str]:
            return list(values if max_names is None else values[:max_names])

        out: dict[str, Any] = {
            "acc_presence": self.scores.acc_presence,
            "acc_salience": self.scores.acc_salience,
            "score": self.scores.score,
            "mode": self.mode,
            "n_scored": self.n_scored,
            "n_blends": self.scores.n_blends,
            "n_submitted": self.n_submitted,
            "n_missing": len(self.missing),
            "n_extra": len(self.extra),
            "n_invalid": len(self.invalid),
            "missing": names(self.missing),
            "extra": names(self.extra),
            "invalid": dict(list(self.invalid.items())[: max_names if max_names is not None else None]),
        }
        if details:
            out.update(self.breakdowns())
            out["confusion"] = {
                "rows": list(LABEL_NAMES),
                "columns": list(LABEL_NAMES) + ["other"],
                "counts": self.confusion().tolist(),
            }
        return out


def score_predictions(
    preds: Mapping[str, Any], truth: Mapping[str, int] | None = None, *, lenient: bool = False
) -> ScoreReport:
    """Score submitted predictions against ``{clip: label index}`` truth.

    Parameters
    ----------
    preds : mapping
        ``{clip: entries}`` as from :func:`load_predictions` (clip names may carry an
        extension; entries need not be valid).
    truth : mapping, optional
        ``{clip: label index}``, e.g. from :func:`read_truth`. Without it the truth is parsed
        from the submitted (descriptive) clip names.
    lenient : bool, keyword-only
        False (strict, the default): every truth clip is scored; a missing or invalid clip
        counts as wrong. True: exactly the challenge's reference functions
        (``acc_presence_total``, ``acc_salience_total``) on every input they accept: each
        submitted key whose clip has a truth is scored as submitted, even when it is not a
        valid label - presence compares the set of emotion names (saliences are not read),
        salience counts, for blend truths, a two-entry prediction whose map
        ``emotion -> round(float(salience))`` equals the truth's (so ``"70"`` reads as 70).
        Inputs the reference cannot read (it raises) count as wrong here.
    """
    if not isinstance(preds, Mapping):
        raise BlemoreError(f"predictions: expected an object {{clip: [...]}}, got {_kind(preds)}")
    invalid = find_problems(preds)
    by_stem: dict[str, Any] = {}
    for clip, entries in preds.items():
        stem = clip_stem(clip)
        if stem and stem not in by_stem:
            by_stem[stem] = entries
    if truth is None:
        truth = truth_from_names(by_stem)
    truth = {clip_stem(k): int(v) for k, v in truth.items()}
    missing = [c for c in truth if c not in by_stem]
    extra = [c for c in by_stem if c not in truth]
    if lenient:
        masks, idx, truth_idx = _lenient_codes(preds, truth)
    else:
        masks, idx, truth_idx = _strict_codes(by_stem, truth, {clip_stem(c) for c in invalid})
    scores = score_codes(truth_idx, masks, idx)
    return ScoreReport(
        scores=scores,
        mode="lenient" if lenient else "strict",
        n_submitted=len(preds),
        missing=missing,
        extra=extra,
        invalid=invalid,
        truth_idx=truth_idx,
        pred_idx=idx,
        pred_masks=masks,
    )


def _strict_codes(
    by_stem: Mapping[str, Any], truth: Mapping[str, int], invalid_stems: set[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Codes of every truth clip: a missing or invalid one is wrong."""
    scored = list(truth)
    masks = np.full(len(scored), INVALID_MASK, dtype=np.int64)
    idx = np.full(len(scored), OTHER, dtype=np.int64)
    for k, clip in enumerate(scored):
        if clip in by_stem and clip not in invalid_stems:
            masks[k], idx[k] = prediction_code(by_stem[clip])
    return masks, idx, np.array([truth[c] for c in scored], dtype=np.int64)


def _lenient_codes(preds: Mapping[str, Any], truth: Mapping[str, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Codes of every submitted key that has a truth, each as submitted (as the reference scorer).

    Keys are scored one by one, as the reference iterates over them: two keys naming the same
    clip (``x`` and ``x.mov``) are both scored.
    """
    scored = [(clip, clip_stem(clip)) for clip in preds if clip_stem(clip) in truth]
    codes = [prediction_code(preds[clip]) for clip, _ in scored]
    masks = np.array([m for m, _ in codes], dtype=np.int64).reshape(-1)
    idx = np.array([i for _, i in codes], dtype=np.int64).reshape(-1)
    return masks, idx, np.array([truth[stem] for _, stem in scored], dtype=np.int64)


# --------------------------------------------------------------------------- bundled example


def example_files() -> tuple[Path, Path]:
    """Paths of the bundled example: ``(submission JSON, truth CSV)``.

    >>> sub, truth = example_files()
    >>> (sub.name, truth.name)
    ('example_submission.json', 'example_truth.csv')
    """
    folder = Path(__file__).resolve().parent / "examples"
    return folder / "example_submission.json", folder / "example_truth.csv"


# --------------------------------------------------------------------------- probability tables


@dataclass(frozen=True)
class ProbabilityTable:
    """Per-clip probabilities read by :func:`read_probability_table`.

    ``labels`` holds the label names of a ``label`` column (None where empty), or is None
    when the file has no labels.
    """

    filenames: list[str]
    probs: np.ndarray
    labels: list[str | None] | None = None


def _table_from_columns(
    source: str, columns: Mapping[str, Sequence[Any]], n: int
) -> ProbabilityTable:
    missing = [c for c in ("filename", *EMOTIONS) if c not in columns]
    if missing:
        raise BlemoreError(
            f"{source}: missing column(s) {', '.join(missing)} (expected filename, {', '.join(EMOTIONS)})"
        )
    filenames = [clip_stem(str(f)) for f in columns["filename"]]
    probs = np.empty((n, len(EMOTIONS)), dtype=np.float64)
    for j, e in enumerate(EMOTIONS):
        for i, value in enumerate(columns[e]):
            try:
                probs[i, j] = float(value)
            except (TypeError, ValueError):
                raise BlemoreError(
                    f"{source}: row {i} (clip {filenames[i]!r}): column {e} value {value!r} is not a number"
                ) from None
    labels = None
    if "label" in columns:
        labels = [None if v is None or str(v).strip() in ("", "nan", "None") else str(v).strip() for v in columns["label"]]
    return _checked_table(source, filenames, probs, labels)


def _checked_table(
    source: str, filenames: list[str], probs: np.ndarray, labels: list[str | None] | None
) -> ProbabilityTable:
    from blemore.decoding import check_probabilities

    if not filenames:
        raise BlemoreError(f"{source}: no rows")
    seen: set[str] = set()
    for name in filenames:
        if not name:
            raise BlemoreError(f"{source}: empty filename")
        if name in seen:
            raise BlemoreError(f"{source}: clip {name!r} appears twice")
        seen.add(name)
    probs = check_probabilities(probs, source=source, names=filenames, sum_to_one=True)
    return ProbabilityTable(filenames=filenames, probs=probs, labels=labels)


def read_probability_table(path: str | os.PathLike[str]) -> ProbabilityTable:
    """Read per-clip probabilities from ``.csv``, ``.parquet`` or ``.npz``.

    A table (CSV or parquet) has a ``filename`` column and one column per emotion
    (``ang, disg, fea, hap, sad, neu``); other columns are ignored except ``label``
    (label names), used as truth by ``blemore tune``. An ``.npz`` holds ``probs`` (N x 6)
    and ``filenames`` (N), optionally ``labels`` (names or indices). Parquet needs pandas.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    source = str(p)
    if suffix in (".csv", ".parquet", ".pq", ".npz") and not p.is_file():
        if p.is_dir():
            raise IsADirectoryError(21, "Is a directory", str(p))
        raise FileNotFoundError(2, "No such file", str(p))
    if suffix == ".csv":
        header, rows = _read_csv(p)
        columns = {c: [r.get(c) for r in rows] for c in header}
        return _table_from_columns(source, columns, len(rows))
    if suffix in (".parquet", ".pq"):
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover - pandas is a dependency
            raise BlemoreError(f"{source}: reading parquet needs pandas and pyarrow; use a CSV instead") from None
        try:
            df = pd.read_parquet(p)
        except Exception as exc:  # pyarrow raises many types for broken files
            raise BlemoreError(f"{source}: not a readable parquet file ({type(exc).__name__}: {exc})") from None
        columns = {str(c): df[c].tolist() for c in df.columns}
        return _table_from_columns(source, columns, len(df))
    if suffix == ".npz":
        data = load_npz(p)
        if "probs" not in data or "filenames" not in data:
            raise BlemoreError(
                f"{source}: expected arrays 'probs' (N x 6) and 'filenames' (N), found {', '.join(sorted(data)) or 'none'}"
            )
        probs = data["probs"]
        names = [clip_stem(str(f)) for f in data["filenames"].reshape(-1)]
        raw_labels = data["labels"].reshape(-1) if "labels" in data else None
        if probs.ndim != 2 or probs.shape[0] != len(names):
            raise BlemoreError(f"{source}: 'probs' has shape {probs.shape}, expected ({len(names)}, 6) to match 'filenames'")
        labels = None
        if raw_labels is not None:
            if raw_labels.size != len(names):
                raise BlemoreError(f"{source}: 'labels' has {raw_labels.size} entries, expected {len(names)}")
            if np.issubdtype(raw_labels.dtype, np.integer):
                if ((raw_labels < 0) | (raw_labels >= N_LABELS)).any():
                    raise BlemoreError(f"{source}: 'labels' holds indices outside 0..{N_LABELS - 1}")
                labels = [LABEL_NAMES[int(i)] for i in raw_labels]
            else:
                labels = [str(v).strip() or None for v in raw_labels]
        return _checked_table(source, names, probs, labels)
    raise BlemoreError(f"{source}: expected a .csv, .parquet or .npz file of probabilities, got {suffix or 'no extension'!r}")


__all__ += ["ProbabilityTable", "read_probability_table"]
