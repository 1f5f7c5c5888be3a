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
#: Methods the demo runs beside the baseline (``blemore benchmark --methods``).
DEMO_METHODS = "baseline,structured,actor-norm,late-fusion,ensemble"


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
    best: dict = field(default_factory=dict)

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


def _baseline_order(results) -> list:
    """Baseline configurations in the order the held-out rows are written: feature-set order, then head name."""
    order = {fs: k for k, fs in enumerate(results["sets"])}
    confs = [(fs, m) for fs in results["sets"] for m in results["models"]]
    return sorted(confs, key=lambda c: (order.get(c[0], 99), f"{c[0]}__{c[1]}"))


def score_held_out(run: Path, truth_csv: Path) -> list[dict]:
    """Score every submission of ``run`` against ``truth_csv``; add the baseline's test rows to the run.

    Every ``RUN/submission/<method>__<set>__<model>.zip`` is read back as the challenge would
    (:func:`blemore.submission.read_predictions`) and scored strictly
    (:func:`blemore.submission.score_predictions`). The baseline's zips give ``results.csv``
    its ``test-pooled`` (pooled rule) and ``test`` (the paper's rule, ``.paper.zip``) rows; the
    trivial baselines get their ``test`` rows too; ``results.md`` is rewritten and
    ``RUN/test_scores.json`` holds every method's score. Returns one dict per method zip, in
    the order of the methods table.
    """
    import pandas as pd

    from blemore.data.metadata import read_metadata
    from blemore.protocol.results import RESULT_COLUMNS, markdown_table, trivial_rows
    from blemore.protocol.runfolder import RunFolder
    from blemore.submission import read_predictions, read_truth, score_predictions

    folder = RunFolder.open(Path(run))
    truth = read_truth(truth_csv)
    config = folder.read_json("config.json")
    results = pd.read_csv(folder.root / "results.csv", dtype={"fold": str})
    rows, scores, reports = [], [], {}
    for fs, model in _baseline_order(config):
        stem = f"baseline__{fs}__{model}"
        rules = folder.read_json(f"models/{stem}/model.json")["rules"]
        for rule, fold, name in (("pooled", "test-pooled", f"{stem}.zip"), ("paper", "test", f"{stem}.paper.zip")):
            s = score_predictions(read_predictions(folder.root / "submission" / name), truth).scores
            r = rules[rule]
            rows.append({"feature_set": fs, "model": model, "method": "baseline", "fold": fold, "epoch": r["epoch"],
                         "alpha": r["params"][0], "beta": r["params"][1], "acc_presence": s.acc_presence,
                         "acc_salience": s.acc_salience, "score": s.score, "n_clips": s.n_clips})
    for zpath in _method_zips(folder):
        report = score_predictions(read_predictions(zpath), truth)
        method, fs, model = _zip_configuration(folder, zpath.stem)
        s = report.scores
        scores.append({"method": method, "feature_set": fs, "model": model, "acc_presence": s.acc_presence,
                       "acc_salience": s.acc_salience, "score": s.score, "n_clips": s.n_clips,
                       "missing": len(report.missing), "submission": str(zpath)})
        reports[zpath.stem] = report.as_dict(details=True, max_names=20)
    if not scores:
        raise BlemoreError(f"{run}/submission: no submission zip to score; did the run predict the test clips?")
    train = read_metadata(Path(config["config"]["train_metadata"]))
    test_idx = np.array([truth[c] for c in sorted(truth)], dtype=np.int64)
    trivial = [r for r in trivial_rows(train["label_index"].to_numpy(dtype=np.int64),
                                       train["fold"].to_numpy(dtype=np.int64),
                                       sorted(int(f) for f in train["fold"].unique()), test_idx) if r["fold"] == "test"]
    for r in trivial:
        scores.append({"method": r["model"], "feature_set": "-", "model": "-", "acc_presence": r["acc_presence"],
                       "acc_salience": r["acc_salience"], "score": r["score"], "n_clips": r["n_clips"],
                       "missing": 0, "submission": ""})
    keep = ~results["fold"].isin(["test", "test-pooled"])
    merged = pd.concat([results[keep], pd.DataFrame(rows + trivial, columns=RESULT_COLUMNS)], ignore_index=True)
    folder.add("results.csv", lambda p: _write_csv(p, merged))
    folder.add("results.md", lambda p: _write_text(p, markdown_table(merged)))
    folder.add("test_scores.json", lambda p: _write_text(p, json.dumps(
        {"truth": str(truth_csv), "scores": scores, "reports": reports}, indent=1)))
    return scores


