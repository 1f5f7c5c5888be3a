"""A deployed method: the models trained on all training clips, the chosen epoch and decoder parameters.

A :class:`Deployment` is what ``blemore predict`` applies to new clips. It is saved in the
run folder without pickle — ``models/<method>__<set>__<model>/model.json`` (settings, chosen
epoch and parameters per rule, the units) and one ``.npz`` of plain arrays per unit model —
and loaded with every part checked, so a damaged file is one clear error, never a traceback
or a silent switch to another model.

Rules: ``pooled`` (every deployable method: epoch and parameters chosen on the pooled
out-of-fold predictions) and, for the baseline, ``paper`` (the paper's test rule, see
``--paper-test``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from blemore.errors import BlemoreError
from blemore.features.loading import load_feature_set
from blemore.models.trainer import HeadParams
from blemore.protocol.actors import actor_standardise, discover_actors, estimate_actor_count, is_missing_actor
from blemore.protocol.methods import METHODS, Configuration, Method, UnitKey, decoder_for
from blemore.protocol.runfolder import RunFolder
from blemore.protocol.selection import params_from_json, params_to_json
from blemore.protocol.units import outputs_of

__all__ = ["RuleChoice", "Deployment", "ActorModel", "Prediction", "load_deployment", "list_deployments",
           "probabilities_of"]


@dataclass
class RuleChoice:
    """How one rule deploys: the epoch, the decoder's parameters and the unit models (one per unit)."""

    epoch: int
    params: Any
    models: list[Any]
    note: dict = field(default_factory=dict)


@dataclass
class ActorModel:
    """What an ``actor-norm`` deployment needs to find pseudo-actors in new clips: emotion directions, clips per actor."""

    directions: np.ndarray
    clips_per_actor: float


@dataclass
class Prediction:
    """Outputs (the decoder's input; probabilities for most methods, None for label-only heads) and labels."""

    clips: list[str]
    labels: np.ndarray
    probabilities: np.ndarray | None
    actors: list[str] | None = None


@dataclass
class Deployment:
    """A configuration's deployed models; see the module docstring."""

    configuration: Configuration
    representation: str
    window: int
    max_frames: int
    dims: list[int]
    rules: dict[str, RuleChoice]
    validation: dict[str, float] = field(default_factory=dict)
    actor_models: dict[str, ActorModel] = field(default_factory=dict)

    @property
    def method(self) -> str:
        return self.configuration.method

    # ------------------------------------------------------------------ saving

    def save(self, run: RunFolder) -> str:
        """Write ``models/<stem>/`` into the run; returns that folder (relative)."""
        base = f"models/{self.configuration.stem}"
        rules = {}
        for rule, choice in self.rules.items():
            files = []
            for i, model in enumerate(choice.models):
                name = f"{rule}-unit{i}.npz"
                arrays = model.as_dict() if isinstance(model, HeadParams) else model.to_arrays()
                run.save_npz(f"{base}/{name}", **arrays)
                files.append(name)
            rules[rule] = {"epoch": int(choice.epoch), "params": params_to_json(choice.params), "files": files,
                           **choice.note}
        for fs, am in self.actor_models.items():
            run.save_npz(f"{base}/actors-{_safe(fs)}.npz", directions=am.directions,
                         clips_per_actor=np.array(am.clips_per_actor))
        c = self.configuration
        run.write_json(f"{base}/model.json", {
            "format": "blemore-model", "version": 1, "method": c.method, "feature_set": c.feature_set,
            "model": c.model, "representation": self.representation, "window": self.window,
            "max_frames": self.max_frames, "dims": self.dims,
            "units": [_key_json(k) for k in c.units],
            "attention": [self._attention_settings(m) for m in next(iter(self.rules.values())).models],
            "rules": rules, "validation": self.validation,
            "actor_models": sorted(self.actor_models),
        })
        return base

    @staticmethod
    def _attention_settings(model: Any) -> dict | None:
        return None if isinstance(model, HeadParams) else model.settings()

    # ------------------------------------------------------------------ predicting

    def predict(self, features: dict[str, Path], clips: Sequence[str], *, rule: str = "pooled",
                actors: Sequence[object] | None = None, test_actors: str | int = "auto", seed: int = 0,
                progress: bool = False) -> Prediction:
        """Labels (and probabilities) of ``clips`` from the features in ``features`` (NAME -> path)."""
        if rule not in self.rules:
            raise BlemoreError(f"{self.configuration.stem}: no {rule!r} rule (it has {', '.join(self.rules)})")
        choice = self.rules[rule]
        method = METHODS[self.method]
        outputs, used_actors = [], None
        cache: dict = {}
        for key, model, dim in zip(self.configuration.units, choice.models, self.dims):
            if key.trainer == "attention":
                from blemore.protocol.context import load_sequences

                seqs = load_sequences(features, key.feature_set.split("+"), clips, max_frames=self.max_frames)
                outputs.append(outputs_of(model, key.trainer, sequences=seqs))
                continue
            rows = load_feature_set(key.feature_set, features, list(clips), representation=self.loading,
                                    window=self.window, cache=cache, progress=progress)
            if rows.dim != dim:
                raise BlemoreError(
                    f"features for {key.feature_set} have {rows.dim} dims but the model {self.configuration.stem} "
                    f"expects {dim}; use the same encoders and representation as the run"
                )
            X = rows.X
            if key.transform == "actor-norm":
                used_actors = self._clip_actors(key.feature_set, rows, clips, actors, test_actors, seed)
                X = actor_standardise(X, [used_actors[c] for c in rows.row_clip])
            outputs.append(outputs_of(model, key.trainer, X, rows.row_clip))
        combined = method.combine(outputs)
        labels = decoder_for(method, self.configuration.feature_set).decode(combined, choice.params)
        return Prediction(list(clips), np.asarray(labels, dtype=np.int64),
                          probabilities_of(method, combined, choice.params), used_actors)

    @property
    def loading(self) -> str:
        return "stats" if self.representation == "stats" else "windows"

    def _clip_actors(self, fs: str, rows, clips: Sequence[str], actors: Sequence[object] | None,
                     test_actors: str | int, seed: int) -> list[str]:
        if actors is not None and not any(is_missing_actor(a) for a in actors):
            return [str(a) for a in actors]
        if str(test_actors).lower() == "none":
            raise BlemoreError(
                f"{self.method} needs the actor of every clip and some have none: give --metadata with actors "
                "(video_id) or --test-actors auto / N to discover pseudo-actors"
            )
        am = self.actor_models.get(fs)
        if am is None:
            raise BlemoreError(f"{self.configuration.stem}: the saved model has no actor model for {fs}")
        X = rows.clip_matrix().astype(np.float64)
        k = int(test_actors) if str(test_actors).isdigit() else estimate_actor_count(len(clips), [am.clips_per_actor])
        from blemore.protocol.context import test_actor_ids

        return test_actor_ids(discover_actors(X, k=k, directions=am.directions, seed=seed))


