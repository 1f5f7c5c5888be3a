"""One command, one run folder: every method trained on the same folds, chosen, saved, predicted and submitted.

:func:`run_benchmark` (``blemore benchmark``):

1. resolves and checks every input (:func:`blemore.protocol.config.resolve_inputs`) and
   refuses an ``--out`` it may not write (:class:`~blemore.protocol.runfolder.RunFolder`),
   before any training;
2. plans the configurations of the methods asked for and the training units they need
   (:func:`plan`), loads features and actors once (:func:`~blemore.protocol.context.build_context`);
3. trains every unit — here, or as Ray tasks through ``map_units`` (same seeds, same
   results) — saving each one beside ``--out`` as it finishes, so that a killed run, run again,
   resumes where it stopped (:func:`train_units`, :mod:`blemore.protocol.checkpoints`);
4. applies the selection rules to every configuration, deploys it and predicts the test
   clips (:func:`~blemore.protocol.evaluate.evaluate_configuration`);
5. writes one run folder through one writer (:func:`write_run`).

Layout of ``RUN/``: ``config.json``; the baseline's ``results.csv``, ``results.md``,
``curves.csv``, ``grids/<set>__<model>.npz``, ``predictions/<set>__<model>__{val,test}.csv``,
``clip_features/<set>.npz``; with methods beyond the baseline, the methods table
(``compare.csv``, ``compare.md``, ``paired.csv``, ``pairs.csv``, ``sensitivity.csv``,
``compare_predictions.csv``); for every deployable configuration ``models/<stem>/`` (what
``blemore predict`` applies), and with test clips ``submission/<stem>.zip`` (the challenge's
template; the baseline's paper rule also ``<stem>.paper.zip``) and
``test_predictions/<stem>.csv``; ``best.json`` (which configuration to submit, and why);
``actors.json`` (pseudo-actors of anonymised test clips and how well the procedure finds
actors on the training folds). ``<stem>`` is ``<method>__<set>__<model>``.
"""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from blemore.labels import LABEL_NAMES
from blemore.protocol.challenge import challenge_predictions
from blemore.protocol.checkpoints import UnitStore
from blemore.protocol.config import Inputs, RunConfig, resolve_inputs
from blemore.protocol.context import RunContext, build_context
from blemore.protocol.evaluate import ConfigResult, evaluate_configuration
from blemore.protocol.methods import METHODS, Configuration, UnitKey, configurations, decoder_for
from blemore.protocol.plans import member_seed
from blemore.protocol.results import baseline_tables, format_results, markdown_table, trivial_rows
from blemore.protocol.runfolder import RunFolder
from blemore.protocol.selection import ARGMAX, SALREG, sensitivity_row
from blemore.protocol.units import TrainedUnit, UnitSpec, train_unit

__all__ = ["run_benchmark", "plan", "train_units", "write_run", "MapUnits", "default_out"]

#: ``map_units(train_unit, [(spec, data), ...])`` -> trained units in order (e.g. Ray tasks).
MapUnits = Callable[[Callable, list], list]


def default_out() -> Path:
    return Path("runs") / time.strftime("benchmark-%Y%m%d-%H%M%S")


def plan(config: RunConfig, inputs: Inputs) -> tuple[list[Configuration], dict[UnitKey, UnitSpec]]:
    """The configurations of the methods asked for and one spec per distinct training unit."""
    confs = configurations(inputs.methods, sets=inputs.sets, sources=inputs.sources, models=inputs.models,
                           seeds=config.ensemble_seeds)
    tracked: dict[UnitKey, list] = {}
    for c in confs:
        m = METHODS[c.method]
        if m.deployable and len(c.units) == 1:
            dec = {"ce36": ARGMAX, "salreg": SALREG}.get(c.units[0].trainer, decoder_for(m, c.feature_set))
            tracked.setdefault(c.units[0], []).append((c.method, dec))
    tcfg = config.train_config()
    attention = _attention_config(config)
    specs: dict[UnitKey, UnitSpec] = {}
    for c in confs:
        for key in c.units:
            if key in specs:
                continue
            deploy = key.folds == "actors"
            paper = config.paper_test if any(n == "baseline" for n, _ in tracked.get(key, [])) else None
            specs[key] = UnitSpec(key, tcfg, config.seed, config.nested, deploy=deploy,
                                  tracked=tuple(tracked.get(key, [])), paper_test=paper, attention=attention)
    return confs, specs


def _attention_config(config: RunConfig):
    from blemore.models.attention import AttentionConfig

    return AttentionConfig(epochs=config.attention_epochs, lr=config.attention_lr, max_frames=config.max_frames,
                           layers=config.attention_layers, batch_size=config.effective_batch_size)


