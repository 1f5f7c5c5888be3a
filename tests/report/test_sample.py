"""The synthetic run folder: the run-folder layout, written through RunFolder, consistent and reproducible."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from blemore.errors import BlemoreError
from blemore.labels import EMOTIONS, LABEL_INDEX
from blemore.metrics import score_indices
from blemore.protocol.methods_table import COMPARE_COLUMNS, PAIRED_COLUMNS
from blemore.protocol.runfolder import read_marker
from blemore.report import analysis
from blemore.report.sample import SAMPLE_METHODS, write_sample_run


@pytest.fixture(scope="module")
def scored_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample_run(
        tmp_path_factory.mktemp("run") / "run", n_actors=6, n_test=30, compare=True, scored=True
    )


def _files(run: Path) -> set[str]:
    return {p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file()}


def test_every_file_is_written_through_the_run_folder(scored_run: Path) -> None:
    marker = read_marker(scored_run)
    assert marker is not None and set(marker["files"]) == _files(scored_run) - {".blemore-run.json"}
    assert not [p for p in scored_run.parent.iterdir() if p.name.startswith(".")]  # no staging left


def test_sample_run_is_consistent_and_reproducible(tmp_path: Path, scored_run: Path) -> None:
    again = write_sample_run(tmp_path / "again", n_actors=6, n_test=30, compare=True, scored=True)
    for name in (
        "results.csv",
        "curves.csv",
        "predictions/facemesh__linear__val.csv",
        "compare.csv",
        "best.json",
    ):
        assert (again / name).read_bytes() == (scored_run / name).read_bytes(), name
    results = pd.read_csv(scored_run / "results.csv", dtype={"fold": str})
    val = pd.read_csv(scored_run / "predictions" / "opensmile__mlp-256__val.csv")
    assert set(val["actor"].groupby(val["fold"]).nunique().index) == {0, 1, 2, 3, 4}
    assert val.groupby("actor")["fold"].nunique().max() == 1  # actor-disjoint folds
    np.testing.assert_allclose(val[list(EMOTIONS)].sum(axis=1), 1.0)
    for k in range(5):
        part = val[val["fold"] == k]
        row = results[
            (results["model"] == "mlp-256")
            & (results["feature_set"] == "opensmile")
            & (results["fold"] == str(k))
        ].iloc[0]
        s = score_indices(
            analysis.label_indices(part["label"].tolist()),
            analysis.label_indices(part["pred_label"].tolist()),
        )
        assert (s.acc_presence, s.acc_salience) == pytest.approx((row["acc_presence"], row["acc_salience"]))
    # The trivial baselines are the run's own rows (protocol.results.trivial_rows).
    assert set(results.loc[results["feature_set"] == "-", "method"]) == {"majority-single", "majority-blend"}


def test_the_methods_part_has_the_run_layout_and_the_best_is_the_best(scored_run: Path) -> None:
    compare = pd.read_csv(scored_run / "compare.csv")
    assert list(compare.columns) == COMPARE_COLUMNS and set(compare["method"]) == set(SAMPLE_METHODS)
    assert set(compare["split"]) == {"val"}  # scored afterwards: the test scores are in test_scores.json
    assert "opensmile, facemesh" in set(compare["feature_set"])  # the ensemble's comma-separated sets
    assert list(pd.read_csv(scored_run / "paired.csv").columns) == PAIRED_COLUMNS
    best = json.loads((scored_run / "best.json").read_text())
    nested = compare[compare["selection"] == "nested"]
    top = nested.loc[nested["score"].idxmax()]
    assert (best["chosen"]["method"], best["chosen"]["feature_set"], best["chosen"]["model"]) == (
        top["method"],
        top["feature_set"],
        top["model"],
    )
    assert best["selection"] == "nested" and best["best_baseline"]["method"] == "baseline"
    zip_path = scored_run / best["submission"]
    with zipfile.ZipFile(zip_path) as z:
        (member,) = z.namelist()
        predictions = json.loads(z.read(member))["predictions"]
    assert sorted(predictions) == [f"test_{i:04d}.mov" for i in range(1, 31)]
    model = json.loads((scored_run / "models" / best["stem"] / "model.json").read_text())
    assert model["method"] == best["chosen"]["method"] and model["validation"]["nested"] == pytest.approx(
        best["chosen"]["score"], abs=1e-5
    )


def test_test_scores_are_the_scores_of_the_test_predictions(scored_run: Path) -> None:
    npz = np.load(scored_run / "clip_features" / "opensmile.npz")
    truth = {
        str(f): LABEL_INDEX[str(lab)]
        for f, lab in zip(npz["filenames"], npz["labels"])
        if str(f).startswith("test_")
    }
    scores = json.loads((scored_run / "test_scores.json").read_text())["scores"]
    assert len(scores) == len(list((scored_run / "models").iterdir()))
    for row in scores:
        stem = Path(row["submission"]).stem
        pred = pd.read_csv(scored_run / "test_predictions" / f"{stem}.csv")
        s = score_indices(
            np.array([truth[f] for f in pred["filename"]]),
            analysis.label_indices(pred["pred_label"].tolist()),
        )
        assert row["score"] == pytest.approx(s.score) and row["acc_salience"] == pytest.approx(s.acc_salience)


def test_labelled_test_clips_give_compare_test_rows_and_actors_one_per_fold(tmp_path: Path) -> None:
    run = write_sample_run(
        tmp_path / "run", n_actors=5, n_test=12, compare=True, feature_sets=["f"], models=["m"]
    )
    compare = pd.read_csv(run / "compare.csv")
    test = compare[compare["split"] == "test"]
    assert set(test["selection"]) == {"pooled", "paper"} and set(
        test.loc[test["selection"] == "paper", "method"]
    ) == {"baseline"}
    actors = json.loads((run / "actors.json").read_text())["f"]
    assert all(f["actors"] == 1 and f["ari"] == 1.0 for f in actors["training_folds"])
    assert not (run / "test_scores.json").exists()


def test_an_existing_run_is_replaced_only_with_overwrite(tmp_path: Path) -> None:
    run = write_sample_run(tmp_path / "run", n_actors=5, n_test=0, parts=["results"])
    with pytest.raises(BlemoreError, match="pass --overwrite"):
        write_sample_run(run, n_actors=5, n_test=0, parts=["results"])
    write_sample_run(run, n_actors=5, n_test=0, parts=["results", "config"], overwrite=True)
    assert (run / "config.json").is_file()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"parts": ["nope"]}, "unknown sample parts"),
        ({"n_actors": 3}, "fewer than the 5 folds"),
        ({"scored": True, "test_labels": False}, "scored=True needs labelled test clips"),
    ],
)
def test_bad_options_are_refused(tmp_path: Path, options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        write_sample_run(tmp_path / "run", **options)
    assert not (tmp_path / "run").exists()
