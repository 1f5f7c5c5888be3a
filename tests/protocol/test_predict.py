"""`blemore predict` on damaged run folders: one line naming the file, exit 2, never another model, nothing written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from blemore.cli import app
from blemore.protocol.config import RunConfig
from blemore.protocol.run import run_benchmark
from tests.support.planted import planted


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    return planted(tmp_path_factory.mktemp("predict"), n_actors=6, n_test_actors=1, dim=5, sources=1)


@pytest.fixture(scope="module")
def run(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "run"
    return run_benchmark(RunConfig(features=data["sources"], train_metadata=data["train_metadata"],
                                   test_metadata=data["test_metadata"], models=["linear", "mlp256"], epochs=3,
                                   lr=1e-2, methods=["baseline", "structured"], out=out, progress=False,
                                   n_boot=10, n_perm=10))


def _damaged(run: Path, tmp_path: Path, damage) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    damage(copy)
    return copy


def _best_model(run: Path) -> Path:
    return run / "models" / json.loads((run / "best.json").read_text())["stem"]


def _truncate(run: Path) -> None:
    p = _best_model(run) / "pooled-unit0.npz"
    p.write_bytes(p.read_bytes()[:50])


def _not_json(run: Path) -> None:
    (_best_model(run) / "model.json").write_text("{ not json")


def _pickle(run: Path) -> None:
    np.savez(_best_model(run) / "pooled-unit0.npz", w1=np.array([{"evil": 1}], dtype=object))


def _wrong_shape(run: Path) -> None:
    p = _best_model(run) / "pooled-unit0.npz"
    with np.load(p) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["w1"] = arrays["w1"][:, :3]
    np.savez(p, **arrays)


def _no_model_json(run: Path) -> None:
    (_best_model(run) / "model.json").unlink()


def _no_best(run: Path) -> None:
    (run / "best.json").write_text(json.dumps({"stem": "baseline__nothere__linear"}))


@pytest.mark.parametrize("damage, message", [
    (_truncate, "pooled-unit0.npz: not a readable .npz"),
    (_not_json, "model.json: not valid JSON"),
    (_pickle, "pooled-unit0.npz"),
    (_wrong_shape, "the saved head's arrays do not fit together"),
    (_no_model_json, "model.json: missing from the run folder"),
    (_no_best, "names 'baseline__nothere__linear', which the run does not hold"),
])
def test_a_damaged_run_is_one_line_never_another_model(run, data, tmp_path, damage, message):
    damaged = _damaged(run, tmp_path, damage)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["predict", str(damaged), "-f", f"s0={data['sources']['s0']}", "-o", str(out)])
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("blemore: error:") and message in lines[0], res.output
    assert "Traceback" not in res.output and not out.exists()


def test_an_old_or_foreign_folder_is_not_a_run(data, tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "config.json").write_text("{}")
    res = CliRunner().invoke(app, ["predict", str(tmp_path / "old"), "-f", f"s0={data['sources']['s0']}"])
    assert res.exit_code == 2 and "not a blemore run folder" in res.output


def test_a_method_the_run_does_not_hold_names_what_it_has(run, data, tmp_path):
    res = CliRunner().invoke(app, ["predict", str(run), "-f", f"s0={data['sources']['s0']}", "--method", "ensemble",
                                   "-o", str(tmp_path / "o")])
    assert res.exit_code == 2 and "no saved 'ensemble' (it holds baseline, structured)" in res.output
    res = CliRunner().invoke(app, ["predict", str(run), "-f", f"s0={data['sources']['s0']}", "--method", "magic"])
    assert res.exit_code == 2 and "unknown method 'magic'" in res.output


def test_predict_into_the_run_folder_is_recorded(run, data, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    res = CliRunner().invoke(app, ["predict", str(copy), "-f", f"s0={data['sources']['s0']}", "--method", "structured"])
    assert res.exit_code == 0, res.output
    files = json.loads((copy / ".blemore-run.json").read_text())["files"]
    assert any(f.startswith("predict/structured__s0__") and f.endswith("/submission.zip") for f in files)
