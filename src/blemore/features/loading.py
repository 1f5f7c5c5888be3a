"""Load feature sets for a list of clips: clip-level ``.npz`` or frame-level ``.npy`` folders.

A *feature source* is named on the command line as ``name=PATH``:

- ``PATH`` a ``.npz`` with ``X`` (N x D) and ``filenames`` (N): clip-level features,
  used as they are (the statistics were computed elsewhere);
- ``PATH`` a folder of ``<clip>.npy`` arrays ``(T, D)`` (what ``blemore extract``
  writes; an ``index.csv`` beside them is not needed): frame-level features,
  turned into the seven statistics (:func:`~blemore.features.aggregate.aggregate_stats`)
  or into 16-frame windows (:func:`~blemore.features.aggregate.windows`).

A *feature set* joins sources with ``+`` (``wavlm+videomae``): early fusion by
concatenating the clip vectors (for windows: each part's windows are resampled
to the smaller count, by relative position in the clip, then concatenated).

Every problem is one :class:`BlemoreError`: clips without features (a few named,
the rest counted), NaN/Inf values, dimensions that differ inside a source, a
clip whose frames are all NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from blemore.errors import BlemoreError
from blemore.features.aggregate import aggregate_stats, windows
from blemore.io import load_npz
from blemore.labels import clip_stem

__all__ = [
    "Representation",
    "FeatureRows",
    "parse_feature_specs",
    "parse_set_names",
    "load_source",
    "load_feature_set",
    "available_clips",
]

Representation = Literal["stats", "windows"]


@dataclass
class FeatureRows:
    """Rows of one feature set for a list of clips.

    ``X`` is ``(R, D)`` float32; ``row_clip[r]`` is the position of row r's clip in
    the requested clip list (stats: one row per clip, ``row_clip = arange(N)``).
    """

    X: np.ndarray
    row_clip: np.ndarray
    clips: list[str]

    @property
    def dim(self) -> int:
        return int(self.X.shape[1])

    def clip_matrix(self) -> np.ndarray:
        """One vector per clip: the rows themselves, or the mean of each clip's windows."""
        if len(self.row_clip) == len(self.clips) and np.array_equal(self.row_clip, np.arange(len(self.clips))):
            return self.X
        n = len(self.clips)
        sums = np.zeros((n, self.X.shape[1]))
        np.add.at(sums, self.row_clip, self.X)
        counts = np.bincount(self.row_clip, minlength=n)[:, None]
        return (sums / np.maximum(counts, 1)).astype(np.float32)


def parse_feature_specs(specs: Sequence[str]) -> dict[str, Path]:
    """``["wavlm=feats/wavlm", ...]`` -> ``{"wavlm": Path(...)}``; names unique, no ``+``."""
    out: dict[str, Path] = {}
    for spec in specs:
        name, sep, path = str(spec).partition("=")
        name = name.strip()
        if not sep or not name or not path.strip():
            raise BlemoreError(f"--features {spec!r}: expected NAME=PATH, e.g. wavlm=features/wavlm")
        if "+" in name or "/" in name:
            raise BlemoreError(f"--features {spec!r}: a feature name may not contain '+' or '/'")
        if name in out:
            raise BlemoreError(f"--features: the name {name!r} is given twice")
        p = Path(path.strip())
        if not p.exists():
            raise BlemoreError(f"--features {name}={p}: no such file or folder")
        out[name] = p
    if not out:
        raise BlemoreError("no features given; pass --features NAME=PATH (a .npz or a folder of .npy)")
    return out


def parse_set_names(sets: Sequence[str] | None, sources: dict[str, Path]) -> list[str]:
    """Feature-set names (``"a"``, ``"a+b"``); by default every source on its own."""
    if not sets:
        return list(sources)
    out: list[str] = []
    for s in sets:
        for item in str(s).split(","):
            item = item.strip()
            if not item:
                continue
            parts = [p.strip() for p in item.split("+")]
            unknown = [p for p in parts if p not in sources]
            if unknown:
                raise BlemoreError(
                    f"--set {item!r}: unknown feature name(s) {', '.join(map(repr, unknown))}; "
                    f"known: {', '.join(sources)}"
                )
            if len(set(parts)) != len(parts):
                raise BlemoreError(f"--set {item!r}: a feature is named twice")
            name = "+".join(parts)
            if name not in out:
                out.append(name)
    if not out:
        raise BlemoreError("--set: no feature set named")
    return out


