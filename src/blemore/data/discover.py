"""Finding the clips in a folder: the manifest.

A *manifest* is a table with one row per clip: ``clip`` (the id: file name without
extension), ``path``, ``duration`` (s), ``fps``, ``width``, ``height``, ``has_audio``,
``actor``, ``fold`` and ``partition`` (``train`` / ``test`` / empty), and ``error``
when the file could not be probed. BLEMORE ships ``.mov``; any container PyAV opens
is accepted (the extensions in :data:`VIDEO_EXTENSIONS`, or pass your own).

Actor and fold come from the metadata CSV when one is given (official layout,
read by :func:`blemore.data.metadata.read_metadata`), otherwise from the clip
name when it is descriptive (``A102_ang_int1_ver1`` -> actor ``A102``, partition
``train``; ``test_0001`` -> partition ``test``).

>>> manifest = discover_clips("clips/", metadata="train_metadata.csv")  # doctest: +SKIP
>>> manifest[["clip", "actor", "fold", "has_audio"]].head(2)             # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pandas as pd

from blemore.errors import BlemoreError
from blemore.labels import clip_stem, parse_clip_name

__all__ = ["VIDEO_EXTENSIONS", "MANIFEST_COLUMNS", "find_clip_files", "discover_clips"]

#: File extensions taken as clips (case-insensitive).
VIDEO_EXTENSIONS: tuple[str, ...] = (
    ".mov", ".mp4", ".m4v", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp", ".ts",
)
MANIFEST_COLUMNS: tuple[str, ...] = (
    "clip", "path", "duration", "fps", "width", "height", "has_audio", "actor", "fold", "partition", "error",
)


def find_clip_files(
    folder: str | Path, *, extensions: Iterable[str] = VIDEO_EXTENSIONS, recursive: bool = True
) -> dict[str, Path]:
    """Clip id -> file for every clip file under ``folder`` (sorted by id).

    A single file is accepted too. Raises :class:`BlemoreError` if the folder does not
    exist, holds no clip, or two files share a clip id (``A.mov`` and ``sub/A.mp4``).
    """
    folder = Path(folder)
    exts = {e.lower() if e.startswith(".") else "." + e.lower() for e in extensions}
    if not folder.exists():
        raise BlemoreError(f"{folder}: no such folder (expected a folder of clips, e.g. .mov files)")
    if folder.is_file():
        files = [folder]
    else:
        pattern = "**/*" if recursive else "*"
        files = [
            p for p in folder.glob(pattern)
            if p.is_file() and p.suffix.lower() in exts and not p.name.startswith(".")
        ]
    found: dict[str, Path] = {}
    for path in sorted(files):
        clip = clip_stem(path.name)
        if clip in found:
            raise BlemoreError(
                f"{folder}: clip id {clip!r} is used by two files ({found[clip]} and {path}); "
                "keep one of them or extract the folders separately"
            )
        found[clip] = path
    if not found:
        raise BlemoreError(
            f"{folder}: no clip files found (looked for {', '.join(sorted(exts))}); "
            "point at the folder holding the clips"
        )
    return dict(sorted(found.items()))


def _from_name(clip: str) -> tuple[str | None, str | None]:
    try:
        parsed = parse_clip_name(clip)
    except BlemoreError:
        return None, None
    if parsed.label is None:
        return None, "test"
    return parsed.actor, "train"


def discover_clips(
    folder: str | Path,
    *,
    metadata: str | Path | pd.DataFrame | None = None,
    probe: bool = True,
    extensions: Iterable[str] = VIDEO_EXTENSIONS,
    strict_metadata: bool = False,
) -> pd.DataFrame:
    """The manifest of the clips under ``folder``.

    Parameters
    ----------
    folder : folder of clips (searched recursively) or one clip file.
    metadata : official metadata CSV (or its table) giving actor and fold.
    probe : open each file to read duration, rate, size and audio presence; a file that
        cannot be opened gets its reason in ``error`` (the manifest is still returned).
    extensions : file extensions taken as clips.
    strict_metadata : raise if a clip in the folder is not in the metadata.

    Returns
    -------
    DataFrame with :data:`MANIFEST_COLUMNS`, one row per clip, sorted by clip.
    """
    files = find_clip_files(folder, extensions=extensions)
    meta: pd.DataFrame | None = None
    if metadata is not None:
        if isinstance(metadata, pd.DataFrame):
            meta = metadata
        else:
            from blemore.data.metadata import read_metadata

            meta = read_metadata(metadata)
        meta = meta.set_index("filename")
        missing = [c for c in files if c not in meta.index]
        if strict_metadata and missing:
            raise BlemoreError(
                f"{metadata}: {len(missing)} clip(s) of {folder} are not in the metadata, "
                f"e.g. {missing[0]!r}"
            )
    rows = []
    for clip, path in files.items():
        actor, partition = _from_name(clip)
        fold = pd.NA
        if meta is not None and clip in meta.index:
            entry = meta.loc[clip]
            actor = str(entry["actor"]) if pd.notna(entry["actor"]) else actor
            fold = entry["fold"]
            partition = "train" if pd.notna(fold) else "test"
        row = {
            "clip": clip, "path": str(path), "duration": None, "fps": None, "width": None, "height": None,
            "has_audio": None, "actor": actor, "fold": fold, "partition": partition, "error": None,
        }
        if probe:
            from blemore.media.decoder import probe as probe_file

            try:
                info = probe_file(path)
            except BlemoreError as exc:
                row["error"] = str(exc)
            else:
                row.update(
                    duration=info.duration, fps=info.fps, width=info.width, height=info.height,
                    has_audio=info.has_audio,
                    error=None if info.has_video or info.has_audio else f"{path}: no audio or video stream",
                )
        rows.append(row)
    df = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    df["fold"] = df["fold"].astype("Int64")
    for col in ("width", "height"):
        df[col] = df[col].astype("Int64")
    df["duration"] = df["duration"].astype("float64")
    df["fps"] = df["fps"].astype("float64")
    df["has_audio"] = df["has_audio"].astype("boolean")
    return df
