"""Importing features made elsewhere: OpenFace 2.0 CSVs and per-clip .npy folders."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from blemore.cli import app
from blemore.features.importers import import_npy, import_openface
from blemore.errors import BlemoreError
from blemore.features.store import read_index

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


def test_cli_import_errors(tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["import-features", str(tmp_path), "--format", "npy", "--out", str(tmp_path / "f")])
    assert r.exit_code == 2 and "--name" in r.output
    r = runner.invoke(app, ["import-features", str(tmp_path), "--format", "csv", "--out", str(tmp_path / "f")])
    assert r.exit_code == 2 and "expected 'openface' or 'npy'" in r.output
    r = runner.invoke(app, ["import-features", str(tmp_path / "nope"), "--format", "npy", "--name", "x",
                            "--out", str(tmp_path / "f")])
    assert r.exit_code == 2 and "no such folder" in r.output
