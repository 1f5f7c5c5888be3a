"""The Video Swin backbone's pieces against plain references (the whole forward pass is checked
through both checkpoint layouts in test_video_swin)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from blemore.encoders import swin3d
from tests.support.official_checkpoints import official_relative_index

torch.set_num_threads(1)


@pytest.mark.parametrize("window", [(8, 7, 7), (4, 3, 3), (2, 1, 5)])
def test_the_relative_index_equals_a_plain_loop(window):
    np.testing.assert_array_equal(swin3d.relative_index(window).numpy(), official_relative_index(window).numpy())


@settings(max_examples=30, deadline=None)
@given(d=st.integers(1, 3), h=st.integers(1, 3), w=st.integers(1, 3), wd=st.integers(1, 3), wh=st.integers(1, 3))
def test_partition_and_merge_are_inverse(d, h, w, wd, wh):
    window = (wd, wh, wh)
    x = torch.randn(2, d * wd, h * wh, w * wh, 3)
    parts = swin3d.partition(x, window)
    assert parts.shape == (2 * d * h * w, wd * wh * wh, 3)
    torch.testing.assert_close(swin3d.merge(parts, window, 2, d * wd, h * wh, w * wh), x)
    assert torch.equal(parts[0], x[0, :wd, :wh, :wh].reshape(-1, 3))  # the first window, in (d, h, w) order


def test_the_shift_mask_keeps_regions_apart():
    size, window, shift = (4, 6, 6), (2, 3, 3), (1, 1, 1)
    mask = swin3d.shift_mask(size, window, shift, "cpu")
    region = np.zeros(size, int)
    for i, (n, wsz, s) in enumerate(zip(size, window, shift)):
        coord = np.arange(n)
        label = np.where(coord < n - wsz, 0, np.where(coord < n - s, 1, 2))
        region += label.reshape([-1 if j == i else 1 for j in range(3)]) * 3 ** (2 - i)
    ids = swin3d.partition(torch.from_numpy(region).float()[None, ..., None], window)[..., 0]
    expected = torch.where(ids[:, None, :] == ids[:, :, None], 0.0, -100.0)
    torch.testing.assert_close(mask, expected)


def test_a_window_larger_than_the_input_shrinks_and_stops_shifting():
    assert swin3d.window_and_shift((16, 7, 3), (8, 7, 7), (4, 3, 3)) == ((8, 7, 3), (4, 0, 0))


def test_an_odd_input_is_padded_to_whole_patches_and_windows():
    model = swin3d.build_model(swin3d.SwinArch(8, (2, 2), (1, 2), window=(4, 3, 3))).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 5, 19, 23))
    assert out.shape == (1, 16) and torch.isfinite(out).all()