def _unit_epochs(spec: UnitSpec, n_folds: int) -> int:
    if spec.key.trainer == "attention":
        members = n_folds * (n_folds if spec.nested else 1)
        return spec.attention.epochs * members
    return spec.config.epochs * (2 if spec.nested else 1)


def train_units(ctx: RunContext, specs: dict[UnitKey, UnitSpec], *, map_units: MapUnits | None = None,
                store: UnitStore | None = None) -> dict[UnitKey, TrainedUnit]:
    """Train every unit (here, one after the other with a progress bar, or through ``map_units``); returns them by key.

    With a ``store``, units saved there by an earlier, killed run of the same inputs are loaded
    instead of trained, and each unit trained here is saved as soon as it is done (through
    ``map_units``, when all are done).
    """
    items = [(spec, ctx.unit_data(key)) for key, spec in specs.items()]
    done: dict[UnitKey, TrainedUnit] = {}
    if store is not None:
        for spec, data in items:
            unit = store.load(spec, data)
            if unit is not None:
                done[spec.key] = unit
    todo = [(spec, data) for spec, data in items if spec.key not in done]
    if map_units is not None:
        for (spec, data), unit in zip(todo, map_units(_train_one, todo) if todo else []):
            done[spec.key] = unit
            if store is not None:
                store.save(spec, data, unit)
    else:
        from tqdm.auto import tqdm

        total = sum(_unit_epochs(s, len(ctx.inputs.fold_ids)) for s, _ in todo)
        with tqdm(total=total, desc="training", unit="epoch", disable=not ctx.config.progress, file=sys.stderr) as bar:
            if done and store is not None and ctx.config.progress:
                bar.write(f"resuming: {len(done)} of {len(items)} units already trained (in {store.folder})",
                          file=sys.stderr)
            for spec, data in todo:
                bar.set_postfix_str(spec.key.label, refresh=False)
                done[spec.key] = _train_one(spec, data, bar.update)
                if store is not None:
                    store.save(spec, data, done[spec.key])
    return {spec.key: done[spec.key] for spec, _ in items}


def _train_one(spec: UnitSpec, data: Any, progress: Callable[[int], object] | None = None) -> TrainedUnit:
    return train_unit(spec, data, progress)


def run_benchmark(config: RunConfig, *, map_units: MapUnits | None = None,
                  retrain: Callable[[UnitSpec, int], Any] | None = None) -> Path:
    """Run the protocol for every method asked for and write the run folder; returns its path (see the module docstring)."""
    started = time.time()
    inputs = resolve_inputs(config)
    out = Path(config.out) if config.out is not None else default_out()
    RunFolder.check_target(out, overwrite=config.overwrite)  # refuse before hours of training
    confs, specs = plan(config, inputs)
    ctx = build_context(config, inputs, list(specs))
    store = UnitStore.beside(out)
    trained = train_units(ctx, specs, map_units=map_units, store=store)
    results = [evaluate_configuration(ctx, c, trained, specs, retrain=retrain) for c in confs]
    with RunFolder.create(out, overwrite=config.overwrite) as run:
        write_run(run, ctx, results, trained, specs, started=started)
    store.clear()
    return out


# --------------------------------------------------------------------------- writing


def write_run(run: RunFolder, ctx: RunContext, results: Sequence[ConfigResult], trained: dict[UnitKey, TrainedUnit],
              specs: dict[UnitKey, UnitSpec], *, started: float) -> None:
    """Write every file of the run folder (see the module docstring)."""
    _write_clip_features(run, ctx)
    baseline = [r for r in results if r.configuration.method == "baseline"]
    sensitivity = _write_baseline(run, ctx, baseline, trained)
    compare = None
    if len({r.configuration.method for r in results}) > 1:
        compare = _write_methods(run, ctx, results, sensitivity)
    deployable = [r for r in results if r.deployment is not None]
    best = _best(ctx, results, compare)
    for r in deployable:
        r.deployment.validation = _validation_scores(ctx, r)
        r.deployment.save(run)
        _write_test_predictions(run, ctx, r)
    run.write_json("best.json", best)
    if ctx.discovery:
        run.write_json("actors.json", {fs: d.as_json() | {"test_actors": dict(zip(ctx.test_clips, d.actors))}
                                       for fs, d in ctx.discovery.items()})
    run.write_json("config.json", _resolved(ctx, trained, results, best, started))


