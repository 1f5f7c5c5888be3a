"""The hostile battery: every command under bad input, broken files and failing file systems.

Each case checks the promise of :mod:`blemore.cli.app`: exit code 2, exactly one line on
stderr naming the user's file or clip, no traceback, and every file that existed before
the command byte-identical afterwards (:mod:`tests.support.hostile`). Generated inputs
(hypothesis) may also be good: then the command succeeds; never a traceback.

``BLEMORE_ROBUSTNESS_DOC=docs/robustness.md python -m pytest tests/cli/test_hostile.py -p no:xdist``
rewrites the table of inputs tried per command in that file (the last test, when all passed).
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blemore.labels import EMOTIONS, LABEL_NAMES, VALID_LABELS
from blemore.submission import example_files
from tests.support.hostile import (
    COUNTS,
    WRITE_FAILURES,
    FailingWrites,
    expect_clean,
    expect_error,
    invoke,
    snapshot,
    check_unchanged,
    tmpfs_available,
    unshare_prefix,
    write_counts,
)
from tests.support.planted import planted

HAP = [{"emotion": "hap", "salience": 100}]
GENERATED = settings(max_examples=60, deadline=None, derandomize=True,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


# --------------------------------------------------------------------------- a small world of good inputs


def _name(label_index: int, actor: int) -> str:
    label = VALID_LABELS[label_index]
    if label.is_blend:
        (e1, s1), (e2, s2) = label.parts
        return f"A{actor}_mix_{e1}_{e2}_{s1}_{s2}_ver1"
    e = label.parts[0][0]
    return f"A{actor}_{e}_{'sit' if e == 'neu' else 'int'}1_ver1"


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    """Good files every case starts from (never modified by a case)."""
    root = tmp_path_factory.mktemp("world")
    names = [_name(i, 100 + i) for i in range(36)]
    rng = np.random.default_rng(0)
    probs = 0.7 * np.stack([VALID_LABELS[i].vector for i in range(36)]) + 0.3 * rng.dirichlet(np.ones(6), 36)
    table = pd.DataFrame(probs, columns=list(EMOTIONS))
    table.insert(0, "filename", names)
    table["label"] = list(LABEL_NAMES)
    table.to_csv(root / "probs.csv", index=False)
    preds = {n: VALID_LABELS[i].as_prediction() for i, n in enumerate(names)}
    (root / "preds.json").write_text(json.dumps(preds))
    sub, truth = example_files()
    (root / "planted").mkdir()
    data = planted(root / "planted", n_actors=6, n_test_actors=2, dim=4, seed=1)
    return {"root": root, "names": names, "probs": root / "probs.csv", "preds": root / "preds.json",
            "example": sub, "example_truth": truth, "planted": data}


@pytest.fixture
def outdir(tmp_path) -> Path:
    """A folder holding earlier outputs that no failing command may touch."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.zip").write_bytes(b"an earlier submission")
    (out / "old.json").write_text('{"earlier": "predictions"}')
    (out / "notes.txt").write_text("the user's own file")
    return out


# --------------------------------------------------------------------------- broken files of every kind


def broken_files(folder: Path, suffix: str) -> dict[str, Path]:
    """Files named ``*<suffix>`` whose content is wrong in one way each."""
    folder.mkdir(parents=True, exist_ok=True)
    made = {
        "empty": b"",
        "binary": bytes(range(256)) * 4,
        "not-utf8": "filename,ang\nclip,é\n".encode("latin-1"),
        "pickle": pickle.dumps({"predictions": {"a": HAP}, "X": [[1.0]]}),
        "text": b"just some text\n",
        "json-list": b"[1, 2, 3]",
        "json-truncated": b'{"A102_ang_int1_ver1": [{"emotion": "ang", "sal',
        "json-deep": b"[" * 100_000 + b"]" * 100_000,
        "nul-bytes": b"\x00" * 64,
        "huge-number": b'{"A102_ang_int1_ver1": [{"emotion": "ang", "salience": 1' + b"0" * 5000 + b'}]}',
    }
    out = {}
    for kind, data in made.items():
        path = folder / f"{kind}{suffix}"
        path.write_bytes(data)
        out[kind] = path
    zips = {
        "zip-truncated": None,
        "zip-empty": [],
        "zip-two-json": [("a.json", b"{}"), ("b.json", b"{}")],
        "zip-no-json": [("a.txt", b"hello")],
        "zip-unsafe": [("../evil.json", b"{}")],
        "zip-pickle-member": [("predictions.json", pickle.dumps({"a": 1}))],
        "zip-bad-json": [("predictions.json", b"{nope")],
    }
    if suffix != ".zip":
        return out
    good = [("predictions.json", json.dumps({"predictions": {"test_0001": HAP}}).encode())]
    for kind, members in zips.items():
        path = folder / f"{kind}{suffix}"
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, data in (good if members is None else members):
                zf.writestr(name, data)
        if members is None:
            path.write_bytes(path.read_bytes()[:40])
        out[kind] = path
    return out


# =========================================================================== score


@pytest.mark.parametrize("suffix", [".json", ".zip"])
def test_score_broken_submissions(tmp_path, world, suffix):
    for kind, path in broken_files(tmp_path / "in", suffix).items():
        expect_error("score", [path], names=[path], protect=[tmp_path])
        expect_error("score", [path, "--lenient", "--truth", world["example_truth"]], names=[path], protect=[tmp_path])


def test_score_missing_and_odd_paths(tmp_path, world):
    folder = tmp_path / "dir.json"
    folder.mkdir()
    expect_error("score", [tmp_path / "missing.json"], names=[tmp_path / "missing.json"], match="no such file")
    expect_error("score", [folder], names=[folder])
    expect_error("score", [tmp_path / ("x" * 300 + ".json")], names=["x" * 50], match="name too long")
    expect_error("score", [tmp_path / "a.txt"], names=[tmp_path / "a.txt"])
    expect_error("score", [world["example"], "--truth", tmp_path / "no.csv"], names=[tmp_path / "no.csv"])
    expect_error("score", [world["example"], "--truth", folder], names=[folder])
    expect_error("score", [world["example"], world["example"]], names=["unexpected extra argument", "Got unexpected"])
    expect_error("score", ["--example", world["example"]], names=["not both"])
    expect_error("score", [], names=["missing SUBMISSION"])
    expect_error("score", [world["example"], "--fold", "0"], names=["--fold needs --truth"])


