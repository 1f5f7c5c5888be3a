"""Importing features made elsewhere: OpenFace 2.0 CSVs and per-clip .npy folders."""

from __future__ import annotations

import numpy as np
import pytest
from blemore.errors import BlemoreError
from blemore.features.importers import import_npy, import_openface
from blemore.features.openface import OFFICIAL_COLUMNS
from blemore.features.store import read_index
from tests.support.official_openface import OFFICIAL_HEADER, official_reference, write_official_csv

OPENFACE_HEADER = (
    "frame, face_id, timestamp, confidence, success, gaze_0_x, gaze_0_y, gaze_0_z, gaze_1_x, gaze_1_y, gaze_1_z, "
    "gaze_angle_x, gaze_angle_y, pose_Tx, pose_Ty, pose_Tz, pose_Rx, pose_Ry, pose_Rz, AU01_r, AU12_r, AU01_c, AU12_c"
)


def _openface_csv(path, n=6, fail_rows=(2,)):
    lines = [OPENFACE_HEADER]
    for i in range(n):
        ok = 0 if i in fail_rows else 1
        values = [i + 1, 0, f"{i / 30:.3f}", 0.98 * ok, ok] + [0.1 * i] * 14 + [1.5, 2.5, 1, 0]
        lines.append(", ".join(str(v) for v in values))
    path.write_text("\n".join(lines) + "\n")


def test_openface_import(tmp_path):
    src = tmp_path / "of"
    src.mkdir()
    _openface_csv(src / "A102_ang_int1_ver1.csv")
    _openface_csv(src / "A102_hap_int1_ver1.csv", fail_rows=())
    (src / "test_0001.csv").write_text("frame, success, gaze_0_x\n1, 1, 0.2\n")
    out = tmp_path / "features"
    summary = import_openface(src, out=out)
    assert (summary.done, summary.failed) == (2, 1)
    x = np.load(out / "openface" / "A102_ang_int1_ver1.npy")
    assert x.shape == (6, 8 + 6 + 4)
    assert np.isnan(x[2]).all() and np.isfinite(np.delete(x, 2, axis=0)).all()
    assert x[0, -4:].tolist() == [1.5, 2.5, 1, 0]
    rows = read_index(out / "openface")
    assert float(rows["A102_ang_int1_ver1"]["fps"]) == pytest.approx(30, rel=0.05)
    assert float(rows["A102_ang_int1_ver1"]["face_found"]) == pytest.approx(5 / 6, abs=1e-4)
    assert rows["test_0001"]["status"] == "failed" and "17 OpenFace column(s) missing" in rows["test_0001"]["error"]


def test_openface_without_au_columns_is_refused(tmp_path):
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(BlemoreError, match="no AU columns"):
        import_openface(tmp_path / "x.csv", out=tmp_path / "f")


def test_npy_import_validates_and_resumes(tmp_path):
    src = tmp_path / "imagebind"
    src.mkdir()
    np.save(src / "A1_ang_int1_ver1.npy", np.ones((4, 6), np.float64))
    np.save(src / "A2_ang_int1_ver1.npy", np.ones(6))  # one vector per clip -> (1, 6)
    np.save(src / "A3_ang_int1_ver1.npy", np.ones((4, 5)))  # wrong dimension
    np.save(src / "A4_ang_int1_ver1.npy", np.ones((2, 3, 6)))  # wrong rank
    out = tmp_path / "features"
    summary = import_npy(src, out=out, name="imagebind")
    assert (summary.done, summary.failed) == (2, 2)
    assert np.load(out / "imagebind" / "A2_ang_int1_ver1.npy").shape == (1, 6)
    assert np.load(out / "imagebind" / "A1_ang_int1_ver1.npy").dtype == np.float32
    errors = {c: r["error"] for c, r in read_index(out / "imagebind").items() if r["status"] == "failed"}
    assert "dimension 5" in errors["A3_ang_int1_ver1"] and "shape" in errors["A4_ang_int1_ver1"]
    np.save(src / "A3_ang_int1_ver1.npy", np.zeros((2, 6)))
    again = import_npy(src, out=out, name="imagebind")
    assert (again.done, again.skipped, again.failed) == (1, 2, 1)


def test_official_preprocessing_equals_the_official_scripts_on_generated_csvs(tmp_path):
    import pandas as pd

    rng = np.random.default_rng(0)
    src = tmp_path / "of"
    src.mkdir()
    cases = {  # (share failed, share unsure)
        "A1_ang_int1_ver1": (0.0, 0.0), "A1_hap_int1_ver1": (0.0, 0.1), "A1_sad_int1_ver1": (0.1, 0.05),
        "A1_fea_int1_ver1": (0.0, 1.0), "A1_dis_int1_ver1": (0.05, 1.0), "A1_neu_sit1": (0.5, 0.5),
    }
    for clip, (failed, unsure) in cases.items():
        n = 40
        values = rng.normal(size=(n, len(OFFICIAL_COLUMNS)))
        success = (rng.random(n) >= failed).astype(int)
        confidence = np.where(rng.random(n) < unsure, 0.4, 0.95)
        write_official_csv(src / f"{clip}.csv", values, success, confidence)
    (src / "A1_neu_sit2.csv").write_text(", ".join(OFFICIAL_HEADER) + "\n")  # FeatureExtraction found nothing
    summary = import_openface(src, out=tmp_path / "f", preprocessing="official")
    assert (summary.done, summary.failed) == (6, 1)
    for clip in cases:
        df = pd.read_csv(src / f"{clip}.csv", skipinitialspace=True)
        ref = official_reference(df, list(OFFICIAL_COLUMNS))
        np.testing.assert_array_equal(np.load(tmp_path / "f" / "openface" / f"{clip}.npy"), ref)
    rows = read_index(tmp_path / "f" / "openface")
    error = rows["A1_neu_sit2"]["error"]
    assert "no frames (an empty OpenFace file)" in error and "\n" not in error
    assert float(rows["A1_fea_int1_ver1"]["face_found"]) == 0.0
    settings = (tmp_path / "f" / "openface" / "settings.json").read_text()
    assert '"preprocessing": "official"' in settings and '"confidence_threshold": 0.85' in settings


def test_official_preprocessing_needs_the_confidence_column(tmp_path):
    (tmp_path / "A1_ang_int1_ver1.csv").write_text(", ".join(["frame", "success", *OFFICIAL_COLUMNS]) + "\n1, 1" +
                                                  ", 0.5" * len(OFFICIAL_COLUMNS) + "\n")
    summary = import_openface(tmp_path, out=tmp_path / "f", preprocessing="official")
    assert summary.failed == 1 and "1 OpenFace column(s) missing: confidence" in summary.failures[0].reason


def test_unknown_preprocessing_is_refused(tmp_path):
    with pytest.raises(BlemoreError, match="preprocessing 'strict': expected 'mark-failed' or 'official'"):
        import_openface(tmp_path, out=tmp_path / "f", preprocessing="strict")
