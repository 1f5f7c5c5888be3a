"""The official baseline's OpenFace preprocessing, written plainly in pandas: the reference the tests compare to."""

from __future__ import annotations

import numpy as np
import pandas as pd

from blemore.features.openface import OFFICIAL_COLUMNS


def official_reference(df: pd.DataFrame, columns: list[str], threshold: float = 0.85, ratio: float = 0.85):
    """openface2npy.convert_openface_to_npy with openface_helpers, written plainly in pandas."""
    df = df.copy()
    n = df.shape[0]
    success_ratio = (df["success"].values == 1).sum() / n
    confident_ratio = (df["confidence"].values >= threshold).sum() / n
    if ratio <= success_ratio < 1 or ratio <= confident_ratio < 1:
        for column in columns:
            df.loc[(df["success"] != 1) | (df["confidence"] < threshold), column] = np.nan
        df[columns] = df[columns].interpolate(method="linear")
        df = df.dropna(subset=columns)
    if df.empty:
        return np.zeros((1, len(columns)), dtype=np.float32)
    return df[columns].to_numpy().astype(np.float32)


OFFICIAL_HEADER = ["frame", "face_id", "timestamp", "confidence", "success", *OFFICIAL_COLUMNS, "AU01_c", "AU12_c"]


def write_official_csv(path, values, success, confidence) -> None:
    """An OpenFace CSV as FeatureExtraction writes it (", " separators) with the official columns."""
    lines = [", ".join(OFFICIAL_HEADER)]
    for i, (row, ok, conf) in enumerate(zip(values, success, confidence)):
        cells = [i + 1, 0, f"{i / 30:.3f}", conf, ok, *[f"{v:.4f}" for v in row], 1, 0]
        lines.append(", ".join(str(c) for c in cells))
    path.write_text("\n".join(lines) + "\n")
