"""The ``encoders``, ``import-features`` and ``aggregate`` commands: output, exit codes, messages."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from blemore.cli import app
from blemore.encoders import list_encoders

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def plain(text: str) -> str:
    """Click's usage errors and help without the box drawing, on one line."""
    return " ".join(text.replace("│", " ").split())


def assert_user_error(result, fragment: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], result.stderr


def test_encoders_lists_every_encoder_with_width_rate_and_weights():
    result = run("encoders")
    assert result.exit_code == 0
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    for info in list_encoders():
        line = lines[info.name]
        assert f" {info.dim} " in line and info.rate in line
        assert ("offline" if info.offline else info.model_id) in line
    assert "per clip" in lines["egemaps"] and "per 16-frame window" in lines["videomae"]
    assert "the paper's (s3prl hubert_large_ll60k last_hidden_state)" in lines["hubert-large"]
    assert "the paper's CLIP" in lines["clip-b32"] and "every frame" in lines["clip-b32"]
    assert "NAME=MODEL_ID_OR_PATH" in result.stdout


def test_encoders_table_columns_line_up_whatever_the_longest_cell():
    table = run("encoders").stdout.splitlines()[: len(list_encoders()) + 1]
    header = table[0]
    for column in ("MODALITY", "RATE", "WEIGHTS", "DESCRIPTION"):
        start = header.index(column)
        assert all(line[start - 2:start] == "  " and line[start] != " " for line in table), column


def test_import_features_errors(tmp_path):
    assert_user_error(run("import-features", tmp_path, "--format", "npy", "--out", tmp_path / "f"), "--name")
    assert_user_error(run("import-features", tmp_path / "nope", "--format", "npy", "--name", "x", "--out",
                          tmp_path / "f"), "no such folder")
    bad = run("import-features", tmp_path, "--format", "csv", "--out", tmp_path / "f")
    assert bad.exit_code == 2 and "'csv' is not one of 'openface', 'npy'" in plain(bad.output)


def test_import_features_official_openface(tmp_path):
    from blemore.features.openface import OFFICIAL_COLUMNS
    from tests.support.official_openface import write_official_csv

    (tmp_path / "of").mkdir()
    rng = np.random.default_rng(1)
    write_official_csv(tmp_path / "of" / "A1_ang_int1_ver1.csv", rng.normal(size=(20, len(OFFICIAL_COLUMNS))),
                       np.ones(20, int), np.r_[np.full(18, 0.9), 0.1, 0.1])
    result = run("import-features", tmp_path / "of", "--format", "openface", "--preprocessing", "official",
                 "-o", tmp_path / "f")
    assert result.exit_code == 0, result.output
    x = np.load(tmp_path / "f" / "openface" / "A1_ang_int1_ver1.npy")
    assert x.shape == (20, 31) and np.array_equal(x[-1], x[-3])  # the two last frames repeat the last good one
    help_text = plain(run("import-features", "--help").output)
    assert "mark-failed|official" in help_text


def test_aggregate_command(tmp_path):
    folder = tmp_path / "egemaps"
    folder.mkdir()
    for k, clip in enumerate(["A1_ang_int1_ver1", "A1_hap_int1_ver1"]):
        np.save(folder / f"{clip}.npy", np.full((1, 88), k, np.float32))
    result = run("aggregate", folder, "--statistics", "none", "-o", tmp_path / "egemaps.npz")
    assert result.exit_code == 0, result.output
    assert "2 clips x 88 values (none)" in result.stdout
    with np.load(tmp_path / "egemaps.npz") as data:
        assert data["X"].shape == (2, 88) and data["filenames"].tolist() == ["A1_ang_int1_ver1", "A1_hap_int1_ver1"]
    assert "seven|openface|none" in plain(run("aggregate", "--help").output)


@pytest.mark.parametrize("args, fragment", [
    (["{f}/none", "-o", "{f}/x.npz"], "no such folder"),
    (["{f}", "-o", "{f}/x.npz", "--statistics", "seven"], "no <clip>.npy files"),
    (["{f}", "-o", "{f}/x.txt"], "the output is a .npz file"),
])
def test_aggregate_user_errors(tmp_path, args, fragment):
    assert_user_error(run("aggregate", *[a.format(f=tmp_path) for a in args]), fragment)


def test_aggregate_bad_statistics_word_lists_the_choices(tmp_path):
    result = run("aggregate", tmp_path, "-o", tmp_path / "x.npz", "--statistics", "eight")
    assert result.exit_code == 2 and "'eight' is not one of 'seven', 'openface', 'none'" in plain(result.output)


def test_extracted_functionals_become_the_clip_matrix(tmp_path):
    """egemaps gives one row per clip; `aggregate --statistics none` turns the store into X/filenames."""
    import json

    from tests.support.avclips import make_clip

    (tmp_path / "clips").mkdir()
    for clip, hz in [("A1_ang_int1_ver1", 220.0), ("A1_hap_int1_ver1", 330.0)]:
        make_clip(tmp_path / "clips" / f"{clip}.mov", seconds=1.0, video=False, freq=hz)
    result = run("extract", tmp_path / "clips", "-e", "egemaps", "-o", tmp_path / "f", "--workers", "0", "--quiet")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "f" / "egemaps" / "settings.json").read_text())["config"]["level"] == "functionals"
    result = run("aggregate", tmp_path / "f" / "egemaps", "-s", "none", "-o", tmp_path / "egemaps.npz")
    assert result.exit_code == 0, result.output
    with np.load(tmp_path / "egemaps.npz") as data:
        assert data["X"].shape == (2, 88) and np.isfinite(data["X"]).all()
        assert not np.array_equal(data["X"][0], data["X"][1])
