"""Time ``blemore tune``'s threshold search on 600 x 6 probabilities.

Prints the median time of :func:`blemore.decoding.search_thresholds` (the 20 x 20 alpha/beta
grid) over repeats, and the time of a plain per-clip implementation of the same search (nested
Python loops, decoding each clip into ``{emotion: salience}`` dictionaries as the reference
baseline does), and checks that both pick the same thresholds.

    .venv/bin/python benchmarks/bench_tune.py [--clips 600] [--repeats 50] [--plain-repeats 1]

Target: < 50 ms for 600 clips. Timings are wall-clock and noisy on a shared machine.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from blemore.decoding import GRID, search_thresholds
from blemore.labels import EMOTIONS, N_LABELS, VALID_LABELS


def plain_decode(p: np.ndarray, alpha: float, beta: float) -> dict[str, int]:
    order = np.argsort(-p, kind="stable")
    vec = np.zeros(6)
    vec[order[:2]] = p[order[:2]]
    top = int(np.argmax(vec))
    if vec[top] < alpha:
        return {EMOTIONS[top]: 100}
    vec[vec < alpha] = 0.0
    nz = [k for k in range(6) if vec[k] > 0]
    if len(nz) == 1:
        return {EMOTIONS[nz[0]]: 100}
    if 5 in nz:
        return {EMOTIONS[nz[0]]: 100} if vec[nz[0]] >= vec[5] else {"neu": 100}
    i, j = nz
    if abs(vec[i] - vec[j]) <= beta:
        return {EMOTIONS[i]: 50, EMOTIONS[j]: 50}
    return {EMOTIONS[i]: 70, EMOTIONS[j]: 30} if vec[i] > vec[j] else {EMOTIONS[i]: 30, EMOTIONS[j]: 70}


def plain_search(probs: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    true_maps = [VALID_LABELS[t].salience_map for t in truth]
    results = []
    for a in GRID:
        for b in GRID:
            n_pres = n_sal = n_blend = 0
            for row, true in zip(probs, true_maps):
                pred = plain_decode(row, a, b)
                n_pres += set(pred) == set(true)
                if len(true) == 2:
                    n_blend += 1
                    n_sal += len(pred) == 2 and pred == true
            pres, sal = n_pres / len(true_maps), (n_sal / n_blend if n_blend else 0.0)
            results.append((0.5 * pres + 0.5 * sal, float(a), float(b)))
    best = sorted(results, key=lambda r: r[0], reverse=True)[0]
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--plain-repeats", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    truth = rng.integers(0, N_LABELS, args.clips)
    soft = np.stack([VALID_LABELS[t].vector for t in truth])
    probs = (0.5 * soft + 0.5 * rng.dirichlet(np.full(6, 0.5), args.clips)).astype(np.float32)

    search_thresholds(probs, truth)  # warm-up
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        result = search_thresholds(probs, truth)
        times.append(time.perf_counter() - t0)
    fast = statistics.median(times)

    plain_times = []
    for _ in range(args.plain_repeats):
        t0 = time.perf_counter()
        best = plain_search(probs.astype(np.float64), truth)
        plain_times.append(time.perf_counter() - t0)
    plain = statistics.median(plain_times)

    # The command end to end, in process: read a 600-row CSV, search, print JSON.
    import tempfile
    from pathlib import Path

    from typer.testing import CliRunner

    from blemore.cli import app
    from blemore.labels import LABEL_NAMES

    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "probs.csv"
        lines = ["filename," + ",".join(EMOTIONS) + ",label"]
        lines += [
            f"test_{k:04d}," + ",".join(repr(float(v)) for v in row) + f",{LABEL_NAMES[t]}"
            for k, (row, t) in enumerate(zip(probs, truth))
        ]
        csv_path.write_text("\n".join(lines) + "\n")
        runner = CliRunner()
        cli_times = []
        for _ in range(max(3, args.repeats // 10)):
            t0 = time.perf_counter()
            res = runner.invoke(app, ["tune", str(csv_path), "--json"])
            cli_times.append(time.perf_counter() - t0)
            assert res.exit_code == 0, res.output
    cli = statistics.median(cli_times)

    same = (best[1], best[2]) == (result.alpha, result.beta) and best[0] == result.score
    print(f"search_thresholds: {args.clips} clips x 6, {GRID.size}x{GRID.size} grid")
    print(f"  vectorised  median {fast * 1e3:8.2f} ms over {args.repeats} repeats (min {min(times) * 1e3:.2f} ms)")
    print(f"  plain loops median {plain * 1e3:8.2f} ms over {args.plain_repeats} repeat(s)")
    print(f"  `blemore tune --json` in process (CSV read + search + print): median {cli * 1e3:.2f} ms")
    print(f"  speed-up    {plain / fast:8.0f}x; same alpha/beta/score: {same}")
    print(f"  target < 50 ms: {'met' if fast < 0.05 else 'NOT met'}")
    if not same:
        raise SystemExit("the vectorised and plain searches disagree")


if __name__ == "__main__":
    main()
