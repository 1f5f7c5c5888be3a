"""Small generated features with a planted signal and actor offsets (tests of B's protocol)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from blemore.data.folds import actor_folds
from blemore.data.metadata import metadata_frame, write_metadata
from blemore.labels import LABEL_NAMES, SOFT_VECTORS, VALID_LABELS


def clip_name(actor: str, label_index: int, version: int) -> str:
    label = VALID_LABELS[label_index]
    if label.is_blend:
        (e1, s1), (e2, s2) = label.parts
        return f"{actor}_mix_{e1}_{e2}_{s1}_{s2}_ver{version}"
    e = label.parts[0][0]
    return f"{actor}_{e}_{'sit' if e == 'neu' else 'int'}1_ver{version}"


def planted(
    tmp: Path,
    *,
    n_actors: int = 15,
    n_test_actors: int = 4,
    dim: int = 10,
    signal: float = 2.0,
    noise: float = 1.0,
    actor_sd: float = 1.0,
    seed: int = 0,
    frames: bool = False,
    sources: int = 1,
) -> dict:
    """Write train/test metadata and ``sources`` feature sources carrying the label signal.

    Every actor plays each of the 36 labels once. Each source sees the soft label
    vector through its own random projection, plus an actor offset and noise;
    with several sources, each carries the signal with independent noise.
    """
    rng = np.random.default_rng(seed)
    actors = [f"A{100 + i}" for i in range(n_actors + n_test_actors)]
    names, acts, labs = [], [], []
    for a in actors:
        for li in range(len(VALID_LABELS)):
            names.append(clip_name(a, li, 1))
            acts.append(a)
            labs.append(li)
    labs = np.array(labs)
    is_test = np.array([a in actors[n_actors:] for a in acts])
    folds = np.full(len(names), -1)
    folds[~is_test] = actor_folds(np.array(acts)[~is_test], n_folds=5, seed=seed)
    offsets = {a: rng.normal(scale=actor_sd, size=dim) for a in actors}
    out: dict = {"names": names, "labels": labs, "is_test": is_test, "folds": folds, "sources": {}}
    for s in range(sources):
        proj = rng.normal(size=(6, dim))
        base = SOFT_VECTORS[labs] @ proj * signal
        X = base + np.stack([offsets[a] for a in acts]) + rng.normal(scale=noise, size=base.shape)
        X = X.astype(np.float32)
        if frames:
            d = tmp / f"src{s}"
            d.mkdir(parents=True, exist_ok=True)
            for i, n in enumerate(names):
                T = int(rng.integers(20, 40))
                fr = X[i] + rng.normal(scale=0.3, size=(T, dim))
                fr[0] = np.nan  # a frame without a face
                np.save(d / f"{n}.npy", fr.astype(np.float32))
            out["sources"][f"s{s}"] = d
        else:
            p = tmp / f"src{s}.npz"
            np.savez(p, X=X, filenames=np.array(names))
            out["sources"][f"s{s}"] = p
    tr = ~is_test
    write_metadata(
        metadata_frame([n for n, t in zip(names, tr) if t], [a for a, t in zip(acts, tr) if t],
                       folds[tr].tolist(), [LABEL_NAMES[l] for l in labs[tr]]),
        tmp / "train_metadata.csv",
    )
    write_metadata(
        metadata_frame([n for n, t in zip(names, is_test) if t], [a for a, t in zip(acts, is_test) if t],
                       [None] * int(is_test.sum()), [LABEL_NAMES[l] for l in labs[is_test]]),
        tmp / "test_metadata.csv",
    )
    out["train_metadata"] = tmp / "train_metadata.csv"
    out["test_metadata"] = tmp / "test_metadata.csv"
    return out
