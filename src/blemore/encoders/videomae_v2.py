"""VideoMAE V2 (ViT-g/14 and the smaller V2 sizes) from the official checkpoint files.

What the official BLEMORE extraction script (``feature_extraction/video_encoding/VideoMAEv2_features.py``)
does, and so what this encoder does by default:

- **model**: ``vit_giant_patch14_224`` (1408 wide, 40 blocks, 16 heads, MLP 6144, patch 14,
  tubelet 2, 16 frames, mean pooling) with ``vit_g_hybrid_pt_1200e_k710_ft.pth``;
- **frames**: every frame of the clip (OpenCV reads them all), in OpenCV's **BGR** channel order,
  scaled to [0, 1] and resized to 224 x 224 -- the whole frame squashed, the aspect ratio not
  kept -- by bilinear interpolation without antialiasing; no mean/std normalisation;
- **windows**: consecutive, non-overlapping windows of 16 frames from the first frame; the last
  incomplete window is filled with **zero frames** (zeros of the model's input, black in this
  preprocessing): a clip of ``16k`` frames gives ``k`` windows, one of ``16k + r`` frames ``k + 1``;
- **output**: ``forward_features``: ``fc_norm`` (LayerNorm, eps 1e-6) of the mean over all tokens
  of the last block -- one 1408-d vector per window, i.e. ``fps / 16`` vectors per second.

Choices made here:

- **implementation**: ``transformers``' ``VideoMAEModel`` (maintained, already behind the ``hf``
  extra; the same block as the official ``VisionTransformer``: pre-norm, q and v biases without a
  k bias, the fixed sinusoid position table, exact GELU) configured as the V2 sizes, plus the
  ``fc_norm`` layer of the V2 classifier. timm has no video ViT, and the official model code is
  not a package. The official keys are mapped onto it (:func:`hf_state_from_official`: ``qkv``
  split in three, ``q_bias`` / ``v_bias`` to the query / value biases); the classifier
  (``head.*``) is read and discarded. The size is read from the checkpoint (width, depth, patch,
  MLP); the number of heads from the width (the official sizes: 384 -> 6, 768 -> 12, 1024, 1280
  and 1408 -> 16).
- **frames at their decoded size**: the decoder hands over every frame whole
  (``VideoSpec(fps=None, short_side=None)``); the resize runs on the encoder's device, as the
  official one (from the full frame, no antialiasing). Colours may differ from OpenCV's by the
  rounding of the YUV -> RGB conversion.
- **layers**: ``videomaev2:L`` gives the mean over tokens of hidden state ``L`` (0: the
  embeddings) without ``fc_norm``, as the V1 ``videomae`` encoder does; no layer (or ``last``)
  gives the official output.
- **options** (library keywords): ``padding="repeat"`` fills the last window by repeating the
  last frame instead (what the V1 encoder does for short clips); ``preprocess="imagenet"`` feeds
  the model what it was trained on instead: RGB, the centre square scaled by the decoder to 224,
  ImageNet mean/std. Either changes the store folder name (``-repeat``, ``-imagenet``).
- **precision**: bf16 autocast on CUDA by default (``precision="auto"``), float32 on the CPU.

Checkpoints: ``vit_g_hybrid_pt_1200e_k710_ft.pth`` (the paper's; after the request form of the
VideoMAEv2 model zoo), ``vit_b_k710_dl_from_giant.pth`` / ``vit_s_k710_dl_from_giant.pth``
(distilled, public). Any fine-tuned V2 ViT in the official layout loads.

>>> window_indices(20, 16, "zeros")[1].tolist()
[16, 17, 18, 19, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1]
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch

from blemore.encoders.checkpoint import (
    CheckpointEncoder,
    find_checkpoint,
    load_strict,
    read_checkpoint,
    store_name,
)
from blemore.errors import BlemoreError

__all__ = [
    "ARCHS",
    "CHECKPOINTS",
    "VideoMAEv2Arch",
    "VideoMAEv2Encoder",
    "VideoMAEv2Model",
    "build_model",
    "from_spec",
    "build",
    "hf_state_from_official",
    "infer_arch",
    "load_model",
    "official_pixels",
    "window_indices",
]

Padding = Literal["zeros", "repeat"]
Preprocess = Literal["official", "imagenet"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class VideoMAEv2Arch:
    """A VideoMAE V2 ViT: the official ``vit_*_patch*_224`` sizes, or a small one for tests."""

    width: int
    depth: int
    heads: int
    mlp: int
    patch: int = 16
    tubelet: int = 2
    frames: int = 16
    image_size: int = 224

    def describe(self) -> str:
        return f"ViT {self.width}x{self.depth} ({self.heads} heads, patch {self.patch}, {self.frames} frames)"


ARCHS = {
    "small": VideoMAEv2Arch(384, 12, 6, 1536),
    "base": VideoMAEv2Arch(768, 12, 12, 3072),
    "large": VideoMAEv2Arch(1024, 24, 16, 4096),
    "huge": VideoMAEv2Arch(1280, 32, 16, 5120),
    "giant": VideoMAEv2Arch(1408, 40, 16, 6144, patch=14),
}
_HEADS = {a.width: a.heads for a in ARCHS.values()}

#: registry name -> (default checkpoint file, where to get it)
ZOO = "https://github.com/OpenGVLab/VideoMAEv2/blob/master/docs/MODEL_ZOO.md"
CHECKPOINTS = {
    "videomaev2": ("vit_g_hybrid_pt_1200e_k710_ft.pth", f"{ZOO} (after its download request form)"),
    "videomaev2-base": ("vit_b_k710_dl_from_giant.pth",
                        "https://huggingface.co/OpenGVLab/VideoMAE2/resolve/main/distill/vit_b_k710_dl_from_giant.pth"),
    "videomaev2-small": ("vit_s_k710_dl_from_giant.pth",
                         "https://huggingface.co/OpenGVLab/VideoMAE2/resolve/main/distill/vit_s_k710_dl_from_giant.pth"),
}
LAYOUT = "VideoMAEv2 fine-tuned ViT (patch_embed.proj, blocks.N.{norm1,attn.qkv,attn.q_bias,attn.v_bias,...}, fc_norm)"


class VideoMAEv2Model(torch.nn.Module):
    """``transformers.VideoMAEModel`` with the V2 configuration, plus the classifier's ``fc_norm``.

    ``forward(pixel_values)`` with ``pixel_values`` (B, frames, 3, S, S) returns (B, width): the
    official output (``fc_norm`` of the token mean of the last block), or with ``layers=(a, b)``
    the token mean of the mean of hidden states ``a..b``.
    """

    def __init__(self, arch: VideoMAEv2Arch):
        super().__init__()
        from transformers import VideoMAEConfig, VideoMAEModel

        config = VideoMAEConfig(hidden_size=arch.width, num_hidden_layers=arch.depth, num_attention_heads=arch.heads,
                                intermediate_size=arch.mlp, patch_size=arch.patch, tubelet_size=arch.tubelet,
                                num_frames=arch.frames, image_size=arch.image_size, use_mean_pooling=True,
                                layer_norm_eps=1e-6, qkv_bias=True, hidden_act="gelu")
        self.arch = arch
        self.videomae = VideoMAEModel(config)
        self.fc_norm = torch.nn.LayerNorm(arch.width, eps=1e-6)
        self.config = config

    def truncate(self, keep: int) -> None:
        """Keep the first ``keep`` blocks (the later ones are not needed for an earlier layer)."""
        blocks = self.videomae.encoder.layer
        if keep < len(blocks):
            self.videomae.encoder.layer = torch.nn.ModuleList(list(blocks)[:keep])

    def forward(self, pixel_values, layers: tuple[int, int] | None = None):
        if layers is None:
            tokens = self.videomae(pixel_values=pixel_values).last_hidden_state
            return self.fc_norm(tokens.mean(dim=1))
        states = self.videomae(pixel_values=pixel_values, output_hidden_states=True).hidden_states
        chosen = [h.float() for h in states[layers[0] : layers[1] + 1]]
        return (chosen[0] if len(chosen) == 1 else torch.stack(chosen).mean(dim=0)).mean(dim=1)


def build_model(arch: VideoMAEv2Arch, *, device: str | torch.device | None = None) -> VideoMAEv2Model:
    """A randomly initialised model (``device="meta"``: no memory, for a checkpoint to fill)."""
    if device is None:
        return VideoMAEv2Model(arch)
    with torch.device(device):
        return VideoMAEv2Model(arch)


_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")
_BLOCK_NAMES = {
    "norm1.weight": "layernorm_before.weight", "norm1.bias": "layernorm_before.bias",
    "norm2.weight": "layernorm_after.weight", "norm2.bias": "layernorm_after.bias",
    "attn.q_bias": "attention.attention.query.bias", "attn.v_bias": "attention.attention.value.bias",
    "attn.proj.weight": "attention.output.dense.weight", "attn.proj.bias": "attention.output.dense.bias",
    "mlp.fc1.weight": "intermediate.dense.weight", "mlp.fc1.bias": "intermediate.dense.bias",
    "mlp.fc2.weight": "output.dense.weight", "mlp.fc2.bias": "output.dense.bias",
}
_TOP_NAMES = {
    "patch_embed.proj.weight": "videomae.embeddings.patch_embeddings.projection.weight",
    "patch_embed.proj.bias": "videomae.embeddings.patch_embeddings.projection.bias",
    "fc_norm.weight": "fc_norm.weight", "fc_norm.bias": "fc_norm.bias",
}
_DISCARDED = ("head.weight", "head.bias")


def hf_state_from_official(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official ``VisionTransformer`` keys -> :class:`VideoMAEv2Model` keys.

    ``blocks.N.attn.qkv.weight`` (3D, D) becomes the query, key and value weights; the
    classifier ``head.*`` is dropped; a key of no known kind is kept as it is (so that strict
    loading reports it).
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key in _DISCARDED:
            continue
        if key in _TOP_NAMES:
            out[_TOP_NAMES[key]] = value
            continue
        m = _BLOCK.match(key)
        prefix = f"videomae.encoder.layer.{m.group(1)}." if m else ""
        if m and m.group(2) == "attn.qkv.weight":
            q, k, v = value.chunk(3, dim=0)
            for part, tensor in zip(("query", "key", "value"), (q, k, v)):
                out[f"{prefix}attention.attention.{part}.weight"] = tensor
        elif m and m.group(2) in _BLOCK_NAMES:
            out[prefix + _BLOCK_NAMES[m.group(2)]] = value
        else:
            out[key] = value
    return out


def infer_arch(state: Mapping[str, torch.Tensor], *, heads: int | None = None, frames: int = 16,
               image_size: int = 224, encoder: str = "videomaev2", path: str = "") -> VideoMAEv2Arch:
    """The size of the ViT an official-layout state dict holds."""
    proj = state.get("patch_embed.proj.weight")
    fc1 = state.get("blocks.0.mlp.fc1.weight")
    if proj is None or fc1 is None or proj.ndim != 5:
        raise BlemoreError(f"{encoder}: {path} does not match the {LAYOUT} layout: no patch_embed.proj.weight "
                           f"(5-d) or blocks.0.mlp.fc1.weight")
    width = int(proj.shape[0])
    depth = 1 + max(int(m.group(1)) for k in state if (m := _BLOCK.match(k)))
    if heads is None:
        if width not in _HEADS:
            raise BlemoreError(f"{encoder}: {path}: a ViT {width} wide is not an official VideoMAEv2 size "
                               f"(widths {', '.join(map(str, sorted(_HEADS)))})")
        heads = _HEADS[width]
    return VideoMAEv2Arch(width=width, depth=depth, heads=heads, mlp=int(fc1.shape[0]), patch=int(proj.shape[-1]),
                          tubelet=int(proj.shape[2]), frames=frames, image_size=image_size)


def load_model(path, *, encoder: str = "videomaev2", heads: int | None = None, frames: int = 16,
               image_size: int = 224) -> VideoMAEv2Model:
    """The model an official VideoMAEv2 checkpoint file holds (strict: every key used, none missing)."""
    state = read_checkpoint(path, encoder=encoder)
    arch = infer_arch(state, heads=heads, frames=frames, image_size=image_size, encoder=encoder, path=str(path))
    model = build_model(arch, device="meta")
    load_strict(model, hf_state_from_official(state), path=path, encoder=encoder, layout=LAYOUT)
    return model


def window_indices(n_frames: int, window: int, padding: Padding = "zeros") -> np.ndarray:
    """Frame indices of each window, ``(n_windows, window)``; ``-1`` marks a zero frame.

    Consecutive windows from frame 0; the last incomplete one is filled with zero frames
    (``"zeros"``, the official rule) or with the clip's last frame (``"repeat"``).

    >>> window_indices(3, 4, "repeat").tolist()
    [[0, 1, 2, 2]]
    """
    if padding not in ("zeros", "repeat"):
        raise BlemoreError(f"padding={padding!r}: expected 'zeros' or 'repeat'")
    n_windows = -(-n_frames // window)
    idx = np.arange(n_windows * window, dtype=np.int64).reshape(n_windows, window)
    if padding == "repeat":
        return np.minimum(idx, n_frames - 1)
    return np.where(idx < n_frames, idx, -1)


def official_pixels(frames: torch.Tensor, size: int, *, out: torch.Tensor | None = None,
                    chunk: int = 32) -> torch.Tensor:
    """uint8 RGB frames (N, H, W, 3) -> the official model input (N, 3, size, size), float32.

    BGR channel order, [0, 1], the whole frame resized to ``size`` x ``size`` (bilinear,
    ``align_corners=False``, no antialiasing), not normalised -- per frame what the official
    ``ToFloatTensorInZeroOne`` + ``Resize((224, 224))`` do to an OpenCV frame.
    """
    n = frames.shape[0]
    if out is None:
        out = torch.empty((n, 3, size, size), device=frames.device)
    for start in range(0, n, chunk):
        x = frames[start : start + chunk].permute(0, 3, 1, 2).flip(1).float().div_(255.0)
        out[start : start + chunk] = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear",
                                                                     align_corners=False)
    return out


def imagenet_pixels(frames: torch.Tensor, size: int, *, out: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 RGB square frames -> RGB [0, 1] resized to ``size`` (antialiased), ImageNet mean/std."""
    n = frames.shape[0]
    if out is None:
        out = torch.empty((n, 3, size, size), device=frames.device)
    mean = torch.tensor(IMAGENET_MEAN, device=frames.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=frames.device).view(1, 3, 1, 1)
    for start in range(0, n, 32):
        x = frames[start : start + 32].permute(0, 3, 1, 2).float().div_(255.0)
        if x.shape[-2:] != (size, size):
            x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                                                align_corners=False)
        out[start : start + 32] = (x - mean) / std
    return out


