"""What a run works on: its clips, features, actors and the data of each training unit.

:func:`build_context` loads every feature set the units need (once each), the frame
sequences of the attention model, and the actor of every clip for the methods that use
actors: training clips from their metadata, test clips from theirs or — when anonymised —
pseudo-actors found by :func:`blemore.protocol.actors.discover_actors`, with the agreement
of that procedure with the true actors measured on the training folds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from blemore.errors import BlemoreError
from blemore.features.loading import FeatureRows, load_feature_set
from blemore.labels import clip_stem
from blemore.protocol.actors import (
    ActorDiscovery,
    actor_standardise,
    discover_actors,
    discovery_agreement,
    emotion_directions,
    estimate_actor_count,
    is_missing_actor,
)
from blemore.protocol.config import Inputs, RunConfig, parse_test_actors
from blemore.protocol.methods import UnitKey
from blemore.protocol.plans import clip_folds
from blemore.protocol.units import UnitData

__all__ = ["RunContext", "build_context", "load_sequences", "test_actor_ids"]


@dataclass
class RunContext:
    """The run's clips (training clips first, then test clips), features per set, actors, folds."""

    config: RunConfig
    inputs: Inputs
    clips: list[str]
    truth: np.ndarray
    folds: np.ndarray
    features: dict[str, FeatureRows] = field(default_factory=dict)
    sequences: dict[str, Any] = field(default_factory=dict)
    actors: dict[str, list[str]] = field(default_factory=dict)
    discovery: dict[str, ActorDiscovery] = field(default_factory=dict)

    @property
    def n_train(self) -> int:
        return len(self.truth)

    @property
    def n_clips(self) -> int:
        return len(self.clips)

    @property
    def test_clips(self) -> list[str]:
        return self.clips[self.n_train :]

    @property
    def train_actors(self) -> list[str]:
        return [str(a) for a in self.inputs.train["actor"]]

    def unit_data(self, key: UnitKey) -> UnitData:
        """The rows, truth and folds a unit trains on (actor-normalised rows for ``actor-norm``)."""
        folds = self.folds if key.folds == "actors" else clip_folds(self.n_train, n_folds=len(self.inputs.fold_ids),
                                                                   seed=self.config.seed)
        if key.trainer == "attention":
            return UnitData(None, None, self.n_train, self.n_clips, self.truth, folds,
                            sequences=self.sequences[key.feature_set])
        rows = self.features[key.feature_set]
        X = rows.X
        if key.transform == "actor-norm":
            actors = self.actors[key.feature_set]
            X = actor_standardise(X, [actors[c] for c in rows.row_clip])
        return UnitData(X, rows.row_clip, self.n_train, self.n_clips, self.truth, folds)


def test_actor_ids(labels: np.ndarray) -> list[str]:
    """Pseudo-actor names ``pseudo-01`` ... for cluster ids (never a real actor's name)."""
    width = max(2, len(str(int(labels.max()) + 1))) if len(labels) else 2
    return [f"pseudo-{int(c) + 1:0{width}d}" for c in labels]


def _discover(ctx: RunContext, feature_set: str) -> ActorDiscovery:
    """Pseudo-actors of the test clips of one feature set, and the procedure's agreement on the training folds."""
    X = ctx.features[feature_set].clip_matrix().astype(np.float64)
    train, test = X[: ctx.n_train], X[ctx.n_train :]
    _, per_actor = np.unique(ctx.train_actors, return_counts=True)
    wanted = parse_test_actors(ctx.config.test_actors)
    if isinstance(wanted, int):
        k, rule = wanted, "given (--test-actors)"
    else:
        k, rule = estimate_actor_count(len(test), per_actor), "test clips / median clips per training actor"
    found = discover_actors(test, k=k, directions=emotion_directions(train, ctx.truth), seed=ctx.config.seed)
    agreement = discovery_agreement(train, ctx.train_actors, ctx.truth, ctx.folds, seed=ctx.config.seed)
    return ActorDiscovery(test_actor_ids(found), k, rule, agreement)


def _actors_for(ctx: RunContext, feature_set: str) -> list[str]:
    test = ctx.inputs.test
    if test is None or not len(test) or ctx.inputs.test_actors_known:
        given = [] if test is None else [str(a) for a in test["actor"]]
        return ctx.train_actors + given
    if parse_test_actors(ctx.config.test_actors) == "none":  # pragma: no cover - refused in resolve_inputs
        raise BlemoreError("actor-norm needs the actors of the test clips (--test-actors auto)")
    disc = _discover(ctx, feature_set)
    ctx.discovery[feature_set] = disc
    return ctx.train_actors + disc.actors


def load_sequences(sources: dict[str, Path], parts: Sequence[str], clips: Sequence[str], *, max_frames: int):
    """Packed frame sequences of ``clips`` from the frame-level folders of ``parts`` (attention fusion)."""
    from blemore.models.attention import pack_sequences

    seqs = []
    for s in parts:
        folder = Path(sources[s])
        files = {p.stem: p for p in folder.glob("*.npy")}
        missing = [c for c in clips if clip_stem(c) not in files]
        if missing:
            raise BlemoreError(f"{s}={folder}: no frame features for {len(missing)} clip(s), e.g. {missing[0]!r}")
        seqs.append([np.load(files[clip_stem(c)], allow_pickle=False) for c in clips])
    return pack_sequences(seqs, max_frames=max_frames)


def build_context(config: RunConfig, inputs: Inputs, keys: Sequence[UnitKey], *, cache: dict | None = None) -> RunContext:
    """Load what the units ``keys`` need; pseudo-actors where an ``actor-norm`` unit meets anonymised test clips."""
    train, test = inputs.train, inputs.test
    clips = train["filename"].tolist() + ([] if test is None else test["filename"].tolist())
    ctx = RunContext(config, inputs, clips, train["label_index"].to_numpy(dtype=np.int64),
                     train["fold"].to_numpy(dtype=np.int64))
    cache = {} if cache is None else cache
    head_sets = list(dict.fromkeys([*inputs.sets, *(k.feature_set for k in keys if k.trainer != "attention")]))
    for fs in head_sets:
        ctx.features[fs] = load_feature_set(fs, config.features, clips, representation=config.loading_representation,
                                            window=config.effective_window, cache=cache, progress=config.progress)
    for key in keys:
        if key.trainer == "attention" and key.feature_set not in ctx.sequences:
            ctx.sequences[key.feature_set] = load_sequences(config.features, key.feature_set.split("+"), clips,
                                                            max_frames=config.max_frames)
        if key.transform == "actor-norm" and key.feature_set not in ctx.actors:
            ctx.actors[key.feature_set] = _actors_for(ctx, key.feature_set)
    missing = [a for a in ctx.train_actors if is_missing_actor(a)]
    if missing and any(k.transform == "actor-norm" for k in keys):
        raise BlemoreError("actor-norm needs the actor of every training clip (video_id in the metadata)")
    return ctx
