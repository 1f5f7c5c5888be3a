"""Hand decoded clips from decoding worker processes to the main process through shared memory.

With ``pool="process"`` (the default with ``--device cuda``) a worker process decodes a clip
and the main process, which feeds the GPU, receives it. Pickled through a pipe, one 5 s clip
of 30 fps frames at 224 × 398 (40 MB) costs the main process about 130 ms on the 2-core VM
(311 MB/s, ``docs/benchmarks.md``): fewer than 8 clips/s, far below what VideoMAE or CLIP
eat on a GPU. Here the worker writes each large array to a file in ``/dev/shm`` (memory,
not disk) and sends only its name; the main process maps the file without copying and
unlinks it at once, so the memory goes back as soon as the array is dropped and a killed
run leaves nothing behind. Where ``/dev/shm`` is missing (macOS, Windows) or full, arrays
travel by pickle as before: the hand-off changes speed only, never results.

>>> import numpy as np
>>> x = np.arange(100_000, dtype=np.float32)
>>> y = receive(share(x, prefix=run_prefix()))
>>> bool(np.array_equal(x, y))
True
"""

from __future__ import annotations

import dataclasses
import itertools
import mmap
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blemore.media.decoder import DecodedClip

__all__ = ["SharedArray", "share", "receive", "pack_clip", "unpack_clip", "run_prefix", "sweep", "shm_dir"]

MIN_BYTES = 1 << 16  # smaller arrays are cheaper to pickle than to map
_counter = itertools.count()


@dataclass(frozen=True)
class SharedArray:
    """A C-contiguous array waiting in ``path`` (raw bytes, no header)."""

    path: str
    shape: tuple[int, ...]
    dtype: str


def shm_dir() -> Path | None:
    """The RAM-backed folder arrays go through, or None where there is none."""
    folder = Path(os.environ.get("BLEMORE_SHM_DIR", "/dev/shm"))
    return folder if folder.is_dir() and os.access(folder, os.W_OK) else None


def run_prefix() -> str:
    """A file-name prefix unique to this run: ``blemore-<main pid>-<random>``."""
    return f"blemore-{os.getpid()}-{secrets.token_hex(4)}"


def share(array: np.ndarray, *, prefix: str) -> SharedArray | np.ndarray:
    """Put ``array`` in shared memory (worker side); small arrays, or no room, give it back as is."""
    folder = shm_dir()
    if folder is None or array.nbytes < MIN_BYTES:
        return array
    array = np.ascontiguousarray(array)
    path = folder / f"{prefix}-{os.getpid()}-{next(_counter)}.npa"
    try:
        # write(), not a mapping: a full tmpfs gives ENOSPC here instead of SIGBUS later
        with open(path, "xb") as fh:
            fh.write(memoryview(array).cast("B"))
    except OSError:
        path.unlink(missing_ok=True)
        return array
    return SharedArray(str(path), tuple(array.shape), array.dtype.str)


def receive(item: SharedArray | np.ndarray) -> np.ndarray:
    """The array (main side): mapped copy-on-write, without a copy; its file is unlinked at once."""
    if not isinstance(item, SharedArray):
        return item
    try:
        with open(item.path, "rb") as fh:
            mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_COPY)
    finally:
        Path(item.path).unlink(missing_ok=True)
    return np.frombuffer(mapped, dtype=np.dtype(item.dtype)).reshape(item.shape)


def pack_clip(decoded: DecodedClip, *, prefix: str) -> DecodedClip:
    """``decoded`` with its waveform and frames in shared memory (for the trip to the main process)."""
    video = {spec: dataclasses.replace(v, frames=share(v.frames, prefix=prefix)) for spec, v in decoded.video.items()}
    audio = share(decoded.audio, prefix=prefix) if decoded.audio is not None else None
    return dataclasses.replace(decoded, audio=audio, video=video)


def unpack_clip(decoded: DecodedClip) -> DecodedClip:
    """The inverse of :func:`pack_clip`, in the main process."""
    video = {spec: dataclasses.replace(v, frames=receive(v.frames)) for spec, v in decoded.video.items()}
    audio = receive(decoded.audio) if decoded.audio is not None else None
    return dataclasses.replace(decoded, audio=audio, video=video)


def sweep(prefix: str) -> int:
    """Delete the files of a run (those its workers wrote but nobody received); returns how many."""
    folder = shm_dir()
    if folder is None:
        return 0
    removed = 0
    for path in folder.glob(f"{prefix}-*.npa"):
        path.unlink(missing_ok=True)
        removed += 1
    return removed


def sweep_stale() -> int:
    """Delete files left by runs whose main process is gone (killed before it could sweep)."""
    folder = shm_dir()
    if folder is None:
        return 0
    removed = 0
    for path in folder.glob("blemore-*.npa"):
        try:
            pid = int(path.name.split("-")[1])
        except (IndexError, ValueError):
            continue
        if not _alive(pid):
            try:
                path.unlink(missing_ok=True)
            except PermissionError:  # another user's file
                continue
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # somebody else's process
        return True
    return True
