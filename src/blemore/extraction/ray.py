"""Extraction on a Ray cluster (the optional extra ``blemore[ray]``), and the Ray session helpers.

:func:`extract_on_ray` (``blemore extract ... --ray`` or ``--ray-address ADDRESS``): the
clips are cut into small chunks, each a Ray task holding one CPU slot (or one GPU with
``device="cuda"``). A task decodes and encodes its clips with the steps of
:mod:`blemore.extraction.engine` that the local runner uses too, and writes each clip's ``.npy``
straight into the store (through :mod:`blemore.io`, so a file is complete or absent); it returns the
index rows, and the driver alone writes ``index.csv`` (atomically, through
:class:`~blemore.features.store.FeatureStore`). A worker that dies loses only the clip in
flight: Ray reruns the task (``max_retries``), the rerun adopts the ``.npy`` files its
first attempt already finished, and a chunk that keeps killing its worker is split into
single clips so that only the clip at fault ends ``failed``. Resuming works as without
Ray: clips already ``done`` are skipped.

Workers read the clips and write the store under the same paths as the driver, so on a
multi-node cluster these paths must be on shared storage (NFS, Lustre, a mounted bucket).
This module is imported only when ``--ray`` is given; ``import blemore`` and
``import blemore.cli`` never import Ray.

>>> s = extract_on_ray("clips/", encoders=["opensmile"], out="features/", address="auto")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from blemore.encoders.base import Encoder
from blemore.errors import BlemoreError
from blemore.extraction.engine import (
    Decoded,
    Job,
    Precision,
    Sink,
    build_encoders,
    check_out,
    check_specs,
    close_stores,
    decode,
    encoder_settings,
    find_clips,
    finished_row,
    open_stores,
    plan,
    run_batch,
)
from blemore.features.store import FeatureStore, check_features
from blemore.features.summary import ExtractionSummary, Failure
from blemore.io import remove_temporaries, save_npy

__all__ = ["require_ray", "ray_session", "task_error", "as_completed", "extract_on_ray", "chunk_clips"]


# --------------------------------------------------------------------------- Ray itself


def require_ray() -> Any:
    """The ``ray`` module, or :class:`BlemoreError` saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise BlemoreError(
            f"--ray needs Ray, which is not installed ({exc}): "
            "pip install 'blemore[ray]' (or pip install ray)"
        ) from None
    return ray


