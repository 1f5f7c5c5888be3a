"""From frame-level features ``(T, D)`` to what the classifiers see.

Two representations, as in the paper:

- :func:`aggregate_stats`: seven statistics per dimension, **statistic-major**:
  ``[mean_1..mean_D, std_1..std_D, p10_1..p10_D, p25.., p50.., p75.., p90..]``
  (the layout of the official baseline's ``timeseries2aggregate``), so a clip
  becomes one ``7 * D`` vector. ``std`` is the population standard deviation
  (``ddof=0``) and percentiles interpolate linearly, as numpy does.
- :func:`windows`: consecutive windows of ``size`` frames (16 by default), each
  summarised by its mean, used as separate training samples; at evaluation the
  window logits of a clip are averaged before the softmax.

:func:`aggregate` names the clip-level statistic sets (:data:`StatisticSet`): ``seven``
(the above), ``openface`` (mean, 20th, 50th, 80th percentile and IQR = p80 - p20, the
official ``aggregate_data.py``, statistic-major as it writes them) and ``none`` (a store
that already holds one row per clip, e.g. openSMILE functionals). :func:`aggregate_folder`
turns a folder of ``<clip>.npy`` into the ``X``/``filenames`` ``.npz`` the protocol reads.

All are NaN-aware: a frame whose values are all NaN (no face found) is
ignored. A clip without frames, or where every frame is NaN, raises :class:`BlemoreError`.

>>> import numpy as np
>>> aggregate_stats(np.array([[0.0], [1.0], [np.nan], [2.0]])).astype(float).round(3).tolist()
[1.0, 0.816, 0.2, 0.5, 1.0, 1.5, 1.8]
>>> windows(np.arange(40, dtype=float).reshape(20, 2), size=16).tolist()
[[15.0, 16.0], [35.0, 36.0]]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from blemore.errors import BlemoreError
from blemore.io import save_npz

__all__ = [
    "STATISTICS",
    "STATISTIC_SETS",
    "OPENFACE_STATISTICS",
    "PERCENTILES",
    "AggregateResult",
    "StatisticSet",
    "aggregate",
    "aggregate_folder",
    "aggregate_openface",
    "aggregate_stats",
    "clip_row",
    "statistic_names",
    "windows",
    "stat_names",
    "valid_frames",
]

#: The statistics, in output order.
STATISTICS: tuple[str, ...] = ("mean", "std", "p10", "p25", "p50", "p75", "p90")
PERCENTILES: tuple[int, ...] = (10, 25, 50, 75, 90)
#: The official OpenFace aggregation's statistics, in output order.
OPENFACE_STATISTICS: tuple[str, ...] = ("mean", "p20", "p50", "p80", "iqr")
#: Clip-level statistic sets: ``seven`` (:data:`STATISTICS`), ``openface`` (:data:`OPENFACE_STATISTICS`),
#: ``none`` (the one row a per-clip store holds).
StatisticSet = Literal["seven", "openface", "none"]
STATISTIC_SETS: tuple[str, ...] = get_args(StatisticSet)


def valid_frames(frames: np.ndarray, *, clip: str = "clip") -> np.ndarray:
    """The rows of ``frames`` that are not entirely NaN, as float64 ``(T', D)``.

    Raises :class:`BlemoreError` for a wrong shape, Inf values, no frame, or no valid frame.
    """
    x = np.asarray(frames, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] == 0:
        raise BlemoreError(f"{clip}: frame-level features must be (frames, dims), got shape {x.shape}")
    if np.isinf(x).any():
        raise BlemoreError(f"{clip}: features contain Inf values; re-extract this clip")
    if x.shape[0] == 0:
        raise BlemoreError(f"{clip}: has no frames (an empty feature file); re-extract it or leave it out of the metadata")
    keep = ~np.isnan(x).all(axis=1)
    if not keep.any():
        raise BlemoreError(
            f"{clip}: every frame is NaN (e.g. no face found in any frame); "
            "re-extract it or leave it out of the metadata"
        )
    x = x[keep]
    if np.isnan(x).any():
        # Partly-NaN frames: fill single missing values with the dimension's mean.
        col_mean = np.nanmean(np.where(np.isnan(x).all(axis=0), 0.0, x), axis=0)
        col_mean = np.where(np.isnan(col_mean), 0.0, col_mean)
        x = np.where(np.isnan(x), col_mean, x)
    return x


def aggregate_stats(frames: np.ndarray, *, clip: str = "clip") -> np.ndarray:
    """Seven statistics per dimension, statistic-major: ``(7 * D,)`` float32.

    Examples
    --------
    >>> aggregate_stats(np.ones((3, 2))).tolist()
    [1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    """
    x = valid_frames(frames, clip=clip)
    parts = [x.mean(axis=0), x.std(axis=0)]
    parts.extend(np.percentile(x, PERCENTILES, axis=0))
    return np.concatenate(parts).astype(np.float32)


def windows(frames: np.ndarray, *, size: int = 16, clip: str = "clip") -> np.ndarray:
    """Means of consecutive ``size``-frame windows: ``(W, D)`` float32.

    All-NaN frames are dropped first; the last window may be shorter (a clip
    shorter than ``size`` frames gives one window).
    """
    if size < 1:
        raise BlemoreError(f"window size must be >= 1, got size={size}")
    x = valid_frames(frames, clip=clip)
    n = x.shape[0]
    starts = np.arange(0, n, size)
    sums = np.add.reduceat(x, starts, axis=0)
    counts = np.diff(np.append(starts, n))
    return (sums / counts[:, None]).astype(np.float32)


def stat_names(dim_names: list[str] | int) -> list[str]:
    """Column names of :func:`aggregate_stats` output (``"mean_0"``, ..., ``"p90_<D-1>"``)."""
    names = [str(i) for i in range(dim_names)] if isinstance(dim_names, int) else list(dim_names)
    return [f"{s}_{n}" for s in STATISTICS for n in names]


def aggregate_openface(frames: np.ndarray, *, clip: str = "clip") -> np.ndarray:
    """The official OpenFace aggregation: mean, 20th, 50th, 80th percentile and IQR (p80 - p20)
    per dimension, statistic-major: ``(5 * D,)`` float32.

    >>> aggregate_openface(np.array([[0.0], [1.0], [2.0], [3.0], [4.0]])).tolist()
    [2.0, 0.800000011920929, 2.0, 3.200000047683716, 2.4000000953674316]
    """
    x = valid_frames(frames, clip=clip)
    p20, p50, p80 = np.percentile(x, (20, 50, 80), axis=0)
    return np.concatenate([x.mean(axis=0), p20, p50, p80, p80 - p20]).astype(np.float32)


def clip_row(frames: np.ndarray, *, clip: str = "clip") -> np.ndarray:
    """The one row of a per-clip store (``(1, D)`` or ``(D,)``) as ``(D,)`` float32."""
    x = np.asarray(frames)
    if x.ndim == 2 and x.shape[0] > 1:
        raise BlemoreError(
            f"{clip}: {x.shape[0]} rows; --statistics none is for stores with one row per clip (such as "
            "egemaps functionals): use seven or openface"
        )
    return valid_frames(x, clip=clip)[0].astype(np.float32)


def aggregate(frames: np.ndarray, *, statistics: StatisticSet = "seven", clip: str = "clip") -> np.ndarray:
    """One clip's frames as one clip-level vector with the statistic set ``statistics``."""
    if statistics == "seven":
        return aggregate_stats(frames, clip=clip)
    if statistics == "openface":
        return aggregate_openface(frames, clip=clip)
    if statistics == "none":
        return clip_row(frames, clip=clip)
    raise BlemoreError(f"--statistics {statistics!r}: expected one of {', '.join(STATISTIC_SETS)}")


def statistic_names(statistics: StatisticSet) -> tuple[str, ...]:
    """The statistics of a set, in output order (empty for ``none``)."""
    return {"seven": STATISTICS, "openface": OPENFACE_STATISTICS, "none": ()}[statistics]


@dataclass
class AggregateResult:
    """What :func:`aggregate_folder` wrote: ``clips`` rows of ``dim`` values, and the clips left out."""

    out: Path
    statistics: str
    clips: int = 0
    dim: int = 0
    left_out: dict[str, str] = field(default_factory=dict)

    def format(self) -> str:
        lines = [f"{self.clips} clips x {self.dim} values ({self.statistics}) -> {self.out}"]
        if self.left_out:
            lines.append(f"{len(self.left_out)} clip(s) left out:")
            lines += [f"  {clip}: {reason}" for clip, reason in list(self.left_out.items())[:5]]
            if len(self.left_out) > 5:
                lines.append(f"  ... and {len(self.left_out) - 5} more")
        return "\n".join(lines)


def _frame_files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise BlemoreError(f"{folder}: no such folder (expected a feature folder of <clip>.npy files)")
    files = {p.stem: p for p in sorted(folder.glob("*.npy")) if not p.name.startswith(".")}
    if not files:
        raise BlemoreError(f"{folder}: no <clip>.npy files in this folder")
    return files


def _load_frames(path: Path) -> np.ndarray:
    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise BlemoreError(f"{path}: not a readable .npy ({' '.join(str(exc).split())})") from None
    if x.ndim not in (1, 2):
        raise BlemoreError(f"{path}: frame-level features must be (frames, dims), got shape {x.shape}")
    return x if x.ndim == 2 else x[None, :]


def aggregate_folder(folder: str | Path, *, out: str | Path, statistics: StatisticSet = "seven") -> AggregateResult:
    """Aggregate every ``<clip>.npy`` of a feature folder into ``out`` (``.npz`` with ``X``, ``filenames``).

    ``X`` is ``(N, k * D)`` float32 (``k`` statistics; ``D`` values for ``none``), ``filenames``
    the clip names, sorted. A clip that cannot be aggregated (no frames, every frame NaN,
    several rows with ``none``) is left out and named in the result, as the official
    ``timeseries2aggregate.py`` skips it; clips of different widths, an unreadable file or no
    clip left raise :class:`BlemoreError` and nothing is written.

    >>> aggregate_folder("features/egemaps", out="egemaps.npz", statistics="none")  # doctest: +SKIP
    """
    folder, out = Path(folder), Path(out)
    if statistics not in STATISTIC_SETS:
        raise BlemoreError(f"--statistics {statistics!r}: expected one of {', '.join(STATISTIC_SETS)}")
    if out.suffix != ".npz":
        raise BlemoreError(f"{out}: the output is a .npz file (X, filenames); name it e.g. {out.name}.npz")
    result = AggregateResult(out=out, statistics=statistics)
    rows: list[np.ndarray] = []
    names: list[str] = []
    first: tuple[str, int] | None = None
    for clip, path in _frame_files(folder).items():
        frames = _load_frames(path)
        if first is None:
            first = (clip, frames.shape[1])
        elif frames.shape[1] != first[1]:
            raise BlemoreError(
                f"{folder}: clip {clip!r} has {frames.shape[1]} dims but {first[0]!r} has {first[1]}; "
                "a feature folder holds one encoder's features"
            )
        try:
            rows.append(aggregate(frames, statistics=statistics, clip=clip))
        except BlemoreError as exc:
            result.left_out[clip] = str(exc).removeprefix(f"{clip}: ")
            continue
        names.append(clip)
    if not rows:
        raise BlemoreError(f"{folder}: no clip could be aggregated (e.g. {next(iter(result.left_out.values()))})")
    X = np.stack(rows).astype(np.float32)
    save_npz(out, X=X, filenames=np.asarray(names, dtype=str))
    result.clips, result.dim = X.shape
    return result
