"""The official trainer and blemore's batched trainer, side by side: same features, same machine, one thread each.

Run:  python benchmarks/bench_official.py --official PATH [--dim 672] [--epochs 40]

``PATH`` is a checkout of the official baseline (github.com/BlEmoRe/blemore-common), e.g.
``git -C blemore-common worktree add /tmp/official HEAD``; without it the script says why
and stops (exit code 0). The official code needs torch, numpy, pandas, scikit-learn and
matplotlib (its post-processing module imports pyplot); tensorboard is not needed: its
``Trainer`` is driven directly, without a ``SummaryWriter``.

Both train MLP-512 with the paper's settings (Adam, lr 5e-6, weight decay 1e-3, batch 32)
on the same random features shaped like the real training partition (2,456 clips; folds of
522, 486, 468, 472, 508 clips; clip names that carry their labels, which the official scorer
reads), each in its own process with one torch thread:

- **official**: its ``Trainer`` on ``--official-folds`` folds for ``--official-epochs`` epochs
  (train an epoch, then validate: the alpha/beta grid search on the fold), as its ``main.py``
  does per fold; and its final model (all training clips, no validation) for two epochs;
- **blemore**: ``train_members`` on the 5 folds plus the model on all training clips for
  ``--epochs`` epochs, with the alpha/beta search on every fold and on the pooled folds after
  every epoch (the work of one feature set x classifier in ``blemore benchmark``).

It prints seconds per fold-epoch for each, their ratio, and the whole paper run projected
from them (5 folds x 200 epochs; the official final model 100 epochs as its ``main.py``,
blemore's 200 epochs alongside the folds).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FOLD_SIZES = (522, 486, 468, 472, 508)
LR, WEIGHT_DECAY, BATCH = 5e-6, 1e-3, 32
PAPER_EPOCHS, OFFICIAL_FINAL_EPOCHS = 200, 100


def features(dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """``(X, labels, folds, names)``: random features, random valid labels, names that carry them."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from blemore.labels import VALID_LABELS

    rng = np.random.default_rng(seed)
    n = sum(FOLD_SIZES)
    labels = rng.integers(0, len(VALID_LABELS), n)
    names = []
    for i, li in enumerate(labels):
        label = VALID_LABELS[li]
        if label.is_blend:
            (e1, s1), (e2, s2) = label.parts
            names.append(f"A{1000 + i}_mix_{e1}_{e2}_{s1}_{s2}_ver1")
        else:
            e = label.parts[0][0]
            names.append(f"A{1000 + i}_{e}_{'sit' if e == 'neu' else 'int'}1_ver1")
    folds = np.repeat(np.arange(len(FOLD_SIZES)), FOLD_SIZES)
    X = rng.normal(size=(n, dim)).astype(np.float32)
    return X, labels, folds, names


def run_official(path: Path, dim: int, epochs: int, n_folds: int) -> dict:
    import torch
    from sklearn.preprocessing import StandardScaler
    from torch.utils.data import DataLoader

    sys.path.insert(0, str(path))
    from datasets.d2_dataset import D2Dataset
    from model.model import ConfigurableLinearNN
    from trainer.trainer import Trainer

    from blemore.labels import SOFT_VECTORS

    torch.set_num_threads(1)
    torch.manual_seed(0)
    X, labels, folds, names = features(dim)
    targets = SOFT_VECTORS[labels].astype(np.float32)
    names = np.asarray(names)

    def model():
        return ConfigurableLinearNN(input_dim=dim, output_dim=6, model_type="MLP_512", n_layers=1, hidden_dim=512)

    fold_seconds = []
    with tempfile.TemporaryDirectory() as save_dir:
        for fold in range(n_folds):
            train, val = folds != fold, folds == fold
            scaler = StandardScaler().fit(X[train])
            train_set = D2Dataset(scaler.transform(X[train]), targets[train], names[train].tolist())
            val_set = D2Dataset(scaler.transform(X[val]), targets[val], names[val].tolist())
            net = model()
            trainer = Trainer(model=net, optimizer=torch.optim.Adam(net.parameters(), lr=LR, weight_decay=WEIGHT_DECAY),
                              data_loader=DataLoader(train_set, batch_size=BATCH, shuffle=True), epochs=epochs,
                              valid_data_loader=DataLoader(val_set, batch_size=BATCH, shuffle=False),
                              save_dir=save_dir)
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                trainer.train(writer=None, save_prefix=f"fold{fold}")
            fold_seconds.append((time.perf_counter() - t0) / epochs)
        scaler = StandardScaler().fit(X)
        all_set = D2Dataset(scaler.transform(X), targets, names.tolist())
        net = model()
        final_epochs = 2
        trainer = Trainer(model=net, optimizer=torch.optim.Adam(net.parameters(), lr=LR, weight_decay=WEIGHT_DECAY),
                          data_loader=DataLoader(all_set, batch_size=BATCH, shuffle=True), epochs=final_epochs,
                          save_dir=save_dir)
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            trainer.train()
        final_epoch_s = (time.perf_counter() - t0) / final_epochs
    return {"s_per_fold_epoch": float(np.mean(fold_seconds)), "folds_timed": n_folds, "epochs_timed": epochs,
            "final_s_per_epoch": final_epoch_s, "torch": torch.__version__}


