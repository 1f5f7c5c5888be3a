"""The MediaPipe helpers: the install message, and silencing native logs safely across threads."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from blemore.encoders.mediapipe_support import import_mediapipe, quiet_native_stderr
from blemore.errors import BlemoreError


def test_without_mediapipe_the_message_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # import mediapipe -> ImportError
    with pytest.raises(BlemoreError, match=r"^the facemesh encoder needs MediaPipe: pip install 'blemore\[face\]'"):
        import_mediapipe("the facemesh encoder")


def _ident() -> tuple[int, int]:
    st = os.fstat(2)
    return st.st_dev, st.st_ino


def test_silencing_native_logs_is_safe_across_threads():
    before = _ident()
    devnull = os.stat(os.devnull)
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def a():
        with quiet_native_stderr():
            a_in.set()
            b_in.wait()
        a_out.set()  # A leaves first: fd 2 must stay silenced for B

    def b():
        a_in.wait()
        with quiet_native_stderr():
            b_in.set()
            a_out.wait()
            seen["during"] = _ident()

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen["during"] == (devnull.st_dev, devnull.st_ino)
    assert _ident() == before  # restored once both left


def test_debug_keeps_the_native_logs(monkeypatch):
    monkeypatch.setenv("BLEMORE_DEBUG", "1")
    before = _ident()
    with quiet_native_stderr():
        assert _ident() == before
