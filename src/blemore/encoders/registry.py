"""The registry of encoders: a table of :class:`EncoderInfo` rows, and :func:`get_encoder`.

Each row says what an encoder gives (modality, output width, rate), where its weights come
from, which packages it needs, and names its *factory*: a function
``build(request: BuildRequest) -> Encoder`` in the encoder's own module, written
``"module:function"`` and imported only when the encoder is built (so listing the registry
loads neither torch nor MediaPipe). Adding an encoder is one module with a factory plus
one row in :data:`ENCODERS`.

>>> ENCODERS["hubert-large"].rate
'50/s'
>>> [e.name for e in list_encoders()][:3]
['opensmile', 'egemaps', 'facemesh']
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple

from blemore.encoders.base import (
    BuildRequest,
    Encoder,
    EncoderSpec,
    Modality,
    Precision,
    check_precision,
    is_local_model,
    parse_spec,
)
from blemore.encoders.mediapipe_support import import_mediapipe
from blemore.errors import BlemoreError

__all__ = [
    "ENCODERS",
    "EncoderInfo",
    "Requirement",
    "build_request",
    "check_requirements",
    "check_spec",
    "get_encoder",
    "list_encoders",
    "register",
    "store_name",
]


class Requirement(NamedTuple):
    """A package an encoder imports, and the ``blemore[...]`` extra that installs it."""

    package: str
    extra: str


MEDIA = Requirement("opensmile", "media")
FACE = Requirement("mediapipe", "face")
HF = Requirement("transformers", "hf")
TORCH = Requirement("torch", "train")


@dataclass(frozen=True)
class EncoderInfo:
    """One registered encoder.

    Attributes
    ----------
    name : the spec's NAME and the store folder's base name.
    modality : ``"audio"`` or ``"video"``.
    factory : ``"module:function"``, the function that builds it from a :class:`BuildRequest`.
    dim : output width with the default model and layer.
    rate : output rows: ``"100/s"``, ``"per frame, 30/s"``, ``"per 16-frame window"``, ``"per clip"``...
    model_id : the default weights (a Hugging Face id); empty for offline encoders.
    description : one line for ``blemore encoders``.
    default_layer : what it gives without ``:LAYERS`` (model encoders).
    face_crop : a video model that accepts ``--face-crop``.
    requires : packages it imports (checked, with the install command, before anything is built).
    """

    name: str
    modality: Modality
    factory: str
    dim: int
    rate: str
    model_id: str = ""
    description: str = ""
    default_layer: str = ""
    face_crop: bool = False
    requires: tuple[Requirement, ...] = ()

    @property
    def offline(self) -> bool:
        """True if it needs no downloaded weights."""
        return not self.model_id

    def builder(self) -> Callable[[BuildRequest], Encoder]:
        """The factory function (its module imported now)."""
        module, _, function = self.factory.partition(":")
        return getattr(importlib.import_module(module), function)


_SMILE = "blemore.encoders.smile"
_HF = "blemore.encoders.hf"
_LAST = "last hidden state (the model's last_hidden_state)"
_LAST_BLOCK = "last block ({n}), token mean"

ENCODERS: dict[str, EncoderInfo] = {}


def register(info: EncoderInfo) -> EncoderInfo:
    """Add a row to :data:`ENCODERS` (a name may be registered once)."""
    if info.name in ENCODERS:
        raise ValueError(f"encoder {info.name!r} is registered twice")
    if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", info.name) or ":" not in info.factory:
        raise ValueError(f"encoder {info.name!r}: bad name or factory {info.factory!r}")
    ENCODERS[info.name] = info
    return info


for _info in [
    EncoderInfo("opensmile", "audio", f"{_SMILE}:build_lld", 25, "100/s",
                description="openSMILE eGeMAPSv02 low-level descriptors", requires=(MEDIA,)),
    EncoderInfo("egemaps", "audio", f"{_SMILE}:build_functionals", 88, "per clip",
                description="openSMILE eGeMAPSv02 functionals (the official baseline's eGeMAPS)",
                requires=(MEDIA,)),
    EncoderInfo("facemesh", "video", "blemore.encoders.facemesh:build", 214, "15/s",
                description="MediaPipe Face Mesh geometry", requires=(FACE,)),
    EncoderInfo("wavlm-large", "audio", f"{_HF}:build_audio", 1024, "50/s", "microsoft/wavlm-large",
                "WavLM Large", _LAST, requires=(TORCH, HF)),
    EncoderInfo("hubert-large", "audio", f"{_HF}:build_audio", 1024, "50/s", "facebook/hubert-large-ll60k",
                "HuBERT Large (LL-60k)", _LAST + ": the paper's (s3prl hubert_large_ll60k last_hidden_state)",
                requires=(TORCH, HF)),
    EncoderInfo("wav2vec2", "audio", f"{_HF}:build_audio", 768, "50/s", "facebook/wav2vec2-base",
                "wav2vec 2.0 Base", _LAST, requires=(TORCH, HF)),
    EncoderInfo("wav2vec2-base", "audio", f"{_HF}:build_audio", 768, "50/s", "facebook/wav2vec2-base",
                "wav2vec 2.0 Base", _LAST, requires=(TORCH, HF)),
    EncoderInfo("wav2vec2-large", "audio", f"{_HF}:build_audio", 1024, "50/s", "facebook/wav2vec2-large-lv60",
                "wav2vec 2.0 Large (LV-60)", _LAST, requires=(TORCH, HF)),
    EncoderInfo("videomae", "video", f"{_HF}:build_videomae", 1024, "per 16-frame window",
                "MCG-NJU/videomae-large", "VideoMAE (v1) Large, 16 frames at 30/s",
                _LAST_BLOCK.format(n=24), face_crop=True, requires=(TORCH, HF)),
    EncoderInfo("videomae-base", "video", f"{_HF}:build_videomae", 768, "per 16-frame window",
                "MCG-NJU/videomae-base", "VideoMAE (v1) Base, 16 frames at 30/s",
                _LAST_BLOCK.format(n=12), face_crop=True, requires=(TORCH, HF)),
    EncoderInfo("clip", "video", f"{_HF}:build_clip", 1024, "per frame, 30/s", "openai/clip-vit-large-patch14",
                "CLIP ViT-L/14 image tower", "pooled output (CLS after the final layer norm)", face_crop=True,
                requires=(TORCH, HF)),
    EncoderInfo("clip-base", "video", f"{_HF}:build_clip", 768, "per frame, 30/s",
                "openai/clip-vit-base-patch32", "CLIP ViT-B/32 image tower",
                "pooled output (CLS after the final layer norm)", face_crop=True, requires=(TORCH, HF)),
    EncoderInfo("clip-b32", "video", f"{_HF}:build_clip_projected", 512, "per frame, every frame",
                "openai/clip-vit-base-patch32", "CLIP ViT-B/32 image embedding (the paper's CLIP)",
                "projected image embedding (get_image_features)", face_crop=True, requires=(TORCH, HF)),
    EncoderInfo("videomaev2", "video", "blemore.encoders.videomae_v2:build", 1408, "per 16-frame window",
                "vit_g_hybrid_pt_1200e_k710_ft.pth", "VideoMAEv2 ViT-g/14 (a local checkpoint file; the paper's)",
                "fc_norm of the mean token of the last block (the official script's)", face_crop=True,
                requires=(TORCH, HF)),
    EncoderInfo("videomaev2-base", "video", "blemore.encoders.videomae_v2:build", 768, "per 16-frame window",
                "vit_b_k710_dl_from_giant.pth", "VideoMAEv2 ViT-B distilled (a local checkpoint file)",
                "fc_norm of the mean token of the last block", face_crop=True, requires=(TORCH, HF)),
    EncoderInfo("videomaev2-small", "video", "blemore.encoders.videomae_v2:build", 384, "per 16-frame window",
                "vit_s_k710_dl_from_giant.pth", "VideoMAEv2 ViT-S distilled (a local checkpoint file)",
                "fc_norm of the mean token of the last block", face_crop=True, requires=(TORCH, HF)),
    EncoderInfo("video-swin", "video", "blemore.encoders.video_swin:build", 1024, "per 32-frame window every 16",
                "swin_base_patch244_window877_kinetics400_22k.pth", "Video Swin-B (a local checkpoint file)",
                "pooled output of the last stage", face_crop=True, requires=(TORCH,)),
    EncoderInfo("video-swin-s", "video", "blemore.encoders.video_swin:build", 768, "per 32-frame window every 16",
                "swin_small_patch244_window877_kinetics400_1k.pth", "Video Swin-S (a local checkpoint file)",
                "pooled output of the last stage", face_crop=True, requires=(TORCH,)),
    EncoderInfo("video-swin-t", "video", "blemore.encoders.video_swin:build", 768, "per 32-frame window every 16",
                "swin_tiny_patch244_window877_kinetics400_1k.pth", "Video Swin-T (a local checkpoint file)",
                "pooled output of the last stage", face_crop=True, requires=(TORCH,)),
    EncoderInfo("imagebind-vision", "video", "blemore.encoders.imagebind:build", 1024, "per frame",
                "imagebind_huge.pth", "ImageBind huge vision tower (a local checkpoint file; the paper's)",
                "the tower's normalised embedding", face_crop=True, requires=(TORCH,)),
    EncoderInfo("imagebind-audio", "audio", "blemore.encoders.imagebind:build", 1024, "per 2 s",
                "imagebind_huge.pth", "ImageBind huge audio tower (a local checkpoint file)",
                "the tower's normalised embedding", requires=(TORCH,)),
]:
    register(_info)


def list_encoders() -> list[EncoderInfo]:
    """The registered encoders, in registry order."""
    return list(ENCODERS.values())


def store_name(spec: EncoderSpec, info: EncoderInfo) -> str:
    """The store folder's base name: the encoder's name, ``NAME-<model id>`` for another Hugging Face
    model, ``-<revision>`` appended; a local path never enters it.

    >>> store_name(parse_spec("hubert-large=/models/hubert"), ENCODERS["hubert-large"])
    'hubert-large'
    >>> store_name(parse_spec("wav2vec2-large=facebook/wav2vec2-large-xlsr-53"), ENCODERS["wav2vec2-large"])
    'wav2vec2-large-facebook-wav2vec2-large-xlsr-53'
    """
    if spec.model_id is None or spec.model_id == info.model_id or is_local_model(spec.model_id):
        base = info.name
    else:
        base = f"{info.name}-{spec.model_id}"
    if spec.revision:
        base = f"{base}-{spec.revision}"
    return re.sub(r"[^a-z0-9.-]+", "-", base.lower()).strip("-")


def check_spec(text: str | EncoderSpec) -> tuple[EncoderSpec, EncoderInfo]:
    """Parse and check a spec against the registry without building anything."""
    spec = parse_spec(text) if isinstance(text, str) else text
    info = ENCODERS.get(spec.name)
    if info is None:
        raise BlemoreError(
            f"unknown encoder {spec.name!r}: expected one of {', '.join(ENCODERS)} (see `blemore encoders`)"
        )
    if info.offline and (spec.layers is not None or spec.model_id or spec.revision):
        raise BlemoreError(f"encoder spec {spec.text!r}: {info.name} has no model id or layers to choose")
    if spec.model_id and is_local_model(spec.model_id):
        path = Path(spec.model_id).expanduser()
        if not path.exists():
            raise BlemoreError(f"encoder spec {spec.text!r}: {path}: no such folder or file (local weights)")
        if spec.revision:
            raise BlemoreError(f"encoder spec {spec.text!r}: local weights have no @REVISION")
    return spec, info


def check_requirements(text: str | EncoderSpec, *, face_crop: bool = False) -> None:
    """Raise :class:`BlemoreError` with the install command if the encoder's packages are missing
    (checked before any model is loaded)."""
    _, info = check_spec(text)
    for requirement in info.requires:
        if requirement.package == "mediapipe":
            import_mediapipe(f"the {info.name} encoder")
        elif importlib.util.find_spec(requirement.package) is None:
            raise BlemoreError(
                f"the {info.name} encoder needs {requirement.package}: pip install 'blemore[{requirement.extra}]'"
            )
    if face_crop and info.face_crop:
        import_mediapipe("--face-crop")


def build_request(
    text: str | EncoderSpec,
    *,
    device: str = "cpu",
    batch_size: int | None = None,
    model: Any = None,
    face_crop: bool = False,
    precision: Precision = "auto",
) -> tuple[BuildRequest, EncoderInfo]:
    """The checked :class:`BuildRequest` for a spec, and its registry row."""
    spec, info = check_spec(text)
    check_precision(precision)
    weights = spec.model_id or info.model_id
    local = bool(weights) and is_local_model(weights)
    if local:
        weights = str(Path(weights).expanduser().resolve())
    request = BuildRequest(
        spec=spec, name=store_name(spec, info), weights=weights, local=local, device=device,
        batch_size=batch_size, model=model, face_crop=face_crop and info.face_crop, precision=precision,
    )
    return request, info


def get_encoder(
    text: str | EncoderSpec,
    *,
    device: str = "cpu",
    batch_size: int | None = None,
    model: Any = None,
    face_crop: bool = False,
    precision: Precision = "auto",
) -> Encoder:
    """Build the encoder a spec names (``"opensmile"``, ``"wavlm-large:12"``, ``"hubert-large=/models/hubert"``...).

    ``model`` injects an already built ``transformers`` model for the model encoders
    (used by tests and benchmarks with random-initialised configs). ``face_crop``: video
    model encoders see a square crop around the detected face (folder name ``...-face``;
    other encoders ignore it). ``precision``: ``"auto"`` (bf16 autocast on CUDA, float32 on
    the CPU), ``"fp32"`` or ``"bf16"`` for the model encoders (checked for all; offline
    encoders ignore it).
    """
    request, info = build_request(text, device=device, batch_size=batch_size, model=model,
                                  face_crop=face_crop, precision=precision)
    check_requirements(request.spec, face_crop=face_crop)
    return info.builder()(request)
