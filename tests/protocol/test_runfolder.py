"""The run folder: stage, publish, replace only runs the tool wrote, clean after killed runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from blemore.errors import BlemoreError
from blemore.protocol.runfolder import MARKER, STAGING_MARKER, RunFolder, read_marker, swap_folders


def _write_run(out: Path, text: str = "a", *, overwrite: bool = False) -> Path:
    with RunFolder.create(out, overwrite=overwrite) as run:
        run.write_text("results.csv", text)
        run.write_json("config.json", {"text": text})
        run.save_npz("models/x/unit.npz", w=__import__("numpy").ones(3))
    return out


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_new_run_is_published_with_its_marker(tmp_path):
    out = _write_run(tmp_path / "run")
    marker = read_marker(out)
    assert marker["files"] == ["config.json", "models/x/unit.npz", "results.csv"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".run.staging")]


def test_an_existing_run_needs_overwrite_and_is_then_replaced(tmp_path):
    out = _write_run(tmp_path / "run", "a")
    before = _snapshot(out)
    with pytest.raises(BlemoreError, match="pass --overwrite to replace it"):
        _write_run(out, "b")
    assert _snapshot(out) == before
    _write_run(out, "b", overwrite=True)
    assert (out / "results.csv").read_text() == "b"


def test_files_the_tool_did_not_write_are_never_deleted(tmp_path):
    out = _write_run(tmp_path / "run")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(BlemoreError, match=r"1 file\(s\) blemore did not write \(e.g. 'notes.txt'\)"):
        _write_run(out, "b", overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("content", ["config.json", "sources.py"])
def test_a_foreign_folder_is_refused_even_with_a_config_json(tmp_path, content):
    out = tmp_path / "project"
    out.mkdir()
    (out / content).write_text("{}")
    with pytest.raises(BlemoreError, match="is not a blemore run; choose another --out"):
        _write_run(out, overwrite=True)
    assert (out / content).read_text() == "{}"


def test_an_empty_folder_and_a_file(tmp_path):
    (tmp_path / "empty").mkdir()
    _write_run(tmp_path / "empty")
    assert read_marker(tmp_path / "empty") is not None
    (tmp_path / "file").write_text("x")
    with pytest.raises(BlemoreError, match="exists and is not a folder"):
        _write_run(tmp_path / "file")


def test_a_failed_run_leaves_the_earlier_run_and_no_staging(tmp_path):
    out = _write_run(tmp_path / "run", "a")
    before = _snapshot(out)
    with pytest.raises(RuntimeError):
        with RunFolder.create(out, overwrite=True) as run:
            run.write_text("results.csv", "half")
            raise RuntimeError("training failed")
    assert _snapshot(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_added_files_are_recorded_so_overwrite_accepts_them(tmp_path):
    out = _write_run(tmp_path / "run")
    RunFolder.open(out).add("report.html", lambda p: p.write_text("<html/>"))
    assert "report.html" in read_marker(out)["files"]
    _write_run(out, "b", overwrite=True)
    assert not (out / "report.html").exists()


def test_open_refuses_what_is_not_a_run(tmp_path):
    with pytest.raises(BlemoreError, match="no such run folder"):
        RunFolder.open(tmp_path / "nope")
    (tmp_path / "old").mkdir()
    with pytest.raises(BlemoreError, match=f"not a blemore run folder \\(no {MARKER}\\)"):
        RunFolder.open(tmp_path / "old")


def test_damaged_files_are_one_line_errors(tmp_path):
    out = _write_run(tmp_path / "run")
    (out / "config.json").write_text("{not json")
    (out / "models" / "x" / "unit.npz").write_bytes(b"PK\x03\x04truncated")
    run = RunFolder.open(out)
    with pytest.raises(BlemoreError, match="config.json: not valid JSON"):
        run.read_json("config.json")
    with pytest.raises(BlemoreError, match="unit.npz: not a readable .npz"):
        run.load_npz("models/x/unit.npz")
    with pytest.raises(BlemoreError, match="missing from the run folder"):
        run.read_json("best.json")


def test_staging_left_by_a_killed_run_is_removed_by_the_next_run(tmp_path):
    out = tmp_path / "run"
    script = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from blemore.protocol.runfolder import RunFolder
        with RunFolder.create(Path({str(out)!r})) as run:
            run.write_text("results.csv", "half")
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    left = [p for p in tmp_path.iterdir() if p.name.startswith(".run.staging")]
    assert len(left) == 1 and (left[0] / STAGING_MARKER).exists()
    assert not out.exists()
    # a staging folder of a live process, and a folder that is not ours, are kept
    live = tmp_path / ".run.staging-live"
    live.mkdir()
    (live / STAGING_MARKER).write_text(json.dumps({"host": os.uname().nodename, "pid": os.getpid()}))
    foreign = tmp_path / ".run.staging-foreign"
    foreign.mkdir()
    _write_run(out)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [".run.staging-foreign", ".run.staging-live", "run"]


def test_swapping_two_folders_is_atomic_where_the_system_allows(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("a")
    (b / "x").write_text("b")
    if swap_folders(a, b):
        assert (a / "x").read_text() == "b" and (b / "x").read_text() == "a"
    else:  # pragma: no cover - kernels without renameat2(RENAME_EXCHANGE)
        assert (a / "x").read_text() == "a"


def test_replacing_a_run_never_leaves_a_moment_without_it(tmp_path):
    """A reader polling the run folder while it is replaced many times always finds a complete run."""
    out = _write_run(tmp_path / "run", "0")
    code = textwrap.dedent(f"""
        import json, sys, time
        from pathlib import Path
        out = Path({str(out)!r}); missing = 0; end = time.time() + 4
        while time.time() < end:
            try:
                json.loads((out / ".blemore-run.json").read_text())
            except (FileNotFoundError, ValueError):
                missing += 1
            if Path({str(tmp_path / 'done')!r}).exists():
                break
        print(missing)
    """)
    reader = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    for i in range(1, 30):
        _write_run(out, str(i), overwrite=True)
    (tmp_path / "done").write_text("")
    assert reader.communicate(timeout=30)[0].strip() == "0"
    assert (out / "results.csv").read_text() == "29"
