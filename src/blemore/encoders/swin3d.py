"""The Video Swin Transformer backbone (3-d shifted windows), written for this package.

The forward pass of the official backbone (``SwinTransformer3D`` in Video-Swin-Transformer's
``mmaction/models/backbones/swin_transformer.py``), which torchvision's ``SwinTransformer3d``
repeats: a 3-d patch embedding (padded to whole patches, LayerNorm), four stages of blocks with
window attention -- a relative position bias per head, windows padded to whole windows, every
other block shifted by half a window with a -100 attention mask between regions, a window
shrunk to an input dimension it covers (and then not shifted, taking the top-left ``N x N`` of the
relative position index) -- patch merging between stages, a final LayerNorm and the mean over all
tokens (the ``avgpool`` output). Attention runs through ``scaled_dot_product_attention``.

Parameter names are the official backbone's (``patch_embed``, ``layers.N.blocks.M``,
``layers.N.downsample``, ``norm``), so its checkpoints load without renaming
(:mod:`blemore.encoders.video_swin`).

>>> SwinTransformer3D(ARCHS["t"]).arch.width
768
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ARCHS",
    "SwinArch",
    "SwinTransformer3D",
    "build_model",
    "merge",
    "partition",
    "relative_index",
    "shift_mask",
    "window_and_shift",
]


@dataclass(frozen=True)
class SwinArch:
    """A Video Swin backbone."""

    embed_dim: int
    depths: tuple[int, ...]
    heads: tuple[int, ...]
    window: tuple[int, int, int] = (8, 7, 7)
    patch: tuple[int, int, int] = (2, 4, 4)
    mlp_ratio: float = 4.0
    patch_norm: bool = True

    @property
    def width(self) -> int:
        return self.embed_dim * 2 ** (len(self.depths) - 1)

    def describe(self) -> str:
        return (f"Swin3D {self.embed_dim} depths {list(self.depths)} heads {list(self.heads)} "
                f"window {list(self.window)} patch {list(self.patch)}")


ARCHS = {
    "t": SwinArch(96, (2, 2, 6, 2), (3, 6, 12, 24)),
    "s": SwinArch(96, (2, 2, 18, 2), (3, 6, 12, 24)),
    "b": SwinArch(128, (2, 2, 18, 2), (4, 8, 16, 32)),
    "l": SwinArch(192, (2, 2, 18, 2), (6, 12, 24, 48)),
}


def window_and_shift(size: Sequence[int], window: Sequence[int], shift: Sequence[int]):
    """A window no larger than the input, and no shift along a dimension the window covers."""
    w, s = list(window), list(shift)
    for i in range(3):
        if size[i] <= window[i]:
            w[i], s[i] = size[i], 0
    return tuple(w), tuple(s)


def partition(x: torch.Tensor, window: Sequence[int]) -> torch.Tensor:
    """(B, D, H, W, C) -> (B * windows, Wd * Wh * Ww, C)."""
    b, d, h, w, c = x.shape
    x = x.view(b, d // window[0], window[0], h // window[1], window[1], w // window[2], window[2], c)
    return x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, window[0] * window[1] * window[2], c)


def merge(windows: torch.Tensor, window: Sequence[int], b: int, d: int, h: int, w: int) -> torch.Tensor:
    """The inverse of :func:`partition`."""
    x = windows.view(b, d // window[0], h // window[1], w // window[2], window[0], window[1], window[2], -1)
    return x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(b, d, h, w, -1)


def shift_mask(size: Sequence[int], window: Sequence[int], shift: Sequence[int], device) -> torch.Tensor:
    """The (windows, N, N) mask of 0 / -100 that keeps shifted windows from mixing regions."""
    region = torch.zeros((1, *size, 1), device=device)
    count = 0
    spans = [(slice(-window[i]), slice(-window[i], -shift[i]), slice(-shift[i], None)) for i in range(3)]
    for d in spans[0]:
        for h in spans[1]:
            for w in spans[2]:
                region[:, d, h, w, :] = count
                count += 1
    ids = partition(region, window).squeeze(-1)
    diff = ids.unsqueeze(1) - ids.unsqueeze(2)
    return diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)


def relative_index(window: Sequence[int]) -> torch.Tensor:
    """Index into the relative position bias table of each pair of positions in a window."""
    coords = torch.stack(torch.meshgrid(*[torch.arange(n) for n in window], indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
    rel = rel + torch.tensor([n - 1 for n in window])
    rel = rel * torch.tensor([(2 * window[1] - 1) * (2 * window[2] - 1), 2 * window[2] - 1, 1])
    return rel.sum(-1)


class WindowAttention3D(nn.Module):
    def __init__(self, dim: int, window: tuple[int, int, int], heads: int):
        super().__init__()
        self.heads = heads
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window[0] - 1) * (2 * window[1] - 1) * (2 * window[2] - 1), heads))
        self.register_buffer("relative_position_index", relative_index(window))
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, windows_per_item: int) -> torch.Tensor:
        bw, n, c = x.shape
        qkv = self.qkv(x).reshape(bw, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        index = self.relative_position_index[:n, :n].reshape(-1)
        bias = self.relative_position_bias_table[index].reshape(n, n, -1).permute(2, 0, 1)  # heads, N, N
        if mask is not None:
            bias = bias.unsqueeze(0) + mask.unsqueeze(1)  # windows, heads, N, N
            shape = (bw // windows_per_item, windows_per_item, self.heads, n, -1)
        else:
            shape = (bw, self.heads, n, -1)
        q, k, v = (t.reshape(shape) for t in qkv)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
        return self.proj(out.reshape(bw, self.heads, n, -1).transpose(1, 2).reshape(bw, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class SwinBlock3D(nn.Module):
    def __init__(self, dim: int, heads: int, window: tuple[int, int, int], shift: tuple[int, int, int],
                 mlp_ratio: float):
        super().__init__()
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention3D(dim, window, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, d, h, w, _ = x.shape
        window, shift = window_and_shift((d, h, w), self.window, self.shift)
        y = self.norm1(x)
        pads = [(window[i] - n % window[i]) % window[i] for i, n in enumerate((d, h, w))]
        y = F.pad(y, (0, 0, 0, pads[2], 0, pads[1], 0, pads[0]))
        _, dp, hp, wp, _ = y.shape
        shifted = any(s > 0 for s in shift)
        if shifted:
            y = torch.roll(y, shifts=tuple(-s for s in shift), dims=(1, 2, 3))
        per_item = (dp // window[0]) * (hp // window[1]) * (wp // window[2])
        y = self.attn(partition(y, window), mask if shifted else None, per_item)
        y = merge(y, window, b, dp, hp, wp)
        if shifted:
            y = torch.roll(y, shifts=tuple(shift), dims=(1, 2, 3))
        x = x + y[:, :d, :h, :w]
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2:4]
        x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        x = torch.cat([x[:, :, 0::2, 0::2], x[:, :, 1::2, 0::2], x[:, :, 0::2, 1::2], x[:, :, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x))


class BasicLayer(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, window: tuple[int, int, int], mlp_ratio: float,
                 downsample: bool):
        super().__init__()
        self.window = window
        self.shift = tuple(n // 2 for n in window)
        self.blocks = nn.ModuleList([
            SwinBlock3D(dim, heads, window, (0, 0, 0) if i % 2 == 0 else self.shift, mlp_ratio) for i in range(depth)
        ])
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[1:4]
        window, shift = window_and_shift(size, self.window, self.shift)
        padded = [math.ceil(n / window[i]) * window[i] for i, n in enumerate(size)]
        mask = shift_mask(padded, window, shift, x.device) if any(s > 0 for s in shift) else None
        for block in self.blocks:
            x = block(x, mask)
        return self.downsample(x) if self.downsample is not None else x


class PatchEmbed3D(nn.Module):
    def __init__(self, patch: tuple[int, int, int], dim: int, norm: bool):
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv3d(3, dim, kernel_size=patch, stride=patch)
        self.norm = nn.LayerNorm(dim) if norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d, h, w = x.shape[2:]
        pads = [(p - n % p) % p for p, n in zip(self.patch, (d, h, w))]
        x = F.pad(x, (0, pads[2], 0, pads[1], 0, pads[0]))
        x = self.proj(x).permute(0, 2, 3, 4, 1)  # B, D, H, W, C
        return self.norm(x) if self.norm is not None else x


class SwinTransformer3D(nn.Module):
    """The Video Swin backbone; ``forward`` (B, 3, T, H, W) -> (B, width): the final LayerNorm, then
    the mean over all tokens (the official ``avgpool`` output). Parameter names are the official
    backbone's (``patch_embed``, ``layers.N.blocks.M``, ``layers.N.downsample``, ``norm``)."""

    def __init__(self, arch: SwinArch):
        super().__init__()
        self.arch = arch
        self.patch_embed = PatchEmbed3D(arch.patch, arch.embed_dim, arch.patch_norm)
        n = len(arch.depths)
        self.layers = nn.ModuleList([
            BasicLayer(arch.embed_dim * 2**i, arch.depths[i], arch.heads[i], arch.window, arch.mlp_ratio, i < n - 1)
            for i in range(n)
        ])
        self.norm = nn.LayerNorm(arch.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        return self.norm(x).mean(dim=(1, 2, 3))


def build_model(arch: SwinArch, *, device: str | torch.device | None = None) -> SwinTransformer3D:
    """A randomly initialised backbone (``device="meta"``: no memory, for a checkpoint to fill)."""
    if device is None:
        return SwinTransformer3D(arch)
    with torch.device(device):
        return SwinTransformer3D(arch)