def _write_clip_features(run: RunFolder, ctx: RunContext) -> None:
    labels = [lab if isinstance(lab, str) else "" for lab in ctx.inputs.train["label"]]
    actors = [str(a) for a in ctx.inputs.train["actor"]]
    if ctx.inputs.test is not None:
        labels += [lab if isinstance(lab, str) else "" for lab in ctx.inputs.test["label"]]
        actors += ctx.inputs.test["actor"].fillna("").astype(str).tolist()
    for fs in ctx.inputs.sets:
        fr = ctx.features[fs]
        extra = {}
        if not np.array_equal(fr.row_clip, np.arange(len(ctx.clips))):
            extra = {"windows": fr.X, "window_clip": fr.row_clip}
        run.save_npz(f"clip_features/{fs}.npz", X=fr.clip_matrix(), filenames=np.array(ctx.clips),
                     labels=np.array(labels), actors=np.array(actors), **extra)


def _rules_of(r: ConfigResult) -> dict[str, dict]:
    out = {}
    for rule, choice in r.deployment.rules.items():
        alpha, beta = choice.params
        entry = {"epoch": int(choice.epoch), "alpha": float(alpha), "beta": float(beta)}
        if choice.note.get("paper_test") == "best-fold-checkpoint" and r.paper_test_probs is not None:
            entry["probs"] = r.paper_test_probs
        out[rule] = entry
    return out


def _write_baseline(run: RunFolder, ctx: RunContext, baseline: Sequence[ConfigResult],
                    trained: dict[UnitKey, TrainedUnit]) -> pd.DataFrame:
    rows, curves, sensitivity = [], [], []
    for r in baseline:
        c = r.configuration
        unit = trained[c.units[0]]
        outer = unit.outer()
        folds = sorted(outer)
        val_clips = [unit.plan[[m.outer for m in unit.plan].index(k)].eval for k in folds]
        bt = baseline_tables(c.feature_set, c.model, train=ctx.inputs.train, test=ctx.inputs.test, fold_ids=folds,
                             outer=[outer[k] for k in folds], val_clips=val_clips, train_loss=unit.train_loss,
                             test_outputs=unit.test_outputs(), rules=_rules_of(r))
        rows += bt.rows
        curves += bt.curves
        stem = f"{c.feature_set}__{c.model}"
        run.write_csv(f"predictions/{stem}__val.csv", bt.val_predictions, index=False)
        if bt.test_predictions is not None:
            run.write_csv(f"predictions/{stem}__test.csv", bt.test_predictions, index=False)
        run.save_npz(f"grids/{stem}.npz", **bt.grids)
        for k, f in enumerate(folds):
            e = int(bt.grids["epoch"][k])
            truth = ctx.truth[val_clips[k]]
            sensitivity.append({"feature_set": c.feature_set, "model": c.model, "fold": f, "epoch": e,
                                **sensitivity_row(np.asarray(outer[f][e - 1], dtype=np.float64), truth)})
    test_idx = None
    if ctx.inputs.test_labelled:
        test_idx = ctx.inputs.test["label_index"].to_numpy(dtype=np.int64)
    rows += trivial_rows(ctx.truth, ctx.folds, ctx.inputs.fold_ids, test_idx)
    results = format_results(rows)
    run.write_csv("results.csv", results, index=False, float_format="%.6g")
    from blemore.protocol.results import CURVE_COLUMNS

    run.write_csv("curves.csv", pd.DataFrame(curves, columns=CURVE_COLUMNS), index=False, float_format="%.6g")
    run.write_text("results.md", markdown_table(results))
    sens = pd.DataFrame(sensitivity)
    return sens


def _write_methods(run: RunFolder, ctx: RunContext, results: Sequence[ConfigResult], sensitivity: pd.DataFrame):
    from blemore.protocol.methods_table import methods_tables

    test = ctx.inputs.test
    tables = methods_tables(
        results, truth=ctx.truth, actors=ctx.train_actors, clips=ctx.clips[: ctx.n_train],
        test_truth=test["label_index"].to_numpy(dtype=np.int64) if ctx.inputs.test_labelled else None,
        test_actors=[] if test is None else test["actor"].tolist(), test_clips=ctx.test_clips,
        n_boot=ctx.config.n_boot, n_perm=ctx.config.n_perm, seed=ctx.config.seed, sensitivity=sensitivity,
        models=ctx.inputs.models, paper_test=ctx.config.paper_test, pseudo_actors=_pseudo_actor_words(ctx),
    )
    run.write_csv("compare.csv", tables.compare, index=False, float_format="%.6g")
    run.write_csv("paired.csv", tables.paired, index=False, float_format="%.6g")
    run.write_csv("pairs.csv", tables.pairs, index=False, float_format="%.6g")
    run.write_csv("sensitivity.csv", sensitivity, index=False, float_format="%.6g")
    run.write_csv("compare_predictions.csv", tables.predictions, float_format="%.6g")
    note = "".join(f"Skipped {m}: {why}.\n" for m, why in ctx.inputs.skipped.items())
    run.write_text("compare.md", tables.md + (("\n" + note) if note else ""))
    return tables.compare


