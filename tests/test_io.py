"""Atomic writes: user paths in errors, the umask's modes, temporary names, safe .npz reading."""

from __future__ import annotations

import errno
import os
import socket
import stat

import numpy as np
import pytest

from blemore.io import (
    atomic_write,
    is_temporary,
    load_npz,
    remove_temporaries,
    temporary_name,
    user_path,
    write_bytes,
    write_json,
)


@pytest.fixture
def umask():
    """Set the process umask for one test, then restore it."""
    previous = os.umask(0o022)
    os.umask(previous)
    yield lambda value: os.umask(value)
    os.umask(previous)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664), (0o077, 0o600)])
def test_files_follow_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    path = write_json(tmp_path / "a.json", {"x": 1})
    assert stat.S_IMODE(path.stat().st_mode) == mode
    write_bytes(path, b"again")  # replacing keeps following the umask
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_user_path_undoes_every_temporary_name(tmp_path, monkeypatch):
    for host in ("vm", "node-1.cluster.example.org", "a.b"):
        monkeypatch.setattr(socket, "gethostname", lambda host=host: host)
        for name in ("run.json", "x.tar.gz", "a.b.c", ".hidden", "submission.zip.tmp"):
            tmp = temporary_name(tmp_path / name)
            assert is_temporary(tmp) and tmp.parent == tmp_path
            assert user_path(tmp) == tmp_path / name
    assert user_path(tmp_path / "plain.json") == tmp_path / "plain.json"


def test_errors_name_the_users_path_not_the_temporary_one(tmp_path):
    def refuse(fh):
        raise OSError(errno.ENOSPC, "No space left on device", fh.name)

    with pytest.raises(OSError) as info:
        atomic_write(tmp_path / "out.zip", refuse)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "out.zip")
    assert list(tmp_path.iterdir()) == []  # the temporary file is gone


def test_a_short_write_becomes_a_full_disk(tmp_path):
    def short(fh):
        raise OSError("2140 requested and 2016 written")

    with pytest.raises(OSError) as info:
        atomic_write(tmp_path / "x.npy", short)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "x.npy")


def test_remove_temporaries(tmp_path):
    temporary_name(tmp_path / "a.json").write_text("half")
    (tmp_path / "keep.json").write_text("{}")
    assert remove_temporaries(tmp_path) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["keep.json"]


def test_load_npz_reads_plain_arrays_only(tmp_path):
    np.savez(tmp_path / "ok.npz", a=np.arange(3), b=np.array(["x"]))
    assert {k: v.tolist() for k, v in load_npz(tmp_path / "ok.npz").items()} == {"a": [0, 1, 2], "b": ["x"]}
    assert list(load_npz(tmp_path / "ok.npz", names=("b", "zzz"))) == ["b"]
    with pytest.raises(FileNotFoundError):
        load_npz(tmp_path / "missing.npz")


def test_save_npz_loads_back_as_numpy_writes_it_and_the_same_arrays_give_the_same_bytes(tmp_path, monkeypatch):
    import time

    from blemore.io import save_npz

    arrays = {"X": np.arange(12, dtype=np.float32).reshape(3, 4), "names": np.array(["a", "bé"]),
              "meta": np.asarray('{"k": 1}'), "empty": np.zeros((0, 6))}
    save_npz(tmp_path / "one.npz", **arrays)
    monkeypatch.setattr(time, "time", lambda: 2_000_000_000.0)  # another day: no time stamp in the bytes
    save_npz(tmp_path / "two.npz", **arrays)
    assert (tmp_path / "one.npz").read_bytes() == (tmp_path / "two.npz").read_bytes()
    with np.load(tmp_path / "one.npz", allow_pickle=False) as back:
        assert sorted(back.files) == sorted(arrays)
        for k, v in arrays.items():
            assert back[k].dtype == v.dtype and back[k].shape == v.shape and np.array_equal(back[k], v)


def test_save_npz_on_a_full_disk_fails_once_and_leaves_nothing_to_fail_later(tmp_path, monkeypatch):
    import gc
    import sys

    from blemore import io as bio

    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    real_fdopen = os.fdopen

    class FullDisk:
        def __init__(self, fh, room):
            self.fh, self.room = fh, room

        def write(self, data):
            if self.room < len(data):
                raise OSError(errno.ENOSPC, "No space left on device")
            self.room -= len(data)
            return self.fh.write(data)

        def __getattr__(self, name):
            return getattr(self.fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    monkeypatch.setattr(bio.os, "fdopen", lambda fd, mode: FullDisk(real_fdopen(fd, mode), room=300))
    with pytest.raises(OSError) as caught:
        bio.save_npz(tmp_path / "big.npz", X=np.zeros((100, 100)))
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(tmp_path / "big.npz")
    gc.collect()
    assert unraisable == []  # np.savez's zip, left open, failed again here on the closed file
    assert list(tmp_path.iterdir()) == []
