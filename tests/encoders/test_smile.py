"""openSMILE eGeMAPSv02: low-level descriptors (``opensmile``) and functionals (``egemaps``)."""

from __future__ import annotations

import numpy as np
import pytest

from blemore.encoders import get_encoder
from blemore.encoders.smile import OpenSmileEncoder
from blemore.errors import BlemoreError


def _tone(seconds: float = 1.0, hz: float = 220.0) -> np.ndarray:
    t = np.arange(int(16000 * seconds)) / 16000
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def test_opensmile_lld():
    enc = get_encoder("opensmile")
    (f,) = enc.encode([_tone()])
    assert f.shape[1] == 25 == enc.dim and f.dtype == np.float32
    assert abs(f.shape[0] - 100) <= 5 and enc.output_fps(16000) == 100
    f0 = f[:, enc.columns.index("F0semitoneFrom27.5Hz_sma3nz")]
    assert np.median(f0[f0 > 0]) == pytest.approx(12 * np.log2(220 / 27.5), abs=0.5)  # 36 semitones
    assert enc.settings()["level"] == "lld"
    with pytest.raises(BlemoreError, match="too short"):
        enc.encode([np.zeros(100, np.float32)])


def test_egemaps_functionals_are_one_row_of_88_per_clip():
    enc = get_encoder("egemaps")
    assert (enc.name, enc.dim, enc.output_fps(16000)) == ("egemaps", 88, None)
    a, b = enc.encode([_tone(1.0), _tone(2.5, hz=330.0)])
    assert a.shape == b.shape == (1, 88) and a.dtype == np.float32 and np.isfinite(a).all()
    mean_f0 = enc.columns.index("F0semitoneFrom27.5Hz_sma3nz_amean")
    assert a[0, mean_f0] == pytest.approx(12 * np.log2(220 / 27.5), abs=0.5)
    assert b[0, mean_f0] == pytest.approx(12 * np.log2(330 / 27.5), abs=0.5)
    settings = enc.settings()
    assert settings["level"] == "functionals" and len(settings["columns"]) == 88
    with pytest.raises(BlemoreError, match="too short"):
        enc.encode([np.zeros(100, np.float32)])


def test_functionals_summarise_the_same_signal_as_the_descriptors():
    import opensmile

    x = _tone(1.5)
    reference = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                                feature_level=opensmile.FeatureLevel.Functionals).process_signal(x, 16000)
    (got,) = OpenSmileEncoder(level="functionals").encode([x])
    np.testing.assert_array_equal(got[0], reference.to_numpy(np.float32)[0])


def test_unknown_level_is_refused():
    with pytest.raises(BlemoreError, match="level 'frames': expected 'lld' or 'functionals'"):
        OpenSmileEncoder(level="frames")
