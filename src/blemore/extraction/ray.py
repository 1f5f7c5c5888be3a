"""Extraction on a Ray cluster (the optional extra ``blemore[ray]``), and the Ray session helpers.

:func:`extract_on_ray` (``blemore extract ... --ray`` or ``--ray-address ADDRESS``): the
clips are cut into small chunks, each a Ray task holding one CPU slot (or one GPU with
``device="cuda"``). A task decodes and encodes its clips with the very code of
:func:`blemore.extraction.engine.extract` and writes each clip's ``.npy`` straight into the
store (temporary name + ``os.replace``, so a file is complete or absent); it returns the
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

from blemore.errors import BlemoreError

__all__ = ["require_ray", "ray_session", "as_completed", "extract_on_ray", "chunk_clips"]


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

_ENCODER_CACHE: dict[Any, list[Any]] = {}


def _encoders_in_worker(encoders: Sequence[Any], device: str, batch_size: int | None,
                        face_crop: bool = False, precision: str = "auto") -> list[Any]:
    """Built encoders, kept per worker process (a model is loaded once per worker, not per task)."""
    from blemore.extraction.engine import _build_encoders

    options: dict[str, Any] = {"device": device, "batch_size": batch_size, "precision": precision}
    if face_crop:
        options["face_crop"] = True
    if all(isinstance(e, str) for e in encoders):
        key = (tuple(encoders), device, batch_size, face_crop, precision)
        if key not in _ENCODER_CACHE:
            _ENCODER_CACHE[key] = _build_encoders(list(encoders), **options)
        return _ENCODER_CACHE[key]
    return _build_encoders(list(encoders), **options)


def _describe(encoders: Sequence[Any], device: str, batch_size: int | None,
              face_crop: bool = False, precision: str = "auto") -> list[tuple[str, dict, int]]:
    """(name, settings.json content, batch size) of each encoder, as a worker builds them."""
    from blemore.extraction.engine import encoder_settings

    built = _encoders_in_worker(encoders, device, batch_size, face_crop, precision)
    return [(e.name, encoder_settings(e), int(e.batch_size)) for e in built]


class _ShardStore:
    """What a worker has instead of a FeatureStore: writes ``.npy`` files atomically, collects index rows.

    Duck-types the two store methods :class:`blemore.extraction._Sink` calls (``write``, ``fail``);
    the index itself is written by the driver only.
    """

    def __init__(self, folder: Path, encoder: str):
        self.folder = folder
        self.encoder = encoder
        self.rows: list[dict[str, Any]] = []

    def write(self, clip: str, features: np.ndarray, *, fps: float | None = None,
              face_found: float | None = None, dim: int | None = None) -> Path:
        from blemore.features.store import check_features
        from blemore.io import save_npy

        arr = check_features(clip, features, dim)
        path = self.folder / f"{clip}.npy"
        save_npy(path, arr)
        self.rows.append(dict(encoder=self.encoder, clip=clip, status="done", frames=int(arr.shape[0]),
                              dim=int(arr.shape[1]), fps=fps, face_found=face_found, error=""))
        return path

    def fail(self, clip: str, error: str) -> None:
        reason = " ".join(str(error).split())
        self.rows.append(dict(encoder=self.encoder, clip=clip, status="failed", error=reason))


def _adopted_row(encoder: Any, path: Path, clip: str) -> dict[str, Any] | None:
    """The row of a ``.npy`` an earlier attempt of this task finished before its worker died."""
    try:
        arr = np.load(path, allow_pickle=False)
        frames, dim = arr.shape
    except Exception:  # unreadable: compute it again
        return None
    face = float(np.mean(~np.isnan(arr).any(axis=1))) if encoder.marks_faces and frames else None
    if encoder.modality == "audio":
        fps = encoder.output_fps(float(encoder.sample_rate))
    elif encoder.video is not None and encoder.video.fps is not None:
        fps = encoder.output_fps(float(encoder.video.fps))
    else:
        fps = None
    return dict(encoder=encoder.name, clip=clip, status="done", frames=int(frames), dim=int(dim), fps=fps,
                face_found=face, error="")


def _extract_chunk(encoders: Sequence[Any], chunk: list[tuple[str, str, list[str]]], out: str, device: str,
                   batch_size: int | None, face_crop: bool = False, precision: str = "auto") -> dict[str, Any]:
    """One Ray task: decode and encode a few clips, write their ``.npy``; returns the index rows."""
    from blemore.extraction.engine import _decode_for, _run_batch, _Sink
    from blemore.features.summary import ExtractionSummary

    started = time.perf_counter()
    built = _encoders_in_worker(encoders, device, batch_size, face_crop, precision)
    by_name = {e.name: e for e in built}
    root = Path(out)
    stores = {e.name: _ShardStore(root / e.name, e.name) for e in built}
    summary = ExtractionSummary(out=root, encoders=list(by_name))
    rows: list[dict[str, Any]] = []
    to_decode = []
    for clip, path, names in chunk:
        todo = []
        for name in names:
            enc = by_name[name]
            target = root / name / f"{clip}.npy"
            row = _adopted_row(enc, target, clip) if target.exists() else None
            if row is None:
                todo.append(enc)
            else:
                rows.append(row)
        if todo:
            to_decode.append((clip, path, todo))
    if device.startswith("cuda") and len(to_decode) > 1:  # a GPU worker: decode the batch in threads
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(4, len(to_decode))) as pool:
            decoded = list(pool.map(lambda job: _decode_for(job[1], job[2]), to_decode))
    else:
        decoded = [_decode_for(path, todo) for _, path, todo in to_decode]
    pending = [(clip, todo, d) for (clip, _, todo), d in zip(to_decode, decoded)]
    if pending:
        _run_batch(pending, built, _Sink(stores, summary), summary)
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


def _record(store: Any, row: dict[str, Any]) -> None:
    """Put a worker's row into the driver's store (the driver alone writes ``index.csv``)."""
    if row["status"] == "done":
        store.record_done(row["clip"], frames=row["frames"], dim=row["dim"], fps=row.get("fps"),
                          face_found=row.get("face_found"))
    else:
        store.fail(row["clip"], row["error"])


def _remove_leftovers(folder: Path) -> None:
    """Temporary files of workers that died while writing (their clip was retried)."""
    from blemore.io import remove_temporaries

    remove_temporaries(folder)


def extract_on_ray(
    clips: str | Path,
    *,
    encoders: Sequence[Any],
    out: str | Path,
    metadata: str | Path | None = None,
    device: str = "cpu",
    batch_size: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
    limit: int | None = None,
    face_crop: bool = False,
    precision: str = "auto",
    address: str | None = None,
    chunk_size: int | None = None,
    max_retries: int = 3,
    init: dict[str, Any] | None = None,
) -> Any:
    """:func:`blemore.extraction.extract` with the clips spread over Ray workers.

    Parameters
    ----------
    clips, encoders, out, metadata, device, batch_size, progress, overwrite, limit, face_crop, precision :
        as for :func:`blemore.extraction.extract` (``encoders`` may also be built
        :class:`~blemore.encoders.Encoder` objects; they are pickled to the workers).
    address : the Ray cluster (see :func:`ray_session`); None: Ray's default.
    chunk_size : clips per task (default: the largest encoder batch size); a worker
        that dies loses at most this many clips' work in flight.
    max_retries : reruns of a task whose worker died, before its clips are retried one by one.
    init : extra ``ray.init`` arguments when a local cluster is started (``num_cpus``, ...).

    Returns
    -------
    ExtractionSummary, as the serial function.

    Examples
    --------
    >>> s = extract_on_ray("clips/", encoders=["opensmile", "facemesh"], out="features/")  # doctest: +SKIP
    >>> print(s.format())                                                                  # doctest: +SKIP
    """
    from blemore.data.discover import discover_clips
    from blemore.encoders.registry import check_spec
    from blemore.features.summary import ExtractionSummary, Failure
    from blemore.features.store import FeatureStore

    start = time.perf_counter()
    out = Path(out).resolve()
    if not encoders:
        raise BlemoreError("no encoders given: pass e.g. --encoders opensmile,facemesh")
    for e in encoders:
        if isinstance(e, str):
            check_spec(e)
    from blemore.encoders.hf import check_precision

    check_precision(precision)
    if out.exists() and not out.is_dir():
        raise BlemoreError(f"{out}: exists and is not a folder (--out is the features root)")
    manifest = discover_clips(clips, metadata=metadata, probe=False)
    if limit is not None:
        manifest = manifest.iloc[: max(0, int(limit))]
    paths = [str(Path(p).resolve()) for p in manifest["path"]]

    with ray_session(address, **(init or {})) as ray:
        slot = _slot(device)
        if device.startswith("cuda") and not ray.cluster_resources().get("GPU"):
            raise BlemoreError(f"--device {device} with --ray: the Ray cluster has no GPU; use --device cpu")
        describe = ray.remote(max_retries=max_retries)(_describe).options(**slot)
        try:
            described = ray.get(describe.remote(list(encoders), device, batch_size, face_crop, precision))
        except ray.exceptions.RayError as exc:
            raise task_error(exc) from None
        names = [n for n, _, _ in described]
        stores = {n: FeatureStore(out / n, settings=s, overwrite=overwrite) for n, s, _ in described}
        summary = ExtractionSummary(out=out, encoders=names)
        done = {n: st.done() for n, st in stores.items()}
        jobs: list[tuple[str, str, list[str]]] = []
        for clip, path in zip(manifest["clip"], paths):
            todo = [n for n in names if clip not in done[n]]
            summary.skipped += len(names) - len(todo)
            if todo:
                jobs.append((clip, path, todo))
        summary.clips = len(jobs)
        size = chunk_size or max(b for _, _, b in described)
        task = ray.remote(max_retries=max_retries, retry_exceptions=False)(_extract_chunk).options(**slot)
        enc_ref = ray.put(list(encoders))
        out_s = str(out)

        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), unit="clip", desc="extract (ray)", file=sys.stderr, disable=not progress,
                   dynamic_ncols=True, smoothing=0.1)
        queue = chunk_clips(jobs, size)
        queue.reverse()  # pop() from the end keeps clip order
        in_flight: dict[Any, list] = {}
        window = 4 * _free_slots(ray, device)
        try:
            while queue or in_flight:
                while queue and len(in_flight) < window:
                    chunk = queue.pop()
                    in_flight[task.remote(enc_ref, chunk, out_s, device, batch_size, face_crop, precision)] = chunk
                ready, _ = ray.wait(list(in_flight), num_returns=1)
                for ref in ready:
                    chunk = in_flight.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        if len(chunk) > 1:  # find the clip at fault: each clip on its own
                            queue.extend(reversed([[one] for one in chunk]))
                            continue
                        clip, _, todo = chunk[0]
                        reason = f"Ray task failed {max_retries + 1} time(s) on this clip: " + " ".join(
                            str(task_error(exc)).split()
                        )[:300]
                        rows = [dict(encoder=n, clip=clip, status="failed", error=reason) for n in todo]
                        result = {"rows": rows, "media_seconds": 0.0, "encode_seconds": {}}
                    for row in result["rows"]:
                        _record(stores[row["encoder"]], row)
                        if row["status"] == "done":
                            summary.done += 1
                        else:
                            summary.failed += 1
                            summary.failures.append(Failure(row["encoder"], row["clip"], row["error"]))
                    summary.media_seconds += result["media_seconds"]
                    for n, s in result["encode_seconds"].items():
                        summary.encode_seconds[n] = summary.encode_seconds.get(n, 0.0) + s
                    bar.update(len(chunk))
                    bar.set_postfix(failed=summary.failed, refresh=False)
        except BaseException:
            for ref in in_flight:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            raise
        finally:
            bar.close()
            for n, store in stores.items():
                store.close()
                if not in_flight:
                    _remove_leftovers(store.folder)
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