def available_clips(path: Path) -> list[str]:
    """The clips a source has features for (npz filenames, or ``*.npy`` in a folder)."""
    path = Path(path)
    if path.is_dir():
        return sorted(p.stem for p in path.glob("*.npy"))
    X, names = _read_npz(path)
    return names


def _read_npz(path: Path) -> tuple[np.ndarray, list[str]]:
    data = load_npz(path, names=("X", "filenames"))
    if "X" not in data or "filenames" not in data:
        found = ", ".join(load_npz(path)) or "none"
        raise BlemoreError(f"{path}: a clip-level feature file needs arrays 'X' and 'filenames', found {found}")
    X = data["X"]
    raw = [str(n) for n in data["filenames"].reshape(-1)]
    names = [clip_stem(n) for n in raw]
    if X.ndim != 2:
        raise BlemoreError(f"{path}: X must be 2-D (clips x dims), got shape {X.shape}")
    if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)):
        raise BlemoreError(f"{path}: X must hold real numbers, got dtype {X.dtype}")
    if X.shape[0] != len(names):
        raise BlemoreError(f"{path}: X has {X.shape[0]} rows but there are {len(names)} filenames")
    _check_unique_names(path, names, raw)
    return X, names


def _check_unique_names(path: Path, names: list[str], raw: list[str]) -> None:
    """Every clip once: a repeated name would silently pick one row (and hide the clip it replaced)."""
    first: dict[str, int] = {}
    for row, name in enumerate(names):
        if not name:
            raise BlemoreError(f"{path}: 'filenames' row {row} is empty")
        if name in first:
            k = first[name]
            spelled = f" (as {raw[k]!r} and {raw[row]!r})" if raw[k] != raw[row] else ""
            n_dup = len(names) - len(set(names))
            raise BlemoreError(
                f"{path}: clip {name!r} appears twice in 'filenames', rows {k} and {row}{spelled}; each clip needs "
                f"exactly one row (a copy-paste slip? the row may belong to another clip)"
                + (f"; {n_dup} repeated names in all" if n_dup > 1 else "")
            )
        first[name] = row


def _load_frames(path: Path) -> np.ndarray:
    """One clip's ``(T, D)`` array; anything else (a pickle, an .npz, text, truncated) is one error."""
    try:
        frames = np.load(path, allow_pickle=False)
    except (ValueError, EOFError) as exc:
        if "pickle" in str(exc):
            raise BlemoreError(f"{path}: not a .npy array (a pickle or another format); blemore never unpickles") from None
        raise BlemoreError(f"{path}: not a readable .npy ({exc})") from None
    if not isinstance(frames, np.ndarray):
        frames.close()
        raise BlemoreError(f"{path}: an .npz archive, expected one .npy array (frames x dims)")
    if not (np.issubdtype(frames.dtype, np.floating) or np.issubdtype(frames.dtype, np.integer)):
        raise BlemoreError(f"{path}: frame-level features must be real numbers, got dtype {frames.dtype}")
    return frames


def _missing_error(source: str, missing: list[str], n: int) -> BlemoreError:
    shown = ", ".join(missing[:5])
    more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
    return BlemoreError(
        f"{source}: no features for {len(missing)} of {n} clip(s) in the metadata: {shown}{more}; "
        "extract them or remove them from the metadata"
    )


def _check_finite(X: np.ndarray, clips: list[str], row_clip: np.ndarray, source: str) -> None:
    bad = ~np.isfinite(X).all(axis=1)
    if bad.any():
        names = sorted({clips[i] for i in row_clip[bad]})
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        raise BlemoreError(f"{source}: NaN or Inf in the features of {len(names)} clip(s): {shown}")


