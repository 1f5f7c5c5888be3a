"""The benchmark and the methods comparison on Ray (blemore.protocol.ray).

The Ray tests share one local cluster per module (the ``cluster`` fixture of
:mod:`tests.support.ray_cluster`); they are skipped when Ray is not installed (``pip install 'blemore[ray]'``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.support.real_clips import CLIPS_CSV
from tests.support.ray_cluster import needs_ray, ray_head


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


def test_cli_benchmark_with_ray_without_ray_installed_is_one_line_exit_2(bench_inputs, tmp_path):
    blocked = tmp_path / "blocked" / "ray"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    path = os.pathsep.join([str(blocked.parent), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    cli = [sys.executable, "-c", "from blemore.cli import main; main()"]
    args = ["benchmark", "-f", f"a={bench_inputs / 'a.npz'}", "--clips", str(bench_inputs / "clips.txt"),
            "-o", str(tmp_path / "run"), "--ray-address", "auto", "--no-report"]
    r = subprocess.run([*cli, *args], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2, (r.stdout, r.stderr[-1500:])
    assert len(r.stderr.strip().splitlines()) == 1 and "pip install 'blemore[ray]'" in r.stderr, r.stderr
    assert not (tmp_path / "run").exists()


@needs_ray
@pytest.mark.slow
def test_cli_benchmark_on_a_cluster_started_with_ray_start(bench_inputs, tmp_path):
    """The command as a user runs it: a head node started with `ray start`, the CLI connecting to it."""
    with ray_head() as (address, env, blemore_bin):
        r = subprocess.run([str(blemore_bin), "benchmark", "-f", f"a={bench_inputs / 'a.npz'}", "--clips",
                            str(bench_inputs / "clips.txt"), "-m", "linear", "--epochs", "2", "-q",
                            "--no-report", "-o", str(tmp_path / "run"), "--ray-address", address],
                           capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "run" / "results.csv").exists() and "run folder:" in r.stdout
