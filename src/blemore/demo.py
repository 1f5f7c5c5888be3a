"""The whole system end to end on a generated dataset: :func:`run_demo` (``blemore demo``).

1. generate a BLEMORE-style dataset (cached in ``OUT/data``; see :mod:`blemore.data.synthetic`);
2. extract the offline encoders (openSMILE, MediaPipe Face Mesh) into ``OUT/features`` (resumable);
3. run the benchmark protocol on the voice, the face and their fusion (``OUT/run``), which
   predicts the anonymised held-out partition and writes submission files;
4. score those submissions against the held-out truth (``OUT/data/test_truth.csv``), add the
   test rows to ``OUT/run/results.csv`` and write ``OUT/run/report.html``;
5. return the results table, the face detection rate and the wall time of every stage.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from blemore.errors import BlemoreError

__all__ = ["run_demo", "DemoResult", "face_detection_rate", "score_held_out"]

#: The demo's training settings: fewer epochs and a higher learning rate than the paper
#: (200 epochs at 5e-6), so that it finishes in a few minutes on a laptop.
DEMO_EPOCHS = 60
DEMO_LR = 1e-3
DEMO_MODELS = "linear,mlp256"
DEMO_ENCODERS = ("opensmile", "facemesh")
DEMO_SETS = ("opensmile", "facemesh", "opensmile+facemesh")
#: Methods beyond the baseline that the demo compares (``blemore benchmark --compare``); "" for none.
DEMO_COMPARE = "structured,actor-norm,late-fusion"
DEMO_COMPARE_MODEL = "linear"


@dataclass
class DemoResult:
    """What :func:`run_demo` made and how long each stage took (seconds)."""

    root: Path
    run: Path
    table: str
    detection_rate: float
    test_scores: list[dict]
    stages: dict[str, float] = field(default_factory=dict)
    report: Path | None = None
    compare_table: str | None = None

    @property
    def total_seconds(self) -> float:
        return float(sum(self.stages.values()))


def face_detection_rate(folder: Path) -> tuple[float, int, int]:
    """Share of frames with a face in a folder of face-encoder ``.npy`` files (NaN rows = no face).

    Returns ``(rate, frames with a face, frames)``.
    """
    found = total = 0
    for path in sorted(Path(folder).glob("*.npy")):
        x = np.load(path, mmap_mode="r")
        if x.ndim != 2 or not len(x):
            continue
        ok = ~np.isnan(np.asarray(x)).all(axis=1)
        found += int(ok.sum())
        total += len(ok)
    if total == 0:
        raise BlemoreError(f"{folder}: no face features (.npy) to count detections in")
    return found / total, found, total


def score_held_out(run: Path, truth_csv: Path) -> list[dict]:
    """Score every submission of ``run`` against ``truth_csv``; add the test rows to the run.

    For each ``RUN/submission/<set>__<model>.zip`` this reads the challenge file back
    (:func:`blemore.submission.read_predictions`), scores it strictly
    (:func:`blemore.submission.score_predictions`) and appends a ``results.csv`` row with
    ``fold`` = ``test-pooled`` or ``test`` (the run's submission rule); the trivial baselines
    get their ``test`` rows too. ``results.md`` is rewritten and ``RUN/test_scores.json``
    holds the full score reports. Returns one dict per submission.
    """
    import pandas as pd

    from blemore.protocol.benchmark import RESULT_COLUMNS, markdown_table, trivial_rows
    from blemore.submission import read_predictions, read_truth, score_predictions

    run = Path(run)
    truth = read_truth(truth_csv)
    if not truth:
        raise BlemoreError(f"{truth_csv}: no labelled clips to score against")
    results = pd.read_csv(run / "results.csv", dtype={"fold": str})
    config = json.loads((run / "config.json").read_text())
    from blemore.protocol.benchmark import predict_run

    rule = config.get("config", {}).get("submission_rule", "pooled")
    fold_name = "test-pooled" if rule == "pooled" else "test"
    # The other selection rule's test predictions come from the saved models (`blemore predict`),
    # so the table shows the paper's rule and the pooled rule side by side, both scored blind.
    other = "paper" if rule == "pooled" else "pooled"
    other_fold = "test-pooled" if other == "pooled" else "test"
    features = {k: Path(v) for k, v in config.get("config", {}).get("features", {}).items()}
    test_metadata = config.get("config", {}).get("test_metadata")
    rows, scores, reports = [], [], {}
    order = {fs: k for k, fs in enumerate(config.get("sets", []))}
    zips = sorted((run / "submission").glob("*.zip"), key=lambda p: (order.get(p.stem.split("__")[0], 99), p.stem))
    for zpath in zips:
        stem = zpath.stem
        fs, _, model = stem.partition("__")
        info_path = run / "models" / f"{stem}.json"
        rules: dict = json.loads(info_path.read_text()).get("rules", {}) if info_path.exists() else {}
        candidates = [(rule, fold_name, zpath)]
        if info_path.exists() and features and test_metadata:
            res = predict_run(run, features, out=run / f"predict-{other}" / stem, feature_set=fs, model=model,
                              rule=other, metadata=test_metadata)
            candidates.append((other, other_fold, res.submission))
        for rule_name, fold, path in candidates:
            report = score_predictions(read_predictions(path), truth)
            chosen = rules.get(rule_name, {})
            s = report.scores
            rows.append(
                {
                    "feature_set": fs, "model": model, "method": "baseline", "fold": fold,
                    "epoch": chosen.get("epoch"), "alpha": chosen.get("alpha"), "beta": chosen.get("beta"),
                    "acc_presence": s.acc_presence, "acc_salience": s.acc_salience, "score": s.score,
                    "n_clips": s.n_clips,
                }
            )
            if rule_name != rule:
                continue
            scores.append({"feature_set": fs, "model": model, "acc_presence": s.acc_presence,
                           "acc_salience": s.acc_salience, "score": s.score, "n_clips": s.n_clips,
                           "missing": len(report.missing), "submission": str(path)})
            reports[stem] = report.as_dict(details=True, max_names=20)
    if not rows:
        raise BlemoreError(f"{run}/submission: no submission zip to score; did the run predict the test clips?")
    # Trivial baselines on the held-out clips, counted on all training clips.
    from blemore.data.metadata import read_metadata

    train = read_metadata(Path(config["config"]["train_metadata"]))
    test_idx = np.array([truth[c] for c in sorted(truth)], dtype=np.int64)
    trivial = [
        r for r in trivial_rows(
            train["label_index"].to_numpy(dtype=np.int64), train["fold"].to_numpy(dtype=np.int64),
            sorted(int(f) for f in train["fold"].unique()), test_idx,
        )
        if r["fold"] == "test"
    ]
    for r in trivial:
        scores.append({"feature_set": "-", "model": r["model"], "acc_presence": r["acc_presence"],
                       "acc_salience": r["acc_salience"], "score": r["score"], "n_clips": r["n_clips"],
                       "missing": 0, "submission": ""})
    keep = ~results["fold"].isin([fold_name, other_fold]) | (results["method"] != "baseline")
    keep &= ~((results["fold"] == "test") & results["method"].str.startswith("majority"))
    merged = pd.concat([results[keep], pd.DataFrame(rows + trivial, columns=RESULT_COLUMNS)], ignore_index=True)
    _atomic_text(run / "results.csv", merged.to_csv(index=False, float_format="%.6g"))
    _atomic_text(run / "results.md", markdown_table(merged))
    _atomic_text(run / "test_scores.json", json.dumps({"truth": str(truth_csv), "rule": fold_name,
                                                       "scores": scores, "reports": reports}, indent=1))
    return scores


def _atomic_text(path: Path, text: str) -> None:
    import os

    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _say(message: str, *, quiet: bool) -> None:
    if not quiet:
        print(message, file=sys.stderr, flush=True)


def run_demo(
    out: Path | str = "blemore-demo",
    *,
    actors: int = 12,
    seed: int = 0,
    duration: float = 2.0,
    fps: int = 10,
    size: int = 256,
    noise: float = 1.0,
    epochs: int = DEMO_EPOCHS,
    lr: float = DEMO_LR,
    models: str = DEMO_MODELS,
    workers: int = 2,
    compare: str = DEMO_COMPARE,
    report: bool = True,
    progress: bool = True,
) -> DemoResult:
    """Generate, extract, benchmark, score and report; see the module docstring.

    Examples
    --------
    >>> result = run_demo("blemore-demo", actors=6, epochs=20)  # doctest: +SKIP
    >>> print(result.table)  # doctest: +SKIP
    """
    from blemore.data.synthetic import generate_dataset

    root = Path(out)
    quiet = not progress
    stages: dict[str, float] = {}

    t = time.perf_counter()
    _say(f"[1/5] generating the dataset ({actors} actors) in {root / 'data'}", quiet=quiet)
    ds = generate_dataset(root / "data", actors=actors, seed=seed, duration=duration, fps=fps, size=size,
                          noise=noise, workers=workers, progress=progress)
    stages["generate" + (" (cached)" if ds.reused else "")] = time.perf_counter() - t

    t = time.perf_counter()
    _say(f"[2/5] extracting {', '.join(DEMO_ENCODERS)} features into {root / 'features'}", quiet=quiet)
    from blemore.extraction.local import extract

    features = root / "features"
    failures = []
    for folder, meta in ((ds.train_dir, ds.train_metadata), (ds.test_dir, None)):
        summary = extract(folder, encoders=list(DEMO_ENCODERS), out=features, metadata=meta, progress=progress)
        failures += summary.failures
    if failures:
        f = failures[0]
        raise BlemoreError(
            f"feature extraction failed for {len(failures)} clip(s), e.g. {getattr(f, 'clip', f)}: "
            f"{getattr(f, 'reason', '')}; delete {features} and run the demo again"
        )
    stages["extract"] = time.perf_counter() - t
    rate, _, _ = face_detection_rate(features / "facemesh")

    t = time.perf_counter()
    _say(f"[3/5] benchmark: {', '.join(DEMO_SETS)} x {models}, {epochs} epochs at lr {lr:g}", quiet=quiet)
    from blemore.protocol.benchmark import BenchmarkConfig, run_benchmark

    config = BenchmarkConfig(
        features={name: features / name for name in DEMO_ENCODERS},
        train_metadata=ds.train_metadata,
        test_metadata=ds.test_metadata,
        sets=list(DEMO_SETS),
        models=[models],
        epochs=epochs,
        lr=lr,
        seed=seed,
        out=root / "run",
        progress=progress,
        command=list(sys.argv),
    )
    run = run_benchmark(config)
    stages["benchmark"] = time.perf_counter() - t

    t = time.perf_counter()
    _say(f"[4/5] scoring the held-out predictions against {ds.test_truth}", quiet=quiet)
    scores = score_held_out(run, ds.test_truth)
    stages["score"] = time.perf_counter() - t

    compare_table = None
    if compare:
        t = time.perf_counter()
        _say(f"[4b/5] comparing methods beyond the baseline ({DEMO_COMPARE_MODEL} heads): {compare}", quiet=quiet)
        from dataclasses import replace

        from blemore.protocol.compare import CompareConfig, run_compare

        # Test rows of the comparison are scored against the held-out truth; nothing is selected on it.
        # Linear heads only: nested selection trains 26 models per method, the demo's time budget is 5 min.
        run_compare(CompareConfig.from_benchmark(
            replace(config, out=run, test_metadata=ds.test_truth, models=[DEMO_COMPARE_MODEL]), methods=compare
        ))
        compare_table = (run / "compare.md").read_text()
        stages["compare"] = time.perf_counter() - t

    report_path = None
    if report and importlib.util.find_spec("blemore.report") is not None:
        t = time.perf_counter()
        _say("[5/5] writing the report", quiet=quiet)
        from blemore.report import write_report

        report_path = write_report(run)
        stages["report"] = time.perf_counter() - t
    table = (run / "results.md").read_text()
    return DemoResult(root=root, run=run, table=table, detection_rate=rate, test_scores=scores, stages=stages,
                      report=report_path, compare_table=compare_table)
