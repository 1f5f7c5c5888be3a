"""The frame-level feature store: one folder per encoder, one ``(T, D)`` float32 ``.npy`` per clip.

Layout::

    FEATURES/<encoder>/<clip>.npy      float32 (T, D); NaN rows = frames without a face
    FEATURES/<encoder>/index.csv       clip, status (done|failed), frames, dim, fps, encoder,
                                       model_id, revision, layer, face_found, error
    FEATURES/<encoder>/settings.json   encoder settings, model id and revision, versions

Every file is written through :mod:`blemore.io` (a temporary name in the same folder,
renamed over the final one), so a killed run or a full disk leaves complete files or
none: the ``.npy`` of a clip is in place before its index row. The index is rewritten
at most every ``flush_every`` seconds and on :meth:`FeatureStore.close`; on opening,
clips whose ``.npy`` exists but whose row was not yet written are taken into the index
from the file itself (listed in :attr:`FeatureStore.adopted`, so that a writer that knows
their rate can complete their rows), rows whose file vanished are dropped, and leftover
temporary files are removed. Re-running skips ``done`` clips and retries ``failed`` ones.
``settings.json`` is rewritten only when what it says changes, so a resumed run leaves it
byte for byte as it was.

>>> store = FeatureStore("features/opensmile", settings={"encoder": "opensmile"})  # doctest: +SKIP
>>> store.write("A102_ang_int1_ver1", features, fps=100.0)                          # doctest: +SKIP
>>> store.close()                                                                   # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from blemore.errors import BlemoreError
from blemore.io import remove_temporaries, save_npy, write_bytes

__all__ = ["INDEX_COLUMNS", "FeatureStore", "read_index", "check_features"]

INDEX_COLUMNS: tuple[str, ...] = (
    "clip", "status", "frames", "dim", "fps", "encoder", "model_id", "revision", "layer", "face_found", "error",
)


def check_features(clip: str, features: np.ndarray, dim: int | None) -> np.ndarray:
    """``features`` as a C-contiguous float32 ``(frames, dim)`` array; :class:`BlemoreError` if they
    cannot be stored (not 2-D, no frames, another dimension, not numbers, infinite values)."""
    arr = np.asarray(features)
    if arr.ndim != 2:
        raise BlemoreError(f"clip {clip!r}: features must be (frames, dim), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise BlemoreError(f"clip {clip!r}: no feature frames")
    if dim is not None and arr.shape[1] != dim:
        raise BlemoreError(f"clip {clip!r}: features have dimension {arr.shape[1]}, the store holds {dim}")
    if not np.issubdtype(arr.dtype, np.number):
        raise BlemoreError(f"clip {clip!r}: features are {arr.dtype}, expected numbers")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if np.isinf(arr).any():
        raise BlemoreError(f"clip {clip!r}: features contain infinite values")
    return arr


def read_index(path: str | Path) -> dict[str, dict[str, str]]:
    """An ``index.csv`` (or the encoder folder holding it) as clip -> row (strings); ``{}`` if there is none.

    Raises :class:`BlemoreError` naming the file if it is not an index (not text, no ``clip`` column).
    """
    path = Path(path)
    if path.is_dir():
        path = path / "index.csv"
    if not path.exists():
        return {}
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None:
                return {}
            if "clip" not in reader.fieldnames:
                raise BlemoreError(f"{path}: not a feature index (no 'clip' column)")
            return {row["clip"]: row for row in reader if row.get("clip")}
    except (UnicodeDecodeError, csv.Error) as exc:
        raise BlemoreError(f"{path}: not a readable feature index ({type(exc).__name__})") from None


def _stored_shape(path: Path) -> tuple[int, int] | None:
    """``(frames, dim)`` of a stored ``.npy`` (its header only), or None if it is not a whole 2-D array."""
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
        frames, dim = arr.shape
    except Exception:  # unreadable, cut short or not 2-D
        return None
    return int(frames), int(dim)


def _row_fits(row: dict[str, str | None], shape: tuple[int, int]) -> bool:
    """Whether a ``done`` row is whole and describes the file it stands for."""
    if any(row.get(c) is None for c in INDEX_COLUMNS):  # a row cut short
        return False
    return (row["frames"], row["dim"]) == (str(shape[0]), str(shape[1]))


class FeatureStore:
    """One encoder's folder of features (see the module docstring).

    Parameters
    ----------
    folder : ``FEATURES/<encoder>``; created if missing.
    settings : what made the features; written to ``settings.json``. If the folder already
        holds features made with other settings, :class:`BlemoreError` (pass ``overwrite=True``
        to clear the folder instead).
    overwrite : delete existing features first.
    flush_every : seconds between index rewrites.
    """

    def __init__(self, folder: str | Path, *, settings: dict[str, Any] | None = None,
                 overwrite: bool = False, flush_every: float = 2.0):
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise BlemoreError(f"{self.folder}: exists and is not a folder")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.flush_every = flush_every
        self._last_flush = time.monotonic()
        self._dirty = False
        if overwrite:
            self.clear()
        self.settings = settings
        self._check_settings(settings)
        self.rows: dict[str, dict[str, str]] = {}
        #: clips taken into the index from their ``.npy`` at opening (a killed run wrote the file, no row)
        self.adopted: set[str] = set()
        self._reconcile()

    # -- opening ---------------------------------------------------------------------------
    def _check_settings(self, settings: dict[str, Any] | None) -> None:
        path = self.folder / "settings.json"
        if settings is None:
            return
        old = _read_settings(path)
        if old is not None and old.get("config") != settings.get("config") and any(self.folder.glob("*.npy")):
            diff = sorted(
                k for k in set(old.get("config", {})) | set(settings.get("config", {}))
                if old.get("config", {}).get(k) != settings.get("config", {}).get(k)
            )
            raise BlemoreError(
                f"{self.folder}: holds features made with other settings (differing: {', '.join(diff)}); "
                "write to another --out folder or pass --overwrite to replace them"
            )
        if old is not None and _same_settings(old, settings):
            return  # a resumed run: the file stays as it is
        write_bytes(path, (json.dumps(settings, indent=2, sort_keys=True, default=str) + "\n").encode())

    def _reconcile(self) -> None:
        """Make the index agree with the files: a ``done`` row needs a whole ``.npy`` of its shape
        (else the clip is redone, or taken from its file), a whole ``.npy`` without a row is adopted."""
        remove_temporaries(self.folder)
        try:
            rows = read_index(self.folder / "index.csv")
        except BlemoreError:  # damaged: rebuilt from the files, which are the features themselves
            rows = {}
            self._dirty = True
        shapes = {p.stem: _stored_shape(p) for p in sorted(self.folder.glob("*.npy"))}
        for clip, row in rows.items():
            status = row.get("status")
            shape = shapes.get(clip)
            whole = status == "failed" or (status == "done" and shape is not None and _row_fits(row, shape))
            if not whole:
                self._dirty = True
                continue  # file vanished, unreadable or not what the row says: taken from the file or redone
            self.rows[clip] = {c: row.get(c) or "" for c in INDEX_COLUMNS}
        config = (self.settings or {}).get("config", {})
        for clip, shape in shapes.items():
            if shape is None or self.rows.get(clip, {}).get("status") == "done":
                continue
            self.rows[clip] = self._row(
                clip, status="done", frames=shape[0], dim=shape[1], fps=config.get("fps", ""), error=""
            )
            self.adopted.add(clip)
            self._dirty = True

    def _row(self, clip: str, **values: Any) -> dict[str, str]:
        cfg = (self.settings or {}).get("config", {})
        row = {c: "" for c in INDEX_COLUMNS}
        row.update(
            clip=clip, encoder=str(cfg.get("encoder", self.folder.name)), model_id=str(cfg.get("model_id", "")),
            revision=str(cfg.get("revision", "")), layer=str(cfg.get("layer", "")),
        )
        for key, value in values.items():
            row[key] = "" if value is None else (f"{value:.6g}" if isinstance(value, float) else str(value))
        return row

    # -- state -----------------------------------------------------------------------------
    def done(self) -> set[str]:
        """Clips whose features are stored."""
        return {c for c, r in self.rows.items() if r.get("status") == "done"}

    def failed(self) -> dict[str, str]:
        """Clip -> error of the clips that failed."""
        return {c: r.get("error", "") for c, r in self.rows.items() if r.get("status") == "failed"}

    def path(self, clip: str) -> Path:
        return self.folder / f"{clip}.npy"

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.done()))

    # -- writing ---------------------------------------------------------------------------
    def write(self, clip: str, features: np.ndarray, *, fps: float | None = None,
              face_found: float | None = None, dim: int | None = None) -> Path:
        """Store one clip's features atomically and record it as done."""
        arr = check_features(clip, features, dim)
        path = self.path(clip)
        save_npy(path, arr)
        self.rows[clip] = self._row(clip, status="done", frames=arr.shape[0], dim=arr.shape[1],
                                    fps=fps, face_found=face_found, error="")
        self._changed()
        return path

    def record_done(self, clip: str, *, frames: int, dim: int, fps: float | None = None,
                    face_found: float | None = None) -> None:
        """Record a clip whose ``.npy`` is already in place (written by a Ray worker, or adopted)."""
        self.rows[clip] = self._row(clip, status="done", frames=frames, dim=dim, fps=fps,
                                    face_found=face_found, error="")
        self.adopted.discard(clip)
        self._changed()

    def fail(self, clip: str, error: str) -> None:
        """Record that ``clip`` failed (its reason goes to the index; a rerun retries it)."""
        self.rows[clip] = self._row(clip, status="failed", error=" ".join(str(error).split()))
        self._changed()

    def _changed(self) -> None:
        self._dirty = True
        if time.monotonic() - self._last_flush >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Rewrite ``index.csv`` atomically (sorted by clip)."""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(INDEX_COLUMNS), extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for clip in sorted(self.rows):
            writer.writerow({c: self.rows[clip].get(c, "") for c in INDEX_COLUMNS})
        write_bytes(self.folder / "index.csv", buf.getvalue().encode())
        self._dirty = False
        self._last_flush = time.monotonic()

    def close(self) -> None:
        """Write the index if it changed (or does not exist yet)."""
        if self._dirty or not (self.folder / "index.csv").exists():
            self.flush()

    def clear(self) -> None:
        """Delete the stored features, index and settings of this folder."""
        files = sorted(self.folder.glob("*.npy")) + [self.folder / "index.csv", self.folder / "settings.json"]
        for p in files:
            if p.exists():
                p.unlink()

    def __enter__(self) -> "FeatureStore":
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        try:
            self.close()
        except OSError:
            if exc_type is None:
                raise
            # leaving on an error already (a full disk?): that one is reported; the files
            # written are taken into the index when the store is opened again


def _read_settings(path: Path) -> dict[str, Any] | None:
    try:
        old = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return old if isinstance(old, dict) else None


def _same_settings(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether two settings say the same, apart from when they were made (compared as stored: JSON)."""
    def as_stored(settings: dict[str, Any]) -> Any:
        kept = {k: v for k, v in settings.items() if k != "created"}
        return json.loads(json.dumps(kept, sort_keys=True, default=str))

    return as_stored(old) == as_stored(new)
