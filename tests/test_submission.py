"""Reading, validating, writing and scoring predictions."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from blemore.errors import BlemoreError
from blemore.labels import EMOTIONS, LABEL_INDEX, N_LABELS, VALID_LABELS
from hypothesis import given, settings
from hypothesis import strategies as st

from blemore.submission import (
    parse_predictions,
    SUBMISSION_MEMBER,
    clip_problem,
    example_files,
    find_problems,
    load_predictions,
    predictions_from_indices,
    read_predictions,
    read_probability_table,
    read_truth,
    score_predictions,
    truth_from_names,
    validate_predictions,
    write_predictions,
    write_submission_zip,
)

HAP = [{"emotion": "hap", "salience": 100}]

from tests.support.real_clips import CLIPS_CSV, needs_real_clips  # noqa: E402


def _pair(e1, s1, e2, s2):
    return [{"emotion": e1, "salience": s1}, {"emotion": e2, "salience": s2}]


# --------------------------------------------------------------------------- validation

BAD_ENTRIES = [
    ({"emotion": "hap"}, "expected a list"),
    ([], "empty list"),
    ([{"emotion": "hap", "salience": 100}] * 3, "3 emotions given, at most 2"),
    ([{"emotion": "angry", "salience": 100}], "unknown emotion 'angry'"),
    ([{"emotion": 3, "salience": 100}], "unknown emotion 3"),
    (_pair("hap", 50, "hap", 50), "emotion 'hap' appears twice"),
    ([{"emotion": "hap", "salience": 70}], "single emotion 'hap' has salience 70, expected 100"),
    (_pair("hap", 60, "sad", 40), "saliences 60/40 of hap/sad are not 50/50, 70/30 or 30/70"),
    (_pair("hap", 50, "neu", 50), "'neu' cannot be part of a blend"),
    ([{"emotion": "hap", "salience": "100"}], "salience of 'hap' is not a finite number: '100'"),
    ([{"emotion": "hap", "salience": None}], "not a finite number: None"),
    ([{"emotion": "hap", "salience": True}], "not a finite number: True"),
    ([{"emotion": "hap", "salience": float("nan")}], "not a finite number: nan"),
    (["hap"], "entry 1 is a string"),
    ([{"emotion": "hap"}], "entry 1 has no 'salience' key"),
    ([{"salience": 100}], "entry 1 has no 'emotion' key"),
]


@pytest.mark.parametrize(("entries", "message"), BAD_ENTRIES)
def test_clip_problems(entries, message):
    problem = clip_problem(entries)
    assert problem is not None and message in problem
    with pytest.raises(BlemoreError, match=r"^sub.json: clip 'test_0002': "):
        validate_predictions({"test_0001": HAP, "test_0002": entries}, source="sub.json")


@pytest.mark.parametrize("label", VALID_LABELS, ids=lambda l: l.name)
def test_every_valid_label_is_accepted(label):
    assert clip_problem(label.as_prediction()) is None
    assert clip_problem(list(reversed(label.as_prediction()))) is None


def test_rounded_saliences_are_accepted_like_the_scorer():
    assert clip_problem(_pair("hap", 69.6, "sad", 30.4)) is None
    assert clip_problem([{"emotion": "hap", "salience": 100.0}]) is None


def test_validation_counts_other_problems():
    preds = {"a": [], "b": HAP, "c": [{"emotion": "x", "salience": 100}]}
    assert set(find_problems(preds)) == {"a", "c"}
    with pytest.raises(BlemoreError, match=r"clip 'a': empty list.*\(and 1 more clips with problems\)"):
        validate_predictions(preds)


def test_colliding_clip_names():
    assert "same clip as 'test_0001.mov'" in find_problems({"test_0001.mov": HAP, "test_0001": HAP})["test_0001"]


def test_empty_predictions_rejected():
    with pytest.raises(BlemoreError, match="no predictions"):
        validate_predictions({})


# --------------------------------------------------------------------------- reading


def _write(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj) if not isinstance(obj, str) else obj)
    return path


def _zip(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return path


def test_read_both_formats(tmp_path):
    preds = {"test_0001": HAP, "test_0002": _pair("ang", 30, "hap", 70)}
    local = _write(tmp_path / "a.json", preds)
    challenge = _write(tmp_path / "b.json", {"predictions": preds})
    zipped = _zip(tmp_path / "c.zip", {"sub/predictions.json": json.dumps({"predictions": preds})})
    for path in (local, challenge, zipped):
        assert read_predictions(path) == preds


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1, 2]", "expected a JSON object"),
        ('{"predictions": [1]}', '"predictions" must be an object'),
        ("{not json", "not valid JSON: .* at line 1 column 2"),
        ('{"a": [], "a": []}', "key 'a' appears twice"),
        ('"x"', "expected a JSON object"),
        ('{"predictions": {}, "team": "x"}', "the challenge format holds only the key \"predictions\", also found 'team'"),
    ],
)
def test_bad_json_shape(tmp_path, content, message):
    path = _write(tmp_path / "p.json", content)
    with pytest.raises(BlemoreError, match=f"^{path}: {message}"):
        read_predictions(path)


def test_not_utf8(tmp_path):
    path = tmp_path / "p.json"
    path.write_bytes(b"\xff\xfe{")
    with pytest.raises(BlemoreError, match="not UTF-8"):
        read_predictions(path)


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({}, "holds no .json file"),
        ({"readme.txt": "x"}, "holds no .json file"),
        ({"a.json": "{}", "b.json": "{}"}, "holds 2 .json files"),
        ({"../evil.json": "{}"}, "unsafe path '../evil.json'"),
        ({"/abs.json": "{}"}, "unsafe path '/abs.json'"),
        ({"a.json": "{oops"}, "a.json: not valid JSON"),
    ],
)
def test_bad_zip(tmp_path, members, message):
    path = _zip(tmp_path / "s.zip", members)
    with pytest.raises(BlemoreError, match=message):
        read_predictions(path)


def test_macos_junk_in_zip_is_ignored(tmp_path):
    path = _zip(
        tmp_path / "s.zip", {"predictions.json": json.dumps({"test_0001": HAP}), "__MACOSX/._predictions.json": "x"}
    )
    assert read_predictions(path) == {"test_0001": HAP}


def test_not_a_zip_and_wrong_suffix(tmp_path):
    with pytest.raises(BlemoreError, match="not a readable zip"):
        read_predictions(_write(tmp_path / "s.zip", "hello"))
    with pytest.raises(BlemoreError, match="expected a .json or .zip"):
        read_predictions(_write(tmp_path / "s.txt", "{}"))


# --------------------------------------------------------------------------- writing


def test_predictions_from_indices():
    preds = predictions_from_indices(["x/test_0001.mov", "test_0002"], np.array([LABEL_INDEX["ang_hap_30_70"], 5]))
    assert preds == {"test_0001": _pair("ang", 30, "hap", 70), "test_0002": [{"emotion": "neu", "salience": 100}]}
    with pytest.raises(BlemoreError, match="clip 'a' appears twice"):
        predictions_from_indices(["a", "a.mov"], [0, 0])
    with pytest.raises(BlemoreError, match=f"clip 'a': {N_LABELS} is not a label index"):
        predictions_from_indices(["a"], [N_LABELS])
    with pytest.raises(BlemoreError, match="2 clip names"):
        predictions_from_indices(["a", "b"], [0])


def test_write_round_trip(tmp_path):
    preds = predictions_from_indices([f"test_{i:04d}" for i in range(N_LABELS)], np.arange(N_LABELS))
    local = write_predictions(preds, tmp_path / "out" / "p.json")
    zipped = write_submission_zip(preds, tmp_path / "s.zip")
    assert read_predictions(local) == preds == read_predictions(zipped)
    with zipfile.ZipFile(zipped) as zf:
        assert zf.namelist() == [SUBMISSION_MEMBER]
        assert json.loads(zf.read(SUBMISSION_MEMBER)) == {"predictions": preds}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "s.zip"]  # no temporary files left


def test_failed_write_leaves_nothing(tmp_path):
    bad = {"test_0001": HAP, "test_0002": []}
    with pytest.raises(BlemoreError, match="clip 'test_0002': empty list"):
        write_predictions(bad, tmp_path / "p.json")
    with pytest.raises(BlemoreError, match="clip 'test_0002'"):
        write_submission_zip(bad, tmp_path / "s.zip")
    with pytest.raises(BlemoreError, match="must be a .zip"):
        write_submission_zip({"test_0001": HAP}, tmp_path / "s.json")
    assert list(tmp_path.iterdir()) == []


def test_write_keeps_old_file_when_validation_fails(tmp_path):
    path = write_predictions({"test_0001": HAP}, tmp_path / "p.json")
    before = path.read_bytes()
    with pytest.raises(BlemoreError):
        write_predictions({"test_0001": []}, path)
    assert path.read_bytes() == before


# --------------------------------------------------------------------------- truth


def test_read_truth_official_columns_and_fractions(tmp_path):
    path = tmp_path / "meta.csv"
    path.write_text(
        "filename,video_id,fold,mix,emotion_1,emotion_2,emotion_1_salience,emotion_2_salience\n"
        "test_0001.mov,A1,,0,hap,,100,\n"
        "test_0002,A1,,1,hap,ang,0.7,0.3\n"
        "test_0003,A1,,1,ang,hap,50,50\n"
        "test_0004,A1,,,,,,\n"
    )
    assert read_truth(path) == {
        "test_0001": LABEL_INDEX["hap"],
        "test_0002": LABEL_INDEX["ang_hap_30_70"],
        "test_0003": LABEL_INDEX["ang_hap_50_50"],
    }


def test_read_truth_label_column(tmp_path):
    path = tmp_path / "meta.csv"
    path.write_text("filename,label\na,ang\nb,hap_ang_70_30\nc,\n")
    assert read_truth(path) == {"a": LABEL_INDEX["ang"], "b": LABEL_INDEX["ang_hap_30_70"]}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name,label\na,ang\n", "no 'filename' column"),
        ("filename,emotion_1\na,ang\n", "missing emotion_2"),
        ("filename,label\na,angry\n", "line 2 .clip 'a'.: unknown label 'angry'"),
        ("filename,label\na,ang\na,hap\n", "line 3 .clip 'a'.: clip appears twice"),
        ("filename,label\na,\n", "no labelled clips"),
        (
            "filename,emotion_1,emotion_2,emotion_1_salience,emotion_2_salience\na,hap,sad,60,40\n",
            "hap/sad with saliences 60/40 is not one of the 36",
        ),
        (
            "filename,emotion_1,emotion_2,emotion_1_salience,emotion_2_salience\na,hap,sad,x,40\n",
            "emotion_1_salience 'x' is not a number",
        ),
        (
            "filename,emotion_1,emotion_2,emotion_1_salience,emotion_2_salience\na,happy,,100,\n",
            "unknown emotion 'happy'",
        ),
    ],
)
def test_read_truth_errors(tmp_path, text, message):
    path = tmp_path / "meta.csv"
    path.write_text(text)
    with pytest.raises(BlemoreError, match=message):
        read_truth(path)


@needs_real_clips
def test_read_truth_of_the_real_clip_list_agrees_with_names():
    truth = read_truth(CLIPS_CSV)
    assert len(truth) == 3050
    assert truth == truth_from_names(truth)


def test_truth_from_anonymised_name_needs_metadata():
    with pytest.raises(BlemoreError, match="'test_0001' carries no label.*--truth"):
        truth_from_names(["test_0001.mov"])


# --------------------------------------------------------------------------- scoring


def test_strict_and_lenient():
    truth = {"a": LABEL_INDEX["hap"], "b": LABEL_INDEX["ang_hap_70_30"], "c": LABEL_INDEX["sad"]}
    preds = {
        "a.mov": HAP,  # right
        "b": _pair("ang", 60, "hap", 40),  # invalid; the scorer gives presence credit
        "x": HAP,  # extra
    }
    strict = score_predictions(preds, truth)
    assert (strict.scores.acc_presence, strict.scores.acc_salience) == (1 / 3, 0.0)
    assert (strict.n_scored, strict.missing, strict.extra, list(strict.invalid)) == (3, ["c"], ["x"], ["b"])
    lenient = score_predictions(preds, truth, lenient=True)
    assert (lenient.scores.acc_presence, lenient.scores.acc_salience, lenient.n_scored) == (1.0, 0.0, 2)
    d = lenient.as_dict()
    for key in ("acc_presence", "acc_salience", "score", "n_scored", "n_missing", "n_invalid", "confusion"):
        assert key in d
    assert np.array(d["confusion"]["counts"]).shape == (36, 37)
    assert json.loads(json.dumps(d)) == d


# ---- score --lenient is the reference scorer on every input the reference accepts

_NAMES = [
    "A102_ang_int1_ver1", "A102_disg_int2_ver1", "A55_fea_int3_ver1", "A303_neu_sit2_ver1", "A7_sad_int4_ver2",
    "A407_mix_disg_hap_50_50_ver1", "A407_mix_disg_hap_70_30_ver1", "A411_mix_ang_hap_30_70_ver1",
    "A427_mix_fea_sad_50_50_ver1", "A9_mix_ang_sad_70_30_ver2", "A9_hap_int1_ver1",
]
_READABLE_SALIENCES = [
    100, 100.0, 70, 30, 50, 50.0, 69.5, 70.5, 29.5, 30.49, 49.999, 1.0, 0, -30, 1e300, True, False,
    "70", "30", " 50 ", "50.0", "7e1", "70\n", "1_00", "+30", "0070",
]
_UNREADABLE_SALIENCES = ["abc", "", None, float("nan"), float("inf"), 10**400, [70], {"v": 70}]
_ODD_EMOTIONS = ["angry", "Hap", "", " hap", 3, None, True, 1.5]


@st.composite
def _odd_prediction(draw, name: str):
    """Entries for clip ``name``: often its truth written oddly, sometimes anything."""
    from tests.support.official_scorer import label_from_name

    kind = draw(st.integers(0, 9))
    if kind <= 4:  # the truth (or a near miss), saliences written in odd but readable ways
        entries = [dict(e) for e in label_from_name(name)]
        if draw(st.booleans()):
            entries.reverse()
        for e in entries:
            value = round(float(e["salience"])) if len(entries) == 2 else 100
            same = [value, float(value), str(value), f" {value}.0 ", value + 0.4, value - 0.5, value + 0.5]
            e["salience"] = draw(st.sampled_from(same if draw(st.integers(0, 3)) else _READABLE_SALIENCES))
            if draw(st.integers(0, 9)) == 0:
                del e["salience"]
        if draw(st.integers(0, 4)) == 0:
            entries[0]["emotion"] = draw(st.sampled_from([*EMOTIONS, *_ODD_EMOTIONS]))
        if draw(st.integers(0, 4)) == 0:
            entries.append({"emotion": draw(st.sampled_from(EMOTIONS)), "salience": 30})
        return entries
    if kind <= 7:  # any emotions, readable saliences
        entry = st.fixed_dictionaries(
            {"emotion": st.sampled_from([*EMOTIONS, *EMOTIONS, *_ODD_EMOTIONS])},
            optional={"salience": st.sampled_from(_READABLE_SALIENCES), "note": st.just("extra key")},
        )
        return draw(st.lists(entry, max_size=3))
    # anything: unreadable saliences, entries that are not objects, predictions that are not lists
    entry = st.one_of(
        st.fixed_dictionaries({"emotion": st.sampled_from(EMOTIONS),
                               "salience": st.sampled_from(_UNREADABLE_SALIENCES + _READABLE_SALIENCES)}),
        st.sampled_from(["hap", 7, None, ["hap", 70], {"salience": 100}]),
    )
    return draw(st.one_of(st.lists(entry, max_size=3), st.sampled_from([{}, "", "hap", None, 5, {"emotion": "hap"}])))


@st.composite
def _odd_submissions(draw):
    names = draw(st.lists(st.sampled_from(_NAMES), min_size=1, max_size=10))
    preds = {}
    for name in names:
        key = draw(st.sampled_from([name, f"{name}.mov", f"clips/{name}.mp4"]))
        preds[key] = draw(_odd_prediction(name))
    return preds


@settings(max_examples=600, deadline=None)
@given(preds=_odd_submissions())
def test_lenient_scores_exactly_as_the_reference_functions(preds):
    from tests.support.official_scorer import Refused, reference_scores

    report = score_predictions(preds, lenient=True)  # never raises, whatever the entries
    try:
        want = reference_scores(preds)
    except Refused:
        return
    assert (report.scores.acc_presence, report.scores.acc_salience) == want  # exactly, not approximately
    assert report.scores.score == (want[0] + want[1]) / 2
    assert report.n_scored == len(preds)


def test_lenient_reads_string_saliences_and_ignores_salience_for_presence():
    preds = {
        "A411_mix_ang_hap_30_70_ver1": [{"emotion": "hap", "salience": "70"}, {"emotion": "ang", "salience": "30"}],
        "A102_ang_int1_ver1": [{"emotion": "ang", "salience": "not read"}],
        "A407_mix_disg_hap_50_50_ver1": [{"emotion": "disg"}, {"emotion": "hap", "salience": 50}, {"emotion": "x"}],
    }
    r = score_predictions(preds, lenient=True)
    assert (r.scores.acc_presence, r.scores.acc_salience, r.n_scored) == (2 / 3, 0.5, 3)
    strict = score_predictions(preds)
    assert (strict.scores.acc_presence, strict.scores.acc_salience) == (0.0, 0.0)  # strict: all three invalid
    assert len(strict.invalid) == 3


def test_lenient_scores_every_key_even_two_for_one_clip():
    preds = {"A102_ang_int1_ver1": HAP, "A102_ang_int1_ver1.mov": [{"emotion": "ang", "salience": 100}]}
    r = score_predictions(preds, lenient=True)
    assert (r.n_scored, r.scores.acc_presence) == (2, 0.5)


def test_score_from_names():
    preds = {"A102_ang_int1_ver1": HAP, "A411_mix_ang_hap_30_70_ver1.mov": _pair("hap", 70, "ang", 30)}
    r = score_predictions(preds)
    assert (r.scores.acc_presence, r.scores.acc_salience, r.n_scored) == (0.5, 1.0, 2)


def test_score_example_files():
    sub, truth = example_files()
    r = score_predictions(load_predictions(sub), read_truth(truth))
    assert r.n_scored == 12 and not r.missing and not r.invalid
    assert 0.0 < r.scores.acc_presence < 1.0 and 0.0 < r.scores.acc_salience < 1.0


# --------------------------------------------------------------------------- probability tables


def test_read_probability_tables(tmp_path):
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(6), 4)
    names = [f"test_{i:04d}" for i in range(4)]
    csv_path = tmp_path / "p.csv"
    lines = ["filename,actor,ang,disg,fea,hap,sad,neu,label"] + [
        f"{n}.mov,A1," + ",".join(repr(float(v)) for v in row) + f",{'hap' if i else ''}"
        for i, (n, row) in enumerate(zip(names, probs))
    ]
    csv_path.write_text("\n".join(lines) + "\n")
    t = read_probability_table(csv_path)
    assert t.filenames == names and np.array_equal(t.probs, probs)
    assert t.labels == [None, "hap", "hap", "hap"]
    npz = tmp_path / "p.npz"
    np.savez(npz, probs=probs.astype(np.float32), filenames=np.array(names), labels=np.array([0, 1, 2, 3]))
    t = read_probability_table(npz)
    assert t.filenames == names and t.labels == ["ang", "disg", "fea", "hap"]
    assert np.array_equal(t.probs, probs.astype(np.float32).astype(np.float64))


def test_read_probability_table_parquet(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    df = pd.DataFrame({"filename": ["a", "b"], **{e: [1 / 6, 1 / 6] for e in ("ang", "disg", "fea", "hap", "sad", "neu")}})
    df.to_parquet(tmp_path / "p.parquet")
    t = read_probability_table(tmp_path / "p.parquet")
    assert t.filenames == ["a", "b"] and t.probs.shape == (2, 6)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("filename,ang,disg\na,1,0\n", "missing column.*fea"),
        ("filename,ang,disg,fea,hap,sad,neu\na,1,0,0,0,0,x\n", "row 0 .clip 'a'.: column neu value 'x'"),
        ("filename,ang,disg,fea,hap,sad,neu\na,1,0,0,0,0,-1\n", "row 0 .clip 'a'. has negative"),
        ("filename,ang,disg,fea,hap,sad,neu\na,1,0,0,0,0,nan\n", "row 0 .clip 'a'. has NaN"),
        ("filename,ang,disg,fea,hap,sad,neu\na,1,0,0,0,0,0\na.mov,1,0,0,0,0,0\n", "clip 'a' appears twice"),
        ("filename,ang,disg,fea,hap,sad,neu\n", "no rows"),
        ("filename,ang,disg,fea,hap,sad,neu\na,1,0,0,0,0,0\nb,1,1,1,0,0,0\n", r"row 1 .clip 'b'. sums to 3, not 1 .within 0.01."),
        ("filename,ang,disg,fea,hap,sad,neu\na,0.2,0,0,0,0,0\n", r"row 0 .clip 'a'. sums to 0.2, not 1"),
    ],
)
def test_bad_probability_tables(tmp_path, text, message):
    path = tmp_path / "p.csv"
    path.write_text(text)
    with pytest.raises(BlemoreError, match=message):
        read_probability_table(path)


def test_bad_npz(tmp_path):
    np.savez(tmp_path / "a.npz", X=np.zeros((2, 6)))
    with pytest.raises(BlemoreError, match="expected arrays 'probs'"):
        read_probability_table(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", probs=np.zeros((2, 6)), filenames=np.array(["a"]))
    with pytest.raises(BlemoreError, match=r"shape \(2, 6\), expected \(1, 6\)"):
        read_probability_table(tmp_path / "b.npz")
    (tmp_path / "c.npz").write_text("nope")
    with pytest.raises(BlemoreError, match="c.npz: not an .npz file"):
        read_probability_table(tmp_path / "c.npz")
    np.savez(tmp_path / "d.npz", probs=np.full((1, 6), 1 / 6), filenames=np.array([None], dtype=object))
    with pytest.raises(BlemoreError, match="d.npz: an array is stored as Python objects"):
        read_probability_table(tmp_path / "d.npz")


def test_read_truth_folds(tmp_path):
    path = tmp_path / "meta.csv"
    path.write_text(
        "filename,video_id,fold,label\n"
        "a,A1,0,ang\n"
        "b,A2,1.0,hap\n"
        "c,A3,,sad\n"
    )
    assert list(read_truth(path, folds=["1"])) == ["b"]
    assert list(read_truth(path, folds=["test"])) == ["c"]
    assert list(read_truth(path, folds=["0", "test"])) == ["a", "c"]
    with pytest.raises(BlemoreError, match="no labelled clips in fold.s. 3"):
        read_truth(path, folds=["3"])
    nofold = tmp_path / "nofold.csv"
    nofold.write_text("filename,label\na,ang\n")
    with pytest.raises(BlemoreError, match="no 'fold' column"):
        read_truth(nofold, folds=["0"])


def test_format_predictions_is_json():
    from blemore.submission import format_predictions

    preds = {"a": HAP, "b": _pair("ang", 30, "hap", 70)}
    assert json.loads(format_predictions(preds)) == preds
    assert json.loads(format_predictions(preds, challenge=True)) == {"predictions": preds}
    assert json.loads(format_predictions({})) == {}


def test_csv_not_utf8(tmp_path):
    path = tmp_path / "meta.csv"
    path.write_bytes(b"filename,label\n\xff\xfe,ang\n")
    with pytest.raises(BlemoreError, match="not UTF-8 text"):
        read_truth(path)
    path.write_bytes(b"filename,ang,disg,fea,hap,sad,neu\n\xff,1,0,0,0,0,0\n")
    with pytest.raises(BlemoreError, match="not UTF-8 text"):
        read_probability_table(path)


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**400), 10**400)
    | st.floats()
    | st.sampled_from(["hap", "ang", "neu", "emotion", "salience", "predictions", "test_0001"])
    | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["emotion", "salience", "predictions", "test_0001", "x"]), children, max_size=4),
    max_leaves=12,
)


_entries = st.lists(
    st.dictionaries(st.sampled_from(["emotion", "salience"]), _json_values | st.sampled_from(["hap", "sad", "neu"])),
    max_size=3,
)
_submissions = _json_values | st.dictionaries(st.sampled_from(["test_0001", "x.mov", "x"]), _entries | _json_values)


@settings(max_examples=300, deadline=None)
@given(obj=_submissions | st.fixed_dictionaries({"predictions": _submissions}))
def test_any_json_gives_a_result_or_a_user_error(obj):
    """Whatever the JSON, reading, validating and scoring end in a result or a BlemoreError."""
    truth = {"test_0001": LABEL_INDEX["hap"]}
    try:
        preds = parse_predictions(obj, source="fuzz.json")
    except BlemoreError:
        return
    find_problems(preds)
    try:
        validate_predictions(preds, source="fuzz.json")
    except BlemoreError:
        pass
    for lenient in (False, True):
        report = score_predictions(preds, truth, lenient=lenient)
        assert 0.0 <= report.scores.acc_presence <= 1.0


def test_huge_numbers_are_reported_not_crashed():
    assert "not 50/50" in clip_problem(_pair("hap", 10**400, "sad", 30))
    assert "expected 100" in clip_problem([{"emotion": "hap", "salience": 10**400}])
    assert score_predictions({"test_0001": [{"emotion": "hap", "salience": 10**400}]}, {"test_0001": 3}).n_scored == 1
