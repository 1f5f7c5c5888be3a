"""ImageBind: both towers from one full-model checkpoint, the official frames and mel spectrograms."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from blemore.cli import app
from blemore.encoders import get_encoder
from blemore.encoders import imagebind as ib
from blemore.errors import BlemoreError
from tests.support.avclips import make_clip
from tests.support.official_checkpoints import TINY_IB, imagebind_reference, imagebind_state, save
from tests.support.tiny_models import random_frames, relative_error

torch.set_num_threads(1)
HEADS = 2


@pytest.fixture
def checkpoint(tmp_path):
    return save(imagebind_state(), tmp_path / "imagebind_tiny.pth")


def _tower(path, tower):
    return ib.load_tower(path, tower, heads=HEADS).eval()


# -- the checkpoint --------------------------------------------------------------------------------
@pytest.mark.parametrize("tower", ["vision", "audio"])
def test_each_tower_loads_strictly_from_the_full_model_and_computes_its_embedding(checkpoint, tower):
    model = _tower(checkpoint, tower)
    v = TINY_IB["vision"]
    x = torch.randn(3, 3, v["image_size"], v["image_size"]) if tower == "vision" else torch.randn(3, 1, 128, 204)
    with torch.no_grad():
        got, ref = model(x), imagebind_reference(imagebind_state(), tower, x, HEADS)
    assert got.shape == (3, TINY_IB["out_dim"])
    np.testing.assert_allclose(got.numpy(), ref.numpy(), atol=2e-5 if tower == "vision" else 5e-4)
    norm = 1.0 if tower == "vision" else 20.0
    np.testing.assert_allclose(np.linalg.norm(got.numpy(), axis=1), norm, rtol=1e-5)


def test_the_huge_towers_are_read_from_their_shapes():
    for arch in (ib.VISION_HUGE, ib.AUDIO_HUGE):
        model = ib.build_tower(arch, device="meta")
        assert ib.infer_arch(model.state_dict(), arch.tower) == arch
    assert ib.VISION_HUGE.tokens == 257 and ib.AUDIO_HUGE.tokens == 229


@pytest.mark.parametrize("edit, match", [
    (lambda s: s.pop("modality_trunks.vision.blocks.1.norm_2.bias"), r"1 missing \(trunk.blocks.1.norm_2.bias\)"),
    (lambda s: s.update({"logit_scale": torch.ones(())}), r"1 unexpected \(logit_scale\)"),
    (lambda s: s.update({"modality_trunks.vision.blocks.0.attn.bias_k": torch.ones(1, 1, 16)}),
     r"1 unexpected \(trunk.blocks.0.attn.bias_k\)"),
    (lambda s: s.pop("modality_heads.vision.2.weight"), r"no modality_preprocessors.vision.rgbt_stem"),
    (lambda s: s.update({"modality_preprocessors.vision.pos_embedding_helper.pos_embed": torch.ones(1, 6, 16)}),
     "6 position embeddings, the input makes 5 tokens"),
])
def test_a_checkpoint_with_a_wrong_key_is_a_one_line_error(tmp_path, edit, match):
    state = imagebind_state()
    edit(state)
    path = save(state, tmp_path / "bad.pth")
    with pytest.raises(BlemoreError, match=match) as err:
        _tower(path, "vision")
    assert "\n" not in str(err.value)


def test_the_registry_builds_both_from_one_file(checkpoint, monkeypatch):
    monkeypatch.setitem(ib._HEADS, 16, 2)
    vision = get_encoder(f"imagebind-vision={checkpoint}")
    audio = get_encoder(f"imagebind-audio={checkpoint}")
    assert (vision.name, vision.modality, vision.dim) == ("imagebind-vision-imagebind_tiny", "video", 12)
    assert (audio.name, audio.modality, audio.dim) == ("imagebind-audio-imagebind_tiny", "audio", 12)
    assert vision.output_fps(30.0) == 30.0 and audio.output_fps(16000.0) == 0.5
    assert vision.video.short_side is None and vision.video.fps is None


# -- inputs --------------------------------------------------------------------------------------
def _official_frames(frames: np.ndarray, size: int) -> torch.Tensor:
    """The official loader on a clip: (C, T, H, W) / 255, pytorchvideo's short_side_scale,
    NormalizeVideo, uniform_crop(spatial_idx=1); returned as (T, C, size, size)."""
    video = torch.from_numpy(frames).permute(3, 0, 1, 2).float() / 255.0
    c, t, h, w = video.shape
    if w < h:
        new_h, new_w = int(math.floor((float(h) / w) * size)), size
    else:
        new_h, new_w = size, int(math.floor((float(w) / h) * size))
    video = torch.nn.functional.interpolate(video, size=(new_h, new_w), mode="bilinear", align_corners=False)
    video = (video - torch.tensor(ib.CLIP_MEAN)[:, None, None, None]) / torch.tensor(ib.CLIP_STD)[:, None, None, None]
    y, x = int(math.ceil((new_h - size) / 2)), int(math.ceil((new_w - size) / 2))
    return video[:, :, y : y + size, x : x + size].permute(1, 0, 2, 3)


@pytest.mark.parametrize("shape", [(4, 40, 57), (3, 57, 40), (2, 30, 30), (1, 200, 301)])
def test_vision_pixels_equal_the_official_loader(shape):
    frames = random_frames(*shape)
    got = ib.vision_pixels(torch.from_numpy(frames), 28, chunk=3)
    np.testing.assert_allclose(got.numpy(), _official_frames(frames, 28).numpy(), atol=2e-6)


def _official_melspec(wave: np.ndarray) -> torch.Tensor:
    """waveform2melspec and the loader's normalisation, with the filterbank of blemore.encoders.fbank
    (checked apart against a plain reference)."""
    from blemore.encoders.fbank import fbank

    w = torch.from_numpy(wave.copy())[None]
    w -= w.mean()
    spec = fbank(w)[0].transpose(0, 1)
    p = 204 - spec.size(1)
    spec = torch.nn.functional.pad(spec, (0, p)) if p > 0 else spec[:, :204]
    return ((spec - (-4.268)) / 9.138)[None]


@pytest.mark.parametrize("n", [32000, 5000, 40000])
def test_melspec_is_the_official_clip_preparation(n):
    wave = (0.1 * np.random.default_rng(n).standard_normal(n) + 0.02).astype(np.float32)
    got = ib.melspec(torch.from_numpy(wave)[None])[0]
    torch.testing.assert_close(got, _official_melspec(wave))


@settings(max_examples=80, deadline=None)
@given(n=st.integers(0, 200_000))
def test_audio_clips_are_consecutive_and_cover_all_but_a_tail_shorter_than_a_frame(n):
    spans = ib.audio_clips(n)
    assert all(b - a <= 32000 for a, b in spans)
    assert all(spans[i][1] == spans[i + 1][0] for i in range(len(spans) - 1))
    assert all(a % 32000 == 0 for a, _ in spans)
    covered = spans[-1][1] if spans else 0
    assert n - covered < 400 and (not spans or spans[-1][1] - spans[-1][0] >= 400)


# -- the encoders --------------------------------------------------------------------------------
def test_the_vision_encoder_embeds_every_frame(checkpoint):
    enc = ib.ImageBindVisionEncoder(model=_tower(checkpoint, "vision"), precision="fp32", batch_size=2)
    clips = [random_frames(5, 40, 57, seed=1), random_frames(2, 30, 30, seed=2)]
    got = enc.encode(clips)
    for frames, g in zip(clips, got, strict=True):
        with torch.no_grad():
            ref = imagebind_reference(imagebind_state(), "vision", _official_frames(frames, 28), HEADS)
        assert g.shape == (len(frames), 12) and g.dtype == np.float32
        np.testing.assert_allclose(g, ref.numpy(), atol=2e-5)


def test_the_audio_encoder_embeds_every_two_seconds(checkpoint):
    enc = ib.ImageBindAudioEncoder(model=_tower(checkpoint, "audio"), precision="fp32", batch_size=2)
    rng = np.random.default_rng(0)
    waves = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (80000, 20000)]
    got = enc.encode(waves)
    for wave, g in zip(waves, got, strict=True):
        specs = torch.stack([_official_melspec(wave[a:b]) for a, b in ib.audio_clips(len(wave))])
        with torch.no_grad():
            ref = imagebind_reference(imagebind_state(), "audio", specs, HEADS)
        assert g.shape == (len(specs), 12)
        np.testing.assert_allclose(g, ref.numpy(), atol=5e-4)
    with pytest.raises(BlemoreError, match=r"audio too short for imagebind-audio \(300 samples"):
        enc.encode([np.zeros(300, np.float32)])


@pytest.mark.parametrize("tower", ["vision", "audio"])
def test_bf16_is_close_to_fp32_and_auto_on_the_cpu_is_fp32(checkpoint, tower):
    cls = ib.ImageBindVisionEncoder if tower == "vision" else ib.ImageBindAudioEncoder
    inputs = ([random_frames(3, 40, 57)] if tower == "vision"
              else [(0.1 * np.random.default_rng(1).standard_normal(40000)).astype(np.float32)])
    ref = cls(model=_tower(checkpoint, tower), precision="fp32").encode(inputs)
    got = cls(model=_tower(checkpoint, tower), precision="bf16").encode(inputs)
    assert 1e-5 < relative_error(got, ref) < 0.03
    for a, b in zip(cls(model=_tower(checkpoint, tower), precision="auto").encode(inputs), ref, strict=True):
        np.testing.assert_array_equal(a, b)


def test_cli_extracts_imagebind_audio_from_a_checkpoint_file(tmp_path, checkpoint, monkeypatch):
    monkeypatch.setitem(ib._HEADS, 16, 2)
    (tmp_path / "clips").mkdir()
    make_clip(tmp_path / "clips" / "A102_ang_int1_ver1.mov", seconds=2.5, size=(64, 48))
    out = tmp_path / "features"
    result = CliRunner().invoke(app, ["extract", str(tmp_path / "clips"), "--encoders",
                                      f"imagebind-audio={checkpoint}", "--out", str(out), "--workers", "0", "--quiet"])
    assert result.exit_code == 0, result.output
    folder = out / "imagebind-audio-imagebind_tiny"
    f = np.load(folder / "A102_ang_int1_ver1.npy")
    assert f.shape == (2, 12) and np.isfinite(f).all()
    config = json.loads((folder / "settings.json").read_text())["config"]
    assert config["model_id"] == "imagebind_tiny.pth" and config["tower"] == "audio"
