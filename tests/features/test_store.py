"""The frame-level feature store (blemore.features.store)."""

from __future__ import annotations

import errno
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


def _filled(folder, clips=("a", "b", "c")):
    with FeatureStore(folder, settings=SETTINGS) as store:
        for k, clip in enumerate(clips):
            store.write(clip, np.full((k + 2, 3), k, np.float32), fps=50.0)
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_reopening_with_the_same_settings_writes_nothing(tmp_path, monkeypatch):
    from blemore.features import store as store_module

    folder = tmp_path / "f"
    before = _filled(folder)
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    later = {**SETTINGS, "created": "another time"}  # only the time differs

    def read_only(path, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(store_module, "write_bytes", read_only)
    with FeatureStore(folder, settings=later) as store:  # a resumed run with nothing to do
        assert store.done() == {"a", "b", "c"} and store.adopted == set()
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps


def test_a_store_on_a_read_only_disk_names_the_users_file(tmp_path, monkeypatch):
    import os

    folder = tmp_path / "f"
    before = _filled(folder)
    store = FeatureStore(folder, settings=SETTINGS)

    def read_only(path, *args, **kwargs):  # what os.open says on a read-only file system
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(OSError) as info:
        store.write("d", np.zeros((2, 3)))
    monkeypatch.undo()
    assert info.value.errno == errno.EROFS and info.value.filename == str(folder / "d.npy")  # not a temporary name
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_leaving_on_an_error_keeps_that_error_when_the_index_cannot_be_written(tmp_path, monkeypatch):
    from blemore.features import store as store_module

    def full(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    folder = tmp_path / "f"
    before = _filled(folder)
    with pytest.raises(RuntimeError, match="the first problem"):
        with FeatureStore(folder, settings=SETTINGS) as store:
            store.fail("d", "cannot decode")
            monkeypatch.setattr(store_module, "write_bytes", full)
            raise RuntimeError("the first problem")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    with pytest.raises(OSError, match="No space"):  # without an error in flight the index error is raised
        with FeatureStore(folder, settings=SETTINGS) as store:
            store.fail("d", "cannot decode")


@pytest.mark.parametrize(
    "damage",
    [
        lambda f: (f / "index.csv").write_bytes(b"\x00\x01garbage\xff\n"),
        lambda f: (f / "index.csv").write_bytes((f / "index.csv").read_bytes()[:100]),
        lambda f: (f / "index.csv").write_text("name,state\na,done\n"),
        lambda f: (f / "index.csv").write_text(""),
        lambda f: (f / "index.csv").unlink(),
    ],
    ids=["binary", "cut short", "no clip column", "empty", "missing"],
)
def test_a_damaged_index_is_rebuilt_from_the_files(tmp_path, damage):
    folder = tmp_path / "f"
    before = _filled(folder)
    index = read_index(folder)
    damage(folder)
    with FeatureStore(folder, settings=SETTINGS) as store:
        assert store.done() == {"a", "b", "c"}
        assert {c: (r["frames"], r["dim"]) for c, r in store.rows.items()} == {
            c: (r["frames"], r["dim"]) for c, r in index.items()}
    assert set(read_index(folder)) == {"a", "b", "c"}
    assert {k: v for k, v in before.items() if k != "index.csv"} == {
        p.name: p.read_bytes() for p in folder.iterdir() if p.name != "index.csv"}


@pytest.mark.parametrize(
    "damage",
    [lambda p: p.write_bytes(b"not an array"), lambda p: p.write_bytes(p.read_bytes()[:-5]),
     lambda p: np.save(p, np.zeros(4, np.float32))],
    ids=["not npy", "cut short", "1-D"],
)
def test_a_damaged_feature_file_is_computed_again(tmp_path, damage):
    folder = tmp_path / "f"
    _filled(folder)
    damage(folder / "b.npy")
    with FeatureStore(folder, settings=SETTINGS) as store:
        assert store.done() == {"a", "c"}


def test_read_index_names_a_file_that_is_not_an_index(tmp_path):
    (tmp_path / "index.csv").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(BlemoreError, match=r"index.csv: not a readable feature index"):
        read_index(tmp_path)
    (tmp_path / "index.csv").write_text("name\nx\n")
    with pytest.raises(BlemoreError, match=r"index.csv: not a feature index \(no 'clip' column\)"):
        read_index(tmp_path / "index.csv")
