"""From a folder of clips to frame-level features on disk, on this machine: :func:`extract`.

Three stages overlap:

1. decoding: threads, or worker processes with ``pool="process"`` (the default on CUDA),
   decode clips ahead; worker processes hand frames over through shared memory
   (:mod:`blemore.media.handoff`), not pickles;
2. encoding: the main thread runs the encoders on batches of clips (the GPU's stage);
3. writing: one writer thread stores each clip's features (atomic ``.npy`` + index row),
   so disk writes never hold up the next batch.

The steps themselves (plan, decode, run a batch, the writer) are those of
:mod:`blemore.extraction.engine`, which the Ray runner uses too. The summary says where
the main thread's time went (waiting for decoding, encoding, waiting for the writer), so
a slow run shows what to add: workers, or a faster disk.

>>> summary = extract("clips/", encoders=["opensmile", "facemesh"], out="features/")  # doctest: +SKIP
>>> print(summary.format())                                                          # doctest: +SKIP
"""

from __future__ import annotations

import collections
import contextlib
import os
import sys
import time
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from blemore.encoders.base import Encoder
from blemore.errors import BlemoreError
from blemore.extraction.engine import (
    Decoded,
    Job,
    MediaNeeds,
    Pool,
    Precision,
    WriterThread,
    build_encoders,
    check_choice,
    close_stores,
    decode_media,
    encoder_settings,
    find_clips,
    finished_row,
    media_needs,
    open_stores,
    plan,
    run_batch,
)
from blemore.features.store import FeatureStore
from blemore.features.summary import ExtractionSummary
from blemore.media.decoder import DecodedClip

__all__ = ["extract", "decoded_stream", "decode_shared", "default_pool", "default_workers"]


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
    pool: Pool | None = None,
    face_crop: bool = False,
    precision: Precision = "auto",
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
    workers : decoding workers (default: :func:`default_workers`; 0 decodes in the main thread).
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
    start = time.perf_counter()
    pool = check_choice("--pool", pool, Pool) if pool is not None else default_pool(device)
    built = build_encoders(encoders, device=device, batch_size=batch_size, face_crop=face_crop,
                           precision=precision)
    found = find_clips(clips, metadata=metadata, limit=limit)
    stores = open_stores(out, {e.name: encoder_settings(e) for e in built}, overwrite=overwrite)
    summary = ExtractionSummary(out=Path(out), encoders=[e.name for e in built])
    try:
        _take_back_unindexed(stores, built)
        work = plan(found, {name: store.done() for name, store in stores.items()})
        summary.skipped, summary.clips = work.skipped, len(work.jobs)
        workers = default_workers(pool) if workers is None else workers
        _encode_all(work.jobs, built, stores, summary, workers=workers, pool=pool, progress=progress)
    except BaseException:
        close_stores(stores, failing=True)  # what was stored before the error is indexed, if the disk lets us
        raise
    close_stores(stores)
    summary.seconds = time.perf_counter() - start
    return summary


def default_pool(device: str) -> Pool:
    """``"process"`` on CUDA (keeps a fast GPU fed), else ``"thread"``."""
    return "process" if device.startswith("cuda") else "thread"


def default_workers(pool: Pool) -> int:
    """Decoding workers by default: CPUs - 1 processes, or min(4, CPUs) threads."""
    cpus = os.cpu_count() or 1
    return max(1, cpus - 1) if pool == "process" else min(4, cpus)


def _take_back_unindexed(stores: Mapping[str, FeatureStore], built: Sequence[Encoder]) -> None:
    """Index the ``.npy`` files a killed run finished but did not index, as an uninterrupted run does."""
    for encoder in built:
        store = stores[encoder.name]
        for clip in sorted(store.adopted):
            row = finished_row(encoder, store.path(clip))
            if row is not None:
                store.record_done(clip, **row)


