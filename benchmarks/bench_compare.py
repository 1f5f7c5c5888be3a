"""Time `blemore compare` on generated clip-level features of about the demo's size.

    python benchmarks/bench_compare.py                       # default methods, nested selection
    python benchmarks/bench_compare.py --methods all --dim 200 --no-nested

Prints wall and CPU seconds and the compare table. Features are random projections of the
soft labels plus per-actor offsets and noise (no media, no encoders), so the figures measure
the cost of the comparison itself; on a shared machine wall time is noisy.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--actors", type=int, default=12, help="training actors (each plays the 36 labels once)")
    ap.add_argument("--test-actors", type=int, default=2)
    ap.add_argument("--dim", type=int, default=175, help="dimensions per feature source")
    ap.add_argument("--sources", type=int, default=2)
    ap.add_argument("--methods", default="baseline,structured,actor-norm,late-fusion")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--no-nested", action="store_true")
    args = ap.parse_args()

    from _planted import planted

    from blemore.protocol.compare import CompareConfig, run_compare

    with tempfile.TemporaryDirectory() as tmp:
        d = planted(Path(tmp), n_actors=args.actors, n_test_actors=args.test_actors, dim=args.dim,
                    sources=args.sources, actor_sd=2.0)
        cfg = CompareConfig(
            features=d["sources"], train_metadata=d["train_metadata"], test_metadata=d["test_metadata"],
            epochs=args.epochs, lr=1e-3, methods=[args.methods], nested=not args.no_nested,
            out=Path(tmp) / "run", progress=False,
        )
        wall, cpu = time.perf_counter(), time.process_time()
        run = run_compare(cfg)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print((run / "compare.md").read_text())
    print(f"clips: {args.actors * 36} train + {args.test_actors * 36} test, {args.sources} sources x {args.dim} dims, "
          f"methods {args.methods}, nested={not args.no_nested}: {wall:.1f} s wall, {cpu:.1f} s CPU")


if __name__ == "__main__":
    main()
