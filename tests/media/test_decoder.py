"""Decoding clips with PyAV (blemore.media.decoder)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.avclips import make_audio_only, make_broken, make_clip, make_truncated
from blemore.errors import BlemoreError
from blemore.media.decoder import VideoSpec, decode_clip, probe, read_audio, read_video, scaled_size


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("m") / "A1_ang_int1_ver1.mov", seconds=1.0, fps=25, size=(96, 64))


def test_probe_reads_header(clip):
    info = probe(clip)
    assert info.has_video and info.has_audio
    assert (info.width, info.height) == (96, 64)
    assert info.fps == pytest.approx(25.0)
    assert info.duration == pytest.approx(1.0, abs=0.1)
    assert info.audio_channels == 2


def test_audio_is_16k_mono_float_with_the_right_tone(clip):
    x = read_audio(clip)
    assert x.dtype == np.float32 and x.ndim == 1
    assert len(x) == pytest.approx(16000, rel=0.05)
    spectrum = np.abs(np.fft.rfft(x[2000:14000]))
    peak = np.argmax(spectrum) * 16000 / 12000
    assert peak == pytest.approx(440, abs=5)
    assert 0.15 < np.max(np.abs(x[2000:14000])) < 0.45


def test_video_at_lower_rate_and_size(clip):
    v = read_video(clip, fps=10, short_side=32)
    assert v.frames.dtype == np.uint8
    assert v.frames.shape[1:] == (32, 48, 3)
    assert len(v.frames) == 10
    assert v.fps == 10
    assert np.all(np.diff(v.times) > 0)
    # the white bar grows: later frames are brighter
    brightness = v.frames.mean(axis=(1, 2, 3))
    assert brightness[-1] > brightness[0]


def test_video_full_rate_keeps_every_frame(clip):
    v = read_video(clip)
    assert len(v.frames) == 25 and v.frames.shape[1:3] == (64, 96)
    assert read_video(clip, fps=60).frames.shape[0] == 25  # a rate above the clip's keeps every frame


def test_one_pass_serves_several_specs(clip):
    a, b = VideoSpec(fps=5, short_side=16), VideoSpec()
    d = decode_clip(clip, video=[a, b])
    assert d.audio is not None and d.audio_error is None and d.video_error is None
    assert len(d.video[a].frames) == 5 and len(d.video[b].frames) == 25


def test_no_audio_track(tmp_path):
    path = make_clip(tmp_path / "x.mp4", audio=False)
    with pytest.raises(BlemoreError, match="no audio track"):
        read_audio(path)
    d = decode_clip(path, video=[VideoSpec(fps=5)])
    assert d.audio_error and "no audio track" in d.audio_error
    assert len(d.video[VideoSpec(fps=5)].frames) == 5


def test_no_video_stream(tmp_path):
    path = make_audio_only(tmp_path / "a.mp4")
    with pytest.raises(BlemoreError, match="no video stream"):
        read_video(path)
    assert len(read_audio(path)) > 10000


@pytest.mark.parametrize("maker", [make_broken, make_truncated])
def test_broken_and_truncated_files_raise_with_the_path(tmp_path, maker):
    path = maker(tmp_path / "bad.mov")
    with pytest.raises(BlemoreError, match="bad.mov"):
        decode_clip(path, video=[VideoSpec()])


def test_missing_file(tmp_path):
    with pytest.raises(BlemoreError, match="no such file"):
        probe(tmp_path / "nope.mov")


@settings(max_examples=60, deadline=None)
@given(st.integers(16, 4000), st.integers(16, 4000), st.integers(8, 512))
def test_scaled_size_keeps_short_side_and_aspect(w, h, short):
    sw, sh = scaled_size(w, h, short)
    assert min(sw, sh) == short
    assert (sw >= sh) == (w >= h) or sw == sh
    long_expected = max(w, h) * short / min(w, h)
    assert abs(max(sw, sh) - long_expected) <= 1 or max(sw, sh) == short
    if w != h and max(sw, sh) != short:
        assert max(sw, sh) % 2 == 0


def test_square_frames_are_the_centre_square_of_the_scaled_frames(tmp_path):
    from blemore.media.decoder import VideoSpec, decode_clip

    path = make_clip(tmp_path / "wide.mov", seconds=0.5, size=(96, 64))
    wide, square = VideoSpec(fps=10.0, short_side=32), VideoSpec(fps=10.0, short_side=32, crop="centre")
    got = decode_clip(path, video=[wide, square])
    full, sq = got.video[wide].frames, got.video[square].frames
    assert full.shape[1:] == (32, 48, 3) and sq.shape[1:] == (32, 32, 3) and len(sq) == len(full) > 0
    np.testing.assert_array_equal(sq, full[:, :, 8:40])
    np.testing.assert_array_equal(got.video[square].times, got.video[wide].times)
    with pytest.raises(BlemoreError, match="crop='middle': expected None or 'centre'"):
        VideoSpec(crop="middle")


@dataclass(frozen=True)
class TopRows:
    """A frame transform for the tests: each frame's first ``rows`` rows."""

    rows: int
    name: ClassVar[str] = "top"

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(frames[:, : self.rows])


def test_a_transform_runs_on_the_sampled_frames_after_the_crop(tmp_path):
    path = make_clip(tmp_path / "wide.mov", seconds=0.5, size=(96, 64))
    square, top = VideoSpec(fps=10.0, short_side=32, crop="centre"), VideoSpec(10.0, 32, "centre", TopRows(5))
    got = decode_clip(path, audio_rate=None, video=[square, top])
    np.testing.assert_array_equal(got.video[top].frames, got.video[square].frames[:, :5])
    np.testing.assert_array_equal(got.video[top].times, got.video[square].times)
    assert top.label == "top" and square.label == "centre" and VideoSpec().label is None
    assert read_video(path, fps=10.0, short_side=32, crop="centre", transform=TopRows(5)).frames.shape[1:] == (5, 32, 3)


def test_a_spec_with_a_transform_is_a_picklable_key():
    import pickle

    spec = VideoSpec(10.0, 32, transform=TopRows(5))
    assert pickle.loads(pickle.dumps(spec)) == spec and {spec: 1}[VideoSpec(10.0, 32, transform=TopRows(5))] == 1
    assert spec != VideoSpec(10.0, 32, transform=TopRows(6))


class Unhashable:
    name = "bad"
    __hash__ = None

    def __call__(self, frames):
        return frames


@pytest.mark.parametrize("transform, match", [(Unhashable(), "must be hashable"), (len, "a callable with a 'name'")])
def test_a_bad_transform_is_refused_when_the_spec_is_made(transform, match):
    with pytest.raises(BlemoreError, match=match):
        VideoSpec(transform=transform)


@dataclass(frozen=True)
class Broken:
    name: ClassVar[str] = "broken"

    def __call__(self, frames):
        return frames[:1].astype(np.float32)


def test_a_transform_returning_other_frames_is_a_clear_error(tmp_path):
    path = make_clip(tmp_path / "c.mov", seconds=0.3, size=(48, 32))
    with pytest.raises(BlemoreError, match="frame transform 'broken' returned float32 .*; expected \\d+ uint8 frames"):
        read_video(path, transform=Broken())
