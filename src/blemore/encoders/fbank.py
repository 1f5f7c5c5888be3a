"""Kaldi-compatible log mel filterbank energies in torch, batched and on any device.

The computation of ``torchaudio.compliance.kaldi.fbank`` (itself Kaldi's ``compute-fbank-feats``)
for the options ImageBind's audio loader uses: frames of 25 ms every 10 ms (``snip_edges``: only
whole frames), each frame's mean removed, pre-emphasis 0.97, a symmetric Hann ("hanning") window,
zero-padded to a power of two (512 at 16 kHz), the power spectrum, triangular filters equally
spaced on Kaldi's mel scale (``1127 ln(1 + f / 700)``) from 20 Hz to the Nyquist frequency, and
the natural log floored at float32's epsilon; no dither, no energy term. torchaudio is not a
dependency here (its wheels pin one torch each), so this module writes the same steps in float32
as torchaudio does; its test compares it with a plain per-frame float64 reference. (Kaldi's own
binaries refuse 128 bins for a 512-point FFT -- the lowest filters hold no FFT point -- torchaudio
does not, and neither does this.)

>>> import torch
>>> fbank(torch.zeros(1, 16000)).shape
torch.Size([1, 98, 128])
"""

from __future__ import annotations

import math

import torch

__all__ = ["fbank", "frame_count", "mel_banks"]

EPSILON = float(torch.finfo(torch.float32).eps)


def frame_count(n_samples: int, *, sample_rate: int = 16000, frame_length_ms: float = 25.0,
                frame_shift_ms: float = 10.0) -> int:
    """Whole analysis frames in ``n_samples`` samples (Kaldi's ``snip_edges=True``).

    >>> frame_count(32000)
    198
    """
    size = int(sample_rate * frame_length_ms * 0.001)
    shift = int(sample_rate * frame_shift_ms * 0.001)
    return 0 if n_samples < size else 1 + (n_samples - size) // shift


def mel_banks(num_bins: int, n_fft: int, sample_rate: float, *, low_freq: float = 20.0,
              high_freq: float = 0.0) -> torch.Tensor:
    """Kaldi's triangular mel filters, ``(num_bins, n_fft // 2 + 1)`` float32 (the Nyquist column zero).

    ``high_freq <= 0`` counts down from the Nyquist frequency (0: the Nyquist frequency itself).
    """
    nyquist = 0.5 * sample_rate
    if high_freq <= 0.0:
        high_freq += nyquist
    mel_low = 1127.0 * math.log(1.0 + low_freq / 700.0)
    mel_high = 1127.0 * math.log(1.0 + high_freq / 700.0)
    delta = (mel_high - mel_low) / (num_bins + 1)
    b = torch.arange(num_bins).unsqueeze(1)
    left, centre, right = (mel_low + (b + k) * delta for k in (0.0, 1.0, 2.0))
    mel = 1127.0 * (1.0 + (sample_rate / n_fft) * torch.arange(float(n_fft // 2)) / 700.0).log()
    up = (mel.unsqueeze(0) - left) / (centre - left)
    down = (right - mel.unsqueeze(0)) / (right - centre)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)
    return torch.nn.functional.pad(banks, (0, 1))


def fbank(waveforms: torch.Tensor, *, sample_rate: int = 16000, num_mel_bins: int = 128,
          frame_length_ms: float = 25.0, frame_shift_ms: float = 10.0, preemphasis: float = 0.97,
          low_freq: float = 20.0, high_freq: float = 0.0) -> torch.Tensor:
    """Log mel energies of each waveform, ``(B, frames, num_mel_bins)`` float32.

    ``waveforms``: (B, N) float, all of one length (a batch of clips), on any device.
    """
    size = int(sample_rate * frame_length_ms * 0.001)
    shift = int(sample_rate * frame_shift_ms * 0.001)
    n_fft = 1 << (size - 1).bit_length()
    x = waveforms.float()
    if x.shape[-1] < size:
        return x.new_zeros((x.shape[0], 0, num_mel_bins))
    frames = x.unfold(-1, size, shift)  # B, frames, size
    frames = frames - frames.mean(dim=-1, keepdim=True)
    previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
    frames = frames - preemphasis * previous
    frames = frames * torch.hann_window(size, periodic=False, device=x.device, dtype=x.dtype)
    frames = torch.nn.functional.pad(frames, (0, n_fft - size))
    power = torch.fft.rfft(frames).abs().pow(2.0)
    banks = mel_banks(num_mel_bins, n_fft, sample_rate, low_freq=low_freq, high_freq=high_freq).to(x.device)
    energies = power @ banks.T
    return torch.clamp(energies, min=EPSILON).log()