class VideoMAEv2Encoder(CheckpointEncoder):
    """VideoMAE V2, one vector per window of 16 frames (see the module docstring)."""

    modality = "video"

    def __init__(self, *, checkpoint: str | None = None, base_name: str = "videomaev2",
                 default_file: str = CHECKPOINTS["videomaev2"][0], source: str = CHECKPOINTS["videomaev2"][1],
                 layers=None, device: str = "cpu", batch_size: int | None = None, model: VideoMAEv2Model | None = None,
                 face_crop: bool = False, precision: str = "auto", padding: Padding = "zeros",
                 preprocess: Preprocess = "official", heads: int | None = None):
        if padding not in ("zeros", "repeat"):
            raise BlemoreError(f"padding={padding!r}: expected 'zeros' or 'repeat'")
        if preprocess not in ("official", "imagenet"):
            raise BlemoreError(f"preprocess={preprocess!r}: expected 'official' or 'imagenet'")
        if model is None:
            path = find_checkpoint(checkpoint, default=default_file, encoder=base_name, source=source)
            model = load_model(path, encoder=base_name, heads=heads)
            self.checkpoint = path.name
        else:
            self.checkpoint = "" if checkpoint is None else str(checkpoint)
        self.arch = arch = model.arch
        self.architecture = arch.describe()
        self.model_id = self.checkpoint
        self.padding, self.preprocess = padding, preprocess
        self.window, self.image_size = arch.frames, arch.image_size
        self.layers = _layer_range(layers, arch.depth, base_name)
        self.layer = "last" if self.layers is None else _layer_name(*self.layers)
        self.dim = arch.width
        self.name = store_name(base_name, checkpoint, default_file)
        if self.layers is not None:
            self.name += f"-l{self.layer}"
            model.truncate(self.layers[1])
        for option, default in (("padding", "zeros"), ("preprocess", "official")):
            if getattr(self, option) != default:
                self.name += f"-{getattr(self, option)}"
        self._setup(model, device=device, precision=precision, batch_size=batch_size, cuda_batch=4, cpu_batch=1)
        if preprocess == "official":
            self.video = self._video_spec(face_crop)
        else:
            self.video = self._video_spec(face_crop, short_side=self.image_size, crop="centre")
        self.windows_per_pass = 16 if self.device.type == "cuda" else 2

    def output_fps(self, input_rate: float) -> float:
        return float(input_rate) / self.window

    def _pixels(self, clips: Sequence[np.ndarray]) -> torch.Tensor:
        """Every frame of ``clips`` as model input, (sum T + 1, 3, S, S); the last row is the zero frame."""
        size = self.image_size
        total = sum(len(c) for c in clips)
        out = torch.zeros((total + 1, 3, size, size), device=self.device)
        start = 0
        for frames in clips:
            x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)
            target = out[start : start + len(frames)]
            if self.preprocess == "official":
                official_pixels(x, size, out=target)
            else:
                imagenet_pixels(x, size, out=target)
            start += len(frames)
        return out

    def encode(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        # the padding frame is zeros (the official last-window padding)
        return self.encode_windows(inputs, self._pixels,
                                   lambda n: window_indices(n, self.window, self.padding),
                                   lambda windows: self.model(windows, layers=self.layers))

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "padding": self.padding, "preprocess": self.preprocess,
                "window": self.window, "image_size": self.image_size, "arch": asdict(self.arch)}


