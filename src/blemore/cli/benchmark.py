"""``blemore benchmark``, ``blemore compare`` (its alias with the methods beyond the baseline), ``blemore predict``.

Each parses its options, calls one library function (:func:`blemore.protocol.run.run_benchmark`,
:func:`blemore.protocol.predict.predict_run`) and prints what it wrote.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from blemore.cli import options as opt
from blemore.cli.app import app, user_errors

__all__ = ["benchmark", "compare", "predict", "paired"]

#: Methods ``blemore compare`` runs unless told otherwise.
COMPARE_METHODS = "baseline,structured,actor-norm,late-fusion"


class Representation(str, Enum):
    stats = "stats"
    windows = "windows"
    subsampled = "subsampled"


class PaperTest(str, Enum):
    all_epochs = "all-epochs"
    best_fold_epochs = "best-fold-epochs"
    retrain_100 = "retrain-100"
    best_fold_checkpoint = "best-fold-checkpoint"


class Rule(str, Enum):
    pooled = "pooled"
    paper = "paper"


class Split(str, Enum):
    val = "val"
    test = "test"


TEST_METADATA = typer.Option(
    None, "--test-metadata", help="Test clips (labels optional: without them no test rows, still predictions)."
)
SETS = typer.Option(
    None, "--set", "-s", help="Feature set to run, e.g. wavlm or wavlm+videomae (fusion); repeatable. Default: each feature."
)
MODELS = typer.Option("linear,mlp256,mlp512", "--models", "-m", help="Comma-separated heads.")
METHODS = typer.Option(
    "baseline", "--methods",
    help="Comma-separated methods (see `blemore methods`), or 'all' (every method the inputs allow). "
    "The baseline always runs.",
)
COMPARE = typer.Option(None, "--compare", help="Alias of --methods (added to it).")
REPRESENTATION = typer.Option(
    Representation.stats, "--representation",
    help="stats: 7 statistics per clip; windows: window means as samples (a clip averages its windows' logits); "
    "subsampled: every stored row a sample (per-window encoder outputs; batch 512, 300 epochs unless given).",
)
EPOCHS = typer.Option(None, "--epochs", help="Training epochs (the paper: 200; subsampled: 300).")
BATCH_SIZE = typer.Option(None, "--batch-size", help="Mini-batch size (the paper: 32; subsampled: 512).")
PAPER_TEST = typer.Option(
    PaperTest.all_epochs, "--paper-test",
    help="The paper's test rule: all-epochs (model on all clips after every epoch), best-fold-epochs, retrain-100 "
    "(official: retrained 100 epochs) or best-fold-checkpoint (official default: the best fold's best epoch).",
)
NESTED = typer.Option(True, "--nested/--no-nested", help="Nested selection (inner CV) for the methods table.")
ENSEMBLE_SEEDS = typer.Option(1, "--ensemble-seeds", help="Seeds per feature set in the ensemble.")
TEST_ACTORS = typer.Option(
    "auto", "--test-actors",
    help="Actors of test clips without one (anonymised): auto (discover pseudo-actors), N, or none (refuse).",
)
N_BOOT = typer.Option(1000, "--n-boot", help="Bootstrap draws over actors for intervals.")
N_PERM = typer.Option(2000, "--n-perm", help="Sign-flip permutations over actors for paired p-values.")
ATTENTION_EPOCHS = typer.Option(15, "--attention-epochs", help="Epochs of attention-fusion.")
MAX_FRAMES = typer.Option(32, "--max-frames", help="Frames per source and clip for attention-fusion.")
DEVICE = typer.Option("auto", "--device", help="Where the heads train: auto (a GPU where present), cpu, cuda or cuda:N.")
OUT = typer.Option(None, "--out", "-o", help="Run folder (default runs/benchmark-<time>).")
OVERWRITE = typer.Option(False, "--overwrite", help="Replace an earlier run in --out.")
REPORT = typer.Option(True, "--report/--no-report", help="Write RUN/report.html at the end.")


@app.command()
def benchmark(
    features: List[str] = opt.FEATURES, train_metadata: Optional[Path] = opt.TRAIN_METADATA,
    clips: Optional[Path] = opt.CLIPS, test_metadata: Optional[Path] = TEST_METADATA,
    sets: Optional[List[str]] = SETS, models: str = MODELS, methods: str = METHODS, compare: Optional[str] = COMPARE,
    representation: Representation = REPRESENTATION, window: int = opt.WINDOW, epochs: Optional[int] = EPOCHS,
    lr: float = opt.LR, weight_decay: float = opt.WEIGHT_DECAY, batch_size: Optional[int] = BATCH_SIZE,
    seed: int = opt.SEED, n_folds: int = opt.N_FOLDS, paper_test: PaperTest = PAPER_TEST, nested: bool = NESTED,
    ensemble_seeds: int = ENSEMBLE_SEEDS, test_actors: str = TEST_ACTORS, n_boot: int = N_BOOT,
    n_perm: int = N_PERM, attention_epochs: int = ATTENTION_EPOCHS, max_frames: int = MAX_FRAMES,
    device: str = DEVICE, threads: Optional[int] = opt.THREADS, out: Optional[Path] = OUT, overwrite: bool = OVERWRITE,
    report: bool = REPORT, quiet: bool = opt.QUIET, ray: bool = opt.RAY, ray_address: Optional[str] = opt.RAY_ADDRESS,
) -> None:
    """Train every method x feature set x head on the folds, select, test, save and submit; one run folder."""
    with user_errors():
        from blemore.features.loading import parse_feature_specs
        from blemore.protocol.config import RunConfig

        config = RunConfig(
            features=parse_feature_specs(features), train_metadata=train_metadata, clips=clips,
            test_metadata=test_metadata, sets=list(sets) if sets else None, models=[models],
            methods=[methods] + ([compare] if compare else []), representation=representation.value, window=window,
            epochs=epochs, lr=lr, weight_decay=weight_decay, batch_size=batch_size, seed=seed, n_folds=n_folds,
            out=out, overwrite=overwrite, paper_test=paper_test.value, nested=nested, ensemble_seeds=ensemble_seeds,
            test_actors=test_actors, n_boot=n_boot, n_perm=n_perm, attention_epochs=attention_epochs,
            max_frames=max_frames, device=device, progress=not quiet, threads=threads,
            command=["blemore", *sys.argv[1:]],
        )
        run = _run(config, ray=ray or bool(ray_address), address=ray_address)
        typer.echo((run / "results.md").read_text(), nl=False)
        if (run / "compare.md").exists():
            typer.echo((run / "compare.md").read_text(), nl=False)
        typer.echo(_best_line(run))
        if report:
            from blemore.report import write_report

            typer.echo(f"report: {write_report(run)}")
        typer.echo(f"run folder: {run}")


def _run(config, *, ray: bool, address: str | None) -> Path:
    if ray:
        from blemore.protocol.ray import run_on_ray

        return run_on_ray(config, address=address)
    from blemore.protocol.run import run_benchmark

    return run_benchmark(config)


def _best_line(run: Path) -> str:
    import json

    best = json.loads((run / "best.json").read_text())
    if not best:
        return "no deployable configuration"
    c = best["chosen"]
    where = f"; submit {run / best['submission']}" if best.get("submission") else ""
    return f"best: {c['method']} / {c['feature_set']} / {c['model']} ({best['why']}){where}"


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def compare(ctx: typer.Context) -> None:
    """`blemore benchmark` with the methods beyond the baseline: --methods baseline,structured,actor-norm,late-fusion
    --models linear unless given. Every option of `blemore benchmark` applies (see `blemore benchmark --help`)."""
    if any(a in ("-h", "--help") for a in ctx.args):
        typer.echo(ctx.get_help())
        typer.echo("\nOptions: those of `blemore benchmark --help`.")
        return
    command = typer.main.get_command(app)
    code = command.main(["benchmark", "--methods", COMPARE_METHODS, "--models", "linear", *ctx.args],
                        prog_name="blemore", standalone_mode=False)
    if code:
        raise typer.Exit(code)


@app.command()
def predict(
    run: Path = typer.Argument(..., help="A run folder written by `blemore benchmark`."),
    features: List[str] = typer.Option(..., "--features", "-f", help="NAME=PATH for each feature the method needs."),
    method: str = typer.Option("best", "--method", help="'best' (the run's choice on validation) or a method name."),
    metadata: Optional[Path] = typer.Option(
        None, "--metadata", help="The clips to predict (test metadata); default: the run's test metadata."
    ),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (default RUN/predict/<method>)."),
    feature_set: Optional[str] = typer.Option(None, "--set", "-s", help="Feature set of the method (default: best)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Head of the method (default: best)."),
    rule: Rule = typer.Option(Rule.pooled, "--rule", help="pooled, or paper (the baseline's paper test rule)."),
    test_actors: str = typer.Option("auto", "--test-actors", help="Actors of clips without one: auto, N or none."),
) -> None:
    """Apply a saved method of a run to the test clips: OUT/submission.zip in the challenge's template form."""
    with user_errors():
        from blemore.features.loading import parse_feature_specs
        from blemore.protocol.predict import predict_run

        res = predict_run(run, parse_feature_specs(features), method=method, out=out, feature_set=feature_set,
                          model=model, rule=rule.value, metadata=metadata, test_actors=test_actors)
        typer.echo(f"{res.n_clips} clip(s) predicted with {res.method} / {res.feature_set} / {res.model} "
                   f"({res.rule} rule): {res.why}")
        typer.echo(f"checked against the test metadata: {res.checked}")
        typer.echo(f"submission: {res.submission}")


