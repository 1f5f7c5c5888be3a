"""Extraction and benchmark sweeps on Ray (engineer G, issue 8).

The Ray tests share one local cluster (2 CPUs, small object store) started by a
module fixture; they are skipped when Ray is not installed (``pip install 'blemore[ray]'``).
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

from blemore.extraction.ray import chunk_clips
from blemore.encoders.base import Encoder

from tests.support.avclips import make_clip  # noqa: E402

try:
    import ray  # noqa: F401

    HAVE_RAY = True
except ImportError:  # pragma: no cover
    HAVE_RAY = False

needs_ray = pytest.mark.skipif(not HAVE_RAY, reason="Ray is not installed (pip install 'blemore[ray]')")
from tests.support.real_clips import CLIPS_CSV  # noqa: E402


# --------------------------------------------------------------------------- no Ray needed


def test_importing_the_cli_does_not_import_ray():
    code = ("import sys, blemore, blemore.cli, blemore.extraction.engine, blemore.protocol.benchmark, blemore.extraction.ray, blemore.protocol.ray; "
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
def cluster():
    if not HAVE_RAY:
        pytest.skip("Ray is not installed (pip install 'blemore[ray]')")
    import ray

    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 1024**2, log_to_driver=False,
             configure_logging=False)
    yield ray
    ray.shutdown()


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


# --------------------------------------------------------------------------- benchmark


@pytest.fixture(scope="module")
def bench_inputs(tmp_path_factory):
    """Two clip-level feature sets for 10 actors of the real clip list (labels carry a weak signal)."""
    if not CLIPS_CSV.exists():
        pytest.skip("the real BLEMORE clip list (shared/data/blemore_clips.csv) is not on this machine")
    root = tmp_path_factory.mktemp("bench")
    df = pd.read_csv(CLIPS_CSV)
    df = df[df.partition == "train"]
    actors = sorted(df.actor.unique())[:12]
    df = df[df.actor.isin(actors)].groupby("actor").head(12)
    names = df.filename.tolist()
    train = df[df.actor.isin(actors[:10])].filename.tolist()
    (root / "clips.txt").write_text("\n".join(train) + "\n")
    from blemore.data.metadata import metadata_from_names, write_metadata

    test = metadata_from_names(df[df.actor.isin(actors[10:])].filename, n_folds=2)
    test["fold"] = pd.array([pd.NA] * len(test), dtype="Int64")
    write_metadata(test, root / "test.csv")
    from blemore.labels import SOFT_VECTORS, labels_to_indices, parse_clip_name

    rng = np.random.default_rng(0)
    soft = SOFT_VECTORS[labels_to_indices([parse_clip_name(n).label for n in names])]
    for name, d in (("a", 6), ("b", 9)):
        X = rng.normal(size=(len(names), d)).astype(np.float32)
        X[:, :6] += soft[:, :6] * 2.0
        np.savez(root / f"{name}.npz", X=X, filenames=np.array(names))
    return root


def _config(root: Path, out: Path):
    from blemore.protocol.benchmark import BenchmarkConfig

    return BenchmarkConfig(
        features={"a": root / "a.npz", "b": root / "b.npz"}, clips=root / "clips.txt",
        test_metadata=root / "test.csv",
        models=["linear", "mlp256"], epochs=4, lr=1e-3, out=out, progress=False, threads=1, seed=3,
        command=["test"],
    )


@needs_ray
@pytest.mark.slow
def test_benchmark_on_ray_writes_the_serial_run(cluster, bench_inputs, tmp_path):
    from blemore.protocol.ray import benchmark_on_ray
    from blemore.protocol.benchmark import run_benchmark

    serial = run_benchmark(_config(bench_inputs, tmp_path / "serial"))
    par = benchmark_on_ray(_config(bench_inputs, tmp_path / "ray"))

    def files(run: Path) -> list[str]:
        return sorted(p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file())

    assert files(serial) == files(par)
    for rel in ("results.csv", "curves.csv", "results.md"):
        assert (serial / rel).read_bytes() == (par / rel).read_bytes(), rel
    for rel in files(serial):
        if rel.endswith((".csv", ".json", ".md")) and rel != "config.json":
            assert (serial / rel).read_bytes() == (par / rel).read_bytes(), rel
        elif rel.endswith(".npz"):
            with np.load(serial / rel) as a, np.load(par / rel) as b:
                assert sorted(a.files) == sorted(b.files)
                for k in a.files:
                    np.testing.assert_array_equal(a[k], b[k], err_msg=f"{rel}:{k}")
    results = pd.read_csv(par / "results.csv", dtype={"fold": str})
    assert set(results.feature_set.dropna()) >= {"a", "b"} and "test-pooled" in set(results.fold)
    assert (par / "submission" / "b__mlp256.zip").exists()
    import json

    cfg = json.loads((par / "config.json").read_text())
    assert cfg["sets"] == ["a", "b"] and cfg["models"] == ["linear", "mlp256"] and cfg["ray"]["jobs"] == 4


@needs_ray
def test_benchmark_on_ray_bad_input_fails_before_the_cluster_and_writes_nothing(cluster, bench_inputs,
                                                                               tmp_path):
    import dataclasses

    from blemore.protocol.ray import benchmark_on_ray
    from blemore.errors import BlemoreError

    cfg = dataclasses.replace(_config(bench_inputs, tmp_path / "run"), models=["nosuchhead"])
    with pytest.raises(BlemoreError):
        benchmark_on_ray(cfg)
    assert not (tmp_path / "run").exists()


@needs_ray
def test_benchmark_on_ray_worker_side_user_error_is_one_blemore_error(cluster, bench_inputs, tmp_path):
    import dataclasses

    from blemore.protocol.ray import benchmark_on_ray
    from blemore.errors import BlemoreError

    names = (bench_inputs / "clips.txt").read_text().split()
    with np.load(bench_inputs / "a.npz") as z:  # features of all clips but the first
        np.savez(tmp_path / "short.npz", X=z["X"][1:], filenames=z["filenames"][1:])
    cfg = dataclasses.replace(_config(bench_inputs, tmp_path / "run"),
                              features={"short": tmp_path / "short.npz"}, models=["linear"])
    with pytest.raises(BlemoreError) as info:
        benchmark_on_ray(cfg)
    message = str(info.value)
    assert names[0] in message and "\n" not in message and "Traceback" not in message
    assert type(info.value) is BlemoreError
    assert not (tmp_path / "run").exists()


@needs_ray
def test_extract_on_ray_cuda_without_gpu_is_a_clear_error(cluster, clips, tmp_path):
    from blemore.extraction.ray import extract_on_ray
    from blemore.errors import BlemoreError

    with pytest.raises(BlemoreError, match="has no GPU"):
        extract_on_ray(clips, encoders=["opensmile"], out=tmp_path / "o", device="cuda", progress=False)
    assert not (tmp_path / "o").exists()


@needs_ray
def test_benchmark_on_ray_more_threads_than_any_node_is_a_clear_error(cluster, bench_inputs, tmp_path):
    import dataclasses

    from blemore.protocol.ray import benchmark_on_ray
    from blemore.errors import BlemoreError

    with pytest.raises(BlemoreError, match="no node of the Ray cluster"):
        benchmark_on_ray(dataclasses.replace(_config(bench_inputs, tmp_path / "run"), threads=64))


@needs_ray
@pytest.mark.slow
def test_cli_benchmark_with_ray_writes_a_run_folder(cluster, bench_inputs, tmp_path):
    from typer.testing import CliRunner

    from blemore.cli.app import app

    args = ["benchmark", "-f", f"a={bench_inputs / 'a.npz'}", "--clips", str(bench_inputs / "clips.txt"),
            "-m", "linear", "--epochs", "2", "--threads", "1", "-q", "--no-report"]
    serial = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "s")])
    assert serial.exit_code == 0, serial.output
    r = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "r"), "--ray"])
    assert r.exit_code == 0, r.output
    assert "run folder:" in r.output and "| a | linear |" in r.output
    assert (tmp_path / "r" / "results.csv").read_bytes() == (tmp_path / "s" / "results.csv").read_bytes()


@needs_ray
def test_cli_benchmark_with_ray_bad_feature_path_is_one_line_exit_2(cluster, bench_inputs, tmp_path):
    from typer.testing import CliRunner

    from blemore.cli.app import app

    r = CliRunner().invoke(app, ["benchmark", "-f", f"a={tmp_path / 'nothere.npz'}", "--clips",
                                 str(bench_inputs / "clips.txt"), "-o", str(tmp_path / "r"), "--ray", "-q",
                                 "--no-report"])
    assert r.exit_code == 2, r.output
    assert len(r.output.strip().splitlines()) == 1 and "nothere.npz" in r.output
    assert not (tmp_path / "r").exists()


def _part(fs: str, model: str, *, with_clip_features: bool = True) -> dict:
    head = "feature_set,model,method,fold,epoch,alpha,beta,acc_presence,acc_salience,score,n_clips"
    rows = [f'"{fs}",{model},baseline,{f},3,0.1,0.2,0.5,0.25,0.375,10' for f in ("0", "1", "mean", "std")]
    rows += [f'"{fs}",{model},baseline,pooled,3,0.1,0.2,0.5,0.25,0.375,20']
    trivial = [",,majority-single,0,,,,0.2,0,0.1,10", ",,majority-blend,mean,,,,0.1,0.05,0.075,20"]
    files = {
        "results.csv": ("\n".join([head, *rows, *trivial]) + "\n").encode(),
        "curves.csv": f"feature_set,model,fold,epoch\n\"{fs}\",{model},0,1\n".encode(),
        "results.md": b"ignored",
        "config.json": b'{"train_flops": 2.0, "seconds": 1.5, "sets": ["x"], "models": ["y"]}',
        f"grids/{fs}__{model}.npz": f"{fs}{model}".encode(),
    }
    if with_clip_features:
        files[f"clip_features/{fs}.npz"] = fs.encode()
    return {"feature_set": fs, "model": model, "files": files}


def test_merge_runs_joins_tables_in_job_order_with_trivial_rows_once():
    from blemore.protocol.ray import merge_runs
    from blemore.protocol.benchmark import BenchmarkConfig

    parts = [_part("a,b", "linear"), _part("a,b", "mlp256", with_clip_features=False), _part("c", "linear")]
    cfg = BenchmarkConfig(features={"a": Path("a.npz")}, command=["x"])
    merged = merge_runs(parts, config=cfg, extra={"ray": {"jobs": 3}})
    lines = merged["results.csv"].decode().splitlines()
    assert lines[0].startswith("feature_set,")
    assert [l.split(",")[-9] for l in lines[1:]].count("majority-single") == 1  # once, at the end
    assert lines[-2].startswith(",,majority-single") and lines[-1].startswith(",,majority-blend")
    body = lines[1:-2]
    assert len(body) == 15 and body[0].startswith('"a,b",linear') and body[5].startswith('"a,b",mlp256')
    assert body[10].startswith('"c",linear')
    assert merged["curves.csv"].decode().count("\n") == 4
    kept = sorted(k for k in merged if k.startswith("clip_features/"))
    assert kept == ["clip_features/a,b.npz", "clip_features/c.npz"]
    assert merged["grids/c__linear.npz"] == b"clinear"
    import json

    cfg_out = json.loads(merged["config.json"])
    assert cfg_out["sets"] == ["a,b", "c"] and cfg_out["models"] == ["linear", "mlp256"]
    assert cfg_out["train_flops"] == 6.0 and cfg_out["ray"] == {"jobs": 3} and cfg_out["command"] == ["x"]
    assert "| a,b | linear |" in merged["results.md"].decode()


def test_merge_runs_of_nothing_is_an_error():
    from blemore.protocol.ray import merge_runs
    from blemore.errors import BlemoreError
    from blemore.protocol.benchmark import BenchmarkConfig

    with pytest.raises(BlemoreError, match="nothing to merge"):
        merge_runs([], config=BenchmarkConfig(features={}))


def test_a_cuda_worker_holds_one_gpu():
    from blemore.extraction.ray import _slot

    assert _slot("cuda") == {"num_cpus": 1, "num_gpus": 1} == _slot("cuda:1")
    assert _slot("cpu") == {"num_cpus": 1}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@needs_ray
@pytest.mark.slow
def test_cli_on_a_cluster_started_with_ray_start(clips, bench_inputs, tmp_path):
    """The commands as a user runs them: a head node started with `ray start`, the CLI connecting to it."""
    import shutil
    import time

    ray_bin = Path(sys.executable).with_name("ray")
    blemore_bin = Path(sys.executable).with_name("blemore")
    if not ray_bin.exists() or not blemore_bin.exists():
        pytest.skip("the `ray` and `blemore` scripts are not installed beside this Python")
    port = _free_port()
    temp = Path(f"/tmp/blemore-ray-{os.getpid()}")  # short: Ray's socket paths must stay < 108 bytes
    head = subprocess.Popen(
        [str(ray_bin), "start", "--head", "--block", "--num-cpus", "2", "--port", str(port),
         "--include-dashboard=false", "--object-store-memory", str(100 * 1024**2), "--temp-dir", str(temp)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    try:
        address = f"127.0.0.1:{port}"
        for _ in range(60):  # until the head answers
            time.sleep(1)
            probe = subprocess.run([str(ray_bin), "status", "--address", address], capture_output=True,
                                   env=env)
            if probe.returncode == 0:
                break
        out = tmp_path / "features"
        r = subprocess.run([str(blemore_bin), "extract", str(clips), "-e", "opensmile", "-o", str(out), "-q",
                            "--limit", "4", "--ray-address", address],
                           capture_output=True, text=True, env=env, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        assert "done 4" in r.stdout
        index = _index(out / "opensmile")
        assert len(index) == 4 and (index.status == "done").all()
        r = subprocess.run([str(blemore_bin), "benchmark", "-f", f"a={bench_inputs / 'a.npz'}", "--clips",
                            str(bench_inputs / "clips.txt"), "-m", "linear", "--epochs", "2", "-q",
                            "--no-report", "-o", str(tmp_path / "run"), "--ray-address", address],
                           capture_output=True, text=True, env=env, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        assert (tmp_path / "run" / "results.csv").exists() and "run folder:" in r.stdout
    finally:
        head.terminate()  # `ray start --block` stops the processes it started
        head.wait(timeout=60)
        shutil.rmtree(temp, ignore_errors=True)


def test_cli_ray_without_ray_installed_is_one_line_exit_2(clips, bench_inputs, tmp_path):
    blocked = tmp_path / "blocked" / "ray"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    path = os.pathsep.join([str(blocked.parent), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    cli = [sys.executable, "-c", "from blemore.cli import main; main()"]
    for args in (["extract", str(clips), "-e", "opensmile", "-o", str(tmp_path / "out"), "--ray"],
                 ["benchmark", "-f", f"a={bench_inputs / 'a.npz'}", "--clips",
                  str(bench_inputs / "clips.txt"), "-o", str(tmp_path / "run"), "--ray-address", "auto",
                  "--no-report"]):
        r = subprocess.run([*cli, *args], capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 2, (args[0], r.stdout, r.stderr[-1500:])
        assert len(r.stderr.strip().splitlines()) == 1 and "pip install 'blemore[ray]'" in r.stderr, r.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "run").exists()


@needs_ray
def test_cli_benchmark_compare_with_ray_matches_the_serial_run(cluster, bench_inputs, tmp_path):
    """`benchmark --compare --ray`: the comparison's training units run as Ray tasks, compare.csv unchanged."""
    from typer.testing import CliRunner

    from blemore.cli.app import app

    args = ["benchmark", "-f", f"a={bench_inputs / 'a.npz'}", "-f", f"b={bench_inputs / 'b.npz'}", "--set", "a", "--set", "b",
            "--clips", str(bench_inputs / "clips.txt"), "-m", "linear", "--epochs", "3", "--threads", "1",
            "--compare", "structured,actor-norm,late-fusion", "-q", "--no-report"]
    serial = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "s")])
    assert serial.exit_code == 0, serial.output
    r = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "r"), "--ray"])
    assert r.exit_code == 0, r.output
    assert "| actor-norm |" in r.output and "| late-fusion |" in r.output
    for name in ("compare.csv", "paired.csv", "pairs.csv"):
        assert (tmp_path / "r" / name).read_bytes() == (tmp_path / "s" / name).read_bytes(), name


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
