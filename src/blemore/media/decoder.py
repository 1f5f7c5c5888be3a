"""Decoding clips with PyAV: video frames at a chosen rate and size, 16 kHz mono audio.

No torchvision or torchaudio: PyAV demuxes and decodes (FFmpeg), scales frames with
swscale and converts audio to mono float; ``soxr`` resamples audio to 16 kHz.

One pass over the file serves every consumer: :func:`decode_clip` takes the audio
rate and any number of :class:`VideoSpec` (e.g. 15 fps at 240 px for face geometry
and 30 fps at 224 px for CLIP) and returns them all. A spec may carry a
:class:`FrameTransform` (a picklable callable, e.g. the face crop of the video models) that
runs on the clip's sampled frames in the decoding worker; this module knows nothing of what
it does. Problems a user must know about
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
from typing import Any, Iterable, Literal, Protocol, get_args, runtime_checkable

import numpy as np

from blemore.errors import BlemoreError

__all__ = [
    "SAMPLE_RATE",
    "Crop",
    "FrameTransform",
    "MediaInfo",
    "VideoSpec",
    "VideoFrames",
    "DecodedClip",
    "probe",
    "decode_clip",
    "read_audio",
    "read_video",
    "scaled_size",
    "centre_square",
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


#: What a :class:`VideoSpec` may cut from each frame as it is sampled.
Crop = Literal["centre"]


@runtime_checkable
class FrameTransform(Protocol):
    """A change of a clip's sampled frames, run where the clip is decoded.

    Called once per clip with all its frames ``(T, H, W, 3)`` uint8 after sampling (and
    after the ``crop``), it returns the frames the encoder sees ``(T, H', W', 3)`` uint8.
    It runs in the decoding worker (a thread or, with ``pool="process"``, a process), so
    it must be picklable; it is part of a :class:`VideoSpec`, a dictionary key, so it
    must be hashable and compare by value (a frozen dataclass is all three). ``name``
    says in the features' settings what was done (e.g. ``"face"``).
    """

    name: str

    def __call__(self, frames: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class VideoSpec:
    """How an encoder wants its frames.

    ``fps``: target rate (frames are picked by timestamp; a rate above the clip's
    keeps every frame); None keeps every frame. ``short_side``: the shorter side
    after scaling, aspect ratio kept, sizes even; None keeps the decoded size.
    ``crop``: None keeps the whole frame; ``"centre"`` its centre square (what the video
    models see: cut in the decoding worker, so fewer bytes travel to the encoder).
    ``transform``: a :class:`FrameTransform` applied to the clip's frames after sampling
    and cropping, in the decoding worker (e.g. :class:`blemore.encoders.facecrop.FaceCrop`).

    >>> VideoSpec(fps=15, short_side=240) == VideoSpec(15.0, 240)
    True
    """

    fps: float | None = None
    short_side: int | None = None
    crop: Crop | None = None
    transform: FrameTransform | None = None

    def __post_init__(self) -> None:
        if self.fps is not None and not self.fps > 0:
            raise BlemoreError(f"video rate must be positive, got fps={self.fps}")
        if self.short_side is not None and self.short_side < 2:
            raise BlemoreError(f"short_side must be at least 2 pixels, got {self.short_side}")
        if self.crop not in (None, *get_args(Crop)):
            raise BlemoreError(f"crop={self.crop!r}: expected None or 'centre'")
        if self.transform is not None:
            if not callable(self.transform) or not isinstance(getattr(self.transform, "name", None), str):
                raise BlemoreError(f"transform={self.transform!r}: expected a callable with a 'name'")
            try:
                hash(self.transform)
            except TypeError:
                raise BlemoreError(
                    f"transform={self.transform!r}: must be hashable (a frozen dataclass, say)"
                ) from None

    @property
    def label(self) -> str | None:
        """What is cut from the frames, for the settings: the transform's name, else the crop."""
        return self.transform.name if self.transform is not None else self.crop


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
        """The kept frames (through the spec's transform), their times and rate."""
        if self.frames:
            frames = np.stack(self.frames)
            if self.spec.transform is not None:
                frames = _transformed(self.spec.transform, frames)
        else:
            side = min(self.height, self.width)
            frames = np.zeros((0, side, side, 3) if self.spec.crop else (0, self.height, self.width, 3), np.uint8)
        times = np.asarray(self.times, dtype=np.float64)
        return VideoFrames(frames=frames, times=times, fps=self._rate(times, native_fps))

    def _rate(self, times: np.ndarray, native_fps: float | None) -> float:
        if self.step:
            return 1.0 / self.step
        if native_fps:
            return native_fps
        if len(times) > 1:
            return float(1.0 / np.median(np.diff(times)))
        return 0.0


