"""The BLEMORE label space: emotions, the 36 valid labels, clip-name parsing.

Pure: imports numpy and the standard library only.

Emotions are always in the order ``ang, disg, fea, hap, sad, neu``; that is the
column order of every probability vector in blemore. A *label* is either a single
emotion (salience 100) or a blend of two of the five non-neutral emotions with
saliences 50/50, 70/30 or 30/70. There are 6 + 10 x 3 = 36 valid labels; their
canonical names are ``"ang"`` and ``"ang_hap_70_30"`` (emotions in the order
above, saliences in the same order as the emotions).

>>> parse_clip_name("A411_mix_ang_hap_30_70_ver1.mov").label.name
'ang_hap_30_70'
>>> label_by_name("hap").vector.tolist()
[0.0, 0.0, 0.0, 1.0, 0.0, 0.0]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from itertools import combinations
from typing import Iterable, Sequence

import numpy as np

from blemore.errors import BlemoreError

__all__ = [
    "EMOTIONS",
    "BLEND_EMOTIONS",
    "NEUTRAL",
    "NEUTRAL_INDEX",
    "EMOTION_INDEX",
    "SALIENCE_CONFIGS",
    "Label",
    "ClipName",
    "VALID_LABELS",
    "LABEL_NAMES",
    "LABEL_INDEX",
    "SOFT_VECTORS",
    "PRESENCE_MASKS",
    "IS_BLEND",
    "N_LABELS",
    "OTHER",
    "label_by_name",
    "label_from_parts",
    "encode_prediction",
    "parse_clip_name",
    "clip_stem",
    "presence_mask",
]

EMOTIONS: tuple[str, ...] = ("ang", "disg", "fea", "hap", "sad", "neu")
NEUTRAL = "neu"
NEUTRAL_INDEX = EMOTIONS.index(NEUTRAL)
BLEND_EMOTIONS: tuple[str, ...] = tuple(e for e in EMOTIONS if e != NEUTRAL)
EMOTION_INDEX: dict[str, int] = {e: i for i, e in enumerate(EMOTIONS)}
#: Salience configurations of a blend, as (first emotion, second emotion) in
#: canonical emotion order, in the order used by :data:`VALID_LABELS`.
SALIENCE_CONFIGS: tuple[tuple[int, int], ...] = ((50, 50), (70, 30), (30, 70))
#: Code used for a prediction that is none of the 36 valid labels.
OTHER = -1


def presence_mask(emotions: Iterable[str]) -> int:
    """Bit mask of a set of emotions (bit i = ``EMOTIONS[i]``)."""
    mask = 0
    for e in emotions:
        mask |= 1 << EMOTION_INDEX[e]
    return mask


@dataclass(frozen=True)
class Label:
    """One of the 36 valid labels.

    ``parts`` holds ``(emotion, salience)`` pairs in canonical emotion order:
    ``(("hap", 100),)`` or ``(("ang", 30), ("hap", 70))``.
    """

    parts: tuple[tuple[str, int], ...]

    @property
    def name(self) -> str:
        if len(self.parts) == 1:
            return self.parts[0][0]
        (e1, s1), (e2, s2) = self.parts
        return f"{e1}_{e2}_{s1}_{s2}"

    @property
    def is_blend(self) -> bool:
        return len(self.parts) == 2

    @property
    def emotions(self) -> tuple[str, ...]:
        return tuple(e for e, _ in self.parts)

    @property
    def salience_map(self) -> dict[str, int]:
        return dict(self.parts)

    @property
    def pair(self) -> str:
        """The emotion pair (``"ang_hap"``) of a blend, or the emotion of a single."""
        return "_".join(self.emotions)

    @cached_property
    def vector(self) -> np.ndarray:
        """Soft target over :data:`EMOTIONS`: salience / 100 on each emotion."""
        v = np.zeros(len(EMOTIONS))
        for e, s in self.parts:
            v[EMOTION_INDEX[e]] = s / 100.0
        return v

    def as_prediction(self) -> list[dict[str, object]]:
        """The submission form: ``[{"emotion": "ang", "salience": 30}, ...]``."""
        return [{"emotion": e, "salience": s} for e, s in self.parts]

    def __str__(self) -> str:
        return self.name


def _build_labels() -> tuple[Label, ...]:
    labels = [Label(((e, 100),)) for e in EMOTIONS]
    for e1, e2 in combinations(BLEND_EMOTIONS, 2):
        for s1, s2 in SALIENCE_CONFIGS:
            labels.append(Label(((e1, s1), (e2, s2))))
    return tuple(labels)


VALID_LABELS: tuple[Label, ...] = _build_labels()
N_LABELS = len(VALID_LABELS)
LABEL_NAMES: tuple[str, ...] = tuple(label.name for label in VALID_LABELS)
LABEL_INDEX: dict[str, int] = {name: i for i, name in enumerate(LABEL_NAMES)}
#: (36, 6) soft target vectors, row i for ``VALID_LABELS[i]``.
SOFT_VECTORS: np.ndarray = np.stack([label.vector for label in VALID_LABELS])
SOFT_VECTORS.setflags(write=False)
#: (36,) presence bit masks.
PRESENCE_MASKS: np.ndarray = np.array([presence_mask(l.emotions) for l in VALID_LABELS], dtype=np.int64)
PRESENCE_MASKS.setflags(write=False)
#: (36,) whether each label is a blend.
IS_BLEND: np.ndarray = np.array([l.is_blend for l in VALID_LABELS])
IS_BLEND.setflags(write=False)
_PARTS_INDEX: dict[frozenset[tuple[str, int]], int] = {
    frozenset(l.parts): i for i, l in enumerate(VALID_LABELS)
}


def label_by_name(name: str) -> Label:
    """The label called ``name`` (``"ang"``, ``"ang_hap_70_30"``; pair order free)."""
    if name in LABEL_INDEX:
        return VALID_LABELS[LABEL_INDEX[name]]
    parts = name.split("_")
    if len(parts) == 4 and all(p.isdigit() for p in parts[2:]):
        return label_from_parts([(parts[0], int(parts[2])), (parts[1], int(parts[3]))])
    raise BlemoreError(
        f"unknown label {name!r}: expected one of the 36 valid labels, e.g. 'ang' or 'ang_hap_70_30'"
    )


def label_from_parts(parts: Iterable[tuple[str, float]]) -> Label:
    """The valid label with these ``(emotion, salience)`` parts, in any order.

    Saliences are compared after rounding to whole numbers, as the challenge's
    scorer does. Raises :class:`BlemoreError` if the parts form no valid label.
    """
    index = _parts_to_index(parts)
    if index == OTHER:
        raise BlemoreError(f"{list(parts)!r} is not one of the 36 valid labels")
    return VALID_LABELS[index]


def _parts_to_index(parts: Iterable[tuple[str, float]]) -> int:
    key = frozenset((e, int(round(s))) for e, s in parts)
    return _PARTS_INDEX.get(key, OTHER)


def encode_prediction(entries: Sequence[tuple[str, float]]) -> tuple[int, int]:
    """Encode one clip's prediction as ``(presence mask, label index)``.

    The mask is over the emotions named (unknown names are ignored here; the
    submission validator reports them). The label index is the valid label whose
    emotion -> round(salience) map equals the prediction's, or :data:`OTHER`.

    >>> encode_prediction([("hap", 70), ("ang", 30)]) == (0b1001, LABEL_INDEX["ang_hap_30_70"])
    True
    """
    known = [(e, s) for e, s in entries if e in EMOTION_INDEX]
    mask = presence_mask(e for e, _ in known)
    if len(known) != len(entries) or len({e for e, _ in entries}) != len(entries):
        return mask, OTHER
    try:
        return mask, _parts_to_index(known)
    except (TypeError, ValueError, OverflowError):
        return mask, OTHER


@dataclass(frozen=True)
class ClipName:
    """What a clip's file name says.

    ``label`` is None for anonymised test clips (``test_0001.mov``).
    """

    clip: str
    actor: str | None
    label: Label | None
    intensity: int | None = None
    situation: int | None = None
    version: int | None = None


_EXTENSION = re.compile(r"\.[A-Za-z0-9]{2,4}$")
_ANONYMOUS = re.compile(r"^test_\d+$")
_ACTOR = re.compile(r"^A\d+$")
_VERSION = re.compile(r"^ver(\d+)$")


def clip_stem(name: str) -> str:
    """The clip id: the base name without folder or extension (``.mov``, ``.mp4``, ``.npy``)."""
    base = re.split(r"[\\/]", str(name))[-1]
    return _EXTENSION.sub("", base)


def parse_clip_name(name: str) -> ClipName:
    """Parse a BLEMORE clip name (folder and extension allowed).

    Raises :class:`BlemoreError` naming the part that is wrong.

    >>> c = parse_clip_name("A102_ang_int1_ver1")
    >>> (c.actor, c.label.name, c.intensity, c.version)
    ('A102', 'ang', 1, 1)
    >>> parse_clip_name("test_0001.mov").label is None
    True
    """
    clip = clip_stem(name)
    if _ANONYMOUS.match(clip):
        return ClipName(clip=clip, actor=None, label=None)
    parts = clip.split("_")

    def fail(what: str) -> BlemoreError:
        return BlemoreError(
            f"clip name {clip!r}: {what} (expected e.g. 'A102_ang_int1_ver1', "
            "'A102_neu_sit1_ver1', 'A411_mix_ang_hap_30_70_ver1' or 'test_0001')"
        )

    if len(parts) < 4:
        raise fail(f"has {len(parts)} parts separated by '_', expected 4 or 7")
    actor = parts[0]
    if not _ACTOR.match(actor):
        raise fail(f"actor part {actor!r} is not 'A' followed by digits")
    version_match = _VERSION.match(parts[-1])
    if not version_match:
        raise fail(f"version part {parts[-1]!r} is not 'ver' followed by digits")
    version = int(version_match.group(1))

    if parts[1] == "mix":
        if len(parts) != 7:
            raise fail(f"a blend name has 7 parts, this one has {len(parts)}")
        e1, e2, s1, s2 = parts[2:6]
        for e in (e1, e2):
            if e not in BLEND_EMOTIONS:
                raise fail(f"blend emotion {e!r} is not one of {', '.join(BLEND_EMOTIONS)}")
        if e1 == e2:
            raise fail(f"blend names the same emotion {e1!r} twice")
        if not (s1.isdigit() and s2.isdigit()):
            raise fail(f"saliences {s1!r}/{s2!r} are not whole numbers")
        if (int(s1), int(s2)) not in SALIENCE_CONFIGS:
            raise fail(f"saliences {s1}/{s2} are not 50/50, 70/30 or 30/70")
        label = label_from_parts([(e1, int(s1)), (e2, int(s2))])
        return ClipName(clip=clip, actor=actor, label=label, version=version)

    if len(parts) != 4:
        raise fail(f"a single-emotion name has 4 parts, this one has {len(parts)}")
    emotion, level = parts[1], parts[2]
    if emotion not in EMOTION_INDEX:
        raise fail(f"emotion {emotion!r} is not one of {', '.join(EMOTIONS)} or 'mix'")
    label = VALID_LABELS[LABEL_INDEX[emotion]]
    prefix = "sit" if emotion == NEUTRAL else "int"
    m = re.match(rf"^{prefix}([1-4])$", level)
    if not m:
        raise fail(f"{'situation' if prefix == 'sit' else 'intensity'} part {level!r} is not {prefix}1-{prefix}4")
    value = int(m.group(1))
    if emotion == NEUTRAL:
        return ClipName(clip=clip, actor=actor, label=label, situation=value, version=version)
    return ClipName(clip=clip, actor=actor, label=label, intensity=value, version=version)


_CLAIMS_BLEMORE = re.compile(r"^(A\d+_|test_)")


def clip_name_problem(name: str) -> str | None:
    """Why a clip name cannot stand in a submission, or None when it can.

    A name that starts like a BLEMORE clip (an actor part ``A<digits>_`` or ``test_``) must be
    one, exactly as :func:`parse_clip_name` reads it, because that is how a scorer without a
    truth file reads labels from names (``A102_angry_int1`` is refused). Other names are the
    user's own clips (score them with a metadata file) and pass. Folder and extension are
    ignored; an empty name is refused.

    >>> clip_name_problem("A102_angry_int1_ver1")
    "clip name 'A102_angry_int1_ver1': emotion 'angry' is not one of ang, disg, fea, hap, sad, neu or 'mix' (expected e.g. 'A102_ang_int1_ver1', 'A102_neu_sit1_ver1', 'A411_mix_ang_hap_30_70_ver1' or 'test_0001')"
    >>> clip_name_problem("my_clip_01") is None
    True
    """
    stem = clip_stem(str(name))
    if not stem.strip():
        return "empty clip name"
    if not _CLAIMS_BLEMORE.match(stem):
        return None
    try:
        parse_clip_name(stem)
    except BlemoreError as exc:
        return str(exc)
    return None


def labels_to_indices(labels: Sequence[Label | str]) -> np.ndarray:
    """Indices into :data:`VALID_LABELS` for labels or label names."""
    return np.array(
        [LABEL_INDEX[l.name if isinstance(l, Label) else label_by_name(l).name] for l in labels],
        dtype=np.int64,
    )


def soft_targets(label_indices: np.ndarray) -> np.ndarray:
    """(N, 6) soft target vectors for label indices."""
    return SOFT_VECTORS[np.asarray(label_indices, dtype=np.int64)]


__all__ += ["labels_to_indices", "soft_targets", "clip_name_problem"]