def _encode_all(jobs: list[Job], built: Sequence[Encoder], stores: Mapping[str, FeatureStore],
                summary: ExtractionSummary, *, workers: int, pool: Pool, progress: bool) -> None:
    """Decode ahead, encode in batches of the largest encoder batch, write in the background."""
    from tqdm.auto import tqdm

    group = max(e.batch_size for e in built)
    bar = tqdm(total=len(jobs), unit="clip", desc="extract", file=sys.stderr, disable=not progress,
               dynamic_ncols=True, smoothing=0.1)
    sink = WriterThread(stores, summary)
    pending: list[Decoded] = []

    def run_pending() -> None:
        run_batch(pending, built, sink, summary)
        bar.update(len(pending))
        bar.set_postfix(failed=summary.failed, refresh=False)
        pending.clear()  # drops the decoded frames (their shared memory goes back)

    try:
        # closing(): on an error too, the decoding workers stop and their memory is freed
        stream = decoded_stream(jobs, built, workers=workers, pool=pool, summary=summary)
        with contextlib.closing(stream):
            for item in stream:
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


# --------------------------------------------------------------------------- the decoding stage


def decode_shared(path: str, needs: MediaNeeds, prefix: str) -> DecodedClip | BlemoreError:
    """:func:`~blemore.extraction.engine.decode_media` in a worker process, large arrays handed
    over in shared memory."""
    from blemore.media.handoff import pack_clip

    decoded = decode_media(path, needs)
    return pack_clip(decoded, prefix=prefix) if isinstance(decoded, DecodedClip) else decoded


def decoded_stream(jobs: Sequence[Job], encoders: Sequence[Encoder], *, workers: int, pool: Pool = "thread",
                   summary: ExtractionSummary | None = None) -> Iterator[Decoded]:
    """The jobs' clips decoded, in order, ``workers`` threads (or processes) ahead of the consumer.

    Time the consumer spends blocked on a clip not yet decoded goes to
    ``summary.wait_decode_seconds``. Close the iterator (``contextlib.closing``) to stop
    the workers early.
    """
    by_name = {e.name: e for e in encoders}
    needs = [media_needs(by_name[n] for n in job.encoders) for job in jobs]
    if workers <= 0:
        yield from _inline(jobs, needs, summary)
    else:
        yield from _pooled(jobs, needs, workers, pool, summary)


def _inline(jobs: Sequence[Job], needs: list[MediaNeeds],
            summary: ExtractionSummary | None) -> Iterator[Decoded]:
    for job, need in zip(jobs, needs):
        started = time.perf_counter()
        media = decode_media(job.path, need)
        if summary is not None:
            summary.wait_decode_seconds += time.perf_counter() - started
        yield Decoded(job.clip, job.encoders, media)


def _open_pool(pool: Pool, workers: int) -> tuple[Executor, str | None]:
    """The executor, and the shared-memory prefix of this run (worker processes only)."""
    if pool == "process":
        import multiprocessing

        from blemore.media import handoff

        handoff.sweep_stale()
        executor = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
        return executor, handoff.run_prefix()
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="blemore-decode"), None


def _received(clip: str, fut: Future, prefix: str | None, summary: ExtractionSummary | None) -> Any:
    """A worker's decoded clip, waited for (and counted) here, out of shared memory."""
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


def _pooled(jobs: Sequence[Job], needs: list[MediaNeeds], workers: int, pool: Pool,
            summary: ExtractionSummary | None) -> Iterator[Decoded]:
    ahead = max(4 * workers, 8)
    executor, prefix = _open_pool(check_choice("--pool", pool, Pool), workers)
    waiting: collections.deque[tuple[Job, Future]] = collections.deque()
    try:
        with executor:
            try:
                for job, need in zip(jobs, needs):
                    fut = (executor.submit(decode_media, job.path, need) if prefix is None
                           else executor.submit(decode_shared, job.path, need, prefix))
                    waiting.append((job, fut))
                    if len(waiting) >= ahead:
                        done, fut = waiting.popleft()
                        yield Decoded(done.clip, done.encoders, _received(done.clip, fut, prefix, summary))
                while waiting:
                    done, fut = waiting.popleft()
                    yield Decoded(done.clip, done.encoders, _received(done.clip, fut, prefix, summary))
            finally:
                for _, fut in waiting:
                    fut.cancel()
    finally:
        if prefix is not None:  # clips decoded but never received (an error, a stop): free their memory
            from blemore.media.handoff import sweep

            sweep(prefix)
