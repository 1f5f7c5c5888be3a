"""openSMILE eGeMAPSv02 low-level descriptors: 25 values per 10 ms frame (offline).

>>> enc = OpenSmileEncoder()                              # doctest: +SKIP
>>> enc.encode([np.zeros(16000, np.float32)])[0].shape    # doctest: +SKIP
(98, 25)
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from blemore.encoders.base import Encoder
from blemore.errors import BlemoreError
from blemore.media.decoder import SAMPLE_RATE

__all__ = ["OpenSmileEncoder"]


class OpenSmileEncoder(Encoder):
    """eGeMAPSv02 LLDs (loudness, spectral slope, MFCC 1-4, F0, jitter, shimmer, HNR, formants...).

    The column names are in :attr:`columns` and ``settings.json``. Frames: 20 ms windows
    every 10 ms (100 per second). Unvoiced frames hold 0 for the voiced-only descriptors,
    as openSMILE writes them.
    """

    modality = "audio"
    dim = 25

    def __init__(self, *, name: str = "opensmile", batch_size: int = 1):
        import opensmile

        self.name = name
        self.batch_size = batch_size
        self._smile = opensmile.Smile(
            feature_set=opensmile.FeatureSet.eGeMAPSv02,
            feature_level=opensmile.FeatureLevel.LowLevelDescriptors,
        )
        self.columns = list(self._smile.feature_names)
        self.dim = len(self.columns)
        self.version = opensmile.__version__

    def output_fps(self, input_rate: float) -> float:
        return 100.0

    def encode(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        out = []
        for signal in inputs:
            signal = np.asarray(signal, dtype=np.float32)
            if signal.size < SAMPLE_RATE // 20:
                raise BlemoreError(f"audio too short for openSMILE ({signal.size} samples, need >= 800)")
            values = self._smile.process_signal(signal, SAMPLE_RATE).to_numpy(dtype=np.float32)
            out.append(np.ascontiguousarray(values))
        return out

    def settings(self) -> dict:
        return {**super().settings(), "feature_set": "eGeMAPSv02", "level": "lld", "columns": self.columns}