def _method_zips(folder) -> list[Path]:
    """The pooled-rule zips of every deployed configuration, in the order of the run's configurations."""
    best = folder.read_json("best.json")
    stems = [c for c in (best.get("candidates") or [])]
    from blemore.protocol.methods import Configuration

    ordered = [Configuration(c["method"], c["feature_set"], c["model"], ()).stem for c in stems]
    return [folder.root / "submission" / f"{s}.zip" for s in ordered if (folder.root / "submission" / f"{s}.zip").exists()]


def _zip_configuration(folder, stem: str) -> tuple[str, str, str]:
    info = folder.read_json(f"models/{stem}/model.json")
    return info["method"], info["feature_set"], info["model"]


def _write_csv(path: Path, frame) -> None:
    from blemore.io import write_csv

    write_csv(path, frame, index=False, float_format="%.6g")


def _write_text(path: Path, text: str) -> None:
    from blemore.io import write_text

    write_text(path, text)


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
    methods: str = DEMO_METHODS,
    report: bool = True,
    progress: bool = True,
) -> DemoResult:
    """Generate, extract, benchmark every method, score the held-out submissions and report; see the module docstring.

    Examples
    --------
    >>> result = run_demo("blemore-demo", actors=6, epochs=20)  # doctest: +SKIP
    >>> print(result.table)  # doctest: +SKIP
    """
    root = Path(out)
    quiet = not progress
    stages: dict[str, float] = {}
    ds = _stage(stages, "generate", quiet, f"[1/5] generating the dataset ({actors} actors) in {root / 'data'}",
                lambda: _generate(root, actors=actors, seed=seed, duration=duration, fps=fps, size=size, noise=noise,
                                  workers=workers, progress=progress))
    if ds.reused:
        stages["generate (cached)"] = stages.pop("generate")
    features = _stage(stages, "extract", quiet, f"[2/5] extracting {', '.join(DEMO_ENCODERS)} features into "
                      f"{root / 'features'}", lambda: _extract(root, ds, progress=progress))
    rate, _, _ = face_detection_rate(features / "facemesh")
    run = _stage(stages, "benchmark", quiet,
                 f"[3/5] benchmark: {', '.join(DEMO_SETS)} x {models}, methods {methods}, {epochs} epochs at lr {lr:g}",
                 lambda: _benchmark(root, ds, features, models=models, methods=methods, epochs=epochs, lr=lr,
                                    seed=seed, progress=progress))
    scores = _stage(stages, "score", quiet, f"[4/5] scoring every held-out submission against {ds.test_truth}",
                    lambda: score_held_out(run, ds.test_truth))
    report_path = None
    if report:
        from blemore.report import write_report

        report_path = _stage(stages, "report", quiet, "[5/5] writing the report", lambda: write_report(run))
    compare = run / "compare.md"
    return DemoResult(root=root, run=run, table=(run / "results.md").read_text(), detection_rate=rate,
                      test_scores=scores, stages=stages, report=report_path,
                      compare_table=compare.read_text() if compare.exists() else None,
                      best=json.loads((run / "best.json").read_text()))


def _stage(stages: dict[str, float], name: str, quiet: bool, message: str, work):
    _say(message, quiet=quiet)
    started = time.perf_counter()
    result = work()
    stages[name] = time.perf_counter() - started
    return result


def _generate(root: Path, **options):
    from blemore.data.synthetic import generate_dataset

    return generate_dataset(root / "data", **options)


def _extract(root: Path, ds, *, progress: bool) -> Path:
    from blemore.extraction.local import extract

    features = root / "features"
    failures = []
    for folder, meta in ((ds.train_dir, ds.train_metadata), (ds.test_dir, None)):
        failures += extract(folder, encoders=list(DEMO_ENCODERS), out=features, metadata=meta,
                            progress=progress).failures
    if failures:
        f = failures[0]
        raise BlemoreError(
            f"feature extraction failed for {len(failures)} clip(s), e.g. {getattr(f, 'clip', f)}: "
            f"{getattr(f, 'reason', '')}; delete {features} and run the demo again"
        )
    return features


def _benchmark(root: Path, ds, features: Path, *, models: str, methods: str, epochs: int, lr: float, seed: int,
               progress: bool) -> Path:
    from blemore.protocol.config import RunConfig
    from blemore.protocol.run import run_benchmark

    config = RunConfig(
        features={name: features / name for name in DEMO_ENCODERS}, train_metadata=ds.train_metadata,
        test_metadata=ds.test_metadata, sets=list(DEMO_SETS), models=[models], methods=[methods or "baseline"],
        epochs=epochs, lr=lr, seed=seed, out=root / "run", overwrite=True, progress=progress, command=list(sys.argv),
    )
    return run_benchmark(config)