def run_blemore(dim: int, epochs: int) -> dict:
    import torch

    from blemore.decoding import search_thresholds
    from blemore.labels import SOFT_VECTORS
    from blemore.models.trainer import Member, TrainConfig, train_members

    torch.set_num_threads(1)
    X, labels, folds, _ = features(dim)
    targets = SOFT_VECTORS[labels].astype(np.float32)
    K = len(FOLD_SIZES)
    members = [Member(train=np.flatnonzero(folds != f), eval=np.flatnonzero(folds == f), seed=f) for f in range(K)]
    members.append(Member(train=np.arange(len(X)), eval=np.arange(0), seed=99))
    truth = [labels[m.eval] for m in members[:K]]
    pooled = np.concatenate(truth)

    def on_epoch(epoch, probs, loss):
        for k in range(K):
            search_thresholds(probs[k], truth[k])
        search_thresholds(np.concatenate(probs[:K]), pooled)

    t0 = time.perf_counter()
    train_members(X, targets, members, hidden=512,
                  config=TrainConfig(epochs=epochs, lr=LR, weight_decay=WEIGHT_DECAY, batch_size=BATCH, threads=1),
                  on_epoch=on_epoch)
    wall = time.perf_counter() - t0
    return {"s_per_fold_epoch": wall / (K * epochs), "wall_s": wall, "epochs_timed": epochs, "torch": torch.__version__}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official", type=Path, default=os.environ.get("BLEMORE_OFFICIAL"),
                    help="checkout of the official blemore-common repository (or BLEMORE_OFFICIAL)")
    ap.add_argument("--dim", type=int, default=672, help="feature size (672 = 96 x 7 statistics)")
    ap.add_argument("--epochs", type=int, default=40, help="blemore epochs to time")
    ap.add_argument("--official-epochs", type=int, default=3, help="official epochs to time per fold")
    ap.add_argument("--official-folds", type=int, default=1, help="official folds to time")
    ap.add_argument("--part", choices=["official", "blemore"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.part == "official":
        print(json.dumps(run_official(args.official, args.dim, args.official_epochs, args.official_folds)))
        return
    if args.part == "blemore":
        print(json.dumps(run_blemore(args.dim, args.epochs)))
        return
    if args.official is None or not (Path(args.official) / "trainer" / "trainer.py").is_file():
        print(f"skipped: no checkout of the official repository at {args.official!s} (give --official PATH, "
              "e.g. `git -C blemore-common worktree add /tmp/official HEAD`)")
        return

    def part(name: str) -> dict:
        cmd = [sys.executable, __file__, "--part", name, "--dim", str(args.dim), "--epochs", str(args.epochs),
               "--official-epochs", str(args.official_epochs), "--official-folds", str(args.official_folds),
               "--official", str(args.official)]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1] / "src"),
                                              os.environ.get("PYTHONPATH", "")])}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            sys.exit(f"{name} failed:\n{proc.stderr[-3000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])

    print(f"MLP-512, {args.dim}-d features, {sum(FOLD_SIZES)} clips in {len(FOLD_SIZES)} folds, batch {BATCH}, "
          "Adam, per-epoch validation with the alpha/beta search; one thread each")
    official = part("official")
    ours = part("blemore")
    ratio = official["s_per_fold_epoch"] / ours["s_per_fold_epoch"]
    whole_official = (len(FOLD_SIZES) * PAPER_EPOCHS * official["s_per_fold_epoch"]
                      + OFFICIAL_FINAL_EPOCHS * official["final_s_per_epoch"])
    whole_ours = ours["s_per_fold_epoch"] * len(FOLD_SIZES) * PAPER_EPOCHS
    print(f"official trainer  {official['s_per_fold_epoch']:.3f} s per fold-epoch "
          f"({official['folds_timed']} fold(s) x {official['epochs_timed']} epochs timed); "
          f"final model {official['final_s_per_epoch']:.3f} s per epoch")
    print(f"blemore trainer   {ours['s_per_fold_epoch']:.4f} s per fold-epoch "
          f"({ours['epochs_timed']} epochs x 5 folds + the final model, {ours['wall_s']:.1f} s)")
    print(f"ratio             {ratio:.1f}x per fold-epoch")
    print(f"whole paper run   official ~{whole_official:,.0f} s, blemore ~{whole_ours:,.0f} s "
          f"({whole_official / whole_ours:.1f}x), projected from the timings above")


if __name__ == "__main__":
    main()
