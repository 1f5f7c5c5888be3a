"""VideoMAEv2: the official checkpoint layout, windows padded with zero frames, the official pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from blemore.encoders import get_encoder
from blemore.encoders import videomae_v2 as v2
from blemore.errors import BlemoreError
from tests.support.official_checkpoints import TINY_V2, save, videomaev2_reference, videomaev2_state
from tests.support.tiny_models import random_frames, relative_error

torch.set_num_threads(1)
ARCH = v2.VideoMAEv2Arch(**TINY_V2)


@pytest.fixture
def checkpoint(tmp_path):
    return save({"module": videomaev2_state()}, tmp_path / "vit_tiny.pth")


def _model(path):
    return v2.load_model(path, heads=ARCH.heads, frames=ARCH.frames, image_size=ARCH.image_size).eval()


# -- the checkpoint --------------------------------------------------------------------------------
def test_an_official_checkpoint_loads_strictly_and_computes_the_official_features(checkpoint):
    model = _model(checkpoint)
    assert model.arch == ARCH
    x = torch.randn(3, 3, ARCH.frames, 32, 32)
    state = videomaev2_state()
    with torch.no_grad():
        got = model(x.permute(0, 2, 1, 3, 4))
        ref = videomaev2_reference(state, x, ARCH.heads)
        layer1 = model(x.permute(0, 2, 1, 3, 4), layers=(1, 1))
    np.testing.assert_allclose(got.numpy(), ref.numpy(), atol=2e-5)
    np.testing.assert_allclose(layer1.numpy(), videomaev2_reference(state, x, 2, layer=1).numpy(), atol=2e-5)


def test_the_official_sizes_are_read_from_the_checkpoint():
    for name, arch in v2.ARCHS.items():
        state = {"patch_embed.proj.weight": torch.empty(arch.width, 3, 2, arch.patch, arch.patch),
                 "blocks.0.mlp.fc1.weight": torch.empty(arch.mlp, arch.width),
                 f"blocks.{arch.depth - 1}.norm1.weight": torch.empty(arch.width)}
        assert v2.infer_arch(state) == arch, name
    assert v2.ARCHS["giant"].describe().startswith("ViT 1408x40 (16 heads, patch 14")


@pytest.mark.parametrize("edit, match", [
    (lambda s: s.pop("blocks.1.attn.v_bias"), r"1 missing \(videomae.encoder.layer.1.attention.attention.value.bias\)"),
    (lambda s: s.update({"norm.weight": torch.ones(32)}), r"1 unexpected \(norm.weight\)"),
    (lambda s: s.update({"fc_norm.bias": torch.ones(31)}), r"1 of another shape \(fc_norm.bias \(31,\) vs \(32,\)\)"),
    (lambda s: s.pop("patch_embed.proj.weight"), "no patch_embed.proj.weight"),
])
def test_a_checkpoint_with_a_wrong_key_is_a_one_line_error(tmp_path, edit, match):
    state = videomaev2_state()
    edit(state)
    path = save(state, tmp_path / "bad.pth")
    with pytest.raises(BlemoreError, match=match) as err:
        _model(path)
    assert "\n" not in str(err.value) and "bad.pth" in str(err.value)


def test_a_width_of_no_official_size_needs_its_heads(checkpoint):
    with pytest.raises(BlemoreError, match="a ViT 32 wide is not an official VideoMAEv2 size"):
        v2.load_model(checkpoint)


def test_the_registry_builds_it_from_the_file(checkpoint, monkeypatch):
    monkeypatch.setitem(v2._HEADS, 32, 2)
    enc = get_encoder(f"videomaev2-base={checkpoint}", precision="fp32")
    assert enc.name == "videomaev2-base-vit_tiny" and enc.dim == 32 and enc.model_id == "vit_tiny.pth"
    assert enc.settings()["arch"]["image_size"] == 224 and enc.window == 16
    assert enc.video.short_side is None and enc.video.crop is None and enc.video.fps is None
    assert get_encoder(f"videomaev2={checkpoint}:1").name == "videomaev2-vit_tiny-l1"


# -- windows -------------------------------------------------------------------------------------
def _official_windows(n_frames: int, window: int) -> list[list[int]]:
    """The official script's loop: frames gathered until a window is full; what is left at the end
    becomes one more window, zero-padded."""
    out, current = [], []
    for i in range(n_frames):
        current.append(i)
        if len(current) == window:
            out.append(current)
            current = []
    if current:
        out.append(current + [-1] * (window - len(current)))
    return out


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 120), window=st.integers(1, 20))
def test_windows_follow_the_official_loop(n, window):
    assert v2.window_indices(n, window, "zeros").tolist() == _official_windows(n, window)
    repeat = v2.window_indices(n, window, "repeat")
    assert repeat.tolist() == [[i if i >= 0 else n - 1 for i in w] for w in _official_windows(n, window)]


def test_an_unknown_padding_is_refused():
    with pytest.raises(BlemoreError, match="padding='edge': expected 'zeros' or 'repeat'"):
        v2.window_indices(5, 4, "edge")


# -- pixels --------------------------------------------------------------------------------------
def _official_frame(frame_rgb: np.ndarray, size: int) -> torch.Tensor:
    """One frame as the official script prepares it: OpenCV's BGR frame, ToFloatTensorInZeroOne
    ((3, 1, H, W) / 255) and Resize((size, size)) (interpolate over the last two dimensions)."""
    bgr = np.ascontiguousarray(frame_rgb[..., ::-1])
    vid = torch.from_numpy(bgr).unsqueeze(0).permute(3, 0, 1, 2).to(torch.float32) / 255
    return torch.nn.functional.interpolate(vid, size=(size, size), mode="bilinear", align_corners=False)[:, 0]


@pytest.mark.parametrize("shape", [(5, 40, 56), (3, 48, 36), (2, 31, 31), (1, 200, 300)])
def test_official_pixels_equal_the_official_transform(shape):
    frames = random_frames(*shape)
    got = v2.official_pixels(torch.from_numpy(frames), 32, chunk=2)
    ref = torch.stack([_official_frame(f, 32) for f in frames])
    np.testing.assert_allclose(got.numpy(), ref.numpy(), atol=1e-6)


# -- the encoder ---------------------------------------------------------------------------------
def test_the_encoder_is_the_official_model_on_official_windows(checkpoint):
    enc = v2.VideoMAEv2Encoder(model=_model(checkpoint), precision="fp32", batch_size=2)
    clips = [random_frames(9, 40, 56, seed=1), random_frames(3, 48, 36, seed=2), random_frames(8, 30, 30, seed=3)]
    got = enc.encode(clips)
    state = videomaev2_state()
    for frames, g in zip(clips, got, strict=True):
        pixels = torch.cat([torch.stack([_official_frame(f, 32) for f in frames]), torch.zeros(ARCH.frames, 3, 32, 32)])
        windows = [pixels[i : i + ARCH.frames] for i in range(0, len(frames), ARCH.frames)]
        x = torch.stack(windows).permute(0, 2, 1, 3, 4)
        with torch.no_grad():
            ref = videomaev2_reference(state, x, ARCH.heads)
        assert g.shape == (-(-len(frames) // ARCH.frames), 32) and g.dtype == np.float32
        np.testing.assert_allclose(g, ref.numpy(), atol=3e-5)
    assert enc.output_fps(30.0) == 30.0 / ARCH.frames


def test_bf16_is_close_to_fp32_and_auto_on_the_cpu_is_fp32(checkpoint):
    clips = [random_frames(9, 40, 56, seed=1), random_frames(3, 48, 36, seed=2)]
    ref = v2.VideoMAEv2Encoder(model=_model(checkpoint), precision="fp32").encode(clips)
    bf16 = v2.VideoMAEv2Encoder(model=_model(checkpoint), precision="bf16")
    auto = v2.VideoMAEv2Encoder(model=_model(checkpoint), precision="auto")
    other = v2.VideoMAEv2Encoder(model=_model(checkpoint), layers=(1, 1), precision="fp32").encode(clips)
    got = bf16.encode(clips)
    err = relative_error(got, ref)
    assert bf16.settings()["precision"] == "bf16" and auto.settings()["precision"] == "fp32"
    assert 1e-5 < err < 0.03 and relative_error(other, ref) > 10 * err
    for a, b in zip(auto.encode(clips), ref, strict=True):
        np.testing.assert_array_equal(a, b)


def test_an_earlier_layer_runs_fewer_blocks_and_gives_the_same_states(checkpoint):
    clips = [random_frames(6, 40, 56)]
    enc = v2.VideoMAEv2Encoder(model=_model(checkpoint), layers=(0, 1), precision="fp32")
    assert len(enc.model.videomae.encoder.layer) == 1 and enc.layer == "0-1" and enc.name == "videomaev2-l0-1"
    full = _model(checkpoint)
    pixels = enc._pixels(clips)[v2.window_indices(6, 4)].clone()
    pixels[1, 2:] = 0
    with torch.no_grad():
        states = full.videomae(pixel_values=pixels, output_hidden_states=True).hidden_states
    ref = ((states[0] + states[1]) / 2).mean(1)
    np.testing.assert_allclose(enc.encode(clips)[0], ref.numpy(), atol=2e-5)
    with pytest.raises(BlemoreError, match="layer 3 does not exist"):
        v2.VideoMAEv2Encoder(model=_model(checkpoint), layers=(1, 3))


def test_the_options_change_the_folder_the_frames_and_the_settings(checkpoint):
    enc = v2.VideoMAEv2Encoder(model=_model(checkpoint), padding="repeat", preprocess="imagenet")
    assert enc.name == "videomaev2-repeat-imagenet"
    assert enc.video.short_side == 32 and enc.video.crop == "centre"
    s = enc.settings()
    assert (s["padding"], s["preprocess"], s["window"]) == ("repeat", "imagenet", 4)
    out = enc.encode([random_frames(5, 32, 32)])[0]
    assert out.shape == (2, 32) and np.isfinite(out).all()
    with pytest.raises(BlemoreError, match="preprocess='raw': expected 'official' or 'imagenet'"):
        v2.VideoMAEv2Encoder(model=_model(checkpoint), preprocess="raw")
