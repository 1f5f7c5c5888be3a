"""Encoders: one small interface, registered by name.

An encoder turns one modality of a clip into frame-level features, ``(T, D)``
float32. Audio encoders take the 16 kHz mono waveform, video encoders the frames
decoded to their :class:`~blemore.media.VideoSpec`. Every encoder has a ``name``
(the store folder, e.g. ``wavlm-large-l12``), a ``modality``, an output rate, a
``dim`` and a batch call ``encode(inputs) -> list[array]``.

Build one from a spec with :func:`get_encoder` (``"opensmile"``, ``"facemesh"``,
``"wavlm-large:12"``, ``"hubert-large:6-12"``, ``"clip"``...); :func:`list_encoders`
lists the registered names. Importing this package loads neither torch nor mediapipe.

>>> from blemore.encoders import parse_spec
>>> parse_spec("hubert-large:6-12").layers
(6, 12)
"""

from blemore.encoders.base import Encoder, EncoderSpec, parse_layers, parse_spec
from blemore.encoders.registry import ENCODERS, EncoderInfo, get_encoder, list_encoders

__all__ = [
    "Encoder",
    "EncoderSpec",
    "EncoderInfo",
    "ENCODERS",
    "get_encoder",
    "list_encoders",
    "parse_layers",
    "parse_spec",
]
