"""The encoder contract: spec grammar, local model references, precision words."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blemore.encoders.base import PRECISIONS, check_precision, is_local_model, parse_layers, parse_spec
from blemore.errors import BlemoreError


def test_parse_spec_parts():
    s = parse_spec("wav2vec2-large=facebook/wav2vec2-large-xlsr-53@main:6-12")
    assert (s.name, s.model_id, s.revision, s.layers) == ("wav2vec2-large", "facebook/wav2vec2-large-xlsr-53", "main", (6, 12))
    assert parse_spec("opensmile").layers is None
    assert parse_spec("clip:last").layers == "last"


@pytest.mark.parametrize("text, model, layers", [
    ("hubert-large=/models/hubert-large-ll60k:24", "/models/hubert-large-ll60k", (24, 24)),
    ("hubert-large=~/weights/hubert", "~/weights/hubert", None),
    ("clip-b32=./clip b32", "./clip b32", None),
    ("videomae=../ckpt/vit_g_hybrid_pt_1200e_k710_ft.pth:last", "../ckpt/vit_g_hybrid_pt_1200e_k710_ft.pth", "last"),
])
def test_a_local_path_is_a_model_reference(text, model, layers):
    s = parse_spec(text)
    assert (s.model_id, s.layers) == (model, layers)
    assert is_local_model(s.model_id)


def test_local_means_a_path_like_start_or_an_existing_path(tmp_path, monkeypatch):
    assert not is_local_model("facebook/hubert-large-ll60k") and not is_local_model("hubert")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "facebook" / "hubert").mkdir(parents=True)
    assert is_local_model("facebook/hubert")  # an existing relative folder wins, as in transformers


@pytest.mark.parametrize("text", ["wavlm-large:x", "wavlm-large:12-6", "wavlm-large:1-2-3", "Bad Name", "", "clip= "])
def test_bad_specs(text):
    with pytest.raises(BlemoreError):
        parse_spec(text)


@given(st.integers(0, 60), st.integers(0, 60))
def test_parse_layers_ranges(a, b):
    if a <= b:
        assert parse_layers(f"{a}-{b}") == (a, b)
    else:
        with pytest.raises(BlemoreError, match="ends before"):
            parse_layers(f"{a}-{b}")


def test_precision_words():
    assert PRECISIONS == ("auto", "fp32", "bf16")
    assert [check_precision(p) for p in PRECISIONS] == list(PRECISIONS)
    with pytest.raises(BlemoreError, match="--precision 'half': expected one of auto, fp32, bf16"):
        check_precision("half")
