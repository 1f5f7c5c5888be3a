"""Commands on features: ``blemore encoders``, ``blemore import-features``, ``blemore aggregate``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import typer

from blemore.cli.app import app, user_errors
from blemore.errors import BlemoreError


@app.command("encoders")
def list_encoders_command() -> None:
    """List the registered encoders: modality, output width and rate, weights (offline: none needed)."""
    from blemore.encoders.registry import list_encoders

    rows = [(info.name, info.modality, str(info.dim), info.rate, "offline" if info.offline else info.model_id,
             info.description + (f"; default: {info.default_layer}" if info.default_layer else ""))
            for info in list_encoders()]
    header = ("NAME", "MODALITY", "DIM", "RATE", "WEIGHTS", "DESCRIPTION")
    widths = [max(len(r[k]) for r in [header, *rows]) for k in range(5)]
    for row in [header, *rows]:
        cells = [row[k].rjust(widths[k]) if k == 2 else row[k].ljust(widths[k]) for k in range(5)]
        print("  ".join([*cells, row[5]]))
    print("\nModel encoders take NAME=MODEL_ID_OR_PATH (a Hugging Face id or a local folder or checkpoint) "
          "and :LAYERS (e.g. hubert-large:12, wavlm-large:6-12).")


@app.command("import-features")
def import_features(
    src: Path = typer.Argument(..., help="Folder of per-clip files (<clip>.csv for openface, <clip>.npy for npy)."),
    fmt: Literal["openface", "npy"] = typer.Option(
        ..., "--format", help="openface (OpenFace 2.0 CSVs) or npy (per-clip arrays)."
    ),
    name: Optional[str] = typer.Option(None, "--name", help="Feature set name (the store folder)."),
    out: Path = typer.Option(..., "--out", "-o", help="Features root."),
    fps: Optional[float] = typer.Option(None, "--fps", help="Frame rate to record (openface: from timestamps)."),
    preprocessing: Literal["mark-failed", "official"] = typer.Option(
        "mark-failed", "--preprocessing",
        help="openface: mark-failed (all gaze/pose/AU columns, frames without a face as NaN rows) or official "
        "(the baseline's 31 columns, confidence < 0.85 frames interpolated as openface2npy.py does).",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing features of that name."),
) -> None:
    """Import features made elsewhere (OpenFace, HiCMAE, any per-clip .npy) into the store."""
    from blemore.features.importers import import_npy, import_openface

    with user_errors():
        if fmt == "openface":
            summary = import_openface(src, out=out, name=name or "openface", fps=fps, overwrite=overwrite,
                                      preprocessing=preprocessing)
        else:
            if not name:
                raise BlemoreError("--format npy needs --name (e.g. --name hicmae)")
            summary = import_npy(src, out=out, name=name, fps=fps, overwrite=overwrite)
    print(summary.format())


@app.command("aggregate")
def aggregate_command(
    folder: Path = typer.Argument(..., help="A feature folder of <clip>.npy (e.g. FEATURES/hubert-large)."),
    statistics: Literal["seven", "openface", "none"] = typer.Option(
        "seven", "--statistics", "-s",
        help="seven (mean, std, p10, p25, p50, p75, p90: the paper's), openface (mean, p20, p50, p80, IQR: "
        "aggregate_data.py) or none (stores of one row per clip, e.g. egemaps).",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="The clip-level .npz to write (X, filenames)."),
) -> None:
    """Turn frame-level features into one clip-level vector per clip: the X/filenames .npz the protocol reads."""
    from blemore.features.aggregate import aggregate_folder

    with user_errors():
        result = aggregate_folder(folder, out=out, statistics=statistics)
    print(result.format())
