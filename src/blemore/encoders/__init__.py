"""Encoders: one small interface, a registry of them by name.

An encoder turns one modality of a clip into features, ``(T, D)`` float32. Audio encoders
take the 16 kHz mono waveform, video encoders the frames decoded to their
:class:`~blemore.media.decoder.VideoSpec`. Every encoder has a ``name`` (the store folder, e.g.
``wavlm-large-l12``), a ``modality``, an output rate, a ``dim`` and a batch call
``encode(inputs) -> list[array]``.

Build one from a spec with :func:`get_encoder` (``"opensmile"``, ``"facemesh"``,
``"wavlm-large:12"``, ``"hubert-large:6-12"``, ``"clip-b32"``, ``"hubert-large=/models/hubert"``...);
:func:`list_encoders` lists the registered ones (:class:`EncoderInfo`: width, rate, weights).
Importing this package loads neither torch nor mediapipe.

>>> from blemore.encoders import parse_spec
>>> parse_spec("hubert-large:6-12").layers
(6, 12)
"""

from blemore.encoders.base import (
    PRECISIONS,
    BuildRequest,
    Encoder,
    EncoderSpec,
    Precision,
    check_precision,
    parse_layers,
    parse_spec,
)
from blemore.encoders.registry import ENCODERS, EncoderInfo, Requirement, get_encoder, list_encoders, register

__all__ = [
    "BuildRequest",
    "Encoder",
    "EncoderSpec",
    "EncoderInfo",
    "ENCODERS",
    "PRECISIONS",
    "Precision",
    "Requirement",
    "check_precision",
    "get_encoder",
    "list_encoders",
    "parse_layers",
    "parse_spec",
    "register",
]
