"""The challenge's reference scoring functions, re-implemented from their documented behaviour.

Written for the property tests of ``score --lenient``: the same arithmetic on the same
Python objects, and the same failures, so that a test can tell which inputs the reference
accepts (:class:`Refused` for the others). Labels come from the clip names as the reference
reads them: the name split on ``_``; a blend's saliences are the name's strings (``"70"``),
a single's salience is 1.0.
"""

from __future__ import annotations

from typing import Any, Mapping


class Refused(Exception):
    """The reference raises on this input (or returns NaN): it is not a score it gives."""


def label_from_name(name: str) -> list[dict[str, Any]]:
    """The truth of a clip as the reference builds it from the clip's name."""
    parts = name.split("_")
    if parts[1] == "mix":
        return [{"emotion": parts[2], "salience": parts[4]}, {"emotion": parts[3], "salience": parts[5]}]
    return [{"emotion": parts[1], "salience": 1.0}]


def _emotions(entries: Any) -> set[Any]:
    return {entry["emotion"] for entry in entries}


def _rounded(entries: Any) -> dict[Any, int]:
    return {entry["emotion"]: round(float(entry["salience"])) for entry in entries}


def _presence(preds: Mapping[str, Any]) -> float:
    hits = [_emotions(label_from_name(name)) == _emotions(entries) for name, entries in preds.items()]
    if not hits:
        raise Refused("no predictions: the reference's mean of nothing is NaN")
    return sum(hits) / len(hits)


def _salience(preds: Mapping[str, Any]) -> float:
    hits = []
    for name, entries in preds.items():
        truth = label_from_name(name)
        if len(truth) != 2:
            continue
        hits.append(len(entries) == 2 and _rounded(truth) == _rounded(entries))
    return sum(hits) / len(hits) if hits else 0.0


def reference_scores(preds: Mapping[str, Any]) -> tuple[float, float]:
    """``(presence, salience)`` as the reference computes them, or :class:`Refused`."""
    try:
        return _presence(preds), _salience(preds)
    except Refused:
        raise
    except Exception as exc:  # whatever the reference would raise on
        raise Refused(f"{type(exc).__name__}: {exc}") from None
