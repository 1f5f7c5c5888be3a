"""Extraction on Ray (blemore.extraction.ray) and the Ray session helpers.

The Ray tests share one local cluster per module (the ``cluster`` fixture of
:mod:`tests.support.ray_cluster`); they are skipped when Ray is not installed (``pip install 'blemore[ray]'``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blemore.encoders.base import Encoder
from blemore.extraction.ray import chunk_clips

from tests.support.avclips import make_clip
from tests.support.ray_cluster import HAVE_RAY, needs_ray, ray_head


# --------------------------------------------------------------------------- no Ray needed


def test_importing_the_cli_does_not_import_ray():
    code = ("import sys, blemore, blemore.cli, blemore.extraction.engine, blemore.protocol.run, blemore.extraction.ray, blemore.protocol.ray; "
            "print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@given(st.lists(st.integers(), max_size=40), st.integers(min_value=1, max_value=9))
@settings(max_examples=50, deadline=None)
def test_chunks_cover_the_jobs_once_in_order(jobs, size):
    chunks = chunk_clips(jobs, size)
    assert [j for c in chunks for j in c] == jobs
    assert all(1 <= len(c) <= size for c in chunks)


def test_without_ray_installed_the_error_says_how_to_install(monkeypatch):
    import builtins

    import blemore.extraction.ray as dist
    from blemore.errors import BlemoreError

    real = builtins.__import__

    def fake(name, *a, **k):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(BlemoreError, match=r"pip install 'blemore\[ray\]'"):
        dist.require_ray()


# --------------------------------------------------------------------------- test encoders

class Energy(Encoder):
    """A cheap deterministic audio encoder: per 10 ms, mean, std and peak of the waveform."""

    name = "energy"
    modality = "audio"
    dim = 3
    batch_size = 2

    def __init__(self, crash_dir: str | None = None, crash_on: int | None = None,
                 poison_below: int | None = None):
        self.crash_dir = crash_dir
        self.crash_on = crash_on  # length of the waveform whose batch is killed, once
        self.poison_below = poison_below

    def output_fps(self, input_rate: float) -> float:
        return 100.0

    def settings(self):
        return {"encoder": self.name, "class": "Energy", "modality": "audio", "dim": 3}

    def _maybe_crash(self, inputs) -> None:
        if self.poison_below is not None and any(len(x) < self.poison_below for x in inputs):
            os._exit(17)  # this clip always kills its worker
        if self.crash_dir is None:
            return
        calls = Path(self.crash_dir) / "calls"
        with open(calls, "a") as fh:  # one line per encode call, over all workers
            fh.write(f"{os.getpid()}\n")
        marker = Path(self.crash_dir) / "crashed"
        if any(len(x) == self.crash_on for x in inputs) and not marker.exists():
            marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)  # the worker dies midway, as on a lost node

    def encode(self, inputs):
        self._maybe_crash(inputs)
        out = []
        for x in inputs:
            n = len(x) // 160
            frames = np.asarray(x[: n * 160], dtype=np.float64).reshape(n, 160)
            out.append(np.stack([frames.mean(1), frames.std(1), np.abs(frames).max(1)], 1).astype(np.float32))
        return out


if HAVE_RAY:  # workers cannot import this test module: send its classes by value
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    for i in range(8):
        make_clip(root / f"A1{i:02d}_hap_int1_ver1.mp4", seconds=0.6 + 0.05 * i, size=(32, 32),
                  freq=200 + 50 * i)
    return root


def _index(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "index.csv", dtype=str, keep_default_na=False)


def _assert_same_store(a: Path, b: Path) -> None:
    ia, ib = _index(a), _index(b)
    assert ia["clip"].is_unique and ib["clip"].is_unique
    pd.testing.assert_frame_equal(ia, ib)
    assert sorted(p.name for p in a.iterdir() if p.name != "settings.json") == sorted(
        p.name for p in b.iterdir() if p.name != "settings.json"
    )
    for clip in ia["clip"]:
        np.testing.assert_array_equal(np.load(a / f"{clip}.npy"), np.load(b / f"{clip}.npy"))


# --------------------------------------------------------------------------- extraction


@needs_ray
@pytest.mark.slow
def test_extract_on_ray_survives_a_worker_killed_midway(cluster, clips, tmp_path):
    from blemore.extraction.ray import extract_on_ray
    from blemore.extraction.local import extract

    serial = extract(clips, encoders=[Energy()], out=tmp_path / "serial", progress=False, workers=0)
    assert serial.done == 8

    from blemore.media.decoder import read_audio

    crash = tmp_path / "crash"
    crash.mkdir()
    # chunks of 4 clips, encoded 2 at a time: the worker is killed on the second pair of the first
    # chunk, after the first pair is stored; the rerun keeps that pair and encodes only the second.
    third = len(read_audio(sorted(clips.iterdir())[2]))
    s = extract_on_ray(clips, encoders=[Energy(crash_dir=str(crash), crash_on=third)], out=tmp_path / "ray",
                       progress=False, chunk_size=4, max_retries=2)
    assert (crash / "crashed").exists(), "the worker was not killed: the test tests nothing"
    calls = (crash / "calls").read_text().splitlines()
    assert len(calls) == 5, calls  # 4 pairs + the killed one: nothing stored was computed again
    assert len(set(calls)) >= 2  # the rerun ran in another worker process
    assert (s.done, s.failed, s.skipped) == (8, 0, 0)
    _assert_same_store(tmp_path / "serial" / "energy", tmp_path / "ray" / "energy")
    assert not list((tmp_path / "ray" / "energy").glob(".*")), "temporary files left behind"

    again = extract_on_ray(clips, encoders=[Energy()], out=tmp_path / "ray", progress=False)
    assert (again.done, again.skipped, again.failed) == (0, 8, 0)


@needs_ray
@pytest.mark.slow
def test_files_a_killed_run_did_not_index_are_taken_back_with_the_serial_rows(cluster, clips, tmp_path):
    import shutil

    from blemore.extraction.local import extract
    from blemore.extraction.ray import extract_on_ray

    extract(clips, encoders=[Energy()], out=tmp_path / "serial", progress=False, workers=0)
    # as if the driver was killed after three workers stored their clips, before it wrote the index
    folder = tmp_path / "ray" / "energy"
    folder.mkdir(parents=True)
    kept = sorted((tmp_path / "serial" / "energy").glob("*.npy"))[:3]
    for path in kept:
        shutil.copy2(path, folder / path.name)
    before = {p.name: os.stat(folder / p.name).st_mtime_ns for p in kept}
    s = extract_on_ray(clips, encoders=[Energy()], out=tmp_path / "ray", progress=False)
    assert (s.done, s.failed) == (8, 0)
    _assert_same_store(tmp_path / "serial" / "energy", folder)
    assert {name: os.stat(folder / name).st_mtime_ns for name in before} == before  # taken back, not redone


@needs_ray
@pytest.mark.slow
def test_a_clip_that_always_kills_its_worker_fails_alone(cluster, clips, tmp_path):
    from blemore.extraction.ray import extract_on_ray

    from blemore.media.decoder import read_audio

    # the two shortest clips kill every worker that encodes them
    lengths = sorted(len(read_audio(p)) for p in clips.iterdir())
    below = (lengths[1] + lengths[2]) // 2
    s = extract_on_ray(clips, encoders=[Energy(poison_below=below)], out=tmp_path / "ray", progress=False,
                       chunk_size=4, max_retries=0)
    idx = _index(tmp_path / "ray" / "energy")
    assert len(idx) == 8 and idx["clip"].is_unique
    bad = sorted(idx.loc[idx.status == "failed", "clip"])
    assert bad == ["A100_hap_int1_ver1", "A101_hap_int1_ver1"]
    errors = idx.loc[idx.status == "failed", "error"]
    assert all("Ray task failed 1 time(s) on this clip" in e for e in errors)
    assert (s.done, s.failed) == (6, 2)
    for clip in idx.loc[idx.status == "done", "clip"]:
        assert np.load(tmp_path / "ray" / "energy" / f"{clip}.npy").shape[1] == 3


@needs_ray
@pytest.mark.slow
def test_cli_extract_with_ray_matches_the_serial_run(cluster, clips, tmp_path):
    from typer.testing import CliRunner

    from blemore.cli.app import app

    runner = CliRunner()
    args = ["extract", str(clips), "-e", "opensmile", "-q", "--limit", "3"]
    r1 = runner.invoke(app, [*args, "-o", str(tmp_path / "s")])
    assert r1.exit_code == 0, r1.output
    r2 = runner.invoke(app, [*args, "-o", str(tmp_path / "r"), "--ray"])
    assert r2.exit_code == 0, r2.output
    assert "done 3" in r2.output
    _assert_same_store(tmp_path / "s" / "opensmile", tmp_path / "r" / "opensmile")
    r3 = runner.invoke(app, [*args, "-o", str(tmp_path / "r"), "--ray-address", "local"])  # resumes
    assert r3.exit_code == 0, r3.output
    assert "done 0, skipped 3" in r3.output


@needs_ray
def test_cli_extract_with_ray_bad_encoder_is_one_line_exit_2(cluster, clips, tmp_path):
    from typer.testing import CliRunner

    from blemore.cli.app import app

    r = CliRunner().invoke(app, ["extract", str(clips), "-e", "nosuch", "-o", str(tmp_path / "o"), "--ray"])
    assert r.exit_code == 2
    assert "unknown encoder 'nosuch'" in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


@needs_ray
def test_extract_on_ray_cuda_without_gpu_is_a_clear_error(cluster, clips, tmp_path):
    from blemore.extraction.ray import extract_on_ray
    from blemore.errors import BlemoreError

    with pytest.raises(BlemoreError, match="has no GPU"):
        extract_on_ray(clips, encoders=["opensmile"], out=tmp_path / "o", device="cuda", progress=False)
    assert not (tmp_path / "o").exists()


def test_a_cuda_worker_holds_one_gpu():
    from blemore.extraction.ray import _slot

    assert _slot("cuda") == {"num_cpus": 1, "num_gpus": 1} == _slot("cuda:1")
    assert _slot("cpu") == {"num_cpus": 1}


@needs_ray
@pytest.mark.slow
def test_cli_extract_on_a_cluster_started_with_ray_start(clips, tmp_path):
    """The command as a user runs it: a head node started with `ray start`, the CLI connecting to it."""
    out = tmp_path / "features"
    with ray_head() as (address, env, blemore_bin):
        r = subprocess.run([str(blemore_bin), "extract", str(clips), "-e", "opensmile", "-o", str(out), "-q",
                            "--limit", "4", "--ray-address", address],
                           capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "done 4" in r.stdout
    index = _index(out / "opensmile")
    assert len(index) == 4 and (index.status == "done").all()


def test_cli_extract_with_ray_without_ray_installed_is_one_line_exit_2(clips, tmp_path):
    blocked = tmp_path / "blocked" / "ray"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    path = os.pathsep.join([str(blocked.parent), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    cli = [sys.executable, "-c", "from blemore.cli import main; main()"]
    args = ["extract", str(clips), "-e", "opensmile", "-o", str(tmp_path / "out"), "--ray"]
    r = subprocess.run([*cli, *args], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2, (r.stdout, r.stderr[-1500:])
    assert len(r.stderr.strip().splitlines()) == 1 and "pip install 'blemore[ray]'" in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()


def _task_that_may_fail(i: int) -> int:
    from blemore.errors import BlemoreError

    if i == 2:
        raise RuntimeError("worker broke")
    if i == 3:
        raise BlemoreError("clip 'x': bad input")
    return i * 10


@needs_ray
def test_as_completed_turns_task_failures_into_one_user_error(cluster):
    from blemore.extraction.ray import as_completed
    from blemore.errors import BlemoreError

    task = cluster.remote(max_retries=0, retry_exceptions=False)(_task_that_may_fail)
    got = dict(as_completed(cluster, [task.remote(i) for i in (0, 1)], lambda i: f"job {i}"))
    assert got == {0: 0, 1: 10}
    with pytest.raises(BlemoreError, match=r"^job 0 failed on the Ray cluster: .*worker broke"):
        dict(as_completed(cluster, [task.remote(2)], lambda i: f"job {i}"))
    with pytest.raises(BlemoreError, match=r"^clip 'x': bad input$"):
        dict(as_completed(cluster, [task.remote(3)], lambda i: f"job {i}"))
