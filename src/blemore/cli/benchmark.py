"""``blemore benchmark`` and ``blemore predict``: the paper's protocol from the command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from blemore.cli import options as opt
from blemore.cli.app import app, fail, user_errors


@app.command()
def benchmark(
    features: List[str] = opt.FEATURES,
    train_metadata: Optional[Path] = opt.TRAIN_METADATA,
    clips: Optional[Path] = opt.CLIPS,
    test_metadata: Optional[Path] = typer.Option(
        None, "--test-metadata", help="Test clips (labels optional: without them no test rows, still predictions)."
    ),
    sets: Optional[List[str]] = typer.Option(
        None, "--set", "-s", help="Feature set to run, e.g. wavlm or wavlm+videomae (fusion); repeatable. Default: each feature."
    ),
    models: str = typer.Option("linear,mlp256,mlp512", "--models", "-m", help="Comma-separated heads."),
    representation: str = opt.REPRESENTATION,
    window: int = opt.WINDOW,
    epochs: int = opt.EPOCHS,
    lr: float = opt.LR,
    weight_decay: float = opt.WEIGHT_DECAY,
    batch_size: int = opt.BATCH_SIZE,
    seed: int = opt.SEED,
    n_folds: int = opt.N_FOLDS,
    submission_rule: str = typer.Option(
        "pooled", "--submission-rule", help="Test predictions from the 'pooled' rule or the paper's rule ('paper')."
    ),
    paper_epochs: str = typer.Option(
        "all", "--paper-epochs", help="Paper-rule test model: 'all' epochs (official code) or 'best-fold' epoch count."
    ),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for training (default 1: fastest on a shared CPU)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder (default runs/benchmark-<time>)."),
    compare: Optional[str] = typer.Option(
        None,
        "--compare",
        help="Also compare methods beyond the baseline on the same folds, e.g. "
        "baseline,structured,actor-norm,late-fusion (or 'all'); writes compare.csv / compare.md.",
    ),
    report: bool = typer.Option(True, "--report/--no-report", help="Write RUN/report.html at the end."),
    quiet: bool = opt.QUIET,
    ray: bool = opt.RAY,
    ray_address: Optional[str] = opt.RAY_ADDRESS,
) -> None:
    """Train every feature set x classifier on the folds, validate every epoch, test; write a run folder."""
    with user_errors():
        from blemore.features.loading import parse_feature_specs
        from blemore.protocol.benchmark import BenchmarkConfig, run_benchmark

        config = BenchmarkConfig(
            features=parse_feature_specs(features),
            train_metadata=train_metadata,
            clips=clips,
            test_metadata=test_metadata,
            sets=list(sets) if sets else None,
            models=[models],
            representation=representation,  # type: ignore[arg-type]
            window=window,
            epochs=epochs,
            lr=lr,
            weight_decay=weight_decay,
            batch_size=batch_size,
            seed=seed,
            n_folds=n_folds,
            out=out,
            submission_rule=submission_rule,  # type: ignore[arg-type]
            paper_epochs=paper_epochs,  # type: ignore[arg-type]
            progress=not quiet,
            threads=threads,
            command=["blemore", *sys.argv[1:]],
        )
        if compare is not None:
            from blemore.protocol.compare import CompareConfig, check_compare_inputs

            # fail on an unknown method or missing sources before hours of training
            check_compare_inputs(CompareConfig.from_benchmark(config, methods=compare))
        if ray or ray_address:  # engineer G: feature set x model jobs as Ray tasks (blemore.extraction.ray)
            from blemore.protocol.ray import benchmark_on_ray

            run = benchmark_on_ray(config, address=ray_address)
        else:
            run = run_benchmark(config)
        typer.echo((run / "results.md").read_text(), nl=False)
        if compare is not None:
            from dataclasses import replace

            from blemore.protocol.compare import run_compare

            compare_config = CompareConfig.from_benchmark(replace(config, out=run), methods=compare)
            if ray or ray_address:  # the comparison's training units as Ray tasks too
                from blemore.protocol.ray import compare_on_ray

                compare_on_ray(compare_config, address=ray_address)
            else:
                run_compare(compare_config)
            typer.echo((run / "compare.md").read_text(), nl=False)
        if report:
            from blemore.report import write_report

            typer.echo(f"report: {write_report(run)}")
        typer.echo(f"run folder: {run}")


@app.command()
def predict(
    run: Path = typer.Argument(..., help="A run folder written by `blemore benchmark`."),
    features: List[str] = typer.Option(..., "--features", "-f", help="NAME=PATH for each feature the model needs."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (default RUN/predict)."),
    feature_set: Optional[str] = typer.Option(None, "--set", "-s", help="Feature set of the run (default: best)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Head of the run (default: best)."),
    rule: Optional[str] = typer.Option(None, "--rule", help="'pooled' or 'paper' (default: the run's)."),
    metadata: Optional[Path] = typer.Option(None, "--metadata", help="Predict these clips (default: all with features)."),
) -> None:
    """Apply a trained run to features of new clips: predictions JSON + challenge zip."""
    with user_errors():
        from blemore.features.loading import parse_feature_specs
        from blemore.protocol.benchmark import predict_run

        if not run.is_dir():
            raise fail(f"{run}: no such run folder")
        res = predict_run(
            run, parse_feature_specs(features), out=out, feature_set=feature_set, model=model,
            rule=rule, metadata=metadata,  # type: ignore[arg-type]
        )
        typer.echo(
            f"{res.n_clips} clip(s) predicted with {res.feature_set} / {res.model} ({res.rule} rule): "
            f"{res.predictions}, {res.submission}"
        )
