"""What saving finished units costs a run: digest, save and load of one BLEMORE-sized unit.

    python benchmarks/bench_checkpoints.py                  # the paper's 200 epochs, nested selection
    python benchmarks/bench_checkpoints.py --epochs 20

A unit of ``blemore benchmark`` (a KL head on the fused 1,008-d set, MLP-512) is built in the
shape a real run makes (the real clip list's folds: 5 outer folds, the model on all 2,456
training clips evaluated on the 594 held-out clips, 20 inner members of nested selection; each
member's 6 outputs on its evaluation clips after every epoch, as float32; a kept model), with
random numbers instead of trained ones, so that only the storage is timed. It is saved to a
temporary folder and loaded back (checked equal); the figures are the median of ``--repeat``
rounds, beside the size on disk.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def make_unit(clips_csv: Path, *, epochs: int, dim: int, hidden: int, seed: int = 0):
    """A spec, its data and a trained-looking unit in the shape of the real dataset."""
    import pandas as pd

    from blemore.models.trainer import HeadParams, TrainConfig
    from blemore.protocol.methods import UnitKey
    from blemore.protocol.units import TrainedUnit, UnitData, UnitSpec, unit_plan

    df = pd.read_csv(clips_csv)
    train = df[df.partition == "train"]
    n_train, n_clips = len(train), len(df)
    rng = np.random.default_rng(seed)
    data = UnitData(X=rng.normal(size=(n_clips, dim)).astype(np.float32), row_clip=np.arange(n_clips),
                    n_train=n_train, n_clips=n_clips, truth=rng.integers(0, 36, size=n_train),
                    folds=train.fold.to_numpy(dtype=int))
    spec = UnitSpec(UnitKey("kl6", "face+voice", "mlp512"), TrainConfig(epochs=epochs, lr=1e-3, threads=1,
                                                                         device="cpu"), seed=0, nested=True)
    plan, seeds = unit_plan(spec, data)
    outputs = [rng.random((epochs, len(m.eval), 6), dtype=np.float32) for m in plan]
    head = HeadParams(mean=np.zeros(dim, np.float32), scale=np.ones(dim, np.float32),
                      w1=rng.normal(size=(dim, hidden)).astype(np.float32), b1=np.zeros(hidden, np.float32),
                      w2=rng.normal(size=(hidden, 6)).astype(np.float32), b2=np.zeros(6, np.float32))
    unit = TrainedUnit(spec.key, plan, seeds, outputs, rng.random((epochs, 6)), {"pooled:thresholds": (epochs, head)},
                       1.0e15)
    return spec, data, unit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=Path, default=ROOT.parent / "shared" / "data" / "blemore_clips.csv")
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--dim", type=int, default=1008)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    if not args.clips.exists():
        raise SystemExit(f"{args.clips}: the BLEMORE clip list is needed to shape the unit")
    from blemore.protocol.checkpoints import UnitStore, unit_digest

    spec, data, unit = make_unit(args.clips, epochs=args.epochs, dim=args.dim, hidden=args.hidden)
    times: dict[str, list[float]] = {"digest": [], "save": [], "load": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeat):
            store = UnitStore(Path(tmp) / f"units{r}")
            t = time.perf_counter()
            digest = unit_digest(spec, data)
            times["digest"].append(time.perf_counter() - t)
            t = time.perf_counter()
            if not store.save(spec, data, unit):
                raise SystemExit(f"{store.folder}: the unit could not be saved")
            times["save"].append(time.perf_counter() - t)
            size = store.path(digest).stat().st_size
            t = time.perf_counter()
            back = store.load(spec, data)
            times["load"].append(time.perf_counter() - t)
            if back is None or not all(np.array_equal(a, b) for a, b in zip(back.outputs, unit.outputs)):
                raise SystemExit("the unit did not load back equal")
            store.clear()
    members = len(unit.plan)
    print(f"one unit: {members} members, {args.epochs} epochs, {args.dim}-d, MLP-{args.hidden}; "
          f"{size / 1e6:.1f} MB on disk; median of {args.repeat}; {time.strftime('%Y-%m-%d')}")
    for name, ts in times.items():
        print(f"{name:<8} {statistics.median(ts):7.3f} s")


if __name__ == "__main__":
    main()