def _transformed(transform: FrameTransform, frames: np.ndarray) -> np.ndarray:
    """``transform(frames)``, checked: uint8 frames ``(T, H', W', 3)``, as many as went in."""
    out = transform(frames)
    if not (isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.ndim == 4 and len(out) == len(frames)):
        got = f"{out.dtype} {out.shape}" if isinstance(out, np.ndarray) else type(out).__name__
        raise BlemoreError(f"frame transform {transform.name!r} returned {got}; expected {len(frames)} uint8 frames")
    return out


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
    result = DecodedClip(path=str(path), sample_rate=audio_rate or SAMPLE_RATE)
    if audio_rate is None and not specs:
        return result
    with _open(path) as container:
        streams = _open_streams(container, path, specs, audio_rate is not None, threads, result)
        if streams.video is None and streams.audio is None:
            return result
        try:
            chunks, source_rate = _demux(container, streams)
        except Exception as exc:  # FFmpeg errors: truncated or corrupt data
            reason = f"{path}: undecodable stream ({_reason(exc)})"
            if streams.video is not None:
                result.video_error = reason
            if streams.audio is not None:
                result.audio_error = reason
            return result
        if streams.video is not None:
            _collect_video(streams, result, path)
        if streams.audio is not None:
            _collect_audio(chunks, source_rate, audio_rate, result, path)
    return result


@dataclass
class _Streams:
    """The streams one decoding pass reads, and a sampler per video spec."""

    video: Any = None
    audio: Any = None
    native_fps: float | None = None
    samplers: list[_Sampler] = field(default_factory=list)


def _open_streams(container, path, specs: list[VideoSpec], want_audio: bool, threads: bool,
                  result: DecodedClip) -> _Streams:
    """The streams wanted and present; what is wanted but missing goes to ``result``'s errors."""
    streams = _Streams(
        video=container.streams.video[0] if (specs and container.streams.video) else None,
        audio=container.streams.audio[0] if (want_audio and container.streams.audio) else None,
    )
    if specs and streams.video is None:
        result.video_error = f"{path}: no video stream"
    if want_audio and streams.audio is None:
        result.audio_error = f"{path}: no audio track"
    if streams.video is not None:
        if threads:
            streams.video.thread_type = "AUTO"
        streams.native_fps = _rate(streams.video)
        w, h = streams.video.codec_context.width, streams.video.codec_context.height
        if not w or not h:
            result.video_error = f"{path}: video stream has no frame size (undecodable stream)"
            streams.video = None
        else:
            streams.samplers = [_Sampler(s, streams.native_fps, w, h) for s in specs]
    return streams


def _demux(container, streams: _Streams) -> tuple[list[np.ndarray], int | None]:
    """Read every packet once: video frames go to the samplers, audio to mono chunks."""
    chunks: list[np.ndarray] = []
    source_rate = streams.audio.codec_context.sample_rate if streams.audio is not None else None
    native_fps = streams.native_fps
    index = 0
    for packet in container.demux(*[s for s in (streams.video, streams.audio) if s is not None]):
        for frame in packet.decode():
            if packet.stream.type == "video":
                t = frame.time
                if t is None:
                    t = index / native_fps if native_fps else float(index)
                index += 1
                for sampler in streams.samplers:
                    sampler.offer(frame, float(t))
            else:
                source_rate = frame.sample_rate or source_rate
                chunks.append(_audio_to_mono(frame))
    return chunks, source_rate


def _collect_video(streams: _Streams, result: DecodedClip, path) -> None:
    for sampler in streams.samplers:
        frames = sampler.result(streams.native_fps)
        if len(frames.frames) == 0:
            result.video_error = f"{path}: no video frames could be decoded"
            result.video = {}
            return
        result.video[sampler.spec] = frames


def _collect_audio(chunks: list[np.ndarray], source_rate: int | None, audio_rate: int | None,
                   result: DecodedClip, path) -> None:
    if not chunks or sum(len(c) for c in chunks) == 0:
        result.audio_error = f"{path}: audio track holds no samples"
        return
    signal = np.concatenate(chunks)
    if source_rate and source_rate != audio_rate:
        import soxr

        signal = soxr.resample(signal, source_rate, audio_rate).astype(np.float32, copy=False)
    result.audio = np.ascontiguousarray(signal, dtype=np.float32)


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
    path: str | Path,
    *,
    fps: float | None = None,
    short_side: int | None = None,
    crop: Crop | None = None,
    transform: FrameTransform | None = None,
) -> VideoFrames:
    """The clip's frames as uint8 RGB (T, H, W, 3) at ``fps`` with the shorter side ``short_side``
    (``crop``, ``transform``: see :class:`VideoSpec`; an encoder's frames are
    ``read_video(path, **vars(encoder.video))``).

    Raises :class:`BlemoreError` if there is no video stream or no frame decodes.
    """
    spec = VideoSpec(fps=fps, short_side=short_side, crop=crop, transform=transform)
    clip = decode_clip(path, audio_rate=None, video=[spec])
    if clip.video_error:
        raise BlemoreError(clip.video_error)
    return clip.video[spec]
