"""The report's figures: matplotlib figures rendered to self-contained SVG.

Each ``*_figure`` function takes plain arrays / tables and returns a
:class:`matplotlib.figure.Figure` (no pyplot, no global state);
:func:`svg_data_uri` renders one to a ``data:image/svg+xml`` URI for an
``<img>``. Colours come from the Okabe-Ito palette and the cividis colour map,
both readable with the common colour-vision deficiencies; markers differ too
where colour carries meaning. The figures of the methods part (the choice, held-out
scores, the forest plot) are in :mod:`blemore.report.method_figures`, those of single clips
(projections, accuracy per actor and pair) in :mod:`blemore.report.clip_figures`.

>>> import numpy as np
>>> uri = svg_data_uri(presence_confusion_figure(np.eye(16, 17, dtype=int)))
>>> uri.startswith("data:image/svg+xml;base64,")
True
"""

from __future__ import annotations

import base64
import io
from typing import Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from blemore.labels import VALID_LABELS
from blemore.report.analysis import GROUPED_LABELS, PRESENCE_NAMES

__all__ = [
    "OKABE_ITO",
    "svg_data_uri",
    "scores_figure",
    "label_confusion_figure",
    "presence_confusion_figure",
    "threshold_figure",
    "curves_figure",
    "new_figure",
    "short_label",
    "STYLE",
    "PRESENCE_COLOUR",
    "SALIENCE_COLOUR",
]

#: Okabe-Ito colours (blue, orange, bluish green, vermillion, sky blue, reddish purple, yellow, black).
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#CC79A7", "#F0E442", "#000000")
PRESENCE_COLOUR, SALIENCE_COLOUR = OKABE_ITO[0], OKABE_ITO[1]
CMAP = "cividis"
#: The rc settings of every figure (small type, no top/right spines, text as paths, fixed SVG ids).
STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "svg.fonttype": "path",
    "svg.hashsalt": "blemore-report",
    "figure.dpi": 100,
    "savefig.dpi": 150,
}


def svg_data_uri(fig: Figure) -> str:
    """Render ``fig`` as SVG (text as paths, no external references) in a base64 data URI."""
    buf = io.BytesIO()
    with matplotlib.rc_context(STYLE):
        fig.savefig(buf, format="svg", bbox_inches="tight", pad_inches=0.05, metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def new_figure(width: float, height: float) -> Figure:
    """An empty figure of ``width`` x ``height`` inches in the report's style (constrained layout)."""
    with matplotlib.rc_context(STYLE):
        return Figure(figsize=(width, height), layout="constrained")


def _fold_colour(k: int) -> str:
    return OKABE_ITO[k % len(OKABE_ITO)]


def _edges(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    if len(v) == 1:
        return np.array([v[0] - 0.5, v[0] + 0.5])
    mid = (v[1:] + v[:-1]) / 2
    return np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])


def scores_figure(folds: pd.DataFrame, summary: pd.DataFrame, baselines: pd.DataFrame) -> Figure:
    """Presence, salience and score per feature set x model: folds, mean ± std, test.

    ``folds``: rows with ``combo, fold, acc_presence, acc_salience, score``;
    ``summary``: rows with ``combo`` and ``{presence,salience,score}_{mean,std,test,pooled}``;
    ``baselines``: rows with ``method`` and the same ``*_mean`` columns (dashed lines).
    """
    with matplotlib.rc_context(STYLE):
        combos = list(summary["combo"])
        fig = new_figure(10, 0.9 + 0.32 * max(3, len(combos)))
        axes = fig.subplots(1, 3, sharey=True)
        y = np.arange(len(combos))
        for ax, (metric, name, title) in zip(
            axes,
            (
                ("acc_presence", "presence", "Presence accuracy"),
                ("acc_salience", "salience", "Salience accuracy"),
                ("score", "score", "Score"),
            ),
        ):
            for i, combo in enumerate(combos):
                vals = folds.loc[folds["combo"] == combo, metric].to_numpy(float)
                ax.plot(
                    vals,
                    np.full(len(vals), i) + 0.18,
                    "o",
                    ms=3.5,
                    color="#999999",
                    zorder=2,
                    label="single fold" if i == 0 else None,
                )
            ax.errorbar(
                summary[f"{name}_mean"],
                y,
                xerr=summary[f"{name}_std"],
                fmt="o",
                color="black",
                ms=5,
                capsize=3,
                zorder=3,
                label="fold mean ± std",
            )
            if summary[f"{name}_test"].notna().any():
                ax.plot(
                    summary[f"{name}_test"],
                    y - 0.18,
                    "D",
                    color=OKABE_ITO[3],
                    ms=5,
                    zorder=4,
                    label="test (paper rule)",
                )
            if summary[f"{name}_pooled"].notna().any():
                ax.plot(
                    summary[f"{name}_pooled"],
                    y - 0.18,
                    "s",
                    mfc="none",
                    color=OKABE_ITO[0],
                    ms=6,
                    zorder=4,
                    label="test (pooled thresholds)",
                )
            for j, b in enumerate(baselines.itertuples()):
                value = getattr(b, f"{name}_mean")
                if np.isfinite(value):
                    ax.axvline(value, color="#555555", ls=(0, (4, 2 + 2 * j)), lw=1, label=b.method)
            ax.set_title(title)
            ax.set_xlim(0, 1)
            ax.grid(axis="x", color="#e5e5e5", lw=0.6)
            ax.set_axisbelow(True)
        axes[0].set_yticks(y, combos)
        axes[0].invert_yaxis()
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=min(6, len(labels)), fontsize=8)
    return fig


