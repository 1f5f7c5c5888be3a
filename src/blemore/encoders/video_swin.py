"""Video Swin Transformer from the official checkpoint files (or torchvision's ``swin3d_*`` ones).

What the official BLEMORE extraction script (``feature_extraction/video_encoding/VideoSwinTransformer_features.py``)
does, and so what this encoder does by default:

- **model**: a Video Swin backbone (torchvision's ``swin3d_*`` in that script, loaded from a
  fine-tuned checkpoint that was not published); the feature is the ``avgpool`` output: the final
  LayerNorm, then the mean over all tokens -- 1024 wide for Swin-B (768 for T and S, 1536 for L);
- **frames**: every frame of the clip (``torchvision.io.read_video``), RGB; per frame torchvision's
  ``VideoClassification`` preset of the Swin3D weights: the shorter side resized to 256 (bilinear,
  no antialiasing, on the uint8 frame, rounded back to uint8), the centre 224 x 224 cropped,
  scaled to [0, 1], normalised with the ImageNet mean and standard deviation;
- **windows**: 32 frames with a stride of 16, taken from chunks of 10 s; a chunk keeps the last 16
  frames of the one before, and the last chunk is filled with black frames up to 10 s of frames:
  a clip shorter than 10 s always gives 17 windows (at 30 fps), the ones past its end partly or
  wholly black. One vector per window, i.e. ``fps / 16`` per second of that padded timeline.

Choices made here:

- **implementation**: a compact PyTorch implementation written for this package
  (:class:`~blemore.encoders.swin3d.SwinTransformer3D`). Neither the official code (mmaction 0.x on mmcv 1.x) nor
  torchvision can be installed beside this torch (torchvision from PyPI pins another torch).
  Its parameter names are the official backbone's, so an official checkpoint
  (``swin_base_patch244_window877_kinetics400_22k.pth``: ``state_dict`` with ``backbone.*`` and
  ``cls_head.*``) loads by dropping the ``backbone.`` prefix, and a torchvision one
  (``swin3d_b_22k-7c6ae6fa.pth``: ``features.N.M.*``, ``mlp.0`` / ``mlp.3``, ``head.*``) -- the
  layout the paper's own checkpoint had -- through a key map. The classifier is read and
  discarded. The architecture (width, depths, heads, window, patch norm) is read from the
  checkpoint, so Swin-T, S, B and L all load. The forward pass is the official one (windows
  padded and shifted, the -100 attention mask, the top-left ``N x N`` of the relative position
  index for a window that shrank to the input), with ``scaled_dot_product_attention``.
- **chunk length**: 10 s of frames is taken as 300 frames (``chunk_frames``): BLEMORE's clips are
  recorded at 30 fps, and the encoder does not see the clip's rate. The official script reads
  chunks by timestamp, so at each 10 s boundary of a longer clip it may read one frame twice; here
  chunks are cut by frame index.
- **frames at their decoded size** (``VideoSpec(fps=None, short_side=None)``); the resize runs on
  the encoder's device from the full frame, as torchvision's does.
- **options** (library keywords): ``windows="clip"`` takes the 32-frame windows (stride 16) over
  the clip alone, the last one filled with black frames, instead of the 10 s chunks (folder
  name ``-clip``).
- **precision**: bf16 autocast on CUDA by default, float32 on the CPU.

>>> official_windows(40, chunk_frames=48)[:, [0, -1]].tolist()
[[0, 31], [16, -1]]
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from blemore.encoders.checkpoint import (
    CheckpointEncoder,
    find_checkpoint,
    load_strict,
    read_checkpoint,
    store_name,
)
from blemore.encoders.swin3d import SwinArch, SwinTransformer3D, build_model
from blemore.errors import BlemoreError

__all__ = [
    "CHECKPOINTS",
    "VideoSwinEncoder",
    "clip_windows",
    "from_spec",
    "build",
    "infer_arch",
    "load_model",
    "official_pixels",
    "official_windows",
    "state_from_checkpoint",
]

Windows = Literal["official", "clip"]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_RELEASES = "https://github.com/SwinTransformer/storage/releases/download/v1.0.4/"
#: registry name -> (default checkpoint file, where to get it)
CHECKPOINTS = {
    "video-swin": ("swin_base_patch244_window877_kinetics400_22k.pth",
                   _RELEASES + "swin_base_patch244_window877_kinetics400_22k.pth"),
    "video-swin-s": ("swin_small_patch244_window877_kinetics400_1k.pth",
                     _RELEASES + "swin_small_patch244_window877_kinetics400_1k.pth"),
    "video-swin-t": ("swin_tiny_patch244_window877_kinetics400_1k.pth",
                     _RELEASES + "swin_tiny_patch244_window877_kinetics400_1k.pth"),
}
LAYOUT = ("Video Swin (official: backbone.patch_embed, backbone.layers.N.blocks.M.*, backbone.norm; or "
          "torchvision: patch_embed, features.N.M.*, norm)")


# ------------------------------------------------------------------------------------- checkpoints
_TV_BLOCK = re.compile(r"^features\.(\d+)\.(\d+)\.(.+)$")
_TV_MERGE = re.compile(r"^features\.(\d+)\.((?:reduction|norm)\..+)$")
_DISCARDED = re.compile(r"^(cls_head\.|head\.)")


def state_from_checkpoint(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str]:
    """Official or torchvision keys -> :class:`SwinTransformer3D` keys, and which layout it was.

    The classifier (``cls_head.*``, ``head.*``) is dropped; a key of no known kind is kept as it is
    (so that strict loading reports it).
    """
    torchvision = any(k.startswith("features.") for k in state)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if _DISCARDED.match(key):
            continue
        if torchvision:
            if m := _TV_BLOCK.match(key):
                stage, rest = int(m.group(1)), m.group(3).replace("mlp.0.", "mlp.fc1.").replace("mlp.3.", "mlp.fc2.")
                key = f"layers.{stage // 2}.blocks.{m.group(2)}.{rest}" if stage % 2 == 0 else key
            elif m := _TV_MERGE.match(key):
                stage = int(m.group(1))
                key = f"layers.{stage // 2}.downsample.{m.group(2)}" if stage % 2 == 1 else key
        elif key.startswith("backbone."):
            key = key[len("backbone."):]
        out[key] = value
    return out, "torchvision" if torchvision else "official"


def _window_from(table_rows: int, n: int) -> tuple[int, int, int] | None:
    """The window (Wd, Wh, Ww), Wh == Ww, with Wd*Wh*Ww == n positions and a bias table of
    (2Wd-1)(2Wh-1)(2Ww-1) rows."""
    for side in range(1, math.isqrt(n) + 1):
        if n % (side * side) == 0:
            depth = n // (side * side)
            if (2 * depth - 1) * (2 * side - 1) ** 2 == table_rows:
                return depth, side, side
    return None


def infer_arch(state: Mapping[str, torch.Tensor], *, encoder: str = "video-swin", path: str = "") -> SwinArch:
    """The backbone a state dict (in :class:`SwinTransformer3D` names) holds."""
    where = f"{encoder}: {path} does not match the {LAYOUT} layout"
    proj = state.get("patch_embed.proj.weight")
    if proj is None or proj.ndim != 5:
        raise BlemoreError(f"{where}: no patch_embed.proj.weight (5-d)")
    blocks = {}
    for key in state:
        if m := re.match(r"^layers\.(\d+)\.blocks\.(\d+)\.", key):
            blocks.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    if not blocks or sorted(blocks) != list(range(len(blocks))):
        raise BlemoreError(f"{where}: no layers.N.blocks.M.* (or features.N.M.*) keys")
    depths = tuple(len(blocks[i]) for i in range(len(blocks)))
    heads, window = [], None
    for i in range(len(depths)):
        table = state.get(f"layers.{i}.blocks.0.attn.relative_position_bias_table")
        index = state.get(f"layers.{i}.blocks.0.attn.relative_position_index")
        if table is None or index is None:
            raise BlemoreError(f"{where}: stage {i} has no relative_position_bias_table / relative_position_index")
        heads.append(int(table.shape[1]))
        window = _window_from(int(table.shape[0]), int(index.shape[0]))
        if window is None:
            raise BlemoreError(f"{where}: a bias table of {table.shape[0]} rows fits no window of "
                               f"{index.shape[0]} positions")
    dim = int(proj.shape[0])
    fc1 = state.get("layers.0.blocks.0.mlp.fc1.weight")
    ratio = float(fc1.shape[0]) / dim if fc1 is not None else 4.0
    return SwinArch(embed_dim=dim, depths=depths, heads=tuple(heads), window=window,
                    patch=tuple(int(n) for n in proj.shape[2:]), mlp_ratio=ratio,
                    patch_norm="patch_embed.norm.weight" in state)


def load_model(path, *, encoder: str = "video-swin") -> SwinTransformer3D:
    """The backbone an official or torchvision Video Swin checkpoint holds (strict loading)."""
    state, layout = state_from_checkpoint(read_checkpoint(path, encoder=encoder))
    arch = infer_arch(state, encoder=encoder, path=str(path))
    model = build_model(arch, device="meta")
    load_strict(model, state, path=path, encoder=encoder, layout=f"Video Swin ({layout})")
    return model


# ------------------------------------------------------------------------------------- windows, pixels
def official_windows(n_frames: int, *, window: int = 32, stride: int = 16, chunk_frames: int = 300) -> np.ndarray:
    """Frame indices of each window the official script takes, ``(n_windows, window)``; ``-1`` marks a
    black frame.

    Chunks of ``chunk_frames`` frames, each led by the last ``window - stride`` frames of the one
    before; the last chunk filled with black frames up to ``chunk_frames``; in each chunk the
    windows starting every ``stride`` frames that fit.
    """
    windows: list[np.ndarray] = []
    leftover = np.empty(0, np.int64)
    read = 0
    while True:
        current = np.concatenate([leftover, np.arange(read, min(read + chunk_frames, n_frames))])
        read += chunk_frames
        last = read >= n_frames
        if last and len(current) < chunk_frames:
            current = np.concatenate([current, np.full(chunk_frames - len(current), -1)])
        windows += [current[i : i + window] for i in range(0, len(current) - window + 1, stride)]
        if last:
            break
        keep = window - stride
        leftover = current[-keep:] if len(current) >= keep else np.empty(0, np.int64)
    return np.stack(windows) if windows else np.empty((0, window), np.int64)


def clip_windows(n_frames: int, *, window: int = 32, stride: int = 16) -> np.ndarray:
    """Windows every ``stride`` frames over the clip alone, the last one filled with black frames.

    >>> clip_windows(40)[:, [0, -1]].tolist()
    [[0, 31], [16, -1]]
    """
    n = 1 + max(0, math.ceil((n_frames - window) / stride))
    idx = np.arange(n)[:, None] * stride + np.arange(window)[None, :]
    return np.where(idx < n_frames, idx, -1)


def official_pixels(frames: torch.Tensor, *, resize: int = 256, crop: int = 224, out: torch.Tensor | None = None,
                    chunk: int = 32) -> torch.Tensor:
    """uint8 RGB frames (N, H, W, 3) -> (N, 3, crop, crop): torchvision's ``VideoClassification``.

    The shorter side resized to ``resize`` (the longer to ``int(resize * long / short)``) by
    bilinear interpolation without antialiasing and rounded to uint8 values, the centre
    ``crop`` square (offsets rounded as torchvision's ``center_crop``), [0, 1], ImageNet mean/std.
    """
    n, h, w = frames.shape[:3]
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = resize, int(resize * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    top, left = round((new_h - crop) / 2.0), round((new_w - crop) / 2.0)
    mean = torch.tensor(IMAGENET_MEAN, device=frames.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=frames.device).view(1, 3, 1, 1)
    if out is None:
        out = torch.empty((n, 3, crop, crop), device=frames.device)
    for start in range(0, n, chunk):
        x = frames[start : start + chunk].permute(0, 3, 1, 2).float()
        if (new_h, new_w) != (h, w):
            x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False).round_()
        x = x[:, :, top : top + crop, left : left + crop] / 255.0
        out[start : start + chunk] = (x - mean) / std
    return out


# ------------------------------------------------------------------------------------- the encoder
class VideoSwinEncoder(CheckpointEncoder):
    """Video Swin, one vector per 32-frame window every 16 frames (see the module docstring)."""

    modality = "video"

    def __init__(self, *, checkpoint: str | None = None, base_name: str = "video-swin",
                 default_file: str = CHECKPOINTS["video-swin"][0], source: str = CHECKPOINTS["video-swin"][1],
                 device: str = "cpu", batch_size: int | None = None, model: SwinTransformer3D | None = None,
                 face_crop: bool = False, precision: str = "auto", windows: Windows = "official",
                 window: int = 32, stride: int = 16, chunk_frames: int = 300, image_size: int = 224,
                 resize: int = 256):
        if windows not in ("official", "clip"):
            raise BlemoreError(f"windows={windows!r}: expected 'official' or 'clip'")
        if model is None:
            path = find_checkpoint(checkpoint, default=default_file, encoder=base_name, source=source)
            model = load_model(path, encoder=base_name)
            self.checkpoint = path.name
        else:
            self.checkpoint = "" if checkpoint is None else str(checkpoint)
        self.arch = model.arch
        self.architecture = self.arch.describe()
        self.model_id = self.checkpoint
        self.windows, self.window, self.stride, self.chunk_frames = windows, window, stride, chunk_frames
        self.image_size, self.resize = image_size, resize
        self.dim = self.arch.width
        self.layer = "last"
        self.name = store_name(base_name, checkpoint, default_file) + ("-clip" if windows == "clip" else "")
        self._setup(model, device=device, precision=precision, batch_size=batch_size, cuda_batch=8, cpu_batch=1)
        self.video = self._video_spec(face_crop)
        self.windows_per_pass = 16 if self.device.type == "cuda" else 2

    def output_fps(self, input_rate: float) -> float:
        return float(input_rate) / self.stride

    def window_indices(self, n_frames: int) -> np.ndarray:
        """The windows of a clip of ``n_frames`` frames (``-1``: a black frame)."""
        if self.windows == "clip":
            return clip_windows(n_frames, window=self.window, stride=self.stride)
        return official_windows(n_frames, window=self.window, stride=self.stride, chunk_frames=self.chunk_frames)

    def _pixels(self, clips: Sequence[np.ndarray]) -> torch.Tensor:
        """Every frame of ``clips`` preprocessed, (sum T + 1, 3, S, S); the last row is a black frame."""
        size = self.image_size
        total = sum(len(c) for c in clips)
        out = torch.empty((total + 1, 3, size, size), device=self.device)
        start = 0
        for frames in clips:
            x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)
            official_pixels(x, resize=self.resize, crop=size, out=out[start : start + len(frames)])
            start += len(frames)
        black = torch.zeros((1, self.resize, self.resize, 3), dtype=torch.uint8, device=self.device)
        official_pixels(black, resize=self.resize, crop=size, out=out[total:])
        return out

    def encode(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        # windows (w, T, 3, S, S) -> the model's (w, 3, T, S, S); the padding frame is black
        return self.encode_windows(inputs, self._pixels, self.window_indices,
                                   lambda windows: self.model(windows.permute(0, 2, 1, 3, 4)))

    def settings(self) -> dict[str, Any]:
        arch = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.arch).items()}
        return {**super().settings(), "windows": self.windows, "window": self.window, "stride": self.stride,
                "chunk_frames": self.chunk_frames, "resize": self.resize, "image_size": self.image_size, "arch": arch}


def from_spec(spec, name: str, *, device: str = "cpu", batch_size: int | None = None, model=None,
              face_crop: bool = False, precision: str = "auto") -> VideoSwinEncoder:
    """The encoder a registry spec names (``video-swin``, ``video-swin=/w/swin3d_b_22k-7c6ae6fa.pth``)."""
    if spec.revision or spec.layers is not None:
        raise BlemoreError(f"encoder spec {spec.text!r}: {name} loads a checkpoint file and gives the "
                           f"pooled output; it has no @revision or :layers")
    default_file, source = CHECKPOINTS[name]
    return VideoSwinEncoder(checkpoint=spec.model_id, base_name=name, default_file=default_file, source=source,
                            device=device, batch_size=batch_size, model=model, face_crop=face_crop,
                            precision=precision)


def build(request) -> VideoSwinEncoder:
    """The registry's factory (:mod:`blemore.encoders.registry`): :func:`from_spec` of a checked build request."""
    return from_spec(request.spec, request.spec.name, device=request.device, batch_size=request.batch_size,
                     model=request.model, face_crop=request.face_crop, precision=request.precision)
