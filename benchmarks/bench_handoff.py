"""Benchmark the hand-off of decoded clips from decoding processes to the main process.

With ``pool="process"`` (the default with ``--device cuda``) every decoded clip crosses a
process boundary. This measures how many clips per second the main process can receive,
pickled through the pool's pipe (the old way) and through shared memory
(:mod:`blemore.media.handoff`), for the arrays a 5 s clip yields:

- ``frames``: 150 frames of 224 x 398 RGB (30 fps, shorter side 224: a wide frame);
- ``square``: 150 frames of 224 x 224 (the centre square the video models see);
- ``audio``: 80,000 float32 samples (16 kHz).

Workers make the arrays (no decoding), so the figures are the hand-off alone.

    python benchmarks/bench_handoff.py --clips 48 --workers 1
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

SHAPES = {"frames": ((150, 224, 398, 3), np.uint8), "square": ((150, 224, 224, 3), np.uint8),
          "audio": ((80_000,), np.float32)}


def make(kind: str, i: int, prefix: str | None):
    shape, dtype = SHAPES[kind]
    array = np.full(shape, i % 251, dtype=dtype)
    if prefix is None:
        return array
    from blemore.media.handoff import share

    return share(array, prefix=prefix)


def run(kind: str, clips: int, workers: int, shared: bool) -> tuple[float, float]:
    """(clips/s received, main-process CPU ms per clip)."""
    from blemore.media.handoff import receive, run_prefix, sweep

    prefix = run_prefix() if shared else None
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        pool.submit(make, kind, 0, None).result()  # workers started and warm
        wall, cpu = time.perf_counter(), time.process_time()
        futures = [pool.submit(make, kind, i, prefix) for i in range(clips)]
        total = 0
        for fut in futures:
            array = receive(fut.result())
            total += int(array.reshape(-1)[-1])  # touch the data, as an encoder would
            del array
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if prefix:
        sweep(prefix)
    return clips / wall, 1000 * cpu / clips


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", type=int, default=48)
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args(argv)
    from blemore.media.handoff import shm_dir

    print(f"shared-memory folder: {shm_dir()}; {args.workers} worker process(es), {args.clips} clips each")
    print(f"{'arrays':<8} {'MB/clip':>8} {'pickled clips/s':>16} {'main ms/clip':>13} {'shared clips/s':>15} "
          f"{'main ms/clip':>13}")
    for kind, (shape, dtype) in SHAPES.items():
        mb = np.prod(shape) * np.dtype(dtype).itemsize / 1e6
        n = args.clips * (20 if kind == "audio" else 1)
        pickled = run(kind, n, args.workers, shared=False)
        shared = run(kind, n, args.workers, shared=True)
        print(f"{kind:<8} {mb:>8.2f} {pickled[0]:>16.1f} {pickled[1]:>13.2f} {shared[0]:>15.1f} {shared[1]:>13.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
