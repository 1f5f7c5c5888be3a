"""Atomic writes: the one place where blemore replaces a file.

Every file is written under a temporary name beside its final one and renamed into place
(``os.replace``), so a reader, a killed run or a full disk never sees half a file: the old
file stays until the new one is complete. Temporary names end in :data:`TMP_SUFFIX`, start
with a dot and carry host, process and a random tag, so several processes (Ray workers
sharing a store) never collide; :func:`remove_temporaries` sweeps what a killed run left.

Files are created with mode ``0o666`` minus the process umask, as ``open()`` creates them.
An ``OSError`` raised while writing names the user's path, never the temporary one; numpy's
"N requested and M written" (a full disk) becomes ``ENOSPC``.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> write_json(folder / "run.json", {"seed": 0}).read_text()
'{\\n  "seed": 0\\n}\\n'
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import socket
import uuid
import zipfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Callable

import numpy as np

from blemore.errors import BlemoreError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "TMP_SUFFIX",
    "temporary_name",
    "is_temporary",
    "user_path",
    "atomic_write",
    "write_bytes",
    "write_text",
    "write_json",
    "write_csv",
    "save_npy",
    "save_npz",
    "remove_temporaries",
    "load_npz",
]

#: Suffix of the temporary files of atomic writes.
TMP_SUFFIX = ".tmp"


_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[^.]+-\d+-[0-9a-f]{8}" + re.escape(TMP_SUFFIX) + "$")


def temporary_name(path: str | Path) -> Path:
    """A hidden temporary name beside ``path``, unique across hosts, processes and threads.

    ``.<name>.<host>-<pid>-<8 hex digits>.tmp``; dots in the host name become ``_`` so that
    :func:`user_path` can tell the tag from the name.
    """
    path = Path(path)
    host = socket.gethostname().replace(".", "_") or "host"
    tag = f"{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    return path.with_name(f".{path.name}.{tag}{TMP_SUFFIX}")


def is_temporary(path: str | Path) -> bool:
    """Whether ``path`` is named like a temporary file of :func:`atomic_write`."""
    name = Path(path).name
    return name.startswith(".") and name.endswith(TMP_SUFFIX)


def user_path(path: str | Path) -> Path:
    """The file a temporary name of :func:`temporary_name` stands for; any other path unchanged.

    >>> user_path(temporary_name("out/run.json")) == Path("out/run.json")
    True
    """
    path = Path(path)
    match = _TEMPORARY.match(path.name)
    return path.with_name(match.group("name")) if match else path


def _for_user(exc: OSError, path: Path) -> OSError:
    """``exc`` about ``path`` (not the temporary file); a short write of numpy's becomes ENOSPC."""
    code = exc.errno
    text = exc.strerror or str(exc)
    if code is None and "requested and" in str(exc) and "written" in str(exc):
        code, text = errno.ENOSPC, os.strerror(errno.ENOSPC)
    if code is None:
        return exc
    return type(exc)(code, text, str(path))


def atomic_write(path: str | Path, write: Callable[[BinaryIO], Any], *, durable: bool = False) -> Path:
    """Call ``write(fh)`` on a temporary file beside ``path``, then rename it to ``path``.

    ``durable`` flushes the file to the disk before the rename (for files a user hands on,
    such as a submission). Returns ``path``.
    """
    path = Path(path)
    tmp = temporary_name(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise _for_user(exc, path) from None
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        except OSError:  # pragma: no cover - e.g. a read-only folder: nothing was created
            pass
    return path


def write_bytes(path: str | Path, data: bytes, *, durable: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda fh: fh.write(data), durable=durable)


def write_text(path: str | Path, text: str, *, durable: bool = False) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"), durable=durable)


def write_json(path: str | Path, obj: Any, *, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON (non-JSON values through ``str``) with a final newline."""
    return write_text(path, json.dumps(obj, indent=indent, default=str) + "\n")


def write_csv(path: str | Path, frame: "pd.DataFrame", **to_csv: Any) -> Path:
    """Write a pandas DataFrame with ``frame.to_csv(**to_csv)`` atomically."""
    buffer = io.StringIO()
    frame.to_csv(buffer, **to_csv)
    return write_text(path, buffer.getvalue())


def save_npy(path: str | Path, array: np.ndarray) -> Path:
    """``np.save`` without pickles, atomically (never a half-written ``.npy``)."""
    return atomic_write(path, lambda fh: np.save(fh, array, allow_pickle=False))


def save_npz(path: str | Path, **arrays: Any) -> Path:
    """``np.savez`` of plain arrays (object arrays, which would need pickle, are refused), atomically."""
    plain = {k: np.asarray(v) for k, v in arrays.items()}
    for key, value in plain.items():
        if value.dtype == object:
            raise TypeError(f"save_npz: array {key!r} holds Python objects; store numbers or strings")
    return atomic_write(path, lambda fh: _write_npz(fh, plain))


#: The time stamp of every ``.npz`` member, so that the same arrays always give the same bytes.
_NPZ_TIME = (1980, 1, 1, 0, 0, 0)


def _write_npz(fh: BinaryIO, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez``'s layout (uncompressed ``<name>.npy`` members), byte-reproducible.

    Unlike ``np.savez``, the zip is closed even when a write fails (a full disk), so it does
    not fail a second time, later, on a closed file.
    """
    with zipfile.ZipFile(fh, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, value in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_NPZ_TIME)
            info.external_attr = 0o600 << 16
            with zf.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, value, allow_pickle=False)


def remove_temporaries(folder: str | Path) -> int:
    """Delete the temporary files of atomic writes in ``folder`` (left by a killed run); returns how many."""
    removed = 0
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    for tmp in folder.glob(f".*{TMP_SUFFIX}"):
        try:
            tmp.unlink()
            removed += 1
        except OSError:
            pass
    return removed


def load_npz(path: str | Path, *, names: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` (or only ``names``), read without unpickling anything.

    Whatever is wrong with the file (a pickle, a lone ``.npy``, a truncated or damaged
    zip, an array of Python objects) is one :class:`~blemore.errors.BlemoreError` naming
    ``path``; a missing file stays ``FileNotFoundError``.
    """
    path = Path(path)
    try:
        data = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc) and _starts_with(path, b"\x80"):
            raise BlemoreError(f"{path}: a Python pickle, not an .npz; blemore never unpickles files") from None
        raise BlemoreError(f"{path}: not an .npz file (np.savez writes a zip of arrays)") from None
    except (EOFError, zipfile.BadZipFile) as exc:
        raise BlemoreError(f"{path}: not a readable .npz ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise BlemoreError(f"{path}: a single .npy array, not an .npz holding named arrays")
    try:
        with data:
            wanted = names or tuple(data.files)
            return {name: np.asarray(data[name]) for name in wanted if name in data.files}
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise BlemoreError(
                f"{path}: an array is stored as Python objects, which blemore does not unpickle; store "
                "numbers, and names as strings (np.asarray(names, dtype=str))"
            ) from None
        raise BlemoreError(f"{path}: not a readable .npz ({exc})") from None
    except (EOFError, OSError, zipfile.BadZipFile, zlib.error) as exc:
        raise BlemoreError(f"{path}: a damaged .npz ({type(exc).__name__}: {exc})") from None


def _starts_with(path: Path, magic: bytes) -> bool:
    with open(path, "rb") as fh:
        return fh.read(len(magic)) == magic