def _confusion_axes(
    ax,
    share: np.ndarray,
    counts: np.ndarray,
    rows: Sequence[str],
    cols: Sequence[str],
    *,
    annotate: bool,
    fontsize: float,
) -> object:
    mesh = ax.pcolormesh(share, cmap=CMAP, vmin=0, vmax=1, edgecolors="white", linewidth=0.3, rasterized=True)
    ax.set_xlim(0, share.shape[1])
    ax.set_ylim(share.shape[0], 0)
    ax.set_xticks(np.arange(len(cols)) + 0.5, cols, rotation=90, fontsize=fontsize)
    ax.set_yticks(np.arange(len(rows)) + 0.5, rows, fontsize=fontsize)
    ax.tick_params(length=0)
    for side in ("left", "bottom"):
        ax.spines[side].set_visible(False)
    if annotate:
        for (r, c), n in np.ndenumerate(counts):
            if n:
                ax.text(
                    c + 0.5,
                    r + 0.5,
                    str(n),
                    ha="center",
                    va="center",
                    fontsize=fontsize - 0.5,
                    color="black" if share[r, c] > 0.55 else "white",
                )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    return mesh


def _row_share(counts: np.ndarray) -> np.ndarray:
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros(counts.shape, dtype=float), where=totals > 0)


def short_label(index: int) -> str:
    """A compact label name for axes: ``hap``, ``ang70·hap30``."""
    label = VALID_LABELS[index]
    if not label.is_blend:
        return label.name
    (e1, s1), (e2, s2) = label.parts
    return f"{e1}{s1}·{e2}{s2}"


def label_confusion_figure(counts: np.ndarray) -> Figure:
    """36 x 37 confusion matrix (rows: true label, columns: predicted, last "other"), row-normalised.

    Labels are grouped by pair (:data:`~blemore.report.analysis.GROUPED_LABELS`);
    thin lines separate the groups.
    """
    order = list(GROUPED_LABELS)
    counts = np.asarray(counts)[order][:, order + [counts.shape[1] - 1]]
    share = _row_share(counts)
    names = [short_label(i) for i in order]
    with matplotlib.rc_context(STYLE):
        fig = new_figure(9.5, 9)
        ax = fig.subplots()
        mesh = _confusion_axes(ax, share, counts, names, names + ["other"], annotate=False, fontsize=6.5)
        bounds = [6] + [6 + 3 * k for k in range(1, 10)]
        for b in bounds:
            ax.axhline(b, color="#d9d9d9", lw=0.8)
            ax.axvline(b, color="#d9d9d9", lw=0.8)
        ax.axvline(36, color="#d9d9d9", lw=0.8)
        for r in range(36):
            if counts[r].sum():
                ax.add_patch(Rectangle((r, r), 1, 1, fill=False, ec=OKABE_ITO[3], lw=0.6))
        fig.colorbar(mesh, ax=ax, shrink=0.6, label="share of the true label's clips")
    return fig


def presence_confusion_figure(counts: np.ndarray) -> Figure:
    """16 x 17 presence-level confusion (sets of emotions; last column: no valid label), counts shown."""
    counts = np.asarray(counts)
    share = _row_share(counts)
    with matplotlib.rc_context(STYLE):
        fig = new_figure(7.5, 6.5)
        ax = fig.subplots()
        mesh = _confusion_axes(
            ax, share, counts, PRESENCE_NAMES, list(PRESENCE_NAMES) + ["other"], annotate=True, fontsize=7.5
        )
        ax.axhline(6, color="#d9d9d9", lw=1)
        ax.axvline(6, color="#d9d9d9", lw=1)
        fig.colorbar(mesh, ax=ax, shrink=0.6, label="share of the true set's clips")
    return fig


