"""Commands of the evaluation core: ``score``, ``decode``, ``tune``, ``submit``, ``labels``.

Each is a thin call into :mod:`blemore.submission`, :mod:`blemore.decoding` and
:mod:`blemore.metrics`; none loads torch.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from blemore.cli.app import app, user_errors
from blemore.errors import BlemoreError

__all__ = ["score", "decode", "tune", "submit", "labels"]

_MAX_NAMES = 5


def _print_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2))


def _few(names: list[str]) -> str:
    shown = ", ".join(names[:_MAX_NAMES])
    return shown + (f", ... ({len(names) - _MAX_NAMES} more)" if len(names) > _MAX_NAMES else "")


def _table(rows: list[dict[str, object]], columns: list[str]) -> str:
    def cell(v: object) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.4f}"
        return str(v)

    body = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(b[i]) for b in body)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(b, widths)) for b in body]
    return "\n".join(lines)


@app.command()
def score(
    submission: Annotated[
        Optional[Path], typer.Argument(help="Predictions: .json or .zip, local or challenge format.", show_default=False)
    ] = None,
    truth: Annotated[
        Optional[Path],
        typer.Option("--truth", "-t", help="Metadata CSV with the labels (needed for anonymised clip names)."),
    ] = None,
    fold: Annotated[
        Optional[list[str]],
        typer.Option("--fold", help="Score only the truth rows of this fold (0-4, or 'test'); repeatable."),
    ] = None,
    lenient: Annotated[
        bool, typer.Option("--lenient", help="Score like the reference scorer: submitted clips with a truth only.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object (with breakdowns and confusion).")] = False,
    breakdown: Annotated[
        bool, typer.Option("--breakdown", help="Also print per-emotion, per-salience and per-pair tables.")
    ] = False,
    example: Annotated[
        bool, typer.Option("--example", help="Score the bundled example submission against its truth CSV.")
    ] = False,
) -> None:
    """Score a submission: presence, salience and score, with missing/extra/invalid clips.

    Strict by default: every clip of the truth counts, a missing or invalid one as wrong. --lenient scores as the challenge's reference scorer: only submitted clips that have a truth, each read as submitted.

    Without --truth the labels are read from the (descriptive) clip names.
    """
    from blemore.labels import clip_stem
    from blemore.submission import example_files, load_predictions, read_truth, score_predictions, truth_from_names

    with user_errors():
        if example:
            if submission is not None:
                raise BlemoreError("give either SUBMISSION or --example, not both")
            submission, default_truth = example_files()
            truth = truth or default_truth
        if submission is None:
            raise BlemoreError("missing SUBMISSION (a .json or .zip of predictions); or use --example")
        preds = load_predictions(submission)
        if fold and truth is None:
            raise BlemoreError("--fold needs --truth METADATA.csv (the folds are read from its 'fold' column)")
        if truth is not None:
            truth_map = read_truth(truth, folds=fold)
        else:
            try:  # labels from the clip names; say which file the names came from
                truth_map = truth_from_names(clip_stem(c) for c in preds)
            except BlemoreError as exc:
                raise BlemoreError(f"{submission}: {exc}") from None
        report = score_predictions(preds, truth_map, lenient=lenient)
        if as_json:
            out = report.as_dict(details=True)
            out["submission"] = str(submission)
            out["truth"] = str(truth) if truth is not None else "clip names"
            _print_json(out)
        else:
            _print_report(report, submission, lenient=lenient, breakdown=breakdown)


def _print_report(report: Any, submission: Path, *, lenient: bool, breakdown: bool) -> None:
    """The human-readable form of a :class:`~blemore.submission.ScoreReport`."""
    s = report.scores
    typer.echo(f"{submission}: {report.n_scored} clips scored ({report.mode}), {s.n_blends} blends")
    typer.echo(f"  presence  {s.acc_presence:.4f}")
    typer.echo(f"  salience  {s.acc_salience:.4f}")
    typer.echo(f"  score     {s.score:.4f}")
    typer.echo(
        f"  submitted {report.n_submitted}, missing {len(report.missing)}, "
        f"extra {len(report.extra)}, invalid {len(report.invalid)}"
    )
    if report.missing:
        typer.echo(f"  missing (counted wrong{'' if not lenient else ', not scored'}): {_few(report.missing)}")
    if report.extra:
        typer.echo(f"  extra (no truth, not scored): {_few(report.extra)}")
    for clip, problem in list(report.invalid.items())[:_MAX_NAMES]:
        typer.echo(f"  invalid: {clip}: {problem}")
    if len(report.invalid) > _MAX_NAMES:
        typer.echo(f"  invalid: ... ({len(report.invalid) - _MAX_NAMES} more)")
    if breakdown:
        tables = report.breakdowns()
        typer.echo("\nper emotion (clips whose truth contains it)")
        typer.echo(_table(tables["per_emotion"], ["group", "n", "recall", "acc_presence", "acc_salience"]))
        typer.echo("\nper salience configuration")
        typer.echo(_table(tables["per_salience"], ["group", "n", "acc_presence", "acc_salience"]))
        typer.echo("\nper emotion set")
        typer.echo(_table(tables["per_pair"], ["group", "n", "acc_presence", "acc_salience"]))


def _write_or_print(preds: dict[str, Any], out: Optional[Path]) -> None:
    from blemore.submission import format_predictions, write_predictions, write_submission_zip

    if out is None:
        sys.stdout.write(format_predictions(preds))
    elif out.suffix.lower() == ".zip":
        write_submission_zip(preds, out)
        typer.echo(f"wrote {out} (challenge format, {len(preds)} clips)", err=True)
    elif out.suffix.lower() == ".json":
        write_predictions(preds, out)
        typer.echo(f"wrote {out} ({len(preds)} clips)", err=True)
    else:
        raise BlemoreError(f"{out}: expected an output name ending in .json (local format) or .zip (challenge format)")


@app.command()
def decode(
    probs: Annotated[Path, typer.Argument(help="Probabilities: .csv/.parquet (filename, ang..neu) or .npz (probs, filenames).")],
    alpha: Annotated[Optional[float], typer.Option("--alpha", help="Presence threshold of the baseline rule.")] = None,
    beta: Annotated[Optional[float], typer.Option("--beta", help="Salience threshold of the baseline rule.")] = None,
    structured: Annotated[
        bool, typer.Option("--structured", help="Threshold-free: the label whose soft vector is closest (KL).")
    ] = False,
    out: Annotated[
        Optional[Path], typer.Option("--out", "-o", help="Write .json (local format) or .zip (challenge); default stdout.")
    ] = None,
) -> None:
    """Turn per-clip probabilities into predictions (alpha/beta rule or structured decoding)."""
    from blemore.decoding import decode_structured, decode_thresholds
    from blemore.submission import predictions_from_indices, read_probability_table

    with user_errors():
        thresholds = alpha is not None or beta is not None
        if structured and thresholds:
            raise BlemoreError("give either --alpha/--beta or --structured, not both")
        if not structured and (alpha is None or beta is None):
            raise BlemoreError("give both --alpha A and --beta B (e.g. from `blemore tune`), or --structured")
        table = read_probability_table(probs)
        if structured:
            idx = decode_structured(table.probs)
        else:
            idx = decode_thresholds(table.probs, alpha, beta)  # type: ignore[arg-type]
        _write_or_print(predictions_from_indices(table.filenames, idx), out)


def _truth_for_table(table: Any, truth: Optional[Path], source: Path) -> Any:
    import numpy as np

    from blemore.labels import LABEL_INDEX, label_by_name
    from blemore.submission import read_truth, truth_from_names

    if truth is not None:
        truth_map = read_truth(truth)
        missing = [f for f in table.filenames if f not in truth_map]
        if missing:
            raise BlemoreError(f"{truth}: no label for {len(missing)} clip(s) of {source}: {_few(missing)}")
        return np.array([truth_map[f] for f in table.filenames], dtype=np.int64)
    if table.labels is not None and any(l is not None for l in table.labels):
        empty = [f for f, l in zip(table.filenames, table.labels) if l is None]
        if empty:
            raise BlemoreError(f"{source}: empty label for {len(empty)} clip(s): {_few(empty)}; pass --truth")
        try:
            return np.array([LABEL_INDEX[label_by_name(l).name] for l in table.labels], dtype=np.int64)
        except BlemoreError as exc:
            raise BlemoreError(f"{source}: column label: {exc}") from None
    truth_map = truth_from_names(table.filenames)
    return np.array([truth_map[f] for f in table.filenames], dtype=np.int64)


@app.command()
def tune(
    probs: Annotated[Path, typer.Argument(help="Probabilities: .csv/.parquet (filename, ang..neu[, label]) or .npz.")],
    truth: Annotated[
        Optional[Path], typer.Option("--truth", "-t", help="Metadata CSV with the labels (else a label column or the names).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Search the baseline's alpha/beta grid (linspace(0.05, 0.95, 20) each) for the best score."""
    from blemore.decoding import search_thresholds
    from blemore.submission import read_probability_table

    with user_errors():
        table = read_probability_table(probs)
        truth_idx = _truth_for_table(table, truth, probs)
        result = search_thresholds(table.probs, truth_idx)
        if as_json:
            _print_json(result.as_dict())
            return
        typer.echo(f"{probs}: {result.n_clips} clips, {result.n_blends} blends")
        typer.echo(f"  alpha     {result.alpha:.4f}")
        typer.echo(f"  beta      {result.beta:.4f}")
        typer.echo(f"  presence  {result.acc_presence:.4f}")
        typer.echo(f"  salience  {result.acc_salience:.4f}")
        typer.echo(f"  score     {result.score:.4f}")
        typer.echo(f"  best presence alone {result.presence_only:.4f}, best salience alone {result.salience_only:.4f}")


