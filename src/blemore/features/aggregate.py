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

Both are NaN-aware: a frame whose values are all NaN (no face found) is
ignored. A clip where every frame is NaN raises :class:`BlemoreError`.

>>> import numpy as np
>>> aggregate_stats(np.array([[0.0], [1.0], [np.nan], [2.0]])).astype(float).round(3).tolist()
[1.0, 0.816, 0.2, 0.5, 1.0, 1.5, 1.8]
>>> windows(np.arange(40, dtype=float).reshape(20, 2), size=16).tolist()
[[15.0, 16.0], [35.0, 36.0]]
"""

from __future__ import annotations

import numpy as np

from blemore.errors import BlemoreError

__all__ = ["STATISTICS", "PERCENTILES", "aggregate_stats", "windows", "stat_names", "valid_frames"]

#: The statistics, in output order.
STATISTICS: tuple[str, ...] = ("mean", "std", "p10", "p25", "p50", "p75", "p90")
PERCENTILES: tuple[int, ...] = (10, 25, 50, 75, 90)


def valid_frames(frames: np.ndarray, *, clip: str = "clip") -> np.ndarray:
    """The rows of ``frames`` that are not entirely NaN, as float64 ``(T', D)``.

    Raises :class:`BlemoreError` for a wrong shape, Inf values, or no valid frame.
    """
    x = np.asarray(frames, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] == 0:
        raise BlemoreError(f"{clip}: frame-level features must be (frames, dims), got shape {x.shape}")
    if np.isinf(x).any():
        raise BlemoreError(f"{clip}: features contain Inf values; re-extract this clip")
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
