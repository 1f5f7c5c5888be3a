"""The benchmark and the methods comparison on a Ray cluster (the optional extra ``blemore[ray]``).

- :func:`benchmark_on_ray` (``blemore benchmark ... --ray``): each feature set x classifier
  is one Ray task running the public :func:`blemore.protocol.benchmark.run_benchmark` on that
  one pair; the driver merges the run folders into one with the same files (``results.csv``
  byte-identical to a serial run with the same seed and thread count).
- :func:`compare_on_ray`: every training unit of the comparison a Ray task.

Workers read the features under the same paths as the driver, so on a multi-node cluster
these paths must be on shared storage.

>>> run = benchmark_on_ray(config, address="ray://head:10001")  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from blemore.errors import BlemoreError
from blemore.extraction.ray import as_completed, ray_session

__all__ = ["benchmark_on_ray", "compare_on_ray", "merge_runs"]

#: Methods of the trivial baselines: the same in every job's ``results.csv``, written once after merging.
_TRIVIAL_METHODS = ("majority-single", "majority-blend")


# --------------------------------------------------------------------------- benchmark


def _run_pair(config: Any, fs: str, model: str, threads: int | None,
              clip_features: bool = True) -> dict[str, Any]:
    """One Ray task: the protocol on one feature set x model; returns the run folder's files as bytes.

    ``clip_features=False`` leaves out ``clip_features/`` (the same for every model of a
    feature set: only one job per set sends it back).
    """
    from blemore.protocol.benchmark import run_benchmark

    with tempfile.TemporaryDirectory(prefix="blemore-ray-") as tmp:
        cfg = dataclasses.replace(config, sets=[fs], models=[model], out=Path(tmp) / "run", progress=False,
                                  threads=threads)
        started = time.perf_counter()
        run = run_benchmark(cfg)
        seconds = time.perf_counter() - started
        files = {
            p.relative_to(run).as_posix(): p.read_bytes() for p in sorted(run.rglob("*"))
            if p.is_file() and (clip_features or p.relative_to(run).parts[0] != "clip_features")
        }
    return {"feature_set": fs, "model": model, "files": files, "seconds": seconds, "pid": os.getpid(),
            "node": _node()}


def _node() -> str:
    import socket

    return socket.gethostname()


def _csv_lines(data: bytes) -> tuple[str, list[str]]:
    text = data.decode()
    lines = text.splitlines()
    return lines[0], lines[1:]


def merge_runs(parts: Sequence[dict[str, Any]], *, config: Any,
               extra: dict[str, Any] | None = None) -> dict[str, bytes]:
    """The files of one run folder from the run folders of single feature set x model jobs.

    ``parts`` are in the order of the serial loop (feature sets, then models); each has
    ``files`` (relative path -> bytes). ``results.csv`` and ``curves.csv`` are joined as
    text (the trivial baselines once, at the end, as the serial run writes them), so no
    number is parsed and written again; ``results.md`` is made from the joined table.
    """
    import io

    import pandas as pd

    from blemore.protocol.benchmark import markdown_table

    if not parts:
        raise BlemoreError("nothing to merge: no feature set x model jobs")
    merged: dict[str, bytes] = {}
    head, trivial, body = "", [], []
    curve_head, curves = "", []
    first_seen: set[str] = set()
    flops, seconds = 0.0, 0.0
    for i, part in enumerate(parts):
        files = part["files"]
        head, lines = _csv_lines(files["results.csv"])
        method_col = next(csv.reader([head])).index("method")
        for line in lines:
            if next(csv.reader([line]))[method_col] in _TRIVIAL_METHODS:
                if i == 0:
                    trivial.append(line)
            else:
                body.append(line)
        curve_head, lines = _csv_lines(files["curves.csv"])
        curves += lines
        for rel, data in files.items():
            if rel in ("results.csv", "curves.csv", "results.md", "config.json"):
                continue
            if rel.startswith("clip_features/"):  # the same for every model of a feature set
                if rel in first_seen:
                    continue
                first_seen.add(rel)
            merged[rel] = data
        job_cfg = json.loads(files["config.json"])
        flops += float(job_cfg.get("train_flops") or 0.0)
        seconds += float(job_cfg.get("seconds") or 0.0)
    results_text = "\n".join([head, *body, *trivial]) + "\n"
    merged["results.csv"] = results_text.encode()
    merged["curves.csv"] = ("\n".join([curve_head, *curves]) + "\n").encode()
    table = pd.read_csv(io.StringIO(results_text), dtype={"fold": str})
    merged["results.md"] = markdown_table(table).encode()
    resolved = json.loads(parts[0]["files"]["config.json"])
    resolved["config"] = config.to_json()
    resolved["sets"] = list(dict.fromkeys(p["feature_set"] for p in parts))
    resolved["models"] = list(dict.fromkeys(p["model"] for p in parts))
    resolved["command"] = config.command if config.command is not None else sys.argv
    resolved["train_flops"] = flops
    resolved["job_seconds"] = round(seconds, 3)
    resolved.update(extra or {})
    merged["config.json"] = json.dumps(resolved, indent=2, default=str).encode()
    return merged


def benchmark_on_ray(config: Any, *, address: str | None = None, max_retries: int = 2,
                     init: dict[str, Any] | None = None) -> Path:
    """:func:`blemore.protocol.run_benchmark` with every feature set x model a Ray task.

    Each task runs the public ``run_benchmark`` on one pair (one CPU slot; training
    threads ``config.threads`` or 1) and sends its run folder back; the driver merges
    them into ``config.out`` (written under a temporary name and renamed, as the
    serial run does). With the same seed and thread count the results are those of
    the serial run, ``results.csv`` byte for byte.

    Examples
    --------
    >>> run = benchmark_on_ray(BenchmarkConfig(features={"opensmile": Path("features/opensmile")},
    ...                        clips=Path("clips.txt")), address="auto")  # doctest: +SKIP
    """
    from blemore.features.loading import parse_set_names
    from blemore.models.heads import parse_model_list
    from blemore.protocol.benchmark import prepare_run_folder, publish_run_folder, resolve_inputs

    started = time.time()
    resolve_inputs(config)  # every input checked here, before anything is sent to the cluster
    sets = parse_set_names(config.sets, config.features)
    models = parse_model_list(config.models)
    config = dataclasses.replace(
        config, features={k: Path(v).resolve() for k, v in config.features.items()},
        train_metadata=None if config.train_metadata is None else Path(config.train_metadata).resolve(),
        clips=None if config.clips is None else Path(config.clips).resolve(),
        test_metadata=None if config.test_metadata is None else Path(config.test_metadata).resolve(),
    )
    default_out = Path("runs") / time.strftime("benchmark-%Y%m%d-%H%M%S")
    out = Path(config.out) if config.out is not None else default_out
    config = dataclasses.replace(config, out=out)
    pairs = [(fs, m) for fs in sets for m in models]
    threads = config.threads or 1

    from tqdm.auto import tqdm

    with ray_session(address, **(init or {})) as ray:
        alive = [n for n in ray.nodes() if n.get("Alive")]
        biggest = max((n.get("Resources", {}).get("CPU", 0) for n in alive), default=0)
        if threads > biggest:
            raise BlemoreError(f"--threads {threads}: no node of the Ray cluster has that many CPUs "
                               f"(the largest has {biggest:g}); give at most --threads {int(biggest)}")
        remote = ray.remote(max_retries=max_retries, retry_exceptions=False)
        task = remote(_run_pair).options(num_cpus=threads)
        cfg_ref = ray.put(config)
        refs = [task.remote(cfg_ref, fs, m, threads, m == models[0]) for fs, m in pairs]
        parts: list[dict | None] = [None] * len(pairs)
        bar = tqdm(total=len(pairs), desc="feature set x model (ray)", unit="job", file=sys.stderr,
                   disable=not config.progress)
        try:
            describe = lambda i: f"feature set {pairs[i][0]!r} x model {pairs[i][1]!r}"  # noqa: E731
            for i, part in as_completed(ray, refs, describe):
                parts[i] = part
                bar.update(1)
                bar.set_postfix_str(f"{part['feature_set']} / {part['model']}", refresh=False)
        finally:
            bar.close()
        nodes = sorted({p["node"] for p in parts if p})
    extra = {
        "seconds": round(time.time() - started, 3),
        "ray": {"address": address or "", "jobs": len(pairs), "nodes": nodes,
                "threads_per_job": threads, "workers": sorted({p["pid"] for p in parts if p})},
    }
    merged = merge_runs([p for p in parts if p is not None], config=config, extra=extra)
    tmp = prepare_run_folder(out)
    try:
        for rel, data in merged.items():
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        publish_run_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


# --------------------------------------------------------------------------- compare


def _run_unit(train_unit: Any, unit: tuple[str, str, str], threads: int) -> Any:
    """One training unit of :func:`blemore.protocol.compare.run_compare` on a Ray worker."""
    import torch

    torch.set_num_threads(threads)
    return train_unit(unit)


def compare_on_ray(config: Any, *, address: str | None = None, max_retries: int = 2,
                   init: dict[str, Any] | None = None) -> Path:
    """:func:`blemore.protocol.compare.run_compare` with every training unit (method kind x feature set x model) a Ray task.

    The driver reads the features, plans the units and, when they are back, selects, scores and
    writes the comparison exactly as the serial run does; each unit carries its own seeds, so
    ``compare.csv`` is the serial run's. One CPU slot per unit (``config.threads`` or 1).
    """
    from tqdm.auto import tqdm

    from blemore.protocol.compare import run_compare

    threads = config.threads or 1

    with ray_session(address, **(init or {})) as ray:
        def map_units(train_unit: Any, units: list) -> list:
            task = ray.remote(max_retries=max_retries, retry_exceptions=False)(_run_unit).options(num_cpus=threads)
            fn_ref = ray.put(train_unit)
            refs = [task.remote(fn_ref, unit, threads) for unit in units]
            results: list[Any] = [None] * len(units)
            bar = tqdm(total=len(units), desc="compare units (ray)", unit="unit", file=sys.stderr,
                       disable=not config.progress)
            try:
                for i, result in as_completed(ray, refs, lambda i: f"compare unit {' / '.join(units[i])}"):
                    results[i] = result
                    bar.update(1)
            finally:
                bar.close()
            return results

        return run_compare(config, map_units=map_units)
