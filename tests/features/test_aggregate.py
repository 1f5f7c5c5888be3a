"""Clip-level statistic sets, windows, a folder into a clip-level .npz; loading and fusion of feature sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from blemore.errors import BlemoreError
from blemore.features.aggregate import (
    STATISTICS,
    aggregate,
    aggregate_folder,
    aggregate_openface,
    aggregate_stats,
    stat_names,
    statistic_names,
    windows,
)
from blemore.features.loading import fuse, load_feature_set, load_source, parse_feature_specs, parse_set_names


def _reference_stats(x: np.ndarray) -> np.ndarray:
    """Independent plain implementation: per dimension, skip all-NaN rows, numpy statistics."""
    keep = [r for r in x if not np.isnan(r).all()]
    x = np.array(keep)
    out = []
    for stat in STATISTICS:
        for d in range(x.shape[1]):
            col = x[:, d]
            if stat == "mean":
                out.append(col.mean())
            elif stat == "std":
                out.append(np.sqrt(((col - col.mean()) ** 2).mean()))
            else:
                out.append(np.percentile(col, int(stat[1:])))
    return np.array(out)


@settings(max_examples=40, deadline=None)
@given(
    x=hnp.arrays(np.float64, st.tuples(st.integers(1, 12), st.integers(1, 4)), elements=st.floats(-100, 100)),
    nan_rows=st.lists(st.integers(0, 11), max_size=4),
)
def test_stats_match_reference(x, nan_rows):
    x = x.copy()
    for r in nan_rows:
        if r < len(x) - 1:  # keep at least the last row valid
            x[r] = np.nan
    got = aggregate_stats(x)
    assert got.dtype == np.float32 and got.shape == (7 * x.shape[1],)
    np.testing.assert_allclose(got, _reference_stats(x), rtol=1e-5, atol=1e-4)


def test_layout_is_statistic_major():
    x = np.array([[0.0, 10.0], [2.0, 30.0]])
    got = aggregate_stats(x)
    assert stat_names(2)[:4] == ["mean_0", "mean_1", "std_0", "std_1"]
    np.testing.assert_allclose(got[:4], [1.0, 20.0, 1.0, 10.0])


def test_all_nan_clip_fails_clearly():
    with pytest.raises(BlemoreError, match="clipX: every frame is NaN"):
        aggregate_stats(np.full((5, 3), np.nan), clip="clipX")


@pytest.mark.parametrize("statistics", ["seven", "openface", "none"])
def test_a_clip_without_frames_says_so(statistics):
    with pytest.raises(BlemoreError, match=r"^clipX: has no frames \(an empty feature file\)"):
        aggregate(np.zeros((0, 3)), statistics=statistics, clip="clipX")


@settings(max_examples=60, deadline=None)
@given(x=hnp.arrays(np.float64, st.tuples(st.integers(1, 15), st.integers(1, 4)), elements=st.floats(-100, 100)))
def test_openface_statistics_match_the_official_aggregation(x):
    """aggregate_data.py: pandas mean and quantile(0.2 / 0.5 / 0.8), IQR = q80 - q20, statistic-major."""
    import pandas as pd

    df = pd.DataFrame(x)
    q20, q50, q80 = df.quantile(0.2), df.quantile(0.5), df.quantile(0.8)
    ref = np.concatenate([df.mean(), q20, q50, q80, q80 - q20])
    got = aggregate_openface(x)
    assert got.dtype == np.float32 and got.shape == (5 * x.shape[1],)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(aggregate(x, statistics="openface"), got)


def test_none_is_the_one_row_of_a_per_clip_store():
    row = np.arange(5, dtype=np.float64)
    np.testing.assert_array_equal(aggregate(row[None], statistics="none"), row.astype(np.float32))
    np.testing.assert_array_equal(aggregate(row, statistics="none"), row.astype(np.float32))
    with pytest.raises(BlemoreError, match="clipX: 3 rows; --statistics none is for stores with one row per clip"):
        aggregate(np.ones((3, 5)), statistics="none", clip="clipX")
    assert statistic_names("openface") == ("mean", "p20", "p50", "p80", "iqr") and statistic_names("none") == ()


def test_aggregate_folder_writes_the_clip_matrix_the_protocol_reads(tmp_path):
    from blemore.features.loading import load_source

    folder = tmp_path / "hubert"
    folder.mkdir()
    rng = np.random.default_rng(0)
    clips = ["A1_ang_int1_ver1", "A1_hap_int1_ver1", "A2_sad_int1_ver1"]
    for c in clips:
        np.save(folder / f"{c}.npy", rng.normal(size=(7, 3)).astype(np.float32))
    np.save(folder / "A3_neu_sit1.npy", np.full((4, 3), np.nan, np.float32))  # no face anywhere
    np.save(folder / "A3_neu_sit2.npy", np.zeros((0, 3), np.float32))
    result = aggregate_folder(folder, out=tmp_path / "hubert.npz", statistics="seven")
    assert (result.clips, result.dim) == (3, 21)
    assert set(result.left_out) == {"A3_neu_sit1", "A3_neu_sit2"} and "has no frames" in result.left_out["A3_neu_sit2"]
    assert "2 clip(s) left out" in result.format()
    with np.load(tmp_path / "hubert.npz", allow_pickle=False) as data:
        assert data["filenames"].tolist() == clips and data["X"].dtype == np.float32
        np.testing.assert_array_equal(data["X"], load_source(folder, clips).X)  # what the protocol computes
    openface = aggregate_folder(folder, out=tmp_path / "of.npz", statistics="openface")
    assert openface.dim == 15


@pytest.mark.parametrize("setup, out, match", [
    ("dims", "x.npz", "clip 'b' has 4 dims but 'a' has 3"),
    ("empty", "x.npz", "no <clip>.npy files"),
    ("nan", "x.npz", "no clip could be aggregated"),
    ("ok", "x.csv", "the output is a .npz file"),
])
def test_aggregate_folder_errors(tmp_path, setup, out, match):
    folder = tmp_path / "f"
    folder.mkdir()
    if setup in ("dims", "ok"):
        np.save(folder / "a.npy", np.ones((2, 3)))
    if setup == "dims":
        np.save(folder / "b.npy", np.ones((2, 4)))
    if setup == "nan":
        np.save(folder / "a.npy", np.full((2, 3), np.nan))
    with pytest.raises(BlemoreError, match=match):
        aggregate_folder(folder, out=tmp_path / out)
    assert not (tmp_path / out).exists()


def test_windows_means_and_partial_last():
    x = np.arange(40, dtype=float).reshape(20, 2)
    w = windows(x, size=16)
    np.testing.assert_allclose(w, [x[:16].mean(0), x[16:].mean(0)])
    assert windows(x[:5], size=16).shape == (1, 2)


def test_windows_skip_nan_frames():
    x = np.arange(6, dtype=float).reshape(6, 1)
    x[1] = np.nan
    np.testing.assert_allclose(windows(x, size=2), [[1.0], [3.5], [5.0]])


def _npz(path: Path, X, names):
    np.savez(path, X=np.asarray(X, dtype=np.float32), filenames=np.array(names))
    return path


def test_npz_missing_clips_listed_and_counted(tmp_path):
    p = _npz(tmp_path / "f.npz", np.zeros((1, 3)), ["c0"])
    clips = ["c0"] + [f"m{i}" for i in range(8)]
    with pytest.raises(BlemoreError, match=r"no features for 8 of 9 clip\(s\).*m0, m1, m2, m3, m4 and 3 more"):
        load_source(p, clips, name="vid")


def test_npz_nan_reported(tmp_path):
    p = _npz(tmp_path / "f.npz", [[0.0, np.nan], [1.0, 2.0]], ["c0", "c1"])
    with pytest.raises(BlemoreError, match=r"NaN or Inf .* 1 clip\(s\): c0"):
        load_source(p, ["c0", "c1"])


def test_folder_dims_differ(tmp_path):
    np.save(tmp_path / "c0.npy", np.zeros((4, 3), np.float32))
    np.save(tmp_path / "c1.npy", np.zeros((4, 5), np.float32))
    with pytest.raises(BlemoreError, match="clip 'c1' has 5 dims but 'c0' has 3"):
        load_source(tmp_path, ["c0", "c1"], name="enc")


def test_folder_stats_and_windows(tmp_path):
    rng = np.random.default_rng(0)
    frames = {c: rng.normal(size=(t, 3)).astype(np.float32) for c, t in (("c0", 20), ("c1", 40))}
    for c, f in frames.items():
        np.save(tmp_path / f"{c}.npy", f)
    stats = load_source(tmp_path, ["c1", "c0"])
    assert stats.X.shape == (2, 21) and stats.row_clip.tolist() == [0, 1]
    np.testing.assert_allclose(stats.X[0], aggregate_stats(frames["c1"]))
    win = load_source(tmp_path, ["c0", "c1"], representation="windows", window=16)
    assert win.row_clip.tolist() == [0, 0, 1, 1, 1]


def test_fusion_concatenates(tmp_path):
    a = _npz(tmp_path / "a.npz", [[1, 2], [3, 4]], ["c0", "c1"])
    b = _npz(tmp_path / "b.npz", [[5], [6]], ["c1", "c0"])
    srcs = parse_feature_specs([f"a={a}", f"b={b}"])
    fused = load_feature_set("a+b", srcs, ["c0", "c1"])
    np.testing.assert_allclose(fused.X, [[1, 2, 6], [3, 4, 5]])


def test_fused_windows_resampled_to_fewer(tmp_path):
    from blemore.features.loading import FeatureRows

    a = FeatureRows(np.arange(5, dtype=np.float32)[:, None], np.array([0, 0, 0, 1, 1]), ["x", "y"])
    b = FeatureRows(np.arange(10, 14, dtype=np.float32)[:, None], np.array([0, 0, 1, 1]), ["x", "y"])
    f = fuse([a, b])
    assert f.row_clip.tolist() == [0, 0, 1, 1]
    np.testing.assert_allclose(f.X, [[0, 10], [2, 11], [3, 12], [4, 13]])


def test_spec_errors(tmp_path):
    with pytest.raises(BlemoreError, match="expected NAME=PATH"):
        parse_feature_specs(["novalue"])
    with pytest.raises(BlemoreError, match="no such file"):
        parse_feature_specs([f"a={tmp_path / 'nope'}"])
    with pytest.raises(BlemoreError, match="unknown feature name"):
        parse_set_names(["a+zz"], {"a": tmp_path})