@contextlib.contextmanager
def ray_session(address: str | None = None, **init: Any) -> Iterator[Any]:
    """Connect to Ray for the duration of a ``with`` block; yields the ``ray`` module.

    ``address``: ``None`` or ``""`` (Ray's default: ``RAY_ADDRESS``, else a cluster
    started on this machine with ``ray start``, else a new local one), ``"auto"``
    (an existing cluster, error if none), ``"local"`` (always a new local one),
    ``"HOST:PORT"`` (a head node) or ``"ray://HOST:10001"`` (Ray Client). If Ray is
    already initialised in this process it is used as it is and left running;
    otherwise the connection is closed at the end.
    """
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    kwargs = {"include_dashboard": False, "log_to_driver": True, **init}
    if address:
        kwargs["address"] = address
    try:
        ray.init(**kwargs)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = f"at {address!r}" if address else "(local)"
        why = " ".join(str(exc).split())[:300]
        hint = "start one with `ray start --head` or pass its address, e.g. --ray-address HOST:6379"
        cause = exc.__cause__
        if cause is not None and "auth" in type(cause).__name__.lower():
            hint = ("the cluster uses token authentication: set RAY_AUTH_MODE=token and make its token "
                    "readable (~/.ray/auth_token or RAY_AUTH_TOKEN_PATH)")
        raise BlemoreError(f"cannot connect to a Ray cluster {where}: {why}; {hint}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def task_error(exc: BaseException) -> BaseException:
    """The user error inside a Ray task error, if there is one."""
    cause = getattr(exc, "cause", None)
    seen = 0
    while cause is not None and seen < 5:
        if isinstance(cause, BlemoreError):
            return BlemoreError(str(cause))
        cause = getattr(cause, "cause", None) or cause.__cause__
        seen += 1
    return exc


def _slot(device: str) -> dict[str, float]:
    """Resources of one worker: one GPU for a CUDA device, else one CPU."""
    return {"num_cpus": 1, "num_gpus": 1} if device.startswith("cuda") else {"num_cpus": 1}


def _free_slots(ray: Any, device: str) -> int:
    res = ray.cluster_resources()
    key = "GPU" if device.startswith("cuda") else "CPU"
    return max(1, int(res.get(key, 1)))


# --------------------------------------------------------------------------- extraction: worker side

_ENCODER_CACHE: dict[Any, list[Encoder]] = {}


def _encoders_in_worker(encoders: Sequence[str | Encoder], device: str, batch_size: int | None,
                        face_crop: bool = False, precision: Precision = "auto") -> list[Encoder]:
    """Built encoders, kept per worker process (a model is loaded once per worker, not per task)."""
    options: dict[str, Any] = {"device": device, "batch_size": batch_size, "precision": precision}
    if face_crop:
        options["face_crop"] = True
    if all(isinstance(e, str) for e in encoders):
        key = (tuple(encoders), device, batch_size, face_crop, precision)
        if key not in _ENCODER_CACHE:
            _ENCODER_CACHE[key] = build_encoders(list(encoders), **options)
        return _ENCODER_CACHE[key]
    return build_encoders(list(encoders), **options)


def _describe(encoders: Sequence[str | Encoder], device: str, batch_size: int | None,
              face_crop: bool = False, precision: Precision = "auto") -> list[tuple[str, dict, int]]:
    """(name, settings.json content, batch size) of each encoder, as a worker builds them."""
    built = _encoders_in_worker(encoders, device, batch_size, face_crop, precision)
    return [(e.name, encoder_settings(e), int(e.batch_size)) for e in built]


def _done_row(encoder: str, clip: str, values: dict[str, Any]) -> dict[str, Any]:
    return dict(encoder=encoder, clip=clip, status="done", error="", **values)


class _ShardStore:
    """What a worker has instead of a FeatureStore: writes ``.npy`` files atomically, collects index rows.

    A :class:`~blemore.extraction.engine.Store`; the index itself is written by the driver only.
    """

    def __init__(self, folder: Path, encoder: str):
        self.folder = folder
        self.encoder = encoder
        self.rows: list[dict[str, Any]] = []

    def write(self, clip: str, features: np.ndarray, *, fps: float | None = None,
              face_found: float | None = None, dim: int | None = None) -> Path:
        arr = check_features(clip, features, dim)
        path = self.folder / f"{clip}.npy"
        save_npy(path, arr)
        values = dict(frames=int(arr.shape[0]), dim=int(arr.shape[1]), fps=fps, face_found=face_found)
        self.rows.append(_done_row(self.encoder, clip, values))
        return path

    def fail(self, clip: str, error: str) -> None:
        reason = " ".join(str(error).split())
        self.rows.append(dict(encoder=self.encoder, clip=clip, status="failed", error=reason))


def _take_finished(chunk: Sequence[Job], by_name: dict[str, Encoder],
                   root: Path) -> tuple[list[dict[str, Any]], list[Job]]:
    """Rows of the ``.npy`` files already in place (an earlier attempt of this task finished them
    before its worker died, or a killed run did not index them), and the jobs left to do."""
    rows: list[dict[str, Any]] = []
    left: list[Job] = []
    for job in chunk:
        todo = []
        for name in job.encoders:
            target = root / name / f"{job.clip}.npy"
            values = finished_row(by_name[name], target) if target.exists() else None
            if values is None:
                todo.append(name)
            else:
                rows.append(_done_row(name, job.clip, values))
        if todo:
            left.append(job._replace(encoders=tuple(todo)))
    return rows, left


def _decode_all(jobs: Sequence[Job], by_name: dict[str, Encoder], device: str) -> list[Decoded]:
    """The jobs' clips decoded; a GPU worker decodes its batch in threads."""
    def one(job: Job) -> Decoded:
        return Decoded(job.clip, job.encoders, decode(job.path, [by_name[n] for n in job.encoders]))

    if device.startswith("cuda") and len(jobs) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(4, len(jobs))) as pool:
            return list(pool.map(one, jobs))
    return [one(job) for job in jobs]


