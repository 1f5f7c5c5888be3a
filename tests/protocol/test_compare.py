"""Tests of blemore.protocol.compare: statistics, selection rules, the extra heads and the `blemore compare` command."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner


from tests.support.planted import planted  # noqa: E402

from blemore.cli import app  # noqa: E402
from blemore.protocol.compare import (  # noqa: E402
    COMPARE_COLUMNS,
    PAIRED_COLUMNS,
    THRESHOLDS,
    STRUCTURED,
    CompareConfig,
    LateFusionDecoder,
    _evaluate,
    _Trained,
    actor_standardise,
    bootstrap_ci,
    choose,
    clip_folds,
    nested_plan,
    outcomes,
    paired_from_run,
    paired_test,
    parse_methods,
    run_compare,
)
from blemore.errors import BlemoreError  # noqa: E402
from blemore.labels import IS_BLEND, LABEL_INDEX, N_LABELS, SOFT_VECTORS  # noqa: E402
from blemore.metrics import score_indices  # noqa: E402
from blemore.models.multitask import decode_salreg, salreg_targets  # noqa: E402

# ----------------------------------------------------------------------------- pure statistics


def _random_outcomes(rng, n_actors=12, per_actor=20, p_right=0.5):
    truth = rng.integers(0, N_LABELS, size=n_actors * per_actor)
    pred = np.where(rng.random(truth.size) < p_right, truth, rng.integers(0, N_LABELS, size=truth.size))
    groups = np.repeat([f"A{i}" for i in range(n_actors)], per_actor)
    return truth, pred, groups


def test_outcomes_match_metrics():
    rng = np.random.default_rng(1)
    truth, pred, groups = _random_outcomes(rng)
    pred[:5] = -1  # "other"
    r = bootstrap_ci(outcomes(truth, pred, groups), n_boot=50)
    s = score_indices(truth, pred)
    assert r["acc_presence"] == pytest.approx(s.acc_presence)
    assert r["acc_salience"] == pytest.approx(s.acc_salience)
    assert r["score"] == pytest.approx(s.score)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n_actors=st.integers(3, 15), p=st.floats(0.05, 0.95))
def test_bootstrap_interval_contains_point(seed, n_actors, p):
    rng = np.random.default_rng(seed)
    truth, pred, groups = _random_outcomes(rng, n_actors=n_actors, per_actor=36, p_right=p)
    r = bootstrap_ci(outcomes(truth, pred, groups), n_boot=400, seed=seed)
    for name in ("score", "acc_presence"):
        assert r[f"{name}_low"] <= r[name] + 1e-9
        assert r[name] <= r[f"{name}_high"] + 1e-9


def test_bootstrap_is_over_actors_not_clips():
    # Every actor all right or all wrong: the interval over actors is much wider than a clip bootstrap would be.
    truth = np.repeat(np.arange(10), 30) % N_LABELS
    pred = truth.copy()
    pred[150:] = (truth[150:] + 1) % N_LABELS
    groups = np.repeat([f"A{i}" for i in range(10)], 30)
    r = bootstrap_ci(outcomes(truth, pred, groups), n_boot=1000)
    assert r["acc_presence_high"] - r["acc_presence_low"] > 0.4


def test_paired_test_against_itself():
    rng = np.random.default_rng(2)
    truth, pred, groups = _random_outcomes(rng)
    oc = outcomes(truth, pred, groups)
    r = paired_test(oc, oc, n_boot=200, n_perm=200)
    assert r.diff == 0.0 and r.ci_low == 0.0 and r.ci_high == 0.0 and r.p_value == 1.0


def test_paired_test_detects_a_clear_difference():
    rng = np.random.default_rng(3)
    truth, _, groups = _random_outcomes(rng, n_actors=15)
    good = outcomes(truth, truth, groups)
    bad = outcomes(truth, (truth + 1) % N_LABELS, groups)
    r = paired_test(good, bad, n_boot=300, n_perm=500)
    assert r.diff > 0.5 and r.ci_low > 0 and r.p_value < 0.01
    r2 = paired_test(bad, good, n_boot=300, n_perm=500)
    assert r2.diff == pytest.approx(-r.diff) and r2.ci_high < 0


def test_paired_test_needs_the_same_clips():
    rng = np.random.default_rng(4)
    truth, pred, groups = _random_outcomes(rng)
    a = outcomes(truth, pred, groups)
    b = outcomes(truth[::-1], pred, groups)
    with pytest.raises(BlemoreError, match="same clips"):
        paired_test(a, b)


# ----------------------------------------------------------------------------- folds, plan, selection


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=10, max_size=60).filter(lambda f: len(set(f)) >= 3))
def test_nested_plan_never_uses_the_outer_fold(fold_list):
    folds = np.array(fold_list)
    plan = nested_plan(folds, nested=True, test=np.arange(len(folds), len(folds) + 3))
    ids = sorted(set(fold_list))
    for m in plan:
        if m.role == "outer":
            assert set(folds[m.train]) == set(ids) - {m.outer}
            assert set(folds[m.eval]) == {m.outer}
        elif m.role == "inner":
            assert m.outer not in set(folds[m.train]) and m.outer not in set(folds[m.eval])
            assert set(folds[m.eval]) == {m.inner} and m.inner not in set(folds[m.train])
        else:
            assert len(m.train) == len(folds)
    inner = [m for m in plan if m.role == "inner"]
    assert len(inner) == len(ids) * (len(ids) - 1)


def _fake_trained(rng, folds, E=6, nested=True):
    plan = nested_plan(folds, nested=nested)
    outs = []
    for m in plan:
        p = rng.dirichlet(np.ones(6) * 0.5, size=(E, len(m.eval)))
        outs.append(p)
    return _Trained(plan, outs, folds)


def test_nested_choice_ignores_the_outer_folds_labels():
    rng = np.random.default_rng(5)
    folds = np.repeat(np.arange(4), 30)
    tr = _fake_trained(rng, folds)
    truth = rng.integers(0, N_LABELS, size=len(folds))
    rows = _evaluate("baseline", "x", "linear", tr, THRESHOLDS, truth, nested=True, with_test=False,
                     paper_test=False, epochs_grid=None)
    nested = next(r for r in rows if r.selection == "nested")
    paper = next(r for r in rows if r.selection == "paper")
    for k in range(4):
        changed = truth.copy()
        sel = folds == k
        changed[sel] = rng.integers(0, N_LABELS, size=int(sel.sum()))
        rows2 = _evaluate("baseline", "x", "linear", tr, THRESHOLDS, changed, nested=True, with_test=False,
                          paper_test=False, epochs_grid=None)
        nested2 = next(r for r in rows2 if r.selection == "nested")
        np.testing.assert_array_equal(nested2.pred[sel], nested.pred[sel])
    # the paper rule does look at the fold's labels: predictions fit that fold at least as well
    assert score_indices(truth, paper.pred).score >= score_indices(truth, nested.pred).score


def test_choose_picks_the_first_best_epoch():
    truth = np.array([LABEL_INDEX["hap"], LABEL_INDEX["sad"]])
    good = SOFT_VECTORS[truth]
    bad = SOFT_VECTORS[[LABEL_INDEX["ang"], LABEL_INDEX["ang"]]]
    outs = np.stack([bad, good, good])
    c = choose([outs], [truth], STRUCTURED)
    assert c.epoch == 2 and c.score == 0.5  # presence 1, salience 0 (no blends)


def test_late_fusion_decoder_finds_the_informative_source():
    rng = np.random.default_rng(6)
    truth = rng.integers(0, N_LABELS, size=200)
    informative = SOFT_VECTORS[truth] * 0.9 + 0.1 / 6
    noise = rng.dirichlet(np.ones(6), size=200)
    out = np.stack([noise, informative], axis=1)
    dec = LateFusionDecoder(2)
    (w, a, b), score = dec.fit(out, truth)
    assert w[1] >= 0.7 and score > 0.9
    assert np.allclose(dec.weights.sum(axis=1), 1.0) and len(dec.weights) == 11


def test_clip_folds_and_actor_standardise():
    f = clip_folds(103, n_folds=5, seed=1)
    assert sorted(set(f.tolist())) == [0, 1, 2, 3, 4] and np.bincount(f).max() - np.bincount(f).min() <= 1
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3)) + np.repeat(rng.normal(scale=50, size=(4, 3)), 10, axis=0)
    actors = np.repeat(["a", "b", "c", None], 10).tolist()
    Z = actor_standardise(X, actors)
    for i in range(4):
        np.testing.assert_allclose(Z[i * 10 : (i + 1) * 10].mean(axis=0), 0, atol=1e-5)
        np.testing.assert_allclose(Z[i * 10 : (i + 1) * 10].std(axis=0), 1, atol=1e-4)
    with pytest.raises(BlemoreError):
        clip_folds(3, n_folds=5)


def test_parse_methods():
    assert parse_methods("structured") == ["baseline", "structured", "head36"]
    assert parse_methods("nested,bootstrap,actor_norm") == ["baseline", "actor-norm"]
    assert len(parse_methods("all")) == 8
    with pytest.raises(BlemoreError, match="unknown method 'magic'"):
        parse_methods("baseline,magic")


def test_salience_regression_decodes_its_own_targets():
    idx = np.arange(N_LABELS)
    t = salreg_targets(idx)
    presence = np.where(t[:, :6] > 0, 6.0, -6.0)
    # the dominant emotion of a 70/30 gets the larger presence logit
    for i in range(N_LABELS):
        v = SOFT_VECTORS[i]
        if IS_BLEND[i] and v.max() > 0.5:
            presence[i, int(np.argmax(v))] += 1.0
    share = np.log(t[:, 6:] / np.maximum(1 - t[:, 6:], 1e-6))
    np.testing.assert_array_equal(decode_salreg(np.concatenate([presence, share], axis=1)), idx)


# ----------------------------------------------------------------------------- end to end on planted features


@pytest.fixture(scope="module")
def planted_frames(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compare_planted")
    return planted(tmp, n_actors=10, n_test_actors=3, dim=6, frames=True, sources=2, seed=1)


def test_run_compare_all_methods(planted_frames, tmp_path):
    d = planted_frames
    out = tmp_path / "run"
    cfg = CompareConfig(
        features=d["sources"], train_metadata=d["train_metadata"], test_metadata=d["test_metadata"],
        epochs=6, lr=1e-2, methods=["all"], out=out, progress=False, n_boot=100, n_perm=100,
        attention_epochs=2, max_frames=8,
    )
    assert run_compare(cfg) == out
    df = pd.read_csv(out / "compare.csv")
    assert list(df.columns) == COMPARE_COLUMNS
    methods = set(df.method)
    assert methods == {"baseline", "structured", "head36", "salience-reg", "actor-norm", "late-fusion",
                       "attention-fusion", "actor-inclusive"}
    scores = df[["acc_presence", "acc_salience", "score"]].to_numpy()
    assert np.isfinite(scores).all() and (scores >= 0).all() and (scores <= 1).all()
    assert (df.ci_low <= df.score + 1e-9).all() and (df.score <= df.ci_high + 1e-9).all()
    assert set(df.split) == {"val", "test"} and {"paper", "nested", "pooled"} <= set(df.selection)
    test = df[(df.split == "test") & (df.selection == "pooled")]
    assert test.gap.notna().all()
    assert (df[df.method == "actor-norm"].note.str.contains("transductive")).all()
    paired = pd.read_csv(out / "paired.csv")
    assert list(paired.columns) == PAIRED_COLUMNS and len(paired) > 0
    assert paired.p_value.between(0, 1).all() and "baseline" not in set(paired.method)
    pairs = pd.read_csv(out / "pairs.csv")
    assert {"ang_hap", "neu"} <= set(pairs.pair)
    sens = pd.read_csv(out / "sensitivity.csv")
    assert (sens.local_range >= 0).all() and (sens.local_max <= sens.score + 1e-9).all()
    md = (out / "compare.md").read_text()
    assert "| late-fusion |" in md and "transductive" in md
    preds = pd.read_csv(out / "compare_predictions.csv", keep_default_na=False)
    assert len(preds) == 13 * 36 and set(preds.split) == {"val", "test"}
    # any two configurations can be compared afterwards; a configuration against itself: 0, p = 1
    same = paired_from_run(out, "head36|s0|linear|nested", "head36|s0|linear|nested", n_boot=50, n_perm=50)
    assert same.diff == 0.0 and same.p_value == 1.0 and same.n_groups == 10
    row = paired[(paired.method == "actor-norm") & (paired.feature_set == "s0") & (paired.split == "test")
                 & (paired.selection == "pooled")].iloc[0]
    again = paired_from_run(out, "actor-norm|s0|linear|pooled", "baseline|s0|linear|pooled", split="test",
                            n_boot=100, n_perm=100)
    assert again.diff == pytest.approx(row.diff_score) and again.p_value == pytest.approx(row.p_value)
    res = CliRunner().invoke(app, ["paired", str(out), "late-fusion|s0+s1|linear|nested", "baseline|s0+s1|linear|nested"])
    assert res.exit_code == 0 and "p = " in res.output
    res = CliRunner().invoke(app, ["paired", str(out), "nope|s0|linear|nested", "baseline|s0|linear|nested"])
    assert res.exit_code == 2 and "no configuration 'nope|s0|linear|nested'" in res.output


def test_actor_norm_removes_planted_actor_offsets(tmp_path):
    d = planted(tmp_path, n_actors=10, n_test_actors=2, dim=8, signal=2.0, noise=0.5, actor_sd=6.0, seed=2)
    cfg = CompareConfig(
        features=d["sources"], train_metadata=d["train_metadata"], test_metadata=d["test_metadata"],
        epochs=15, lr=1e-2, methods=["actor-norm"], out=tmp_path / "run", progress=False, nested=False,
        n_boot=50, n_perm=50,
    )
    df = pd.read_csv(run_compare(cfg) / "compare.csv").set_index(["method", "split", "selection"])
    for split in ("val", "test"):
        assert df.loc[("actor-norm", split, "pooled"), "score"] > df.loc[("baseline", split, "pooled"), "score"] + 0.05


# ----------------------------------------------------------------------------- command line


def test_cli_compare_runs_and_prints(planted_frames, tmp_path):
    d = planted_frames
    args = ["compare", "--train-metadata", str(d["train_metadata"]), "--methods", "structured", "--epochs", "3",
            "--lr", "0.01", "--no-nested", "--n-boot", "50", "--n-perm", "50", "-q", "-o", str(tmp_path / "r")]
    for name, path in d["sources"].items():
        args += ["-f", f"{name}={path}"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "| head36 |" in res.output and "run folder:" in res.output


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--methods", "baseline,magic"], "unknown method 'magic'"),
        (["--epochs", "0"], "epochs must be >= 1"),
        (["--methods", "attention-fusion", "--set", "s0"], "at least two feature sources"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(planted_frames, tmp_path, extra, message):
    d = planted_frames
    out = tmp_path / "r"
    args = ["compare", "--train-metadata", str(d["train_metadata"]), "-q", "-o", str(out),
            "-f", f"s0={d['sources']['s0']}", *extra]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("blemore: error:")
    assert not out.exists()


def test_cli_refuses_a_foreign_folder_and_clip_level_attention(tmp_path):
    (tmp_path / "flat").mkdir()
    d = planted(tmp_path / "flat", n_actors=6, n_test_actors=1, dim=4, sources=2)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    base = ["compare", "--train-metadata", str(d["train_metadata"]), "-q", "--epochs", "2",
            "-f", f"s0={d['sources']['s0']}", "-f", f"s1={d['sources']['s1']}"]
    res = CliRunner().invoke(app, [*base, "-o", str(foreign)])
    assert res.exit_code == 2 and "not a blemore run" in res.output
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    res = CliRunner().invoke(app, [*base, "--methods", "attention-fusion", "-o", str(tmp_path / "x")])
    assert res.exit_code == 2 and "frame-level features" in res.output


def test_compare_adds_to_an_existing_run_folder(planted_frames, tmp_path):
    d = planted_frames
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "results.csv").write_text("kept")
    cfg = CompareConfig.from_benchmark(
        __import__("blemore.protocol.benchmark", fromlist=["BenchmarkConfig"]).BenchmarkConfig(
            features={"s0": d["sources"]["s0"]}, train_metadata=d["train_metadata"], epochs=2, lr=1e-2,
            out=run, progress=False,
        ),
        methods="baseline", nested=False, n_boot=20, n_perm=20,
    )
    assert cfg.models == ["linear", "mlp256", "mlp512"] and cfg.epochs == 2
    cfg.models = ["linear"]
    run_compare(cfg)
    assert (run / "results.csv").read_text() == "kept"
    assert {"compare.csv", "compare.md", "paired.csv", "pairs.csv", "sensitivity.csv", "compare.json"} <= {
        p.name for p in run.iterdir()
    }
    assert not [p for p in run.iterdir() if p.name.startswith(".")]
    df = pd.read_csv(run / "compare.csv")
    assert set(df.method) == {"baseline"} and set(df.split) == {"val"}  # test metadata not given


def test_compare_baseline_is_the_benchmarks_own_models(planted_frames, tmp_path):
    """`benchmark --compare`: the comparison's baseline rows are the benchmark's figures (same seeds)."""
    from dataclasses import replace

    from blemore.protocol.benchmark import BenchmarkConfig, run_benchmark

    d = planted_frames
    bc = BenchmarkConfig(
        features=d["sources"], train_metadata=d["train_metadata"], test_metadata=d["test_metadata"],
        sets=["s0"], models=["linear"], epochs=5, lr=1e-2, out=tmp_path / "run", progress=False,
    )
    run = run_benchmark(bc)
    run_compare(CompareConfig.from_benchmark(replace(bc, out=run), methods="baseline", n_boot=20, n_perm=20))
    res = pd.read_csv(run / "results.csv", dtype={"fold": str})
    cmp = pd.read_csv(run / "compare.csv")
    base = cmp[(cmp.method == "baseline") & (cmp.feature_set == "s0")]
    pooled = res[(res.method == "baseline") & (res.fold == "pooled")].iloc[0]
    val_pooled = base[(base.split == "val") & (base.selection == "pooled")].iloc[0]
    assert val_pooled.epoch == pooled.epoch
    assert val_pooled.acc_presence == pytest.approx(pooled.acc_presence)
    assert val_pooled.acc_salience == pytest.approx(pooled.acc_salience)
    test_pooled = res[(res.method == "baseline") & (res.fold == "test-pooled")].iloc[0]
    row = base[(base.split == "test") & (base.selection == "pooled")].iloc[0]
    assert row.acc_presence == pytest.approx(test_pooled.acc_presence)
    assert row.acc_salience == pytest.approx(test_pooled.acc_salience)


@pytest.mark.parametrize(
    "compare, message",
    [("nope", "unknown method 'nope'"), ("late-fusion", "need at least two feature sources")],
)
def test_benchmark_compare_bad_input_fails_before_training(planted_frames, tmp_path, compare, message):
    d = planted_frames
    out = tmp_path / "run"
    res = CliRunner().invoke(app, [
        "benchmark", "-f", f"s0={d['sources']['s0']}", "--train-metadata", str(d["train_metadata"]),
        "-m", "linear", "--epochs", "2", "--compare", compare, "-o", str(out), "-q", "--no-report",
    ])
    assert res.exit_code == 2
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0]
    assert not out.exists()  # checked before any training: no run folder


# ----------------------------------------------------------------------------- windows representation


def test_window_members_map_clips_to_their_windows():
    from blemore.protocol.compare import _clip_means, _window_members
    from blemore.models.trainer import Member

    row_clip = np.array([0, 0, 1, 2, 2, 2, 3, 4, 4])
    m = Member(train=np.array([0, 2, 4]), eval=np.array([3, 1]), seed=7)
    (w,) = _window_members([m], row_clip, 5)
    assert w.seed == 7
    assert w.train.tolist() == [0, 1, 3, 4, 5, 7, 8]  # every window of clips 0, 2, 4
    assert w.eval.tolist() == [2, 6] and w.eval_groups.tolist() == [1, 0]  # clip 3 first, as in m.eval
    # stats (one row per clip): the members themselves
    assert _window_members([m], np.arange(5), 5)[0] is m
    out = np.arange(2 * 5 * 3, dtype=np.float32).reshape(2, 5, 3)
    means = _clip_means(out, np.array([1, 0, 1, 1, 0]))
    np.testing.assert_allclose(means[:, 0], out[:, [1, 4]].mean(axis=1))
    np.testing.assert_allclose(means[:, 1], out[:, [0, 2, 3]].mean(axis=1))
    assert _clip_means(out, None) is out


def test_run_compare_all_methods_on_windows(planted_frames, tmp_path):
    d = planted_frames
    out = tmp_path / "run"
    cfg = CompareConfig(
        features=d["sources"], train_metadata=d["train_metadata"], test_metadata=d["test_metadata"],
        representation="windows", window=8, epochs=4, lr=1e-2, methods=["all"], out=out, progress=False,
        n_boot=50, n_perm=50, attention_epochs=1, max_frames=8,
    )
    assert run_compare(cfg) == out
    df = pd.read_csv(out / "compare.csv")
    assert set(df.method) == {"baseline", "structured", "head36", "salience-reg", "actor-norm", "late-fusion",
                              "attention-fusion", "actor-inclusive"}
    scores = df[["acc_presence", "acc_salience", "score"]].to_numpy()
    assert np.isfinite(scores).all() and (scores >= 0).all() and (scores <= 1).all()
    assert set(df.n_clips) == {36 * 10, 36 * 3}  # clips, not windows, are scored
    preds = pd.read_csv(out / "compare_predictions.csv", keep_default_na=False)
    assert len(preds) == 13 * 36
    cols = [c for c in preds.columns if c.count("|") == 3]
    val = preds[preds.split == "val"]
    assert (val[[c for c in cols if c.endswith("|paper")]] != "").all().all()
    info = __import__("json").loads((out / "compare.json").read_text())
    assert info["config"]["representation"] == "windows" and info["config"]["window"] == 8


def test_actor_norm_on_windows_standardises_each_actors_windows(monkeypatch, planted_frames, tmp_path):
    import blemore.protocol.compare as cmp
    from blemore.features.loading import load_feature_set

    seen = {}
    real = cmp.actor_standardise

    def spy(X, actors):
        seen["X"], seen["actors"] = X, list(actors)
        return real(X, actors)

    monkeypatch.setattr(cmp, "actor_standardise", spy)
    d = planted_frames
    cfg = CompareConfig(
        features={"s0": d["sources"]["s0"]}, train_metadata=d["train_metadata"], representation="windows",
        window=8, epochs=2, lr=1e-2, methods=["actor-norm"], nested=False, out=tmp_path / "run", progress=False,
        n_boot=10, n_perm=10,
    )
    run_compare(cfg)
    train = pd.read_csv(d["train_metadata"])
    rows = load_feature_set("s0", {"s0": d["sources"]["s0"]}, train.filename.tolist(), representation="windows",
                            window=8)
    assert seen["X"].shape == rows.X.shape and len(rows.X) > len(train)  # window rows, not clips
    actors = train.filename.str.split("_").str[0].to_numpy()[rows.row_clip]
    assert seen["actors"] == actors.tolist()


def test_compare_baseline_on_windows_is_the_benchmarks_windows_models(planted_frames, tmp_path):
    """`benchmark --compare` with windows: the baseline rows are the benchmark's windows-representation models."""
    from dataclasses import replace

    from blemore.protocol.benchmark import BenchmarkConfig, run_benchmark

    d = planted_frames
    bc = BenchmarkConfig(
        features=d["sources"], train_metadata=d["train_metadata"], test_metadata=d["test_metadata"],
        sets=["s0"], models=["linear"], representation="windows", window=8, epochs=5, lr=1e-2,
        out=tmp_path / "run", progress=False,
    )
    run = run_benchmark(bc)
    run_compare(CompareConfig.from_benchmark(replace(bc, out=run), methods="baseline", n_boot=20, n_perm=20))
    res = pd.read_csv(run / "results.csv", dtype={"fold": str})
    base = pd.read_csv(run / "compare.csv")
    base = base[(base.method == "baseline") & (base.feature_set == "s0")].set_index(["split", "selection"])
    for fold, key in (("pooled", ("val", "pooled")), ("test-pooled", ("test", "pooled")), ("test", ("test", "paper"))):
        ref = res[(res.method == "baseline") & (res.fold == fold)].iloc[0]
        row = base.loc[key]
        assert row.acc_presence == pytest.approx(ref.acc_presence), fold
        assert row.acc_salience == pytest.approx(ref.acc_salience), fold
        assert row.epoch == ref.epoch, fold
    # clip by clip: the paper rule's validation predictions and the pooled test predictions are the benchmark's
    preds = pd.read_csv(run / "compare_predictions.csv", keep_default_na=False).set_index("filename")
    val = pd.read_csv(run / "predictions" / "s0__linear__val.csv", keep_default_na=False).set_index("filename")
    assert (preds.loc[val.index, "baseline|s0|linear|paper"] == val.pred_label).all()
    test = pd.read_csv(run / "predictions" / "s0__linear__test.csv", keep_default_na=False).set_index("filename")
    assert (preds.loc[test.index, "baseline|s0|linear|pooled"] == test.pred_label).all()


def test_cli_compare_windows(planted_frames, tmp_path):
    d = planted_frames
    base = ["compare", "--train-metadata", str(d["train_metadata"]), "--epochs", "2", "--lr", "0.01", "--no-nested",
            "--n-boot", "20", "--n-perm", "20", "-q", "-f", f"s0={d['sources']['s0']}"]
    res = CliRunner().invoke(app, [*base, "--representation", "windows", "--window", "8", "--methods", "salience-reg",
                                   "-o", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert "| salience-reg |" in res.output
    cfg = __import__("json").loads((tmp_path / "r" / "compare.json").read_text())["config"]
    assert (cfg["representation"], cfg["window"]) == ("windows", 8)
    for extra, message in ((["--representation", "frames"], "unknown representation 'frames'"),
                           (["--representation", "windows", "--window", "0"], "window must be >= 1")):
        out = tmp_path / "bad"
        res = CliRunner().invoke(app, [*base, *extra, "-o", str(out)])
        lines = res.output.strip().splitlines()
        assert res.exit_code == 2 and len(lines) == 1 and message in lines[0], res.output
        assert not out.exists()
