"""Every method through the one pipeline: trained, selected, tabulated, deployed, predicted and submitted."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from blemore.cli import app
from blemore.errors import BlemoreError
from blemore.protocol.config import RunConfig
from blemore.protocol.methods import METHODS, Method, parse_methods, register_method
from blemore.protocol.methods_table import COMPARE_COLUMNS, PAIRED_COLUMNS, paired_from_run
from blemore.protocol.predict import predict_run
from blemore.protocol.run import run_benchmark
from blemore.protocol.selection import STRUCTURED
from blemore.submission import read_predictions
from tests.support.planted import planted

ALL = {"baseline", "structured", "head36", "salience-reg", "actor-norm", "late-fusion", "ensemble",
       "attention-fusion", "actor-inclusive"}


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    return planted(tmp_path_factory.mktemp("methods"), n_actors=10, n_test_actors=3, dim=6, frames=True, sources=2,
                   seed=1)


def _config(d: dict, out: Path, **kw) -> RunConfig:
    base = dict(features=d["sources"], train_metadata=d["train_metadata"], test_metadata=d["test_metadata"],
                models=["linear"], epochs=5, lr=1e-2, out=out, progress=False, n_boot=50, n_perm=50,
                attention_epochs=2, max_frames=8)
    base.update(kw)
    return RunConfig(**base)


def test_the_registry_and_the_method_list():
    assert list(METHODS)[:2] == ["baseline", "structured"] and set(METHODS) == ALL
    assert parse_methods("actor_norm, structured") == ["baseline", "structured", "actor-norm"]
    assert parse_methods("all") == list(METHODS)
    with pytest.raises(BlemoreError, match="unknown method 'magic'"):
        parse_methods("baseline,magic")
    with pytest.raises(BlemoreError, match="already registered"):
        register_method(Method("structured", "again", STRUCTURED))


@pytest.fixture(scope="module")
def all_run(frames, tmp_path_factory) -> Path:
    return run_benchmark(_config(frames, tmp_path_factory.mktemp("all") / "run", methods=["all"],
                                 sets=["s0", "s0+s1"]))


def test_every_method_has_rows_under_every_rule(all_run):
    df = pd.read_csv(all_run / "compare.csv")
    assert list(df.columns) == COMPARE_COLUMNS and set(df.method) == ALL
    scores = df[["acc_presence", "acc_salience", "score"]].to_numpy()
    assert np.isfinite(scores).all() and (scores >= 0).all() and (scores <= 1).all()
    assert (df.ci_low <= df.score + 1e-9).all() and (df.score <= df.ci_high + 1e-9).all()
    assert set(df.split) == {"val", "test"} and set(df.selection) == {"paper", "nested", "pooled"}
    test = df[df.split == "test"]
    assert "actor-inclusive" not in set(test.method)  # a diagnostic: never deployed
    assert set(test[test.selection == "paper"].method) == {"baseline"} and test.gap.notna().all()
    paired = pd.read_csv(all_run / "paired.csv")
    assert list(paired.columns) == PAIRED_COLUMNS and paired.p_value.between(0, 1).all()
    assert "baseline" not in set(paired.method) and "ensemble" in set(paired.method)
    assert {"ang_hap", "neu"} <= set(pd.read_csv(all_run / "pairs.csv").pair)
    preds = pd.read_csv(all_run / "compare_predictions.csv", keep_default_na=False)
    assert len(preds) == 13 * 36 and set(preds.split) == {"val", "test"}


def test_every_deployable_method_is_saved_and_submitted(all_run):
    stems = sorted(p.name for p in (all_run / "models").iterdir())
    methods = {s.split("__")[0] for s in stems}
    assert methods == ALL - {"actor-inclusive"}
    for stem in stems:
        preds = read_predictions(all_run / "submission" / f"{stem}.zip")
        assert len(preds) == 3 * 36 and all(k.endswith(".mov") for k in preds)
        table = pd.read_csv(all_run / "test_predictions" / f"{stem}.csv")
        assert len(table) == 3 * 36
        info = json.loads((all_run / "models" / stem / "model.json").read_text())
        assert info["rules"]["pooled"]["epoch"] >= 1 and info["validation"]["nested"] >= 0
    best = json.loads((all_run / "best.json").read_text())
    assert best["selection"] == "nested" and best["stem"] in stems
    assert best["chosen"]["score"] == max(c["score"] for c in best["candidates"])
    assert best["submission"] == f"submission/{best['stem']}.zip"


@pytest.mark.parametrize("method", ["structured", "head36", "salience-reg", "actor-norm", "late-fusion", "ensemble",
                                    "attention-fusion"])
def test_predict_reproduces_the_runs_own_test_predictions(all_run, frames, tmp_path, method):
    res = predict_run(all_run, frames["sources"], method=method, metadata=frames["test_metadata"], out=tmp_path / "p")
    ours = read_predictions(res.submission)
    run_zip = read_predictions(all_run / "submission" / f"{res.stem}.zip")
    assert ours == run_zip
    assert res.checked.startswith(f"{3 * 36} clips")


def test_any_two_configurations_can_be_compared_afterwards(all_run):
    df = pd.read_csv(all_run / "paired.csv")
    same = paired_from_run(all_run, "head36|s0|linear|nested", "head36|s0|linear|nested", n_boot=50, n_perm=50)
    assert same.diff == 0.0 and same.p_value == 1.0 and same.n_groups == 10
    row = df[(df.method == "actor-norm") & (df.feature_set == "s0") & (df.split == "test")
             & (df.selection == "pooled")].iloc[0]
    again = paired_from_run(all_run, "actor-norm|s0|linear|pooled", "baseline|s0|linear|pooled", split="test",
                            n_boot=50, n_perm=50)
    assert again.diff == pytest.approx(row.diff_score) and again.p_value == pytest.approx(row.p_value)
    res = CliRunner().invoke(app, ["paired", str(all_run), "nope|s0|linear|nested", "baseline|s0|linear|nested"])
    assert res.exit_code == 2 and "no configuration 'nope|s0|linear|nested'" in res.output


def test_windows_every_method_scores_clips_not_windows(frames, tmp_path):
    out = run_benchmark(_config(frames, tmp_path / "w", methods=["all"], sets=["s0+s1"], representation="windows",
                                window=8, epochs=3, attention_epochs=1, nested=False))
    df = pd.read_csv(out / "compare.csv")
    assert set(df.method) == ALL and set(df.n_clips) == {36 * 10, 36 * 3}
    assert json.loads((out / "config.json").read_text())["config"]["representation"] == "windows"


def test_actor_norm_removes_planted_actor_offsets(tmp_path):
    d = planted(tmp_path, n_actors=10, n_test_actors=2, dim=8, signal=2.0, noise=0.5, actor_sd=6.0, seed=2)
    out = run_benchmark(_config(d, tmp_path / "run", methods=["actor-norm"], epochs=15, nested=False))
    df = pd.read_csv(out / "compare.csv").set_index(["method", "split", "selection"])
    for split in ("val", "test"):
        assert df.loc[("actor-norm", split, "pooled"), "score"] > df.loc[("baseline", split, "pooled"), "score"] + 0.05


def _anonymise(d: dict, tmp: Path, *, dim_sources: dict) -> tuple[Path, dict]:
    """The test partition as the challenge hands it out: test_0001 ..., no labels, no actors."""
    test = pd.read_csv(d["test_metadata"])
    mapping = {n: f"test_{i + 1:04d}" for i, n in enumerate(test.filename)}
    anon = pd.DataFrame({"filename": [mapping[n] for n in test.filename], "video_id": "", "fold": "", "mix": "",
                         "emotion_1": "", "emotion_2": "", "emotion_1_salience": "", "emotion_2_salience": ""})
    anon.to_csv(tmp / "anon.csv", index=False)
    truth = test.assign(filename=[mapping[n] for n in test.filename])
    truth.to_csv(tmp / "truth.csv", index=False)
    sources = {}
    for name, path in dim_sources.items():
        z = np.load(path)
        np.savez(tmp / f"{name}.npz", X=z["X"], filenames=np.array([mapping.get(str(n), str(n)) for n in z["filenames"]]))
        sources[name] = tmp / f"{name}.npz"
    return tmp / "anon.csv", sources


def test_anonymised_test_clips_get_pseudo_actors_and_the_template_form(tmp_path):
    d = planted(tmp_path, n_actors=10, n_test_actors=3, dim=40, signal=2.0, noise=0.5, actor_sd=1.5, seed=4)
    anon, sources = _anonymise(d, tmp_path, dim_sources=d["sources"])
    out = run_benchmark(_config(d, tmp_path / "run", features=sources, test_metadata=anon,
                                methods=["actor-norm"], epochs=8, nested=False))
    actors = json.loads((out / "actors.json").read_text())["s0"]
    assert actors["k"] == 3 and actors["k_rule"].startswith("test clips / median clips")
    assert actors["mean_ari_on_training_folds"] > 0.5
    assert set(actors["test_actors"].values()) == {"pseudo-01", "pseudo-02", "pseudo-03"}
    with zipfile.ZipFile(out / "submission" / "actor-norm__s0__linear.zip") as z:
        (name,) = z.namelist()
        data = json.loads(z.read(name))
    assert list(data) == ["predictions"] and sorted(data["predictions"]) == [f"test_{i:04d}.mov" for i in range(1, 109)]
    singles = [v for v in data["predictions"].values() if len(v) == 1]
    assert all(v[0]["salience"] == 100.0 and isinstance(v[0]["salience"], float) for v in singles)
    results = pd.read_csv(out / "results.csv", dtype={"fold": str})
    assert not {"test", "test-pooled"} & set(results.fold)  # no labels: predictions, no test rows


def test_without_actors_and_without_discovery_actor_norm_refuses(tmp_path):
    d = planted(tmp_path, n_actors=6, n_test_actors=1, dim=6, seed=5)
    anon, sources = _anonymise(d, tmp_path, dim_sources=d["sources"])
    with pytest.raises(BlemoreError, match="actor-norm needs the actor of every test clip.*--test-actors auto"):
        run_benchmark(_config(d, tmp_path / "run", features=sources, test_metadata=anon, methods=["actor-norm"],
                              test_actors="none"))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--methods", "baseline,magic"], "unknown method 'magic'"),
        (["--epochs", "0"], "epochs must be >= 1"),
        (["--methods", "attention-fusion"], "attention-fusion needs at least 2 feature sources"),
        (["--methods", "late-fusion", "--compare", "magic"], "unknown method 'magic'"),
        (["--test-actors", "many"], "--test-actors 'many': expected auto, none or a number"),
        (["--representation", "frames"], "'frames' is not one of"),
        (["--paper-test", "retrain-100", "--epochs", "5"], "retrain-100 needs at least 100 epochs"),
        (["--ensemble-seeds", "0"], "--ensemble-seeds must be >= 1"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2_before_training(frames, tmp_path, extra, message):
    out = tmp_path / "r"
    args = ["benchmark", "--train-metadata", str(frames["train_metadata"]), "-q", "-o", str(out), "--no-report",
            "-f", f"s0={frames['sources']['s0']}", *extra]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], res.output
    assert not out.exists()


def test_cli_compare_is_the_benchmark_with_methods(frames, tmp_path):
    args = ["compare", "--train-metadata", str(frames["train_metadata"]), "--epochs", "3", "--lr", "0.01",
            "--no-nested", "--n-boot", "20", "--n-perm", "20", "-q", "--no-report", "-o", str(tmp_path / "r")]
    for name, path in frames["sources"].items():
        args += ["-f", f"{name}={path}"]
    res = CliRunner().invoke(app, args + ["--methods", "baseline,structured"])
    assert res.exit_code == 0, res.output
    assert "| structured |" in res.output and "run folder:" in res.output and "best:" in res.output
    res = CliRunner().invoke(app, ["compare", "--help"])
    assert res.exit_code == 0 and "blemore benchmark" in res.output
    res = CliRunner().invoke(app, ["methods"])
    assert res.exit_code == 0 and "actor-inclusive" in res.output and "diagnostic" in res.output
