"""From a folder of clips to frame-level features on disk: :func:`extract`.

Three stages overlap:

1. decoding: threads, or worker processes with ``pool="process"`` (the default on CUDA),
   decode clips ahead; worker processes hand frames over through shared memory
   (:mod:`blemore.media.handoff`), not pickles;
2. encoding: the main thread runs the encoders on batches of clips (the GPU's stage);
3. writing: one writer thread stores each clip's features (atomic ``.npy`` + index row),
   so disk writes never hold up the next batch.

Each clip is decoded once for all encoders that still need it (audio at 16 kHz and
every frame rate / size the video encoders ask for, in one pass). Results go to a
:class:`~blemore.features.store.FeatureStore` per encoder; a clip that cannot be
decoded or encoded is recorded as failed with its reason and the run goes on.
The summary says where the main thread's time went (waiting for decoding, encoding,
waiting for the writer), so a slow run shows what to add: workers, or a faster disk.

>>> summary = extract("clips/", encoders=["opensmile", "facemesh"], out="features/")  # doctest: +SKIP
>>> print(summary.format())                                                          # doctest: +SKIP
"""

from __future__ import annotations

import collections
import contextlib
import datetime as _dt
import os
import queue as _queue
import sys
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from blemore.encoders.base import Encoder
from blemore.errors import BlemoreError
from blemore.features.summary import ExtractionSummary, Failure, software_versions
from blemore.media.decoder import SAMPLE_RATE, DecodedClip, decode_clip

__all__ = ["extract", "encoder_settings"]


