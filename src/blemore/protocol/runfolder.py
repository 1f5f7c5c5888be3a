"""The run folder: the one writer and reader of what a run leaves on disk.

A run is written into a hidden *staging* folder beside its final place and published in one
step, so a failed or killed run never leaves half a run, and publishing never leaves a
moment without a run folder (the old run and the new one are swapped atomically where the
system allows it, ``renameat2(RENAME_EXCHANGE)`` on Linux).

Rules (the tool deletes only what it created):

- a new folder, or an existing empty one, becomes the run;
- an existing blemore run (it holds the marker file :data:`MARKER`, which lists every file
  the tool wrote) is replaced only with ``overwrite``; a run holding files the tool did not
  write (a user's notes, sources) is never replaced: the error names one of them;
- any other non-empty folder is refused;
- staging folders left by a killed run are removed by the next run into the same place
  (only folders that carry the staging marker and whose process is gone).

Files added to a published run (the report, held-out scores, predictions) go through
:meth:`RunFolder.add`, which records them in the marker, so a later ``overwrite`` knows them.

>>> import tempfile, pathlib
>>> out = pathlib.Path(tempfile.mkdtemp()) / "run"
>>> with RunFolder.create(out) as run:
...     _ = run.write_json("config.json", {"seed": 0})
>>> sorted(p.name for p in out.iterdir())
['.blemore-run.json', 'config.json']
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import json
import os
import shutil
import socket
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from blemore import io
from blemore.errors import BlemoreError

__all__ = ["MARKER", "STAGING_MARKER", "RunFolder", "read_marker", "is_run_folder", "swap_folders"]

#: The marker file of a published run: format, version and the files the tool wrote.
MARKER = ".blemore-run.json"
#: The marker file of a staging folder: who made it (host, process).
STAGING_MARKER = ".blemore-staging.json"
_FORMAT = "blemore-run"


def read_marker(folder: Path) -> dict | None:
    """The marker of a run folder, or None if there is none or it cannot be read."""
    try:
        data = json.loads((Path(folder) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == _FORMAT else None


def is_run_folder(folder: Path) -> bool:
    """Whether ``folder`` is a published blemore run."""
    return read_marker(folder) is not None


def _files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() or p.is_symlink()}


def _foreign_files(folder: Path, marker: dict) -> list[str]:
    known = set(marker.get("files", [])) | {MARKER}
    return sorted(f for f in _files_under(folder) if f not in known)


_RENAME_EXCHANGE = 2


def swap_folders(a: Path, b: Path) -> bool:
    """Exchange two folders atomically (Linux ``renameat2``); False where the system cannot."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    try:
        libc = ctypes.CDLL(libc_name, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd = -100
    rc = fn(at_fdcwd, os.fsencode(str(a)), at_fdcwd, os.fsencode(str(b)), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EXDEV):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _process_gone(info: dict) -> bool:
    if info.get("host") != socket.gethostname():
        return False  # another machine's: leave it
    pid = int(info.get("pid", 0))
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class RunFolder:
    """A run being written (``create``) or an existing one (``open``); see the module docstring.

    Relative paths name files inside the run (``"models/x.npz"``); every write goes through
    :mod:`blemore.io` and is recorded for the marker.
    """

    def __init__(self, out: Path, root: Path, *, staging: bool) -> None:
        self.out = Path(out)
        self.root = Path(root)
        self.staging = staging
        self.files: set[str] = set()

    # ------------------------------------------------------------------ opening

    @classmethod
    def check_target(cls, out: Path, *, overwrite: bool = False) -> None:
        """Raise :class:`BlemoreError` if a run may not be written to ``out`` (checked before any work)."""
        out = Path(out)
        if not out.exists():
            return
        if not out.is_dir():
            raise BlemoreError(f"{out}: exists and is not a folder; choose another --out")
        if not any(out.iterdir()):
            return
        marker = read_marker(out)
        if marker is None:
            raise BlemoreError(
                f"{out}: folder exists, is not empty and is not a blemore run; choose another --out"
            )
        foreign = _foreign_files(out, marker)
        if foreign:
            raise BlemoreError(
                f"{out}: the run folder holds {len(foreign)} file(s) blemore did not write (e.g. {foreign[0]!r}); "
                "move them out or choose another --out"
            )
        if not overwrite:
            raise BlemoreError(f"{out}: a blemore run is already there; pass --overwrite to replace it")

    @classmethod
    @contextlib.contextmanager
    def create(cls, out: Path, *, overwrite: bool = False) -> Iterator["RunFolder"]:
        """Stage a new run for ``out``; published at the end of the ``with`` block, discarded on an error."""
        out = Path(out)
        cls.check_target(out, overwrite=overwrite)
        if out.parent.exists():
            cls.remove_stale_staging(out)
        tag = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        root = out.parent / f".{out.name}.staging-{tag}"
        run = cls(out, root, staging=True)
        with run._as_user(""):
            try:
                out.parent.mkdir(parents=True, exist_ok=True)
                root.mkdir()
                io.write_json(root / STAGING_MARKER, {"host": socket.gethostname(), "pid": os.getpid(),
                                                      "out": out.name})
            except OSError:
                shutil.rmtree(root, ignore_errors=True)
                raise
        try:
            yield run
            with run._as_user(""):
                run._publish(overwrite=overwrite)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise

    @classmethod
    def open(cls, run: Path) -> "RunFolder":
        """A published run, to read from or add files to; :class:`BlemoreError` if ``run`` is not one."""
        run = Path(run)
        if not run.is_dir():
            raise BlemoreError(f"{run}: no such run folder (written by `blemore benchmark`)")
        marker = read_marker(run)
        if marker is None:
            raise BlemoreError(f"{run}: not a blemore run folder (no {MARKER}); run `blemore benchmark` first")
        folder = cls(run, run, staging=False)
        folder.files = set(marker.get("files", []))
        return folder

    @staticmethod
    def remove_stale_staging(out: Path) -> int:
        """Delete staging folders of ``out`` whose process is gone (left by a killed run); returns how many."""
        removed = 0
        for stage in Path(out).parent.glob(f".{Path(out).name}.staging-*"):
            try:
                info = json.loads((stage / STAGING_MARKER).read_text())
            except (OSError, ValueError):
                continue  # not ours, or not readable: never delete it
            if isinstance(info, dict) and _process_gone(info):
                shutil.rmtree(stage, ignore_errors=True)
                removed += 1
        return removed

    # ------------------------------------------------------------------ writing

    def path(self, rel: str) -> Path:
        """The path of ``rel`` inside the run (parent folders created)."""
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    @contextlib.contextmanager
    def _as_user(self, rel: str) -> Iterator[None]:
        """An ``OSError`` while writing ``rel`` names the user's path (``OUT/rel``), never the staging folder."""
        try:
            yield
        except OSError as exc:
            if exc.errno is None or not self.staging:
                raise
            raise type(exc)(exc.errno, exc.strerror or os.strerror(exc.errno), str(self.out / rel)) from None

    def _written(self, rel: str, path: Path) -> Path:
        self.files.add(Path(rel).as_posix())
        if not self.staging:
            self._write_marker(self.root)
        return self.out / rel if self.staging else path

    def write_bytes(self, rel: str, data: bytes) -> Path:
        with self._as_user(rel):
            return self._written(rel, io.write_bytes(self.path(rel), data))

    def write_text(self, rel: str, text: str) -> Path:
        with self._as_user(rel):
            return self._written(rel, io.write_text(self.path(rel), text))

    def write_json(self, rel: str, obj: Any) -> Path:
        with self._as_user(rel):
            return self._written(rel, io.write_json(self.path(rel), obj))

    def write_csv(self, rel: str, frame: Any, **to_csv: Any) -> Path:
        with self._as_user(rel):
            return self._written(rel, io.write_csv(self.path(rel), frame, **to_csv))

    def save_npz(self, rel: str, **arrays: np.ndarray) -> Path:
        with self._as_user(rel):
            return self._written(rel, io.save_npz(self.path(rel), **arrays))

    def write_with(self, rel: str, write: Callable[[Path], Any]) -> Path:
        """Let ``write(path)`` write ``rel`` (e.g. a writer that validates first); it must write atomically."""
        with self._as_user(rel):
            path = self.path(rel)
            write(path)
            return self._written(rel, path)

    def add(self, rel: str, write: Callable[[Path], Any]) -> Path:
        """Add (or replace) a file of a published run and record it; same as :meth:`write_with`."""
        return self.write_with(rel, write)

    def _write_marker(self, root: Path) -> None:
        io.write_json(root / MARKER, {"format": _FORMAT, "version": 1, "files": sorted(self.files)})

    def _publish(self, *, overwrite: bool) -> None:
        self._write_marker(self.root)
        (self.root / STAGING_MARKER).unlink()
        out = self.out
        if out.exists() and any(out.iterdir()):
            self.check_target(out, overwrite=overwrite)  # nothing changed under us since the start
            if swap_folders(self.root, out):
                shutil.rmtree(self.root, ignore_errors=True)  # the old run, now at the staging name
                return
            old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
            out.rename(old)
            self.root.rename(out)
            shutil.rmtree(old, ignore_errors=True)
            return
        if out.exists():
            out.rmdir()  # empty
        self.root.rename(out)

    # ------------------------------------------------------------------ reading

    def read_json(self, rel: str) -> Any:
        """A JSON file of the run; one-line error naming it if it is missing or not JSON."""
        path = self.root / rel
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise BlemoreError(f"{path}: missing from the run folder") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise BlemoreError(f"{path}: not valid JSON ({exc}); the run folder is damaged") from None

    def load_npz(self, rel: str) -> dict[str, np.ndarray]:
        """Arrays of an ``.npz`` of the run, never unpickled; one-line error if missing or damaged."""
        import zipfile

        path = self.root / rel
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except FileNotFoundError:
            raise BlemoreError(f"{path}: missing from the run folder") from None
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
            raise BlemoreError(f"{path}: not a readable .npz ({type(exc).__name__}: {exc}); the run folder is damaged") from None