def test_score_broken_truth(tmp_path, world):
    sub = world["example"]
    for kind, path in broken_files(tmp_path / "truth", ".csv").items():
        outcome = expect_clean("score", [sub, "--truth", path], names=[path])
        assert outcome.exit_code == 2, (kind, outcome.stdout)
    bad = {
        "no-filename.csv": "clip,label\na,hap\n",
        "bad-label.csv": "filename,label\nA102_ang_int1_ver1,angry\n",
        "no-salience.csv": "filename,emotion_1,emotion_2\nA411_mix_ang_hap_30_70_ver1,ang,hap\n",
        "nan-salience.csv": ("filename,emotion_1,emotion_2,emotion_1_salience,emotion_2_salience\n"
                             "A411_mix_ang_hap_30_70_ver1,ang,hap,nan,70\n"),
        "twice.csv": "filename,label\na,hap\na.mov,sad\n",
        "no-labels.csv": "filename,label\na,\n",
        "quote.csv": 'filename,label\n"a,hap\n',
    }
    for name, text in bad.items():
        path = tmp_path / name
        path.write_text(text)
        expect_error("score", [sub, "--truth", path], names=[path])
    good = tmp_path / "good.csv"
    good.write_text("filename,fold,label\nA102_ang_int1_ver1,0,ang\n")
    expect_error("score", [sub, "--truth", good, "--fold", "7"], names=[good])


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**30, 10**30) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20,
)
_entry = st.fixed_dictionaries({"emotion": st.sampled_from([*EMOTIONS, "angry", 3, None]),
                                "salience": st.sampled_from([100, 70, 30, 50, "70", None, 1e400, -1, True, [1]])})
_submission = st.dictionaries(
    st.sampled_from(["A102_ang_int1_ver1", "A411_mix_ang_hap_30_70_ver1", "test_0001", "A1_angry_int1", "", "x/y.mov",
                     "predictions"]),
    st.lists(_entry, max_size=3) | _json_values,
    max_size=6,
)


@GENERATED
@given(obj=_submission | st.fixed_dictionaries({"predictions": _submission}) | _json_values)
def test_score_generated_submissions(tmp_path_factory, world, obj):
    folder = tmp_path_factory.mktemp("gen")
    path = folder / "sub.json"
    path.write_text(json.dumps(obj, allow_nan=True))
    for extra in ([], ["--lenient"], ["--truth", world["example_truth"]], ["--truth", world["example_truth"], "--lenient"]):
        expect_clean("score", [path, *extra, "--json"], names=[path])


# =========================================================================== decode / tune


def _prob_rows(text: str, tmp: Path, name: str = "p.csv") -> Path:
    path = tmp / name
    path.write_text(text)
    return path


BAD_TABLES = {
    "no-rows": "filename,ang,disg,fea,hap,sad,neu\n",
    "missing-column": "filename,ang,disg\nA102_ang_int1_ver1,1,0\n",
    "word": "filename,ang,disg,fea,hap,sad,neu\nA102_ang_int1_ver1,1,0,0,0,0,x\n",
    "nan": "filename,ang,disg,fea,hap,sad,neu\nA102_ang_int1_ver1,1,0,0,0,0,nan\n",
    "inf": "filename,ang,disg,fea,hap,sad,neu\nA102_ang_int1_ver1,inf,0,0,0,0,0\n",
    "negative": "filename,ang,disg,fea,hap,sad,neu\nA102_ang_int1_ver1,1.1,0,0,0,0,-0.1\n",
    "sums-to-3": "filename,ang,disg,fea,hap,sad,neu\nA102_ang_int1_ver1,1,1,1,0,0,0\n",
    "sums-to-0": "filename,ang,disg,fea,hap,sad,neu\nA102_ang_int1_ver1,0,0,0,0,0,0\n",
    "twice": "filename,ang,disg,fea,hap,sad,neu\nA102_ang_int1_ver1,1,0,0,0,0,0\nA102_ang_int1_ver1.mov,1,0,0,0,0,0\n",
    "empty-name": "filename,ang,disg,fea,hap,sad,neu\n,1,0,0,0,0,0\n",
    "short-row": "filename,ang,disg,fea,hap,sad,neu\nA102_ang_int1_ver1,1,0\n",
    "huge": "filename,ang,disg,fea,hap,sad,neu\nA102_ang_int1_ver1,1" + "0" * 400 + ",0,0,0,0,0\n",
}


