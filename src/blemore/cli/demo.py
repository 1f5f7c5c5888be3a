"""Commands ``blemore generate`` and ``blemore demo``: the whole system on a generated dataset (:mod:`blemore.demo`)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from blemore.cli.app import app, user_errors
from blemore.demo import DEMO_EPOCHS, DEMO_LR, DEMO_METHODS, DEMO_MODELS, run_demo

__all__ = ["generate", "demo"]


def _held_out_table(scores: list[dict]) -> str:
    lines = ["| method | feature set | model | test presence | test salience | test score |", "|---|---|---|---|---|---|"]
    for s in scores:
        lines.append(f"| {s['method']} | {s['feature_set']} | {s['model']} | {s['acc_presence']:.3f} "
                     f"| {s['acc_salience']:.3f} | {s['score']:.3f} |")
    return "\n".join(lines)


def _best_lines(best: dict, scores: list[dict]) -> list[str]:
    """What to submit (chosen on validation) and how that submission scored on the held-out truth."""
    if not best:
        return []
    c = best["chosen"]
    held = next((s for s in scores if (s["method"], s["feature_set"], s["model"]) == (c["method"], c["feature_set"],
                                                                                     c["model"])), None)
    base = best.get("best_baseline") or {}
    base_held = next((s for s in scores if (s["method"], s["feature_set"], s["model"]) == (
        "baseline", base.get("feature_set"), base.get("model"))), None)
    lines = [f"Chosen to submit: {c['method']} / {c['feature_set']} / {c['model']} ({best['why']})."]
    if held is not None:
        lines.append(f"Its submission on the held-out truth: presence {held['acc_presence']:.3f}, salience "
                     f"{held['acc_salience']:.3f}, score {held['score']:.3f} ({held['submission']})")
    if base_held is not None:
        lines.append(f"The best baseline on validation ({base['feature_set']} / {base['model']}) scores "
                     f"{base_held['score']:.3f} there.")
    return lines


@app.command()
def generate(
    out: Path = typer.Argument(..., help="Folder to write the dataset into (reused when the parameters match)."),
    actors: int = typer.Option(12, "--actors", help="Number of actors (>= 6); 54 clips each, ~20% held out."),
    seed: int = typer.Option(0, "--seed", help="Random seed: same seed and options, same dataset."),
    duration: float = typer.Option(2.0, "--duration", help="Clip length in seconds."),
    fps: int = typer.Option(10, "--fps", help="Video frame rate."),
    size: int = typer.Option(256, "--size", help="Frame width and height in pixels (even)."),
    noise: float = typer.Option(1.0, "--noise", help="Difficulty: scales every noise source (0 = none)."),
    workers: int = typer.Option(2, "--workers", min=1, help="Processes rendering clips in parallel."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Generate a BLEMORE-style dataset: .mp4 clips (face video + voice), metadata, held-out truth.

    Writes OUT/train/*.mp4, OUT/train_metadata.csv (5 actor-disjoint folds), OUT/test/test_0001.mp4 ...
    (anonymised), OUT/test_metadata.csv (no labels), OUT/test_truth.csv and OUT/dataset.json.
    """
    from blemore.data.synthetic import generate_dataset

    with user_errors():
        ds = generate_dataset(out, actors=actors, seed=seed, duration=duration, fps=fps, size=size,
                              noise=noise, workers=workers, progress=not quiet)
        state = json.loads((ds.root / "dataset.json").read_text())
    how = "reused" if ds.reused else f"generated in {ds.seconds:.1f} s"
    n_train, n_test = len(state["train_actors"]), len(state["test_actors"])
    print(f"{ds.root}: {state['n_train']} training clips ({n_train} actors, 5 folds), "
          f"{state['n_test']} held-out clips ({n_test} actor{'s' if n_test != 1 else ''}); {how}")
    print(f"truth of the held-out clips: {ds.test_truth}")


@app.command()
def demo(
    out: Path = typer.Option(Path("blemore-demo"), "--out", "-o", help="Folder for data, features and the run."),
    actors: int = typer.Option(12, "--actors", help="Actors in the generated dataset (>= 6)."),
    seed: int = typer.Option(0, "--seed", help="Random seed of the data and the training."),
    duration: float = typer.Option(2.0, "--duration", help="Clip length in seconds."),
    fps: int = typer.Option(10, "--fps", help="Video frame rate of the generated clips."),
    size: int = typer.Option(256, "--size", help="Frame width and height in pixels (even)."),
    noise: float = typer.Option(1.0, "--noise", help="Difficulty of the generated data (scales all noise)."),
    epochs: int = typer.Option(DEMO_EPOCHS, "--epochs", min=1, help="Training epochs (the paper: 200)."),
    lr: float = typer.Option(DEMO_LR, "--lr", help="Learning rate (the paper: 5e-6)."),
    models: str = typer.Option(DEMO_MODELS, "--models", help="Comma-separated heads: linear, mlp256, mlp512."),
    workers: int = typer.Option(2, "--workers", min=1, help="Processes rendering clips in parallel."),
    methods: str = typer.Option(
        DEMO_METHODS, "--methods", help="Methods to run beside the baseline (see `blemore methods`), or 'all'."
    ),
    no_report: bool = typer.Option(False, "--no-report", help="Do not write the HTML report."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Run the whole system end to end on a generated dataset and print the results table.

    Generates (or reuses) a BLEMORE-style dataset, extracts openSMILE and Face Mesh features, runs the
    benchmark on the voice, the face and their fusion, predicts and scores the held-out partition and
    writes the run folder (results, submissions, report).
    """
    with user_errors():
        result = run_demo(
            out, actors=actors, seed=seed, duration=duration, fps=fps, size=size, noise=noise, epochs=epochs, lr=lr,
            models=models, workers=workers, methods=methods, report=not no_report, progress=not quiet,
        )
    print()
    print(f"Demo settings: {epochs} epochs at learning rate {lr:g} (the paper: 200 epochs at 5e-6), "
          f"heads {models}; generated data, {actors} actors.")
    print()
    print(result.table.rstrip())
    print()
    if result.compare_table:
        print("Every method on the same folds (bootstrap 95 % intervals over actors):")
        print(result.compare_table.rstrip())
        print()
    print("Held-out partition, every method's submission file scored against test_truth.csv:")
    print(_held_out_table(result.test_scores))
    print()
    for line in _best_lines(result.best, result.test_scores):
        print(line)
    print()
    print(f"Face detection rate (MediaPipe Face Mesh): {100 * result.detection_rate:.1f}% of frames")
    print("Wall time: " + ", ".join(f"{k} {v:.1f} s" for k, v in result.stages.items())
          + f"; total {result.total_seconds:.1f} s")
    print(f"Run folder: {result.run}")
    if result.report is not None:
        print(f"Report: {result.report}")
