"""The paper's protocol end to end (the baseline) on generated features with a planted signal."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.support.planted import planted  # noqa: E402
from blemore.cli import app
from blemore.protocol.config import RunConfig
from blemore.protocol.results import CURVE_COLUMNS, RESULT_COLUMNS
from blemore.protocol.run import run_benchmark
from blemore.submission import read_predictions

EPOCHS = 8
LR = 3e-3


def _config(data: dict, out: Path, **kw) -> RunConfig:
    base = dict(
        features=data["sources"],
        train_metadata=data["train_metadata"],
        test_metadata=data["test_metadata"],
        models=["linear", "mlp256"],
        epochs=EPOCHS,
        lr=LR,
        out=out,
        progress=False,
    )
    base.update(kw)
    return RunConfig(**base)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    return planted(tmp_path_factory.mktemp("planted"), sources=2, signal=1.5, noise=1.2)


@pytest.fixture(scope="module")
def run(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "run"
    return run_benchmark(_config(data, out, sets=["s0", "s1", "s0+s1"]))


def _get(results: pd.DataFrame, fs: str, model: str, fold: str) -> pd.Series:
    sel = results[(results.feature_set == fs) & (results.model == model) & (results.fold == fold)]
    assert len(sel) == 1, (fs, model, fold)
    return sel.iloc[0]


def test_run_folder_layout(run):
    for name in ("config.json", "results.csv", "results.md", "curves.csv"):
        assert (run / name).is_file()
    results = pd.read_csv(run / "results.csv", dtype={"fold": str})
    assert list(results.columns) == RESULT_COLUMNS
    assert list(pd.read_csv(run / "curves.csv").columns) == CURVE_COLUMNS
    folds = set(results.loc[results.method == "baseline", "fold"])
    assert folds == {"0", "1", "2", "3", "4", "mean", "std", "pooled", "test", "test-pooled"}
    assert set(results.method) == {"baseline", "majority-single", "majority-blend"}
    for fs in ("s0", "s1", "s0+s1"):
        for model in ("linear", "mlp256"):
            stem = f"{fs}__{model}"
            val = pd.read_csv(run / "predictions" / f"{stem}__val.csv")
            assert list(val.columns) == ["filename", "actor", "fold", "label", "ang", "disg", "fea", "hap", "sad", "neu", "pred_label"]
            assert len(val) == 15 * 36
            np.testing.assert_allclose(val[["ang", "disg", "fea", "hap", "sad", "neu"]].sum(axis=1), 1.0, rtol=1e-6)
            assert len(pd.read_csv(run / "predictions" / f"{stem}__test.csv")) == 4 * 36
            g = np.load(run / "grids" / f"{stem}.npz")
            assert g["presence"].shape == (5, 20, 20) and g["salience"].shape == (5, 20, 20)
            for zname in (f"baseline__{stem}.zip", f"baseline__{stem}.paper.zip"):
                preds = read_predictions(run / "submission" / zname)
                assert len(preds) == 4 * 36
                with zipfile.ZipFile(run / "submission" / zname) as z:
                    assert "predictions" in json.loads(z.read(z.namelist()[0]))
            model = json.loads((run / "models" / f"baseline__{stem}" / "model.json").read_text())
            assert set(model["rules"]) == {"pooled", "paper"}
        cf = np.load(run / "clip_features" / f"{fs}.npz")
        assert cf["X"].shape[0] == 19 * 36 and len(cf["filenames"]) == 19 * 36
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["config"]["seed"] == 0 and set(cfg["member_seeds"]) == {"0", "1", "2", "3", "4", "all"}
    assert cfg["versions"]["torch"]


def test_selected_epoch_is_first_best_of_curve(run):
    results = pd.read_csv(run / "results.csv", dtype={"fold": str})
    curves = pd.read_csv(run / "curves.csv", dtype={"fold": str})
    for fold in ("0", "3", "pooled"):
        c = curves[(curves.feature_set == "s0") & (curves.model == "mlp256") & (curves.fold == fold)]
        best = c.iloc[int(np.argmax(c.score.to_numpy()))]
        row = _get(results, "s0", "mlp256", fold)
        assert int(row.epoch) == int(best.epoch)
        assert row.alpha == pytest.approx(best.alpha) and row.beta == pytest.approx(best.beta)
        assert row.score == pytest.approx(best.score)


def test_planted_signal_is_learned(run):
    results = pd.read_csv(run / "results.csv", dtype={"fold": str})
    single = _get(results, "-", "majority-single", "mean")
    blend = _get(results, "-", "majority-blend", "mean")
    trivial_p = max(single.acc_presence, blend.acc_presence)
    trivial_s = max(single.acc_salience, blend.acc_salience)
    for fold in ("mean", "pooled", "test-pooled", "test"):
        row = _get(results, "s0+s1", "mlp256", fold)
        assert row.acc_presence > trivial_p + 0.25, fold
        assert row.acc_salience > trivial_s + 0.15, fold


def test_fusion_beats_either_part(run):
    results = pd.read_csv(run / "results.csv", dtype={"fold": str})
    for model in ("linear", "mlp256"):
        fused = _get(results, "s0+s1", model, "pooled").score
        assert fused > _get(results, "s0", model, "pooled").score
        assert fused > _get(results, "s1", model, "pooled").score


def test_same_seed_identical_results(data, tmp_path):
    a = run_benchmark(_config(data, tmp_path / "a", sets=["s0"], models=["mlp256"], epochs=4))
    b = run_benchmark(_config(data, tmp_path / "b", sets=["s0"], models=["mlp256"], epochs=4))
    assert (a / "results.csv").read_bytes() == (b / "results.csv").read_bytes()
    assert (a / "curves.csv").read_bytes() == (b / "curves.csv").read_bytes()
    c = run_benchmark(_config(data, tmp_path / "c", sets=["s0"], models=["mlp256"], epochs=4, seed=1))
    assert (a / "curves.csv").read_bytes() != (c / "curves.csv").read_bytes()


def test_windows_from_frame_folders(tmp_path):
    d = planted(tmp_path, n_actors=10, n_test_actors=2, dim=6, frames=True, sources=1)
    out = run_benchmark(
        RunConfig(
            features=d["sources"], train_metadata=d["train_metadata"], test_metadata=d["test_metadata"],
            models=["linear"], representation="windows", window=8, epochs=3, lr=LR, out=tmp_path / "w",
            progress=False,
        )
    )
    results = pd.read_csv(out / "results.csv", dtype={"fold": str})
    assert "test" in set(results.fold)
    cf = np.load(out / "clip_features" / "s0.npz")
    assert cf["X"].shape == (12 * 36, 6) and cf["windows"].shape[0] > 12 * 36


def test_unlabeled_test_clips_still_predicted(data, tmp_path):
    test = pd.read_csv(data["test_metadata"])
    for col in ("emotion_1", "emotion_2", "emotion_1_salience", "emotion_2_salience", "mix"):
        test[col] = None
    # anonymise: new names, features under those names
    mapping = {n: f"test_{i:04d}" for i, n in enumerate(test.filename)}
    test["filename"] = test["filename"].map(mapping)
    test.to_csv(tmp_path / "test_anon.csv", index=False)
    src = np.load(data["sources"]["s0"])
    names = [mapping.get(str(n), str(n)) for n in src["filenames"]]
    np.savez(tmp_path / "s0.npz", X=src["X"], filenames=np.array(names))
    out = run_benchmark(
        _config(data, tmp_path / "r", features={"s0": tmp_path / "s0.npz"}, test_metadata=tmp_path / "test_anon.csv",
                models=["linear"], epochs=2)
    )
    results = pd.read_csv(out / "results.csv", dtype={"fold": str})
    assert not ({"test", "test-pooled"} & set(results.fold))
    preds = read_predictions(out / "submission" / "baseline__s0__linear.zip")
    assert sorted(preds) == sorted(f"{v}.mov" for v in mapping.values())


# ---------------------------------------------------------------- command line

runner = CliRunner()


def _cli(args):
    return runner.invoke(app, [str(a) for a in args])


def test_cli_benchmark_and_predict(data, tmp_path):
    out = tmp_path / "cli"
    r = _cli(["benchmark", "--train-metadata", data["train_metadata"], "--test-metadata", data["test_metadata"],
              "-f", f"a={data['sources']['s0']}", "--models", "linear", "--epochs", 2, "--lr", LR, "-o", out, "-q"])
    assert r.exit_code == 0, r.output
    assert "| a | linear |" in r.output and "majority-blend" in r.output
    r = _cli(["predict", out, "-f", f"a={data['sources']['s0']}", "--metadata", data["test_metadata"],
              "-o", tmp_path / "pred"])
    assert r.exit_code == 0, r.output
    preds = read_predictions(tmp_path / "pred" / "submission.zip")
    assert len(preds) == 4 * 36 and preds == read_predictions(out / "submission" / "baseline__a__linear.zip")
    run_test = pd.read_csv(out / "predictions" / "a__linear__test.csv")
    again = pd.read_csv(tmp_path / "pred" / "probabilities.csv")
    np.testing.assert_allclose(again[["ang", "hap", "neu"]], run_test[["ang", "hap", "neu"]], rtol=1e-5, atol=1e-6)
    assert again.pred_label.tolist() == run_test.pred_label.tolist()


def test_cli_clips_list_generates_folds(data, tmp_path):
    names = pd.read_csv(data["train_metadata"]).filename
    (tmp_path / "names.txt").write_text("\n".join(names) + "\n")
    r = _cli(["benchmark", "--clips", tmp_path / "names.txt", "-f", f"a={data['sources']['s0']}",
              "--models", "linear", "--epochs", 1, "-o", tmp_path / "r", "-q"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "r" / "results.csv").exists()


def _assert_user_error(r, pattern: str, out: Path):
    assert r.exit_code == 2, r.output
    lines = [l for l in r.output.strip().splitlines() if l]
    assert len(lines) == 1 and lines[0].startswith("blemore: error:"), r.output
    assert pattern in lines[0], lines[0]
    assert not out.exists()
    assert not any(p.name.startswith(f".{out.name}.") for p in out.parent.iterdir())


def test_cli_bad_inputs(data, tmp_path):
    out = tmp_path / "bad"
    base = ["benchmark", "--train-metadata", data["train_metadata"], "--epochs", 1, "-o", out, "-q"]
    src = data["sources"]["s0"]
    # unknown model
    _assert_user_error(_cli(base + ["-f", f"a={src}", "--models", "linear,mlp9"]), "unknown model 'mlp9'", out)
    # clips without features
    z = np.load(src)
    np.savez(tmp_path / "part.npz", X=z["X"][:100], filenames=z["filenames"][:100])
    _assert_user_error(_cli(base + ["-f", f"a={tmp_path / 'part.npz'}"]), "no features for", out)
    # NaN in features
    X = z["X"].copy()
    X[3, 1] = np.nan
    np.savez(tmp_path / "nan.npz", X=X, filenames=z["filenames"])
    _assert_user_error(_cli(base + ["-f", f"a={tmp_path / 'nan.npz'}"]), "NaN or Inf", out)
    # a fold with no clips
    meta = pd.read_csv(data["train_metadata"])
    meta.loc[meta.fold == 1, "fold"] = 0
    meta.to_csv(tmp_path / "nofold.csv", index=False)
    args = ["benchmark", "--train-metadata", tmp_path / "nofold.csv", "-f", f"a={src}", "-o", out, "-q"]
    _assert_user_error(_cli(args), "fold(s) 1 have no clips", out)
    # labels contradicting the clip names
    meta = pd.read_csv(data["train_metadata"])
    i = int(np.flatnonzero(meta.mix == 0)[0])
    meta.loc[i, "emotion_1"] = "sad" if meta.loc[i, "emotion_1"] != "sad" else "hap"
    meta.to_csv(tmp_path / "contra.csv", index=False)
    args = ["benchmark", "--train-metadata", tmp_path / "contra.csv", "-f", f"a={src}", "-o", out, "-q"]
    _assert_user_error(_cli(args), "but the clip name says", out)
    # differing dims inside a frame-level source
    d = tmp_path / "frames"
    d.mkdir()
    for k, n in enumerate(meta.filename):
        np.save(d / f"{n}.npy", np.zeros((3, 4 if k else 5), np.float32))
    _assert_user_error(_cli(base + ["-f", f"a={d}"]), "has 4 dims but", out)
    # both or neither of --train-metadata / --clips
    _assert_user_error(_cli(["benchmark", "-f", f"a={src}", "-o", out, "-q"]), "either --train-metadata", out)


def test_cli_predict_bad_inputs(run, data, tmp_path):
    r = _cli(["predict", tmp_path / "nope", "-f", f"s0={data['sources']['s0']}"])
    assert r.exit_code == 2 and "no such run folder" in r.output
    r = _cli(["predict", run, "-f", f"s0={data['sources']['s0']}", "--method", "baseline", "--set", "s0+s1"])
    assert r.exit_code == 2 and "needs -f/--features for s1" in r.output
    r = _cli(["predict", run, "-f", f"s0={data['sources']['s0']}", "--metadata", data["train_metadata"],
              "--method", "baseline", "--set", "s0", "-o", tmp_path / "p"])
    assert r.exit_code == 2 and "are training clips of the run" in r.output and not (tmp_path / "p").exists()


@pytest.mark.parametrize("rule", ["best-fold-epochs", "retrain-100", "best-fold-checkpoint"])
def test_paper_test_rules(data, tmp_path, rule):
    epochs = 101 if rule == "retrain-100" else 5
    out = run_benchmark(_config(data, tmp_path / "bf", sets=["s0"], models=["linear"], epochs=epochs,
                                paper_test=rule))
    results = pd.read_csv(out / "results.csv", dtype={"fold": str})
    sel = results[(results.method == "baseline")].set_index("fold")
    folds = sel.loc[["0", "1", "2", "3", "4"]]
    best = folds.iloc[int(np.argmax(folds.score.to_numpy()))]
    expected = {"best-fold-epochs": int(best.epoch), "retrain-100": 100, "best-fold-checkpoint": int(best.epoch)}
    assert int(sel.loc["test", "epoch"]) == expected[rule]
    assert sel.loc["test", "alpha"] == best.alpha and sel.loc["test", "beta"] == best.beta
    model = json.loads((out / "models" / "baseline__s0__linear" / "model.json").read_text())
    assert model["rules"]["paper"]["paper_test"] == rule and model["rules"]["paper"]["best_fold"] == int(best.name)
    # predict reproduces the run's own paper-rule test predictions from the saved weights
    r = _cli(["predict", out, "-f", f"s0={data['sources']['s0']}", "--metadata", data["test_metadata"],
              "-o", tmp_path / "p", "--method", "baseline", "--rule", "paper"])
    assert r.exit_code == 0, r.output
    assert read_predictions(tmp_path / "p" / "submission.zip") == read_predictions(
        out / "submission" / "baseline__s0__linear.paper.zip")


def test_cli_predict_defaults_to_the_runs_test_clips_and_its_best(run, data, tmp_path):
    r = _cli(["predict", run, "-f", f"s0={data['sources']['s0']}", "-f", f"s1={data['sources']['s1']}",
              "-o", tmp_path / "all"])
    assert r.exit_code == 0, r.output
    best = json.loads((run / "best.json").read_text())
    chosen = best["chosen"]
    assert f"{chosen['method']} / {chosen['feature_set']} / {chosen['model']}" in r.output
    assert len(read_predictions(tmp_path / "all" / "predictions.json")) == 4 * 36
    assert "checked against the test metadata: 144 clips" in r.output


def test_a_killed_benchmark_leaves_nothing_half_written_and_the_rerun_is_the_same(data, tmp_path):
    """SIGKILL in the middle of a run: no run folder, no staging left by the next run; the rerun equals a clean run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    args = ["benchmark", "--train-metadata", str(data["train_metadata"]), "--test-metadata", str(data["test_metadata"]),
            "-f", f"a={data['sources']['s0']}", "--models", "mlp256", "--epochs", "300", "--lr", str(LR), "-q",
            "--no-report", "--methods", "baseline,structured"]
    cmd = [sys.executable, "-m", "blemore", *args]
    proc = subprocess.Popen([*cmd, "-o", str(tmp_path / "run")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(4.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "run").exists()  # killed before publishing: no half run
    for out in ("run", "clean"):
        done = subprocess.run([*cmd, "-o", str(tmp_path / out)], capture_output=True, text=True, timeout=600,
                              env={**os.environ})
        assert done.returncode == 0, done.stderr[-2000:]
    for name in ("results.csv", "curves.csv", "compare.csv", "best.json"):
        assert (tmp_path / "run" / name).read_bytes() == (tmp_path / "clean" / name).read_bytes(), name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean", "run"]  # no staging folder left


def test_subsampled_every_stored_row_is_a_sample(tmp_path):
    """The official subsampled protocol: per-window encoder outputs as samples, batch 512 unless given."""
    d = planted(tmp_path, n_actors=6, n_test_actors=1, dim=5, frames=True, sources=1)
    out = run_benchmark(RunConfig(features=d["sources"], train_metadata=d["train_metadata"],
                                  test_metadata=d["test_metadata"], models=["linear"], representation="subsampled",
                                  epochs=2, lr=LR, out=tmp_path / "sub", progress=False))
    cfg = json.loads((out / "config.json").read_text())["config"]
    assert cfg["effective"] == {"epochs": 2, "batch_size": 512, "window": 1}
    cf = np.load(out / "clip_features" / "s0.npz")
    frames = sum(np.load(d["sources"]["s0"] / f"{n}.npy").shape[0] for n in cf["filenames"])
    assert cf["windows"].shape[0] == frames - len(cf["filenames"])  # every frame a row (one NaN frame per clip dropped)
    assert RunConfig(features={}, representation="subsampled").effective_epochs == 300
