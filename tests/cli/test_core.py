"""The ``score``, ``decode``, ``tune``, ``submit`` and ``labels`` commands: outputs, exit codes, messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from blemore.cli import app
from blemore.decoding import decode_structured, decode_thresholds, search_thresholds
from blemore.labels import EMOTIONS, LABEL_INDEX, LABEL_NAMES, VALID_LABELS, parse_clip_name
from blemore.submission import example_files, predictions_from_indices, read_predictions

runner = CliRunner()
HAP = [{"emotion": "hap", "salience": 100}]


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def assert_user_error(result, fragment: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("blemore: error: ")
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.output


@pytest.fixture
def probs_csv(tmp_path) -> tuple[Path, np.ndarray, list[str], np.ndarray]:
    """Validation-like probabilities for descriptive clip names, with a label column."""
    rng = np.random.default_rng(1)
    labels = np.arange(36).repeat(2)
    names = []
    for k, i in enumerate(labels):
        label = VALID_LABELS[i]
        if label.is_blend:
            (e1, s1), (e2, s2) = label.parts
            names.append(f"A{100 + k}_mix_{e1}_{e2}_{s1}_{s2}_ver1")
        elif label.name == "neu":
            names.append(f"A{100 + k}_neu_sit1_ver1")
        else:
            names.append(f"A{100 + k}_{label.name}_int1_ver1")
    probs = 0.6 * np.stack([VALID_LABELS[i].vector for i in labels]) + 0.4 * rng.dirichlet(np.ones(6), len(labels))
    path = tmp_path / "probs.csv"
    rows = ["filename,fold," + ",".join(EMOTIONS) + ",label"]
    rows += [f"{n},0," + ",".join(repr(float(v)) for v in p) + f",{LABEL_NAMES[i]}" for n, p, i in zip(names, probs, labels)]
    path.write_text("\n".join(rows) + "\n")
    assert [parse_clip_name(n).label.name for n in names] == [LABEL_NAMES[i] for i in labels]
    return path, probs, names, labels


# --------------------------------------------------------------------------- score


def test_score_example():
    result = run("score", "--example")
    assert result.exit_code == 0, result.stderr
    assert "presence  0.7500" in result.stdout and "12 clips scored (strict)" in result.stdout


def test_score_json_keys(tmp_path):
    sub, truth = example_files()
    result = run("score", sub, "--truth", truth, "--json")
    assert result.exit_code == 0
    out = json.loads(result.stdout)
    for key in ("acc_presence", "acc_salience", "score", "n_scored", "n_missing", "n_invalid", "per_emotion"):
        assert key in out
    assert out["n_scored"] == 12 and out["n_missing"] == 0


def test_score_strict_lenient_and_zip(tmp_path):
    truth_path = tmp_path / "truth.csv"
    truth_path.write_text("filename,label\ntest_0001,hap\ntest_0002,sad\ntest_0003,ang_hap_50_50\n")
    sub = tmp_path / "sub.zip"
    with zipfile.ZipFile(sub, "w") as zf:
        zf.writestr(
            "p.json",
            json.dumps({"predictions": {"test_0001": HAP, "test_0003": [{"emotion": "hap", "salience": 60}], "x": HAP}}),
        )
    strict = json.loads(run("score", sub, "--truth", truth_path, "--json").stdout)
    assert (strict["n_scored"], strict["n_missing"], strict["n_invalid"], strict["n_extra"]) == (3, 1, 1, 1)
    assert strict["acc_presence"] == pytest.approx(1 / 3)
    lenient = json.loads(run("score", sub, "--truth", truth_path, "--lenient", "--json").stdout)
    assert (lenient["n_scored"], lenient["acc_presence"]) == (2, 0.5)
    text = run("score", sub, "--truth", truth_path, "--breakdown")
    assert text.exit_code == 0
    assert "missing (counted wrong): test_0002" in text.stdout
    assert "invalid: test_0003: single emotion 'hap' has salience 60" in text.stdout
    assert "per salience configuration" in text.stdout


def _bad_submissions(tmp_path: Path) -> list[tuple[Path, str]]:
    cases = []

    def add(name: str, content, fragment: str) -> None:
        path = tmp_path / name
        if name.endswith(".zip"):
            with zipfile.ZipFile(path, "w") as zf:
                for member, text in content.items():
                    zf.writestr(member, text)
        else:
            path.write_text(content if isinstance(content, str) else json.dumps(content))
        cases.append((path, fragment))

    add("shape.json", [1, 2], "expected a JSON object")
    add("inner.json", {"predictions": 3}, '"predictions" must be an object')
    add("broken.json", "{", "not valid JSON")
    add("none.zip", {"a.txt": "x"}, "holds no .json file")
    add("two.zip", {"a.json": "{}", "b.json": "{}"}, "holds 2 .json files")
    add("evil.zip", {"../a.json": "{}"}, "unsafe path")
    cases.append((tmp_path / "missing.json", "no such file"))
    return cases


def test_score_bad_files(tmp_path):
    for path, fragment in _bad_submissions(tmp_path):
        assert_user_error(run("score", path), fragment)


def test_score_bad_truth_and_args(tmp_path):
    sub, truth = example_files()
    assert_user_error(run("score", sub), "carries no label in its name")
    bad_truth = tmp_path / "t.csv"
    bad_truth.write_text("name,label\n")
    assert_user_error(run("score", sub, "--truth", bad_truth), "no 'filename' column")
    assert_user_error(run("score"), "missing SUBMISSION")
    assert_user_error(run("score", sub, "--example"), "not both")


# --------------------------------------------------------------------------- decode


def test_decode_thresholds_and_structured(tmp_path, probs_csv):
    path, probs, names, _ = probs_csv
    out = tmp_path / "pred.json"
    result = run("decode", path, "--alpha", "0.3", "--beta", "0.1", "-o", out)
    assert result.exit_code == 0, result.stderr
    assert read_predictions(out) == predictions_from_indices(names, decode_thresholds(probs, 0.3, 0.1))
    result = run("decode", path, "--structured")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == predictions_from_indices(names, decode_structured(probs))
    zipped = tmp_path / "s.zip"
    assert run("decode", path, "--structured", "-o", zipped).exit_code == 0
    assert read_predictions(zipped) == predictions_from_indices(names, decode_structured(probs))


def test_decode_npz(tmp_path):
    probs = np.array([[0.1, 0, 0, 0.5, 0.4, 0], [0.9, 0, 0, 0, 0, 0.1]], dtype=np.float32)
    np.savez(tmp_path / "p.npz", probs=probs, filenames=np.array(["test_0001.mov", "test_0002.mov"]))
    result = run("decode", tmp_path / "p.npz", "--alpha", "0.3", "--beta", "0.2")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {
        "test_0001": [{"emotion": "hap", "salience": 50}, {"emotion": "sad", "salience": 50}],
        "test_0002": [{"emotion": "ang", "salience": 100}],
    }


def test_decode_bad_input(tmp_path, probs_csv):
    path = probs_csv[0]
    assert_user_error(run("decode", path), "give both --alpha A and --beta B")
    assert_user_error(run("decode", path, "--alpha", "0.3"), "give both")
    assert_user_error(run("decode", path, "--alpha", "0.3", "--beta", "0.1", "--structured"), "not both")
    assert_user_error(run("decode", path, "--structured", "-o", tmp_path / "x.txt"), "ending in .json")
    bad = tmp_path / "bad.csv"
    bad.write_text("filename,ang,disg,fea,hap,sad,neu\na,0.5,0.5,0,0,0,nan\n")
    assert_user_error(run("decode", bad, "--structured"), "row 0 (clip 'a') has NaN")
    bad.write_text("filename,ang,disg,fea,hap,sad,neu\na,0.5,0.5,0,0,0,-0.1\n")
    assert_user_error(run("decode", bad, "--structured", "-o", tmp_path / "o.json"), "has negative values")
    assert not (tmp_path / "o.json").exists()
    assert_user_error(run("decode", tmp_path / "nope.csv", "--structured"), "no such file")
    assert_user_error(run("decode", tmp_path / "p.txt", "--structured"), "expected a .csv, .parquet or .npz")


# --------------------------------------------------------------------------- tune


def test_tune_matches_library(probs_csv):
    path, probs, names, labels = probs_csv
    result = run("tune", path, "--json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    want = search_thresholds(probs, labels)
    for key in ("alpha", "beta", "acc_presence", "acc_salience", "presence_only", "salience_only"):
        assert out[key] == getattr(want, key)
    text = run("tune", path)
    assert text.exit_code == 0 and f"alpha     {want.alpha:.4f}" in text.stdout


def test_tune_truth_sources(tmp_path, probs_csv):
    path, probs, names, labels = probs_csv
    # Without a label column, truth comes from the names; with --truth from the CSV.
    plain = tmp_path / "plain.csv"
    plain.write_text("\n".join(line.rsplit(",", 1)[0] for line in path.read_text().splitlines()) + "\n")
    assert json.loads(run("tune", plain, "--json").stdout) == json.loads(run("tune", path, "--json").stdout)
    truth = tmp_path / "truth.csv"
    truth.write_text("filename,label\n" + "".join(f"{n},{LABEL_NAMES[i]}\n" for n, i in zip(names, labels)))
    assert json.loads(run("tune", plain, "--truth", truth, "--json").stdout)["alpha"] == search_thresholds(probs, labels).alpha
    truth.write_text("filename,label\n" + f"{names[0]},{LABEL_NAMES[labels[0]]}\n")
    assert_user_error(run("tune", plain, "--truth", truth), f"no label for {len(names) - 1} clip(s)")


def test_tune_anonymised_without_truth(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("filename,ang,disg,fea,hap,sad,neu\ntest_0001,1,0,0,0,0,0\n")
    assert_user_error(run("tune", path), "carries no label in its name")


# --------------------------------------------------------------------------- submit and labels


def test_submit(tmp_path):
    sub, truth = example_files()
    out = tmp_path / "submission.zip"
    result = run("submit", sub, "-o", out)
    assert result.exit_code == 0, result.stderr
    with zipfile.ZipFile(out) as zf:
        (member,) = zf.namelist()
        written = json.loads(zf.read(member))["predictions"]
    original = json.loads(sub.read_text())
    # the template's form: <clip>.mov keys, 100.0 for a single emotion; the same predictions
    assert sorted(written) == sorted(f"{clip}.mov" for clip in original)
    from blemore.submission import read_truth, score_predictions

    for clip, entries in original.items():
        got = written[f"{clip}.mov"]
        assert sorted((e["emotion"], float(e["salience"])) for e in got) == sorted(
            (e["emotion"], float(e["salience"])) for e in entries)
        assert all(isinstance(e["salience"], float) for e in got) if len(got) == 1 else True
    labels = read_truth(truth)
    assert score_predictions(written, labels).scores == score_predictions(original, labels).scores


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ({"test_0001": []}, "clip 'test_0001': empty list"),
        ({"test_0001": [{"emotion": "joy", "salience": 100}]}, "unknown emotion 'joy'"),
        ({"test_0001": [{"emotion": "hap", "salience": 50}, {"emotion": "hap", "salience": 50}]}, "appears twice"),
        ({"test_0001": [{"emotion": "hap", "salience": 50}] * 3}, "at most 2"),
        ({"test_0001": [{"emotion": "hap", "salience": 90}]}, "expected 100"),
        ({"test_0001": [{"emotion": "hap", "salience": 80}, {"emotion": "sad", "salience": 20}]}, "not 50/50, 70/30"),
        ({"test_0001": [{"emotion": "hap", "salience": "high"}]}, "not a finite number"),
        ({"test_0001": {"emotion": "hap"}}, "expected a list"),
        ({}, "no predictions"),
    ],
)
def test_submit_rejects_invalid(tmp_path, content, fragment):
    src = tmp_path / "p.json"
    src.write_text(json.dumps(content))
    out = tmp_path / "s.zip"
    assert_user_error(run("submit", src, "-o", out), fragment)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["p.json"]


def test_labels():
    result = run("labels", "--json")
    rows = json.loads(result.stdout)
    assert [r["label"] for r in rows] == list(LABEL_NAMES)
    assert rows[LABEL_INDEX["ang_hap_30_70"]]["vector"] == [0.3, 0, 0, 0.7, 0, 0]
    text = run("labels")
    assert text.exit_code == 0 and len(text.stdout.strip().splitlines()) == 37


def test_cli_entry_point_without_torch(tmp_path):
    """`blemore score` runs as a process and never imports torch or pandas."""
    sub, truth = example_files()
    code = (
        "import sys; from blemore.cli import app; "
        f"sys.argv=['blemore','score',{str(sub)!r},'--truth',{str(truth)!r},'--json']\n"
        "try:\n    app()\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "assert 'pandas' not in sys.modules, 'pandas was imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["n_scored"] == 12


def test_score_fold_selection(tmp_path):
    truth = tmp_path / "meta.csv"
    truth.write_text("filename,fold,label\ntest_0001,0,hap\ntest_0002,1,sad\n")
    sub = tmp_path / "p.json"
    sub.write_text(json.dumps({"test_0001": HAP}))
    out = json.loads(run("score", sub, "--truth", truth, "--fold", "0", "--json").stdout)
    assert (out["n_scored"], out["n_missing"], out["acc_presence"]) == (1, 0, 1.0)
    out = json.loads(run("score", sub, "--truth", truth, "--json").stdout)
    assert (out["n_scored"], out["n_missing"], out["acc_presence"]) == (2, 1, 0.5)
    assert_user_error(run("score", sub, "--fold", "0"), "--fold needs --truth")


def test_tune_decode_score_round_trip(tmp_path, probs_csv):
    """Decoding at the tuned thresholds and scoring gives back the accuracies tune reported."""
    path = probs_csv[0]
    tuned = json.loads(run("tune", path, "--json").stdout)
    out = tmp_path / "pred.zip"
    assert run("decode", path, "--alpha", repr(tuned["alpha"]), "--beta", repr(tuned["beta"]), "-o", out).exit_code == 0
    scored = json.loads(run("score", out, "--json").stdout)
    assert (scored["acc_presence"], scored["acc_salience"]) == (tuned["acc_presence"], tuned["acc_salience"])


def test_score_anonymised_names_without_truth_names_the_file(tmp_path):
    sub = tmp_path / "sub.json"
    sub.write_text(json.dumps({"test_0001": [{"emotion": "hap", "salience": 100}]}))
    res = runner.invoke(app, ["score", str(sub)])
    assert res.exit_code == 2
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1
    assert str(sub) in lines[0] and "test_0001" in lines[0] and "--truth" in lines[0]


def test_version():
    from blemore import __version__

    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"blemore {__version__}"


# --------------------------------------------------------------------------- the command line itself


def test_python_m_blemore_and_h(tmp_path):
    sub, truth = example_files()
    proc = subprocess.run([sys.executable, "-m", "blemore", "score", str(sub), "--truth", str(truth), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["n_scored"] == 12
    proc = subprocess.run([sys.executable, "-m", "blemore", "-h"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "Usage:" in proc.stdout and "score" in proc.stdout


def _commands() -> list[str]:
    from typer.main import get_command

    return sorted(get_command(app).commands)  # type: ignore[attr-defined]


def test_every_command_has_h_and_no_bool_type_in_help():
    assert {"score", "decode", "tune", "submit", "labels"} <= set(_commands())
    for args in ([], *([name] for name in _commands())):
        short, long = run(*args, "-h"), run(*args, "--help")
        assert short.exit_code == 0 and short.stdout == long.stdout, args
        assert "Usage:" in short.stdout and "-h" in short.stdout, args
        assert "<bool>" not in short.stdout, args
        assert "bool" not in " ".join(short.stdout.split()), args


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["decode", "p.csv", "--alpha", "abc"], "decode: Invalid value for '--alpha'"),
        (["score", "--nope"], "score: No such option: --nope"),
        (["nocommand"], "No such command 'nocommand'"),
        (["submit"], "submit: Missing argument"),
    ],
)
def test_command_line_mistakes_are_one_line(args, fragment):
    assert_user_error(run(*args), fragment)


def test_threads_option_is_defined_once():
    from blemore.cli import options

    assert options.THREADS.default is None and "--threads" in options.THREADS.param_decls
    assert "CPU threads for training and encoding" in options.THREADS.help


# --------------------------------------------------------------------------- inputs refused with one line


@pytest.mark.parametrize(("alpha", "beta", "fragment"), [("2", "-1", "alpha must be in [0, 1]"),
                                                         ("0.3", "-1", "beta must be in [0, 1]"),
                                                         ("0.3", "1.5", "beta must be in [0, 1]")])
def test_decode_thresholds_out_of_range(tmp_path, probs_csv, alpha, beta, fragment):
    out = tmp_path / "o.json"
    out.write_text("keep")
    assert_user_error(run("decode", probs_csv[0], "--alpha", alpha, "--beta", beta, "-o", out), fragment)
    assert out.read_text() == "keep"


def test_probabilities_that_do_not_sum_to_one(tmp_path):
    bad = tmp_path / "p.csv"
    bad.write_text("filename,ang,disg,fea,hap,sad,neu\nA1_ang_int1_ver1,1,1,1,0,0,0\n")
    assert_user_error(run("decode", bad, "--structured"), "row 0 (clip 'A1_ang_int1_ver1') sums to 3, not 1")
    assert_user_error(run("tune", bad), "sums to 3, not 1 (within 0.01)")


@pytest.mark.parametrize("suffix", [".json", ".zip"])
def test_decode_and_submit_refuse_names_score_would_refuse(tmp_path, suffix):
    probs = tmp_path / "p.csv"
    probs.write_text("filename,ang,disg,fea,hap,sad,neu\nA102_ang_int1_ver1,1,0,0,0,0,0\nA102_angry_int1,1,0,0,0,0,0\n")
    out = tmp_path / f"o{suffix}"
    assert_user_error(run("decode", probs, "--structured", "-o", out), "clip 'A102_angry_int1': clip name")
    assert not out.exists()
    preds = tmp_path / "preds.json"
    preds.write_text(json.dumps({"A102_angry_int1": HAP}))
    assert_user_error(run("submit", preds, "-o", tmp_path / "s.zip"), "clip 'A102_angry_int1': clip name")
    # the user's own clip names pass: they are scored with a metadata file
    preds.write_text(json.dumps({"clip_0001": HAP}))
    assert run("submit", preds, "-o", tmp_path / "s.zip").exit_code == 0
    truth = tmp_path / "truth.csv"
    truth.write_text("filename,label\nclip_0001,hap\n")
    assert json.loads(run("score", tmp_path / "s.zip", "--truth", truth, "--json").stdout)["acc_presence"] == 1.0


def test_lenient_score_reads_string_saliences(tmp_path):
    sub = tmp_path / "sub.json"
    sub.write_text(json.dumps({
        "A411_mix_ang_hap_30_70_ver1": [{"emotion": "hap", "salience": "70"}, {"emotion": "ang", "salience": "30"}],
        "A102_ang_int1_ver1": [{"emotion": "ang"}],
    }))
    out = json.loads(run("score", sub, "--lenient", "--json").stdout)
    assert (out["acc_presence"], out["acc_salience"], out["n_scored"]) == (1.0, 1.0, 2)
    strict = json.loads(run("score", sub, "--json").stdout)
    assert (strict["acc_presence"], strict["n_invalid"]) == (0.0, 2)


def test_a_zip_bomb_is_refused_without_reading_it(tmp_path):
    from blemore.submission import MAX_PREDICTIONS_BYTES

    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("predictions.json", "w", force_zip64=True) as fh:
            chunk = b" " * 2**20
            for _ in range(MAX_PREDICTIONS_BYTES // len(chunk) + 2):
                fh.write(chunk)
    assert bomb.stat().st_size < 2**20
    assert_user_error(run("score", bomb), "larger than 64 MiB")
    assert_user_error(run("submit", bomb, "-o", tmp_path / "s.zip"), "is this the right file?")


def test_a_zip_whose_header_lies_about_the_size(tmp_path):
    """A member that declares a small size but inflates to more is never read past it: one line."""
    liar = tmp_path / "liar.zip"
    with zipfile.ZipFile(liar, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("predictions.json", b" " * 5000 + b"{}")
    data = bytearray(liar.read_bytes())
    # patch the uncompressed size in the central directory entry to 10 bytes
    central = data.rfind(b"PK\x01\x02")
    data[central + 24:central + 28] = (10).to_bytes(4, "little")
    local = data.find(b"PK\x03\x04")
    data[local + 22:local + 26] = (10).to_bytes(4, "little")
    liar.write_bytes(bytes(data))
    with zipfile.ZipFile(liar) as zf:
        assert zf.infolist()[0].file_size == 10
    assert_user_error(run("score", liar), f"{liar}: not a readable zip file")


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o027, 0o640)])
def test_outputs_follow_the_umask(tmp_path, probs_csv, mask, mode):
    import os
    import stat

    previous = os.umask(mask)
    try:
        outputs = [tmp_path / "d.json", tmp_path / "d.zip", tmp_path / "s.zip"]
        assert run("decode", probs_csv[0], "--structured", "-o", outputs[0]).exit_code == 0
        assert run("decode", probs_csv[0], "--structured", "-o", outputs[1]).exit_code == 0
        assert run("submit", outputs[0], "-o", outputs[2]).exit_code == 0
        from blemore.submission import write_predictions, write_submission_zip  # what predict writes with

        preds = read_predictions(outputs[0])
        outputs += [write_predictions(preds, tmp_path / "p.json"), write_submission_zip(preds, tmp_path / "p.zip")]
    finally:
        os.umask(previous)
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in outputs} == {p.name: oct(mode) for p in outputs}


# --------------------------------------------------------------------------- the error handler


def test_os_errors_name_the_users_path_and_the_problem(tmp_path):
    import errno

    from blemore.cli.app import describe_os_error
    from blemore.io import temporary_name

    out = tmp_path / "sub.zip"
    cases = {
        errno.EROFS: "read-only file system", errno.ENOSPC: "no space left", errno.EDQUOT: "quota exceeded",
        errno.EACCES: "permission denied", errno.EPERM: "not permitted", errno.ENOTDIR: "not a directory",
        errno.EISDIR: "is a directory", errno.ENAMETOOLONG: "name too long", errno.ENOENT: "no such file",
        errno.EIO: "input/output error", errno.ENXIO: "no such device or address",
    }
    for code, words in cases.items():
        line = describe_os_error(OSError(code, os.strerror(code), str(temporary_name(out))))
        assert line.startswith(f"{out}: ") and words in line, line
    assert describe_os_error(OSError(errno.EXDEV, "x", "a", None, "b")).startswith("a -> b: ")
    assert describe_os_error(OSError("no errno at all")) == "no errno at all"


def test_a_broken_pipe_ends_quietly():
    import errno

    from blemore.cli.app import user_errors

    with pytest.raises(BrokenPipeError):
        with user_errors():
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")
