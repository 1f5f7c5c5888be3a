"""From a folder of clips to frame-level features on disk: :func:`extract`.

Threads decode clips ahead (PyAV releases the GIL while FFmpeg decodes) while the
main thread runs the encoders on batches of clips, so decoding overlaps inference.
Each clip is decoded once for all encoders that still need it (audio at 16 kHz and
every frame rate / size the video encoders ask for, in one pass). Results go to a
:class:`~blemore.features.store.FeatureStore` per encoder; a clip that cannot be
decoded or encoded is recorded as failed with its reason and the run goes on.

>>> summary = extract("clips/", encoders=["opensmile", "facemesh"], out="features/")  # doctest: +SKIP
>>> print(summary.format())                                                          # doctest: +SKIP
"""

from __future__ import annotations

import collections
import datetime as _dt
import os
import sys
import time
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from blemore.encoders.base import Encoder
from blemore.errors import BlemoreError
from blemore.media import SAMPLE_RATE, DecodedClip, decode_clip

__all__ = ["ExtractionSummary", "Failure", "extract", "encoder_settings"]


@dataclass(frozen=True)
class Failure:
    encoder: str
    clip: str
    reason: str


@dataclass
class ExtractionSummary:
    """What :func:`extract` did: counts are (clip, encoder) pairs."""

    out: Path
    encoders: list[str]
    clips: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0
    media_seconds: float = 0.0
    encode_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def clips_per_second(self) -> float:
        return self.clips / self.seconds if self.seconds > 0 else 0.0

    @property
    def realtime_factor(self) -> float:
        """Seconds of media processed per second of wall time (> 1: faster than real time)."""
        return self.media_seconds / self.seconds if self.seconds > 0 else 0.0

    def format(self, *, max_failures: int = 20) -> str:
        """A short human-readable summary, failures with their reasons."""
        lines = [
            f"extracted {', '.join(self.encoders)} -> {self.out}: done {self.done}, skipped {self.skipped} "
            f"(already there), failed {self.failed}; {self.clips} clips in {self.seconds:.1f} s "
            f"({self.clips_per_second:.2f} clips/s"
            + (f", {self.realtime_factor:.1f}x real time)" if self.media_seconds else ")")
        ]
        for f in self.failures[:max_failures]:
            lines.append(f"  failed: {f.encoder} {f.clip}: {f.reason}")
        if len(self.failures) > max_failures:
            lines.append(f"  ... and {len(self.failures) - max_failures} more (see each encoder's index.csv)")
        return "\n".join(lines)


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": sys.version.split()[0]}
    for dist in ("blemore", "numpy", "av", "soxr", "opensmile", "mediapipe", "torch", "transformers"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out


def encoder_settings(encoder: Encoder) -> dict[str, Any]:
    """The ``settings.json`` content for an encoder: its config plus versions and time."""
    return {
        "config": encoder.settings(),
        "versions": _versions(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _build_encoders(encoders: Sequence[str | Encoder], *, device: str, batch_size: int | None,
                    face_crop: bool = False) -> list[Encoder]:
    from blemore.encoders.registry import check_spec, get_encoder

    if not encoders:
        raise BlemoreError("no encoders given: pass e.g. --encoders opensmile,facemesh")
    for e in encoders:  # all specs checked before any model is loaded
        if not isinstance(e, Encoder):
            check_spec(e)
    if device != "cpu":
        from blemore.encoders.hf import resolve_device

        resolve_device(device)
    built = [
        e if isinstance(e, Encoder) else get_encoder(e, device=device, batch_size=batch_size, face_crop=face_crop)
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


def _decoded_stream(
    jobs: list[tuple[str, str, list[Encoder]]], workers: int, pool: str = "thread"
) -> Iterator[tuple[str, list[Encoder], DecodedClip | BlemoreError]]:
    """Decode clips in order, ``workers`` threads (or processes) ahead of the consumer."""
    if workers <= 0:
        for clip, path, encs in jobs:
            yield clip, encs, _decode_for(path, encs)
        return
    ahead = max(4 * workers, 8)
    if pool == "process":
        import multiprocessing

        executor = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    elif pool == "thread":
        executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="blemore-decode")
    else:
        raise BlemoreError(f"decode pool {pool!r}: expected 'thread' or 'process'")
    with executor:
        queue: collections.deque[tuple[str, list[Encoder], Future]] = collections.deque()
        try:
            for clip, path, encs in jobs:
                queue.append((clip, encs, executor.submit(_decode, path, *_needs(encs))))
                if len(queue) >= ahead:
                    c, e, fut = queue.popleft()
                    yield c, e, fut.result()
            while queue:
                c, e, fut = queue.popleft()
                yield c, e, fut.result()
        finally:
            for _, _, fut in queue:
                fut.cancel()


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
        face found by MediaPipe's detector instead of the centre of the frame.

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
    built = _build_encoders(encoders, device=device, batch_size=batch_size, face_crop=face_crop)
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
    try:
        pending: list[tuple[str, list[Encoder], DecodedClip | BlemoreError]] = []
        for item in _decoded_stream(jobs, workers, pool):
            pending.append(item)
            if len(pending) >= group:
                _run_batch(pending, built, stores, summary)
                bar.update(len(pending))
                bar.set_postfix(failed=summary.failed, refresh=False)
                pending = []
        if pending:
            _run_batch(pending, built, stores, summary)
            bar.update(len(pending))
            bar.set_postfix(failed=summary.failed, refresh=False)
    finally:
        bar.close()
        for store in stores.values():
            store.close()
    summary.seconds = time.perf_counter() - start
    return summary


def _run_batch(pending, built: list[Encoder], stores, summary: ExtractionSummary) -> None:
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
        store = stores[encoder.name]
        ready: list[tuple[str, Any, float]] = []
        for clip, encs, decoded in pending:
            if encoder not in encs:
                continue
            got = _input_for(encoder, decoded)
            if isinstance(got, str):
                _fail(store, summary, encoder, clip, got)
            else:
                ready.append((clip, got[0], got[1]))
        for i in range(0, len(ready), encoder.batch_size):
            _encode_chunk(encoder, store, summary, ready[i : i + encoder.batch_size])


def _encode_chunk(encoder: Encoder, store, summary: ExtractionSummary, chunk) -> None:
    started = time.perf_counter()
    try:
        outputs = encoder.encode([x for _, x, _ in chunk])
    except Exception as exc:
        if len(chunk) > 1:  # find the clip that fails
            for one in chunk:
                _encode_chunk(encoder, store, summary, [one])
            return
        _fail(store, summary, encoder, chunk[0][0], _reason(exc))
        return
    finally:
        summary.encode_seconds[encoder.name] = (
            summary.encode_seconds.get(encoder.name, 0.0) + time.perf_counter() - started
        )
    for (clip, _, rate), features in zip(chunk, outputs):
        try:
            face = None
            if encoder.marks_faces and len(features):
                face = float(np.mean(~np.isnan(features).any(axis=1)))
            store.write(clip, features, fps=encoder.output_fps(rate), face_found=face, dim=encoder.dim)
        except BlemoreError as exc:
            _fail(store, summary, encoder, clip, str(exc))
            continue
        summary.done += 1


def _fail(store, summary: ExtractionSummary, encoder: Encoder, clip: str, reason: str) -> None:
    store.fail(clip, reason)
    summary.failed += 1
    summary.failures.append(Failure(encoder.name, clip, reason))
