"""The pieces of feature extraction that every runner shares.

A runner (:func:`blemore.extraction.local.extract` on this machine,
:func:`blemore.extraction.ray.extract_on_ray` on a Ray cluster) goes through the same steps:

1. :func:`build_encoders` checks the encoder specs (and their packages) and builds them;
2. :func:`find_clips` lists the clips, :func:`open_stores` opens one
   :class:`~blemore.features.store.FeatureStore` per encoder and :func:`plan` says which
   (clip, encoders) pairs still need work: finished clips are skipped, so a rerun resumes;
3. :func:`decode` decodes a clip once for all the encoders that still need it (audio at
   16 kHz and every frame rate / size the video encoders ask for, in one pass);
4. :func:`run_batch` runs the encoders on a batch of decoded clips and hands each clip's
   features (or the reason it failed) to a :class:`Sink`, which stores them; the
   :class:`WriterThread` is a sink that writes in a background thread, so the disk never
   holds up the next batch.

A clip that cannot be decoded or encoded is recorded as failed with its reason and the
run goes on. A ``.npy`` that a killed run finished but never indexed is taken back with
:func:`finished_row` (the same row an uninterrupted run writes), not computed again.

>>> from blemore.extraction.engine import plan
>>> work = plan([("A1", "A1.mov"), ("A2", "A2.mov")], {"opensmile": {"A1"}, "facemesh": set()})
>>> [(job.clip, job.encoders) for job in work.jobs], work.skipped
([('A1', ('facemesh',)), ('A2', ('opensmile', 'facemesh'))], 1)
"""

from __future__ import annotations

import datetime as _dt
import queue as _queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Iterable, Literal, Mapping, NamedTuple, Protocol, Sequence, get_args

import numpy as np

from blemore.encoders.base import Encoder
from blemore.errors import BlemoreError
from blemore.features.store import FeatureStore
from blemore.features.summary import ExtractionSummary, Failure, software_versions
from blemore.media.decoder import SAMPLE_RATE, DecodedClip, VideoSpec, decode_clip

__all__ = [
    "Pool",
    "Precision",
    "check_choice",
    "check_specs",
    "check_out",
    "Job",
    "Plan",
    "Decoded",
    "MediaNeeds",
    "Store",
    "Sink",
    "WriterThread",
    "encoder_settings",
    "build_encoders",
    "find_clips",
    "open_stores",
    "close_stores",
    "plan",
    "media_needs",
    "decode",
    "decode_media",
    "face_share",
    "finished_row",
    "run_batch",
]

#: Where clips are decoded: threads of this process, or worker processes.
Pool = Literal["thread", "process"]
#: Model encoders' arithmetic: ``auto`` (bf16 autocast on CUDA, float32 on the CPU), ``fp32`` or ``bf16``.
Precision = Literal["auto", "fp32", "bf16"]


def check_choice(option: str, value: str, choices: Any) -> str:
    """``value`` if it is one of the words of the ``Literal`` ``choices``, else :class:`BlemoreError`.

    >>> check_choice("--pool", "thread", Pool)
    'thread'
    """
    words = get_args(choices)
    if value not in words:
        raise BlemoreError(f"{option} {value!r}: expected {' or '.join(repr(w) for w in words)}")
    return value


# --------------------------------------------------------------------------- encoders and stores


