"""openSMILE eGeMAPSv02 (offline): low-level descriptors or functionals.

- ``opensmile`` (:class:`OpenSmileEncoder`, ``level="lld"``): 25 low-level descriptors per
  10 ms frame;
- ``egemaps`` (``level="functionals"``): the 88 eGeMAPSv02 functionals of the whole clip, one
  row per clip: what the official baseline's ``egemaps_concat.py`` gathers from openSMILE's
  output (turn such a store into the ``X``/``filenames`` matrix with
  ``blemore aggregate FEATURES/egemaps --statistics none``).

>>> enc = OpenSmileEncoder()                              # doctest: +SKIP
>>> enc.encode([np.zeros(16000, np.float32)])[0].shape    # doctest: +SKIP
(98, 25)
>>> OpenSmileEncoder(level="functionals").encode([np.zeros(16000, np.float32)])[0].shape  # doctest: +SKIP
(1, 88)
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np

from blemore.encoders.base import BuildRequest, Encoder
from blemore.errors import BlemoreError
from blemore.media.decoder import SAMPLE_RATE

__all__ = ["OpenSmileEncoder", "SmileLevel", "build_functionals", "build_lld"]

#: ``"lld"``: low-level descriptors per 10 ms frame; ``"functionals"``: one row per clip.
SmileLevel = Literal["lld", "functionals"]


class OpenSmileEncoder(Encoder):
    """eGeMAPSv02 LLDs (loudness, spectral slope, MFCC 1-4, F0, jitter, shimmer, HNR, formants...)
    or, with ``level="functionals"``, their 88 functionals over the whole clip.

    The column names are in :attr:`columns` and ``settings.json``. LLD frames: 20 ms windows
    every 10 ms (100 per second); unvoiced frames hold 0 for the voiced-only descriptors,
    as openSMILE writes them. Functionals: one row ``(1, 88)`` per clip.
    """

    modality = "audio"
    dim = 25

    def __init__(self, *, name: str = "opensmile", batch_size: int = 1, level: SmileLevel = "lld"):
        import opensmile

        if level not in ("lld", "functionals"):
            raise BlemoreError(f"openSMILE level {level!r}: expected 'lld' or 'functionals'")
        self.name = name
        self.batch_size = batch_size
        self.level = level
        self._smile = opensmile.Smile(
            feature_set=opensmile.FeatureSet.eGeMAPSv02,
            feature_level=(opensmile.FeatureLevel.LowLevelDescriptors if level == "lld"
                           else opensmile.FeatureLevel.Functionals),
        )
        self.columns = list(self._smile.feature_names)
        self.dim = len(self.columns)
        self.version = opensmile.__version__

    def output_fps(self, input_rate: float) -> float | None:
        return 100.0 if self.level == "lld" else None

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
        return {**super().settings(), "feature_set": "eGeMAPSv02", "level": self.level, "columns": self.columns}


def build_lld(request: BuildRequest) -> OpenSmileEncoder:
    """The registry's factory for ``opensmile``: eGeMAPSv02 low-level descriptors."""
    return OpenSmileEncoder(name=request.name, batch_size=request.batch_size or 1)


def build_functionals(request: BuildRequest) -> OpenSmileEncoder:
    """The registry's factory for ``egemaps``: eGeMAPSv02 functionals, one row per clip."""
    return OpenSmileEncoder(name=request.name, batch_size=request.batch_size or 1, level="functionals")
