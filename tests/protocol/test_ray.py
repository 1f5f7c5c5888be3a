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


def _config(root: Path, out: Path, **kw):
    from blemore.protocol.config import RunConfig

    base = dict(features={"a": root / "a.npz", "b": root / "b.npz"}, clips=root / "clips.txt",
                test_metadata=root / "test.csv", models=["linear", "mlp256"], epochs=4, lr=1e-3, out=out,
                progress=False, threads=1, seed=3, command=["test"], n_boot=50, n_perm=50)
    base.update(kw)
    return RunConfig(**base)


@needs_ray
@pytest.mark.slow
def test_run_on_ray_writes_the_serial_run(cluster, bench_inputs, tmp_path):
    """Every training unit a Ray task: the run folder is the serial run's, file for file."""
    from blemore.protocol.ray import run_on_ray
    from blemore.protocol.run import run_benchmark

    methods = ["structured", "actor-norm", "late-fusion", "ensemble"]
    serial = run_benchmark(_config(bench_inputs, tmp_path / "serial", sets=["a", "b", "a+b"], methods=methods))
    par = run_on_ray(_config(bench_inputs, tmp_path / "ray", sets=["a", "b", "a+b"], methods=methods))

    def files(run: Path) -> list[str]:
        return sorted(p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file())

    assert files(serial) == files(par)
    for rel in files(serial):
        if rel.endswith((".csv", ".md", ".zip")) or rel in ("best.json", "actors.json"):
            assert (serial / rel).read_bytes() == (par / rel).read_bytes(), rel
        elif rel.endswith(".npz"):
            with np.load(serial / rel) as a, np.load(par / rel) as b:
                assert sorted(a.files) == sorted(b.files)
                for k in a.files:
                    np.testing.assert_array_equal(a[k], b[k], err_msg=f"{rel}:{k}")
    results = pd.read_csv(par / "results.csv", dtype={"fold": str})
    assert set(results.feature_set.dropna()) >= {"a", "b"} and "test-pooled" in set(results.fold)
    assert (par / "submission" / "ensemble__a__b__a+b__mlp256.zip").exists()


@needs_ray
def test_run_on_ray_bad_input_fails_before_the_cluster_and_writes_nothing(cluster, bench_inputs,
                                                                               tmp_path):
    import dataclasses

    from blemore.protocol.ray import run_on_ray
    from blemore.errors import BlemoreError

    cfg = dataclasses.replace(_config(bench_inputs, tmp_path / "run"), models=["nosuchhead"])
    with pytest.raises(BlemoreError):
        run_on_ray(cfg)
    assert not (tmp_path / "run").exists()


@needs_ray
def test_run_on_ray_worker_side_user_error_is_one_blemore_error(cluster, bench_inputs, tmp_path):
    import dataclasses

    from blemore.protocol.ray import run_on_ray
    from blemore.errors import BlemoreError

    names = (bench_inputs / "clips.txt").read_text().split()
    with np.load(bench_inputs / "a.npz") as z:  # features of all clips but the first
        np.savez(tmp_path / "short.npz", X=z["X"][1:], filenames=z["filenames"][1:])
    cfg = dataclasses.replace(_config(bench_inputs, tmp_path / "run"),
                              features={"short": tmp_path / "short.npz"}, models=["linear"])
    with pytest.raises(BlemoreError) as info:
        run_on_ray(cfg)
    message = str(info.value)
    assert names[0] in message and "\n" not in message and "Traceback" not in message
    assert type(info.value) is BlemoreError
    assert not (tmp_path / "run").exists()


@needs_ray
def test_run_on_ray_more_threads_than_any_node_is_a_clear_error(cluster, bench_inputs, tmp_path):
    import dataclasses

    from blemore.protocol.ray import run_on_ray
    from blemore.errors import BlemoreError

    with pytest.raises(BlemoreError, match="no node of the Ray cluster"):
        run_on_ray(dataclasses.replace(_config(bench_inputs, tmp_path / "run"), threads=64))


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


@needs_ray
def test_cli_benchmark_compare_with_ray_matches_the_serial_run(cluster, bench_inputs, tmp_path):
    """`benchmark --methods ... --ray`: the methods table of a Ray run is the serial run's."""
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
    for name in ("compare.csv", "paired.csv", "pairs.csv", "results.csv", "best.json"):
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
