"""The registry: a table of rows, each built through its factory; specs, local weights, requirements."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from blemore.encoders import ENCODERS, BuildRequest, Encoder, EncoderInfo, get_encoder, list_encoders, parse_spec
from blemore.encoders import registry
from blemore.errors import BlemoreError
from tests.support.tiny_models import tiny_audio_model, tiny_clip, tiny_videomae

torch.set_num_threads(1)


@pytest.mark.parametrize("text, match", [("nope", "unknown encoder 'nope'"), ("opensmile:3", "no model id or layers"),
                                         ("egemaps=x/y", "no model id or layers")])
def test_registry_errors(text, match):
    with pytest.raises(BlemoreError, match=match):
        get_encoder(text)


def test_uncached_weights_say_how_to_fetch(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(BlemoreError, match="not in the local Hugging Face cache.*hf download microsoft/wavlm-large"):
        get_encoder("wavlm-large:12")


@pytest.mark.parametrize("info", list_encoders(), ids=lambda i: i.name)
def test_every_row_names_a_factory_and_what_it_gives(info: EncoderInfo):
    assert callable(info.builder())
    assert info.modality in ("audio", "video") and info.dim > 0 and info.rate
    assert info.offline == (not info.model_id)
    assert info.default_layer or info.offline  # model encoders say what they give without :LAYERS


@pytest.mark.parametrize("name", ["opensmile", "egemaps", "facemesh"])
def test_offline_encoders_have_the_width_their_row_says(name):
    enc = get_encoder(name)
    assert (enc.name, enc.modality, enc.dim) == (name, ENCODERS[name].modality, ENCODERS[name].dim)


TINY = {"wavlm-large": tiny_audio_model("wavlm-large"), "hubert-large": tiny_audio_model("hubert-large"),
        "wav2vec2": tiny_audio_model("wav2vec2"), "clip": tiny_clip(), "videomae": tiny_videomae()}


@pytest.mark.parametrize("name", ["wavlm-large", "hubert-large", "wav2vec2", "clip", "videomae"])
def test_model_encoders_are_built_by_their_rows_factory(name):
    enc = get_encoder(name, model=TINY[name])
    assert enc.modality == ENCODERS[name].modality and enc.model_id == ENCODERS[name].model_id


def test_hubert_large_defaults_to_the_last_hidden_state():
    enc = get_encoder("hubert-large", model=tiny_audio_model("hubert-large"))
    assert (enc.name, enc.layer) == ("hubert-large", "last")
    assert get_encoder("hubert-large:last", model=tiny_audio_model("hubert-large")).name == "hubert-large"
    assert get_encoder("hubert-large:3", model=tiny_audio_model("hubert-large")).name == "hubert-large-l3"
    assert "last hidden state" in ENCODERS["hubert-large"].default_layer


def test_a_new_encoder_is_one_row_and_one_factory(monkeypatch):
    monkeypatch.setattr(registry, "ENCODERS", dict(registry.ENCODERS))
    registry.register(EncoderInfo("echo", "audio", f"{__name__}:build_echo", 2, "per clip"))
    enc = get_encoder("echo", batch_size=3)
    assert isinstance(enc, Echo) and (enc.name, enc.batch_size) == ("echo", 3)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(EncoderInfo("echo", "audio", f"{__name__}:build_echo", 2, "per clip"))


class Echo(Encoder):
    modality = "audio"
    dim = 2

    def __init__(self, request: BuildRequest):
        self.name, self.batch_size = request.name, request.batch_size

    def output_fps(self, input_rate):
        return None

    def encode(self, inputs):
        return [np.zeros((1, 2), np.float32) for _ in inputs]


def build_echo(request: BuildRequest) -> Echo:
    return Echo(request)


def test_a_missing_package_is_named_with_its_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "transformers" else real(name, *a))
    with pytest.raises(BlemoreError, match=r"the wavlm-large encoder needs transformers: pip install 'blemore\[hf\]'"):
        get_encoder("wavlm-large:1", model=tiny_audio_model("wavlm-large"))


# -- where the weights come from ----------------------------------------------------------------
def test_store_names():
    def name(text):
        spec = parse_spec(text)
        return registry.store_name(spec, ENCODERS[spec.name])

    assert name("hubert-large") == name("hubert-large=facebook/hubert-large-ll60k") == "hubert-large"
    assert name("wav2vec2-large=facebook/wav2vec2-large-xlsr-53") == "wav2vec2-large-facebook-wav2vec2-large-xlsr-53"
    assert name("hubert-large=/models/Hubert Large") == "hubert-large"  # a local path never enters the name
    assert name("wavlm-large@abc123") == "wavlm-large-abc123"


def test_a_local_folder_loads_those_weights_and_keeps_the_encoders_name(tmp_path):
    model = tiny_audio_model("hubert-large", seed=3)
    model.save_pretrained(tmp_path / "my weights" / "hubert")
    enc = get_encoder(f"hubert-large={tmp_path / 'my weights' / 'hubert'}:2")
    assert enc.name == "hubert-large-l2"
    assert enc.settings()["model_id"] == str((tmp_path / "my weights" / "hubert").resolve())
    json.dumps(enc.settings())
    same = get_encoder("hubert-large:2", model=tiny_audio_model("hubert-large", seed=3))
    x = np.random.default_rng(0).normal(size=3000).astype(np.float32)
    np.testing.assert_array_equal(enc.encode([x])[0], same.encode([x])[0])


def test_a_relative_local_folder(tmp_path, monkeypatch):
    tiny_clip(seed=1).save_pretrained(tmp_path / "clip")
    monkeypatch.chdir(tmp_path)
    enc = get_encoder("clip-base=./clip")
    assert enc.name == "clip-base" and enc.model_id == str((tmp_path / "clip").resolve())


@pytest.mark.parametrize("make, text, match", [
    (None, "hubert-large={p}/none", "no such folder or file"),
    ("dir", "hubert-large={p}/w@main", "local weights have no @REVISION"),
    ("file", "hubert-large={p}/w", "is a folder written by save_pretrained"),
    ("dir", "hubert-large={p}/w", "not a Hugging Face model folder"),
])
def test_bad_local_weights_are_one_clear_error(tmp_path, make, text, match):
    if make == "dir":
        (tmp_path / "w").mkdir()
    elif make == "file":
        (tmp_path / "w").write_bytes(b"not a checkpoint")
    with pytest.raises(BlemoreError, match=match):
        get_encoder(text.format(p=tmp_path))
