"""Model encoders: fp32 / bf16 autocast (run on the CPU) and the device-side video preprocessing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tests.support.avclips import make_clip
from blemore.cli import app
from blemore.encoders import get_encoder, hf
from blemore.encoders.model import effective_precision
from blemore.errors import BlemoreError
from tests.support.tiny_models import KINDS, SPECS, random_frames, tiny_audio_model, tiny_clip, tiny_model, tiny_videomae
from tests.support.tiny_models import inputs as _inputs
from tests.support.tiny_models import relative_error as _rel

torch.set_num_threads(1)


def _encode(kind: str, spec: str, precision: str) -> list[np.ndarray]:
    enc = get_encoder(spec, model=tiny_model(kind), precision=precision, batch_size=2)
    return enc.encode(_inputs(kind))


# -- precision ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_bf16_is_close_to_fp32_and_far_from_another_layer(kind):
    spec, other_spec = SPECS[kind]
    ref = _encode(kind, spec, "fp32")
    got = _encode(kind, spec, "bf16")
    other = _encode(kind, other_spec, "fp32")
    for g, r in zip(got, ref, strict=True):
        assert g.dtype == np.float32 and g.shape == r.shape and np.isfinite(g).all()
    err = _rel(got, ref)
    assert 1e-4 < err < 0.03  # bf16 really ran (not bit-equal), and stays within bf16 rounding
    assert _rel(other, ref) > 10 * err  # a wrong layer or a dropped layer norm would not pass


@pytest.mark.parametrize("kind", KINDS)
def test_auto_on_cpu_is_fp32_bit_for_bit(kind):
    spec = SPECS[kind][0]
    for a, b in zip(_encode(kind, spec, "auto"), _encode(kind, spec, "fp32"), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("precision, effective", [("auto", "fp32"), ("fp32", "fp32"), ("bf16", "bf16")])
@pytest.mark.parametrize("kind", KINDS)
def test_settings_record_the_effective_precision(kind, precision, effective):
    enc = get_encoder(SPECS[kind][0], model=tiny_model(kind), precision=precision)
    assert enc.settings()["precision"] == effective


def test_auto_means_bf16_on_cuda_only():
    assert effective_precision("auto", "cuda") == "bf16"
    assert effective_precision("auto", "cpu") == "fp32"
    assert effective_precision("fp32", "cuda") == "fp32"


@pytest.mark.parametrize("spec", ["clip", "wavlm-large:1", "opensmile"])
def test_unknown_precision_names_the_accepted_values(spec):
    model = None if spec == "opensmile" else tiny_model(spec.split(":")[0])
    with pytest.raises(BlemoreError, match=r"--precision 'fp16': expected one of auto, fp32, bf16"):
        get_encoder(spec, model=model, precision="fp16")


def test_unknown_precision_also_refused_when_built_directly():
    with pytest.raises(BlemoreError, match="expected one of auto, fp32, bf16"):
        hf.CLIPEncoder(base_name="clip", model_id="x", model=tiny_model("clip"), precision="half")


# -- device-side preprocessing ----------------------------------------------------------------------
def _reference_pixels(frames: np.ndarray, size: int, mean, std) -> torch.Tensor:
    """Plain reference: centre square, float bilinear antialiased resize, normalise."""
    n, h, w, _ = frames.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    x = torch.from_numpy(frames[:, top : top + side, left : left + side].copy()).permute(0, 3, 1, 2).float() / 255
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


@pytest.mark.parametrize("kind", ["clip", "videomae"])
def test_pixels_equal_a_plain_reference(kind):
    enc = get_encoder(SPECS[kind][0], model=tiny_model(kind))
    clips = [random_frames(5, 40, 56), random_frames(3, 48, 36, seed=1), random_frames(2, 50, 50, seed=2), random_frames(2, 32, 32, seed=3)]
    got = enc._pixels(clips)
    ref = torch.cat([_reference_pixels(c, 32, enc.pixel_mean, enc.pixel_std) for c in clips])
    assert got.dtype == torch.float32 and got.shape == (12, 3, 32, 32)
    np.testing.assert_allclose(got.numpy(), ref.numpy(), atol=1e-5)


def test_pixels_do_not_depend_on_the_chunk_size():
    x = torch.from_numpy(random_frames(7, 40, 56))
    a = hf._to_pixels(x, 32, hf.CLIP_MEAN, hf.CLIP_STD, chunk=2)
    b = hf._to_pixels(x, 32, hf.CLIP_MEAN, hf.CLIP_STD)
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_clip_features_are_the_model_on_reference_pixels():
    enc = get_encoder("clip", model=tiny_model("clip"), precision="fp32")
    clips = _inputs("clip")
    got = enc.encode(clips)
    model = tiny_model("clip").eval()
    for frames, g in zip(clips, got, strict=True):
        with torch.no_grad():
            ref = model(pixel_values=_reference_pixels(frames, 32, hf.CLIP_MEAN, hf.CLIP_STD)).pooler_output
        np.testing.assert_allclose(g, ref.numpy(), atol=1e-5)


def _tiny_clip_with_projection(seed: int = 0):
    import transformers as tf

    from tests.support.tiny_models import TINY_VISION

    torch.manual_seed(seed)
    return tf.CLIPVisionModelWithProjection(tf.CLIPVisionConfig(**TINY_VISION, projection_dim=12, initializer_range=0.2))


def test_clip_b32_is_the_projected_image_embedding_of_every_frame():
    enc = get_encoder("clip-b32", model=_tiny_clip_with_projection(), precision="fp32")
    assert (enc.name, enc.dim, enc.layer) == ("clip-b32", 12, "projected")
    assert enc.video.fps is None and enc.video.crop == "centre"  # every frame, as the official script reads them
    clips = _inputs("clip")
    got = enc.encode(clips)
    model = _tiny_clip_with_projection().eval()
    for frames, g in zip(clips, got, strict=True):
        with torch.no_grad():  # CLIPModel.get_image_features == the vision tower's projected pooled output
            ref = model(pixel_values=_reference_pixels(frames, 32, hf.CLIP_MEAN, hf.CLIP_STD)).image_embeds
        assert g.shape == (len(frames), 12)
        np.testing.assert_allclose(g, ref.numpy(), atol=1e-5)
    hidden = get_encoder("clip-b32:1", model=_tiny_clip_with_projection())
    assert (hidden.name, hidden.dim) == ("clip-b32-l1", 32)  # a chosen layer: its CLS token, unprojected


def test_audio_default_layer_is_the_models_last_hidden_state():
    """s3prl's ``last_hidden_state`` of HuBERT Large is the encoder's output after the final layer
    norm; in transformers that is ``last_hidden_state`` = ``hidden_states[-1]``."""
    enc = get_encoder("hubert-large", model=tiny_model("hubert-large"), precision="fp32")
    x = np.random.default_rng(4).normal(size=4000).astype(np.float32)
    (got,) = enc.encode([x])
    model = tiny_model("hubert-large").eval()
    z = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    with torch.no_grad():
        ref = model(torch.from_numpy(z[None])).last_hidden_state[0].numpy()
    np.testing.assert_allclose(got, ref, atol=2e-4)


@pytest.mark.parametrize("kind", ["wavlm-large", "wav2vec2"])
def test_the_last_hidden_state_of_a_padded_batch_is_each_clips_own(kind):
    enc = get_encoder(kind, model=tiny_model(kind) if kind != "wav2vec2" else tiny_audio_model(kind), batch_size=3)
    rng = np.random.default_rng(5)
    xs = [rng.normal(size=n).astype(np.float32) for n in (3000, 2000, 3000)]
    together = enc.encode(xs)
    for x, g in zip(xs, together, strict=True):
        np.testing.assert_allclose(g, enc.encode([x])[0], atol=2e-4)


def test_videomae_windows_are_the_model_on_reference_pixels():
    enc = get_encoder("videomae:2", model=tiny_model("videomae"), precision="fp32")
    long, short = _inputs("videomae")  # 9 frames: 2 windows, the 9th dropped; 3 frames: padded with the 3rd
    got = enc.encode([long, short])
    model = tiny_model("videomae").eval()
    for frames, g in [(long[:8], got[0]), (np.concatenate([short, short[-1:]]), got[1])]:
        pixels = _reference_pixels(frames, 32, hf.IMAGENET_MEAN, hf.IMAGENET_STD).view(-1, 4, 3, 32, 32)
        with torch.no_grad():
            ref = model(pixel_values=pixels, output_hidden_states=True).hidden_states[2].mean(dim=1)
        assert g.shape == (len(pixels), 32)
        np.testing.assert_allclose(g, ref.numpy(), atol=1e-5)


# -- through the real code path, against the plain model ------------------------------------------
def _reference_states(model, x, layer):
    x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    with torch.no_grad():
        return model.eval()(torch.from_numpy(x[None]), output_hidden_states=True).hidden_states[layer][0].numpy()


@pytest.mark.parametrize("kind", ["wavlm-large", "hubert-large", "wav2vec2"])
def test_audio_encoder_matches_full_unbatched_model(kind):
    enc = get_encoder(f"{kind}:1-2", model=tiny_audio_model(kind), batch_size=3)
    assert enc.name == f"{kind}-l1-2" and enc.output_fps(16000) == 800
    rng = np.random.default_rng(0)
    xs = [rng.normal(size=n).astype(np.float32) for n in (3000, 2000, 2400)]
    got = enc.encode(xs)
    full = tiny_audio_model(kind)  # same seed, untruncated
    for x, g in zip(xs, got):
        ref = (_reference_states(full, x, 1) + _reference_states(full, x, 2)) / 2
        assert g.shape == ref.shape and g.dtype == np.float32
        np.testing.assert_allclose(g, ref, atol=2e-4)


def test_audio_encoder_layer_out_of_range():
    with pytest.raises(BlemoreError, match="layer 9 does not exist"):
        get_encoder("wavlm-large:9", model=tiny_audio_model("wavlm-large"))


def test_clip_encoder_per_frame_and_layers():
    enc = get_encoder("clip", model=tiny_clip())
    assert enc.video.short_side == 32 and enc.name == "clip"
    a = np.random.default_rng(0).integers(0, 255, (5, 32, 48, 3), dtype=np.uint8)
    out = enc.encode([a, a[:2]])
    assert [o.shape for o in out] == [(5, 32), (2, 32)]
    np.testing.assert_allclose(out[1], out[0][:2], atol=1e-5)  # frames are independent
    enc1 = get_encoder("clip:1", model=tiny_clip())
    assert enc1.name == "clip-l1" and enc1.encode([a])[0].shape == (5, 32)


def test_videomae_windows():
    enc = get_encoder("videomae:2", model=tiny_videomae())
    assert enc.output_fps(30) == 30 / 4
    frames = np.random.default_rng(0).integers(0, 255, (9, 32, 40, 3), dtype=np.uint8)
    out = enc.encode([frames, frames[:2]])
    assert [o.shape for o in out] == [(2, 32), (1, 32)]  # 9 frames -> 2 whole windows; 2 frames -> 1 padded


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(400, 3000), min_size=1, max_size=5), st.floats(1e-3, 1e3), st.floats(-5, 5),
       st.integers(0, 2**31))
def test_batched_normalisation_on_the_device_equals_the_per_waveform_one(lengths, scale, offset, seed):
    from blemore.encoders.hf import _zero_mean_unit_variance

    rng = np.random.default_rng(seed)
    waves = [(offset + scale * rng.normal(size=n)).astype(np.float32) for n in lengths]
    width = max(lengths)
    batch = np.zeros((len(waves), width), np.float32)
    for i, x in enumerate(waves):
        batch[i, : len(x)] = x
    sizes = torch.tensor(lengths)
    mask = torch.arange(width)[None, :] < sizes[:, None]
    got = _zero_mean_unit_variance(torch.from_numpy(batch), mask, sizes).numpy()
    assert got.dtype == np.float32
    for i, x in enumerate(waves):
        x64 = x.astype(np.float64)  # Hugging Face's zero_mean_unit_var_norm, without float32 cancellation
        ref = (x64 - x64.mean()) / np.sqrt(x64.var() + 1e-7)
        np.testing.assert_allclose(got[i, : len(x)], ref, rtol=1e-5, atol=1e-5)
        assert not got[i, len(x) :].any()  # padding stays zero


def test_video_encoders_get_the_centre_square_from_the_decoder_with_the_same_features():
    from blemore.media.decoder import centre_square

    enc = get_encoder("clip", model=tiny_clip())
    assert enc.video.crop == "centre" and enc.settings()["video_crop"] == "centre"
    frames = np.random.default_rng(1).integers(0, 255, (4, 32, 56, 3), dtype=np.uint8)
    square = np.stack([centre_square(f) for f in frames])
    np.testing.assert_array_equal(enc.encode([square])[0], enc.encode([frames])[0])
    mae = get_encoder("videomae:2", model=tiny_videomae())
    assert mae.video == enc.video  # one decode serves both


# -- the command line ---------------------------------------------------------------------------
def test_cli_extract_precision_bf16(tmp_path, monkeypatch):
    monkeypatch.setattr(hf, "load_pretrained", lambda *a, **k: tiny_model("clip"))
    (tmp_path / "clips").mkdir()
    make_clip(tmp_path / "clips" / "A102_ang_int1_ver1.mov", seconds=0.4, size=(96, 64), audio=False)
    out = tmp_path / "features"
    runner = CliRunner()
    result = runner.invoke(app, ["extract", str(tmp_path / "clips"), "--encoders", "clip", "--out", str(out),
                                 "--precision", "bf16", "--workers", "0", "--quiet"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "clip" / "settings.json").read_text())["config"]["precision"] == "bf16"
    f = np.load(out / "clip" / "A102_ang_int1_ver1.npy")
    assert f.dtype == np.float32 and f.shape[1] == 32 and len(f) > 0 and np.isfinite(f).all()


@pytest.mark.parametrize("args, message", [(["--precision", "fp16"], "Invalid value for '--precision'"),
                                           (["--precision", "fp16", "--ray"], "Invalid value for '--precision'")])
def test_cli_extract_bad_precision(tmp_path, args, message):
    (tmp_path / "clips").mkdir()
    result = CliRunner().invoke(app, ["extract", str(tmp_path / "clips"), "--encoders", "opensmile",
                                      "--out", str(tmp_path / "f"), *args])
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "f").exists()


def test_ray_workers_build_their_encoders_with_the_precision(monkeypatch):
    from blemore.extraction import ray as distributed

    monkeypatch.setattr(hf, "load_pretrained", lambda *a, **k: tiny_model("clip"))
    monkeypatch.setattr(distributed, "_ENCODER_CACHE", {})
    built = {p: distributed._encoders_in_worker(["clip"], "cpu", None, False, p)[0] for p in ("bf16", "fp32")}
    assert {p: e.settings()["precision"] for p, e in built.items()} == {"bf16": "bf16", "fp32": "fp32"}
    assert built["bf16"] is distributed._encoders_in_worker(["clip"], "cpu", None, False, "bf16")[0]  # cached
