"""Pseudo-actors of anonymised test clips: the section of the report that reads ``actors.json``.

Test clips without an actor id get pseudo-actors (clusters of their features) where a method
works per actor; how well that procedure finds actors is measured on the training folds,
whose actors are known, by the adjusted Rand index (ARI). A fold of one actor agrees with any
single cluster by construction (ARI 1.0): :func:`actors_section` flags such folds and gives the
mean over the others.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from blemore.report.layout import DASH, Context, Section, esc, note, num, table
from blemore.report.rundata import RunData

__all__ = ["actors_section"]


def _folds(info: dict) -> list[dict]:
    return [f for f in info.get("training_folds", []) if isinstance(f, dict)]


def _fold_ari(info: dict) -> tuple[float, list[str], int]:
    """Mean ARI over the folds with several actors, the folds with one actor, and how many folds."""
    folds = _folds(info)
    single = [str(f.get("fold", i)) for i, f in enumerate(folds) if f.get("actors") == 1]
    real = [float(f["ari"]) for f in folds if f.get("actors") != 1 and isinstance(f.get("ari"), (int, float))]
    return (float(np.mean(real)) if real else float("nan")), single, len(folds)


def _actor_rows(data: RunData, used: set[str]) -> tuple[list[list[str]], list[str]]:
    rows, flags = [], []
    for fs, info in data.actors.items():
        test = info.get("test_actors") if isinstance(info.get("test_actors"), dict) else {}
        sizes = pd.Series(list(test.values()), dtype=object).value_counts()
        mean_real, single, n = _fold_ari(info)
        if single:
            which = "every training fold" if len(single) == n else f"fold(s) {', '.join(single)}"
            flags.append(
                f"{esc(fs)}: {which} hold(s) one actor, where the ARI is 1.0 by construction (one cluster "
                "is one actor) and says nothing about the procedure"
                + (
                    "; no fold measured it."
                    if len(single) == n
                    else f"; over the other folds it is {num(mean_real)}."
                )
            )
        rows.append(
            [
                esc(fs),
                esc(info.get("k", DASH)),
                esc(info.get("k_rule", DASH)),
                f"{sizes.min()}–{sizes.max()}" if len(sizes) else DASH,
                num(info.get("mean_ari_on_training_folds")),
                num(mean_real),
                f"{len(single)} of {n}",
                "yes" if fs in used else "",
            ]
        )
    return rows, flags


def _actor_fold_table(data: RunData) -> str:
    sets = list(data.actors)
    folds = {}
    for fs in sets:
        for i, f in enumerate(_folds(data.actors[fs])):
            folds.setdefault(str(f.get("fold", i)), (f.get("clips", DASH), f.get("actors", DASH), {}))[2][
                fs
            ] = f
    rows = []
    for fold, (clips, actors, per_set) in folds.items():
        cells = []
        for fs in sets:
            f = per_set.get(fs)
            trivial = " <span class=sd>(one actor)</span>" if f and f.get("actors") == 1 else ""
            cells.append(
                f"{num(f.get('ari'))} <span class=sd>k={esc(f.get('k', DASH))}</span>{trivial}" if f else DASH
            )
        rows.append([esc(fold), esc(clips), esc(actors), *cells])
    return table(
        ["fold", "clips", "actors", *(f"ARI {esc(fs)}" for fs in sets)],
        rows,
        caption="Per training fold: its clips were clustered as if anonymous; ARI compares the clusters with "
        "the true actors (1 = the same partition, 0 = chance); k: clusters found.",
    )


def actors_section(ctx: Context) -> Section | None:
    """Pseudo-actors of anonymised test clips (``actors.json``); None for a run without them."""
    data = ctx.data
    if not data.actors:
        return None
    sec = Section("actors", "Pseudo-actors of the test clips")
    stem = data.chosen_stem() or ""
    used = {str(s) for s in data.models.get(stem, {}).get("actor_models", []) or []}
    rows, flags = _actor_rows(data, used)
    method = next((str(i.get("method")) for i in data.actors.values() if i.get("method")), "clustering")
    intro = (
        f"<p>The test clips carry no actor, so methods that work per actor (actor-norm) used pseudo-actors: "
        f"clusters of the test clips' features ({esc(method)}). How well this finds actors was measured on "
        f"the training folds, whose actors are known, by the adjusted Rand index (ARI).</p>"
    )
    main = table(
        [
            "feature set",
            "pseudo-actors",
            "number rule",
            "test clips each",
            "mean ARI (all folds)",
            "mean ARI (folds with ≥ 2 actors)",
            "one-actor folds",
            "used by the chosen",
        ],
        rows,
    )
    sec.body = intro + main + "".join(note(f) for f in flags) + _actor_fold_table(data)
    return sec
