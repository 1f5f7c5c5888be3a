"""The methods: one registry, one small contract each.

A method says what to train and how to turn what was trained into labels:

- :attr:`Method.units` — the *training units* it needs for one configuration (feature set
  x head): a unit is one kind of head (``kl6``: the paper's 6-way KL head; ``ce36``: a
  36-way head; ``salreg``: salience regression; ``attention``: the transformer over frames)
  on one feature set, trained for every member of the fold plan at once. Methods share
  units: ``structured`` decodes the baseline's own ``kl6`` heads; late fusion and the
  ensemble combine ``kl6`` heads of several feature sets.
- :meth:`Method.combine` — the members' outputs of its units -> what its decoder reads
  (the unit's outputs, the stack of per-source probabilities, their mean).
- :attr:`Method.decoder` — outputs -> labels, with parameters chosen on validation
  (:mod:`blemore.protocol.selection`).

Everything else — folds, selection rules (paper, nested, pooled), test predictions, saving
the deployed model and applying it to new clips — is the same for every method
(:mod:`blemore.protocol.run`, :mod:`blemore.protocol.deploy`). To add a method, add a
:class:`Method` (or a subclass overriding :meth:`~Method.units` / :meth:`~Method.combine`)
with :func:`register_method`.

=====================  =====================================================================
method                 what changes against ``baseline``
=====================  =====================================================================
``baseline``           the paper: KL-trained head, alpha/beta thresholds tuned on validation
``structured``         the baseline's probabilities, decoded threshold-free (nearest valid
                       label in KL)
``head36``             a head over the 36 valid labels, cross-entropy, argmax
``salience-reg``       a head for which emotions are present (6 sigmoids) + the share of the
                       dominant one (regression), decoded to the nearest of the 36 labels
``actor-norm``         each actor's clips standardised by that actor's own mean / std
                       (**transductive**: test clips with their own actor's unlabelled clips;
                       anonymised test clips are grouped into pseudo-actors first)
``late-fusion``        the baseline heads of each source of a fused set, probabilities mixed
                       with convex weights (step 0.1) chosen with the thresholds
``ensemble``           the mean of the baseline probabilities of every feature set of the run
                       (and every source of a fused set), over seeds; thresholds on the mean
``attention-fusion``   a small transformer over the frame sequences of all sources
``actor-inclusive``    the baseline on random clip-level folds that ignore actors (the same
                       actor on both sides): how much identity leaks into validation; a
                       diagnostic, never submitted
=====================  =====================================================================

>>> [m for m in METHODS][:3]
['baseline', 'structured', 'head36']
>>> parse_methods("structured, actor-norm")
['baseline', 'structured', 'actor-norm']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Sequence

import numpy as np

from blemore.errors import BlemoreError
from blemore.protocol.selection import ARGMAX, SALREG, STRUCTURED, THRESHOLDS, Decoder, LateFusionDecoder

__all__ = [
    "Trainer",
    "Transform",
    "FoldKind",
    "UnitKey",
    "Method",
    "LateFusion",
    "Ensemble",
    "METHODS",
    "register_method",
    "get_method",
    "parse_methods",
    "configurations",
    "Configuration",
]

Trainer = Literal["kl6", "ce36", "salreg", "attention"]
Transform = Literal["none", "actor-norm"]
FoldKind = Literal["actors", "clips"]


@dataclass(frozen=True)
class UnitKey:
    """One training unit: a kind of head on a feature set, trained for every member of a fold plan."""

    trainer: Trainer
    feature_set: str
    model: str
    transform: Transform = "none"
    folds: FoldKind = "actors"
    variant: int = 0

    @property
    def label(self) -> str:
        parts = [self.trainer, self.feature_set, self.model]
        if self.transform != "none":
            parts.append(self.transform)
        if self.folds != "actors":
            parts.append(f"{self.folds}-folds")
        if self.variant:
            parts.append(f"seed{self.variant}")
        return " / ".join(parts)


@dataclass(frozen=True)
class Configuration:
    """One row group of the methods table: a method on a feature set with a head."""

    method: str
    feature_set: str
    model: str
    units: tuple[UnitKey, ...]

    @property
    def stem(self) -> str:
        """File-name stem: ``method__set__model`` (characters other than letters, digits, ``+._-`` -> ``_``)."""
        safe = "".join(c if c.isalnum() or c in "+._-" else "_" for c in self.feature_set)
        return f"{self.method}__{safe}__{self.model}"


@dataclass(frozen=True)
class Method:
    """A method of the registry; see the module docstring.

    ``scope``: ``set`` — one configuration per feature set of the run; ``fused`` — one per
    fused set (``a+b``), or all sources together when no fused set is given; ``run`` — one
    for the whole run. ``max_epoch_points`` limits the candidate epochs of selection (None:
    every epoch). ``deployable`` methods get test predictions, a saved model and a zip.
    """

    name: str
    summary: str
    decoder: Decoder
    trainer: Trainer = "kl6"
    transform: Transform = "none"
    folds: FoldKind = "actors"
    scope: Literal["set", "fused", "run"] = "set"
    deployable: bool = True
    needs_actors: bool = False
    needs_frames: bool = False
    min_sources: int = 1
    max_epoch_points: int | None = None
    heads: bool = True  # trained per head model (linear, mlp...); False: a model of its own
    transductive: str | None = None

    def units(self, feature_set: str, model: str, *, variants: int = 1) -> tuple[UnitKey, ...]:
        """The training units one configuration needs."""
        return (UnitKey(self.trainer, feature_set, model, self.transform, self.folds),)

    def combine(self, outputs: Sequence[np.ndarray]) -> np.ndarray:
        """The decoder's input from its units' outputs of one member (same clips, same epochs)."""
        return outputs[0]

    def feature_sets(self, sets: Sequence[str], sources: Sequence[str]) -> list[str]:
        """The feature-set labels of its configurations."""
        if self.scope == "set":
            return list(sets)
        fused = [s for s in sets if "+" in s]
        if self.scope == "fused":
            return fused or (["+".join(sources)] if len(sources) > 1 else [])
        return [ensemble_label(sets, sources)]


@dataclass(frozen=True)
class LateFusion(Method):
    """Per-source baseline heads, probabilities mixed with convex weights chosen with the thresholds."""

    def units(self, feature_set: str, model: str, *, variants: int = 1) -> tuple[UnitKey, ...]:
        return tuple(UnitKey("kl6", s, model) for s in feature_set.split("+"))

    def combine(self, outputs: Sequence[np.ndarray]) -> np.ndarray:
        return np.stack(list(outputs), axis=-2)


@dataclass(frozen=True)
class Ensemble(Method):
    """The mean of the baseline probabilities of several feature sets (and seeds)."""

    def units(self, feature_set: str, model: str, *, variants: int = 1) -> tuple[UnitKey, ...]:
        members = [s.strip() for s in feature_set.split(",")]
        return tuple(UnitKey("kl6", s, model, variant=v) for v in range(max(1, variants)) for s in members)

    def combine(self, outputs: Sequence[np.ndarray]) -> np.ndarray:
        return np.mean(np.stack(list(outputs)), axis=0)


def ensemble_label(sets: Sequence[str], sources: Sequence[str]) -> str:
    """The feature sets an ensemble averages: every set of the run and every source of a fused set, in order."""
    members = list(dict.fromkeys([*sets, *(p for s in sets if "+" in s for p in s.split("+"))]))
    return ", ".join(members)


_LATE = LateFusionDecoder(2)  # the decoder of a 2-source fusion; :func:`decoder_for` sizes it per set

#: Methods by name, in table order.
METHODS: dict[str, Method] = {}


def register_method(method: Method) -> Method:
    """Add ``method`` to :data:`METHODS` (its name must be new); returns it."""
    if method.name in METHODS:
        raise BlemoreError(f"a method named {method.name!r} is already registered")
    METHODS[method.name] = method
    return method


for _m in (
    Method("baseline", "the paper: KL-trained head, alpha/beta thresholds tuned on validation", THRESHOLDS),
    Method("structured", "threshold-free KL decoding of the baseline probabilities", STRUCTURED),
    Method("head36", "36-way cross-entropy head, argmax", ARGMAX, trainer="ce36"),
    Method("salience-reg", "presence sigmoids + dominant-share regression, nearest label", SALREG, trainer="salreg"),
    Method("actor-norm", "each actor's clips standardised by their own statistics", THRESHOLDS,
           transform="actor-norm", needs_actors=True,
           transductive="test clips standardised with their own actor's (or pseudo-actor's) unlabelled clips"),
    LateFusion("late-fusion", "convex weights (step 0.1) over per-source baseline heads, chosen with the thresholds",
               _LATE, scope="fused", min_sources=2, max_epoch_points=12),
    Ensemble("ensemble", "mean of the baseline probabilities of every feature set (and seed), thresholds on the mean",
             THRESHOLDS, scope="run", min_sources=1),
    Method("attention-fusion", "transformer over the frame sequences of all sources", THRESHOLDS,
           trainer="attention", scope="fused", needs_frames=True, min_sources=2, heads=False),
    Method("actor-inclusive", "random clip-level folds, actors on both sides: identity leaks into validation",
           THRESHOLDS, folds="clips", deployable=False),
):
    register_method(_m)


def get_method(name: str) -> Method:
    """The registered method called ``name`` (``_`` and ``-`` alike); one-line error listing the known ones."""
    key = str(name).strip().lower().replace("_", "-")
    if key not in METHODS:
        raise BlemoreError(f"unknown method {name!r}: expected one of {', '.join(METHODS)} (or 'all')")
    return METHODS[key]


def decoder_for(method: Method, feature_set: str) -> Decoder:
    """The method's decoder for one configuration (late fusion: weights over that set's sources)."""
    if isinstance(method, LateFusion):
        return LateFusionDecoder(len(feature_set.split("+")))
    return method.decoder


def parse_methods(spec: str | Sequence[str]) -> list[str]:
    """``"baseline,structured,..."`` (or a list; ``all``: every method) -> names in table order; baseline always in.

    >>> parse_methods("all")[-1]
    'actor-inclusive'
    """
    items = [spec] if isinstance(spec, str) else list(spec)
    names: set[str] = {"baseline"}
    for item in items:
        for part in str(item).split(","):
            if not part.strip():
                continue
            if part.strip().lower() == "all":
                names.update(METHODS)
            else:
                names.add(get_method(part).name)
    return [m for m in METHODS if m in names]


@dataclass
class Applicability:
    """Which asked-for methods can run on these inputs, and why the others cannot."""

    methods: list[str]
    skipped: dict[str, str] = field(default_factory=dict)


def applicable(names: Sequence[str], *, sources: Sequence[str], frame_sources: Sequence[str],
               explicit: bool) -> Applicability:
    """Keep the methods whose needs are met; ``explicit`` (named one by one, not ``all``): an unmet need is an error."""
    out = Applicability([])
    for name in names:
        m = METHODS[name]
        why = None
        if len(sources) < m.min_sources:
            why = f"needs at least {m.min_sources} feature sources (--features a=... --features b=...)"
        elif m.needs_frames:
            flat = [s for s in sources if s not in frame_sources]
            if flat:
                why = (f"needs frame-level features (a folder of <clip>.npy); {flat[0]} is a clip-level file")
        if why is None:
            out.methods.append(name)
        elif explicit:
            raise BlemoreError(f"{name} {why}")
        else:
            out.skipped[name] = why
    return out


def configurations(methods: Sequence[str], *, sets: Sequence[str], sources: Sequence[str], models: Sequence[str],
                   seeds: int = 1) -> list[Configuration]:
    """Every (method, feature set, model) to run, with the units each needs, in table order."""
    out = []
    for name in methods:
        m = METHODS[name]
        for fs in m.feature_sets(sets, sources):
            for model in (models if m.heads else ["attention"]):
                variants = seeds if isinstance(m, Ensemble) else 1
                out.append(Configuration(name, fs, model, m.units(fs, model, variants=variants)))
    return out


__all__ += ["decoder_for", "applicable", "Applicability", "ensemble_label"]
