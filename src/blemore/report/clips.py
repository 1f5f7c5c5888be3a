"""The clips in detail: feature projections per emotion pair and accuracy per actor and per pair.

Sections (each ``Context -> Section``) read ``clip_features/`` and the out-of-fold validation
predictions of the combination in focus (see :func:`blemore.report.baseline.focus_predictions`).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd

from blemore.errors import BlemoreError
from blemore.labels import IS_BLEND, LABEL_INDEX, LABEL_NAMES, OTHER, parse_clip_name
from blemore.report import clip_figures
from blemore.report.analysis import UNKNOWN, group_scores, label_indices, pair_of
from blemore.report.baseline import focus_predictions
from blemore.report.layout import DASH, Context, Section, esc, note, pct, table
from blemore.report.rundata import load_clip_features

__all__ = ["projection_section", "breakdown_section"]


def projection_section(ctx: Context) -> Section:
    sec = Section("projection", "Feature projections per emotion pair")
    if not ctx.data.clip_features:
        sec.note = (
            "No clip-level features (clip_features/&lt;feature_set&gt;.npz), so the projections are left out."
        )
        return sec
    order = sorted(ctx.data.clip_features, key=lambda f: (ctx.focus is None or f != ctx.focus[0], f))
    body, notes = [], []
    for fs in order:
        path = ctx.data.clip_features[fs]
        try:
            npz = load_clip_features(path)
        except BlemoreError as exc:
            notes.append(esc(str(exc)))
            continue
        labels = npz.get("labels")
        if labels is not None and labels.dtype.kind in "iu":
            idx = np.where((labels >= 0) & (labels < len(LABEL_NAMES)), labels, UNKNOWN).astype(np.int64)
        elif labels is not None:
            idx = label_indices([str(x) for x in labels])
        else:
            idx = _labels_from_names(npz["filenames"])
        idx = np.where(idx == OTHER, UNKNOWN, idx)
        n = int((idx >= 0).sum())
        if n == 0:
            notes.append(f"{esc(path.name)}: no clip with a known label.")
            continue
        fig = clip_figures.pca_figure(np.asarray(npz["X"], dtype=np.float64), idx)
        body.append(
            ctx.figs.html(
                fig,
                alt=f"PCA projections of {fs} features",
                css="wide",
                caption=(
                    f"<b>{esc(fs)}</b> ({npz['X'].shape[1]} dimensions, {n} labelled clips): "
                    "for each emotion "
                    f"pair, the first two principal components of the clips of its two single emotions and "
                    f"its three blends (each panel its own PCA of standardised features). Blue: first "
                    f"emotion (in the panel title) alone; orange/vermillion: second alone; blends in "
                    f"between. Blends that sit between the singles, ordered by salience, are what a model "
                    f"can learn."
                ),
            )
        )
    if notes:
        body.append(note("Left out: " + " ".join(notes)))
    sec.body = "".join(body)
    if not body:
        sec.note = "No usable clip-level features."
    return sec


def _labels_from_names(names: Iterable[str]) -> np.ndarray:
    out = []
    for name in names:
        try:
            label = parse_clip_name(str(name)).label
        except BlemoreError:
            label = None
        out.append(UNKNOWN if label is None else LABEL_INDEX[label.name])
    return np.array(out, dtype=np.int64)


def breakdown_section(ctx: Context) -> Section:
    sec = Section("breakdown", "Accuracy per actor and per emotion pair")
    got = focus_predictions(ctx, sec)
    if got is None:
        return sec
    truth, pred, frame = got
    body = []
    actors = frame["actor"] if "actor" in frame.columns else pd.Series([""] * len(frame))
    if (actors == "").any():

        def actor_of(name: str) -> str:
            try:
                return parse_clip_name(name).actor or ""
            except BlemoreError:
                return ""

        actors = pd.Series([a or actor_of(f) for a, f in zip(actors, frame["filename"])])
    if (actors != "").any():
        known = (actors != "").to_numpy()
        per_actor = group_scores(truth[known], pred[known], actors[known].tolist())
        spread = per_actor["acc_presence"]
        body.append(
            ctx.figs.html(
                clip_figures.actor_figure(per_actor),
                alt="accuracy per actor",
                css="wide" if len(per_actor) > 30 else "",
                caption=(
                    f"Out-of-fold validation accuracy per actor ({len(per_actor)} actors), sorted by "
                    f"presence accuracy; dashed lines: overall. Presence ranges from {pct(spread.min())}% "
                    f"to {pct(spread.max())}% — the spread between actors (their acting style) bounds what "
                    f"the model can do."
                ),
            )
        )
    else:
        body.append(note("No actor column and no actor in the clip names: the per-actor figure is left out."))
    groups = [pair_of(int(t)) for t in truth]
    per_pair = group_scores(truth, pred, groups)
    order = {name: i for i, name in enumerate(dict.fromkeys(pair_of(i) for i in range(len(LABEL_NAMES))))}
    per_pair = per_pair.sort_values("group", key=lambda s: s.map(order)).reset_index(drop=True)
    body.append(
        ctx.figs.html(
            clip_figures.pair_figure(per_pair),
            alt="accuracy per emotion and pair",
            css="wide",
            caption=(
                f"Accuracy per true single emotion and per blended pair (all three salience configurations); "
                f"salience accuracy applies to blends only. Blends: {int(IS_BLEND[truth].sum())} of "
                f"{len(truth)} clips."
            ),
        )
    )
    body.append(_group_table(per_pair, "true emotion / pair"))
    sec.body = "".join(body)
    return sec


def _group_table(scores: pd.DataFrame, name: str) -> str:
    """Per-group accuracies in %; salience is a dash where the group holds no blend (n_blends == 0)."""
    rows = [
        [
            esc(r["group"]),
            str(r["n"]),
            str(r["n_blends"]),
            pct(r["acc_presence"]),
            pct(r["acc_salience"]) if r["n_blends"] > 0 else DASH,
        ]
        for _, r in scores.iterrows()
    ]
    return table(
        [name, "clips", "blends", "presence", "salience"],
        rows,
        caption="Accuracy in % per group; salience is scored on blend clips only, so a group without "
        f"blends has none ({DASH}).",
    )
