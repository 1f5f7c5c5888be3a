"""Time ``blemore benchmark --methods ...`` against the earlier ``--compare`` code on the same work.

    python benchmarks/bench_methods.py --before /tmp/blemore-before            # the full, BLEMORE-shaped run
    python benchmarks/bench_methods.py --before /tmp/blemore-before --epochs 20   # the same work, fewer epochs

Features are generated in the shape of the real dataset (the clip list, folds and the 594
held-out clips of ``shared/data/blemore_clips.csv``): two sources ("face", "voice") of
``--dim`` dimensions each carrying the soft label through their own random projection, an
offset per actor and noise; the fused set ``face+voice`` is ``2 x --dim`` dimensions (1,008
by default). Every method that clip-level features allow (all but attention-fusion, which
needs frame sequences) runs with MLP-512 heads, nested selection and the paper's 200 epochs,
in three ways, one after the other in this process's machine:

- ``before``: the earlier code (a checkout given by ``--before``; ``git worktree add
  /tmp/blemore-before f98454f``), ``run_compare`` with the same methods (its ``--compare``);
- ``now``: :func:`blemore.protocol.run.run_benchmark` with the same methods;
- ``now, all``: ``--methods all`` (adds the ensemble), what a user runs.

Each is run in a fresh Python process with one training thread, so the figures are
comparable; wall and CPU seconds are printed. Without ``--before`` only the new runs are timed
(the comparison is skipped, and says so). ``--runs`` picks some of the three, so that the long
200-epoch runs can be timed one at a time, each alone on the machine (two at once, one per core,
went at about half speed each on the 2-core VM)::

    python benchmarks/bench_methods.py --before /tmp/blemore-before --runs before
    python benchmarks/bench_methods.py --runs now
    python benchmarks/bench_methods.py --runs all
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
#: The methods both the earlier code and the new pipeline run on clip-level features.
SAME_WORK = "structured,head36,salience-reg,actor-norm,late-fusion,actor-inclusive"


def make_features(out: Path, clips_csv: Path, *, dim: int, actors: int | None, seed: int = 0) -> dict:
    """BLEMORE-shaped metadata (train with folds, labelled test) and two ``.npz`` feature sources."""
    import pandas as pd

    sys.path.insert(0, str(ROOT / "src"))
    from blemore.data.metadata import metadata_frame, write_metadata
    from blemore.labels import LABEL_INDEX, SOFT_VECTORS, label_from_parts

    df = pd.read_csv(clips_csv)
    if actors:
        keep = set(sorted(df[df.partition == "train"].actor.unique())[:actors])
        keep |= set(sorted(df[df.partition == "test"].actor.unique())[: max(1, actors // 5)])
        df = df[df.actor.isin(keep)]

    def label(r) -> str:
        if isinstance(r.emotion_2, str) and r.emotion_2:
            return label_from_parts([(r.emotion_1, r.emotion_1_salience), (r.emotion_2, r.emotion_2_salience)]).name
        return r.emotion_1

    labels = [label(r) for r in df.itertuples()]
    rng = np.random.default_rng(seed)
    offsets = {a: rng.normal(scale=1.0, size=(2, dim)) for a in df.actor.unique()}
    soft = SOFT_VECTORS[[LABEL_INDEX[lab] for lab in labels]]
    sources = {}
    for s, name in enumerate(("face", "voice")):
        proj = rng.normal(size=(6, dim))
        X = soft @ proj * 0.6 + np.stack([offsets[a][s] for a in df.actor]) + rng.normal(size=(len(df), dim))
        np.savez(out / f"{name}.npz", X=X.astype(np.float32), filenames=np.asarray(df.filename.tolist(), dtype=str))
        sources[name] = out / f"{name}.npz"
    train, test = df.partition == "train", df.partition == "test"
    for part, sel, folds in (("train", train, df.fold[train].astype(int).tolist()), ("test", test, None)):
        names = df.filename[sel].tolist()
        write_metadata(metadata_frame(names, df.actor[sel].tolist(), folds or [None] * len(names),
                                      [lab for lab, k in zip(labels, sel) if k]), out / f"{part}_metadata.csv")
    return {"sources": {k: str(v) for k, v in sources.items()}, "train": str(out / "train_metadata.csv"),
            "test": str(out / "test_metadata.csv"), "n_train": int(train.sum()), "n_test": int(test.sum())}


_BEFORE = """
import json, sys, time
from pathlib import Path
from blemore.compare import CompareConfig, run_compare
a = json.loads(sys.argv[1])
cfg = CompareConfig(features={k: Path(v) for k, v in a["sources"].items()}, train_metadata=Path(a["train"]),
                    test_metadata=Path(a["test"]), sets=["face+voice"], models=["mlp512"], epochs=a["epochs"],
                    lr=1e-3, methods=a["methods"].split(","), out=Path(a["out"]), progress=False, threads=1)
