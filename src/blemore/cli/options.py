"""Options that several commands share, defined once so that their names, defaults and help agree.

Each is a typer option used as a parameter default, e.g.
``def benchmark(features: List[str] = FEATURES, epochs: int = EPOCHS, ...)``.
"""

from __future__ import annotations

import typer

FEATURES = typer.Option(
    ..., "--features", "-f", help="NAME=PATH: a .npz (X, filenames) or a folder of <clip>.npy; repeatable."
)
TRAIN_METADATA = typer.Option(
    None, "--train-metadata", help="Official train_metadata.csv (filename, video_id, fold, mix, emotion_1, ...)."
)
CLIPS = typer.Option(None, "--clips", help="Text file of descriptive clip names; folds are generated actor-disjoint.")
EPOCHS = typer.Option(200, "--epochs", help="Training epochs (the paper: 200).")
LR = typer.Option(5e-6, "--lr", help="Adam learning rate (the paper: 5e-6).")
WEIGHT_DECAY = typer.Option(1e-3, "--weight-decay", help="Adam weight decay (the paper: 1e-3).")
BATCH_SIZE = typer.Option(32, "--batch-size", help="Mini-batch size (the paper: 32).")
SEED = typer.Option(0, "--seed", help="Seed of the folds generated with --clips, the initial weights and the shuffles.")
N_FOLDS = typer.Option(5, "--n-folds", help="Folds to generate with --clips.")
REPRESENTATION = typer.Option(
    "stats", "--representation",
    help="stats (7 statistics per clip) or windows (window means as samples; a clip averages its windows' logits).",
)
WINDOW = typer.Option(16, "--window", help="Frames per window (windows representation).")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bars.")
RAY = typer.Option(
    False,
    "--ray",
    help="Run on a Ray cluster (the ray extra: pip install ray): RAY_ADDRESS, a cluster started here with "
    "`ray start`, else a new local one. Paths must be on storage every node sees.",
)
RAY_ADDRESS = typer.Option(
    None,
    "--ray-address",
    metavar="ADDRESS",
    help="Ray cluster to use (implies --ray): auto, local, HOST:6379 or ray://HOST:10001.",
)
THREADS = typer.Option(
    None,
    "--threads",
    min=1,
    metavar="N",
    help="CPU threads for training and encoding (torch's threads) in each job; default 1, the fastest when "
    "other work shares the CPU. On a Ray cluster: the CPUs each task reserves.",
)
