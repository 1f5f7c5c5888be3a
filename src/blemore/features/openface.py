"""OpenFace 2.0 ``FeatureExtraction`` output: which columns, and what becomes of its frames.

Two preprocessings (:data:`OpenFacePreprocessing`):

- ``"mark-failed"``: gaze (8), head pose (6), AU intensities (``AU.._r``) and presence
  (``AU.._c``), as many as the file has; frames with ``success == 0`` become NaN rows, which
  the statistics skip;
- ``"official"``: the official baseline's preprocessing (``openface2npy.py`` with
  ``openface_helpers.py``), reproduced exactly by :func:`official_frames`: its 31 columns
  (:data:`OFFICIAL_COLUMNS`: 17 AU intensities, head pose, gaze); a clip whose share of
  successful frames, or of frames with detection confidence >= 0.85, lies in [0.85, 1) has
  every frame failed or below that confidence replaced by linear interpolation between the
  neighbouring good frames (frames after the last good one repeat it; frames before the
  first good one are dropped); any other clip keeps its frames as they are. A clip left
  with no frame becomes one row of zeros, as the official script writes it.

The official aggregation (``aggregate_data.py``: mean, 20th, 50th and 80th percentile and
their IQR) is the ``openface`` statistic set of :mod:`blemore.features.aggregate`; the
paper's OpenFace features are the official preprocessing followed by the seven statistics
(``timeseries2aggregate.py``).

>>> v = np.array([[1.0], [5.0], [3.0]])
>>> official_frames(v, success=np.array([1, 1, 1]), confidence=np.array([0.9, 0.2, 0.95]))[0].ravel().tolist()
[1.0, 5.0, 3.0]
"""

from __future__ import annotations

import re
from typing import Literal

import numpy as np

from blemore.errors import BlemoreError

__all__ = [
    "CONFIDENCE_THRESHOLD",
    "GOOD_FRAMES_RATIO",
    "OFFICIAL_COLUMNS",
    "OpenFacePreprocessing",
    "interpolate_forward",
    "official_frames",
    "openface_columns",
]

OpenFacePreprocessing = Literal["mark-failed", "official"]

#: A frame below this detection confidence is replaced (official preprocessing).
CONFIDENCE_THRESHOLD = 0.85
#: The share of good frames from which a clip is repaired rather than kept as it is.
GOOD_FRAMES_RATIO = 0.85

_GAZE = ["gaze_0_x", "gaze_0_y", "gaze_0_z", "gaze_1_x", "gaze_1_y", "gaze_1_z", "gaze_angle_x", "gaze_angle_y"]
_POSE = ["pose_Tx", "pose_Ty", "pose_Tz", "pose_Rx", "pose_Ry", "pose_Rz"]
_OFFICIAL_AUS = ["01", "02", "04", "05", "06", "07", "09", "10", "12", "14", "15", "17", "20", "23", "25", "26", "45"]
#: The official baseline's columns, in its order: AU intensities, head pose (rotation first), gaze.
OFFICIAL_COLUMNS: tuple[str, ...] = tuple(
    [f"AU{a}_r" for a in _OFFICIAL_AUS]
    + ["pose_Rx", "pose_Ry", "pose_Rz", "pose_Tx", "pose_Ty", "pose_Tz"]
    + _GAZE
)


def openface_columns(columns: list[str], preprocessing: OpenFacePreprocessing = "mark-failed") -> list[str]:
    """The feature columns kept from a file with these ``columns`` (names already stripped).

    Raises :class:`BlemoreError` if there is no AU column (not FeatureExtraction output).
    """
    aur = sorted(c for c in columns if re.fullmatch(r"AU\d+_r", c))
    auc = sorted(c for c in columns if re.fullmatch(r"AU\d+_c", c))
    if not aur and not auc:
        raise BlemoreError("no AU columns (AU01_r, AU01_c, ...): is this OpenFace 2.0 FeatureExtraction output?")
    if preprocessing == "official":
        return list(OFFICIAL_COLUMNS)
    return [c for c in _GAZE + _POSE if c in columns] + aur + auc


def interpolate_forward(values: np.ndarray) -> np.ndarray:
    """Each column's NaNs filled linearly between its neighbouring values (rows equally spaced);
    NaNs after a column's last value repeat it, NaNs before its first value stay NaN.

    What pandas' ``DataFrame.interpolate(method="linear")`` does, in numpy.

    >>> interpolate_forward(np.array([[np.nan], [1.0], [np.nan], [3.0], [np.nan]])).ravel().tolist()
    [nan, 1.0, 2.0, 3.0, 3.0]
    """
    out = np.array(values, dtype=np.float64, copy=True)
    rows = np.arange(len(out))
    for j in range(out.shape[1]):
        column = out[:, j]
        known = ~np.isnan(column)
        if known.all() or not known.any():
            continue
        where = rows[known]
        filled = np.interp(rows, where, column[known])
        filled[: where[0]] = np.nan
        out[:, j] = filled
    return out


def official_frames(
    values: np.ndarray,
    *,
    success: np.ndarray,
    confidence: np.ndarray,
    threshold: float = CONFIDENCE_THRESHOLD,
    good_ratio: float = GOOD_FRAMES_RATIO,
) -> tuple[np.ndarray, float]:
    """The official preprocessing of one clip's OpenFace frames (see the module docstring).

    Parameters
    ----------
    values : (T, D) the feature columns, T >= 1.
    success, confidence : (T,) OpenFace's ``success`` and ``confidence`` columns.

    Returns
    -------
    (T', D) float32 frames, and the share of the T frames that were good (successful and
    at least ``threshold`` confident).
    """
    x = np.asarray(values, dtype=np.float64)
    success = np.asarray(success)
    confidence = np.asarray(confidence, dtype=np.float64)
    if len(x) == 0:
        raise BlemoreError("no frames")
    success_ratio = float(np.mean(success == 1))
    confident_ratio = float(np.mean(confidence >= threshold))
    good = float(np.mean((success == 1) & (confidence >= threshold)))
    if good_ratio <= success_ratio < 1 or good_ratio <= confident_ratio < 1:
        bad = (success != 1) | (confidence < threshold)
        x = x.copy()
        x[bad] = np.nan
        x = interpolate_forward(x)
        x = x[~np.isnan(x).any(axis=1)]
    if len(x) == 0:
        return np.zeros((1, x.shape[1]), np.float32), good
    return x.astype(np.float32), good
