"""How fast is the batched multi-fold trainer, against the machine's own matmul rate?

Run:  .venv/bin/python benchmarks/bench_train.py [--dims 672,7168] [--epochs 200] [--threads 1]

For each feature size it trains MLP-512 on random features shaped like the real
training partition (2,456 clips; validation folds of 522, 486, 468, 472 and 508
clips) with the paper's settings (Adam, batch 32), validating every epoch with
the alpha/beta search on every fold and on the pooled folds — the work of one
feature set x classifier in ``blemore benchmark`` (``--with-final`` adds the
model on all training clips that the protocol trains alongside).

It measures, in the same run (each size in its own process, for peak memory):

- the machine's large float32 matmul rate (2048 x 2048 sgemm, same thread count);
- the FLOPs the trainer performed (forward + the gradients it needs: the input's
  gradient is never computed) and the resulting floor = FLOPs / rate;
- wall time, achieved GFLOP/s, wall / floor, peak resident memory;
- the same ratio in CPU seconds (``cpu/floor``: the run's CPU time over the FLOPs
  at the sgemm rate per CPU second), which stays meaningful when other programs
  share the machine and wall times are inflated.

Timings on a shared machine are noisy; the matmul rate is measured before and
after the run and the larger is used (the floor is then the optimistic one).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

FOLD_SIZES = (522, 486, 468, 472, 508)


def sgemm_rate(threads: int, n: int = 2048, repeat: int = 4) -> tuple[float, float]:
    """(best GFLOP/s per wall second, GFLOP/s per CPU second) of an n x n float32 matmul."""
    import torch

    torch.set_num_threads(threads)
    a = torch.randn(n, n)
    b = torch.randn(n, n)
    a @ b
    best = 0.0
    c0 = time.process_time()
    for _ in range(repeat):
        t = time.perf_counter()
        a @ b
        best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
    cpu = time.process_time() - c0
    return best, 2 * n**3 * repeat / cpu / 1e9


def one(dim: int, epochs: int, threads: int, hidden: int, with_final: bool, device: str = "cpu",
        nested: bool = False) -> dict:
    import torch

    from blemore.decoding import search_thresholds
    from blemore.labels import SOFT_VECTORS
    from blemore.models.trainer import Member, TrainConfig, train_members

    rng = np.random.default_rng(0)
    n = sum(FOLD_SIZES)
    folds = np.repeat(np.arange(len(FOLD_SIZES)), FOLD_SIZES)
    labels = rng.integers(0, 36, n)
    X = rng.normal(size=(n, dim)).astype(np.float32)
    T = SOFT_VECTORS[labels].astype(np.float32)
    members = [
        Member(train=np.flatnonzero(folds != f), eval=np.flatnonzero(folds == f), seed=f)
        for f in range(len(FOLD_SIZES))
    ]
    K = len(FOLD_SIZES)
    if with_final:
        members.append(Member(train=np.arange(n), eval=np.arange(0), seed=99))
    if nested:  # the inner members of nested selection: train on the folds but k and j, evaluate j
        members += [Member(train=np.flatnonzero((folds != k) & (folds != j)), eval=np.flatnonzero(folds == j),
                           seed=100 + 10 * k + j) for k in range(K) for j in range(K) if j != k]
    truth = [labels[m.eval] for m in members[:K]]
    pooled_truth = np.concatenate(truth)
    search_seconds = [0.0]

    def on_epoch(epoch, probs, loss):
        t = time.perf_counter()
        for k in range(K):
            search_thresholds(probs[k], truth[k])
        search_thresholds(np.concatenate(probs[:K]), pooled_truth)
        search_seconds[0] += time.perf_counter() - t

    on_cpu = device == "cpu"
    rate_before, cpu_rate_before = sgemm_rate(threads) if on_cpu else (float("nan"), float("nan"))
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    c0 = time.process_time()
    res = train_members(
        X, T, members, hidden=hidden, config=TrainConfig(epochs=epochs, threads=threads, device=device),
        on_epoch=on_epoch,
    )
    if not on_cpu:
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    rate_after, cpu_rate_after = sgemm_rate(threads) if on_cpu else (float("nan"), float("nan"))
    rate = max(rate_before, rate_after)
    cpu_rate = max(cpu_rate_before, cpu_rate_after)
    return {
        "cpu_s": cpu,
        "sgemm_gflops_per_cpu_s": cpu_rate,
        "cpu_floor_s": res.flops / (cpu_rate * 1e9),
        "cpu_over_floor": cpu / (res.flops / (cpu_rate * 1e9)),
        "dim": dim,
        "hidden": hidden,
        "epochs": epochs,
        "members": len(members),
        "device": device,
        "threads": threads,
        "wall_s": wall,
        "search_s": search_seconds[0],
        "tflop": res.flops / 1e12,
        "achieved_gflops": res.flops / wall / 1e9,
        "sgemm_gflops": rate,
        "sgemm_gflops_before_after": [rate_before, rate_after],
        "floor_s": res.flops / (rate * 1e9),
        "wall_over_floor": wall / (res.flops / (rate * 1e9)),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "s_per_epoch_per_fold": wall / epochs / len(FOLD_SIZES),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dims", default="672,7168", help="feature sizes (96x7, 1024x7)")
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--with-final", action="store_true", help="also train the model on all clips")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (the trainer's one code path)")
    ap.add_argument("--nested", action="store_true", help="also the 20 inner members of nested selection")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.epochs, args.threads, args.hidden, args.with_final, args.device,
                             args.nested)))
        return
    print(
        f"MLP-{args.hidden}, {len(FOLD_SIZES)} folds x {args.epochs} epochs, batch 32, Adam, per-epoch "
        f"validation + alpha/beta search, {args.threads} thread(s), device {args.device}"
        + (", + 20 inner members (nested)" if args.nested else "")
    )
    print(f"{'dim':>6} {'wall s':>8} {'TFLOP':>7} {'GFLOP/s':>8} {'sgemm':>7} {'floor s':>8} {'wall/floor':>10} "
          f"{'cpu s':>8} {'cpu/floor':>9} {'search s':>8} {'peak MB':>8} {'s/epoch/fold':>12}")
    for dim in [int(d) for d in args.dims.split(",")]:
        cmd = [sys.executable, __file__, "--one", str(dim), "--epochs", str(args.epochs),
               "--threads", str(args.threads), "--hidden", str(args.hidden)]
        if args.with_final:
            cmd.append("--with-final")
        if args.nested:
            cmd.append("--nested")
        cmd += ["--device", args.device]
        r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        print(
            f"{r['dim']:>6} {r['wall_s']:>8.1f} {r['tflop']:>7.2f} {r['achieved_gflops']:>8.1f} "
            f"{r['sgemm_gflops']:>7.1f} {r['floor_s']:>8.1f} {r['wall_over_floor']:>10.2f} "
            f"{r['cpu_s']:>8.1f} {r['cpu_over_floor']:>9.2f} {r['search_s']:>8.1f} "
            f"{r['peak_rss_mb']:>8.0f} {r['s_per_epoch_per_fold']:>12.4f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
