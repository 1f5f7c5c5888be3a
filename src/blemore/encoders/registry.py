"""The registry of encoders by name, and :func:`get_encoder` to build one from a spec.

>>> sorted(ENCODERS)[:3]
['clip', 'clip-base', 'facemesh']
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from blemore.encoders.base import Encoder, EncoderSpec, parse_spec
from blemore.errors import BlemoreError

__all__ = ["EncoderInfo", "ENCODERS", "get_encoder", "list_encoders"]


@dataclass(frozen=True)
class EncoderInfo:
    """A registered encoder: its family, default model id and what it gives."""

    name: str
    family: str  # "opensmile" | "facemesh" | "hf-audio" | "clip" | "videomae" | CHECKPOINT_FAMILIES
    modality: str
    model_id: str = ""
    description: str = ""

    @property
    def offline(self) -> bool:
        """True if it needs no downloaded weights."""
        return not self.model_id


ENCODERS: dict[str, EncoderInfo] = {
    e.name: e
    for e in [
        EncoderInfo("opensmile", "opensmile", "audio", "", "eGeMAPSv02 low-level descriptors, 25 x 100/s"),
        EncoderInfo("facemesh", "facemesh", "video", "", "MediaPipe Face Mesh geometry, 214 x 15/s"),
        EncoderInfo("wavlm-large", "hf-audio", "audio", "microsoft/wavlm-large", "WavLM Large, 1024 x 50/s"),
        EncoderInfo("hubert-large", "hf-audio", "audio", "facebook/hubert-large-ll60k",
                    "HuBERT Large (LL-60k), 1024 x 50/s"),
        EncoderInfo("wav2vec2", "hf-audio", "audio", "facebook/wav2vec2-base", "wav2vec 2.0 Base, 768 x 50/s"),
        EncoderInfo("wav2vec2-base", "hf-audio", "audio", "facebook/wav2vec2-base", "wav2vec 2.0 Base, 768 x 50/s"),
        EncoderInfo("wav2vec2-large", "hf-audio", "audio", "facebook/wav2vec2-large-lv60",
                    "wav2vec 2.0 Large (LV-60), 1024 x 50/s"),
        EncoderInfo("videomae", "videomae", "video", "MCG-NJU/videomae-large",
                    "VideoMAE Large, 1024 per 16-frame window"),
        EncoderInfo("videomae-base", "videomae", "video", "MCG-NJU/videomae-base",
                    "VideoMAE Base, 768 per 16-frame window"),
        EncoderInfo("clip", "clip", "video", "openai/clip-vit-large-patch14", "CLIP ViT-L/14, 1024 per frame"),
        EncoderInfo("clip-base", "clip", "video", "openai/clip-vit-base-patch32", "CLIP ViT-B/32, 768 per frame"),
        # weights from a local checkpoint file (model_id: its default name; docs/encoders.md)
        EncoderInfo("videomaev2", "videomaev2", "video", "vit_g_hybrid_pt_1200e_k710_ft.pth",
                    "VideoMAEv2 ViT-g/14, 1408 per 16-frame window"),
        EncoderInfo("videomaev2-base", "videomaev2", "video", "vit_b_k710_dl_from_giant.pth",
                    "VideoMAEv2 ViT-B (distilled), 768 per 16-frame window"),
        EncoderInfo("videomaev2-small", "videomaev2", "video", "vit_s_k710_dl_from_giant.pth",
                    "VideoMAEv2 ViT-S (distilled), 384 per 16-frame window"),
        EncoderInfo("video-swin", "video-swin", "video", "swin_base_patch244_window877_kinetics400_22k.pth",
                    "Video Swin-B, 1024 per 32-frame window every 16 frames"),
        EncoderInfo("video-swin-s", "video-swin", "video", "swin_small_patch244_window877_kinetics400_1k.pth",
                    "Video Swin-S, 768 per 32-frame window every 16 frames"),
        EncoderInfo("video-swin-t", "video-swin", "video", "swin_tiny_patch244_window877_kinetics400_1k.pth",
                    "Video Swin-T, 768 per 32-frame window every 16 frames"),
        EncoderInfo("imagebind-vision", "imagebind", "video", "imagebind_huge.pth",
                    "ImageBind huge vision tower, 1024 per frame"),
        EncoderInfo("imagebind-audio", "imagebind", "audio", "imagebind_huge.pth",
                    "ImageBind huge audio tower, 1024 per 2 s"),
    ]
}
#: families whose weights come from a checkpoint file -> their module in blemore.encoders
CHECKPOINT_FAMILIES = {"videomaev2": "videomae_v2", "video-swin": "video_swin", "imagebind": "imagebind"}


def list_encoders() -> list[EncoderInfo]:
    """The registered encoders, in registry order."""
    return list(ENCODERS.values())


def _base_name(spec: EncoderSpec, info: EncoderInfo) -> str:
    if spec.model_id is None or spec.model_id == info.model_id:
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
    return spec, info


def check_requirements(text: str, *, face_crop: bool = False) -> None:
    """Raise :class:`BlemoreError` with the install command if the encoder's packages are missing
    (checked before any model is loaded)."""
    from blemore.encoders.facecrop import import_mediapipe

    _, info = check_spec(text)
    if info.family == "facemesh":
        import_mediapipe("the facemesh encoder")
    elif face_crop and info.family in ("clip", "videomae"):
        import_mediapipe("--face-crop")


def get_encoder(
    text: str | EncoderSpec,
    *,
    device: str = "cpu",
    batch_size: int | None = None,
    model: Any = None,
    face_crop: bool = False,
    precision: str = "auto",
) -> Encoder:
    """Build the encoder a spec names (``"opensmile"``, ``"wavlm-large:12"``, ...).

    ``model`` injects an already built ``transformers`` model for the model encoders
    (used by tests and benchmarks with random-initialised configs). ``face_crop``: video
    model encoders see a square crop around the detected face (folder name ``...-face``).
    ``precision``: ``"auto"`` (bf16 autocast on CUDA, float32 on the CPU), ``"fp32"`` or
    ``"bf16"`` for the model encoders (checked for all; offline encoders ignore it).
    """
    from blemore.encoders import hf

    spec, info = check_spec(text)
    hf.check_precision(precision)
    check_requirements(text, face_crop=face_crop)
    if info.family == "opensmile":
        from blemore.encoders.smile import OpenSmileEncoder

        return OpenSmileEncoder(batch_size=batch_size or 1)
    if info.family == "facemesh":
        from blemore.encoders.facemesh import FaceMeshEncoder

        return FaceMeshEncoder(batch_size=batch_size or 1)
    if info.family in CHECKPOINT_FAMILIES:
        import importlib

        module = importlib.import_module(f"blemore.encoders.{CHECKPOINT_FAMILIES[info.family]}")
        return module.from_spec(spec, info, device=device, batch_size=batch_size, model=model, face_crop=face_crop,
                                precision=precision)
    model_id = spec.model_id or info.model_id
    common = dict(base_name=_base_name(spec, info), model_id=model_id, revision=spec.revision,
                  layers=spec.layers, device=device, batch_size=batch_size, model=model, precision=precision)
    if info.family == "hf-audio":
        return hf.HFAudioEncoder(**common)
    if info.family == "clip":
        return hf.CLIPEncoder(**common, face_crop=face_crop)
    if info.family == "videomae":
        return hf.VideoMAEEncoder(**common, face_crop=face_crop)
    raise AssertionError(info.family)  # pragma: no cover
