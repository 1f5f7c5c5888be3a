"""The encoder interface and the spec grammar.

Spec grammar: ``NAME[=MODEL_ID_OR_PATH][@REVISION][:LAYERS]``

- ``NAME``: a registered encoder (``opensmile``, ``facemesh``, ``wavlm-large``, ...);
- ``=MODEL_ID_OR_PATH``: another Hugging Face model id of the same family
  (``wav2vec2-large=facebook/wav2vec2-large-xlsr-53``), or a local folder or checkpoint
  file holding the weights (``hubert-large=/models/hubert-large-ll60k``): a reference that
  starts with ``/``, ``.`` or ``~``, or names an existing path, is local. The store folder
  stays the encoder's name; the path is recorded in ``settings.json`` (``model_id``);
- ``@REVISION``: a branch, tag or commit of a Hugging Face model;
- ``:LAYERS``: for model encoders, the hidden state(s) kept: ``12`` (layer 12; 0 is the
  input embedding, ``last`` the last layer) or ``6-12`` (mean of layers 6 to 12 inclusive).
  A mean keeps the dimension of one layer; to stack layers instead, extract each
  layer into its own folder and fuse them downstream.

>>> s = parse_spec("wav2vec2-large=facebook/wav2vec2-large-xlsr-53@main:6-12")
>>> (s.name, s.model_id, s.revision, s.layers)
('wav2vec2-large', 'facebook/wav2vec2-large-xlsr-53', 'main', (6, 12))
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence, get_args

import numpy as np

from blemore.errors import BlemoreError
from blemore.media.decoder import SAMPLE_RATE, VideoSpec

__all__ = [
    "BuildRequest",
    "Encoder",
    "EncoderSpec",
    "Modality",
    "PRECISIONS",
    "Precision",
    "check_precision",
    "is_local_model",
    "parse_layers",
    "parse_spec",
]

Modality = Literal["audio", "video"]
#: Arithmetic of the model encoders' forward pass: ``"auto"`` (bf16 autocast on CUDA, float32
#: elsewhere), ``"fp32"`` or ``"bf16"`` (autocast on any device).
Precision = Literal["auto", "fp32", "bf16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)

_SPEC = re.compile(
    r"^(?P<name>[a-z0-9][a-z0-9_.-]*)"
    r"(?:=(?P<model>[^@:]+))?"
    r"(?:@(?P<rev>[A-Za-z0-9_.\-/]+))?"
    r"(?::(?P<layers>[^:]*))?$"
)


@dataclass(frozen=True)
class EncoderSpec:
    """A parsed encoder spec (see the module docstring)."""

    text: str
    name: str
    model_id: str | None = None
    revision: str | None = None
    layers: tuple[int, int] | Literal["last"] | None = None


def parse_layers(text: str, *, spec: str = "") -> tuple[int, int] | Literal["last"]:
    """``"12"`` -> (12, 12); ``"6-12"`` -> (6, 12); ``"last"`` -> ``"last"``.

    >>> parse_layers("6-12")
    (6, 12)
    """
    where = f"encoder spec {spec!r}: " if spec else ""
    text = text.strip()
    if text == "last":
        return "last"
    m = re.fullmatch(r"(\d+)(?:-(\d+))?", text)
    if not m:
        raise BlemoreError(
            f"{where}bad layer spec {text!r}: expected a layer number (12), a range (6-12) or 'last'"
        )
    first = int(m.group(1))
    last = int(m.group(2)) if m.group(2) is not None else first
    if last < first:
        raise BlemoreError(f"{where}bad layer spec {text!r}: the range ends before it starts")
    return first, last


def parse_spec(text: str) -> EncoderSpec:
    """Parse ``NAME[=MODEL_ID_OR_PATH][@REVISION][:LAYERS]``; raises :class:`BlemoreError` if malformed.

    >>> parse_spec("hubert-large=/models/hubert:24").model_id
    '/models/hubert'
    """
    raw = text.strip()
    m = _SPEC.match(raw)
    if not m or (m.group("model") is not None and not m.group("model").strip()):
        raise BlemoreError(
            f"bad encoder spec {text!r}: expected NAME[=MODEL_ID_OR_PATH][@REVISION][:LAYERS], "
            "e.g. 'opensmile', 'wavlm-large:12' or 'hubert-large=/models/hubert-large:24'"
        )
    layers = parse_layers(m.group("layers"), spec=raw) if m.group("layers") is not None else None
    model = m.group("model").strip() if m.group("model") is not None else None
    return EncoderSpec(text=raw, name=m.group("name"), model_id=model, revision=m.group("rev"), layers=layers)


def is_local_model(reference: str) -> bool:
    """Whether a model reference names local weights (a folder or file) rather than a Hugging Face id.

    Local: it starts with ``/``, ``.`` or ``~``, or it names an existing path.

    >>> is_local_model("./weights/hubert"), is_local_model("facebook/hubert-large-ll60k")
    (True, False)
    """
    return reference.startswith(("/", ".", "~")) or Path(reference).expanduser().exists()


def check_precision(precision: str) -> Precision:
    """``precision`` if it is one of :data:`PRECISIONS`, else :class:`BlemoreError`.

    >>> check_precision("bf16")
    'bf16'
    """
    if precision not in PRECISIONS:
        raise BlemoreError(f"--precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    return precision  # type: ignore[return-value]


@dataclass(frozen=True)
class BuildRequest:
    """What a registered encoder's factory gets: the parsed spec and the run's options.

    ``name``: the store folder's base name (the encoder's name; ``NAME-<model id>`` for
    another Hugging Face model; a local path never enters it). ``weights``: the Hugging
    Face id, or with ``local`` the absolute local path, to load the weights from (the
    registry's default when the spec names none). ``model``: an already built model to use
    instead (tests and benchmarks build small random ones). ``face_crop``: video models see
    a square around the face. ``precision``: see :data:`Precision`.
    """

    spec: EncoderSpec
    name: str
    weights: str = ""
    local: bool = False
    device: str = "cpu"
    batch_size: int | None = None
    model: Any = None
    face_crop: bool = False
    precision: Precision = "auto"

    @property
    def revision(self) -> str | None:
        return self.spec.revision

    @property
    def layers(self) -> tuple[int, int] | Literal["last"] | None:
        return self.spec.layers


class Encoder(ABC):
    """One encoder: ``encode(inputs) -> [(T, D) float32]`` for a batch of clips.

    Attributes every encoder sets:

    - ``name``: the store folder (lowercase, e.g. ``wavlm-large-l12``);
    - ``modality``: ``"audio"`` (inputs are 16 kHz mono float32 waveforms) or ``"video"``
      (inputs are uint8 RGB frames (T, H, W, 3) decoded to :attr:`video`, a
      :class:`~blemore.media.decoder.VideoSpec`; its ``transform`` runs in the decoding worker);
    - ``dim``: feature dimension D;
    - ``batch_size``: clips per :meth:`encode` call;
    - ``model_id``, ``revision``, ``layer``: for the index (empty for offline encoders);
    - ``marks_faces``: rows where no face was found are NaN (the index records ``face_found``).
    """

    name: str
    modality: Modality
    dim: int
    batch_size: int = 1
    sample_rate: int = SAMPLE_RATE
    video: VideoSpec | None = None
    model_id: str = ""
    revision: str = ""
    layer: str = ""
    marks_faces: bool = False

    @abstractmethod
    def output_fps(self, input_rate: float) -> float | None:
        """Feature rows per second, given the input's rate (Hz for audio, fps for video);
        None for an encoder that gives one row per clip."""

    @abstractmethod
    def encode(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Features of each input, ``(T_i, dim)`` float32, in input order.

        Raises :class:`BlemoreError` for an input it cannot encode (too short, ...).
        """

    def settings(self) -> dict[str, Any]:
        """What determines the features (stored in ``settings.json``; a resumed run must match)."""
        out: dict[str, Any] = {
            "encoder": self.name,
            "class": type(self).__name__,
            "modality": self.modality,
            "dim": int(self.dim),
            "model_id": self.model_id,
            "revision": self.revision,
            "layer": self.layer,
        }
        if self.modality == "audio":
            out["sample_rate"] = self.sample_rate
        if self.video is not None:
            out["video_fps"] = self.video.fps
            out["video_short_side"] = self.video.short_side
            if self.video.label:
                out["video_crop"] = self.video.label
        return out

    def close(self) -> None:
        """Release resources (models, graphs)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} ({self.modality}, dim={self.dim})>"
