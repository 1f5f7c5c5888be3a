"""``blemore compare``: remedies beyond the baseline, side by side with intervals (see :mod:`blemore.protocol.compare`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from blemore.cli import options as opt
from blemore.cli.app import app, user_errors


@app.command()
def compare(
    features: List[str] = opt.FEATURES,
    methods: str = typer.Option(
        "baseline,structured,actor-norm,late-fusion",
        "--methods",
        help="Comma-separated: baseline, structured (+head36), head36, salience-reg, actor-norm, late-fusion, "
        "attention-fusion, actor-inclusive, or all. The baseline is always run.",
    ),
    train_metadata: Optional[Path] = opt.TRAIN_METADATA,
    clips: Optional[Path] = opt.CLIPS,
    test_metadata: Optional[Path] = typer.Option(
        None, "--test-metadata", help="Test clips WITH labels (e.g. the demo's test_truth.csv) for the test rows; unlabeled test clips are left out."
    ),
    sets: Optional[List[str]] = typer.Option(
        None, "--set", "-s", help="Feature set, e.g. wavlm or wavlm+videomae; repeatable. Default: each feature."
    ),
    models: str = typer.Option("linear", "--models", "-m", help="Comma-separated heads (linear, mlp256, mlp512)."),
    representation: str = opt.REPRESENTATION,
    window: int = opt.WINDOW,
    epochs: int = opt.EPOCHS,
    lr: float = opt.LR,
    weight_decay: float = opt.WEIGHT_DECAY,
    batch_size: int = opt.BATCH_SIZE,
    seed: int = opt.SEED,
    n_folds: int = opt.N_FOLDS,
    nested: bool = typer.Option(True, "--nested/--no-nested", help="Nested selection (inner CV; 4x more training)."),
    n_boot: int = typer.Option(1000, "--n-boot", help="Bootstrap draws over actors for intervals."),
    n_perm: int = typer.Option(2000, "--n-perm", help="Sign-flip permutations over actors for paired p-values."),
    attention_epochs: int = typer.Option(15, "--attention-epochs", help="Epochs of attention-fusion."),
    max_frames: int = typer.Option(32, "--max-frames", help="Frames per source and clip for attention-fusion."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for training (default: automatic)."),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", help="Run folder: a new one, or a `blemore benchmark` run to add the comparison to."
    ),
    quiet: bool = opt.QUIET,
) -> None:
    """Compare remedies (structured output, salience regression, actor normalisation, fusion) with the baseline."""
    with user_errors():
        from blemore.protocol.compare import CompareConfig, parse_methods, run_compare
        from blemore.features.loading import parse_feature_specs
        from blemore.models.attention import AttentionConfig
        from blemore.models.trainer import TrainConfig

        TrainConfig(epochs=epochs, lr=lr, weight_decay=weight_decay, batch_size=batch_size)  # checks values
        AttentionConfig(epochs=attention_epochs, max_frames=max_frames)
        config = CompareConfig(
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
            progress=not quiet,
            threads=threads,
            command=["blemore", *sys.argv[1:]],
            methods=parse_methods(methods),
            nested=nested,
            n_boot=n_boot,
            n_perm=n_perm,
            attention_epochs=attention_epochs,
            max_frames=max_frames,
        )
        run = run_compare(config)
        typer.echo((run / "compare.md").read_text(), nl=False)
        typer.echo(f"run folder: {run}")


@app.command()
def paired(
    run: Path = typer.Argument(..., help="A run folder with compare_predictions.csv (from `blemore compare`)."),
    a: str = typer.Argument(..., help="Configuration method|feature_set|model|selection, e.g. actor-norm|facemesh|linear|nested."),
    b: str = typer.Argument(..., help="The configuration to compare with, e.g. baseline|facemesh|linear|nested."),
    split: str = typer.Option("val", "--split", help="val or test."),
    n_boot: int = typer.Option(1000, "--n-boot"),
    n_perm: int = typer.Option(2000, "--n-perm"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Paired test of two configurations of a compare run: score difference, interval and p-value over actors."""
    with user_errors():
        from blemore.protocol.compare import paired_from_run

        r = paired_from_run(run, a, b, split=split, n_boot=n_boot, n_perm=n_perm, seed=seed)
        typer.echo(
            f"{a} - {b} ({split}, {r.n_clips} clips, {r.n_groups} actors): score {r.diff:+.4f} "
            f"[95% CI {r.ci_low:+.4f}, {r.ci_high:+.4f}], p = {r.p_value:.4f} (sign-flip permutation over actors); "
            f"presence {r.diff_presence:+.4f}, salience {r.diff_salience:+.4f}"
        )