def encoder_settings(encoder: Encoder) -> dict[str, Any]:
    """The ``settings.json`` content for an encoder: its config plus versions and time."""
    return {
        "config": encoder.settings(),
        "versions": software_versions(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def check_specs(encoders: Sequence[str | Encoder], *, precision: str = "auto", face_crop: bool = False,
                packages: bool = True) -> None:
    """Check encoder specs (and, with ``packages``, that their packages are installed) before building any."""
    from blemore.encoders.hf import check_precision
    from blemore.encoders.registry import check_requirements, check_spec

    if not encoders:
        raise BlemoreError("no encoders given: pass e.g. --encoders opensmile,facemesh")
    for e in encoders:
        if isinstance(e, str):
            if packages:
                check_requirements(e, face_crop=face_crop)  # checks the spec first
            else:
                check_spec(e)
    check_precision(precision)


def build_encoders(encoders: Sequence[str | Encoder], *, device: str = "cpu", batch_size: int | None = None,
                   face_crop: bool = False, precision: Precision = "auto") -> list[Encoder]:
    """The encoders of ``encoders`` (specs such as ``"wavlm-large:12"``, or built ones, kept as they are).

    Every spec and its packages are checked before any model is loaded; two encoders
    with the same name are refused (they would write the same folder).
    """
    from blemore.encoders.registry import get_encoder

    check_specs(encoders, precision=precision, face_crop=face_crop)
    if device != "cpu":
        from blemore.encoders.hf import resolve_device

        resolve_device(device)
    built = [
        e if isinstance(e, Encoder)
        else get_encoder(e, device=device, batch_size=batch_size, face_crop=face_crop, precision=precision)
        for e in encoders
    ]
    names = [e.name for e in built]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise BlemoreError(f"encoder {dupes[0]!r} is named twice")
    return built


def find_clips(clips: str | Path, *, metadata: str | Path | None = None, limit: int | None = None,
               resolve: bool = False) -> list[tuple[str, str]]:
    """``(clip, path)`` of the clips under ``clips`` in clip order, the first ``limit`` of them.

    ``resolve`` gives absolute paths (for workers that run elsewhere).
    """
    from blemore.data.discover import discover_clips

    manifest = discover_clips(clips, metadata=metadata, probe=False)
    if limit is not None:
        manifest = manifest.iloc[: max(0, int(limit))]
    paths = [str(Path(p).resolve()) if resolve else str(p) for p in manifest["path"]]
    return list(zip(manifest["clip"], paths))


def check_out(out: Path) -> Path:
    """``out`` if it can be the features root (a folder, or nothing yet)."""
    if out.exists() and not out.is_dir():
        raise BlemoreError(f"{out}: exists and is not a folder (--out is the features root)")
    return out


def open_stores(out: str | Path, settings: Mapping[str, dict[str, Any]], *,
                overwrite: bool = False) -> dict[str, FeatureStore]:
    """One :class:`FeatureStore` per encoder name, in ``out/<name>/``, opened with its settings."""
    out = check_out(Path(out))
    return {name: FeatureStore(out / name, settings=s, overwrite=overwrite) for name, s in settings.items()}


def close_stores(stores: Mapping[str, Any], *, failing: bool = False) -> None:
    """Write every store's index. ``failing``: a run is already stopping on an error, which is the
    one the user should see; an index that cannot be written now is rebuilt from the files next time."""
    first: OSError | None = None
    for store in stores.values():
        try:
            store.close()
        except OSError as exc:
            first = first or exc
    if first is not None and not failing:
        raise first


# --------------------------------------------------------------------------- the plan


class Job(NamedTuple):
    """One clip to decode, and the encoders (by name) that still need it."""

    clip: str
    path: str
    encoders: tuple[str, ...]


@dataclass
class Plan:
    """What a run does: ``jobs`` in clip order; ``skipped`` (clip, encoder) pairs already stored."""

    jobs: list[Job] = field(default_factory=list)
    skipped: int = 0


def plan(clips: Iterable[tuple[str, str]], done: Mapping[str, Collection[str]]) -> Plan:
    """The (clip, encoders) pairs that still need work.

    ``clips``: ``(clip, path)`` in order; ``done``: encoder name -> clips already stored
    (the encoders in the order they run). A clip every encoder has is skipped.
    """
    work = Plan()
    for clip, path in clips:
        todo = tuple(name for name, have in done.items() if clip not in have)
        work.skipped += len(done) - len(todo)
        if todo:
            work.jobs.append(Job(clip, path, todo))
    return work


# --------------------------------------------------------------------------- decoding


class MediaNeeds(NamedTuple):
    """What a set of encoders needs decoded: audio (16 kHz mono), and the frame specs of the video ones."""

    audio: bool
    video: tuple[VideoSpec, ...]


class Decoded(NamedTuple):
    """A decoded clip (or why it could not be decoded), and the encoders (by name) waiting for it."""

    clip: str
    encoders: tuple[str, ...]
    media: DecodedClip | BlemoreError


def media_needs(encoders: Iterable[Encoder]) -> MediaNeeds:
    encoders = list(encoders)
    audio = any(e.modality == "audio" for e in encoders)
    specs = tuple(dict.fromkeys(e.video for e in encoders if e.modality == "video" and e.video is not None))
    return MediaNeeds(audio, specs)


def decode_media(path: str, needs: MediaNeeds) -> DecodedClip | BlemoreError:
    """Decode one clip for ``needs`` (picklable arguments: runs in a thread or a worker process).

    Returns the reason as a :class:`BlemoreError` (not raised) when the clip cannot be decoded.
    """
    try:
        return decode_clip(path, audio_rate=SAMPLE_RATE if needs.audio else None, video=needs.video)
    except BlemoreError as exc:
        return exc
    except Exception as exc:  # anything else FFmpeg throws at us
        return BlemoreError(f"{path}: cannot decode ({type(exc).__name__}: {exc})")


def decode(path: str, encoders: Iterable[Encoder]) -> DecodedClip | BlemoreError:
    """Decode one clip once for all of ``encoders``; the reason as a :class:`BlemoreError` if it cannot be."""
    return decode_media(path, media_needs(encoders))


# --------------------------------------------------------------------------- storing


class Store(Protocol):
    """What a :class:`Sink` needs of a store (a :class:`FeatureStore`, or a Ray worker's stand-in)."""

    def write(self, clip: str, features: np.ndarray, *, fps: float | None = None,
              face_found: float | None = None, dim: int | None = None) -> Any: ...

    def fail(self, clip: str, error: str) -> None: ...


def face_share(encoder: Encoder, features: np.ndarray) -> float | None:
    """Share of frames with a face (rows without NaN) for encoders that mark faces, else None."""
    if not encoder.marks_faces or not len(features):
        return None
    return float(np.mean(~np.isnan(features).any(axis=1)))


def finished_row(encoder: Encoder, path: Path) -> dict[str, Any] | None:
    """The index values of a ``.npy`` a killed run finished but did not index; None if unreadable.

    Frames, dim and face share come from the file; the rate from the encoder's input
    rate (audio: its sample rate; video: its frame rate, when it asks for one).
    """
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
        frames, dim = arr.shape
    except Exception:  # unreadable or not 2-D: compute it again
        return None
    if encoder.modality == "audio":
        fps: float | None = encoder.output_fps(float(encoder.sample_rate))
    elif encoder.video is not None and encoder.video.fps is not None:
        fps = encoder.output_fps(float(encoder.video.fps))
    else:
        fps = None
    return dict(frames=int(frames), dim=int(dim), fps=fps, face_found=face_share(encoder, np.asarray(arr)))


class Sink:
    """Where encoded clips go: each encoder's store, and the summary's counts (synchronous)."""

    def __init__(self, stores: Mapping[str, Store], summary: ExtractionSummary):
        self.stores = stores
        self.summary = summary

    def write(self, encoder: Encoder, clip: str, features: np.ndarray, rate: float) -> None:
        """Store ``clip``'s features; features the store refuses (NaN-free checks) make the clip fail."""
        store = self.stores[encoder.name]
        try:
            store.write(clip, features, fps=encoder.output_fps(rate),
                        face_found=face_share(encoder, features), dim=encoder.dim)
        except BlemoreError as exc:
            self.fail(encoder, clip, str(exc))
            return
        self.summary.done += 1

    def fail(self, encoder: Encoder, clip: str, reason: str) -> None:
        """Record that ``encoder`` has no features of ``clip``, and why."""
        self.stores[encoder.name].fail(clip, reason)
        self.summary.failed += 1
        self.summary.failures.append(Failure(encoder.name, clip, reason))


class WriterThread(Sink):
    """A :class:`Sink` whose writes happen in one background thread, in order, so the
    main thread goes on encoding while files are written.

    Until :meth:`close` only that thread touches the stores and the summary's counts. An
    unexpected error there (a full disk) stops the writing: the next call from the main
    thread raises it.
    """

    def __init__(self, stores: Mapping[str, Store], summary: ExtractionSummary, *, depth: int = 256):
        super().__init__(stores, summary)
        self._queue: _queue.Queue = _queue.Queue(maxsize=depth)
        self._error: BaseException | None = None  # stays set: after an error nothing more is written
        self._reported = False
        self._thread = threading.Thread(target=self._loop, name="blemore-writer", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is not None:
                continue  # the queue is drained, nothing written
            method, args = item
            started = time.perf_counter()
            try:
                method(*args)
            except BaseException as exc:  # handed to the main thread
                self._error = exc
            self.summary.write_seconds += time.perf_counter() - started

    def _put(self, item: Any) -> None:
        self._raise()
        started = time.perf_counter()
        self._queue.put(item)
        self.summary.wait_write_seconds += time.perf_counter() - started

    def _raise(self) -> None:
        if self._error is not None and not self._reported:
            self._reported = True
            raise self._error

    def write(self, encoder: Encoder, clip: str, features: np.ndarray, rate: float) -> None:
        self._put((super().write, (encoder, clip, features, rate)))

    def fail(self, encoder: Encoder, clip: str, reason: str) -> None:
        self._put((super().fail, (encoder, clip, reason)))

    def close(self, *, raise_error: bool = True) -> None:
        """Wait until everything queued is stored; then raise the writer's error, if any."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        if raise_error:
            self._raise()


# --------------------------------------------------------------------------- encoding


def _input_for(encoder: Encoder, media: DecodedClip | BlemoreError) -> tuple[Any, float] | str:
    """The encoder's input and its rate, or the reason there is none."""
    if isinstance(media, BlemoreError):
        return str(media)
    if encoder.modality == "audio":
        if media.audio_error:
            return media.audio_error
        return media.audio, float(media.sample_rate)
    if media.video_error:
        return media.video_error
    frames = media.video[encoder.video]
    return frames.frames, float(frames.fps)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, BlemoreError):
        return str(exc)
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def _media_seconds(batch: Sequence[Decoded]) -> float:
    """Seconds of media in a batch (audio length, else video length)."""
    total = 0.0
    for item in batch:
        media = item.media
        if isinstance(media, DecodedClip):
            if media.audio is not None:
                total += len(media.audio) / media.sample_rate
            elif media.video:
                frames = next(iter(media.video.values()))
                total += len(frames.frames) / frames.fps if frames.fps else 0.0
    return total


def run_batch(batch: Sequence[Decoded], encoders: Sequence[Encoder], sink: Sink,
              summary: ExtractionSummary) -> None:
    """Run each encoder on the clips of ``batch`` that wait for it, ``encoder.batch_size`` at a time.

    Features go to ``sink``; a clip without usable input, or one the encoder fails on,
    is recorded as failed there (a failing batch is retried clip by clip, so that only
    the clip at fault fails).
    """
    summary.media_seconds += _media_seconds(batch)
    for encoder in encoders:
        ready: list[tuple[str, Any, float]] = []
        for item in batch:
            if encoder.name not in item.encoders:
                continue
            got = _input_for(encoder, item.media)
            if isinstance(got, str):
                sink.fail(encoder, item.clip, got)
            else:
                ready.append((item.clip, got[0], got[1]))
        for i in range(0, len(ready), encoder.batch_size):
            _encode_chunk(encoder, sink, summary, ready[i : i + encoder.batch_size])


def _count_encoding(summary: ExtractionSummary, encoder: Encoder, started: float) -> None:
    spent = time.perf_counter() - started
    summary.encode_seconds[encoder.name] = summary.encode_seconds.get(encoder.name, 0.0) + spent


def _encode_chunk(encoder: Encoder, sink: Sink, summary: ExtractionSummary,
                  chunk: list[tuple[str, Any, float]]) -> None:
    started = time.perf_counter()
    try:
        outputs = encoder.encode([x for _, x, _ in chunk])
    except Exception as exc:
        _count_encoding(summary, encoder, started)  # the failed attempt; the retries count their own
        if len(chunk) > 1:  # find the clip that fails
            for one in chunk:
                _encode_chunk(encoder, sink, summary, [one])
            return
        sink.fail(encoder, chunk[0][0], _reason(exc))
        return
    _count_encoding(summary, encoder, started)
    for (clip, _, rate), features in zip(chunk, outputs):
        sink.write(encoder, clip, features, rate)