def probabilities_of(method: Method, outputs: np.ndarray, params: Any) -> np.ndarray | None:
    """The six emotion probabilities behind a method's labels, where it has them (None: a label-only head)."""
    if outputs.ndim == 3:
        return np.einsum("nsk,s->nk", outputs, np.asarray(params[0], dtype=float))
    if outputs.ndim == 2 and outputs.shape[1] == 6 and method.trainer in ("kl6", "attention"):
        return outputs
    return None


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "+._-" else "_" for c in name)


def _key_json(key: UnitKey) -> dict:
    return {"trainer": key.trainer, "feature_set": key.feature_set, "model": key.model, "transform": key.transform,
            "folds": key.folds, "variant": key.variant}


def _key_from(d: dict, where: str) -> UnitKey:
    try:
        return UnitKey(d["trainer"], d["feature_set"], d["model"], d.get("transform", "none"), d.get("folds", "actors"),
                       int(d.get("variant", 0)))
    except (KeyError, TypeError, ValueError) as exc:
        raise BlemoreError(f"{where}: a unit entry is incomplete ({exc}); the run folder is damaged") from None


def _load_model(run: RunFolder, rel: str, key: UnitKey, settings: dict | None) -> Any:
    arrays = run.load_npz(rel)
    where = str(run.root / rel)
    if key.trainer == "attention":
        from blemore.models.attention import AttentionState

        return AttentionState.from_arrays(settings or {}, arrays, source=where)
    return HeadParams.from_dict(arrays, source=where)


def load_deployment(run: RunFolder, stem: str) -> Deployment:
    """The deployment saved under ``models/<stem>/``; every part checked (one-line errors naming the file)."""
    base = f"models/{stem}"
    info = run.read_json(f"{base}/model.json")
    where = str(run.root / base / "model.json")
    try:
        if info.get("format") != "blemore-model":
            raise KeyError("format")
        units = tuple(_key_from(u, where) for u in info["units"])
        configuration = Configuration(info["method"], info["feature_set"], info["model"], units)
        if configuration.method not in METHODS:
            raise BlemoreError(f"{where}: unknown method {configuration.method!r}")
        attention = info.get("attention") or [None] * len(units)
        rules = {}
        for rule, r in info["rules"].items():
            models = [_load_model(run, f"{base}/{name}", key, settings)
                      for name, key, settings in zip(r["files"], units, attention)]
            if len(models) != len(units):
                raise KeyError(f"rules/{rule}/files")
            params = params_from_json(decoder_for(METHODS[configuration.method], configuration.feature_set),
                                      r["params"])
            note = {k: v for k, v in r.items() if k not in ("epoch", "params", "files")}
            rules[rule] = RuleChoice(int(r["epoch"]), params, models, note)
        actor_models = {}
        for fs in info.get("actor_models", []):
            arr = run.load_npz(f"{base}/actors-{_safe(fs)}.npz")
            actor_models[fs] = ActorModel(np.asarray(arr["directions"], dtype=np.float64),
                                          float(arr["clips_per_actor"]))
        dep = Deployment(configuration, str(info["representation"]), int(info["window"]),
                         int(info.get("max_frames", 32)), [int(d) for d in info["dims"]], rules,
                         dict(info.get("validation", {})), actor_models)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BlemoreError(f"{where}: incomplete or malformed ({type(exc).__name__}: {exc}); "
                           "the run folder is damaged") from None
    for rule, choice in dep.rules.items():
        for model, dim, key in zip(choice.models, dep.dims, units):
            if isinstance(model, HeadParams) and model.dim != dim:
                raise BlemoreError(f"{run.root / base}: the {rule} model of {key.feature_set} expects {model.dim} "
                                   f"features but model.json says {dim}; the run folder is damaged")
    return dep


def list_deployments(run: RunFolder) -> list[str]:
    """Stems of the deployments saved in the run (from its marker's file list)."""
    return sorted({f.split("/")[1] for f in run.files if f.startswith("models/") and f.endswith("/model.json")})