def _bad_npz(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    made = {}

    def save(name, **arrays):
        path = folder / f"{name}.npz"
        np.savez(path, **arrays)
        made[name] = path

    save("no-arrays", X=np.zeros((1, 6)))
    save("wrong-shape", probs=np.full((2, 5), 0.2), filenames=np.array(["a", "b"]))
    save("count-mismatch", probs=np.full((2, 6), 1 / 6), filenames=np.array(["a"]))
    save("objects", probs=np.full((1, 6), 1 / 6), filenames=np.array([None], dtype=object))
    save("strings", probs=np.array([["a"] * 6]), filenames=np.array(["a"]))
    save("bad-labels", probs=np.full((1, 6), 1 / 6), filenames=np.array(["a"]), labels=np.array([99]))
    save("nan", probs=np.full((1, 6), np.nan), filenames=np.array(["a"]))
    pickled = folder / "pickled.npz"
    pickled.write_bytes(pickle.dumps({"probs": [[1 / 6] * 6], "filenames": ["a"]}))
    made["pickled"] = pickled
    lone = folder / "lone.npz"
    np.save(folder / "lone.npy", np.full((1, 6), 1 / 6))
    lone.write_bytes((folder / "lone.npy").read_bytes())
    made["lone"] = lone
    truncated = folder / "truncated.npz"
    truncated.write_bytes(made["wrong-shape"].read_bytes()[:100])
    made["truncated"] = truncated
    return made


def test_decode_and_tune_bad_tables(tmp_path, world, outdir):
    for kind, text in BAD_TABLES.items():
        path = _prob_rows(text, tmp_path, f"{kind}.csv")
        for out in (outdir / "old.json", outdir / "old.zip"):
            expect_error("decode", [path, "--structured", "-o", out], names=[path], protect=[outdir])
        expect_error("decode", [path, "--alpha", "0.3", "--beta", "0.1"], names=[path])
        expect_error("tune", [path], names=[path])
    for kind, path in _bad_npz(tmp_path / "npz").items():
        expect_error("decode", [path, "--structured", "-o", outdir / "old.zip"], names=[path], protect=[outdir])
        expect_error("tune", [path], names=[path])
    for kind, path in broken_files(tmp_path / "broken", ".csv").items():
        expect_error("decode", [path, "--structured"], names=[path])
        expect_error("tune", [path, "--json"], names=[path])
    parquet = tmp_path / "garbage.parquet"
    parquet.write_bytes(b"PAR1 not really")
    expect_error("decode", [parquet, "--structured"], names=[parquet])
    expect_error("tune", [parquet], names=[parquet])


def test_decode_bad_options(tmp_path, world, outdir):
    p = world["probs"]
    cases = [
        (["--alpha", "2", "--beta", "-1"], ["alpha must be in [0, 1]"]),
        (["--alpha", "nan", "--beta", "0.1"], ["alpha must be finite"]),
        (["--alpha", "0.3", "--beta", "inf"], ["beta must be finite", "beta must be in"]),
        (["--alpha", "0.3"], ["give both"]),
        (["--alpha", "0.3", "--beta", "0.1", "--structured"], ["not both"]),
        (["--alpha", "x", "--beta", "0.1"], ["--alpha"]),
        (["--structured", "-o", outdir / "x.txt"], [outdir / "x.txt"]),
        (["--structured", "-o", outdir], [outdir]),
        (["--structured", "-o", outdir / "notes.txt" / "x.json"], [outdir / "notes.txt"]),
        (["--structured", "-o", outdir / ("n" * 300 + ".json")], ["n" * 40]),
    ]
    for args, names in cases:
        expect_error("decode", [p, *args], names=names, protect=[outdir])


def test_tune_bad_truth(tmp_path, world):
    table = pd.read_csv(world["probs"]).drop(columns=["label"])
    table["filename"] = [f"test_{i:04d}" for i in range(len(table))]
    anon = tmp_path / "anon.csv"
    table.to_csv(anon, index=False)
    expect_error("tune", [anon], names=["test_0000"])
    partial = tmp_path / "truth.csv"
    partial.write_text("filename,label\ntest_0000,hap\n")
    expect_error("tune", [anon, "--truth", partial], names=[partial])
    labelled = pd.read_csv(world["probs"])
    labelled.loc[3, "label"] = "angry"
    bad_label = tmp_path / "bad_label.csv"
    labelled.to_csv(bad_label, index=False)
    expect_error("tune", [bad_label], names=[bad_label])
    labelled.loc[3, "label"] = None
    empty_label = tmp_path / "empty_label.csv"
    labelled.to_csv(empty_label, index=False)
    expect_error("tune", [empty_label], names=[empty_label])


_cells = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr), st.sampled_from(["", "x", "0", "1", "-1", "1e400", '"']),
    st.floats(0, 1).map(str),
)


@GENERATED
@given(rows=st.lists(st.tuples(st.sampled_from(["A102_ang_int1_ver1", "test_0001", "A1_angry_int1", "", "b"]),
                               st.lists(_cells, min_size=4, max_size=7)), max_size=5),
       header=st.sampled_from(["filename,ang,disg,fea,hap,sad,neu", "filename,ang,disg,fea,hap,sad,neu,label",
                               "name,ang", ""]))
def test_decode_generated_tables(tmp_path_factory, rows, header):
    folder = tmp_path_factory.mktemp("gen")
    path = folder / "p.csv"
    path.write_text("\n".join([header, *(",".join([n, *cells]) for n, cells in rows)]) + "\n")
    out = folder / "out.zip"
    out.write_bytes(b"earlier")
    outcome = expect_clean("decode", [path, "--structured", "-o", out], names=[path, out], protect=[out])
    if outcome.exit_code == 0:
        assert out.read_bytes() != b"earlier"
    expect_clean("tune", [path], names=[path])


# =========================================================================== submit / labels


def test_submit_bad_inputs(tmp_path, world, outdir):
    for kind, path in {**broken_files(tmp_path / "j", ".json"), **broken_files(tmp_path / "z", ".zip")}.items():
        expect_error("submit", [path, "-o", outdir / "old.zip"], names=[path], protect=[outdir])
    bad = {
        "malformed-name": {"A102_angry_int1": HAP},
        "bad-salience": {"A102_ang_int1_ver1": [{"emotion": "ang", "salience": 70}]},
        "empty": {},
        "neutral-blend": {"A102_ang_int1_ver1": [{"emotion": "ang", "salience": 50}, {"emotion": "neu", "salience": 50}]},
        "same-clip": {"A102_ang_int1_ver1": HAP, "A102_ang_int1_ver1.mov": HAP},
    }
    for kind, obj in bad.items():
        path = tmp_path / f"{kind}.json"
        path.write_text(json.dumps(obj))
        expect_error("submit", [path, "-o", outdir / "old.zip"], names=[path], protect=[outdir])
    for out in (outdir / "x.json", outdir, outdir / "notes.txt" / "s.zip"):
        expect_error("submit", [world["preds"], "-o", out], names=[out, outdir / "notes.txt"], protect=[outdir])


def test_labels_bad_arguments():
    expect_error("labels", ["--jsn"], names=["--jsn"])
    expect_error("labels", ["extra"], names=["extra"])


# =========================================================================== failing file systems (injected)

WRITERS = {
    "decode-json": lambda w, out: ["decode", w["probs"], "--structured", "-o", out / "old.json"],
    "decode-zip": lambda w, out: ["decode", w["probs"], "--alpha", "0.3", "--beta", "0.1", "-o", out / "old.zip"],
    "decode-new": lambda w, out: ["decode", w["probs"], "--structured", "-o", out / "new" / "p.zip"],
    "submit": lambda w, out: ["submit", w["preds"], "-o", out / "old.zip"],
    "submit-new": lambda w, out: ["submit", w["preds"], "-o", out / "sub.zip"],
}


@pytest.mark.parametrize("failure", sorted(WRITE_FAILURES))
@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_core_writers_on_failing_file_systems(monkeypatch, world, outdir, writer, failure):
    code, words = WRITE_FAILURES[failure]
    args = WRITERS[writer](world, outdir)
    target = Path(args[-1])
    before = snapshot(outdir)
    FailingWrites(monkeypatch, outdir, code)
    line = expect_error(args[0], args[1:], names=[target, target.parent])
    monkeypatch.undo()
    assert words in line, line
    check_unchanged(before, [outdir])


