"""ImageBind (``imagebind_huge``): its vision tower per frame and its audio tower per 2 s of audio.

**Vision**, as the official BLEMORE extraction (``feature_extraction/video_encoding/ImageBind_features.py``
with its ``ImageBind_data.py``) does, and so this encoder by default:

- every frame of the clip (decord reads them all), RGB, scaled to [0, 1]; the shorter side resized
  to 224 (pytorchvideo's ``ShortSideScale``: bilinear, no antialiasing, the longer side
  ``floor(long / short * 224)``); normalised with CLIP's mean and standard deviation; the centre
  224 x 224 cropped (offsets rounded up, as ``uniform_crop``);
- each frame alone through the vision tower as an image (repeated to a 2-frame clip by the
  tower's ``PadIm2Video``): one L2-normalised 1024-d embedding per frame (``embeddings["vision"]``),
  i.e. ``fps`` vectors per second. (The extraction script passes ``win_size=1`` to a loader whose
  published version has no such argument; one embedding per frame is what the script stores.)

**Audio** (the paper used ImageBind's vision tower only): the mel spectrogram clips of
``ImageBind_data.py``'s ``load_and_transform_audio_data``: 16 kHz audio in clips of 2 s, each
clip's mean removed, Kaldi log mel filterbanks (128 bins, 25 ms frames every 10 ms, Hann window,
:mod:`blemore.encoders.fbank`), padded with zeros (or cut) to 204 frames, normalised with mean
-4.268 and standard deviation 9.138; each clip through the audio tower: its L2-normalised
1024-d embedding times the tower's logit scale (20), i.e. ``embeddings["audio"]`` of one clip.
The loader takes three 2 s clips spread over the audio and ImageBind averages their embeddings;
here the clips are consecutive (0-2 s, 2-4 s, ...), one row each (0.5 rows per second), so the
mean of the rows plays that part. A last piece shorter than 2 s is padded as the loader pads a
short clip; one shorter than a 25 ms analysis frame is dropped. Audio is the decoder's mono
mix-down (the loader takes a file's first channel) resampled by soxr (the loader: torchaudio).

Choices made here:

- **implementation**: a compact PyTorch implementation of the two towers written for this
  package (ImageBind is not on PyPI; its repository pins torch 1.13 and torchvision 0.14). Module
  names follow the official ``ImageBindModel`` so that a tower loads from ``imagebind_huge.pth``
  by replacing the prefixes ``modality_{preprocessors,trunks,heads,postprocessors}.<tower>.``;
  the keys of the other towers (text, depth, thermal, IMU and the other of vision / audio) are
  skipped, any other key is an error. Attention is ``torch.nn.MultiheadAttention`` as in the
  official code (the audio tower with ``add_bias_kv``).
- **frames at their decoded size** (``VideoSpec(fps=None, short_side=None)``); the resize runs on
  the encoder's device from the full frame, as the official loader's does.
- **precision**: bf16 autocast on CUDA by default, float32 on the CPU; the mel spectrogram is
  always computed in float32.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from blemore.encoders.checkpoint import (
    CheckpointEncoder,
    find_checkpoint,
    load_strict,
    read_checkpoint,
    store_name,
)
from blemore.encoders.fbank import fbank, frame_count
from blemore.errors import BlemoreError

__all__ = [
    "AUDIO_HUGE",
    "CHECKPOINT",
    "VISION_HUGE",
    "ImageBindAudioEncoder",
    "ImageBindTower",
    "ImageBindVisionEncoder",
    "TowerArch",
    "audio_clips",
    "build_tower",
    "from_spec",
    "build",
    "infer_arch",
    "load_tower",
    "melspec",
    "tower_state",
    "vision_pixels",
]

Tower = Literal["vision", "audio"]
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
AUDIO_MEAN, AUDIO_STD = -4.268, 9.138
CHECKPOINT = ("imagebind_huge.pth", "https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth")
MODALITIES = ("vision", "text", "audio", "thermal", "depth", "imu")
_HEADS = {1280: 16, 1024: 16, 768: 12}


@dataclass(frozen=True)
class TowerArch:
    """One ImageBind tower: a ViT on image patches (vision) or on mel spectrogram patches (audio)."""

    tower: Tower
    width: int
    depth: int
    heads: int
    out_dim: int = 1024
    kernel: int = 14  # vision: the patch side (the 3-d kernel is 2 x kernel x kernel); audio: 16
    stride: int = 14  # audio: 10
    image_size: int = 224  # vision
    mel_bins: int = 128  # audio
    target_len: int = 204  # audio

    @property
    def tokens(self) -> int:
        if self.tower == "vision":
            return (self.image_size // self.kernel) ** 2 + 1
        return ((self.mel_bins - self.kernel) // self.stride + 1) * ((self.target_len - self.kernel) // self.stride + 1) + 1

    def describe(self) -> str:
        return f"ImageBind {self.tower} ViT {self.width}x{self.depth} ({self.heads} heads) -> {self.out_dim}"


VISION_HUGE = TowerArch("vision", 1280, 32, 16)
AUDIO_HUGE = TowerArch("audio", 768, 12, 12, kernel=16, stride=10)


# ------------------------------------------------------------------------------------- the towers
class RepeatFrames(nn.Module):
    """An image (B, 3, H, W) -> a clip of ``times`` equal frames (B, 3, times, H, W) (``PadIm2Video``)."""

    def __init__(self, times: int):
        super().__init__()
        self.times = times

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(2).expand(-1, -1, self.times, -1, -1)


class Stem(nn.Module):
    def __init__(self, arch: TowerArch):
        super().__init__()
        if arch.tower == "vision":
            kernel = (2, arch.kernel, arch.kernel)
            self.proj = nn.Sequential(RepeatFrames(2), nn.Conv3d(3, arch.width, kernel, stride=kernel, bias=False))
            self.norm_layer = None
        else:
            self.proj = nn.Conv2d(1, arch.width, arch.kernel, stride=arch.stride, bias=False)
            self.norm_layer = nn.LayerNorm(arch.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x).flatten(2).transpose(1, 2)
        return self.norm_layer(x) if self.norm_layer is not None else x


class PosEmbedding(nn.Module):
    def __init__(self, tokens: int, width: int):
        super().__init__()
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens, width))


class Preprocessor(nn.Module):
    def __init__(self, arch: TowerArch):
        super().__init__()
        self.rgbt_stem = Stem(arch)
        self.pos_embedding_helper = PosEmbedding(arch.tokens, arch.width)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, arch.width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.rgbt_stem(x)
        tokens = torch.cat([self.cls_token.expand(len(tokens), -1, -1), tokens], dim=1)
        return tokens + self.pos_embedding_helper.pos_embed


class Mlp(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.fc1 = nn.Linear(width, 4 * width)
        self.fc2 = nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, arch: TowerArch):
        super().__init__()
        self.attn = nn.MultiheadAttention(arch.width, arch.heads, bias=True, add_bias_kv=arch.tower == "audio",
                                          batch_first=True)
        self.norm_1 = nn.LayerNorm(arch.width, eps=1e-6)
        self.mlp = Mlp(arch.width)
        self.norm_2 = nn.LayerNorm(arch.width, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm_1(x)
        x = x + self.attn(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.norm_2(x))


class Trunk(nn.Module):
    def __init__(self, arch: TowerArch):
        super().__init__()
        pre = [nn.LayerNorm(arch.width, eps=1e-6)] if arch.tower == "vision" else []
        self.pre_transformer_layer = nn.Sequential(*pre)
        self.blocks = nn.Sequential(*[Block(arch) for _ in range(arch.depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.pre_transformer_layer(x))


class ClassToken(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0]


class Normalize(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1, p=2)


class LogitScale(nn.Module):
    """Multiplies by ``exp(log_logit_scale)`` (at most 100): the audio tower's fixed scale of 20."""

    def __init__(self, init: float = 20.0):
        super().__init__()
        self.register_buffer("log_logit_scale", torch.ones([]) * math.log(init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clip(self.log_logit_scale.exp(), max=100.0) * x


class ImageBindTower(nn.Module):
    """One tower of ``ImageBindModel``: ``forward`` -> ``embeddings[tower]`` (B, out_dim).

    Input: images (B, 3, S, S) for vision, mel spectrograms (B, 1, mel_bins, target_len) for audio.
    """

    def __init__(self, arch: TowerArch):
        super().__init__()
        self.arch = arch
        self.preprocessor = Preprocessor(arch)
        self.trunk = Trunk(arch)
        self.head = nn.Sequential(nn.LayerNorm(arch.width, eps=1e-6), ClassToken(),
                                  nn.Linear(arch.width, arch.out_dim, bias=False))
        self.postprocessor = Normalize() if arch.tower == "vision" else nn.Sequential(Normalize(), LogitScale())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.postprocessor(self.head(self.trunk(self.preprocessor(x))))


def build_tower(arch: TowerArch, *, device: str | torch.device | None = None) -> ImageBindTower:
    """A randomly initialised tower (``device="meta"``: no memory, for a checkpoint to fill)."""
    if device is None:
        return ImageBindTower(arch)
    with torch.device(device):
        return ImageBindTower(arch)


# ------------------------------------------------------------------------------------- checkpoints
_PARTS = {"modality_preprocessors": "preprocessor", "modality_trunks": "trunk", "modality_heads": "head",
          "modality_postprocessors": "postprocessor"}
_KEY = re.compile(r"^(modality_preprocessors|modality_trunks|modality_heads|modality_postprocessors)\.([a-z]+)\.(.+)$")


def tower_state(state: Mapping[str, torch.Tensor], tower: Tower) -> dict[str, torch.Tensor]:
    """The keys of one tower of an ``ImageBindModel`` state dict, in :class:`ImageBindTower` names.

    Keys of the other modalities are skipped; a key of no known kind is kept as it is (so that
    strict loading reports it).
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        m = _KEY.match(key)
        if m and m.group(2) == tower:
            out[f"{_PARTS[m.group(1)]}.{m.group(3)}"] = value
        elif not (m and m.group(2) in MODALITIES):
            out[key] = value
    return out


def infer_arch(state: Mapping[str, torch.Tensor], tower: Tower, *, heads: int | None = None,
               encoder: str = "", path: str = "") -> TowerArch:
    """The size of the tower a state dict (in :class:`ImageBindTower` names) holds."""
    layout = f"{encoder}: {path} does not match the ImageBind ({tower} tower) layout"
    proj = state.get("preprocessor.rgbt_stem.proj.1.weight" if tower == "vision" else "preprocessor.rgbt_stem.proj.weight")
    pos = state.get("preprocessor.pos_embedding_helper.pos_embed")
    head = state.get("head.2.weight")
    if proj is None or pos is None or head is None:
        raise BlemoreError(f"{layout}: no modality_preprocessors.{tower}.rgbt_stem / pos_embed or "
                           f"modality_heads.{tower}.2.weight")
    width = int(proj.shape[0])
    depth = len({m.group(1) for k in state if (m := re.match(r"^trunk\.blocks\.(\d+)\.", k))})
    if heads is None:
        if width not in _HEADS:
            raise BlemoreError(f"{layout}: a tower {width} wide is not an ImageBind size ({sorted(_HEADS)})")
        heads = _HEADS[width]
    kernel = int(proj.shape[-1])
    if tower == "vision":
        side = math.isqrt(int(pos.shape[1]) - 1)
        arch = TowerArch("vision", width, depth, heads, out_dim=int(head.shape[0]), kernel=kernel, stride=kernel,
                         image_size=side * kernel)
    else:
        arch = TowerArch("audio", width, depth, heads, out_dim=int(head.shape[0]), kernel=kernel,
                         stride=AUDIO_HUGE.stride)
    if arch.tokens != int(pos.shape[1]):
        raise BlemoreError(f"{layout}: {pos.shape[1]} position embeddings, the input makes {arch.tokens} tokens")
    return arch


def load_tower(path, tower: Tower, *, encoder: str = "", heads: int | None = None) -> ImageBindTower:
    """One tower of an ImageBind checkpoint file (strict within the tower)."""
    encoder = encoder or f"imagebind-{tower}"
    state = tower_state(read_checkpoint(path, encoder=encoder), tower)
    arch = infer_arch(state, tower, heads=heads, encoder=encoder, path=str(path))
    model = build_tower(arch, device="meta")
    load_strict(model, state, path=path, encoder=encoder, layout=f"ImageBind ({tower} tower)")
    return model


# ------------------------------------------------------------------------------------- inputs
def vision_pixels(frames: torch.Tensor, size: int = 224, *, out: torch.Tensor | None = None,
                  chunk: int = 32) -> torch.Tensor:
    """uint8 RGB frames (N, H, W, 3) -> (N, 3, size, size): the official loader's frames.

    [0, 1]; shorter side to ``size`` (bilinear, no antialiasing, the longer side floored);
    the centre square (offsets rounded up); CLIP mean/std.
    """
    n, h, w = frames.shape[:3]
    new_h, new_w = (math.floor(h / w * size), size) if w < h else (size, math.floor(w / h * size))
    top, left = math.ceil((new_h - size) / 2), math.ceil((new_w - size) / 2)
    mean = torch.tensor(CLIP_MEAN, device=frames.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=frames.device).view(1, 3, 1, 1)
    if out is None:
        out = torch.empty((n, 3, size, size), device=frames.device)
    for start in range(0, n, chunk):
        x = frames[start : start + chunk].permute(0, 3, 1, 2).float().div_(255.0)
        x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False)
        out[start : start + chunk] = (x[:, :, top : top + size, left : left + size] - mean) / std
    return out


def audio_clips(n_samples: int, *, sample_rate: int = 16000, seconds: float = 2.0) -> list[tuple[int, int]]:
    """(start, end) samples of the consecutive clips: every ``seconds``, the last one shorter,
    dropped if it holds less than one 25 ms analysis frame.

    >>> audio_clips(80000)
    [(0, 32000), (32000, 64000), (64000, 80000)]
    """
    step = int(seconds * sample_rate)
    spans = [(s, min(s + step, n_samples)) for s in range(0, n_samples, step)]
    return [(a, b) for a, b in spans if frame_count(b - a, sample_rate=sample_rate) > 0]


def melspec(clips: torch.Tensor, *, target_len: int = 204, mel_bins: int = 128, sample_rate: int = 16000) -> torch.Tensor:
    """Waveform clips (B, N) of one length -> normalised log mel spectrograms (B, 1, mel_bins, target_len).

    Each clip's mean removed, Kaldi filterbanks, cut or zero-padded to ``target_len`` frames,
    then ``(x + 4.268) / 9.138`` -- ``waveform2melspec`` and the loader's normalisation.
    """
    clips = clips.float()
    energies = fbank(clips - clips.mean(dim=-1, keepdim=True), sample_rate=sample_rate, num_mel_bins=mel_bins)
    spec = energies.transpose(1, 2)[:, :, :target_len]
    spec = F.pad(spec, (0, target_len - spec.shape[-1]))
    return ((spec - AUDIO_MEAN) / AUDIO_STD).unsqueeze(1)


# ------------------------------------------------------------------------------------- the encoders
class _ImageBindEncoder(CheckpointEncoder):
    tower: Tower

    def _build(self, *, checkpoint, base_name, default_file, source, model, device, precision, batch_size,
               cuda_batch, heads) -> None:
        if model is None:
            path = find_checkpoint(checkpoint, default=default_file, encoder=base_name, source=source)
            model = load_tower(path, self.tower, encoder=base_name, heads=heads)
            self.checkpoint = path.name
        else:
            self.checkpoint = "" if checkpoint is None else str(checkpoint)
        self.arch = model.arch
        self.architecture = self.arch.describe()
        self.model_id = self.checkpoint
        self.dim = self.arch.out_dim
        self.layer = "last"
        self.name = store_name(base_name, checkpoint, default_file)
        self._setup(model, device=device, precision=precision, batch_size=batch_size, cuda_batch=cuda_batch,
                    cpu_batch=1)

    def _forward(self, inputs: torch.Tensor, per_pass: int) -> torch.Tensor:
        outs = []
        for start in range(0, len(inputs), per_pass):
            with torch.inference_mode(), self._autocast():
                outs.append(self.model(inputs[start : start + per_pass]).float())
        return torch.cat(outs) if outs else torch.empty((0, self.dim))

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "tower": self.tower, "arch": asdict(self.arch)}


class ImageBindVisionEncoder(_ImageBindEncoder):
    """ImageBind's vision tower, one embedding per frame (see the module docstring)."""

    modality = "video"
    tower = "vision"

    def __init__(self, *, checkpoint: str | None = None, base_name: str = "imagebind-vision",
                 default_file: str = CHECKPOINT[0], source: str = CHECKPOINT[1], device: str = "cpu",
                 batch_size: int | None = None, model: ImageBindTower | None = None, face_crop: bool = False,
                 precision: str = "auto", heads: int | None = None):
        self._build(checkpoint=checkpoint, base_name=base_name, default_file=default_file, source=source,
                    model=model, device=device, precision=precision, batch_size=batch_size, cuda_batch=4, heads=heads)
        self.image_size = self.arch.image_size
        self.video = self._video_spec(face_crop)
        self.frames_per_pass = 128 if self.device.type == "cuda" else 16

    def output_fps(self, input_rate: float) -> float:
        return float(input_rate)

    def encode(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        clips = [np.asarray(f) for f in inputs]
        counts = [len(c) for c in clips]
        pixels = torch.empty((sum(counts), 3, self.image_size, self.image_size), device=self.device)
        start = 0
        for frames in clips:
            x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)
            vision_pixels(x, self.image_size, out=pixels[start : start + len(frames)])
            start += len(frames)
        rows = self._forward(pixels, self.frames_per_pass).cpu().numpy()
        return [np.ascontiguousarray(a, dtype=np.float32) for a in np.split(rows, np.cumsum(counts)[:-1])]


class ImageBindAudioEncoder(_ImageBindEncoder):
    """ImageBind's audio tower, one embedding per 2 s of 16 kHz audio (see the module docstring)."""

    modality = "audio"
    tower = "audio"

    def __init__(self, *, checkpoint: str | None = None, base_name: str = "imagebind-audio",
                 default_file: str = CHECKPOINT[0], source: str = CHECKPOINT[1], device: str = "cpu",
                 batch_size: int | None = None, model: ImageBindTower | None = None, precision: str = "auto",
                 heads: int | None = None, clip_seconds: float = 2.0):
        self._build(checkpoint=checkpoint, base_name=base_name, default_file=default_file, source=source,
                    model=model, device=device, precision=precision, batch_size=batch_size, cuda_batch=32, heads=heads)
        self.clip_seconds = clip_seconds
        self.clips_per_pass = 256 if self.device.type == "cuda" else 16

    def output_fps(self, input_rate: float) -> float:
        return 1.0 / self.clip_seconds

    def _spectrograms(self, waves: Sequence[np.ndarray]) -> tuple[torch.Tensor, list[int]]:
        """Every clip of every waveform as a normalised mel spectrogram, in order; clips per waveform."""
        pieces, counts = [], []
        for wave in waves:
            spans = audio_clips(len(wave), sample_rate=self.sample_rate, seconds=self.clip_seconds)
            if not spans:
                raise BlemoreError(f"audio too short for {self.name} ({len(wave)} samples, need >= 400)")
            counts.append(len(spans))
            pieces += [wave[a:b] for a, b in spans]
        by_length: dict[int, list[int]] = {}
        for i, piece in enumerate(pieces):
            by_length.setdefault(len(piece), []).append(i)
        specs: list[Any] = [None] * len(pieces)
        for idx in by_length.values():  # clips of one length go through the filterbank together
            batch = torch.from_numpy(np.stack([pieces[i] for i in idx])).to(self.device)
            out = melspec(batch, target_len=self.arch.target_len, mel_bins=self.arch.mel_bins,
                          sample_rate=self.sample_rate)
            for i, spec in zip(idx, out):
                specs[i] = spec
        return torch.stack(specs), counts

    def encode(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        waves = [np.asarray(x, dtype=np.float32) for x in inputs]
        specs, counts = self._spectrograms(waves)
        rows = self._forward(specs, self.clips_per_pass).cpu().numpy()
        return [np.ascontiguousarray(a, dtype=np.float32) for a in np.split(rows, np.cumsum(counts)[:-1])]

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "clip_seconds": self.clip_seconds}


def from_spec(spec, name: str, *, device: str = "cpu", batch_size: int | None = None, model=None,
              face_crop: bool = False, precision: str = "auto") -> _ImageBindEncoder:
    """The encoder a registry spec names (``imagebind-vision``, ``imagebind-audio=/w/imagebind_huge.pth``)."""
    if spec.revision or spec.layers is not None:
        raise BlemoreError(f"encoder spec {spec.text!r}: {name} loads a checkpoint file and gives the "
                           f"tower's embedding; it has no @revision or :layers")
    common = dict(checkpoint=spec.model_id, base_name=name, device=device, batch_size=batch_size, model=model,
                  precision=precision)
    if name == "imagebind-audio":
        return ImageBindAudioEncoder(**common)
    return ImageBindVisionEncoder(**common, face_crop=face_crop)


def build(request) -> _ImageBindEncoder:
    """The registry's factory (:mod:`blemore.encoders.registry`): :func:`from_spec` of a checked build request."""
    return from_spec(request.spec, request.spec.name, device=request.device, batch_size=request.batch_size,
                     model=request.model, face_crop=request.face_crop, precision=request.precision)