w, c = time.perf_counter(), time.process_time()
run_compare(cfg)
print(json.dumps({"wall": time.perf_counter() - w, "cpu": time.process_time() - c}))
"""

_NOW = """
import json, sys, time
from pathlib import Path
from blemore.protocol.config import RunConfig
from blemore.protocol.run import run_benchmark
a = json.loads(sys.argv[1])
cfg = RunConfig(features={k: Path(v) for k, v in a["sources"].items()}, train_metadata=Path(a["train"]),
                test_metadata=Path(a["test"]), sets=["face+voice"], models=["mlp512"], epochs=a["epochs"], lr=1e-3,
                methods=a["methods"].split(","), out=Path(a["out"]), progress=False, threads=1)
w, c = time.perf_counter(), time.process_time()
run_benchmark(cfg)
print(json.dumps({"wall": time.perf_counter() - w, "cpu": time.process_time() - c}))
"""


def timed(code: str, src: Path, args: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(f"run failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, help="a checkout of the earlier blemore (with src/blemore/compare.py)")
    ap.add_argument("--clips", type=Path, default=ROOT.parent / "shared" / "data" / "blemore_clips.csv")
    ap.add_argument("--dim", type=int, default=504, help="dimensions per source (the fused set has twice as many)")
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--actors", type=int, default=None, help="only this many training actors (default: all 47)")
    ap.add_argument("--skip-all", action="store_true", help="do not time --methods all")
    ap.add_argument("--runs", default="before,now,all",
                    help="which runs to time, comma-separated from: before, now, all (default: all three)")
    args = ap.parse_args()
    runs = {r.strip() for r in args.runs.split(",") if r.strip()}
    if not runs or runs - {"before", "now", "all"}:
        raise SystemExit(f"--runs {args.runs!r}: give a comma-separated subset of before, now, all")
    if args.skip_all:
        runs.discard("all")
    if not args.clips.exists():
        raise SystemExit(f"{args.clips}: the BLEMORE clip list is needed to shape the data")
    with tempfile.TemporaryDirectory() as tmp:
        data = make_features(Path(tmp), args.clips, dim=args.dim, actors=args.actors)
        base = {**data, "epochs": args.epochs}
        print(f"{data['n_train']} training + {data['n_test']} test clips, face+voice {2 * args.dim}-d, MLP-512, "
              f"{args.epochs} epochs, nested selection, one thread; {time.strftime('%Y-%m-%d')}")
        rows = []
        has_before = args.before is not None and (args.before / "src" / "blemore" / "compare.py").exists()
        if "before" in runs and has_before:
            rows.append(("before: --compare " + SAME_WORK,
                         timed(_BEFORE, args.before / "src", {**base, "methods": SAME_WORK, "out": f"{tmp}/b"})))
        elif "before" in runs:
            print("before: skipped (give --before, a checkout of the earlier code, to time it)")
        if "now" in runs:
            rows.append(("now: --methods " + SAME_WORK,
                         timed(_NOW, ROOT / "src", {**base, "methods": SAME_WORK, "out": f"{tmp}/n"})))
        if "all" in runs:
            rows.append(("now: --methods all", timed(_NOW, ROOT / "src", {**base, "methods": "all", "out": f"{tmp}/a"})))
    for name, t in rows:
        print(f"{name:<80} {t['wall']:8.1f} s wall {t['cpu']:8.1f} s CPU")
    if len(rows) > 1 and rows[0][0].startswith("before") and rows[1][0].startswith("now: --methods " + SAME_WORK):
        print(f"now / before (same work): {rows[1][1]['wall'] / rows[0][1]['wall']:.2f} wall, "
              f"{rows[1][1]['cpu'] / rows[0][1]['cpu']:.2f} CPU")


if __name__ == "__main__":
    main()
