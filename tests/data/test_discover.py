"""Finding clips: the manifest (blemore.data.discover)."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.support.avclips import make_broken, make_clip
from blemore.data.discover import discover_clips, find_clip_files
from blemore.errors import BlemoreError


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    make_clip(root / "A102_ang_int1_ver1.mov", seconds=0.6)
    (root / "sub").mkdir()
    make_clip(root / "sub" / "A411_mix_ang_hap_30_70_ver1.MP4", seconds=0.6, audio=False)
    make_clip(root / "test_0001.mov", seconds=0.6)
    make_broken(root / "test_0002.mov")
    (root / "notes.txt").write_text("not a clip")
    return root


def test_manifest_columns_and_values(folder):
    df = discover_clips(folder)
    assert list(df["clip"]) == ["A102_ang_int1_ver1", "A411_mix_ang_hap_30_70_ver1", "test_0001", "test_0002"]
    row = df.set_index("clip").loc["A102_ang_int1_ver1"]
    assert row["actor"] == "A102" and row["partition"] == "train" and bool(row["has_audio"])
    assert row["fps"] == pytest.approx(25) and (row["width"], row["height"]) == (96, 64)
    assert row["duration"] == pytest.approx(0.6, abs=0.1)
    assert not bool(df.set_index("clip").loc["A411_mix_ang_hap_30_70_ver1", "has_audio"])
    test = df.set_index("clip").loc["test_0001"]
    assert test["partition"] == "test" and pd.isna(test["actor"])
    assert "test_0002.mov" in df.set_index("clip").loc["test_0002", "error"]
    assert df["error"].notna().sum() == 1


def test_metadata_gives_actor_and_fold(folder, tmp_path):
    meta = tmp_path / "meta.csv"
    meta.write_text(
        "filename,video_id,fold,mix,emotion_1,emotion_2,emotion_1_salience,emotion_2_salience\n"
        "A102_ang_int1_ver1,A102,3,0,ang,,100,\n"
        "test_0001,A999,,,,,,\n"
    )
    df = discover_clips(folder, metadata=meta, probe=False).set_index("clip")
    assert df.loc["A102_ang_int1_ver1", "fold"] == 3 and df.loc["A102_ang_int1_ver1", "partition"] == "train"
    assert df.loc["test_0001", "actor"] == "A999" and df.loc["test_0001", "partition"] == "test"
    assert pd.isna(df.loc["A102_ang_int1_ver1", "duration"])  # probe=False opens nothing
    with pytest.raises(BlemoreError, match="not in the metadata"):
        discover_clips(folder, metadata=meta, probe=False, strict_metadata=True)


def test_errors(tmp_path):
    with pytest.raises(BlemoreError, match="no such folder"):
        find_clip_files(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BlemoreError, match="no clip files"):
        find_clip_files(tmp_path / "empty")
    (tmp_path / "dup").mkdir()
    (tmp_path / "dup" / "x.mov").write_bytes(b"")
    (tmp_path / "dup" / "x.mp4").write_bytes(b"")
    with pytest.raises(BlemoreError, match="used by two files"):
        find_clip_files(tmp_path / "dup")
