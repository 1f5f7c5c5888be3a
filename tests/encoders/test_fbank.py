"""Kaldi filterbanks against a plain per-frame float64 reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from blemore.encoders import fbank as fb


def _reference(wave: np.ndarray, *, rate=16000, bins=128, low=20.0) -> np.ndarray:
    """Kaldi's compute-fbank-feats step by step for one waveform, frame by frame, in float64."""
    size, shift, n_fft = int(rate * 0.025), int(rate * 0.010), 512
    nyquist = rate / 2
    mel = lambda f: 1127.0 * math.log(1.0 + f / 700.0)
    lo, hi = mel(low), mel(nyquist)
    delta = (hi - lo) / (bins + 1)
    window = np.array([0.5 - 0.5 * math.cos(2 * math.pi * i / (size - 1)) for i in range(size)])
    filters = np.zeros((bins, n_fft // 2 + 1))
    for b in range(bins):
        left, centre, right = lo + b * delta, lo + (b + 1) * delta, lo + (b + 2) * delta
        for k in range(n_fft // 2):
            m = mel(k * rate / n_fft)
            if left < m < right:
                filters[b, k] = (m - left) / (centre - left) if m <= centre else (right - m) / (right - centre)
    rows = []
    for start in range(0, len(wave) - size + 1, shift):
        frame = wave[start : start + size].astype(np.float64)
        frame = frame - frame.mean()
        frame = np.array([frame[i] - 0.97 * frame[max(i - 1, 0)] for i in range(size)])
        spectrum = np.abs(np.fft.rfft(np.pad(frame * window, (0, n_fft - size)))) ** 2
        rows.append(np.log(np.maximum(filters @ spectrum, np.finfo(np.float32).eps)))
    return np.array(rows).reshape(-1, bins)


@pytest.mark.parametrize("n, bins", [(32000, 128), (4000, 128), (401, 64), (399, 128)])
def test_fbank_equals_a_plain_reference(n, bins):
    wave = (0.1 * np.random.default_rng(n).standard_normal(n)).astype(np.float32)
    got = fb.fbank(torch.from_numpy(wave)[None], num_mel_bins=bins)[0].numpy()
    ref = _reference(wave, bins=bins)
    assert got.shape == ref.shape == (fb.frame_count(n), bins)
    np.testing.assert_allclose(got, ref, atol=2e-3, rtol=1e-4)


def test_a_batch_is_each_waveform_alone():
    waves = torch.randn(3, 5000) * 0.1
    batch = fb.fbank(waves)
    for i in range(3):
        torch.testing.assert_close(batch[i], fb.fbank(waves[i : i + 1])[0])


def test_silence_is_the_log_floor():
    assert torch.all(fb.fbank(torch.zeros(1, 1000)) == math.log(fb.EPSILON))


@settings(max_examples=50, deadline=None)
@given(n=st.integers(0, 5000))
def test_frame_count_is_whole_frames(n):
    assert fb.frame_count(n) == len(range(0, n - 400 + 1, 160))