def _extract_chunk(encoders: Sequence[str | Encoder], chunk: list[Job], out: str, device: str,
                   batch_size: int | None, face_crop: bool = False,
                   precision: Precision = "auto") -> dict[str, Any]:
    """One Ray task: decode and encode a few clips, write their ``.npy``; returns the index rows."""
    started = time.perf_counter()
    built = _encoders_in_worker(encoders, device, batch_size, face_crop, precision)
    by_name = {e.name: e for e in built}
    root = Path(out)
    rows, left = _take_finished(chunk, by_name, root)
    stores = {e.name: _ShardStore(root / e.name, e.name) for e in built}
    summary = ExtractionSummary(out=root, encoders=list(by_name))
    if left:
        run_batch(_decode_all(left, by_name, device), built, Sink(stores, summary), summary)
    for store in stores.values():
        rows += store.rows
    return {
        "rows": rows,
        "media_seconds": summary.media_seconds,
        "encode_seconds": summary.encode_seconds,
        "seconds": time.perf_counter() - started,
        "pid": os.getpid(),
    }


# --------------------------------------------------------------------------- extraction: driver side


def chunk_clips(jobs: Sequence[Any], size: int) -> list[list[Any]]:
    """``jobs`` cut into consecutive chunks of at most ``size`` (>= 1).

    >>> chunk_clips([1, 2, 3, 4, 5], 2)
    [[1, 2], [3, 4], [5]]
    """
    size = max(1, int(size))
    return [list(jobs[i : i + size]) for i in range(0, len(jobs), size)]


class _Collector:
    """Takes the workers' results into the driver's stores (the driver alone writes ``index.csv``),
    the summary and the progress bar."""

    def __init__(self, stores: dict[str, FeatureStore], summary: ExtractionSummary, bar: Any):
        self.stores = stores
        self.summary = summary
        self.bar = bar

    def take(self, result: dict[str, Any], clips: int) -> None:
        summary = self.summary
        for row in result["rows"]:
            store = self.stores[row["encoder"]]
            if row["status"] == "done":
                store.record_done(row["clip"], frames=row["frames"], dim=row["dim"], fps=row.get("fps"),
                                  face_found=row.get("face_found"))
                summary.done += 1
            else:
                store.fail(row["clip"], row["error"])
                summary.failed += 1
                summary.failures.append(Failure(row["encoder"], row["clip"], row["error"]))
        summary.media_seconds += result["media_seconds"]
        for name, seconds in result["encode_seconds"].items():
            summary.encode_seconds[name] = summary.encode_seconds.get(name, 0.0) + seconds
        self.bar.update(clips)
        self.bar.set_postfix(failed=summary.failed, refresh=False)


def _failed_result(job: Job, exc: BaseException, attempts: int) -> dict[str, Any]:
    """The result of a one-clip task that kept failing: the clip fails for each of its encoders."""
    why = " ".join(str(task_error(exc)).split())[:300]
    reason = f"Ray task failed {attempts} time(s) on this clip: {why}"
    rows = [dict(encoder=n, clip=job.clip, status="failed", error=reason) for n in job.encoders]
    return {"rows": rows, "media_seconds": 0.0, "encode_seconds": {}}


def _run_chunks(ray: Any, submit: Any, chunks: list[list[Job]], *, window: int, max_retries: int,
                collect: _Collector) -> None:
    """Keep ``window`` tasks in flight until every chunk is done; a chunk whose task fails is split
    into one task per clip, so that only the clip at fault fails. Stopping early cancels the rest."""
    queue = list(reversed(chunks))  # pop() from the end keeps clip order
    in_flight: dict[Any, list[Job]] = {}
    try:
        while queue or in_flight:
            while queue and len(in_flight) < window:
                chunk = queue.pop()
                in_flight[submit(chunk)] = chunk
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in ready:
                chunk = in_flight.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    if len(chunk) > 1:  # find the clip at fault: each clip on its own
                        queue.extend(reversed([[one] for one in chunk]))
                        continue
                    result = _failed_result(chunk[0], exc, max_retries + 1)
                collect.take(result, len(chunk))
    except BaseException:
        for ref in in_flight:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        raise


def _describe_on(ray: Any, encoders: Sequence[str | Encoder], *, slot: dict[str, float], max_retries: int,
                 options: tuple) -> list[tuple[str, dict, int]]:
    """Name, settings and batch size of each encoder, as a worker builds them (its packages, its device)."""
    describe = ray.remote(max_retries=max_retries)(_describe).options(**slot)
    try:
        return ray.get(describe.remote(list(encoders), *options))
    except ray.exceptions.RayError as exc:
        raise task_error(exc) from None


