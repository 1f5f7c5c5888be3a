"""The ``blemore extract`` and ``blemore manifest`` commands: what they write, and every bad input,
full disk and read-only disk as one line on stderr with exit code 2, nothing already written changed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from blemore.cli import app
from blemore.extraction.local import extract

from tests.support.avclips import make_clip, make_mixed_clips
from tests.support.tmpfs import TmpfsSession, needs_tmpfs

CLI = [sys.executable, "-c", "from blemore.cli import main; main()"]

_handler = sys.modules["blemore.cli.app"]  # the module (``blemore.cli.app`` is the typer app)
#: Read-only file systems and command-line mistakes become one line in the command line's error handler.
one_line_handler = pytest.mark.skipif(
    not hasattr(_handler, "describe_os_error"),
    reason="the command line's error handler does not yet turn read-only disks and usage mistakes into one line",
)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Three clips (one without audio), one that is not a video, one cut in half."""
    return make_mixed_clips(tmp_path_factory.mktemp("clips"))


@pytest.fixture(scope="module")
def eight(tmp_path_factory):
    """Eight one-second clips: their opensmile features (about 10 KB each) fill a 64 KB disk."""
    root = tmp_path_factory.mktemp("eight")
    for i in range(8):
        make_clip(root / f"A{101 + i}_hap_int1_ver1.mov", seconds=1.0, size=(32, 32), freq=200 + 40 * i)
    return root


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("blemore: error: "), text
    return lines[0]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _same_store(a: Path, b: Path) -> bool:
    """Two stores hold the same bytes (``settings.json`` apart from the time it was made)."""
    def files(folder: Path) -> dict[str, object]:
        got: dict[str, object] = dict(_files(folder))
        got["settings.json"] = {k: v for k, v in json.loads(got["settings.json"]).items() if k != "created"}
        return got

    return files(a) == files(b)


# --------------------------------------------------------------------------- what the commands write


def test_cli_extract_and_manifest(clips, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["extract", str(clips), "--encoders", "opensmile", "--out", str(tmp_path / "f"),
                                 "--quiet", "--limit", "2"])
    assert result.exit_code == 0, result.output
    assert "done 2" in result.output
    assert sorted(p.name for p in (tmp_path / "f" / "opensmile").glob("*.npy")) == [
        "A102_ang_int1_ver1.npy", "A102_mix_ang_hap_70_30_ver1.npy"]
    result = runner.invoke(app, ["manifest", str(clips), "--out", str(tmp_path / "m.csv")])
    assert result.exit_code == 0 and "5 clips" in result.output and "2 could not be read" in result.output


