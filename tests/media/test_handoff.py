"""Shared-memory hand-off of decoded clips from worker processes (blemore.media.handoff)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from blemore.media import handoff
from blemore.media.decoder import DecodedClip, VideoFrames, VideoSpec


@pytest.fixture
def shm(tmp_path, monkeypatch):
    folder = tmp_path / "shm"
    folder.mkdir()
    monkeypatch.setenv("BLEMORE_SHM_DIR", str(folder))
    return folder


@pytest.fixture(scope="module")
def module_shm(tmp_path_factory):
    return tmp_path_factory.mktemp("shm")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(hnp.arrays(dtype=st.sampled_from([np.uint8, np.float32, np.float64, np.int64]),
                  shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=40)),
       st.booleans())
def test_share_then_receive_gives_the_same_array(module_shm, array, transpose):
    with mock.patch.dict(os.environ, {"BLEMORE_SHM_DIR": str(module_shm)}):
        _roundtrip(array, transpose)


def _roundtrip(array, transpose):
    folder = handoff.shm_dir()
    assert folder is not None
    if transpose:  # not contiguous
        array = array.T
    old = set(folder.glob("*.npa"))
    got = handoff.receive(handoff.share(array, prefix="blemore-test"))
    assert got.dtype == array.dtype and got.shape == array.shape
    np.testing.assert_array_equal(got, array)
    assert set(folder.glob("*.npa")) == old  # the file is gone once received


def test_large_arrays_travel_by_file_small_ones_as_they_are(shm):
    big = np.arange(handoff.MIN_BYTES, dtype=np.uint8)
    small = np.arange(10, dtype=np.float32)
    assert handoff.share(small, prefix="p") is small
    shared = handoff.share(big, prefix="p")
    assert isinstance(shared, handoff.SharedArray)
    assert len(list(shm.glob("p-*.npa"))) == 1
    got = handoff.receive(shared)
    assert list(shm.glob("*.npa")) == []
    got[0] = 99  # writable, private: the sender's array is untouched
    assert big[0] == 0 and got[0] == 99


def test_no_room_falls_back_to_the_array_and_leaves_no_file(shm, monkeypatch):
    def full_disk(path, mode):
        class Full:
            def __enter__(self):
                open_real(path, mode).close()  # the file was created, then the write fails
                return self

            def __exit__(self, *exc):
                return False

            def write(self, data):
                raise OSError(errno.ENOSPC, "No space left on device")
        return Full()

    open_real = open
    monkeypatch.setattr(handoff, "open", full_disk, raising=False)
    big = np.ones(handoff.MIN_BYTES, np.uint8)
    assert handoff.share(big, prefix="p") is big
    assert list(shm.glob("*")) == []


def test_without_a_shared_folder_arrays_pass_through(tmp_path, monkeypatch):
    monkeypatch.setenv("BLEMORE_SHM_DIR", str(tmp_path / "missing"))
    big = np.ones(handoff.MIN_BYTES, np.uint8)
    assert handoff.shm_dir() is None
    assert handoff.share(big, prefix="p") is big
    assert handoff.sweep("p") == 0 and handoff.sweep_stale() == 0


def test_pack_and_unpack_a_decoded_clip(shm):
    spec = VideoSpec(fps=30.0, short_side=32)
    frames = np.random.default_rng(0).integers(0, 255, (40, 32, 56, 3), dtype=np.uint8)
    clip = DecodedClip(path="a.mov", audio=np.linspace(-1, 1, 40_000, dtype=np.float32),
                       video={spec: VideoFrames(frames=frames, times=np.arange(40) / 30, fps=30.0)})
    packed = handoff.pack_clip(clip, prefix="p")
    assert isinstance(packed.audio, handoff.SharedArray)
    assert isinstance(packed.video[spec].frames, handoff.SharedArray)
    back = handoff.unpack_clip(packed)
    np.testing.assert_array_equal(back.audio, clip.audio)
    np.testing.assert_array_equal(back.video[spec].frames, frames)
    np.testing.assert_array_equal(back.video[spec].times, clip.video[spec].times)
    assert list(shm.glob("*.npa")) == []
    no_audio = handoff.pack_clip(DecodedClip(path="b.mov", audio_error="no audio stream"), prefix="p")
    assert handoff.unpack_clip(no_audio).audio is None


def test_sweep_removes_a_runs_leftovers_and_those_of_dead_runs_only(shm):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    mine = handoff.run_prefix()
    handoff.share(np.ones(handoff.MIN_BYTES, np.uint8), prefix=mine)
    (shm / f"blemore-{dead.pid}-abcd-1-0.npa").write_bytes(b"x")
    (shm / f"blemore-{os.getpid()}-other-1-0.npa").write_bytes(b"x")  # a live run's file
    (shm / "unrelated.npa").write_bytes(b"x")
    assert handoff.sweep_stale() == 1
    assert handoff.sweep(mine) == 1
    assert sorted(p.name for p in shm.iterdir()) == sorted([f"blemore-{os.getpid()}-other-1-0.npa", "unrelated.npa"])


def test_module_examples():
    import doctest

    assert doctest.testmod(handoff).failed == 0
