"""The paper's protocol: every feature set x classifier, actor-disjoint folds + test.

For each feature set and head, one batched training run
(:func:`blemore.models.trainer.train_members`) trains K+1 members together:
the K cross-validation folds (train on the other folds, validate on this one)
and the model on *all* training clips (used for the test and for
``blemore predict``). After every epoch each fold's validation probabilities go
through the alpha/beta search (:func:`blemore.decoding.search_thresholds`).

Selection rules, all written to ``results.csv``:

- per fold (``fold`` = 0..K-1): the epoch with the best
  ``0.5 * presence + 0.5 * salience`` on that fold (first maximum) and its
  alpha/beta, as the paper does; ``mean`` and ``std`` (sample std, ddof=1) over
  folds. These figures choose the epoch and the thresholds on the very clips
  they report, so they are optimistic.
- ``pooled``: for every epoch the out-of-fold validation probabilities of all
  folds are pooled and alpha/beta searched on the pool; the epoch with the best
  pooled score is kept (one epoch count and one alpha/beta for all folds).
- ``test`` (the paper's rule, as the official baseline code does it): the model
  trained on all training clips for the full number of epochs, decoded with the
  alpha/beta of the best validation fold (``paper_epochs="best-fold"``: for the
  selected epoch count of that fold instead).
- ``test-pooled`` (honest alternative): the model trained on all training clips
  for the pooled epoch count, decoded with the pooled alpha/beta. Nothing about
  it looks at the test clips. The model trained on all clips is the same run
  for both rules (Adam has no schedule, so the state after e epochs of a longer
  run is the state of an e-epoch run).
- trivial baselines (``majority-single``, ``majority-blend``): the most frequent
  single emotion, and the most frequent blend pair with its most frequent
  salience, counted on the training part of each split.

The run folder layout is described in :func:`run_benchmark`.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import pandas as pd

from blemore.data.metadata import check_folds, metadata_from_names, read_clip_names, read_metadata
from blemore.errors import BlemoreError
from blemore.features.loading import FeatureRows, load_feature_set, parse_set_names
from blemore.labels import EMOTIONS, IS_BLEND, LABEL_INDEX, LABEL_NAMES, SOFT_VECTORS, VALID_LABELS
from blemore.models.heads import hidden_size, parse_model_list

__all__ = [
    "BenchmarkConfig",
    "run_benchmark",
    "predict_run",
    "PredictResult",
    "RESULT_COLUMNS",
    "CURVE_COLUMNS",
    "markdown_table",
    "member_seed",
    "resolve_inputs",
    "prepare_run_folder",
    "publish_run_folder",
    "Inputs",
]

RESULT_COLUMNS = [
    "feature_set",
    "model",
    "method",
    "fold",
    "epoch",
    "alpha",
    "beta",
    "acc_presence",
    "acc_salience",
    "score",
    "n_clips",
]
CURVE_COLUMNS = [
    "feature_set",
    "model",
    "fold",
    "epoch",
    "train_loss",
    "val_loss",
    "acc_presence",
    "acc_salience",
    "score",
    "alpha",
    "beta",
]
PRED_COLUMNS = ["filename", "actor", "fold", "label", *EMOTIONS, "pred_label"]


@dataclass
class BenchmarkConfig:
    """Everything a benchmark run needs; the CLI builds it from its options.

    Give either ``train_metadata`` (official CSV with folds) or ``clips`` (a text
    file of descriptive clip names; folds generated actor-disjoint with ``seed``).
    ``features`` maps names to a ``.npz`` (X, filenames) or a folder of ``.npy``.
    """

    features: dict[str, Path]
    train_metadata: Path | None = None
    clips: Path | None = None
    test_metadata: Path | None = None
    sets: list[str] | None = None
    models: list[str] = field(default_factory=lambda: ["linear", "mlp256", "mlp512"])
    representation: Literal["stats", "windows"] = "stats"
    window: int = 16
    epochs: int = 200
    lr: float = 5e-6
    weight_decay: float = 1e-3
    batch_size: int = 32
    seed: int = 0
    n_folds: int = 5
    out: Path | None = None
    submission_rule: Literal["pooled", "paper"] = "pooled"
    #: Epochs of the paper-rule test model: "all" (what the official baseline code
    #: does) or "best-fold" (the selected epoch of the best validation fold).
    paper_epochs: Literal["all", "best-fold"] = "all"
    progress: bool = True
    threads: int | None = None
    command: list[str] | None = None

    def to_json(self) -> dict:
        d = asdict(self)
        d["features"] = {k: str(v) for k, v in self.features.items()}
        for k in ("train_metadata", "clips", "test_metadata", "out"):
            d[k] = None if d[k] is None else str(d[k])
        return d


def member_seed(seed: int, member: int) -> int:
    """Seed of one member (fold f, or K for the model on all training clips)."""
    return int(np.random.SeedSequence([int(seed), int(member)]).generate_state(1)[0])


# --------------------------------------------------------------------------- helpers


def _kl_batchmean(targets: np.ndarray, probs: np.ndarray) -> float:
    t = targets
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(t > 0, t * (np.log(np.where(t > 0, t, 1.0)) - np.log(np.clip(probs, 1e-30, None))), 0.0)
    return float(terms.sum() / max(len(t), 1))


def _score(truth: np.ndarray, pred: np.ndarray):
    from blemore.metrics import score_indices

    return score_indices(truth, pred)


def _majority_labels(train_idx: np.ndarray) -> tuple[int, int]:
    """(most frequent single label, most frequent blend label of the most frequent pair)."""
    counts = np.bincount(train_idx, minlength=len(VALID_LABELS))
    singles = np.flatnonzero(~IS_BLEND)
    single = int(singles[np.argmax(counts[singles])])
    pairs: dict[str, int] = {}
    for i in np.flatnonzero(IS_BLEND):
        pairs[VALID_LABELS[i].pair] = pairs.get(VALID_LABELS[i].pair, 0) + int(counts[i])
    best_pair = max(pairs, key=lambda k: pairs[k])  # first max in label order
    members = [i for i in np.flatnonzero(IS_BLEND) if VALID_LABELS[i].pair == best_pair]
    blend = int(members[int(np.argmax(counts[members]))])
    return single, blend


def _row(fs, model, method, fold, epoch, alpha, beta, s, n) -> dict:
    return {
        "feature_set": fs,
        "model": model,
        "method": method,
        "fold": str(fold),
        "epoch": epoch,
        "alpha": alpha,
        "beta": beta,
        "acc_presence": s[0],
        "acc_salience": s[1],
        "score": s[2],
        "n_clips": n,
    }


def _summary_rows(fs: str, model: str, method: str, fold_rows: list[dict]) -> list[dict]:
    out = []
    arr = {k: np.array([r[k] for r in fold_rows], dtype=float) for k in ("acc_presence", "acc_salience", "score")}
    ep = np.array([np.nan if r["epoch"] in (None, "") else r["epoch"] for r in fold_rows], dtype=float)
    n = int(sum(r["n_clips"] for r in fold_rows))
    ddof = 1 if len(fold_rows) > 1 else 0
    mean = [float(arr[k].mean()) for k in ("acc_presence", "acc_salience", "score")]
    std = [float(arr[k].std(ddof=ddof)) for k in ("acc_presence", "acc_salience", "score")]
    ep_mean = None if np.isnan(ep).all() else float(np.nanmean(ep))
    ep_std = None if np.isnan(ep).all() else float(np.nanstd(ep, ddof=ddof))
    out.append(_row(fs, model, method, "mean", ep_mean, None, None, mean, n))
    out.append(_row(fs, model, method, "std", ep_std, None, None, std, n))
    return out


def trivial_rows(
    train_idx: np.ndarray, folds: np.ndarray, fold_ids: Sequence[int], test_idx: np.ndarray | None
) -> list[dict]:
    """Rows of the two trivial baselines, per fold, mean/std and test."""
    rows: list[dict] = []
    for which, method in ((0, "majority-single"), (1, "majority-blend")):
        fold_rows = []
        for f in fold_ids:
            lab = _majority_labels(train_idx[folds != f])[which]
            truth = train_idx[folds == f]
            s = _score(truth, np.full(len(truth), lab))
            r = _row("-", method, method, f, None, None, None, [s.acc_presence, s.acc_salience, s.score], len(truth))
            r["pred_label"] = LABEL_NAMES[lab]
            fold_rows.append(r)
        rows += fold_rows + _summary_rows("-", method, method, fold_rows)
        if test_idx is not None:
            lab = _majority_labels(train_idx)[which]
            s = _score(test_idx, np.full(len(test_idx), lab))
            rows.append(_row("-", method, method, "test", None, None, None, [s.acc_presence, s.acc_salience, s.score], len(test_idx)))
    for r in rows:
        r.pop("pred_label", None)
    return rows


def _fmt(x: float) -> str:
    return "" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.3f}"


def markdown_table(results: pd.DataFrame) -> str:
    """The summary table: per feature set x model, validation mean ± std, pooled, test rules."""
    head = (
        "| feature set | model | val presence | val salience | val score | pooled score (epoch) "
        "| test presence | test salience | test-pooled presence | test-pooled salience |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    keys = results[["feature_set", "model"]].drop_duplicates().itertuples(index=False)
    for fs, model in keys:
        sub = results[(results.feature_set == fs) & (results.model == model)].set_index("fold")

        def get(fold: str, col: str):
            return sub.loc[fold, col] if fold in sub.index else None

        def pm(col: str) -> str:
            m, s = get("mean", col), get("std", col)
            return f"{m:.3f} ± {s:.3f}" if m is not None else ""

        pooled = ""
        if "pooled" in sub.index:
            pooled = f"{get('pooled', 'score'):.3f} ({int(get('pooled', 'epoch'))})"
        lines.append(
            f"| {fs} | {model} | {pm('acc_presence')} | {pm('acc_salience')} | {pm('score')} | {pooled} "
            f"| {_fmt(get('test', 'acc_presence'))} | {_fmt(get('test', 'acc_salience'))} "
            f"| {_fmt(get('test-pooled', 'acc_presence'))} | {_fmt(get('test-pooled', 'acc_salience'))} |"
        )
    return head + "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- inputs


@dataclass
class Inputs:
    """What a configuration resolves to: training and test metadata, fold ids, feature sets, heads."""

    train: pd.DataFrame
    test: pd.DataFrame | None
    fold_ids: list[int]
    sets: list[str]
    models: list[str]


def resolve_inputs(config: BenchmarkConfig) -> Inputs:
    """Read and check the metadata and options of ``config``; raise :class:`BlemoreError` on bad input."""
    if (config.train_metadata is None) == (config.clips is None):
        raise BlemoreError("give either --train-metadata (official CSV with folds) or --clips (a list of clip names)")
    if config.train_metadata is not None:
        train = read_metadata(config.train_metadata)
        source = str(config.train_metadata)
    else:
        train = metadata_from_names(read_clip_names(config.clips), n_folds=config.n_folds, seed=config.seed)
        source = str(config.clips)
    train = train.reset_index(drop=True)
    fold_ids = [int(f) for f in check_folds(train, source=source)]
    test = None
    if config.test_metadata is not None:
        test = read_metadata(config.test_metadata).reset_index(drop=True)
        overlap = sorted(set(test.filename) & set(train.filename))
        if overlap:
            raise BlemoreError(
                f"{config.test_metadata}: {len(overlap)} clip(s) are also training clips (e.g. {overlap[0]!r})"
            )
        test["fold"] = pd.array([pd.NA] * len(test), dtype="Int64")
    from blemore.models.trainer import TrainConfig

    TrainConfig(epochs=config.epochs, lr=config.lr, weight_decay=config.weight_decay, batch_size=config.batch_size)
    if config.window < 1:
        raise BlemoreError(f"window must be >= 1 frame, got window={config.window}")
    sets = parse_set_names(config.sets, config.features)
    models = parse_model_list(config.models)
    if config.representation not in ("stats", "windows"):
        raise BlemoreError(f"unknown representation {config.representation!r}: expected 'stats' or 'windows'")
    if config.paper_epochs not in ("all", "best-fold"):
        raise BlemoreError(f"unknown paper_epochs {config.paper_epochs!r}: expected 'all' or 'best-fold'")
    if config.submission_rule not in ("pooled", "paper"):
        raise BlemoreError(f"unknown submission rule {config.submission_rule!r}: expected 'pooled' or 'paper'")
    return Inputs(train, test, fold_ids, sets, models)


def prepare_run_folder(out: Path) -> Path:
    """Check that ``out`` may hold a run and return a fresh staging folder beside it.

    The run is written into the staging folder and moved into place by
    :func:`publish_run_folder` only when complete, so a failed run leaves nothing half-written.
    """
    if out.exists():
        if not out.is_dir():
            raise BlemoreError(f"{out}: exists and is not a folder; choose another --out")
        if any(out.iterdir()) and not (out / "config.json").exists():
            raise BlemoreError(f"{out}: folder exists, is not empty and is not a blemore run; choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    return tmp


def publish_run_folder(tmp: Path, out: Path) -> None:
    """Move a finished staging folder (from :func:`prepare_run_folder`) into place, replacing an earlier run."""
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)


# --------------------------------------------------------------------------- one job


@dataclass
class _JobResult:
    rows: list[dict]
    curves: list[dict]
    val_pred: pd.DataFrame
    test_pred: pd.DataFrame | None
    grids: dict[str, np.ndarray]
    model_arrays: dict[str, np.ndarray]
    model_info: dict
    flops: float


def _run_job(
    fs: str,
    model: str,
    feats: FeatureRows,
    inp: Inputs,
    config: BenchmarkConfig,
    epoch_bar=None,
) -> _JobResult:
    from blemore.decoding import decode_thresholds, search_thresholds
    from blemore.models.trainer import Member, TrainConfig, train_members

    train, test = inp.train, inp.test
    n_train = len(train)
    folds = train["fold"].to_numpy(dtype=np.int64)
    truth_all = train["label_index"].to_numpy(dtype=np.int64)
    test_truth = None
    if test is not None and test["label_index"].notna().all() and len(test):
        test_truth = test["label_index"].to_numpy(dtype=np.int64)
    targets_clip = np.zeros((len(feats.clips), len(EMOTIONS)), dtype=np.float32)
    targets_clip[:n_train] = SOFT_VECTORS[truth_all]
    row_clip = feats.row_clip
    targets = targets_clip[row_clip]
    is_train_row = row_clip < n_train
    row_fold = np.where(is_train_row, folds[np.minimum(row_clip, n_train - 1)], -1)

    K = len(inp.fold_ids)
    members: list[Member] = []
    val_clips: list[np.ndarray] = []
    for k, f in enumerate(inp.fold_ids):
        vc = np.flatnonzero(folds == f)
        val_clips.append(vc)
        rank = np.full(n_train, -1)
        rank[vc] = np.arange(len(vc))
        ev = np.flatnonzero(row_fold == f)
        members.append(
            Member(
                train=np.flatnonzero(is_train_row & (row_fold != f)),
                eval=ev,
                seed=member_seed(config.seed, k),
                eval_groups=rank[row_clip[ev]],
            )
        )
    ev_test = np.flatnonzero(~is_train_row)
    members.append(
        Member(
            train=np.flatnonzero(is_train_row),
            eval=ev_test,
            seed=member_seed(config.seed, K),
            eval_groups=row_clip[ev_test] - n_train,
        )
    )
    pool_clips = np.concatenate(val_clips)
    pool_truth = truth_all[pool_clips]
    fold_truth = [truth_all[vc] for vc in val_clips]
    fold_targets = [SOFT_VECTORS[t] for t in fold_truth]

    best = [(-np.inf, 0, None)] * K  # (score, epoch, search)
    best_pooled = (-np.inf, 0, None)
    curves: list[dict] = []

    def on_epoch(epoch: int, probs: list[np.ndarray], loss: np.ndarray):
        nonlocal best_pooled
        keep: list = []
        for k in range(K):
            r = search_thresholds(probs[k], fold_truth[k])
            curves.append(
                {
                    "feature_set": fs,
                    "model": model,
                    "fold": str(inp.fold_ids[k]),
                    "epoch": epoch,
                    "train_loss": float(loss[k]),
                    "val_loss": _kl_batchmean(fold_targets[k], probs[k]),
                    "acc_presence": r.acc_presence,
                    "acc_salience": r.acc_salience,
                    "score": r.score,
                    "alpha": r.alpha,
                    "beta": r.beta,
                }
            )
            if r.score > best[k][0]:
                best[k] = (r.score, epoch, r)
                if config.paper_epochs == "best-fold":
                    keep.append((K, f"fold{k}"))
        pooled = np.concatenate(probs[:K])
        r = search_thresholds(pooled, pool_truth)
        curves.append(
            {
                "feature_set": fs,
                "model": model,
                "fold": "pooled",
                "epoch": epoch,
                "train_loss": float(loss[K]),
                "val_loss": _kl_batchmean(SOFT_VECTORS[pool_truth], pooled),
                "acc_presence": r.acc_presence,
                "acc_salience": r.acc_salience,
                "score": r.score,
                "alpha": r.alpha,
                "beta": r.beta,
            }
        )
        if r.score > best_pooled[0]:
            best_pooled = (r.score, epoch, r)
            keep.append((K, "pooled"))
        return keep

    tcfg = TrainConfig(
        epochs=config.epochs, lr=config.lr, weight_decay=config.weight_decay, batch_size=config.batch_size,
        threads=config.threads,
    )
    res = train_members(
        feats.X,
        targets,
        members,
        hidden=hidden_size(model),
        config=tcfg,
        on_epoch=on_epoch,
        progress=(epoch_bar.update if epoch_bar is not None else None),
    )

    rows: list[dict] = []
    fold_rows: list[dict] = []
    val_frames = []
    presence_grids, salience_grids = [], []
    for k, f in enumerate(inp.fold_ids):
        score, epoch, r = best[k]
        row = _row(fs, model, "baseline", f, epoch, r.alpha, r.beta, [r.acc_presence, r.acc_salience, r.score], len(val_clips[k]))
        fold_rows.append(row)
        presence_grids.append(r.presence_grid)
        salience_grids.append(r.salience_grid)
        p = res.eval_probs[k][epoch - 1]
        pred = decode_thresholds(p, r.alpha, r.beta)
        val_frames.append(_pred_frame(train.iloc[val_clips[k]], p, pred))
    rows += fold_rows + _summary_rows(fs, model, "baseline", fold_rows)
    pscore, pepoch, pr = best_pooled
    rows.append(
        _row(fs, model, "baseline", "pooled", pepoch, pr.alpha, pr.beta, [pr.acc_presence, pr.acc_salience, pr.score], len(pool_clips))
    )
    best_fold = int(np.argmax([b[0] for b in best]))  # first maximum
    paper_alpha, paper_beta = best[best_fold][2].alpha, best[best_fold][2].beta
    paper_epoch = config.epochs if config.paper_epochs == "all" else best[best_fold][1]
    rules = {
        "paper": {
            "epoch": paper_epoch, "alpha": paper_alpha, "beta": paper_beta,
            "best_fold": inp.fold_ids[best_fold], "epochs_rule": config.paper_epochs,
        },
        "pooled": {"epoch": pepoch, "alpha": pr.alpha, "beta": pr.beta},
    }
    test_pred = None
    if test is not None and len(test):
        probs_by_rule = {
            "paper": res.eval_probs[K][paper_epoch - 1],
            "pooled": res.eval_probs[K][pepoch - 1],
        }
        for rule, method_fold in (("paper", "test"), ("pooled", "test-pooled")):
            if test_truth is not None:
                pred = decode_thresholds(probs_by_rule[rule], rules[rule]["alpha"], rules[rule]["beta"])
                s = _score(test_truth, pred)
                rows.append(
                    _row(fs, model, "baseline", method_fold, rules[rule]["epoch"], rules[rule]["alpha"], rules[rule]["beta"], [s.acc_presence, s.acc_salience, s.score], len(test_truth))
                )
        rule = config.submission_rule
        p = probs_by_rule[rule]
        test_pred = _pred_frame(test, p, decode_thresholds(p, rules[rule]["alpha"], rules[rule]["beta"]))

    grids = {
        "alphas": pr.alphas,
        "betas": pr.betas,
        "presence": np.stack(presence_grids),
        "salience": np.stack(salience_grids),
        "folds": np.array(inp.fold_ids),
        "epoch": np.array([b[1] for b in best]),
        "alpha": np.array([b[2].alpha for b in best]),
        "beta": np.array([b[2].beta for b in best]),
        "pooled_presence": pr.presence_grid,
        "pooled_salience": pr.salience_grid,
        "pooled_alpha": np.array(pr.alpha),
        "pooled_beta": np.array(pr.beta),
        "pooled_epoch": np.array(pepoch),
    }
    model_arrays = {}
    paper_params = res.final[K] if config.paper_epochs == "all" else res.kept[(K, f"fold{best_fold}")][1]
    for rule, params in (("paper", paper_params), ("pooled", res.kept[(K, "pooled")][1])):
        for key, arr in params.as_dict().items():
            model_arrays[f"{rule}_{key}"] = arr
    model_info = {
        "feature_set": fs,
        "parts": fs.split("+"),
        "model": model,
        "hidden": hidden_size(model),
        "representation": config.representation,
        "window": config.window,
        "dim": feats.dim,
        "rules": rules,
        "submission_rule": config.submission_rule,
        "pooled_val_score": float(pscore),
    }
    val_pred = pd.concat(val_frames, ignore_index=True)
    return _JobResult(rows, curves, val_pred, test_pred, grids, model_arrays, model_info, res.flops)


def _pred_frame(meta: pd.DataFrame, probs: np.ndarray, pred: np.ndarray) -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "filename": meta["filename"].to_numpy(),
            "actor": meta["actor"].to_numpy(),
            "fold": meta["fold"].to_numpy(),
            "label": [l if isinstance(l, str) else "" for l in meta["label"]],
        }
    )
    for j, e in enumerate(EMOTIONS):
        df[e] = probs[:, j]
    df["pred_label"] = [LABEL_NAMES[i] if i >= 0 else "other" for i in pred]
    return df


# --------------------------------------------------------------------------- the run


def run_benchmark(config: BenchmarkConfig) -> Path:
    """Run the protocol and write the run folder; returns its path.

    Layout (``RUN/``): ``config.json``, ``results.csv``, ``results.md``,
    ``curves.csv``, ``predictions/<set>__<model>__val.csv`` and ``__test.csv``,
    ``grids/<set>__<model>.npz``, ``clip_features/<set>.npz``,
    ``submission/<set>__<model>.json`` and ``.zip`` (when there are test clips),
    ``models/<set>__<model>.npz`` + ``.json`` (what ``blemore predict`` needs).
    The folder is written under a temporary name and renamed at the end, so a
    failed run leaves nothing half-written.
    """
    from tqdm.auto import tqdm

    import torch

    from blemore.submission import predictions_from_indices, write_predictions, write_submission_zip

    started = time.time()
    inp = resolve_inputs(config)
    out = Path(config.out) if config.out is not None else Path("runs") / time.strftime("benchmark-%Y%m%d-%H%M%S")
    clips = inp.train["filename"].tolist() + ([] if inp.test is None else inp.test["filename"].tolist())

    # Load and check every feature set before training anything.
    cache: dict = {}
    feats: dict[str, FeatureRows] = {}
    for fs in inp.sets:
        feats[fs] = load_feature_set(
            fs, config.features, clips, representation=config.representation, window=config.window,
            cache=cache, progress=config.progress,
        )
    tmp = prepare_run_folder(out)
    try:
        for sub in ("predictions", "grids", "clip_features", "models"):
            (tmp / sub).mkdir()
        labels_all = [l if isinstance(l, str) else "" for l in inp.train["label"]]
        if inp.test is not None:
            labels_all += [l if isinstance(l, str) else "" for l in inp.test["label"]]
        actors_all = inp.train["actor"].astype(str).tolist() + ([] if inp.test is None else inp.test["actor"].fillna("").astype(str).tolist())
        for fs, fr in feats.items():
            extra = {}
            if not np.array_equal(fr.row_clip, np.arange(len(clips))):
                extra = {"windows": fr.X, "window_clip": fr.row_clip}
            np.savez(
                tmp / "clip_features" / f"{fs}.npz",
                X=fr.clip_matrix(),
                filenames=np.array(clips),
                labels=np.array(labels_all),
                actors=np.array(actors_all),
                **extra,
            )

        train_idx = inp.train["label_index"].to_numpy(dtype=np.int64)
        folds = inp.train["fold"].to_numpy(dtype=np.int64)
        test_idx = None
        if inp.test is not None and len(inp.test) and inp.test["label_index"].notna().all():
            test_idx = inp.test["label_index"].to_numpy(dtype=np.int64)
        all_rows: list[dict] = []
        all_curves: list[dict] = []
        flops = 0.0
        jobs = [(fs, m) for fs in inp.sets for m in inp.models]
        job_bar = tqdm(jobs, desc="feature set x model", unit="job", disable=not config.progress, file=sys.stderr)
        epoch_bar = tqdm(
            total=len(jobs) * config.epochs, desc="epochs", unit="epoch", disable=not config.progress,
            file=sys.stderr, leave=False,
        )
        models_info = []
        for fs, model in job_bar:
            job_bar.set_postfix_str(f"{fs} / {model}")
            jr = _run_job(fs, model, feats[fs], inp, config, epoch_bar=epoch_bar)
            flops += jr.flops
            all_rows += jr.rows
            all_curves += jr.curves
            stem = f"{fs}__{model}"
            jr.val_pred.to_csv(tmp / "predictions" / f"{stem}__val.csv", index=False)
            np.savez(tmp / "grids" / f"{stem}.npz", **jr.grids)
            np.savez(tmp / "models" / f"{stem}.npz", **jr.model_arrays)
            (tmp / "models" / f"{stem}.json").write_text(json.dumps(jr.model_info, indent=2))
            models_info.append(jr.model_info)
            if jr.test_pred is not None:
                jr.test_pred.to_csv(tmp / "predictions" / f"{stem}__test.csv", index=False)
                idx = np.array([LABEL_INDEX[l] for l in jr.test_pred["pred_label"]])
                preds = predictions_from_indices(jr.test_pred["filename"].tolist(), idx)
                (tmp / "submission").mkdir(exist_ok=True)
                write_predictions(preds, tmp / "submission" / f"{stem}.json")
                write_submission_zip(preds, tmp / "submission" / f"{stem}.zip")
        epoch_bar.close()
        job_bar.close()
        all_rows += trivial_rows(train_idx, folds, inp.fold_ids, test_idx)
        results = pd.DataFrame(all_rows, columns=RESULT_COLUMNS)
        num = ["alpha", "beta", "acc_presence", "acc_salience", "score"]
        results[num] = results[num].astype(float).round(12)  # e.g. a std of equal values -> 0, not 1e-18
        results.to_csv(tmp / "results.csv", index=False, float_format="%.6g")
        pd.DataFrame(all_curves, columns=CURVE_COLUMNS).to_csv(tmp / "curves.csv", index=False, float_format="%.6g")
        table = markdown_table(results)
        (tmp / "results.md").write_text(table)
        resolved = {
            "config": config.to_json(),
            "sets": inp.sets,
            "models": inp.models,
            "folds": inp.fold_ids,
            "n_train_clips": len(inp.train),
            "n_test_clips": 0 if inp.test is None else len(inp.test),
            "test_labeled": test_idx is not None,
            "member_seeds": {
                **{str(f): member_seed(config.seed, k) for k, f in enumerate(inp.fold_ids)},
                "all": member_seed(config.seed, len(inp.fold_ids)),
            },
            "selection": {
                "fold": "epoch with the best 0.5*presence + 0.5*salience on the fold (first maximum)",
                "pooled": "epoch and alpha/beta with the best score on the pooled out-of-fold probabilities",
                "test": (
                    "model on all training clips after "
                    + ("all epochs" if config.paper_epochs == "all" else "the best fold's selected epoch count")
                    + "; alpha/beta of the best validation fold"
                ),
                "test-pooled": "model on all training clips after the pooled epoch count; pooled alpha/beta",
            },
            "std": "sample standard deviation over folds (ddof=1)",
            "command": config.command if config.command is not None else sys.argv,
            "versions": {
                "python": platform.python_version(),
                "numpy": np.__version__,
                "pandas": pd.__version__,
                "torch": torch.__version__,
                "blemore": _blemore_version(),
            },
            "torch_threads": torch.get_num_threads(),
            "seconds": round(time.time() - started, 3),
            "train_flops": flops,
        }
        (tmp / "config.json").write_text(json.dumps(resolved, indent=2, default=str))
        publish_run_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _blemore_version() -> str:
    try:
        from blemore import __version__

        return __version__
    except ImportError:  # pragma: no cover
        return "unknown"


# --------------------------------------------------------------------------- predict


@dataclass
class PredictResult:
    """Where :func:`predict_run` wrote its files, and what it used."""

    out: Path
    predictions: Path
    submission: Path
    probabilities: Path
    feature_set: str
    model: str
    rule: str
    n_clips: int


def _run_models(run: Path) -> list[dict]:
    if not (run / "config.json").exists():
        raise BlemoreError(f"{run}: not a blemore benchmark run (no config.json)")
    infos = []
    for p in sorted((run / "models").glob("*.json")):
        info = json.loads(p.read_text())
        info["_stem"] = p.stem
        infos.append(info)
    if not infos:
        raise BlemoreError(f"{run}: the run holds no trained models (models/*.json)")
    return infos


def predict_run(
    run: str | Path,
    features: dict[str, Path],
    *,
    out: str | Path | None = None,
    feature_set: str | None = None,
    model: str | None = None,
    rule: Literal["pooled", "paper"] | None = None,
    metadata: str | Path | None = None,
    progress: bool = False,
) -> PredictResult:
    """Apply a run's model trained on all training clips to the features of new clips.

    By default the (feature set, model) with the best pooled validation score and
    the run's submission rule are used. Clips: those of ``metadata`` when given,
    else every clip that all the needed feature sources have. Writes
    ``predictions.json``, ``submission.zip`` and ``probabilities.csv`` into ``out``
    (default ``RUN/predict``).
    """
    from blemore.decoding import decode_thresholds
    from blemore.features.loading import available_clips
    from blemore.models.trainer import HeadParams, forward_probs
    from blemore.submission import predictions_from_indices, write_predictions, write_submission_zip

    run = Path(run)
    infos = _run_models(run)
    if feature_set is not None:
        infos = [i for i in infos if i["feature_set"] == feature_set]
        if not infos:
            known = sorted({i["feature_set"] for i in _run_models(run)})
            raise BlemoreError(f"{run}: no feature set {feature_set!r} in this run; it has {', '.join(known)}")
    if model is not None:
        from blemore.models.heads import canonical_model_name

        name = canonical_model_name(model)
        infos = [i for i in infos if i["model"] == name]
        if not infos:
            raise BlemoreError(f"{run}: no model {name!r} for that feature set in this run")
    info = max(infos, key=lambda i: i["pooled_val_score"])  # first best
    rule = rule or info.get("submission_rule", "pooled")
    if rule not in ("pooled", "paper"):
        raise BlemoreError(f"unknown rule {rule!r}: expected 'pooled' or 'paper'")
    missing = [p for p in info["parts"] if p not in features]
    if missing:
        raise BlemoreError(
            f"the run's model {info['feature_set']} / {info['model']} needs --features for "
            f"{', '.join(missing)} (NAME=PATH)"
        )
    if metadata is not None:
        meta = read_metadata(metadata)
        clips = meta["filename"].tolist()
    else:
        sets = [set(available_clips(features[p])) for p in info["parts"]]
        clips = sorted(set.intersection(*sets))
        if not clips:
            raise BlemoreError(f"no clip has features in all of: {', '.join(str(features[p]) for p in info['parts'])}")
    rows = load_feature_set(
        info["feature_set"], features, clips, representation=info["representation"], window=info["window"],
        progress=progress,
    )
    if rows.dim != info["dim"]:
        raise BlemoreError(
            f"features for {info['feature_set']} have {rows.dim} dims but the run's model expects {info['dim']}; "
            "use the same encoders and representation as the run"
        )
    with np.load(run / "models" / f"{info['_stem']}.npz") as z:
        arr = {k[len(rule) + 1 :]: z[k] for k in z.files if k.startswith(rule + "_")}
    params = HeadParams(**arr)
    probs = forward_probs(params, rows.X, groups=rows.row_clip)
    alpha, beta = info["rules"][rule]["alpha"], info["rules"][rule]["beta"]
    pred = decode_thresholds(probs, alpha, beta)
    out = Path(out) if out is not None else run / "predict"
    out.mkdir(parents=True, exist_ok=True)
    preds = predictions_from_indices(clips, pred)
    pj = write_predictions(preds, out / "predictions.json")
    pz = write_submission_zip(preds, out / "submission.zip")
    table = pd.DataFrame({"filename": clips})
    for j, e in enumerate(EMOTIONS):
        table[e] = probs[:, j]
    table["pred_label"] = [LABEL_NAMES[i] for i in pred]
    pc = out / "probabilities.csv"
    tmpc = out / ".probabilities.csv.tmp"
    table.to_csv(tmpc, index=False)
    tmpc.replace(pc)
    return PredictResult(out, pj, pz, pc, info["feature_set"], info["model"], rule, len(clips))