def _layer_range(layers, depth: int, name: str) -> tuple[int, int] | None:
    if layers is None or layers == "last":
        return None
    first, last = layers
    if last > depth:
        raise BlemoreError(f"encoder {name!r}: layer {last} does not exist (the model has hidden states 0-{depth})")
    return first, last


def _layer_name(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}-{last}"


def from_spec(spec, name: str, *, device: str = "cpu", batch_size: int | None = None, model=None,
              face_crop: bool = False, precision: str = "auto") -> VideoMAEv2Encoder:
    """The encoder a registry spec names (``videomaev2``, ``videomaev2-base=/w/vit_b_k710_dl_from_giant.pth:6``)."""
    if spec.revision:
        raise BlemoreError(f"encoder spec {spec.text!r}: {name} loads a checkpoint file; it has no @revision")
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise BlemoreError(f"{name} needs transformers: pip install 'blemore[hf]'") from None
    default_file, source = CHECKPOINTS[name]
    return VideoMAEv2Encoder(checkpoint=spec.model_id, base_name=name, default_file=default_file, source=source,
                             layers=spec.layers, device=device, batch_size=batch_size, model=model,
                             face_crop=face_crop, precision=precision)


def build(request) -> VideoMAEv2Encoder:
    """The registry's factory (:mod:`blemore.encoders.registry`): :func:`from_spec` of a checked build request."""
    return from_spec(request.spec, request.spec.name, device=request.device, batch_size=request.batch_size,
                     model=request.model, face_crop=request.face_crop, precision=request.precision)
