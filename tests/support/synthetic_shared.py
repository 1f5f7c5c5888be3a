"""A tiny generated dataset shared by the synthetic-data and demo tests (and pytest-xdist workers).

It lives beside the session's temporary folders, generated once under a file lock; the
generator's own cache makes every later request instant.
"""

from __future__ import annotations

import fcntl
from pathlib import Path

from blemore.data.synthetic import GeneratedDataset, generate_dataset

#: 6 actors (1 held out, 1 per fold), 2-second clips at 5 fps, 192 px, half the default noise
#: (with 5 training actors the default difficulty leaves too little to learn for a stable test).
TINY = dict(actors=6, seed=3, duration=2.0, fps=5, size=192, noise=0.5)


def shared_root(tmp_path_factory) -> Path:
    base = tmp_path_factory.getbasetemp()
    # Under pytest-xdist every worker has its own base; their parent is shared.
    return base.parent if base.name.startswith("popen-gw") else base


def shared_dataset(tmp_path_factory, root: Path | None = None) -> GeneratedDataset:
    """The tiny dataset at ``root`` (default: shared folder ``blemore-d-tiny/data``)."""
    folder = shared_root(tmp_path_factory) / "blemore-d-tiny"
    folder.mkdir(exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return generate_dataset(root or folder / "data", **TINY, progress=False)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
