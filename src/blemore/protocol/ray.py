"""The protocol on a Ray cluster (the optional extra ``blemore[ray]``): ``blemore benchmark ... --ray``.

:func:`run_on_ray` is :func:`blemore.protocol.run.run_benchmark` with every training unit a
Ray task (one CPU slot, or ``config.threads``): the driver resolves the inputs, loads the
features, plans the units, and — when they are back — selects, deploys, predicts and writes
the one run folder exactly as the serial run does. Each unit carries its own seeds, so the
run folder's tables are the serial run's (``results.csv`` byte for byte with the same thread
count). Models that a selection needs retrained on all clips are trained on the driver.

Workers receive the features from the driver through Ray's object store, so only the
driver reads files. This module is imported only when ``--ray`` is given.

>>> run = run_on_ray(config, address="ray://head:10001")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any, Callable

from blemore.errors import BlemoreError
from blemore.extraction.ray import as_completed, ray_session

__all__ = ["run_on_ray"]


def _unit_task(train: Callable, spec: Any, data: Any, threads: int) -> Any:
    """One training unit on a Ray worker."""
    import torch

    torch.set_num_threads(threads)
    return train(spec, data, None)


def run_on_ray(config: Any, *, address: str | None = None, max_retries: int = 2,
               init: dict[str, Any] | None = None) -> Path:
    """:func:`~blemore.protocol.run.run_benchmark` with every training unit a Ray task (see the module docstring)."""
    from tqdm.auto import tqdm

    from blemore.protocol.run import run_benchmark

    threads = config.threads or 1
    with ray_session(address, **(init or {})) as ray:
        alive = [n for n in ray.nodes() if n.get("Alive")]
        biggest = max((n.get("Resources", {}).get("CPU", 0) for n in alive), default=0)
        if threads > biggest:
            raise BlemoreError(f"--threads {threads}: no node of the Ray cluster has that many CPUs "
                               f"(the largest has {biggest:g}); give at most --threads {int(biggest)}")

        def map_units(train: Callable, items: list) -> list:
            task = ray.remote(max_retries=max_retries, retry_exceptions=False)(_unit_task).options(num_cpus=threads)
            fn = ray.put(train)
            refs = [task.remote(fn, spec, ray.put(data), threads) for spec, data in items]
            results: list[Any] = [None] * len(items)
            bar = tqdm(total=len(items), desc="training units (ray)", unit="unit", file=sys.stderr,
                       disable=not config.progress)
            try:
                describe = lambda i: f"training unit {items[i][0].key.label}"  # noqa: E731
                for i, result in as_completed(ray, refs, describe):
                    results[i] = result
                    bar.update(1)
            finally:
                bar.close()
            return results

        return run_benchmark(dataclasses.replace(config), map_units=map_units)
