"""Submissions in the form of the challenge's template.

The official template (``data/submission_template.json`` of the challenge's repository,
zipped for CodaBench) is one JSON file at the zip's root, ``{"predictions": {...}}``, keyed by
the test clips' file names — ``test_0001.mov`` … — with ``100.0`` as the salience of a single
emotion and ``70`` / ``30`` or ``50`` / ``50`` for a blend.

Key rule: a clip's key is its clip id (the metadata's ``filename`` without folder or
extension) followed by :data:`KEY_EXTENSION` (``.mov``, the container BLEMORE ships and the
template names), for the anonymised test partition and for any other clips alike;
``blemore score`` matches keys by clip id, so such a zip scores against any metadata.

>>> challenge_predictions(["test_0001", "test_0002"], [3, 14])
{'test_0001.mov': [{'emotion': 'hap', 'salience': 100.0}], 'test_0002.mov': [{'emotion': 'ang', 'salience': 30}, {'emotion': 'hap', 'salience': 70}]}
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from blemore.errors import BlemoreError
from blemore.labels import N_LABELS, VALID_LABELS, clip_stem

__all__ = ["KEY_EXTENSION", "challenge_key", "challenge_predictions", "template_form", "check_clip_set"]

#: The extension of every key (see the key rule in the module docstring).
KEY_EXTENSION = ".mov"


def challenge_key(clip: str) -> str:
    """``"test_0001"`` (or ``"clips/test_0001.mp4"``) -> ``"test_0001.mov"``."""
    return clip_stem(str(clip)) + KEY_EXTENSION


def challenge_predictions(clips: Sequence[str], labels: Sequence[int] | np.ndarray) -> dict[str, list[dict[str, Any]]]:
    """Predictions keyed and valued as the template: singles at ``100.0``, blends at whole-number saliences."""
    idx = np.asarray(labels)
    if idx.shape != (len(clips),):
        raise BlemoreError(f"got {len(clips)} clips but labels of shape {idx.shape}")
    out: dict[str, list[dict[str, Any]]] = {}
    for clip, i in zip(clips, idx.tolist()):
        if not 0 <= int(i) < N_LABELS:
            raise BlemoreError(f"clip {clip!r}: {i!r} is not a label index in 0..{N_LABELS - 1}")
        key = challenge_key(clip)
        if key in out:
            raise BlemoreError(f"clip {clip_stem(str(clip))!r} appears twice")
        entries = VALID_LABELS[int(i)].as_prediction()
        if len(entries) == 1:
            entries = [{"emotion": entries[0]["emotion"], "salience": 100.0}]
        out[key] = entries
    return out


def template_form(preds: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Validated predictions (any key and salience spelling) in the template's form: ``<clip>.mov``, ``100.0``.

    >>> template_form({"clips/test_0001.mp4": [{"emotion": "sad", "salience": 100}]})
    {'test_0001.mov': [{'emotion': 'sad', 'salience': 100.0}]}
    """
    from blemore.metrics import prediction_code

    clips, labels = [], []
    for clip, entries in preds.items():
        _, index = prediction_code(entries)
        if index < 0:
            raise BlemoreError(f"clip {clip!r}: not one of the 36 valid labels; validate the predictions first")
        clips.append(clip)
        labels.append(index)
    return challenge_predictions(clips, labels)


def check_clip_set(predicted: Sequence[str], expected: Sequence[str], *, source: str) -> str:
    """Check that ``predicted`` holds every clip of ``expected`` once and nothing else; returns what was checked.

    Clips are compared by clip id. Raises :class:`BlemoreError` naming the first missing,
    extra or repeated clip.
    """
    pred = [clip_stem(str(c)) for c in predicted]
    want = [clip_stem(str(c)) for c in expected]
    seen: set[str] = set()
    for c in pred:
        if c in seen:
            raise BlemoreError(f"{source}: clip {c!r} is predicted twice")
        seen.add(c)
    wanted = set(want)
    missing = [c for c in want if c not in seen]
    extra = [c for c in pred if c not in wanted]
    if missing:
        raise BlemoreError(f"{source}: {len(missing)} clip(s) of the test metadata are not predicted "
                           f"(e.g. {missing[0]!r})")
    if extra:
        raise BlemoreError(f"{source}: {len(extra)} predicted clip(s) are not in the test metadata (e.g. {extra[0]!r}); "
                           "a submission holds the test clips only")
    return f"{len(pred)} clips, each of the test metadata's clips exactly once, no other clip"
