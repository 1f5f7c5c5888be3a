"""Bringing in features made elsewhere: OpenFace 2.0 CSVs and per-clip ``.npy`` folders.

Both write the same store as :func:`blemore.extraction.extract` (``FEATURES/<name>/<clip>.npy``
+ ``index.csv`` + ``settings.json``), so features of encoders blemore does not run
(ImageBind, Video Swin, HiCMAE, OpenFace) go through the protocol like the others.

- :func:`import_openface`: one ``<clip>.csv`` per clip as written by OpenFace 2.0
  ``FeatureExtraction``; keeps gaze (8), head pose (6), AU intensities (``AU.._r``) and
  AU presence (``AU.._c``); frames with ``success == 0`` become NaN rows.
- :func:`import_npy`: one ``<clip>.npy`` per clip, ``(T, D)``, or ``(D,)`` for one vector
  per clip (stored as one frame ``(1, D)``); all clips must share ``D``.

>>> import_npy("imagebind_feats/", name="imagebind", out="features/")  # doctest: +SKIP
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np

from blemore.errors import BlemoreError
from blemore.features.summary import ExtractionSummary, Failure, software_versions
from blemore.labels import clip_stem

__all__ = ["import_openface", "import_npy", "OPENFACE_PREFIXES"]

_GAZE = ["gaze_0_x", "gaze_0_y", "gaze_0_z", "gaze_1_x", "gaze_1_y", "gaze_1_z", "gaze_angle_x", "gaze_angle_y"]
_POSE = ["pose_Tx", "pose_Ty", "pose_Tz", "pose_Rx", "pose_Ry", "pose_Rz"]
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


def _openface_columns(columns: list[str]) -> list[str]:
    aur = sorted(c for c in columns if re.fullmatch(r"AU\d+_r", c))
    auc = sorted(c for c in columns if re.fullmatch(r"AU\d+_c", c))
    keep = [c for c in _GAZE + _POSE if c in columns] + aur + auc
    if not aur and not auc:
        raise BlemoreError("no AU columns (AU01_r, AU01_c, ...): is this OpenFace 2.0 FeatureExtraction output?")
    return keep


def import_openface(src: str | Path, *, out: str | Path, name: str = "openface", fps: float | None = None,
                    overwrite: bool = False):
    """Import OpenFace 2.0 CSVs (one per clip) into ``out/<name>/``; returns an ExtractionSummary."""
    import pandas as pd

    from blemore.features.store import FeatureStore

    start = time.perf_counter()
    name = _check_name(name)
    files = _files(src, ".csv")
    out = Path(out)
    summary = _summary(out, name)
    first = pd.read_csv(next(iter(files.values())), skipinitialspace=True, nrows=1)
    try:
        columns = _openface_columns([c.strip() for c in first.columns])
    except BlemoreError as exc:
        raise BlemoreError(f"{next(iter(files.values()))}: {exc}") from None
    settings = {"config": {"encoder": name, "source": "openface", "columns": columns}, "versions": software_versions()}
    with FeatureStore(out / name, settings=settings, overwrite=overwrite) as store:
        done = store.done()
        for clip, path in files.items():
            if clip in done:
                summary.skipped += 1
                continue
            summary.clips += 1
            try:
                df = pd.read_csv(path, skipinitialspace=True)
                df.columns = [c.strip() for c in df.columns]
                missing = [c for c in columns if c not in df.columns]
                if missing:
                    raise BlemoreError(f"{path}: {len(missing)} OpenFace column(s) missing: {', '.join(missing[:5])}")
                if len(df) == 0:
                    raise BlemoreError(f"{path}: no frames")
                values = df[columns].to_numpy(dtype=np.float64)
                ok = np.ones(len(df), bool)
                if "success" in df.columns:
                    ok = df["success"].to_numpy() == 1
                    values[~ok] = np.nan
                rate = fps
                if rate is None and "timestamp" in df.columns and len(df) > 1:
                    steps = np.diff(df["timestamp"].to_numpy(dtype=np.float64))
                    steps = steps[steps > 0]
                    rate = float(1.0 / np.median(steps)) if len(steps) else None
                store.write(clip, values.astype(np.float32), fps=rate, face_found=float(ok.mean()))
                summary.done += 1
            except (BlemoreError, ValueError, pd.errors.ParserError) as exc:
                reason = str(exc) if isinstance(exc, BlemoreError) else f"{path}: {exc}"
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