def _pseudo_actor_words(ctx: RunContext) -> str | None:
    """How the anonymised test clips' pseudo-actors were found, in a few words (None: the actors were known)."""
    if not ctx.discovery:
        return None
    parts = []
    for fs, d in ctx.discovery.items():
        ari = d.mean_ari
        parts.append(f"{fs}: {d.k} found by clustering, adjusted Rand index "
                     f"{'n/a' if ari is None else f'{ari:.2f}'} on the training folds")
    return "; ".join(parts)


def _validation_scores(ctx: RunContext, r: ConfigResult) -> dict[str, float]:
    """A configuration's validation score under each selection rule (the same figures as the methods table)."""
    from blemore.metrics import score_indices

    return {row.selection: float(score_indices(ctx.truth, row.pred).score) for row in r.rows}


def _best(ctx: RunContext, results: Sequence[ConfigResult], compare: pd.DataFrame | None) -> dict:
    from blemore.protocol.methods_table import choose_best

    deployable = [(r.configuration.method, r.configuration.feature_set, r.configuration.model)
                  for r in results if r.deployment is not None]
    if compare is None:  # the baseline alone: no intervals were computed
        compare = pd.DataFrame([
            {"method": r.configuration.method, "feature_set": r.configuration.feature_set,
             "model": r.configuration.model, "split": "val", "selection": sel, "score": score,
             "ci_low": np.nan, "ci_high": np.nan}
            for r in results for sel, score in _validation_scores(ctx, r).items()
        ])
    best = choose_best(compare, deployable)
    if best:
        chosen = best["chosen"]
        stem = Configuration(chosen["method"], chosen["feature_set"], chosen["model"], ()).stem
        best["stem"] = stem
        best["submission"] = f"submission/{stem}.zip" if ctx.test_clips else None
    return best


def _write_test_predictions(run: RunFolder, ctx: RunContext, r: ConfigResult) -> None:
    from blemore.submission import write_submission_zip

    if not ctx.test_clips or r.test_pred is None:
        return
    stem = r.configuration.stem
    for suffix, labels, probs in (("", r.test_pred, r.test_probs), (".paper", r.paper_test_pred, r.paper_test_probs)):
        if labels is None:
            continue
        preds = challenge_predictions(ctx.test_clips, labels)
        run.write_with(f"submission/{stem}{suffix}.zip", lambda p, preds=preds: write_submission_zip(preds, p))
        table = pd.DataFrame({"filename": ctx.test_clips})
        if probs is not None:
            for j, e in enumerate(("ang", "disg", "fea", "hap", "sad", "neu")):
                table[e] = probs[:, j]
        table["pred_label"] = [LABEL_NAMES[i] for i in labels]
        run.write_csv(f"test_predictions/{stem}{suffix}.csv", table, index=False)


def _resolved(ctx: RunContext, trained: dict[UnitKey, TrainedUnit], results: Sequence[ConfigResult], best: dict,
              started: float) -> dict:
    import torch

    from blemore import __version__

    config, inputs = ctx.config, ctx.inputs
    K = len(inputs.fold_ids)
    return {
        "config": config.to_json(),
        "sets": inputs.sets,
        "models": inputs.models,
        "methods": inputs.methods,
        "skipped_methods": inputs.skipped,
        "folds": inputs.fold_ids,
        "n_train_clips": len(inputs.train),
        "n_test_clips": 0 if inputs.test is None else len(inputs.test),
        "test_labeled": inputs.test_labelled,
        "member_seeds": {**{str(f): member_seed(config.seed, k) for k, f in enumerate(inputs.fold_ids)},
                         "all": member_seed(config.seed, K)},
        "units": [{"unit": k.label, "members": len(u.plan), "seeds": u.seeds} for k, u in trained.items()],
        "selection": {
            "fold": "epoch with the best 0.5*presence + 0.5*salience on the fold (first maximum)",
            "nested": "inner cross-validation on the training folds of each outer fold chooses epoch and parameters",
            "pooled": "epoch and parameters with the best score on the pooled out-of-fold predictions",
            "test": f"the paper's test rule ({config.paper_test}): alpha/beta of the best validation fold",
            "test-pooled": "model on all training clips after the pooled epoch count; pooled parameters",
            "best": "the deployable configuration with the best nested (else pooled) validation score",
        },
        "best": best.get("chosen") if best else None,
        "std": "sample standard deviation over folds (ddof=1)",
        "command": config.command if config.command is not None else sys.argv,
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "pandas": pd.__version__,
                     "torch": torch.__version__, "blemore": __version__},
        "torch_threads": torch.get_num_threads(),
        "seconds": round(time.time() - started, 3),
        "train_flops": float(sum(u.flops for u in trained.values())),
    }