def test_help_lists_the_fixed_words():
    result = CliRunner().invoke(app, ["extract", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "thread|process" in result.output and "auto|fp32|bf16" in result.output


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "args, message",
    [
        (["{missing}", "--encoders", "opensmile"], "no such folder"),
        (["{clips}", "--encoders", "opensmile,bogus"], "unknown encoder 'bogus'"),
        (["{clips}", "--encoders", "wavlm-large:6-x"], "bad layer spec '6-x'"),
        (["{clips}", "--encoders", "facemesh:3"], "no model id or layers"),
        (["{clips}", "--encoders", "opensmile", "--device", "cuda"], "--device cuda"),
    ],
)
def test_cli_bad_input_one_line_exit_2_nothing_written(clips, tmp_path, args, message):
    if "cuda" in args and __import__("torch").cuda.is_available():
        pytest.skip("a CUDA device is present")
    out = tmp_path / "out"
    args = [a.format(missing=tmp_path / "missing", clips=clips) for a in args]
    proc = subprocess.run(CLI + ["extract", *args, "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert message in _one_line(proc.stderr), proc.stderr
    assert not out.exists()


def _bad_inputs(root: Path) -> dict[str, Path]:
    """Folders and files a user might point the commands at by mistake."""
    (root / "empty").mkdir()
    (root / "twice").mkdir()
    make_clip(root / "twice" / "A101_hap_int1_ver1.mov", seconds=0.4)
    make_clip(root / "twice" / "A101_hap_int1_ver1.mp4", seconds=0.4)
    (root / "a-file.txt").write_text("not a folder\n")
    (root / "not-official.csv").write_text("name,label\nA102_ang_int1_ver1,ang\n")
    (root / "a-folder").mkdir()
    return {"empty": root / "empty", "twice": root / "twice", "file": root / "a-file.txt",
            "csv": root / "not-official.csv", "folder": root / "a-folder"}


EXTRACT_MISTAKES = [
    (["{clips}", "-e", "opensmile", "-o", "{file}"], "a-file.txt: exists and is not a folder"),
    (["{empty}", "-e", "opensmile", "-o", "{out}"], "empty: no clip files found"),
    (["{twice}", "-e", "opensmile", "-o", "{out}"], "clip id 'A101_hap_int1_ver1' is used by two files"),
    (["{clips}", "-e", "opensmile", "-o", "{out}", "--metadata", "{missing}"], "missing: no such file"),
    (["{clips}", "-e", "opensmile", "-o", "{out}", "--metadata", "{csv}"], "no 'filename' column"),
    (["{clips}", "-e", ",", "-o", "{out}"], "no encoders given"),
    (["{clips}", "-e", "opensmile,opensmile", "-o", "{out}"], "encoder 'opensmile' is named twice"),
]
MANIFEST_MISTAKES = [
    (["{missing}"], "missing: no such folder"),
    (["{empty}"], "empty: no clip files found"),
    (["{twice}", "-o", "{out}"], "clip id 'A101_hap_int1_ver1' is used by two files"),
    (["{clips}", "-o", "{missing}/m.csv"], "missing/m.csv: no such file or directory"),
    (["{clips}", "-o", "{folder}"], "a-folder: is a directory, expected a file"),
    (["{clips}", "--metadata", "{missing}"], "missing: no such file"),
    (["{clips}", "--metadata", "{csv}", "-o", "{out}"], "no 'filename' column"),
]


@pytest.mark.parametrize("command, args, message",
                         [("extract", *m) for m in EXTRACT_MISTAKES] + [("manifest", *m) for m in MANIFEST_MISTAKES],
                         ids=lambda v: v if isinstance(v, str) and not v.startswith("{") else None)
def test_a_mistake_is_one_line_exit_2_and_writes_nothing(clips, tmp_path, command, args, message):
    paths = {k: str(v) for k, v in _bad_inputs(tmp_path).items()}
    paths.update(clips=str(clips), out=str(tmp_path / "out"), missing=str(tmp_path / "missing"))
    before = _files(tmp_path)
    result = CliRunner().invoke(app, [command, *[a.format(**paths) for a in args]])
    assert result.exit_code == 2, result.output
    assert message in _one_line(result.output)
    assert _files(tmp_path) == before and not (tmp_path / "out").exists()


def test_a_store_made_with_other_settings_is_refused_and_kept(clips, tmp_path):
    out = tmp_path / "f"
    extract(clips, encoders=["opensmile"], out=out, progress=False, workers=0, limit=2)
    settings = out / "opensmile" / "settings.json"
    other = json.loads(settings.read_text())
    other["config"]["columns"] = other["config"]["columns"][:3]
    settings.write_text(json.dumps(other))
    before = _files(out)
    result = CliRunner().invoke(app, ["extract", str(clips), "-e", "opensmile", "-o", str(out), "-q"])
    assert result.exit_code == 2
    assert "holds features made with other settings (differing: columns)" in _one_line(result.output)
    assert _files(out) == before


@one_line_handler
@pytest.mark.parametrize(
    "args, option",
    [(["--pool", "fork"], "--pool"), (["--precision", "fp16"], "--precision"), (["--batch-size", "0"], "--batch-size"),
     (["--workers", "-1"], "--workers"), (["--limit", "-1"], "--limit"), (["--bogus"], "--bogus")],
)
def test_a_command_line_mistake_is_one_line_exit_2(clips, tmp_path, args, option):
    proc = subprocess.run(CLI + ["extract", str(clips), "-o", str(tmp_path / "f"), *args], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert option in _one_line(proc.stderr)
    assert not (tmp_path / "f").exists()


@pytest.mark.parametrize("args", [["--encoders", "facemesh"], ["--encoders", "clip", "--face-crop"]])
def test_without_mediapipe_the_face_encoders_say_how_to_install_it(clips, tmp_path, monkeypatch, args):
    from blemore.encoders import hf

    monkeypatch.setitem(sys.modules, "mediapipe", None)  # import mediapipe -> ImportError
    monkeypatch.setattr(hf, "load_pretrained", lambda *a, **k: pytest.fail("checked before loading a model"))
    result = CliRunner().invoke(app, ["extract", str(clips), "--out", str(tmp_path / "f"), "--quiet", *args])
    assert result.exit_code == 2, result.output
    assert "needs MediaPipe: pip install 'blemore[face]'" in _one_line(result.output)
    assert not (tmp_path / "f").exists()


# --------------------------------------------------------------------------- full and read-only disks


@needs_tmpfs
def test_extract_on_a_full_disk_is_one_line_keeps_the_store_and_resumes(eight, tmp_path):
    extract(eight, encoders=["opensmile"], out=tmp_path / "ref", progress=False, workers=0)
    session = TmpfsSession(tmp_path, size="64k")
    out = session.mount / "f"
    args = ["extract", eight, "-e", "opensmile", "-o", out, "-q", "--workers", "0"]
    first = session.blemore(*args, "--limit", "2")
    session.snapshot("f", "before")
    full = session.blemore(*args)
    session.snapshot("f", "full")
    session.remount("size=1m")
    resumed = session.blemore(*args)
    session.snapshot("f", "resumed")
    results = session.run()

    assert results[first].returncode == 0, results[first].stderr
    assert results[full].returncode == 2
    line = _one_line(results[full].stderr)
    assert line.startswith(f"blemore: error: {out / 'opensmile'}/A10") and line.endswith(
        ".npy: no space left on the device: free some space, then run the command again"), line
    before, after = _files(session.saved / "before"), _files(session.saved / "full")
    assert {k: after[k] for k in before if k != "opensmile/index.csv"} == {
        k: v for k, v in before.items() if k != "opensmile/index.csv"}
    assert not [k for k in after if Path(k).name.startswith(".")]  # no temporary file left
    assert results[resumed].returncode == 0 and "failed 0" in results[resumed].stdout
    assert _same_store(session.saved / "resumed" / "opensmile", tmp_path / "ref" / "opensmile")


@needs_tmpfs
def test_manifest_on_a_full_disk_is_one_line_and_keeps_the_old_manifest(clips, tmp_path):
    session = TmpfsSession(tmp_path, size="64k")
    target = session.mount / "m.csv"
    first = session.blemore("manifest", clips, "-o", target)
    session.fill()
    full = session.blemore("manifest", clips, "-o", target)
    session.snapshot("m.csv", "m.csv")
    results = session.run()
    assert results[first].returncode == 0
    assert results[full].returncode == 2
    assert _one_line(results[full].stderr) == (f"blemore: error: {target}: no space left on the device: "
                                               "free some space, then run the command again")
    assert "A102_ang_int1_ver1" in (session.saved / "m.csv").read_text()  # the old manifest, whole


@needs_tmpfs
@one_line_handler
def test_a_read_only_disk_is_one_line_and_nothing_changes(eight, tmp_path):
    session = TmpfsSession(tmp_path, size="1m")
    out = session.mount / "f"
    args = ["extract", eight, "-e", "opensmile", "-o", out, "-q", "--workers", "0"]
    session.blemore(*args, "--limit", "2")
    session.blemore("manifest", eight, "-o", session.mount / "m.csv")
    session.snapshot(".", "before")
    session.remount("ro")
    runs = {
        "nothing to do": session.blemore(*args, "--limit", "2"),
        "more clips": session.blemore(*args),
        "another encoder": session.blemore(*args[:3], "opensmile,facemesh", *args[4:]),
        "overwrite": session.blemore(*args, "--overwrite"),
        "manifest": session.blemore("manifest", eight, "-o", session.mount / "m.csv"),
        "new manifest": session.blemore("manifest", eight, "-o", session.mount / "new.csv"),
    }
    session.snapshot(".", "after")
    results = session.run()
    ro = "read-only file system"
    idle = results[runs["nothing to do"]]
    assert idle.returncode == 0 and "done 0, skipped 2" in idle.stdout, idle.stderr
    expected = {
        "more clips": f"{out / 'opensmile' / 'A103_hap_int1_ver1.npy'}: {ro}",
        "another encoder": f"{out / 'facemesh'}: {ro}",
        "overwrite": f"{out / 'opensmile' / 'A101_hap_int1_ver1.npy'}: {ro}",
        "manifest": f"{session.mount / 'm.csv'}: {ro}",
        "new manifest": f"{session.mount / 'new.csv'}: {ro}",
    }
    for name, start in expected.items():
        result = results[runs[name]]
        assert result.returncode == 2, (name, result.stderr)
        assert _one_line(result.stderr).startswith(f"blemore: error: {start}"), (name, result.stderr)
    assert _files(session.saved / "after") == _files(session.saved / "before")