def load_source(
    path: Path,
    clips: Sequence[str],
    *,
    representation: Representation = "stats",
    window: int = 16,
    name: str | None = None,
    progress: bool = False,
) -> FeatureRows:
    """Rows of one source for ``clips`` (in that order)."""
    path = Path(path)
    source = f"{name}={path}" if name else str(path)
    clips = list(clips)
    if representation not in ("stats", "windows"):
        raise BlemoreError(f"unknown representation {representation!r}: expected 'stats' or 'windows'")
    if path.is_dir():
        files = {p.stem: p for p in path.glob("*.npy")}
        missing = [c for c in clips if c not in files]
        if missing:
            raise _missing_error(source, missing, len(clips))
        rows: list[np.ndarray] = []
        row_clip: list[np.ndarray] = []
        dim: int | None = None
        first = None
        it = enumerate(clips)
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(it, total=len(clips), desc=f"load {name or path.name}", unit="clip", leave=False)
        for i, c in it:
            frames = _load_frames(files[c])
            if frames.ndim == 1:
                frames = frames[None, :]
            if frames.ndim != 2:
                raise BlemoreError(f"{files[c]}: frame-level features must be (frames, dims), got {frames.shape}")
            if dim is None:
                dim, first = frames.shape[1], c
            elif frames.shape[1] != dim:
                raise BlemoreError(
                    f"{source}: clip {c!r} has {frames.shape[1]} dims but {first!r} has {dim}; "
                    "all clips of a feature source must have the same dimension"
                )
            if representation == "stats":
                r = aggregate_stats(frames, clip=f"{source}: clip {c!r}")[None, :]
            else:
                r = windows(frames, size=window, clip=f"{source}: clip {c!r}")
            rows.append(r)
            row_clip.append(np.full(len(r), i, dtype=np.int64))
        if not rows:
            return FeatureRows(np.zeros((0, 0), np.float32), np.zeros(0, np.int64), clips)
        X = np.concatenate(rows).astype(np.float32)
        rc = np.concatenate(row_clip)
    else:
        X_all, names = _read_npz(path)
        pos = {n: i for i, n in enumerate(names)}
        missing = [c for c in clips if c not in pos]
        if missing:
            raise _missing_error(source, missing, len(clips))
        X = np.asarray(X_all[[pos[c] for c in clips]], dtype=np.float32)
        rc = np.arange(len(clips), dtype=np.int64)
    _check_finite(X, clips, rc, source)
    return FeatureRows(X, rc, clips)


def fuse(parts: Sequence[FeatureRows]) -> FeatureRows:
    """Early fusion: concatenate per clip (windows resampled to the smaller count)."""
    if len(parts) == 1:
        return parts[0]
    clips = parts[0].clips
    if all(np.array_equal(p.row_clip, np.arange(len(clips))) for p in parts):
        return FeatureRows(np.concatenate([p.X for p in parts], axis=1), parts[0].row_clip, clips)
    n = len(clips)
    counts = np.stack([np.bincount(p.row_clip, minlength=n) for p in parts])
    starts = [np.concatenate([[0], np.cumsum(c)[:-1]]) for c in counts]
    k = counts.min(axis=0)
    out_rows = []
    for j, p in enumerate(parts):
        # row r of clip i in the fused set takes window round(r * (c_ij - 1) / max(k_i - 1, 1))
        idx = []
        for i in range(n):
            if k[i] == 1:
                local = np.zeros(1, dtype=np.int64)
            else:
                local = np.round(np.arange(k[i]) * (counts[j, i] - 1) / (k[i] - 1)).astype(np.int64)
            idx.append(starts[j][i] + local)
        order = np.argsort(p.row_clip, kind="stable")
        out_rows.append(p.X[order][np.concatenate(idx)])
    row_clip = np.repeat(np.arange(n), k)
    return FeatureRows(np.concatenate(out_rows, axis=1), row_clip, clips)


def load_feature_set(
    set_name: str,
    sources: dict[str, Path],
    clips: Sequence[str],
    *,
    representation: Representation = "stats",
    window: int = 16,
    cache: dict | None = None,
    progress: bool = False,
) -> FeatureRows:
    """Rows of the feature set ``a+b`` for ``clips`` (sources loaded once through ``cache``)."""
    parts = []
    for name in set_name.split("+"):
        if name not in sources:
            raise BlemoreError(f"feature set {set_name!r}: unknown feature {name!r}; known: {', '.join(sources)}")
        key = (name, representation, window, tuple(clips))
        if cache is not None and key in cache:
            parts.append(cache[key])
            continue
        rows = load_source(
            sources[name], clips, representation=representation, window=window, name=name, progress=progress
        )
        if cache is not None:
            cache[key] = rows
        parts.append(rows)
    return fuse(parts)


__all__ += ["fuse"]
