"""Commands ``blemore extract`` and ``blemore manifest``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from blemore.cli import options as opt
from blemore.cli.app import app, user_errors
from blemore.extraction.engine import Pool, Precision


def _print_summary(summary) -> None:
    print(summary.format())


@app.command()
def extract(
    clips: Path = typer.Argument(..., help="Folder of clips (.mov, .mp4, anything PyAV opens), searched recursively."),
    encoders: str = typer.Option(
        "opensmile,facemesh", "--encoders", "-e",
        help="Comma-separated encoder specs: a NAME, then optionally =MODEL_ID, @REVISION and :LAYERS, "
        "e.g. opensmile,facemesh,wavlm-large:12 (see `blemore encoders`).",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Features root; each encoder writes OUT/<encoder>/."),
    metadata: Optional[Path] = typer.Option(None, "--metadata", help="Official metadata CSV (actor, fold)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N (model encoders)."),
    precision: Precision = typer.Option(
        "auto", "--precision", help="Model encoders: auto (bf16 autocast on CUDA, fp32 on CPU), fp32 or bf16."
    ),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Clips per encoder call."),
    workers: Optional[int] = typer.Option(None, "--workers", min=0, help="Decoding workers (0: decode inline)."),
    pool: Optional[Pool] = typer.Option(
        None, "--pool", help="Decode in threads (default on CPU) or worker processes (default on CUDA)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Delete these encoders' features first."),
    face_crop: bool = typer.Option(False, "--face-crop", help="CLIP/VideoMAE see a crop around the detected face."),
    limit: Optional[int] = typer.Option(None, "--limit", min=0, help="Only the first N clips (by name)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    ray: bool = opt.RAY,
    ray_address: Optional[str] = opt.RAY_ADDRESS,
) -> None:
    """Extract frame-level features (one (T, D) float32 .npy per clip and encoder); resumable."""
    with user_errors():
        specs = [s.strip() for s in encoders.split(",") if s.strip()]
        common = dict(encoders=specs, out=out, metadata=metadata, device=device, batch_size=batch_size,
                      progress=not quiet, overwrite=overwrite, limit=limit, face_crop=face_crop,
                      precision=precision)
        if ray or ray_address:  # clips spread over the workers of a Ray cluster
            from blemore.extraction.ray import extract_on_ray

            summary = extract_on_ray(clips, address=ray_address, **common)
        else:
            from blemore.extraction.local import extract as extract_here

            summary = extract_here(clips, workers=workers, pool=pool, **common)
    _print_summary(summary)


@app.command()
def manifest(
    clips: Path = typer.Argument(..., help="Folder of clips."),
    metadata: Optional[Path] = typer.Option(None, "--metadata", help="Official metadata CSV (actor, fold)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the manifest CSV here (default: stdout)."),
) -> None:
    """List the clips of a folder: duration, fps, frame size, audio, actor, fold, partition."""
    from blemore.data.discover import discover_clips
    from blemore.io import write_text

    with user_errors():
        df = discover_clips(clips, metadata=metadata, probe=True)
        text = df.to_csv(index=False)
        if out is None:
            sys.stdout.write(text)
        else:
            write_text(out, text)
            bad = int(df["error"].notna().sum())
            print(f"{len(df)} clips -> {out}" + (f" ({bad} could not be read, see column 'error')" if bad else ""))
