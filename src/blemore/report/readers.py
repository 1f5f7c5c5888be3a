"""Tolerant readers of a run folder's CSV and JSON files: what is sound is kept, what is wrong is one line.

Each reader appends at most one line to ``problems`` per file, naming the file and what is wrong
with it, and returns what can be used (or ``None``):

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
>>> _ = path.write_text("a,b\\n1,2\\n3,")   # the last row is cut short
>>> problems = []
>>> read_table(path, ("a", "b"), problems)["a"].tolist(), problems[0].split(": ", 1)[1]
([1.0], 'ends mid-line (cut short?): its last row (line 3) is left out')
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["read_table", "read_json_object", "first_line"]


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name if it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _csv_records(path: Path) -> tuple[list[list[str]], list[str]]:
    """The records of a CSV file and what is wrong with it (raises ValueError if it is not CSV text)."""
    raw = path.read_bytes()
    if not raw.strip():
        raise ValueError("the file is empty")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text (byte {exc.start}); the file is damaged") from None
    if "\x00" in text:
        raise ValueError("holds NUL bytes; the file is damaged")
    records, lines = [], []
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        for record in reader:
            if record:
                records.append(record)
                lines.append(reader.line_num)
    except csv.Error as exc:
        raise ValueError(f"not CSV ({first_line(exc)})") from None
    issues = []
    if not text.endswith(("\n", "\r")):
        if len(records) == 1:
            raise ValueError("ends inside its header line (cut short?)")
        records.pop()
        issues.append(f"ends mid-line (cut short?): its last row (line {lines.pop()}) is left out")
    width = len(records[0])
    bad = [line for line, r in zip(lines, records) if len(r) != width]
    if bad:
        issues.append(
            f"{len(bad)} row(s) without the header's {width} fields (e.g. line {bad[0]}) are left out"
        )
        records = [r for r in records if len(r) == width]
    return records, issues


def read_table(
    path: Path, required: tuple[str, ...], problems: list[str], *, text: tuple[str, ...] = ()
) -> pd.DataFrame | None:
    """Read a CSV part of the run, keeping what is sound; ``None`` if nothing is.

    Columns in ``text`` are kept as stripped strings (missing -> ``""``), every other column
    is converted to numbers. Whatever is wrong with the file becomes one line in ``problems``
    naming it: rows cut short or with the wrong number of fields (left out), values that are
    not numbers (shown as missing), missing columns, a file that is not CSV text at all.
    """
    try:
        records, issues = _csv_records(path)
        header = [h.strip() for h in records[0]]
        table = pd.DataFrame(records[1:], columns=header, dtype=object)
    except (OSError, ValueError, IndexError) as exc:
        problems.append(f"{path}: cannot be read as CSV ({first_line(exc)})")
        return None
    missing = [c for c in required if c not in table.columns]
    if missing:
        problems.append(f"{path}: missing column(s) {', '.join(missing)}; has {', '.join(header)}")
        return None
    for col in table.columns:
        if col in text:
            table[col] = table[col].fillna("").astype(str).str.strip()
            continue
        values = table[col].fillna("").astype(str).str.strip()
        numbers = pd.to_numeric(values.where(values != "", None), errors="coerce")
        junk = numbers.isna() & (values != "") & ~values.str.lower().isin(("nan", "na", "none", "null"))
        if junk.any():
            issues.append(
                f"column {col}: {int(junk.sum())} value(s) that are not numbers "
                f"(e.g. {values[junk].iloc[0]!r})"
            )
        table[col] = numbers.astype(float)
    if issues:
        problems.append(f"{path}: " + "; ".join(issues))
    return table


def read_json_object(path: Path, problems: list[str]) -> dict[str, Any] | None:
    """A JSON object from ``path``; ``None`` and one line in ``problems`` if it is not one."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        problems.append(f"{path}: not valid JSON ({first_line(exc)})")
        return None
    if not isinstance(value, dict):
        problems.append(f"{path}: expected a JSON object, found {type(value).__name__}")
        return None
    return value