def extract_on_ray(
    clips: str | Path,
    *,
    encoders: Sequence[str | Encoder],
    out: str | Path,
    metadata: str | Path | None = None,
    device: str = "cpu",
    batch_size: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
    limit: int | None = None,
    face_crop: bool = False,
    precision: Precision = "auto",
    address: str | None = None,
    chunk_size: int | None = None,
    max_retries: int = 3,
    init: dict[str, Any] | None = None,
) -> ExtractionSummary:
    """:func:`blemore.extraction.local.extract` with the clips spread over Ray workers.

    Parameters
    ----------
    clips, encoders, out, metadata, device, batch_size, progress, overwrite, limit, face_crop, precision :
        as for :func:`blemore.extraction.local.extract` (``encoders`` may also be built
        :class:`~blemore.encoders.Encoder` objects; they are pickled to the workers).
    address : the Ray cluster (see :func:`ray_session`); None: Ray's default.
    chunk_size : clips per task (default: the largest encoder batch size); a worker
        that dies loses at most this many clips' work in flight.
    max_retries : reruns of a task whose worker died, before its clips are retried one by one.
    init : extra ``ray.init`` arguments when a local cluster is started (``num_cpus``, ...).

    Returns
    -------
    ExtractionSummary, as the local runner.

    Examples
    --------
    >>> s = extract_on_ray("clips/", encoders=["opensmile", "facemesh"], out="features/")  # doctest: +SKIP
    >>> print(s.format())                                                                  # doctest: +SKIP
    """
    start = time.perf_counter()
    out = check_out(Path(out).resolve())
    check_specs(encoders, precision=precision, packages=False)  # the workers check their packages
    found = find_clips(clips, metadata=metadata, limit=limit, resolve=True)
    options = (device, batch_size, face_crop, precision)
    with ray_session(address, **(init or {})) as ray:
        slot = _slot(device)
        if device.startswith("cuda") and not ray.cluster_resources().get("GPU"):
            raise BlemoreError(f"--device {device} with --ray: the Ray cluster has no GPU; use --device cpu")
        described = _describe_on(ray, encoders, slot=slot, max_retries=max_retries, options=options)
        stores = open_stores(out, {n: s for n, s, _ in described}, overwrite=overwrite)
        summary = ExtractionSummary(out=out, encoders=list(stores))
        # files a killed run did not index go to the workers, which know their rows
        work = plan(found, {n: st.done() - st.adopted for n, st in stores.items()})
        summary.skipped, summary.clips = work.skipped, len(work.jobs)
        task = ray.remote(max_retries=max_retries, retry_exceptions=False)(_extract_chunk).options(**slot)
        encoders_ref, out_text = ray.put(list(encoders)), str(out)

        from tqdm.auto import tqdm

        bar = tqdm(total=len(work.jobs), unit="clip", desc="extract (ray)", file=sys.stderr,
                   disable=not progress, dynamic_ncols=True, smoothing=0.1)
        try:
            _run_chunks(ray, lambda chunk: task.remote(encoders_ref, chunk, out_text, *options),
                        chunk_clips(work.jobs, chunk_size or max(b for _, _, b in described)),
                        window=4 * _free_slots(ray, device), max_retries=max_retries,
                        collect=_Collector(stores, summary, bar))
        except BaseException:
            close_stores(stores, failing=True)
            raise
        finally:
            bar.close()
        close_stores(stores)
        for store in stores.values():  # temporary files of workers that died while writing
            remove_temporaries(store.folder)
    summary.seconds = time.perf_counter() - start
    return summary


def as_completed(ray: Any, refs: list, describe: Any) -> Iterator[tuple[int, Any]]:
    """``(index, result)`` of Ray tasks as they finish; the first failure is raised as one user error.

    A :class:`BlemoreError` raised inside a task comes out as it is; any other failure
    becomes ``BlemoreError("<describe(index)> failed on the Ray cluster: ...")``. If the
    caller stops early (an error, Ctrl-C), the tasks still pending are cancelled.
    """
    index = {ref: i for i, ref in enumerate(refs)}
    pending = list(refs)
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    err = task_error(exc)
                    if isinstance(err, BlemoreError):
                        raise err from None
                    raise BlemoreError(f"{describe(index[ref])} failed on the Ray cluster: "
                                       f"{' '.join(str(exc).split())[:500]}") from None
                yield index[ref], result
    except BaseException:
        for ref in pending:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        raise
