"""Where the reference decoder's answer depends on numpy and the CPU: ties and float32 comparisons.

The official post-processing keeps the two largest entries of each row with numpy's default
``np.argsort(-p, axis=1)`` and compares a float32 model output with float64 thresholds. This
script measures, for the numpy it runs under and for each CPU feature level numpy may dispatch
to (``NPY_DISABLE_CPU_FEATURES`` emulates a CPU without AVX-512, or without AVX2):

1. **ties**: for rows whose top entries are exactly equal, which two columns argsort puts
   first - the reference keeps those two, so a tie between the second and third largest
   decides what it can predict (blemore takes the lower column first: a stable sort);
2. **float32**: whether ``vec < alpha`` with a float32 ``vec`` and a numpy float64 ``alpha``
   compares in float32 (numpy 1.x value-based casting) or in float64 (numpy 2, NEP 50), and how
   many decisions that changes on random float32 softmax outputs over the baseline's grid.

    python benchmarks/check_ties.py                      # this interpreter, three CPU levels
    python benchmarks/check_ties.py --python /tmp/np2/bin/python   # and another numpy

Prints one block per (interpreter, CPU level). Needs numpy only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

#: CPU levels to emulate: the names cover numpy 1.x and 2.x (numpy ignores names it does not know).
LEVELS = {
    "as found": "",
    "no AVX-512": "X86_V4 AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL AVX512_SPR",
    "no AVX-512, no AVX2": "X86_V4 X86_V3 AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL AVX512_SPR "
    "AVX2 FMA3 F16C AVX",
}

#: Rows with exactly equal entries at the top (columns ang, disg, fea, hap, sad, neu). The reference keeps the
#: two columns that argsort puts first; their order does not change its decision, the set does.
TIE_ROWS = {
    "sad = neu, first and second": [0, 0, 0, 0, 0.5, 0.5],
    "fea = hap, first and second": [0, 0, 0.4, 0.4, 0.2, 0],
    "sad = neu, second and third": [0.5, 0, 0, 0, 0.25, 0.25],
    "disg = fea, second and third": [0.5, 0.25, 0.25, 0, 0, 0],
    "hap = sad, second and third": [0, 0, 0.4, 0.2, 0.2, 0.2],
    "fea = hap = neu, second to fourth": [0.1, 0, 0.2, 0.2, 0.3, 0.2],
    "three equal": [0.3, 0.3, 0.3, 0.05, 0.05, 0.0],
    "all equal": [1 / 6] * 6,
}


def _kept(order) -> tuple[int, ...]:
    return tuple(sorted(int(v) for v in order[:2]))


def _ties(np) -> dict:
    out = {}
    for name, row in TIE_ROWS.items():
        for dtype in (np.float32, np.float64):
            p = np.tile(np.asarray(row, dtype=dtype), (1000, 1))  # as the reference: one call on the matrix
            order = np.argsort(-p, axis=1)
            stable = np.argsort(-p, axis=1, kind="stable")
            out[f"{name} ({dtype.__name__})"] = {
                "order": [int(v) for v in order[0, :2]],
                "kept": list(_kept(order[0])),
                "kept like lower-column-first": _kept(order[0]) == _kept(stable[0]),
            }
    # rows with many ties: entries from a few values, normalised (equal entries stay exactly equal)
    rng = np.random.default_rng(0)
    rows = rng.choice([0.0, 1.0, 2.0, 3.0], size=(100_000, 6)).astype(np.float32) + np.float32(0.0)
    rows[rows.sum(axis=1) == 0, 0] = 1.0
    rows = rows / rows.sum(axis=1, keepdims=True)
    order = np.sort(np.argsort(-rows, axis=1)[:, :2], axis=1)
    stable = np.sort(np.argsort(-rows, axis=1, kind="stable")[:, :2], axis=1)
    out["random tied rows keeping other columns (of 100,000)"] = int((order != stable).any(axis=1).sum())
    return out


def measure() -> dict:
    """The measurements under this process's numpy and CPU features."""
    import numpy as np

    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features  # numpy >= 2
    except ImportError:  # numpy 1.x
        from numpy.core._multiarray_umath import __cpu_features__ as features
    out: dict = {"numpy": np.__version__,
                 "avx2": bool(features.get("X86_V3", features.get("AVX2"))),  # numpy 2 dispatches by group
                 "avx512": bool(features.get("X86_V4", features.get("AVX512F") and features.get("AVX512_SKX")))}
    out["ties"] = _ties(np)
    out["float32"] = _float32(np)
    return out


def _float32(np) -> dict:
    """How the reference's comparisons treat float32 outputs, and how often that changes a decision."""
    grid = np.linspace(0.05, 0.95, 20)
    # presence: the reference drops entries with `vec[vec < alpha] = 0` (a float32 array, a numpy float64 alpha)
    at_grid = np.float32(grid)  # an output exactly at the float32 nearest to each alpha
    kept_by_reference = np.array([not (np.array([v]) < a)[0] for v, a in zip(at_grid, grid)])
    kept_in_float64 = at_grid.astype(np.float64) >= grid
    # salience: the reference tests `abs(p1 - p2) <= beta` on float32 scalars, a numpy float64 beta
    rng = np.random.default_rng(0)
    near, n_pairs = 0, 0
    for b in grid:
        p2 = rng.uniform(0, 1 - b, 2000).astype(np.float32)
        p1 = (p2.astype(np.float64) + b).astype(np.float32)  # a pair whose difference is beta up to rounding
        reference = np.array([abs(x - y) <= b for x, y in zip(p1, p2)])
        exact = np.abs(p1.astype(np.float64) - p2.astype(np.float64)) <= b
        near += int((reference != exact).sum())
        n_pairs += len(p1)
    # random model outputs: float32 softmax rows
    logits = rng.normal(size=(200_000, 6)) * 2
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)
    random_changed = sum(int(((probs < a) != (probs.astype(np.float64) < a)).sum()) for a in grid)
    return {
        "float32 array < float64 alpha compares in": "float64" if (kept_by_reference == kept_in_float64).all()
        else "float32",
        "alphas where an output equal to float32(alpha) is kept by the reference, dropped in float64 (of 20)":
            int((kept_by_reference & ~kept_in_float64).sum()),
        f"pairs at |p1 - p2| = beta (up to rounding) decided differently (of {n_pairs})": near,
        "presence decisions changed on 200,000 random float32 softmax rows x 20 alphas": random_changed,
    }


def report(python: str) -> None:
    for level, disabled in LEVELS.items():
        env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": disabled}
        proc = subprocess.run([python, __file__, "--measure"], capture_output=True, text=True, env=env, timeout=600)
        if proc.returncode != 0:
            print(f"{python} ({level}): failed: {proc.stderr.strip()[-300:]}")
            continue
        m = json.loads(proc.stdout)
        print(f"\n== numpy {m['numpy']} ({python}), CPU {level}: AVX2 {'on' if m['avx2'] else 'off'}, "
              f"AVX-512 {'on' if m['avx512'] else 'off'}")
        for name, t in m["ties"].items():
            if isinstance(t, dict):
                flag = "as lower-column-first" if t["kept like lower-column-first"] else "DIFFERENT COLUMNS KEPT"
                print(f"  tie {name:<42} argsort order {t['order']}, keeps {t['kept']}: {flag}")
            else:
                print(f"  {name}: {t}")
        for key, value in m["float32"].items():
            print(f"  {key}: {value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", action="append", default=[], help="Another interpreter to measure (repeatable).")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure()))
        return
    for python in [sys.executable, *args.python]:
        report(python)


if __name__ == "__main__":
    main()
