"""Loading feature sources: every damaged or ambiguous file is one error naming the file and the clip."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from blemore.errors import BlemoreError
from blemore.features.loading import available_clips, load_source


def _npz(path, names, dim=3, **extra):
    np.savez(path, X=np.arange(len(names) * dim, dtype=np.float32).reshape(len(names), dim),
             filenames=np.asarray(names, dtype=str), **extra)
    return path


def test_rows_follow_the_requested_clips(tmp_path):
    path = _npz(tmp_path / "f.npz", ["a", "b.mov", "c"])
    rows = load_source(path, ["c", "a"])
    assert rows.X.tolist() == [[6, 7, 8], [0, 1, 2]]
    assert available_clips(path) == ["a", "b", "c"]


def test_a_repeated_clip_is_named_with_both_rows(tmp_path):
    # row 2 should have been 'c': the error names the repeated clip, not the missing one
    path = _npz(tmp_path / "f.npz", ["a", "b", "a"])
    with pytest.raises(BlemoreError, match=r"f.npz: clip 'a' appears twice in 'filenames', rows 0 and 2; each clip "
                       "needs exactly one row"):
        load_source(path, ["a", "b", "c"])


def test_two_spellings_of_one_clip_are_a_repeat(tmp_path):
    path = _npz(tmp_path / "f.npz", ["x/a.mov", "b", "a"])
    with pytest.raises(BlemoreError, match=r"clip 'a' appears twice .*rows 0 and 2 \(as 'x/a.mov' and 'a'\)"):
        available_clips(path)


def test_empty_name(tmp_path):
    with pytest.raises(BlemoreError, match="'filenames' row 1 is empty"):
        available_clips(_npz(tmp_path / "f.npz", ["a", ""]))


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (lambda p: p.write_bytes(pickle.dumps({"X": [[1.0]], "filenames": ["a"]})), "a Python pickle, not an .npz"),
        (lambda p: p.write_text("filename,x\na,1\n"), r"not an .npz file"),
        (lambda p: np.save(p.with_suffix(".npy"), np.zeros((2, 3))) or p.write_bytes(p.with_suffix(".npy").read_bytes()),
         "a single .npy array, not an .npz"),
        (lambda p: np.savez(p, X=np.zeros((1, 2)), filenames=np.array([None], dtype=object)), "stored as Python objects"),
        (lambda p: np.savez(p, X=np.array([["a", "b"]]), filenames=np.array(["a"])), "X must hold real numbers"),
        (lambda p: np.savez(p, features=np.zeros((1, 2))), "needs arrays 'X' and 'filenames', found features"),
        (lambda p: p.write_bytes(_truncated(p)), "not a readable .npz|damaged .npz"),
    ],
)
def test_damaged_clip_level_files(tmp_path, write, message):
    path = tmp_path / "f.npz"
    write(path)
    with pytest.raises(BlemoreError, match=message) as info:
        load_source(path, ["a"])
    assert str(path) in str(info.value)


def _truncated(path):
    _npz(path, ["a", "b"])
    data = path.read_bytes()
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (lambda p: p.write_bytes(pickle.dumps([[1.0, 2.0]])), "not a .npy array"),
        (lambda p: np.savez(p.open("wb"), a=np.zeros(2)), "an .npz archive, expected one .npy array"),
        (lambda p: np.save(p, np.array([["x", "y"]])), "must be real numbers, got dtype <U1"),
        (lambda p: p.write_bytes(b"\x93NUMPY\x01\x00"), "not a readable .npy"),
    ],
)
def test_damaged_frame_level_files(tmp_path, write, message):
    folder = tmp_path / "feats"
    folder.mkdir()
    np.save(folder / "a.npy", np.zeros((4, 2), dtype=np.float32))
    write(folder / "b.npy")
    with pytest.raises(BlemoreError, match=message) as info:
        load_source(folder, ["a", "b"])
    assert str(folder / "b.npy") in str(info.value)
