"""Figures of single clips: feature projections per emotion pair, accuracy per actor and per pair.

Like :mod:`blemore.report.figures` (whose style, palette and helpers they share), each
function takes plain arrays / tables and returns a :class:`matplotlib.figure.Figure`.
"""

from __future__ import annotations

from itertools import combinations

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from blemore.labels import BLEND_EMOTIONS
from blemore.report.analysis import pca_2d, salience_position
from blemore.report.figures import OKABE_ITO, PRESENCE_COLOUR, SALIENCE_COLOUR, STYLE, new_figure

__all__ = ["pca_figure", "actor_figure", "pair_figure"]


_POSITION_STYLE = (  # first emotion alone -> second alone: a diverging blue-black-orange scale + markers
    ("1st alone", OKABE_ITO[0], "s"),
    ("70/30", OKABE_ITO[4], "o"),
    ("50/50", "#000000", "D"),
    ("30/70", OKABE_ITO[1], "o"),
    ("2nd alone", OKABE_ITO[3], "s"),
)


def pca_figure(X: np.ndarray, label_index: np.ndarray) -> Figure:
    """The paper's projection: per emotion pair, PCA of the clips of both singles and the 3 blends.

    ``X``: (N, D) clip-level features; ``label_index``: (N,) label indices (negative:
    unknown, left out). Each of the 10 panels is its own PCA (features standardised
    within the panel), points coloured by salience configuration.
    """
    pairs = list(combinations(BLEND_EMOTIONS, 2))
    with matplotlib.rc_context(STYLE):
        fig = new_figure(11, 5.2)
        axes = fig.subplots(2, 5)
        for ax, pair in zip(axes.ravel(), pairs):
            pos = np.array(
                [salience_position(int(i), pair) if i >= 0 else None for i in label_index], dtype=object
            )
            sel = np.array([p is not None for p in pos])
            ax.set_title(f"{pair[0]} + {pair[1]}")
            ax.set_xticks([])
            ax.set_yticks([])
            if sel.sum() < 3:
                ax.text(0.5, 0.5, "too few clips", ha="center", va="center", transform=ax.transAxes)
                continue
            Z, ratio = pca_2d(X[sel])
            p = pos[sel].astype(int)
            for k, (_name, colour, marker) in enumerate(_POSITION_STYLE):
                m = p == k
                ax.scatter(
                    Z[m, 0],
                    Z[m, 1],
                    s=9 if marker != "D" else 8,
                    c=colour,
                    marker=marker,
                    alpha=0.75,
                    linewidths=0,
                    rasterized=True,
                )
            ax.set_xlabel(f"PC1 ({ratio[0]:.0%})", fontsize=7.5)
            ax.set_ylabel(f"PC2 ({ratio[1]:.0%})", fontsize=7.5)
        handles = [Line2D([], [], ls="", marker=mk, color=c, label=n, ms=6) for n, c, mk in _POSITION_STYLE]
        fig.legend(
            handles=handles,
            loc="outside lower center",
            ncol=5,
            fontsize=8,
            title="salience of the pair's first / second emotion",
            title_fontsize=8,
        )
    return fig


def _salience_shown(table: pd.DataFrame) -> np.ndarray:
    """Salience accuracy where the group holds blend truths, NaN (not drawn) where it holds none."""
    sal = table["acc_salience"].to_numpy(float).copy()
    sal[table["n_blends"].to_numpy() == 0] = np.nan
    return sal


def actor_figure(table: pd.DataFrame) -> Figure:
    """Presence and salience accuracy per actor (``group`` column), sorted by presence.

    ``table``: :func:`~blemore.report.analysis.group_scores`; an actor without blend truths
    (``n_blends`` 0) has no salience marker.
    """
    table = table.sort_values(["acc_presence", "acc_salience"], ascending=False, na_position="last")
    n = len(table)
    x = np.arange(n)
    salience = _salience_shown(table)
    with matplotlib.rc_context(STYLE):
        fig = new_figure(float(np.clip(0.16 * n + 2.5, 5.5, 10)), 3.4)
        ax = fig.subplots()
        has = np.isfinite(salience)
        ax.vlines(x[has], salience[has], table["acc_presence"].to_numpy(float)[has], color="#cccccc", lw=1)
        ax.plot(x, table["acc_presence"], "o", color=PRESENCE_COLOUR, ms=5, label="presence")
        ax.plot(x, salience, "^", color=SALIENCE_COLOUR, ms=5, label="salience (blends)")
        for values, weights, colour in (
            (table["acc_presence"].to_numpy(float), table["n"].to_numpy(float), PRESENCE_COLOUR),
            (salience, table["n_blends"].to_numpy(float), SALIENCE_COLOUR),
        ):
            ok = np.isfinite(values) & (weights > 0)
            if ok.any():
                ax.axhline(np.average(values[ok], weights=weights[ok]), color=colour, ls="--", lw=0.9)
        ax.set_xticks(x, table["group"], rotation=90, fontsize=7 if n > 30 else 8)
        ax.set_xlim(-0.7, n - 0.3)
        ax.set_ylim(0, 1)
        ax.set_ylabel("accuracy")
        ax.grid(axis="y", color="#eeeeee", lw=0.6)
        ax.legend(loc="upper right", ncol=2, fontsize=8)
    return fig


def pair_figure(table: pd.DataFrame) -> Figure:
    """Presence and salience accuracy per true emotion (singles) and pair (blends), n on top.

    ``table``: :func:`~blemore.report.analysis.group_scores`; a group without blend truths
    (the singles) shows a dash where its salience bar would be.
    """
    n = len(table)
    x = np.arange(n)
    w = 0.4
    salience = _salience_shown(table)
    has = np.isfinite(salience)
    with matplotlib.rc_context(STYLE):
        fig = new_figure(10, 3.4)
        ax = fig.subplots()
        ax.bar(x - w / 2, table["acc_presence"], w, color=PRESENCE_COLOUR, label="presence")
        ax.bar(
            x[has] + w / 2,
            salience[has],
            w,
            color=SALIENCE_COLOUR,
            hatch="///",
            edgecolor="white",
            lw=0,
            label="salience (blends)",
        )
        for i in np.flatnonzero(~has):
            ax.text(i + w / 2, 0.01, "–", ha="center", va="bottom", fontsize=8, color="#555555")
        for i, count in enumerate(table["n"]):
            ax.text(i, 1.01, f"n={count}", ha="center", va="bottom", fontsize=6.5, color="#555555")
        ax.set_xticks(x, table["group"], rotation=45, ha="right")
        ax.set_ylim(0, 1.08)
        ax.set_ylabel("accuracy")
        ax.grid(axis="y", color="#eeeeee", lw=0.6)
        ax.set_axisbelow(True)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    return fig
