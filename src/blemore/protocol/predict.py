"""Apply a saved method of a run to new clips: ``blemore predict RUN --method NAME|best``.

The clips are those of ``--metadata`` (the test partition's metadata), or else the run's own
test metadata; a clip the run trained on is refused (a submission holds test clips only).
The method is a deployment of the run (:mod:`blemore.protocol.deploy`): ``best`` is the one
``best.json`` names (chosen on validation, never on test clips); a method name picks that
method's configuration with the best validation score, or the one ``--set`` / ``--model``
name. Written into ``OUT``: ``submission.zip`` (the challenge's template form),
``predictions.json`` (local format, keyed by clip id), ``probabilities.csv`` (where the
method has probabilities) and ``predict.json`` (what was applied and checked).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from blemore import io
from blemore.data.metadata import read_metadata
from blemore.errors import BlemoreError
from blemore.labels import EMOTIONS, LABEL_NAMES
from blemore.protocol.challenge import challenge_predictions, check_clip_set
from blemore.protocol.deploy import Deployment, list_deployments, load_deployment
from blemore.protocol.runfolder import RunFolder

__all__ = ["PredictResult", "predict_run", "choose_deployment"]


@dataclass
class PredictResult:
    """Where :func:`predict_run` wrote its files, and what it applied and checked."""

    out: Path
    submission: Path
    predictions: Path
    probabilities: Path | None
    stem: str
    method: str
    feature_set: str
    model: str
    rule: str
    n_clips: int
    checked: str
    why: str


def choose_deployment(run: RunFolder, method: str, *, feature_set: str | None = None,
                      model: str | None = None) -> tuple[str, str]:
    """The stem of the deployment to apply and why it was chosen.

    ``best`` without ``feature_set`` / ``model``: the configuration ``best.json`` names. A
    method name, or ``best`` with either given: among the matching configurations, the one
    with the best validation score (nested where it ran, else pooled).
    """
    stems = list_deployments(run)
    if not stems:
        raise BlemoreError(f"{run.root}: the run holds no saved method (models/*/model.json)")
    if method == "best" and feature_set is None and model is None:
        best = run.read_json("best.json")
        if not isinstance(best, dict) or "stem" not in best:
            raise BlemoreError(f"{run.root / 'best.json'}: names no configuration; the run folder is damaged")
        if best["stem"] not in stems:
            raise BlemoreError(f"{run.root / 'best.json'}: names {best['stem']!r}, which the run does not hold")
        return best["stem"], str(best.get("why", "best validation score"))
    name = None if method == "best" else _method_name(method)
    cands = [s for s in stems if name is None or s.split("__")[0] == name]
    if not cands:
        raise BlemoreError(f"{run.root}: no saved {name!r} (it holds {', '.join(sorted({s.split('__')[0] for s in stems}))})")
    deps = {s: load_deployment(run, s) for s in cands}
    matching = {s: d for s, d in deps.items() if _matches(d, feature_set, model)}
    if not matching:
        have = ", ".join(f"{d.configuration.method} / {d.configuration.feature_set} / {d.configuration.model}"
                         for d in deps.values())
        raise BlemoreError(f"{run.root}: no saved configuration for --set {feature_set} --model {model}; it has {have}")

    def score(d: Deployment) -> float:
        v = d.validation
        return float(v.get("nested", v.get("pooled", float("-inf"))))

    stem = max(matching, key=lambda s: score(matching[s]))  # first best
    how = "nested" if "nested" in matching[stem].validation else "pooled"
    what = f"{name}'s configuration" if name else "the configuration"
    return stem, f"{what} with the best {how} validation score ({score(matching[stem]):.4f}) of those asked for"


def _method_name(method: str) -> str:
    from blemore.protocol.methods import get_method

    return get_method(method).name


def _matches(dep: Deployment, feature_set: str | None, model: str | None) -> bool:
    from blemore.models.heads import canonical_model_name

    if feature_set is not None and dep.configuration.feature_set != feature_set:
        return False
    if model is not None:
        wanted = model if model == "attention" else canonical_model_name(model)
        return dep.configuration.model == wanted
    return True


def _clips(run: RunFolder, metadata: str | Path | None) -> tuple[list[str], list[object] | None, str]:
    config = run.read_json("config.json")
    source = metadata or (config.get("config", {}) or {}).get("test_metadata")
    if not source:
        raise BlemoreError(f"{run.root}: give --metadata TEST_CSV (the clips to predict); the run has no test metadata")
    meta = read_metadata(source)
    train_meta = (config.get("config", {}) or {}).get("train_metadata")
    if train_meta and Path(train_meta).exists():
        trained = set(read_metadata(train_meta)["filename"])
        overlap = [c for c in meta["filename"] if c in trained]
        if overlap:
            raise BlemoreError(f"{source}: {len(overlap)} clip(s) are training clips of the run (e.g. {overlap[0]!r}); "
                               "a submission predicts the test clips only")
    return meta["filename"].tolist(), meta["actor"].tolist(), str(source)


def predict_run(
    run: str | Path,
    features: dict[str, Path],
    *,
    method: str = "best",
    out: str | Path | None = None,
    feature_set: str | None = None,
    model: str | None = None,
    rule: str = "pooled",
    metadata: str | Path | None = None,
    test_actors: str = "auto",
    progress: bool = False,
) -> PredictResult:
    """Apply a saved method of ``run`` to the clips of ``metadata``; see the module docstring."""
    folder = RunFolder.open(Path(run))
    stem, why = choose_deployment(folder, method, feature_set=feature_set, model=model)
    dep = load_deployment(folder, stem)
    needed = sorted({p for k in dep.configuration.units for p in k.feature_set.split("+")})
    missing = [p for p in needed if p not in features]
    if missing:
        raise BlemoreError(f"{stem} needs -f/--features for {', '.join(missing)} (NAME=PATH, as in the run)")
    clips, actors, source = _clips(folder, metadata)
    pred = dep.predict(features, clips, rule=rule, actors=actors, test_actors=test_actors, progress=progress)
    preds = challenge_predictions(clips, pred.labels)
    checked = check_clip_set(list(preds), clips, source=source)
    out_dir = Path(out) if out is not None else folder.root / "predict" / stem
    files = _write(folder, out_dir, clips, pred, preds,
                   {"run": str(folder.root), "stem": stem, "why": why, "rule": rule, "metadata": source,
                    "checked": checked, "clips": len(clips),
                    "pseudo_actors": sorted(set(pred.actors)) if pred.actors is not None and
                    any(str(a).startswith("pseudo-") for a in pred.actors) else None})
    c = dep.configuration
    return PredictResult(out_dir, files["submission.zip"], files["predictions.json"], files.get("probabilities.csv"),
                         stem, c.method, c.feature_set, c.model, rule, len(clips), checked, why)


def _write(run: RunFolder, out: Path, clips: Sequence[str], pred, preds: dict, info: dict) -> dict[str, Path]:
    """Write the outputs into ``out`` (recorded in the run's marker when ``out`` is inside the run)."""
    from blemore.submission import predictions_from_indices, write_predictions, write_submission_zip

    table = None
    if pred.probabilities is not None:
        table = pd.DataFrame({"filename": list(clips)})
        for j, e in enumerate(EMOTIONS):
            table[e] = pred.probabilities[:, j]
        table["pred_label"] = [LABEL_NAMES[i] for i in pred.labels]
    writers = {
        "submission.zip": lambda p: write_submission_zip(preds, p),
        "predictions.json": lambda p: write_predictions(predictions_from_indices(list(clips), pred.labels), p),
        "predict.json": lambda p: io.write_json(p, info),
    }
    if table is not None:
        writers["probabilities.csv"] = lambda p: io.write_csv(p, table, index=False)
    inside = _inside(out, run.root)
    if inside is None:
        out.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, write in writers.items():
        if inside is not None:
            written[name] = run.add(f"{inside}/{name}", write)
        else:
            write(out / name)
            written[name] = out / name
    return written


def _inside(path: Path, root: Path) -> str | None:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return None