@app.command()
def paired(
    run: Path = typer.Argument(..., help="A run folder with compare_predictions.csv."),
    a: str = typer.Argument(..., help="Configuration method|feature_set|model|selection, e.g. actor-norm|facemesh|linear|nested."),
    b: str = typer.Argument(..., help="The configuration to compare with, e.g. baseline|facemesh|linear|nested."),
    split: Split = typer.Option(Split.val, "--split", help="The clips to compare on: validation or test."),
    n_boot: int = typer.Option(1000, "--n-boot"),
    n_perm: int = typer.Option(2000, "--n-perm"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Paired test of two configurations of a run: score difference, interval and p-value over actors."""
    with user_errors():
        from blemore.protocol.methods_table import paired_from_run

        r = paired_from_run(run, a, b, split=split.value, n_boot=n_boot, n_perm=n_perm, seed=seed)
        typer.echo(
            f"{a} - {b} ({split.value}, {r.n_clips} clips, {r.n_groups} actors): score {r.diff:+.4f} "
            f"[95% CI {r.ci_low:+.4f}, {r.ci_high:+.4f}], p = {r.p_value:.4f} (sign-flip permutation over actors); "
            f"presence {r.diff_presence:+.4f}, salience {r.diff_salience:+.4f}"
        )


@app.command("methods")
def list_methods() -> None:
    """List the methods of `--methods`, what each changes against the baseline and what it needs."""
    from blemore.protocol.methods import METHODS

    for m in METHODS.values():
        needs = []
        if m.min_sources > 1:
            needs.append(f">= {m.min_sources} sources")
        if m.needs_frames:
            needs.append("frame-level features")
        if m.needs_actors:
            needs.append("actors (or pseudo-actors)")
        if not m.deployable:
            needs.append("diagnostic: not submitted")
        typer.echo(f"{m.name:<17} {m.summary}" + (f" [{'; '.join(needs)}]" if needs else ""))