# =========================================================================== manifest / extract / import-features


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """A folder of two short real clips (video and audio) named like BLEMORE clips."""
    from tests.support.avclips import make_clip

    folder = tmp_path_factory.mktemp("clips")
    make_clip(folder / "A1_ang_int1_ver1.mp4", seconds=0.6, fps=10)
    make_clip(folder / "A2_hap_int1_ver1.mp4", seconds=0.6, fps=10)
    return folder


def test_manifest_bad_inputs(tmp_path, clips, outdir):
    empty = tmp_path / "empty"
    empty.mkdir()
    expect_error("manifest", [tmp_path / "nope"], names=[tmp_path / "nope"])
    expect_error("manifest", [empty], names=[empty])
    for kind, path in broken_files(tmp_path / "meta", ".csv").items():
        outcome = expect_clean("manifest", [clips, "--metadata", path, "-o", outdir / "m.csv"], names=[path],
                               protect=[outdir])
        assert outcome.exit_code == 2, kind
    for out in (outdir, outdir / "notes.txt" / "m.csv", outdir / ("m" * 300 + ".csv")):
        expect_error("manifest", [clips, "-o", out], names=[out, outdir / "notes.txt", "m" * 40], protect=[outdir])


def test_manifest_broken_clips_are_listed_not_fatal(tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    (folder / "A1_ang_int1_ver1.mp4").write_bytes(b"not a video")
    (folder / "A2_ang_int1_ver1.mov").write_bytes(b"")
    outcome = expect_clean("manifest", [folder])
    assert outcome.exit_code == 0 and outcome.stdout.count("broken or unknown container") + outcome.stdout.count(
        "empty") >= 2


EXTRACT_OPTIONS = [
    (["-e", "bogus"], ["unknown encoder 'bogus'"]),
    (["-e", ""], ["encoder"]),
    (["--device", "tpu"], ["--device 'tpu'"]),
    (["--precision", "fp8"], ["'fp8' is not one of"]),
    (["--pool", "fork"], ["'fork' is not one of"]),
    (["--batch-size", "0"], ["--batch-size"]),
    (["--workers", "-1"], ["--workers"]),
    (["--limit", "-3"], ["--limit"]),
]


def test_extract_bad_inputs(tmp_path, clips, outdir):
    feats = outdir / "features"
    for args, names in EXTRACT_OPTIONS:
        expect_error("extract", [clips, "-o", feats, "-q", *args], names=names, protect=[outdir])
    expect_error("extract", [tmp_path / "nope", "-o", feats, "-q"], names=[tmp_path / "nope"], protect=[outdir])
    expect_error("extract", [clips, "-o", outdir / "notes.txt", "-q"], names=[outdir / "notes.txt"], protect=[outdir])
    for kind, path in broken_files(tmp_path / "meta", ".csv").items():
        expect_error("extract", [clips, "-o", feats, "-e", "opensmile", "-q", "--metadata", path], names=[path],
                     protect=[outdir])


def _npy_sources(folder: Path) -> dict[str, Path]:
    bad = {
        "pickle": lambda p: p.write_bytes(pickle.dumps([[1.0]])),
        "text": lambda p: p.write_text("1,2,3\n"),
        "empty": lambda p: p.write_bytes(b""),
        "truncated": lambda p: p.write_bytes(b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (9, 9), }"),
        "strings": lambda p: np.save(p, np.array([["a", "b"]])),
        "objects": lambda p: np.save(p, np.array([None, 1], dtype=object), allow_pickle=True),
        "3d": lambda p: np.save(p, np.zeros((2, 2, 2), np.float32)),
    }
    out = {}
    for kind, write in bad.items():
        src = folder / kind
        src.mkdir(parents=True)
        np.save(src / "A1_ang_int1_ver1.npy", np.zeros((3, 2), np.float32))
        write(src / "A2_hap_int1_ver1.npy")
        out[kind] = src
    return out


def test_import_features_bad_inputs(tmp_path, outdir):
    store = outdir / "features"
    for kind, src in _npy_sources(tmp_path / "npy").items():
        # a damaged clip is recorded as failed, with its reason, and the others are imported
        outcome = expect_clean("import-features", [src, "--format", "npy", "--name", kind, "-o", store],
                               names=[src], protect=[outdir])
        assert outcome.exit_code == 0 and "failed 1" in outcome.stdout, (kind, outcome.stdout)
        assert "failed: " in outcome.stdout and "A2_hap_int1_ver1: " in outcome.stdout, (kind, outcome.stdout)
    csvs = tmp_path / "openface"
    csvs.mkdir()
    for kind, path in broken_files(tmp_path / "of", ".csv").items():
        clip = path.rename(csvs / "A1_ang_int1_ver1.csv")
        expect_error("import-features", [csvs, "--format", "openface", "-o", store], names=[clip], protect=[outdir])
        clip.unlink()
    expect_error("import-features", [tmp_path / "nope", "--format", "npy", "--name", "x", "-o", store],
                 names=[tmp_path / "nope"])
    expect_error("import-features", [csvs, "--format", "bogus", "-o", store], names=["'bogus' is not one of"])
    expect_error("import-features", [csvs, "--format", "npy", "-o", store], names=["--name"])
    expect_error("import-features", [csvs, "--format", "npy", "--name", "x", "-o", outdir / "notes.txt"],
                 names=[outdir / "notes.txt", csvs], protect=[outdir])


def _feature_folder(tmp: Path) -> Path:
    src = tmp / "npy-good"
    src.mkdir(exist_ok=True)
    for name in ("A1_ang_int1_ver1", "A2_hap_int1_ver1"):
        np.save(src / f"{name}.npy", np.ones((3, 2), np.float32))
    return src


PIPELINE_WRITERS = {
    "manifest": lambda clips, tmp, out: ["manifest", clips, "-o", out / "manifest.csv"],
    "extract": lambda clips, tmp, out: ["extract", clips, "-e", "opensmile", "-o", out / "features", "-q"],
    "extract-existing": lambda clips, tmp, out: ["extract", clips, "-e", "opensmile", "-o", out, "-q"],
    "import-features": lambda clips, tmp, out: ["import-features", _feature_folder(tmp), "--format", "npy", "--name",
                                                "x", "-o", out / "features"],
}


@pytest.mark.parametrize("failure", sorted(WRITE_FAILURES))
@pytest.mark.parametrize("writer", sorted(PIPELINE_WRITERS))
def test_pipeline_writers_on_failing_file_systems(monkeypatch, tmp_path, clips, outdir, writer, failure):
    code, words = WRITE_FAILURES[failure]
    args = PIPELINE_WRITERS[writer](clips, tmp_path, outdir)
    before = snapshot(outdir)
    FailingWrites(monkeypatch, outdir, code)
    line = expect_error(args[0], args[1:], names=[outdir])
    monkeypatch.undo()
    assert words in line, line
    check_unchanged(before, [outdir])


# =========================================================================== generate / demo (arguments only)

GENERATE_ARGS = [
    (["--actors", "2"], "--actors 2"), (["--actors", "-1"], "--actors"), (["--fps", "0"], "--fps 0"),
    (["--fps", "1000"], "--fps"), (["--size", "7"], "--size 7"), (["--size", "100000"], "--size"),
    (["--duration", "-1"], "--duration"), (["--duration", "nan"], "--duration"), (["--noise", "-1"], "noise"),
    (["--workers", "0"], "--workers"), (["--seed", "x"], "--seed"),
]


def test_generate_and_demo_bad_arguments(tmp_path, outdir):
    for args, name in GENERATE_ARGS:
        expect_error("generate", [tmp_path / "data", *args], names=[name], protect=[outdir])
    expect_error("generate", [outdir / "notes.txt"], names=[outdir / "notes.txt"], protect=[outdir])
    expect_error("generate", [outdir / "notes.txt" / "data"], names=[outdir / "notes.txt"], protect=[outdir])
    for args, name in [(["--actors", "2"], "--actors 2"), (["--epochs", "0"], "--epochs"), (["--fps", "0"], "--fps"),
                       (["--size", "9"], "--size"), (["--lr", "x"], "--lr"), (["--duration", "0"], "--duration")]:
        expect_error("demo", ["-o", tmp_path / "demo", "-q", *args], names=[name])
    expect_error("demo", ["-o", outdir / "notes.txt", "-q"], names=[outdir / "notes.txt"], protect=[outdir])


# =========================================================================== report


@pytest.fixture(scope="module")
def run_folder(world, tmp_path_factory) -> Path:
    """A small finished benchmark run (1 epoch, linear head) to damage copies of."""
    data = world["planted"]
    out = tmp_path_factory.mktemp("run") / "run"
    outcome = invoke(["benchmark", "--train-metadata", data["train_metadata"], "--test-metadata",
                      data["test_metadata"], "-f", f"a={data['sources']['s0']}", "--models", "linear", "--epochs", 1,
                      "-o", out, "-q", "--no-report"])
    assert outcome.exit_code == 0, outcome.stderr
    return out


def _damaged_run(run_folder: Path, tmp: Path, damage) -> Path:
    import shutil

    copy = tmp / "run"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(run_folder, copy)
    damage(copy)
    return copy


def test_report_bad_inputs(tmp_path, run_folder, outdir):
    empty = tmp_path / "empty"
    empty.mkdir()
    for bad in (tmp_path / "nope", empty, outdir / "notes.txt"):
        expect_error("report", [bad, "-o", outdir / "r.html"], names=[bad], protect=[outdir])
    damages = {
        "results-not-csv": lambda r: (r / "results.csv").write_bytes(bytes(range(256))),
        "config-not-json": lambda r: (r / "config.json").write_text("{nope"),
        "curves-garbage": lambda r: (r / "curves.csv").write_text('"\n'),
    }
    for kind, damage in damages.items():
        run = _damaged_run(run_folder, tmp_path, damage)
        outcome = expect_clean("report", [run, "-o", outdir / "r.html", "-q"], names=[run], protect=[outdir])
        assert outcome.exit_code in (0, 2), kind
    truncated = _damaged_run(run_folder, tmp_path, lambda r: (r / "results.csv").write_bytes(
        (r / "results.csv").read_bytes()[:60]))
    outcome = invoke(["report", truncated, "-o", outdir / "r.html", "-q"])  # -q: no progress bar
    COUNTS["report"] += 1
    warnings = [line for line in outcome.stderr.splitlines() if line.strip()]
    assert outcome.exit_code == 0 and len(warnings) == 1 and "results.csv" in warnings[0], outcome.stderr
    for failure, (code, words) in WRITE_FAILURES.items():
        with pytest.MonkeyPatch.context() as mp:
            FailingWrites(mp, outdir, code)
            line = expect_error("report", [run_folder, "-o", outdir / "r.html", "-q"], names=[outdir / "r.html"])
        assert words in line


# =========================================================================== benchmark / predict / compare
# Written against today's command line; these commands are being rebuilt (methods, run folders), so this
# block is kept apart to be adapted with them.


def _metadata_variant(data: dict, tmp: Path, name: str, change) -> Path:
    meta = pd.read_csv(data["train_metadata"])
    meta = change(meta)
    path = tmp / name
    meta.to_csv(path, index=False)
    return path


def _feature_variants(data: dict, tmp: Path) -> dict[str, tuple[Path, list]]:
    src = np.load(data["sources"]["s0"])
    X, names = src["X"], src["filenames"]
    tmp.mkdir(parents=True, exist_ok=True)
    out = {}

    def save(kind, names_hint, **arrays):
        path = tmp / f"{kind}.npz"
        np.savez(path, **arrays)
        out[kind] = (path, names_hint)

    dup = names.copy()
    dup[5] = dup[0]
    save("duplicate", [names[0]], X=X, filenames=dup)
    save("partial", [], X=X[:10], filenames=names[:10])
    nan = X.copy()
    nan[3, 1] = np.nan  # a training clip
    nan[-1, 0] = np.inf  # a test clip
    save("nan", [names[3], names[-1]], X=nan, filenames=names)
    save("objects", [], X=X, filenames=names.astype(object))
    save("strings", [], X=X.astype(str), filenames=names)
    save("3d", [], X=X[:, :, None], filenames=names)
    save("no-names", [], X=X)
    pickled = tmp / "pickled.npz"
    pickled.write_bytes(pickle.dumps({"X": X, "filenames": names}))
    out["pickled"] = (pickled, [])
    truncated = tmp / "truncated.npz"
    truncated.write_bytes(data["sources"]["s0"].read_bytes()[:500])
    out["truncated"] = (truncated, [])
    return out


def test_benchmark_bad_features(tmp_path, world, outdir):
    data = world["planted"]
    base = ["--train-metadata", data["train_metadata"], "--models", "linear", "--epochs", 1, "-q", "--no-report",
            "-o", outdir / "run"]
    for kind, (path, names) in _feature_variants(data, tmp_path / "features").items():
        expect_error("benchmark", [*base, "-f", f"a={path}"], names=[path, *names], protect=[outdir])
    for spec in ("a", "=x", f"a+b={data['sources']['s0']}", f"a={tmp_path / 'nope.npz'}"):
        expect_error("benchmark", [*base, "-f", spec], names=[spec], protect=[outdir])
    expect_error("benchmark", [*base, "-f", f"a={data['sources']['s0']}", "-f", f"a={data['sources']['s0']}"],
                 names=["'a' is given twice"], protect=[outdir])


def test_benchmark_bad_metadata(tmp_path, world, outdir):
    data = world["planted"]
    src = data["sources"]["s0"]
    base = ["-f", f"a={src}", "--models", "linear", "--epochs", 1, "-q", "--no-report", "-o", outdir / "run"]
    variants = {
        "two-folds": lambda m: m.assign(fold=np.where(m.index == 0, (m.fold + 1) % 5, m.fold)),
        "no-salience": lambda m: m.drop(columns=["emotion_2_salience"]),
        "fold-word": lambda m: m.assign(fold=m.fold.astype(str).where(m.index != 2, "x")),
        "one-fold": lambda m: m.assign(fold=0),
        "no-folds": lambda m: m.drop(columns=["fold"]),
        "bad-emotion": lambda m: m.assign(emotion_1=m.emotion_1.where(m.index != 1, "angry")),
        "contradicts-name": lambda m: m.assign(emotion_1=m.emotion_1.where(m.index != 0, "sad")),
        "twice": lambda m: pd.concat([m, m.iloc[:1]]),
    }
    for kind, change in variants.items():
        path = _metadata_variant(data, tmp_path, f"{kind}.csv", change)
        expect_error("benchmark", ["--train-metadata", path, *base], names=[path], protect=[outdir])
    for kind, path in broken_files(tmp_path / "broken", ".csv").items():
        expect_error("benchmark", ["--train-metadata", path, *base], names=[path], protect=[outdir])
    test = pd.read_csv(data["test_metadata"])
    overlap = tmp_path / "overlap.csv"
    pd.concat([test, pd.read_csv(data["train_metadata"]).iloc[:2]]).to_csv(overlap, index=False)
    expect_error("benchmark", ["--train-metadata", data["train_metadata"], "--test-metadata", overlap, *base],
                 names=[overlap], protect=[outdir])
    train = pd.read_csv(data["train_metadata"])
    shared_actor = tmp_path / "shared_actor.csv"
    test.assign(video_id=train.video_id.iloc[0]).to_csv(shared_actor, index=False)
    expect_error("benchmark", ["--train-metadata", data["train_metadata"], "--test-metadata", shared_actor, *base],
                 names=[shared_actor], protect=[outdir])
    bad_names = tmp_path / "bad_names.csv"
    test.assign(filename=["A102_angry_int1_ver1"] + test.filename.iloc[1:].tolist()).to_csv(bad_names, index=False)
    expect_error("benchmark", ["--train-metadata", data["train_metadata"], "--test-metadata", bad_names, *base],
                 names=[bad_names], protect=[outdir])


BENCHMARK_OPTIONS = [
    (["--models", "linear,mlp9"], "mlp9"), (["--epochs", "0"], "epochs"), (["--batch-size", "0"], "batch"),
    (["--lr", "-1"], "lr"), (["--lr", "nan"], "lr"), (["--representation", "bogus"], "bogus"), (["--window", "0"], "window"),
    (["--paper-test", "bogus"], "bogus"), (["--methods", "bogus"], "bogus"), (["--set", "zzz"], "zzz"),
    (["--compare", "bogus"], "bogus"), (["--weight-decay", "-1"], "weight"), (["--threads", "0"], "--threads"),
    (["--test-actors", "many"], "many"), (["--ensemble-seeds", "0"], "--ensemble-seeds"),
    (["--paper-test", "retrain-100"], "retrain-100"), (["--methods", "attention-fusion"], "attention-fusion"),
    (["--device", "tpu"], "tpu"),
]


def test_benchmark_bad_options(tmp_path, world, outdir):
    data = world["planted"]
    base = ["--train-metadata", data["train_metadata"], "-f", f"a={data['sources']['s0']}", "-q", "--no-report",
            "-o", outdir / "run", "--epochs", 1, "--models", "linear"]
    for args, name in BENCHMARK_OPTIONS:
        expect_error("benchmark", [*base, *args], names=[name], protect=[outdir])
    expect_error("benchmark", ["-f", f"a={data['sources']['s0']}", "-o", outdir / "run", "-q"],
                 names=["--train-metadata"], protect=[outdir])
    expect_error("benchmark", [*base, "-o", outdir / "notes.txt"], names=[outdir / "notes.txt"], protect=[outdir])


def test_benchmark_keeps_the_users_folder(tmp_path, world):
    data = world["planted"]
    project = tmp_path / "project"
    project.mkdir()
    (project / "config.json").write_text('{"mine": true}')
    (project / "analysis.py").write_text("print('my work')")
    args = ["--train-metadata", data["train_metadata"], "-f", f"a={data['sources']['s0']}", "--models", "linear",
            "--epochs", 1, "-q", "--no-report", "-o", project]
    expect_error("benchmark", args, names=[project], protect=[project])
    run = tmp_path / "run"
    assert invoke(["benchmark", *args[:-1], run]).exit_code == 0
    (run / "my-notes.txt").write_text("mine")
    for again in ([], ["--overwrite"]):  # an earlier run: kept without --overwrite, never with the user's file in it
        expect_error("benchmark", [*args[:-1], run, *again], names=[run], protect=[run])


@pytest.mark.parametrize("failure", sorted(WRITE_FAILURES))
def test_benchmark_on_failing_file_systems(monkeypatch, world, outdir, failure):
    code, words = WRITE_FAILURES[failure]
    data = world["planted"]
    args = ["--train-metadata", data["train_metadata"], "-f", f"a={data['sources']['s0']}", "--models", "linear",
            "--epochs", 1, "-q", "--no-report", "-o", outdir / "run"]
    FailingWrites(monkeypatch, outdir, code)
    line = expect_error("benchmark", args, names=[outdir / "run"], protect=[outdir])
    assert words in line and ".staging" not in line


def _model_damage() -> dict:
    def each(pattern, write):
        return lambda run: [write(p) for p in (run / "models").glob(pattern)]

    return {
        "model-npz-truncated": each("*/*.npz", lambda p: p.write_bytes(p.read_bytes()[:200])),
        "model-npz-pickle": each("*/*.npz", lambda p: p.write_bytes(pickle.dumps({"W": [1.0]}))),
        "model-npz-wrong-shape": each("*/*.npz", lambda p: np.savez(p, **{
            k: np.zeros((2, 2), np.float32) for k in np.load(p).files})),
        "model-json-not-json": each("*/model.json", lambda p: p.write_text("{nope")),
        "model-json-list": each("*/model.json", lambda p: p.write_text("[]")),
        "models-gone": lambda run: [p.unlink() for p in (run / "models").rglob("*") if p.is_file()],
        "config-not-json": lambda run: (run / "config.json").write_text("{nope"),
        "best-not-json": lambda run: (run / "best.json").write_text("{nope"),
        "best-names-nothing": lambda run: (run / "best.json").write_text('{"stem": "baseline__zzz__linear"}'),
        "marker-gone": lambda run: (run / ".blemore-run.json").unlink(),
    }


def test_predict_on_damaged_runs(tmp_path, world, run_folder, outdir):
    data = world["planted"]
    feats = ["-f", f"a={data['sources']['s0']}", "--metadata", data["test_metadata"]]
    for kind, damage in _model_damage().items():
        run = _damaged_run(run_folder, tmp_path, damage)
        args = [run, *feats, "-o", outdir / "pred"]
        expect_error("predict", args, names=[run], protect=[outdir])
    for bad in (tmp_path / "nope", outdir / "notes.txt"):
        expect_error("predict", [bad, *feats, "-o", outdir / "pred"], names=[bad], protect=[outdir])
    expect_error("predict", [run_folder, "-f", f"b={data['sources']['s0']}", "-o", outdir / "pred"],
                 names=["a"], protect=[outdir])
    for kind, (path, names) in _feature_variants(data, tmp_path / "features").items():
        if kind == "partial":
            continue
        expect_error("predict", [run_folder, "-f", f"a={path}", "--metadata", data["test_metadata"], "-o",
                                 outdir / "pred"], names=[path, *names], protect=[outdir])
    for kind, path in broken_files(tmp_path / "meta", ".csv").items():
        expect_error("predict", [run_folder, "-f", f"a={data['sources']['s0']}", "--metadata", path, "-o",
                                 outdir / "pred"], names=[path], protect=[outdir])
    for args, name in ((["--model", "mlp9"], "mlp9"), (["--set", "zzz"], "zzz"), (["--rule", "bogus"], "bogus"),
                       (["--method", "bogus"], "bogus"), (["--method", "ensemble"], "ensemble"),
                       (["--test-actors", "none", "--method", "baseline", "--rule", "paper", "--set", "zzz"], "zzz"),
                       (["--metadata", data["train_metadata"]], "training clips")):
        expect_error("predict", [run_folder, *feats, "-o", outdir / "pred", *args], names=[name], protect=[outdir])
    for failure, (code, words) in WRITE_FAILURES.items():
        with pytest.MonkeyPatch.context() as mp:
            FailingWrites(mp, outdir, code)
            line = expect_error("predict", [run_folder, *feats, "-o", outdir / "pred"], names=[outdir / "pred"])
        assert words in line


def test_predict_without_the_best_models_json(tmp_path, world, run_folder, outdir):
    """The best model's JSON gone: an error naming it, never a silent switch to another model."""
    data = world["planted"]

    def drop_best(run: Path) -> None:
        stem = json.loads((run / "best.json").read_text())["stem"]
        (run / "models" / stem / "model.json").unlink()

    run = _damaged_run(run_folder, tmp_path, drop_best)
    args = [run, "-f", f"a={data['sources']['s0']}", "--metadata", data["test_metadata"], "-o", outdir / "pred"]
    expect_error("predict", args, names=[run], protect=[outdir])


COMPARE_OPTIONS = [
    (["--methods", "bogus"], "bogus"), (["--models", "mlp9"], "mlp9"), (["--epochs", "0"], "epochs"),
    (["--n-boot", "-1"], "boot"), (["--n-perm", "-5"], "perm"), (["--attention-epochs", "0"], "epochs"),
    (["--max-frames", "0"], "frames"), (["--set", "zzz"], "zzz"),
]


def test_compare_bad_inputs(tmp_path, world, outdir):
    data = world["planted"]
    base = ["--train-metadata", data["train_metadata"], "-q", "-o", outdir / "cmp", "--epochs", 1, "--no-nested",
            "--methods", "baseline", "--n-boot", 10, "--n-perm", 10]
    for args, name in COMPARE_OPTIONS:
        expect_error("compare", [*base, "-f", f"a={data['sources']['s0']}", *args], names=[name], protect=[outdir])
    expect_error("compare", [*base, "-f", f"a={data['sources']['s0']}", "--threads", "0"], names=["--threads"],
                 protect=[outdir])
    for kind, (path, names) in _feature_variants(data, tmp_path / "features").items():
        expect_error("compare", [*base, "-f", f"a={path}"], names=[path, *names], protect=[outdir])
    for kind, path in broken_files(tmp_path / "meta", ".csv").items():
        args = ["-f", f"a={data['sources']['s0']}", "--train-metadata", path, "-q", "-o", outdir / "cmp"]
        expect_error("compare", args, names=[path], protect=[outdir])
    expect_error("compare", [*base, "-f", f"a={data['sources']['s0']}", "-o", outdir / "notes.txt"],
                 names=[outdir / "notes.txt"], protect=[outdir])


# =========================================================================== real read-only and full file systems

TMPFS_SKIP = tmpfs_available()


def _tmpfs_cases(world: dict, clips: Path, run_folder: Path, tmp: Path) -> list[dict]:
    data = world["planted"]
    src = data["sources"]["s0"]
    npy = _feature_folder(tmp)
    train = ["--train-metadata", data["train_metadata"], "-f", f"a={src}", "--models", "linear", "--epochs", "1", "-q"]
    commands = {
        "submit": ["submit", world["preds"], "-o", "{mnt}/old.zip"],
        "submit-new": ["submit", world["preds"], "-o", "{mnt}/new/sub.zip"],
        "decode": ["decode", world["probs"], "--structured", "-o", "{mnt}/old.json"],
        "decode-zip": ["decode", world["probs"], "--alpha", "0.3", "--beta", "0.1", "-o", "{mnt}/p.zip"],
        "manifest": ["manifest", clips, "-o", "{mnt}/manifest.csv"],
        "extract": ["extract", clips, "-e", "opensmile", "-o", "{mnt}/features", "-q"],
        "import-features": ["import-features", npy, "--format", "npy", "--name", "x", "-o", "{mnt}/features"],
        "report": ["report", run_folder, "-o", "{mnt}/report.html", "-q"],
        "generate": ["generate", "{mnt}/data", "--actors", "6", "-q"],
        "benchmark": ["benchmark", *train, "--no-report", "-o", "{mnt}/run"],
        "predict": ["predict", run_folder, "-f", f"a={src}", "--metadata", data["test_metadata"], "-o", "{mnt}/pred"],
        "compare": ["compare", *train, "--methods", "baseline", "--no-nested", "--n-boot", "10", "--n-perm", "10",
                    "-o", "{mnt}/cmp"],
    }
    return [{"name": name, "mode": mode, "args": [str(a) for a in args]}
            for name, args in commands.items() for mode in ("read-only", "full")]


@pytest.mark.skipif(TMPFS_SKIP is not None, reason=f"no private tmpfs: {TMPFS_SKIP}")
def test_commands_on_real_read_only_and_full_file_systems(tmp_path, world, clips, run_folder):
    cases = _tmpfs_cases(world, clips, run_folder, tmp_path)
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2] / "src"),
                                                        str(Path(__file__).resolve().parents[2]),
                                                        os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([*unshare_prefix(), sys.executable, "-m", "tests.support.hostile_fs",
                           str(tmp_path / "cases.json"), str(tmp_path / "results.json")],
                          cwd=Path(__file__).resolve().parents[2], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    failures = []
    for case, result in zip(cases, json.loads((tmp_path / "results.json").read_text())):
        command = case["args"][0]
        COUNTS[command] += 1
        problems = []  # (what, details)
        lines = result["stderr"].strip().splitlines()
        if result["exception"]:
            problems.append(("a traceback", result["exception"]))
        if result["exit_code"] != 2 or len(lines) != 1 or not lines[0].startswith("blemore: error: "):
            problems.append(("not one line", f"exit {result['exit_code']}, stderr {result['stderr'][-500:]!r}"))
        elif result["mount"] not in lines[0] or ".tmp" in lines[0]:
            problems.append(("a line without the user's path", lines[0]))
        if result["changed"] or result["left"]:
            problems.append(("files changed", f"changed {result['changed']}, left {result['left']}"))
        if problems:
            failures.append(f"{case['name']} on a {case['mode']} file system: {'; '.join(d for _, d in problems)}")
    assert not failures, "\n".join(failures)


# =========================================================================== generated metadata and feature files

_meta_cells = st.sampled_from(["", "0", "1", "4", "-1", "x", "1.5", "nan", "ang", "hap", "neu", "angry", "30", "70",
                               "50", "100", "0.3", "0.7", "1e400", '"', "A100", "test"])
_meta_names = st.sampled_from(["A100_ang_int1_ver1", "A101_mix_ang_hap_30_70_ver1", "A102_neu_sit1_ver1", "test_0001",
                               "A1_angry_int1", "clip9", "", "A100_ang_int1_ver1.mov", "a,b"])


@GENERATED
@given(columns=st.lists(st.sampled_from(["filename", "video_id", "fold", "mix", "emotion_1", "emotion_2",
                                         "emotion_1_salience", "emotion_2_salience", "label"]), min_size=1, max_size=9,
                        unique=True),
       rows=st.lists(st.tuples(_meta_names, st.lists(_meta_cells, min_size=9, max_size=9)), max_size=6))
def test_generated_metadata(tmp_path_factory, world, clips, columns, rows):
    folder = tmp_path_factory.mktemp("meta")
    path = folder / "meta.csv"
    lines = [",".join(columns)]
    for name, cells in rows:
        values = [name if c == "filename" else cells[i] for i, c in enumerate(columns)]
        lines.append(",".join(values))
    path.write_text("\n".join(lines) + "\n")
    expect_clean("score", [world["example"], "--truth", path, "--json"], names=[path])
    expect_clean("manifest", [clips, "--metadata", path], names=[path])


@GENERATED
@given(n_rows=st.integers(0, 4), dim=st.integers(0, 3),
       dtype=st.sampled_from(["float32", "float64", "int64", "bool", "complex64", "U3", "float16"]),
       fill=st.sampled_from([0.0, 1.0, np.nan, np.inf, -1e30]),
       names=st.lists(st.sampled_from(["A106_ang_int1_ver1", "A107_hap_int1_ver1", "test_0001", "", "x/A106_ang_int1_ver1.mov"]),
                      max_size=4),
       extra=st.sampled_from([{}, {"filenames_as_numbers": True}, {"no_filenames": True}]))
def test_generated_feature_files(tmp_path_factory, world, n_rows, dim, dtype, fill, names, extra):
    folder = tmp_path_factory.mktemp("feat")
    path = folder / "f.npz"
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # casting inf or NaN to integers, on purpose
        X = np.full((n_rows, dim), fill).astype(dtype) if dtype != "U3" else np.full((n_rows, dim), "abc")
    arrays = {"X": X}
    if not extra.get("no_filenames"):
        arrays["filenames"] = np.arange(len(names)) if extra.get("filenames_as_numbers") else np.asarray(names, dtype=str)
    np.savez(path, **arrays)
    meta = folder / "test.csv"
    meta.write_text("filename,video_id\nA106_ang_int1_ver1,A106\n")
    for command, args in (("decode", [path, "--structured"]), ("tune", [path])):
        expect_clean(command, args, names=[path])
    data = world["planted"]
    expect_clean("benchmark", ["--train-metadata", data["train_metadata"], "-f", f"a={path}", "--epochs", 1,
                               "--models", "linear", "-q", "--no-report", "-o", folder / "run"], names=[path])


# =========================================================================== the record


@pytest.fixture(scope="module", autouse=True)
def _record_counts(request):
    """With BLEMORE_ROBUSTNESS_DOC set, write the counts into that file once every case has passed."""
    yield
    doc = os.environ.get("BLEMORE_ROBUSTNESS_DOC")
    expected = {"score", "decode", "tune", "submit", "labels", "manifest", "extract", "import-features", "benchmark",
                "predict", "compare", "report", "generate", "demo"}
    if doc and request.session.testsfailed == 0 and expected <= set(COUNTS):
        write_counts(Path(doc), COUNTS)