def encoder_settings(encoder: Encoder) -> dict[str, Any]:
    """The ``settings.json`` content for an encoder: its config plus versions and time."""
    return {
        "config": encoder.settings(),
        "versions": software_versions(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _build_encoders(encoders: Sequence[str | Encoder], *, device: str, batch_size: int | None,
                    face_crop: bool = False, precision: str = "auto") -> list[Encoder]:
    from blemore.encoders.registry import check_requirements, get_encoder

    if not encoders:
        raise BlemoreError("no encoders given: pass e.g. --encoders opensmile,facemesh")
    for e in encoders:  # all specs and their packages checked before any model is loaded
        if not isinstance(e, Encoder):
            check_requirements(e, face_crop=face_crop)  # checks the spec first
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


def _needs(encoders: list[Encoder]) -> tuple[bool, tuple]:
    audio = any(e.modality == "audio" for e in encoders)
    specs = tuple(dict.fromkeys(e.video for e in encoders if e.modality == "video" and e.video is not None))
    return audio, specs


def _decode(path: str, audio: bool, specs: tuple) -> DecodedClip | BlemoreError:
    """Decode one clip (picklable arguments: runs in a thread or a worker process)."""
    try:
        return decode_clip(path, audio_rate=SAMPLE_RATE if audio else None, video=specs)
    except BlemoreError as exc:
        return exc
    except Exception as exc:  # anything else FFmpeg throws at us
        return BlemoreError(f"{path}: cannot decode ({type(exc).__name__}: {exc})")


def _decode_for(path: str, encoders: list[Encoder]) -> DecodedClip | BlemoreError:
    return _decode(path, *_needs(encoders))


def _decode_shared(path: str, audio: bool, specs: tuple, prefix: str) -> DecodedClip | BlemoreError:
    """:func:`_decode` in a worker process, large arrays handed over in shared memory."""
    from blemore.media.handoff import pack_clip

    decoded = _decode(path, audio, specs)
    return pack_clip(decoded, prefix=prefix) if isinstance(decoded, DecodedClip) else decoded


def _decoded_stream(
    jobs: list[tuple[str, str, list[Encoder]]], workers: int, pool: str = "thread",
    summary: ExtractionSummary | None = None,
) -> Iterator[tuple[str, list[Encoder], DecodedClip | BlemoreError]]:
    """Decode clips in order, ``workers`` threads (or processes) ahead of the consumer.

    Time the consumer spends blocked on a clip not yet decoded goes to
    ``summary.wait_decode_seconds``.
    """
    if workers <= 0:
        for clip, path, encs in jobs:
            started = time.perf_counter()
            decoded = _decode_for(path, encs)
            if summary is not None:
                summary.wait_decode_seconds += time.perf_counter() - started
            yield clip, encs, decoded
        return
    ahead = max(4 * workers, 8)
    prefix = None
    if pool == "process":
        import multiprocessing

        from blemore.media import handoff

        handoff.sweep_stale()
        prefix = handoff.run_prefix()
        executor = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    elif pool == "thread":
        executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="blemore-decode")
    else:
        raise BlemoreError(f"decode pool {pool!r}: expected 'thread' or 'process'")

    def submit(path: str, encs: list[Encoder]) -> Future:
        if prefix is None:
            return executor.submit(_decode, path, *_needs(encs))
        return executor.submit(_decode_shared, path, *_needs(encs), prefix)

    def result(clip: str, fut: Future) -> DecodedClip | BlemoreError:
        started = time.perf_counter()
        try:
            got = fut.result()
        except BrokenProcessPool:
            raise BlemoreError(
                f"a decoding worker process died while decoding {clip!r} or a clip near it (out of memory? "
                f"killed?); the features stored so far are kept: run the same command again to resume, "
                f"with fewer --workers or --pool thread"
            ) from None
        if summary is not None:
            summary.wait_decode_seconds += time.perf_counter() - started
        if prefix is not None and isinstance(got, DecodedClip):
            from blemore.media.handoff import unpack_clip

            got = unpack_clip(got)
        return got

    try:
        with executor:
            waiting: collections.deque[tuple[str, list[Encoder], Future]] = collections.deque()
            try:
                for clip, path, encs in jobs:
                    waiting.append((clip, encs, submit(path, encs)))
                    if len(waiting) >= ahead:
                        c, e, fut = waiting.popleft()
                        yield c, e, result(c, fut)
                while waiting:
                    c, e, fut = waiting.popleft()
                    yield c, e, result(c, fut)
            finally:
                for _, _, fut in waiting:
                    fut.cancel()
    finally:
        if prefix is not None:  # clips decoded but never received (an error, a stop): free their memory
            from blemore.media.handoff import sweep

            sweep(prefix)


def _input_for(encoder: Encoder, decoded: DecodedClip | BlemoreError) -> tuple[Any, float] | str:
    """The encoder's input and its rate, or the reason there is none."""
    if isinstance(decoded, BlemoreError):
        return str(decoded)
    if encoder.modality == "audio":
        if decoded.audio_error:
            return decoded.audio_error
        return decoded.audio, float(decoded.sample_rate)
    if decoded.video_error:
        return decoded.video_error
    frames = decoded.video[encoder.video]
    return frames.frames, float(frames.fps)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, BlemoreError):
        return str(exc)
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def extract(
    clips: str | Path,
    *,
    encoders: Sequence[str | Encoder],
    out: str | Path,
    metadata: str | Path | None = None,
    device: str = "cpu",
    batch_size: int | None = None,
    progress: bool = True,
    workers: int | None = None,
    overwrite: bool = False,
    limit: int | None = None,
    pool: str | None = None,
    face_crop: bool = False,
    precision: str = "auto",
) -> ExtractionSummary:
    """Extract frame-level features of every clip under ``clips`` into ``out/<encoder>/``.

    Parameters
    ----------
    clips : folder of clips (any container PyAV opens; searched recursively) or one clip.
    encoders : specs (``"opensmile"``, ``"facemesh"``, ``"wavlm-large:12"``, ...) or built
        :class:`~blemore.encoders.Encoder` objects.
    out : the features root; each encoder writes ``out/<encoder name>/``.
    metadata : official metadata CSV (only used to check the clips; optional).
    device : ``"cpu"`` or ``"cuda"`` (model encoders; bf16 autocast on CUDA).
    batch_size : clips per encoder call (default per encoder).
    progress : show a progress bar (clips/s, ETA) on stderr.
    workers : decoding workers (default: min(4, CPUs) for threads, CPUs - 1 for processes;
        0 decodes in the main thread).
    overwrite : delete existing features of these encoders first (default: resume).
    limit : only the first ``limit`` clips (by clip id).
    pool : ``"thread"`` (default on CPU) or ``"process"`` (default on CUDA: decoding in worker
        processes keeps a fast GPU fed; PyAV's per-frame Python work holds the GIL).
    face_crop : video model encoders (CLIP, VideoMAE) see a fixed square crop around the
        face found by MediaPipe's detector instead of the centre of the frame (cut where the
        clip is decoded: in the decoding workers, beside the GPU).
    precision : model encoders: ``"auto"`` (bf16 autocast on CUDA, float32 on the CPU),
        ``"fp32"`` or ``"bf16"`` (autocast on any device). Features are stored as float32.

    Returns
    -------
    ExtractionSummary with done / skipped / failed counts and the failures.
    """
    from blemore.data.discover import discover_clips

    start = time.perf_counter()
    out = Path(out)
    if pool is None:
        pool = "process" if device.startswith("cuda") else "thread"
    if pool not in ("thread", "process"):
        raise BlemoreError(f"--pool {pool!r}: expected 'thread' or 'process'")
    built = _build_encoders(encoders, device=device, batch_size=batch_size, face_crop=face_crop,
                            precision=precision)
    manifest = discover_clips(clips, metadata=metadata, probe=False)
    if limit is not None:
        manifest = manifest.iloc[: max(0, int(limit))]
    from blemore.features.store import FeatureStore

    if out.exists() and not out.is_dir():
        raise BlemoreError(f"{out}: exists and is not a folder (--out is the features root)")
    stores = {e.name: FeatureStore(out / e.name, settings=encoder_settings(e), overwrite=overwrite) for e in built}
    summary = ExtractionSummary(out=out, encoders=[e.name for e in built])
    jobs: list[tuple[str, str, list[Encoder]]] = []
    done = {name: store.done() for name, store in stores.items()}
    for clip, path in zip(manifest["clip"], manifest["path"]):
        todo = [e for e in built if clip not in done[e.name]]
        summary.skipped += len(built) - len(todo)
        if todo:
            jobs.append((clip, path, todo))
    summary.clips = len(jobs)
    if workers is None:
        cpus = os.cpu_count() or 1
        workers = max(1, cpus - 1) if pool == "process" else min(4, cpus)
    group = max(e.batch_size for e in built)

    from tqdm.auto import tqdm

    bar = tqdm(total=len(jobs), unit="clip", desc="extract", file=sys.stderr, disable=not progress,
               dynamic_ncols=True, smoothing=0.1)
    sink = _WriterThread(stores, summary)
    try:
        pending: list[tuple[str, list[Encoder], DecodedClip | BlemoreError]] = []

        def run_pending() -> None:
            _run_batch(pending, built, sink, summary)
            bar.update(len(pending))
            bar.set_postfix(failed=summary.failed, refresh=False)
            pending.clear()  # drops the decoded frames (their shared memory goes back)

        # closing(): on an error too, the decoding workers stop and their memory is freed
        with contextlib.closing(_decoded_stream(jobs, workers, pool, summary)) as decoded_clips:
            for item in decoded_clips:
                pending.append(item)
                if len(pending) >= group:
                    run_pending()
                del item  # the frames are held by ``pending`` alone
        if pending:
            run_pending()
        sink.close()
    finally:
        sink.close(raise_error=False)  # what was encoded before an error still reaches the disk
        bar.close()
        for store in stores.values():
            store.close()
    summary.seconds = time.perf_counter() - start
    return summary


