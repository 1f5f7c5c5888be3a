"""Submissions in the form of the challenge's template: keys, values, one JSON file at the zip's root.

The official template (``data/submission_template.json`` of the challenge's repository, zipped as
``submission_template_codabench.zip``) holds ``{"predictions": {...}}`` with 594 keys ``test_0001.mov`` …
``test_0594.mov``, ``100.0`` for a single emotion and whole-number saliences for a blend. The template
itself is not shipped here; where a copy of the challenge's repository is on the machine
(``$BLEMORE_COMMON``), the produced zip is also compared with the real file.
"""

from __future__ import annotations

import json
import os
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from blemore.cli import app
from blemore.errors import BlemoreError
from blemore.labels import IS_BLEND, N_LABELS
from blemore.protocol.challenge import challenge_predictions, check_clip_set, template_form
from blemore.submission import read_predictions, write_submission_zip

TEMPLATE_KEYS = [f"test_{i:04d}.mov" for i in range(1, 595)]


def _template_from_repository() -> dict | None:
    """The official template's JSON, from a checkout of the challenge's repository if there is one."""
    repo = os.environ.get("BLEMORE_COMMON")
    if not repo:
        return None
    path = Path(repo) / "data" / "submission_template.json"
    if path.exists():
        return json.loads(path.read_text())
    try:  # a bare git directory
        out = subprocess.run(["git", "-C", repo, "show", "HEAD:data/submission_template.json"], capture_output=True,
                             text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return json.loads(out.stdout)


def _zip_json(path: Path) -> tuple[list[str], dict]:
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        return names, json.loads(z.read(names[0]))


def test_a_produced_zip_has_the_templates_structure_and_key_set(tmp_path):
    rng = np.random.default_rng(0)
    clips = [f"test_{i:04d}" for i in range(1, 595)]
    labels = rng.integers(0, N_LABELS, len(clips))
    zpath = write_submission_zip(challenge_predictions(clips, labels), tmp_path / "submission.zip")
    names, data = _zip_json(zpath)
    assert len(names) == 1 and "/" not in names[0] and names[0].endswith(".json")  # one JSON file at the root
    assert list(data) == ["predictions"]
    assert sorted(data["predictions"]) == TEMPLATE_KEYS
    for label, entries in zip(labels, data["predictions"].values()):
        if IS_BLEND[label]:
            assert sorted(e["salience"] for e in entries) in ([30, 70], [50, 50])
            assert all(isinstance(e["salience"], int) for e in entries)
        else:
            assert len(entries) == 1 and entries[0]["salience"] == 100.0 and isinstance(entries[0]["salience"], float)
    official = _template_from_repository()
    if official is not None:
        assert list(official) == list(data) and sorted(official["predictions"]) == sorted(data["predictions"])
    again = read_predictions(zpath)  # the scorer reads it back, keys by clip
    assert sorted(again) == TEMPLATE_KEYS


def test_the_same_predictions_make_the_same_bytes(tmp_path):
    preds = challenge_predictions(["test_0001", "test_0002"], [3, 14])
    a = write_submission_zip(preds, tmp_path / "a.zip").read_bytes()
    b = write_submission_zip(preds, tmp_path / "b.zip").read_bytes()
    assert a == b


def test_template_form_of_any_spelling():
    form = template_form({"test_0002": [{"emotion": "hap", "salience": "70"}, {"emotion": "ang", "salience": 30.0}],
                          "clips/test_0001.mp4": [{"emotion": "sad", "salience": 100}]})
    assert form == {"test_0002.mov": [{"emotion": "ang", "salience": 30}, {"emotion": "hap", "salience": 70}],
                    "test_0001.mov": [{"emotion": "sad", "salience": 100.0}]}


def test_the_clip_set_is_checked_against_the_test_metadata():
    assert check_clip_set(["test_0002.mov", "test_0001.mov"], ["test_0001", "test_0002"], source="s").startswith("2 clips")
    with pytest.raises(BlemoreError, match=r"s: 1 clip\(s\) of the test metadata are not predicted \(e.g. 'test_0002'\)"):
        check_clip_set(["test_0001.mov"], ["test_0001", "test_0002"], source="s")
    with pytest.raises(BlemoreError, match=r"not in the test metadata \(e.g. 'A102_ang_int1_ver1'\)"):
        check_clip_set(["test_0001", "A102_ang_int1_ver1"], ["test_0001"], source="s")
    with pytest.raises(BlemoreError, match="'test_0001' is predicted twice"):
        check_clip_set(["test_0001", "test_0001.mov"], ["test_0001"], source="s")


def test_cli_submit_writes_the_template_form_and_checks_the_clips(tmp_path):
    preds = {"test_0001": [{"emotion": "sad", "salience": 100}],
             "test_0002": [{"emotion": "hap", "salience": 70}, {"emotion": "ang", "salience": 30}]}
    (tmp_path / "p.json").write_text(json.dumps(preds))
    pd.DataFrame({"filename": ["test_0001", "test_0002"]}).to_csv(tmp_path / "test.csv", index=False)
    res = CliRunner().invoke(app, ["submit", str(tmp_path / "p.json"), "-o", str(tmp_path / "s.zip"),
                                   "--test-metadata", str(tmp_path / "test.csv")])
    assert res.exit_code == 0, res.output
    assert "2 clips, each of the test metadata's clips exactly once" in res.output
    _, data = _zip_json(tmp_path / "s.zip")
    assert sorted(data["predictions"]) == ["test_0001.mov", "test_0002.mov"]
    pd.DataFrame({"filename": ["test_0001", "test_0002", "test_0003"]}).to_csv(tmp_path / "more.csv", index=False)
    res = CliRunner().invoke(app, ["submit", str(tmp_path / "p.json"), "-o", str(tmp_path / "t.zip"),
                                   "--test-metadata", str(tmp_path / "more.csv")])
    assert res.exit_code == 2 and "not predicted (e.g. 'test_0003')" in res.output
    assert not (tmp_path / "t.zip").exists()
