"""Bringing in features made elsewhere: OpenFace 2.0 CSVs and per-clip ``.npy`` folders.

Both write the same store as :func:`blemore.extraction.extract` (``FEATURES/<name>/<clip>.npy``
+ ``index.csv`` + ``settings.json``), so features of encoders blemore does not run
(HiCMAE, OpenFace, or any made by other code) go through the protocol like the others.

- :func:`import_openface`: one ``<clip>.csv`` per clip as written by OpenFace 2.0
  ``FeatureExtraction``; keeps gaze (8), head pose (6), AU intensities (``AU.._r``) and
  AU presence (``AU.._c``), frames with ``success == 0`` as NaN rows; or, with
  ``preprocessing="official"``, the official baseline's 31 columns, confidence filter and
  interpolation (:mod:`blemore.features.openface`).
- :func:`import_npy`: one ``<clip>.npy`` per clip, ``(T, D)``, or ``(D,)`` for one vector
  per clip (stored as one frame ``(1, D)``); all clips must share ``D``.

>>> import_npy("imagebind_feats/", name="imagebind", out="features/")  # doctest: +SKIP
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import get_args

import numpy as np

from blemore.errors import BlemoreError
from blemore.features.openface import (
    CONFIDENCE_THRESHOLD,
    GOOD_FRAMES_RATIO,
    OpenFacePreprocessing,
    official_frames,
    openface_columns,
)
from blemore.features.summary import ExtractionSummary, Failure, software_versions
from blemore.labels import clip_stem

__all__ = ["import_openface", "import_npy", "openface_frames", "OPENFACE_PREFIXES"]

OPENFACE_PREFIXES = ("gaze", "pose", "AU_r", "AU_c")


def _check_name(name: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", name or ""):
        raise BlemoreError(
            f"feature set name {name!r}: use lowercase letters, digits, '.', '_' or '-' (e.g. 'imagebind')"
        )
    return name


def _files(src: str | Path, suffix: str) -> dict[str, Path]:
    src = Path(src)
    if not src.exists():
        raise BlemoreError(f"{src}: no such folder")
    files = [src] if src.is_file() else sorted(p for p in src.rglob(f"*{suffix}") if not p.name.startswith("."))
    found: dict[str, Path] = {}
    for p in files:
        clip = clip_stem(p.name)
        if clip in found:
            raise BlemoreError(f"{src}: clip {clip!r} appears twice ({found[clip]} and {p})")
        found[clip] = p
    if not found:
        raise BlemoreError(f"{src}: no {suffix} files found")
    return found


def _summary(out: Path, name: str):
    return ExtractionSummary(out=out, encoders=[name])


def _read_openface(path: Path, *, nrows: int | None = None):
    """One OpenFace CSV as a DataFrame, column names stripped; a file that is no CSV is one :class:`BlemoreError`."""
    import pandas as pd

    try:
        df = pd.read_csv(path, skipinitialspace=True, nrows=nrows)
    except pd.errors.EmptyDataError:
        raise BlemoreError(f"{path}: the file is empty; expected OpenFace 2.0 FeatureExtraction output (CSV)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BlemoreError(f"{path}: not a readable OpenFace CSV ({why})") from None
    df.columns = [str(c).strip() for c in df.columns]
    return df


def _openface_rate(df, fps: float | None) -> float | None:
    """``fps``, or the frame rate from the ``timestamp`` column."""
    if fps is not None or "timestamp" not in df.columns or len(df) < 2:
        return fps
    steps = np.diff(df["timestamp"].to_numpy(dtype=np.float64))
    steps = steps[steps > 0]
    return float(1.0 / np.median(steps)) if len(steps) else None


def openface_frames(df, columns: list[str], preprocessing: OpenFacePreprocessing = "mark-failed",
                    *, path: str | Path = "") -> tuple[np.ndarray, float]:
    """A clip's OpenFace frames ``(T, D)`` float32 and the share of frames with a face.

    Raises :class:`BlemoreError` (naming ``path``) for missing columns or a file without frames.
    """
    needed = columns + (["success", "confidence"] if preprocessing == "official" else [])
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise BlemoreError(f"{path}: {len(missing)} OpenFace column(s) missing: {', '.join(missing[:5])}")
    if len(df) == 0:
        raise BlemoreError(f"{path}: no frames (an empty OpenFace file); run FeatureExtraction on this clip again")
    values = df[columns].to_numpy(dtype=np.float64)
    if preprocessing == "official":
        return official_frames(values, success=df["success"].to_numpy(),
                               confidence=df["confidence"].to_numpy(dtype=np.float64))
    ok = np.ones(len(df), bool)
    if "success" in df.columns:
        ok = df["success"].to_numpy() == 1
        values[~ok] = np.nan
    return values.astype(np.float32), float(ok.mean())


def _openface_settings(name: str, columns: list[str], preprocessing: OpenFacePreprocessing) -> dict:
    config = {"encoder": name, "source": "openface", "columns": columns}
    if preprocessing == "official":
        config.update(preprocessing="official", confidence_threshold=CONFIDENCE_THRESHOLD,
                      good_frames_ratio=GOOD_FRAMES_RATIO)
    return {"config": config, "versions": software_versions()}


def import_openface(src: str | Path, *, out: str | Path, name: str = "openface", fps: float | None = None,
                    overwrite: bool = False, preprocessing: OpenFacePreprocessing = "mark-failed"):
    """Import OpenFace 2.0 CSVs (one per clip) into ``out/<name>/``; returns an ExtractionSummary.

    ``preprocessing``: ``"mark-failed"`` (frames without a face become NaN rows) or
    ``"official"`` (the official baseline's confidence filter and interpolation, its 31
    columns; :mod:`blemore.features.openface`).
    """
    import pandas as pd

    from blemore.features.store import FeatureStore

    if preprocessing not in get_args(OpenFacePreprocessing):
        raise BlemoreError(f"OpenFace preprocessing {preprocessing!r}: expected 'mark-failed' or 'official'")
    start = time.perf_counter()
    name = _check_name(name)
    files = _files(src, ".csv")
    out = Path(out)
    summary = _summary(out, name)
    first_path = next(iter(files.values()))
    first = _read_openface(first_path, nrows=1)
    try:
        columns = openface_columns(list(first.columns), preprocessing)
    except BlemoreError as exc:
        raise BlemoreError(f"{first_path}: {exc}") from None
    with FeatureStore(out / name, settings=_openface_settings(name, columns, preprocessing),
                      overwrite=overwrite) as store:
        done = store.done()
        for clip, path in files.items():
            if clip in done:
                summary.skipped += 1
                continue
            summary.clips += 1
            try:
                df = _read_openface(path)
                values, face = openface_frames(df, columns, preprocessing, path=path)
                store.write(clip, values, fps=_openface_rate(df, fps), face_found=face)
                summary.done += 1
            except (BlemoreError, ValueError, pd.errors.ParserError) as exc:
                reason = str(exc) if isinstance(exc, BlemoreError) else f"{path}: {' '.join(str(exc).split())}"
                store.fail(clip, reason)
                summary.failed += 1
                summary.failures.append(Failure(name, clip, reason))
    summary.seconds = time.perf_counter() - start
    return summary


def import_npy(src: str | Path, *, out: str | Path, name: str, fps: float | None = None,
               overwrite: bool = False):
    """Import a folder of per-clip ``.npy`` features into ``out/<name>/``; returns an ExtractionSummary."""
    from blemore.features.store import FeatureStore

    start = time.perf_counter()
    name = _check_name(name)
    files = _files(src, ".npy")
    out = Path(out)
    if Path(src).resolve() == (out / name).resolve():
        raise BlemoreError(f"{src}: source and destination are the same folder")
    summary = _summary(out, name)
    dim: int | None = None
    settings = {"config": {"encoder": name, "source": "npy", "fps": fps}, "versions": software_versions()}
    with FeatureStore(out / name, settings=settings, overwrite=overwrite) as store:
        done = store.done()
        dims = {int(r["dim"]) for r in store.rows.values() if r.get("status") == "done" and r.get("dim")}
        dim = dims.pop() if len(dims) == 1 else None
        for clip, path in files.items():
            if clip in done:
                summary.skipped += 1
                continue
            summary.clips += 1
            try:
                try:
                    arr = np.load(path, allow_pickle=False)
                except Exception as exc:
                    raise BlemoreError(f"{path}: not a readable .npy array ({type(exc).__name__})") from None
                if arr.ndim == 1:
                    arr = arr[None, :]
                if arr.ndim != 2:
                    raise BlemoreError(f"{path}: shape {arr.shape}, expected (frames, dim) or (dim,)")
                if dim is None:
                    dim = arr.shape[1]
                if arr.shape[1] != dim:
                    raise BlemoreError(f"{path}: dimension {arr.shape[1]}, other clips have {dim}")
                store.write(clip, arr, fps=fps, dim=dim)
                summary.done += 1
            except BlemoreError as exc:
                store.fail(clip, str(exc))
                summary.failed += 1
                summary.failures.append(Failure(name, clip, str(exc)))
    summary.seconds = time.perf_counter() - start
    return summary
