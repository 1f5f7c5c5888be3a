"""Decoding clips with PyAV: video frames at a chosen rate and size, 16 kHz mono audio.

No torchvision or torchaudio: PyAV demuxes and decodes (FFmpeg), scales frames with
swscale and converts audio to mono float; ``soxr`` resamples audio to 16 kHz.

One pass over the file serves every consumer: :func:`decode_clip` takes the audio
rate and any number of :class:`VideoSpec` (e.g. 15 fps at 240 px for face geometry
and 30 fps at 224 px for CLIP) and returns them all. Problems a user must know about
(no audio track, no frames, a broken container, an undecodable stream) raise
:class:`~blemore.errors.BlemoreError` whose message names the file and the reason;
the extraction records that message as the clip's failure and goes on.

>>> info = probe("clip.mov")                                # doctest: +SKIP
>>> clip = decode_clip("clip.mov", audio_rate=16000, video=[VideoSpec(fps=15, short_side=240)])  # doctest: +SKIP
>>> clip.audio.shape, clip.video[VideoSpec(15, 240)].frames.shape  # doctest: +SKIP
((80000,), (75, 240, 426, 3))
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from blemore.errors import BlemoreError

__all__ = [
    "SAMPLE_RATE",
    "MediaInfo",
    "VideoSpec",
    "VideoFrames",
    "DecodedClip",
    "probe",
    "decode_clip",
    "read_audio",
    "read_video",
    "scaled_size",
]

#: Audio sample rate of every audio encoder (Hz).
SAMPLE_RATE = 16000


@dataclass(frozen=True)
class MediaInfo:
    """What a container holds, without decoding it (:func:`probe`)."""

    path: str
    duration: float | None
    fps: float | None
    width: int | None
    height: int | None
    n_frames: int | None
    has_video: bool
    has_audio: bool
    audio_rate: int | None
    audio_channels: int | None


@dataclass(frozen=True)
class VideoSpec:
    """How an encoder wants its frames.

    ``fps``: target rate (frames are picked by timestamp; a rate above the clip's
    keeps every frame); None keeps every frame. ``short_side``: the shorter side
    after scaling, aspect ratio kept, sizes even; None keeps the decoded size.
    ``crop``: None keeps the whole frame; ``"centre"`` its centre square (what the video
    models see: cut in the decoding worker, so fewer bytes travel to the encoder);
    ``"face"`` a square around the face, the same for every frame of the clip
    (:mod:`blemore.encoders.facecrop`, MediaPipe's face detector; centre square without a face).
    """

    fps: float | None = None
    short_side: int | None = None
    crop: str | None = None

    def __post_init__(self) -> None:
        if self.fps is not None and not self.fps > 0:
            raise BlemoreError(f"video rate must be positive, got fps={self.fps}")
        if self.short_side is not None and self.short_side < 2:
            raise BlemoreError(f"short_side must be at least 2 pixels, got {self.short_side}")
        if self.crop not in (None, "centre", "face"):
            raise BlemoreError(f"crop={self.crop!r}: expected None, 'centre' or 'face'")


@dataclass
class VideoFrames:
    """Decoded frames: ``frames`` (T, H, W, 3) uint8 RGB, their times (s) and rate."""

    frames: np.ndarray
    times: np.ndarray
    fps: float


@dataclass
class DecodedClip:
    """What :func:`decode_clip` returns; a part that could not be had carries its error instead."""

    path: str
    audio: np.ndarray | None = None
    sample_rate: int = SAMPLE_RATE
    video: dict[VideoSpec, VideoFrames] = field(default_factory=dict)
    audio_error: str | None = None
    video_error: str | None = None


def _open(path: str | Path):
    import av

    path = Path(path)
    if not path.exists():
        raise BlemoreError(f"{path}: no such file")
    if path.is_dir():
        raise BlemoreError(f"{path}: is a directory, expected a media file")
    try:
        return av.open(str(path), metadata_errors="ignore")
    except Exception as exc:  # PyAV raises several FFmpeg error types
        raise BlemoreError(f"{path}: broken or unknown container ({_reason(exc)})") from None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


def _rate(stream) -> float | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and float(rate) > 0:
            return float(rate)
    return None


def probe(path: str | Path) -> MediaInfo:
    """Read a container's header: duration, frame rate, size, audio present.

    Raises :class:`BlemoreError` if the file cannot be opened as media.
    """
    with _open(path) as container:
        v = container.streams.video[0] if container.streams.video else None
        a = container.streams.audio[0] if container.streams.audio else None
        duration = container.duration / 1_000_000 if container.duration else None
        if duration is None and v is not None and v.duration and v.time_base:
            duration = float(v.duration * v.time_base)
        return MediaInfo(
            path=str(path),
            duration=duration,
            fps=_rate(v) if v is not None else None,
            width=v.codec_context.width if v is not None else None,
            height=v.codec_context.height if v is not None else None,
            n_frames=(v.frames or None) if v is not None else None,
            has_video=v is not None,
            has_audio=a is not None,
            audio_rate=a.codec_context.sample_rate if a is not None else None,
            audio_channels=a.codec_context.channels if a is not None else None,
        )


def scaled_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """(width, height) with the shorter side scaled to ``short_side``, both even.

    >>> scaled_size(1280, 720, 240)
    (426, 240)
    >>> scaled_size(720, 1280, 224)
    (224, 398)
    """
    if short_side is None:
        return width, height
    if width == height:
        return short_side, short_side
    long_side = max(width, height) * short_side / min(width, height)
    long_side = max(short_side, int(round(long_side / 2)) * 2)
    return (short_side, long_side) if width < height else (long_side, short_side)


def centre_square(frames):
    """The centre square of the shorter side of (..., H, W, C) frames (a view; numpy or torch).

    >>> centre_square(np.zeros((4, 10, 3))).shape
    (4, 4, 3)
    >>> centre_square(np.zeros((2, 6, 4, 3))).shape
    (2, 4, 4, 3)
    """
    h, w = frames.shape[-3:-1]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return frames[..., top : top + side, left : left + side, :]


class _Sampler:
    """Keeps frames at a target rate by timestamp, scaled to the spec's size."""

    def __init__(self, spec: VideoSpec, native_fps: float | None, width: int, height: int):
        self.spec = spec
        self.width, self.height = scaled_size(width, height, spec.short_side)
        self.scale = (self.width, self.height) != (width, height)
        self.step = 1.0 / spec.fps if spec.fps else 0.0
        if spec.fps and native_fps and spec.fps >= native_fps:
            self.step = 0.0
        self.next_time = -math.inf
        self.frames: list[np.ndarray] = []
        self.times: list[float] = []

    def offer(self, frame, t: float) -> None:
        if self.step and t < self.next_time - 1e-6:
            return
        if self.step:
            self.next_time = (self.next_time + self.step) if self.frames else t + self.step
            # a gap longer than one step (variable frame rate) restarts the grid
            if self.next_time <= t:
                self.next_time = t + self.step
        if self.scale:
            array = frame.to_ndarray(format="rgb24", width=self.width, height=self.height)
        else:
            array = frame.to_ndarray(format="rgb24")
        if self.spec.crop == "centre":
            array = centre_square(array)
        self.frames.append(array)
        self.times.append(t)

    def result(self, native_fps: float | None) -> VideoFrames:
        if self.frames:
            frames = np.stack(self.frames)
            if self.spec.crop == "face":
                from blemore.encoders.facecrop import crop_to_face

                frames = crop_to_face(frames)
        else:
            side = min(self.height, self.width)
            frames = np.zeros((0, side, side, 3) if self.spec.crop else (0, self.height, self.width, 3), np.uint8)
        times = np.asarray(self.times, dtype=np.float64)
        if self.step:
            fps = 1.0 / self.step
        elif native_fps:
            fps = native_fps
        elif len(times) > 1:
            fps = float(1.0 / np.median(np.diff(times)))
        else:
            fps = 0.0
        return VideoFrames(frames=frames, times=times, fps=fps)


def _audio_to_mono(frame) -> np.ndarray:
    """One decoded audio frame as float32 mono (any sample format)."""
    array = frame.to_ndarray()
    fmt = frame.format
    channels = len(frame.layout.channels)
    if not fmt.is_planar:
        array = array.reshape(-1, channels).T
    if array.dtype.kind == "i":
        array = array.astype(np.float32) / float(np.iinfo(array.dtype).max + 1)
    elif array.dtype.kind == "u":
        info = np.iinfo(array.dtype)
        array = (array.astype(np.float32) - (info.max + 1) / 2) / ((info.max + 1) / 2)
    return array.astype(np.float32, copy=False).mean(axis=0)


def decode_clip(
    path: str | Path,
    *,
    audio_rate: int | None = SAMPLE_RATE,
    video: Iterable[VideoSpec] = (),
    threads: bool = True,
) -> DecodedClip:
    """Decode a clip's audio and/or video in one pass over the file.

    Parameters
    ----------
    path : the clip.
    audio_rate : resample audio to this rate (mono float32); None: no audio wanted.
    video : the frame rates and sizes wanted; empty: no video wanted.
    threads : let FFmpeg decode video with its own threads.

    A part that cannot be had is reported in ``audio_error`` / ``video_error``
    (e.g. a clip without audio still yields its frames). A file that cannot be
    opened at all raises :class:`BlemoreError`.
    """
    specs = list(dict.fromkeys(video))
    want_audio = audio_rate is not None
    result = DecodedClip(path=str(path), sample_rate=audio_rate or SAMPLE_RATE)
    if not want_audio and not specs:
        return result
    with _open(path) as container:
        vstream = container.streams.video[0] if (specs and container.streams.video) else None
        astream = container.streams.audio[0] if (want_audio and container.streams.audio) else None
        if specs and vstream is None:
            result.video_error = f"{path}: no video stream"
        if want_audio and astream is None:
            result.audio_error = f"{path}: no audio track"
        if vstream is None and astream is None:
            return result
        samplers: list[_Sampler] = []
        native_fps = None
        if vstream is not None:
            if threads:
                vstream.thread_type = "AUTO"
            native_fps = _rate(vstream)
            w, h = vstream.codec_context.width, vstream.codec_context.height
            if not w or not h:
                result.video_error = f"{path}: video stream has no frame size (undecodable stream)"
                vstream = None
            else:
                samplers = [_Sampler(s, native_fps, w, h) for s in specs]
        chunks: list[np.ndarray] = []
        source_rate = astream.codec_context.sample_rate if astream is not None else None
        streams = [s for s in (vstream, astream) if s is not None]
        index = 0
        try:
            for packet in container.demux(*streams):
                for frame in packet.decode():
                    if packet.stream.type == "video":
                        t = frame.time
                        if t is None:
                            t = index / native_fps if native_fps else float(index)
                        index += 1
                        for sampler in samplers:
                            sampler.offer(frame, float(t))
                    else:
                        source_rate = frame.sample_rate or source_rate
                        chunks.append(_audio_to_mono(frame))
        except Exception as exc:  # FFmpeg errors: truncated or corrupt data
            reason = f"{path}: undecodable stream ({_reason(exc)})"
            if vstream is not None:
                result.video_error = reason
            if astream is not None:
                result.audio_error = reason
            return result
        if vstream is not None:
            for sampler in samplers:
                frames = sampler.result(native_fps)
                if len(frames.frames) == 0:
                    result.video_error = f"{path}: no video frames could be decoded"
                    result.video = {}
                    break
                result.video[sampler.spec] = frames
        if astream is not None:
            if not chunks or sum(len(c) for c in chunks) == 0:
                result.audio_error = f"{path}: audio track holds no samples"
            else:
                signal = np.concatenate(chunks)
                if source_rate and source_rate != audio_rate:
                    import soxr

                    signal = soxr.resample(signal, source_rate, audio_rate).astype(np.float32, copy=False)
                result.audio = np.ascontiguousarray(signal, dtype=np.float32)
    return result


def read_audio(path: str | Path, *, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The clip's audio as mono float32 at ``sample_rate`` (default 16 kHz).

    Raises :class:`BlemoreError` if there is no audio track or it cannot be decoded.
    """
    clip = decode_clip(path, audio_rate=sample_rate)
    if clip.audio_error:
        raise BlemoreError(clip.audio_error)
    assert clip.audio is not None
    return clip.audio


def read_video(
    path: str | Path, *, fps: float | None = None, short_side: int | None = None, crop: str | None = None
) -> VideoFrames:
    """The clip's frames as uint8 RGB (T, H, W, 3) at ``fps`` with the shorter side ``short_side``
    (``crop``: see :class:`VideoSpec`; an encoder's frames are ``read_video(path, **vars(encoder.video))``).

    Raises :class:`BlemoreError` if there is no video stream or no frame decodes.
    """
    spec = VideoSpec(fps=fps, short_side=short_side, crop=crop)
    clip = decode_clip(path, audio_rate=None, video=[spec])
    if clip.video_error:
        raise BlemoreError(clip.video_error)
    return clip.video[spec]