class _Sink:
    """Where encoded clips go: the encoder's store, and the summary's counts (synchronous)."""

    def __init__(self, stores, summary: ExtractionSummary):
        self.stores = stores
        self.summary = summary

    def write(self, encoder: Encoder, clip: str, features: np.ndarray, rate: float) -> None:
        store = self.stores[encoder.name]
        try:
            face = None
            if encoder.marks_faces and len(features):
                face = float(np.mean(~np.isnan(features).any(axis=1)))
            store.write(clip, features, fps=encoder.output_fps(rate), face_found=face, dim=encoder.dim)
        except BlemoreError as exc:
            self.fail(encoder, clip, str(exc))
            return
        self.summary.done += 1

    def fail(self, encoder: Encoder, clip: str, reason: str) -> None:
        self.stores[encoder.name].fail(clip, reason)
        self.summary.failed += 1
        self.summary.failures.append(Failure(encoder.name, clip, reason))


class _WriterThread(_Sink):
    """A :class:`_Sink` whose writes happen in one background thread, in order, so the
    main thread goes on encoding while files are written.

    Until :meth:`close` only that thread touches the stores and the summary's counts. An
    unexpected error there (a full disk) stops the writing: the next call from the main
    thread raises it.
    """

    def __init__(self, stores, summary: ExtractionSummary, *, depth: int = 256):
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

    def _put(self, item) -> None:
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


def _run_batch(pending, built: list[Encoder], sink: _Sink, summary: ExtractionSummary) -> None:
    media = 0.0
    for clip, _, decoded in pending:
        if isinstance(decoded, DecodedClip):
            if decoded.audio is not None:
                media += len(decoded.audio) / decoded.sample_rate
            elif decoded.video:
                frames = next(iter(decoded.video.values()))
                media += len(frames.frames) / frames.fps if frames.fps else 0.0
    summary.media_seconds += media
    for encoder in built:
        ready: list[tuple[str, Any, float]] = []
        for clip, encs, decoded in pending:
            if encoder not in encs:
                continue
            got = _input_for(encoder, decoded)
            if isinstance(got, str):
                sink.fail(encoder, clip, got)
            else:
                ready.append((clip, got[0], got[1]))
        for i in range(0, len(ready), encoder.batch_size):
            _encode_chunk(encoder, sink, summary, ready[i : i + encoder.batch_size])


def _count_encoding(summary: ExtractionSummary, encoder: Encoder, started: float) -> None:
    summary.encode_seconds[encoder.name] = summary.encode_seconds.get(encoder.name, 0.0) + time.perf_counter() - started


def _encode_chunk(encoder: Encoder, sink: _Sink, summary: ExtractionSummary, chunk) -> None:
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
