"""Video Swin: official and torchvision checkpoint layouts, the official 10 s chunks of windows, pixels."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from blemore.encoders import get_encoder, swin3d
from blemore.encoders import video_swin as vs
from blemore.errors import BlemoreError
from tests.support.official_checkpoints import (
    TINY_SWIN,
    save,
    swin_official_state,
    swin_to_torchvision,
)
from tests.support.tiny_models import random_frames, relative_error

torch.set_num_threads(1)
SMALL = dict(window=8, stride=4, chunk_frames=24, image_size=32, resize=40)


@pytest.fixture
def official(tmp_path):
    return save(swin_official_state(), tmp_path / "swin_tiny_official.pth")


@pytest.fixture
def torchvision_file(tmp_path):
    return save(swin_to_torchvision(swin_official_state()), tmp_path / "swin3d_tiny_ft.pth")


def _encoder(path, **kw):
    return vs.VideoSwinEncoder(model=vs.load_model(path).eval(), **{**SMALL, **kw})


# -- the checkpoint --------------------------------------------------------------------------------
def test_official_and_torchvision_checkpoints_load_strictly_and_agree(official, torchvision_file):
    a, b = vs.load_model(official).eval(), vs.load_model(torchvision_file).eval()
    assert a.arch == b.arch == swin3d.SwinArch(**TINY_SWIN)
    x = torch.randn(2, 3, 8, 48, 40)
    with torch.no_grad():
        ya, yb = a(x), b(x)
    assert ya.shape == (2, a.arch.width) and torch.isfinite(ya).all()
    np.testing.assert_array_equal(ya.numpy(), yb.numpy())


def test_the_layout_is_detected_and_the_classifier_dropped():
    state, layout = vs.state_from_checkpoint(swin_official_state()["state_dict"])
    assert layout == "official" and not any(k.startswith(("backbone.", "cls_head.")) for k in state)
    tv = {k[len("module."):]: v for k, v in swin_to_torchvision(swin_official_state()).items()}
    state2, layout2 = vs.state_from_checkpoint(tv)
    assert layout2 == "torchvision" and set(state2) == set(state)


def test_the_official_sizes_are_read_from_the_checkpoint():
    for name, arch in swin3d.ARCHS.items():
        model = swin3d.build_model(arch, device="meta")
        assert vs.infer_arch(model.state_dict()) == arch, name
    assert swin3d.ARCHS["b"].width == 1024 and swin3d.ARCHS["t"].width == 768 and swin3d.ARCHS["l"].width == 1536


@pytest.mark.parametrize("edit, match", [
    (lambda s: s.pop("backbone.layers.1.downsample.reduction.weight"), r"1 missing \(layers.1.downsample.reduction"),
    (lambda s: s.update({"backbone.layers.0.blocks.0.attn.gamma": torch.ones(1)}),
     r"1 unexpected \(layers.0.blocks.0.attn.gamma\)"),
    (lambda s: s.pop("backbone.layers.2.blocks.0.attn.relative_position_index"), "stage 2 has no relative_position"),
    (lambda s: s.update({"backbone.layers.0.blocks.0.attn.relative_position_bias_table": torch.zeros(10, 1)}),
     "a bias table of 10 rows fits no window of 36 positions"),
])
def test_a_checkpoint_with_a_wrong_key_is_a_one_line_error(tmp_path, edit, match):
    ckpt = swin_official_state()
    edit(ckpt["state_dict"])
    path = save(ckpt, tmp_path / "bad.pth")
    with pytest.raises(BlemoreError, match=match) as err:
        vs.load_model(path)
    assert "\n" not in str(err.value)


def test_the_registry_builds_it_from_the_file(torchvision_file):
    enc = get_encoder(f"video-swin={torchvision_file}")
    assert enc.name == "video-swin-swin3d_tiny_ft" and enc.dim == 64 and enc.model_id == "swin3d_tiny_ft.pth"
    assert (enc.window, enc.stride, enc.chunk_frames, enc.resize, enc.image_size) == (32, 16, 300, 256, 224)
    assert enc.video.short_side is None and enc.video.fps is None and enc.output_fps(30.0) == 30.0 / 16


# -- windows -------------------------------------------------------------------------------------
def _official_loop(n_frames: int, window: int, stride: int, chunk: int) -> list[list[int]]:
    """The official ``extract_video_features_by_chunks`` on frame numbers (-1: a zero frame)."""
    frames = list(range(n_frames))
    out, leftover, start, end_of_video = [], None, 0, False
    while not end_of_video:
        current = frames[start : start + chunk]
        if leftover is not None:
            current = leftover + current
        if start + chunk >= n_frames:
            end_of_video = True
            if len(current) < chunk:
                current = current + [-1] * (chunk - len(current))
        for i in range(0, len(current) - window + 1, stride):
            out.append(current[i : i + window])
        leftover = current[-(window - stride):] if len(current) >= window - stride else None
        start += chunk
    return out


@settings(max_examples=120, deadline=None)
@given(n=st.integers(1, 200), stride=st.integers(1, 8), extra=st.integers(0, 8), chunk=st.integers(16, 60))
def test_windows_follow_the_official_chunk_loop(n, stride, extra, chunk):
    window = stride + extra + 1
    if window > chunk:
        return
    got = vs.official_windows(n, window=window, stride=stride, chunk_frames=chunk)
    assert got.tolist() == _official_loop(n, window, stride, chunk)


def test_a_short_clip_gives_seventeen_windows_at_30_fps():
    idx = vs.official_windows(150)
    assert idx.shape == (17, 32) and idx[0, 0] == 0 and idx[-1, -1] == -1
    assert (idx[10:] < 0).all() and (idx[9, :6] >= 0).all()


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 120))
def test_clip_windows_cover_the_clip_and_pad_the_last_with_black(n):
    idx = vs.clip_windows(n, window=32, stride=16)
    expected = 1 + max(0, math.ceil((n - 32) / 16))
    assert len(idx) == expected and idx[-1].max() == n - 1
    assert set(idx[idx >= 0].tolist()) == set(range(n))


# -- pixels --------------------------------------------------------------------------------------
def _torchvision_frame(frame: np.ndarray, resize: int, crop: int) -> torch.Tensor:
    """torchvision's VideoClassification preset on one uint8 frame, step by step: resize the
    shorter side (bilinear on floats, rounded back to uint8), center_crop, convert_image_dtype,
    normalize."""
    img = torch.from_numpy(frame).permute(2, 0, 1)
    h, w = img.shape[1:]
    if h <= w:
        size = (resize, int(resize * w / h))
    else:
        size = (int(resize * h / w), resize)
    if size != (h, w):
        img = torch.nn.functional.interpolate(img[None].float(), size=size, mode="bilinear",
                                              align_corners=False)[0].round().to(torch.uint8)
    top, left = int(round((size[0] - crop) / 2.0)), int(round((size[1] - crop) / 2.0))
    x = img[:, top : top + crop, left : left + crop].float() / 255
    return (x - torch.tensor(vs.IMAGENET_MEAN)[:, None, None]) / torch.tensor(vs.IMAGENET_STD)[:, None, None]


@pytest.mark.parametrize("shape", [(4, 40, 56), (3, 48, 36), (2, 40, 40), (2, 45, 61), (1, 200, 300)])
def test_official_pixels_equal_the_torchvision_preset(shape):
    frames = random_frames(*shape)
    got = vs.official_pixels(torch.from_numpy(frames), resize=40, crop=32, chunk=3)
    ref = torch.stack([_torchvision_frame(f, 40, 32) for f in frames])
    np.testing.assert_allclose(got.numpy(), ref.numpy(), atol=1e-6)


# -- the encoder ---------------------------------------------------------------------------------
def test_the_encoder_is_the_model_on_the_official_windows(official):
    enc = _encoder(official, precision="fp32", batch_size=2)
    clips = [random_frames(30, 40, 56, seed=1), random_frames(5, 48, 36, seed=2)]
    got = enc.encode(clips)
    black = _torchvision_frame(np.zeros((40, 40, 3), np.uint8), 40, 32)
    for frames, g in zip(clips, got, strict=True):
        pixels = torch.stack([_torchvision_frame(f, 40, 32) for f in frames] + [black])
        idx = _official_loop(len(frames), 8, 4, 24)
        x = torch.stack([pixels[[i if i >= 0 else len(frames) for i in w]] for w in idx]).permute(0, 2, 1, 3, 4)
        with torch.no_grad():
            ref = enc.model(x)
        assert g.shape == (len(idx), 64) and g.dtype == np.float32
        np.testing.assert_allclose(g, ref.numpy(), atol=2e-5)
    assert enc.output_fps(30.0) == 7.5


def test_bf16_is_close_to_fp32_and_auto_on_the_cpu_is_fp32(official):
    clips = [random_frames(14, 40, 56, seed=1)]
    ref = _encoder(official, precision="fp32").encode(clips)
    got = _encoder(official, precision="bf16").encode(clips)
    err = relative_error(got, ref)
    assert 1e-5 < err < 0.03
    for a, b in zip(_encoder(official, precision="auto").encode(clips), ref, strict=True):
        np.testing.assert_array_equal(a, b)


def test_clip_windows_change_the_folder_and_the_rows(official):
    enc = _encoder(official, windows="clip")
    assert enc.name == "video-swin-clip" and enc.settings()["windows"] == "clip"
    assert enc.encode([random_frames(13, 40, 40)])[0].shape == (3, 64)  # starts 0, 4, 8
    with pytest.raises(BlemoreError, match="windows='all': expected 'official' or 'clip'"):
        _encoder(official, windows="all")
