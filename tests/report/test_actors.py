"""Pseudo-actors of anonymised test clips (``actors.json``), on sample runs and a small real run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from blemore.report import write_report
from blemore.report.sample import write_sample_run
from tests.support.report_html import sections, tables, text


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def test_actors_section_from_a_real_run(anonymous_run: Path) -> None:
    page = write_report(anonymous_run).read_text()
    body = sections(page)["actors"]
    actors = json.loads((anonymous_run / "actors.json").read_text())
    main, per_fold = tables(body)
    assert [r[0] for r in main[1:]] == list(actors)
    for r in main[1:]:
        info = actors[r[0]]
        assert r[1] == str(info["k"]) and r[4] == f"{info['mean_ari_on_training_folds']:.2f}"
        sizes = pd.Series(info["test_actors"]).value_counts()
        assert r[3] == f"{sizes.min()}–{sizes.max()}"
    # Training folds of two actors each: agreement measured, nothing flagged.
    assert all(r[6].startswith("0 of") for r in main[1:]) and "by construction" not in text(body)
    assert len(per_fold) == 1 + len(next(iter(actors.values()))["training_folds"])
    chosen_stem = json.loads((anonymous_run / "best.json").read_text())["stem"]
    used = json.loads((anonymous_run / "models" / chosen_stem / "model.json").read_text()).get(
        "actor_models", []
    )
    assert [r[0] for r in main[1:] if r[-1] == "yes"] == list(used)


def test_one_actor_folds_are_flagged(tmp_path: Path) -> None:
    run = write_sample_run(
        tmp_path / "run", n_actors=6, n_test=12, compare=True, feature_sets=["f"], models=["m"]
    )
    body = sections(write_report(run).read_text())["actors"]
    info = json.loads((run / "actors.json").read_text())["f"]
    single = [str(f["fold"]) for f in info["training_folds"] if f["actors"] == 1]
    real = [f["ari"] for f in info["training_folds"] if f["actors"] > 1]
    assert 0 < len(single) < len(info["training_folds"])
    shown = text(body)
    assert f"fold(s) {', '.join(single)} hold(s) one actor, where the ARI is 1.0 by construction" in shown
    assert f"over the other folds it is {np.mean(real):.2f}" in shown
    assert shown.count("(one actor)") == len(single)


def test_every_fold_with_one_actor_means_the_agreement_was_not_measured(tmp_path: Path) -> None:
    run = write_sample_run(
        tmp_path / "run", n_actors=5, n_test=12, compare=True, feature_sets=["f"], models=["m"]
    )
    shown = text(sections(write_report(run).read_text())["actors"])
    assert "every training fold hold(s) one actor" in shown and "no fold measured it" in shown
    assert re.search(r"f 1 test clips / median clips per training actor 12–12 1\.00 – 5 of 5", shown)
