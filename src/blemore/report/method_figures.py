"""Figures of the methods part of the report: the choice, its label distribution, held-out scores.

Like :mod:`blemore.report.figures` (whose style, palette and helpers they share), each
function takes plain arrays / tables and returns a :class:`matplotlib.figure.Figure`.

>>> import numpy as np
>>> from blemore.report.figures import svg_data_uri
>>> fig = label_distribution_figure([("training", np.arange(36)), ("test", np.zeros(5, dtype=int))])
>>> svg_data_uri(fig).startswith("data:image/svg+xml;base64,")
True
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from blemore.report.analysis import GROUPED_LABELS, LABEL_KINDS, PRESENCE_NAMES, label_shares
from blemore.report.figures import OKABE_ITO, STYLE, new_figure, short_label

__all__ = ["label_distribution_figure", "heldout_figure", "forest_figure", "SERIES_COLOURS"]

#: Colours of the series of :func:`label_distribution_figure`: training grey, then the palette.
SERIES_COLOURS = ("#8c8c8c", OKABE_ITO[0], OKABE_ITO[1], OKABE_ITO[2])

Key = tuple[str, str, str]


def _grouped_bars(
    ax,
    shares: Sequence[np.ndarray],
    names: Sequence[str],
    labels: Sequence[str],
    *,
    fontsize: float,
    rotation: float,
) -> None:
    k = len(shares)
    width = 0.82 / k
    x = np.arange(len(names))
    for j, (share, label) in enumerate(zip(shares, labels)):
        ax.bar(
            x + (j - (k - 1) / 2) * width,
            100 * share,
            width,
            color=SERIES_COLOURS[j % len(SERIES_COLOURS)],
            label=label,
            hatch="///" if j == 2 else None,
            edgecolor="white",
            lw=0,
        )
    ax.set_xticks(
        x, names, rotation=rotation, fontsize=fontsize, ha="right" if rotation not in (0, 90) else "center"
    )
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.set_ylabel("share of clips (%)")
    ax.grid(axis="y", color="#eeeeee", lw=0.6)
    ax.set_axisbelow(True)


def label_distribution_figure(series: Sequence[tuple[str, np.ndarray]]) -> Figure:
    """Share of each kind of label, emotion set and label, for several sets of labels side by side.

    ``series``: ``(legend text, label indices)``, e.g. the training clips' true labels and
    the chosen method's test predictions (negative indices are left out). Panels: singles
    vs 50/50 vs 70/30 blends; the 16 emotion sets; the 36 labels grouped by pair.
    """
    names = [name for name, _ in series]
    with matplotlib.rc_context(STYLE):
        fig = new_figure(10.5, 6.4)
        grid = fig.add_gridspec(2, 2, width_ratios=[1, 3.4], height_ratios=[1, 1.1])
        kind_ax, set_ax, label_ax = (
            fig.add_subplot(grid[0, 0]),
            fig.add_subplot(grid[0, 1]),
            fig.add_subplot(grid[1, :]),
        )
        _grouped_bars(
            kind_ax,
            [label_shares(v, by="kind") for _, v in series],
            LABEL_KINDS,
            names,
            fontsize=8,
            rotation=30,
        )
        kind_ax.set_title("Singles and blends")
        _grouped_bars(
            set_ax,
            [label_shares(v, by="set") for _, v in series],
            PRESENCE_NAMES,
            names,
            fontsize=7.5,
            rotation=45,
        )
        set_ax.axvline(5.5, color="#d9d9d9", lw=1)
        set_ax.set_title("Emotion sets (presence)")
        order = list(GROUPED_LABELS)
        _grouped_bars(
            label_ax,
            [label_shares(v, by="label")[order] for _, v in series],
            [short_label(i) for i in order],
            names,
            fontsize=6.5,
            rotation=90,
        )
        for b in [6 + 3 * k for k in range(10)]:
            label_ax.axvline(b - 0.5, color="#d9d9d9", lw=0.8)
        label_ax.set_title("The 36 labels (singles, then each pair's 70/30, 50/50, 30/70)")
        fig.legend(*kind_ax.get_legend_handles_labels(), loc="outside lower center", ncol=1, fontsize=8)
    return fig


def heldout_figure(table: pd.DataFrame, *, references: Mapping[str, float] | None = None) -> Figure:
    """Validation score against held-out score, one point per configuration.

    ``table``: columns ``label, method, validation, test`` (scores in 0..1) and ``role``
    (``"chosen"``, ``"baseline"`` for the best baseline, else empty); ``references``: name ->
    held-out score of the constant baselines (dotted lines).
    """
    references = dict(references or {})
    methods = list(dict.fromkeys(table["method"]))
    values = np.concatenate(
        [
            table["validation"].to_numpy(float),
            table["test"].to_numpy(float),
            np.fromiter(references.values(), float),
        ]
    )
    values = values[np.isfinite(values)]
    lo, hi = (100 * values.min() - 3, 100 * values.max() + 3) if values.size else (0, 100)
    with matplotlib.rc_context(STYLE):
        fig = new_figure(6.4, 4.6)
        ax = fig.subplots()
        ax.plot([lo, hi], [lo, hi], ls="--", color="#bbbbbb", lw=0.9, label="held-out = validation")
        for name, score in references.items():
            ax.axhline(100 * score, ls=":", lw=0.9, color="#777777")
            ax.text(lo, 100 * score, f" {name}", va="bottom", fontsize=7, color="#555555")
        for method in methods:
            part = table[table["method"] == method]
            colour = OKABE_ITO[methods.index(method) % len(OKABE_ITO)]
            ax.plot(
                100 * part["validation"],
                100 * part["test"],
                "o",
                ms=5,
                color=colour,
                mec="white",
                mew=0.6,
                label=method,
                alpha=0.9,
            )
        for role, marker, text in (("chosen", "*", "chosen"), ("baseline", "s", "best baseline")):
            part = table[table["role"] == role]
            for r in part.itertuples():
                ax.plot(
                    100 * r.validation,
                    100 * r.test,
                    marker,
                    ms=13 if marker == "*" else 9,
                    mfc="none",
                    mec="black",
                    mew=1.2,
                )
                right = 100 * r.validation > lo + 0.7 * (hi - lo)  # near the right edge: the name goes left
                ax.annotate(
                    f"{text}: {r.label}",
                    (100 * r.validation, 100 * r.test),
                    xytext=(-8 if right else 8, 4),
                    textcoords="offset points",
                    fontsize=7,
                    ha="right" if right else "left",
                    va="bottom",
                )
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xlabel("validation score in % (the rule that chose)")
        ax.set_ylabel("held-out test score in %")
        ax.grid(color="#eeeeee", lw=0.6)
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7.5, borderaxespad=0)
    return fig


def forest_figure(table: pd.DataFrame, *, chosen: Key | None = None, baseline: Key | None = None) -> Figure:
    """Score with its bootstrap interval per row of ``compare.csv`` (method, feature set, model, ...).

    The row of ``chosen`` (method, feature set, model) gets a star, that of ``baseline`` a
    square, and both a bold name.
    """
    label_columns = [
        c
        for c in ("method", "feature_set", "model", "split", "selection")
        if c in table.columns and (c in ("method", "feature_set", "model") or table[c].nunique() > 1)
    ]
    names = [
        " / ".join(str(x) for x in (getattr(r, c) for c in label_columns) if isinstance(x, str) and x)
        for r in table.itertuples()
    ]
    keys = list(zip(table["method"], table["feature_set"], table["model"]))
    methods = list(dict.fromkeys(table["method"]))
    y = np.arange(len(table))
    with matplotlib.rc_context(STYLE):
        fig = new_figure(8, 0.8 + 0.28 * len(table))
        ax = fig.subplots()
        for i, r in enumerate(table.itertuples()):
            colour = OKABE_ITO[methods.index(r.method) % len(OKABE_ITO)]
            ax.plot([100 * r.ci_low, 100 * r.ci_high], [i, i], color=colour, lw=2, solid_capstyle="butt")
            marker = "*" if keys[i] == chosen else "s" if keys[i] == baseline else "o"
            ax.plot(
                100 * r.score,
                i,
                marker,
                color=colour,
                ms=11 if marker == "*" else 6,
                mec="black" if marker != "o" else "white",
                mew=0.8,
            )
        ax.set_yticks(y, names, fontsize=8)
        for tick, key in zip(ax.get_yticklabels(), keys):
            if key in (chosen, baseline):
                tick.set_fontweight("bold")
        ax.invert_yaxis()
        ax.set_xlabel("score in % (line: bootstrap interval over actors)")
        ax.grid(axis="x", color="#eeeeee", lw=0.6)
    return fig
