"""What the MediaPipe users (the Face Mesh encoder, the face crop) share: importing it, silencing it.

- :func:`import_mediapipe`: ``mediapipe``, or a :class:`~blemore.errors.BlemoreError` with the
  install command (checked before any model is loaded);
- :func:`quiet_native_stderr`: MediaPipe's native code logs to file descriptor 2 while it builds
  and first runs a graph; this context silences it, safely across threads.

Importing this module does not import MediaPipe.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from typing import Any, Iterator

from blemore.errors import BlemoreError

__all__ = ["import_mediapipe", "quiet_native_stderr"]

_QUIET = {"depth": 0, "saved": -1, "devnull": -1}
_QUIET_LOCK = threading.Lock()


def import_mediapipe(what: str) -> Any:
    """``mediapipe``, or a :class:`BlemoreError` saying that ``what`` needs it and how to install it.

    >>> import_mediapipe("the facemesh encoder").__name__   # doctest: +SKIP
    'mediapipe'
    """
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import mediapipe
    except ImportError:
        raise BlemoreError(
            f"{what} needs MediaPipe: pip install 'blemore[face]' (mediapipe==0.10.21, the last wheel that "
            f"ships the face models; it needs numpy<2 and Python <= 3.12)"
        ) from None
    return mediapipe


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Silence native log lines on file descriptor 2 while inside (``BLEMORE_DEBUG=1`` keeps them).

    Safe across threads: the first thread to enter redirects fd 2 to ``/dev/null``, the
    last to leave restores it.
    """
    if os.environ.get("BLEMORE_DEBUG"):
        yield
        return
    _enter()
    try:
        yield
    finally:
        _leave()


def _enter() -> None:
    with _QUIET_LOCK:
        if _QUIET["depth"] == 0:
            try:
                sys.stderr.flush()
                saved = os.dup(2)
            except (OSError, ValueError):
                saved = -1
            if saved >= 0:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 2)
                _QUIET.update(saved=saved, devnull=devnull)
        _QUIET["depth"] += 1


def _leave() -> None:
    with _QUIET_LOCK:
        _QUIET["depth"] -= 1
        if _QUIET["depth"] == 0 and _QUIET["saved"] >= 0:
            os.dup2(_QUIET["saved"], 2)
            os.close(_QUIET["saved"])
            os.close(_QUIET["devnull"])
            _QUIET.update(saved=-1, devnull=-1)