def threshold_figure(
    alphas: np.ndarray,
    betas: np.ndarray,
    presence: np.ndarray,
    salience: np.ndarray,
    *,
    fold: int,
    fold_names: Sequence[str],
    chosen: np.ndarray | None,
    presence_weight: float = 0.5,
) -> Figure:
    """alpha x beta surfaces: presence and salience of ``fold``, and the mean score over folds.

    ``presence``/``salience``: (folds, A, B); ``chosen``: (folds, 2) alpha/beta per
    fold or None. The third panel marks every fold's choice (threshold stability);
    folds that chose the same cell are drawn on a small ring around it.
    """
    xe, ye = _edges(betas), _edges(alphas)
    score = presence_weight * presence + (1 - presence_weight) * salience
    with matplotlib.rc_context(STYLE):
        fig = new_figure(10.5, 3.6)
        axes = fig.subplots(1, 3)
        panels = (
            (presence[fold], f"Presence, fold {fold_names[fold]}"),
            (salience[fold], f"Salience, fold {fold_names[fold]}"),
            (score.mean(axis=0), f"Score, mean over {len(score)} folds"),
        )
        for i, (ax, (surface, title)) in enumerate(zip(axes, panels)):
            mesh = ax.pcolormesh(xe, ye, surface, cmap=CMAP, shading="flat", rasterized=True)
            fig.colorbar(mesh, ax=ax, shrink=0.85, pad=0.02)
            ax.set_title(title)
            ax.set_xlabel("β (salience threshold)")
            ax.set_ylabel("α (presence threshold)" if i == 0 else "")
            ax.set_aspect("equal")
            if chosen is None:
                continue
            if i < 2:
                ax.plot(chosen[fold, 1], chosen[fold, 0], "X", ms=9, mfc=OKABE_ITO[3], mec="white", mew=1)
            else:
                for k, (a, b) in enumerate(_spread(chosen, np.diff(ye).min(), np.diff(xe).min())):
                    ax.plot(
                        b,
                        a,
                        "o",
                        ms=7,
                        mfc=_fold_colour(k),
                        mec="white",
                        mew=0.8,
                        label=f"fold {fold_names[k]}",
                    )
        if chosen is not None:
            fig.legend(
                *axes[2].get_legend_handles_labels(),
                loc="outside lower center",
                ncol=len(chosen),
                fontsize=8,
                title="chosen (α, β) per fold",
                title_fontsize=8,
            )
    return fig


def _spread(points: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """Move points that coincide onto a small ring around their place, so that each stays visible."""
    points = np.asarray(points, dtype=float).copy()
    keys = [tuple(np.round(p, 9)) for p in points]
    for key in dict.fromkeys(keys):
        same = [i for i, k in enumerate(keys) if k == key]
        if len(same) < 2:
            continue
        angles = 2 * np.pi * np.arange(len(same)) / len(same) + np.pi / 2
        points[same, 0] += 0.38 * dy * np.sin(angles)
        points[same, 1] += 0.38 * dx * np.cos(angles)
    return points


def curves_figure(curves: pd.DataFrame, selected: dict[str, float]) -> Figure:
    """Per-epoch validation curves per fold: loss (train dashed), presence, salience.

    ``curves``: rows ``fold, epoch`` and any of ``train_loss, val_loss,
    acc_presence, acc_salience``; ``selected``: fold -> chosen epoch (dotted line).
    """
    panels = [
        ("loss", ["val_loss", "train_loss"]),
        ("Presence accuracy", ["acc_presence"]),
        ("Salience accuracy", ["acc_salience"]),
    ]
    panels = [(t, [c for c in cols if c in curves.columns]) for t, cols in panels]
    panels = [(t, cols) for t, cols in panels if cols]
    folds = list(dict.fromkeys(curves["fold"]))
    with matplotlib.rc_context(STYLE):
        fig = new_figure(10.5, 3.3)
        axes = np.atleast_1d(fig.subplots(1, len(panels)))
        for ax, (title, cols) in zip(axes, panels):
            for k, fold in enumerate(folds):
                part = curves[curves["fold"] == fold].sort_values("epoch")
                # A non-numeric "fold" (e.g. "pooled": all out-of-fold predictions together) is drawn black.
                numeric = str(fold).isdigit()
                colour = _fold_colour(k) if numeric else "#000000"
                for col in cols:
                    ax.plot(
                        part["epoch"],
                        part[col],
                        color=colour,
                        lw=1.3 if numeric else 2.0,
                        ls="--" if col == "train_loss" else "-",
                        marker="." if col != "train_loss" else None,
                        ms=3,
                        label=(f"fold {fold}" if numeric else str(fold)) if col == cols[0] else None,
                    )
                if fold in selected and np.isfinite(selected[fold]):
                    ax.axvline(selected[fold], color=colour, ls=":", lw=1)
            ax.set_title("Loss (solid: validation, dashed: training)" if title == "loss" else title)
            ax.set_xlabel("epoch")
            ax.grid(color="#eeeeee", lw=0.6)
        fig.legend(
            *axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=len(folds), fontsize=8
        )
    return fig
