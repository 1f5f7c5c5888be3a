"""End-to-end extraction: blemore.extraction.extract and the `blemore extract` command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.support.avclips import make_broken, make_clip, make_truncated
from blemore.cli import app
from blemore.encoders import get_encoder
from blemore.extraction.local import extract
from blemore.features.store import read_index

from tests.support.tiny_models import tiny_audio_model, tiny_clip

CLI = [sys.executable, "-c", "from blemore.cli import main; main()"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    make_clip(root / "A102_ang_int1_ver1.mov", seconds=0.8)
    make_clip(root / "A102_mix_ang_hap_70_30_ver1.mov", seconds=1.2, freq=300)
    make_clip(root / "A200_sad_int2_ver1.mp4", seconds=0.8, audio=False)
    make_broken(root / "test_0001.mov")
    make_truncated(root / "test_0002.mov")
    return root


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


def test_cli_extract_and_manifest(clips, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["extract", str(clips), "--encoders", "opensmile", "--out", str(tmp_path / "f"),
                                 "--quiet", "--limit", "2"])
    assert result.exit_code == 0, result.output
    assert "done 2" in result.output
    assert sorted(p.name for p in (tmp_path / "f" / "opensmile").glob("*.npy")) == [
        "A102_ang_int1_ver1.npy", "A102_mix_ang_hap_70_30_ver1.npy"]
    result = runner.invoke(app, ["manifest", str(clips), "--out", str(tmp_path / "m.csv")])
    assert result.exit_code == 0 and "5 clips" in result.output and "2 could not be read" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["{missing}", "--encoders", "opensmile"], "no such folder"),
        (["{clips}", "--encoders", "opensmile,bogus"], "unknown encoder 'bogus'"),
        (["{clips}", "--encoders", "wavlm-large:6-x"], "bad layer spec '6-x'"),
        (["{clips}", "--encoders", "facemesh:3"], "no model id or layers"),
        (["{clips}", "--encoders", "opensmile", "--device", "cuda"], "--device cuda"),
        (["{clips}", "--encoders", "opensmile", "--pool", "fork"], "--pool 'fork'"),
    ],
)
def test_cli_bad_input_one_line_exit_2_nothing_written(clips, tmp_path, args, message):
    if "cuda" in args and __import__("torch").cuda.is_available():
        pytest.skip("a CUDA device is present")
    out = tmp_path / "out"
    args = [a.format(missing=tmp_path / "missing", clips=clips) for a in args]
    proc = subprocess.run(CLI + ["extract", *args, "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("blemore: error:") and message in lines[0], proc.stderr
    assert not out.exists()


@pytest.mark.slow
def test_killed_run_loses_nothing_and_resumes(tmp_path):
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
    for name in ("opensmile", "facemesh"):
        rows = read_index(out / name)
        assert len(rows) == n and all(r["status"] == "done" for r in rows.values())
        files = sorted(p.stem for p in (out / name).glob("*.npy"))
        assert files == sorted(rows)
        assert not [p for p in (out / name).iterdir() if p.name.endswith(".tmp")]
        for c, mtime in written[name].items():  # finished clips were not redone
            assert os.stat(out / name / f"{c}.npy").st_mtime_ns == mtime
    assert f"skipped {len(written['opensmile']) + len(written['facemesh'])}" in proc.stdout