@app.command()
def submit(
    predictions: Annotated[Path, typer.Argument(help="Predictions .json (local or challenge format) or .zip.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The challenge zip to write.")] = Path("submission.zip"),
    test_metadata: Annotated[
        Optional[Path],
        typer.Option("--test-metadata", help="Check the clips against it: each test clip once, none missing, none else."),
    ] = None,
) -> None:
    """Validate predictions and write the challenge zip in the official template's form.

    One JSON file {"predictions": {...}} keyed <clip>.mov (as the template: test_0001.mov ...), 100.0 for a
    single emotion, 70/30 or 50/50 for a blend.
    """
    from blemore.protocol.challenge import check_clip_set, template_form
    from blemore.submission import read_predictions, write_submission_zip

    with user_errors():
        preds = template_form(read_predictions(predictions))
        checked = "not checked against test metadata (give --test-metadata)"
        if test_metadata is not None:
            from blemore.data.metadata import read_metadata

            checked = check_clip_set(list(preds), read_metadata(test_metadata)["filename"].tolist(),
                                     source=str(predictions))
            checked = f"checked against {test_metadata}: {checked}"
        write_submission_zip(preds, out)
        typer.echo(f"wrote {out} ({len(preds)} clips, validated, in the template's form; {checked})")


@app.command()
def labels(as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False) -> None:
    """List the 36 valid labels with their index and soft vector (ang, disg, fea, hap, sad, neu)."""
    from blemore.labels import EMOTIONS, VALID_LABELS

    with user_errors():
        rows = [
            {
                "index": i,
                "label": label.name,
                "blend": label.is_blend,
                "prediction": label.as_prediction(),
                "vector": label.vector.tolist(),
            }
            for i, label in enumerate(VALID_LABELS)
        ]
        if as_json:
            _print_json(rows)
            return
        typer.echo(f"{'index':>5}  {'label':<15} " + " ".join(f"{e:>4}" for e in EMOTIONS))
        for r in rows:
            typer.echo(f"{r['index']:>5}  {r['label']:<15} " + " ".join(f"{v:>4.1f}" for v in r["vector"]))
