"""The frame-level feature store (blemore.features.store)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from blemore.errors import BlemoreError
from blemore.features.store import FeatureStore, read_index, save_npy

SETTINGS = {"config": {"encoder": "enc", "dim": 3, "layer": "12", "model_id": "m/x"}}


def test_write_then_index_and_settings(tmp_path):
    folder = tmp_path / "enc"
    with FeatureStore(folder, settings=SETTINGS) as store:
        x = np.arange(12, dtype=np.float64).reshape(4, 3)
        store.write("A1_ang_int1_ver1", x, fps=50.0)
        store.fail("A2_hap_int1_ver1", "clip.mov: no audio\ntrack")
    loaded = np.load(folder / "A1_ang_int1_ver1.npy")
    assert loaded.dtype == np.float32 and np.array_equal(loaded, x.astype(np.float32))
    rows = read_index(folder)
    assert rows["A1_ang_int1_ver1"]["status"] == "done"
    assert (rows["A1_ang_int1_ver1"]["frames"], rows["A1_ang_int1_ver1"]["dim"]) == ("4", "3")
    assert rows["A1_ang_int1_ver1"]["layer"] == "12" and rows["A1_ang_int1_ver1"]["model_id"] == "m/x"
    assert rows["A2_hap_int1_ver1"]["status"] == "failed"
    assert rows["A2_hap_int1_ver1"]["error"] == "clip.mov: no audio track"
    assert json.loads((folder / "settings.json").read_text())["config"]["layer"] == "12"
    assert sorted(p.name for p in folder.iterdir()) == ["A1_ang_int1_ver1.npy", "index.csv", "settings.json"]


def test_nan_rows_are_kept(tmp_path):
    with FeatureStore(tmp_path / "f", settings=SETTINGS) as store:
        x = np.ones((3, 3))
        x[1] = np.nan
        store.write("c", x, face_found=2 / 3)
    got = np.load(tmp_path / "f" / "c.npy")
    assert np.isnan(got[1]).all() and not np.isnan(got[[0, 2]]).any()
    assert float(read_index(tmp_path / "f")["c"]["face_found"]) == pytest.approx(2 / 3, abs=1e-5)


@pytest.mark.parametrize(
    "bad, match",
    [(np.zeros((2, 3, 1)), "shape"), (np.zeros((0, 3)), "no feature frames"), (np.full((2, 3), np.inf), "infinite"),
     (np.zeros((2, 4)), "dimension 4")],
)
def test_bad_features_are_refused_and_nothing_written(tmp_path, bad, match):
    store = FeatureStore(tmp_path / "f", settings=SETTINGS)
    with pytest.raises(BlemoreError, match=match):
        store.write("c", bad, dim=3)
    assert not list((tmp_path / "f").glob("*.npy"))


def test_resume_takes_in_files_without_index_rows_and_drops_vanished(tmp_path):
    folder = tmp_path / "f"
    with FeatureStore(folder, settings=SETTINGS) as store:
        store.write("a", np.zeros((2, 3)))
        store.write("b", np.zeros((2, 3)))
    # as if killed after writing c.npy but before its index row, with a temp file left over
    save_npy(folder / "c.npy", np.zeros((5, 3), np.float32))
    (folder / ".d.npy.123.tmp").write_bytes(b"partial")
    (folder / "b.npy").unlink()
    store = FeatureStore(folder, settings=SETTINGS)
    assert store.done() == {"a", "c"}
    assert store.rows["c"]["frames"] == "5"
    assert not list(folder.glob(".*.tmp"))
    store.close()
    assert set(read_index(folder)) == {"a", "c"}


def test_other_settings_are_refused_unless_overwrite(tmp_path):
    folder = tmp_path / "f"
    with FeatureStore(folder, settings=SETTINGS) as store:
        store.write("a", np.zeros((2, 3)))
    other = {"config": {**SETTINGS["config"], "layer": "6"}}
    with pytest.raises(BlemoreError, match="other settings.*layer"):
        FeatureStore(folder, settings=other)
    store = FeatureStore(folder, settings=other, overwrite=True)
    assert store.done() == set() and not list(folder.glob("*.npy"))


def test_failed_then_done_replaces_the_row(tmp_path):
    with FeatureStore(tmp_path / "f", settings=SETTINGS) as store:
        store.fail("a", "boom")
        assert store.failed() == {"a": "boom"}
        store.write("a", np.zeros((1, 3)))
        assert store.failed() == {} and store.done() == {"a"}


@settings(max_examples=25, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(1, 20), st.integers(1, 8)),
              elements=st.floats(-1e6, 1e6, width=32) | st.just(float("nan"))))
def test_roundtrip_is_exact(tmp_path_factory, x):
    folder = tmp_path_factory.mktemp("rt") / "f"
    with FeatureStore(folder, settings=None, flush_every=0) as store:
        store.write("clip", x)
    got = np.load(folder / "clip.npy")
    assert got.shape == x.shape
    assert np.array_equal(got, x, equal_nan=True)
    assert read_index(folder)["clip"]["frames"] == str(x.shape[0])
