"""Attention fusion: a small transformer over the frame sequences of several encoders.

Each clip becomes a sequence of tokens: for every encoder (modality) up to
``max_frames`` frames, taken at evenly spaced positions of the clip (frames that
are all NaN, e.g. no face found, are dropped first). A token is

``Linear_s(frame standardised) + modality_embedding[s] + position_embedding[p]``

where ``p`` is the frame's relative position in the clip quantised to
``max_frames`` slots. One or two transformer encoder layers (d = 64, 4 heads)
mix all tokens of all modalities; the mean over the valid tokens goes through a
linear layer and a softmax over the six emotions, trained with the paper's KL
divergence to the soft labels. Each member (cross-validation training set) is
trained on its own, with its own seed and its own per-modality standardisation.

This is meant to run on a CPU in seconds on the demo dataset: keep ``max_frames``
small (<= 32) and the number of epochs low.

>>> rng = np.random.default_rng(0)
>>> seqs = [[rng.normal(size=(int(rng.integers(5, 40)), 3)).astype(np.float32) for _ in range(20)]]
>>> batch = pack_sequences(seqs, max_frames=8)
>>> batch.tokens[0].shape, batch.mask.shape
((20, 8, 3), (20, 8))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from blemore.errors import BlemoreError
from blemore.models.losses import kl_torch
from blemore.models.trainer import Member, resolve_device, torch_threads

__all__ = [
    "AttentionConfig", "PackedSequences", "pack_sequences", "AttentionFusion", "AttentionState", "train_attention",
    "fit_attention",
]


@dataclass(frozen=True)
class AttentionConfig:
    """Settings of :class:`AttentionFusion` and its training."""

    d_model: int = 64
    heads: int = 4
    layers: int = 1
    max_frames: int = 32
    epochs: int = 15
    lr: float = 1e-3
    weight_decay: float = 1e-3
    batch_size: int = 32
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if not 1 <= self.max_frames <= 256:
            raise BlemoreError(f"max_frames must be in 1..256, got max_frames={self.max_frames}")
        if self.layers < 1 or self.epochs < 1:
            raise BlemoreError(f"layers and epochs must be >= 1, got layers={self.layers}, epochs={self.epochs}")
        if self.d_model % self.heads:
            raise BlemoreError(f"d_model ({self.d_model}) must be a multiple of heads ({self.heads})")


@dataclass
class PackedSequences:
    """Frame tokens of N clips for S modalities.

    ``tokens[s]``: ``(N, F, D_s)`` float32 (zeros where padded); ``mask``: ``(N, S*F)``
    True where a token is real; ``positions``: ``(N, S*F)`` slot of each token.
    """

    tokens: list[np.ndarray]
    mask: np.ndarray
    positions: np.ndarray

    @property
    def n(self) -> int:
        return int(self.mask.shape[0])


def _subsample(frames: np.ndarray, max_frames: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(frames, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    total = x.shape[0]
    keep = np.flatnonzero(~np.isnan(x).all(axis=1)) if total else np.zeros(0, dtype=np.int64)
    if keep.size == 0:
        return np.zeros((0, x.shape[1]), np.float32), np.zeros(0, np.int64)
    take = keep if keep.size <= max_frames else keep[np.round(np.linspace(0, keep.size - 1, max_frames)).astype(int)]
    pos = np.minimum((take * max_frames) // max(total, 1), max_frames - 1)
    return np.nan_to_num(x[take], nan=0.0), pos.astype(np.int64)


def pack_sequences(sources: Sequence[Sequence[np.ndarray]], *, max_frames: int = 32) -> PackedSequences:
    """Pack per-modality frame arrays ``sources[s][i]`` (clip i, ``(T, D_s)``) into padded tokens."""
    if not sources:
        raise BlemoreError("attention fusion needs at least one frame-level feature source")
    n = len(sources[0])
    S, F = len(sources), int(max_frames)
    mask = np.zeros((n, S * F), dtype=bool)
    positions = np.zeros((n, S * F), dtype=np.int64)
    tokens = []
    for s, seqs in enumerate(sources):
        if len(seqs) != n:
            raise BlemoreError(f"feature source {s} has {len(seqs)} clips, expected {n}")
        dim = np.asarray(seqs[0]).shape[-1] if n else 0
        arr = np.zeros((n, F, dim), dtype=np.float32)
        for i, frames in enumerate(seqs):
            x, pos = _subsample(frames, F)
            arr[i, : len(x)] = x
            mask[i, s * F : s * F + len(x)] = True
            positions[i, s * F : s * F + len(x)] = pos
        tokens.append(arr)
    empty = ~mask.any(axis=1)
    if empty.any():
        raise BlemoreError(f"{int(empty.sum())} clip(s) have no valid frame in any feature source (e.g. row {int(np.flatnonzero(empty)[0])})")
    return PackedSequences(tokens, mask, positions)


class AttentionFusion(torch.nn.Module):
    """Per-modality projections + modality/position embeddings -> transformer -> mean pool -> 6 logits."""

    def __init__(self, dims: Sequence[int], *, config: AttentionConfig = AttentionConfig(), n_out: int = 6) -> None:
        super().__init__()
        d = config.d_model
        self.max_frames = config.max_frames
        self.proj = torch.nn.ModuleList([torch.nn.Linear(int(k), d) for k in dims])
        self.modality = torch.nn.Parameter(torch.randn(len(dims), d) * 0.02)
        self.position = torch.nn.Parameter(torch.randn(config.max_frames, d) * 0.02)
        layer = torch.nn.TransformerEncoderLayer(
            d, config.heads, dim_feedforward=2 * d, dropout=config.dropout, batch_first=True
        )
        self.encoder = torch.nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.out = torch.nn.Linear(d, n_out)

    def forward(self, tokens: list[torch.Tensor], mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        parts = [self.proj[s](t) + self.modality[s] for s, t in enumerate(tokens)]
        h = torch.cat(parts, dim=1) + self.position[positions]
        h = self.encoder(h, src_key_padding_mask=~mask)
        m = mask.unsqueeze(-1).float()
        pooled = (h * m).sum(dim=1) / m.sum(dim=1).clamp_min(1.0)
        return self.out(pooled)


@dataclass
class AttentionState:
    """A trained :class:`AttentionFusion`: its settings, per-source standardisation and weights (numpy).

    Saved and loaded as plain arrays (:meth:`to_arrays`, :meth:`from_arrays`), never pickled.
    """

    config: AttentionConfig
    dims: list[int]
    means: list[np.ndarray]
    scales: list[np.ndarray]
    weights: dict[str, np.ndarray]

    def to_arrays(self) -> dict[str, np.ndarray]:
        out = {f"weights/{k}": v for k, v in self.weights.items()}
        for s, (mu, sd) in enumerate(zip(self.means, self.scales)):
            out[f"mean/{s}"], out[f"scale/{s}"] = mu, sd
        return out

    def settings(self) -> dict:
        return {"dims": list(self.dims), **{k: getattr(self.config, k) for k in AttentionConfig.__dataclass_fields__}}

    @classmethod
    def from_arrays(cls, settings: dict, arrays: dict[str, np.ndarray], *, source: str = "attention model") -> "AttentionState":
        try:
            dims = [int(d) for d in settings["dims"]]
            config = AttentionConfig(**{k: settings[k] for k in AttentionConfig.__dataclass_fields__})
        except (KeyError, TypeError, ValueError) as exc:
            raise BlemoreError(f"{source}: the saved settings are incomplete ({exc})") from None
        weights = {k[len("weights/"):]: v for k, v in arrays.items() if k.startswith("weights/")}
        try:
            means = [np.asarray(arrays[f"mean/{s}"], np.float32) for s in range(len(dims))]
            scales = [np.asarray(arrays[f"scale/{s}"], np.float32) for s in range(len(dims))]
        except KeyError as exc:
            raise BlemoreError(f"{source}: missing array {exc}") from None
        state = cls(config, dims, means, scales, weights)
        state.model()  # checks that the weights fit the architecture
        return state

    def model(self) -> AttentionFusion:
        """The module with these weights (strict: no missing or unexpected array)."""
        net = AttentionFusion(self.dims, config=self.config)
        expected = net.state_dict()
        if set(expected) != set(self.weights) or any(
            tuple(expected[k].shape) != tuple(np.shape(self.weights[k])) for k in expected
        ):
            raise BlemoreError("attention model: the saved weights do not fit its architecture")
        net.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in self.weights.items()})
        net.eval()
        return net

    def predict(self, packed: PackedSequences) -> np.ndarray:
        """Probabilities ``(N, 6)`` of the clips in ``packed``."""
        net = self.model()
        toks = _standardised(packed, self.means, self.scales)
        return _probabilities(net, toks, torch.as_tensor(packed.mask), torch.as_tensor(packed.positions),
                              np.arange(packed.n), torch.device("cpu"))


def _source_stats(packed: PackedSequences, rows: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per-source mean / std over the valid frames of ``rows`` (std 0 -> 1)."""
    F = packed.mask.shape[1] // max(len(packed.tokens), 1)
    means, scales = [], []
    for s, arr in enumerate(packed.tokens):
        valid = packed.mask[rows, s * F : (s + 1) * F]
        frames = arr[rows][valid]
        mu = frames.mean(axis=0) if len(frames) else np.zeros(arr.shape[2], np.float32)
        sd = frames.std(axis=0) if len(frames) else np.ones(arr.shape[2], np.float32)
        means.append(mu.astype(np.float32))
        scales.append(np.where(sd > 0, sd, 1.0).astype(np.float32))
    return means, scales


def _standardised(packed: PackedSequences, means: Sequence[np.ndarray], scales: Sequence[np.ndarray]) -> list[torch.Tensor]:
    F = packed.mask.shape[1] // max(len(packed.tokens), 1)
    toks = []
    for s, arr in enumerate(packed.tokens):
        z = (arr - means[s]) / scales[s]
        z[~packed.mask[:, s * F : (s + 1) * F]] = 0.0
        toks.append(torch.as_tensor(z.astype(np.float32)))
    return toks


def _probabilities(net: AttentionFusion, toks: list[torch.Tensor], mask: torch.Tensor, pos: torch.Tensor,
                   rows: np.ndarray, device: torch.device) -> np.ndarray:
    out = np.zeros((rows.size, 6), dtype=np.float64)
    net.eval()
    with torch.no_grad():
        for start in range(0, rows.size, 256):
            b = torch.as_tensor(rows[start : start + 256])
            logits = net([t[b].to(device) for t in toks], mask[b].to(device), pos[b].to(device))
            out[start : start + len(b)] = torch.softmax(logits, dim=1).cpu().numpy()
    return out


def fit_attention(
    packed: PackedSequences,
    targets: np.ndarray,
    member: Member,
    *,
    config: AttentionConfig = AttentionConfig(),
    epochs: int | None = None,
    device: str = "auto",
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, AttentionState]:
    """Train one :class:`AttentionFusion` on ``member.train``; eval probabilities after every epoch and the final state.

    ``targets`` are ``(N, 6)`` soft labels of the clips in ``packed``; the loss is the paper's
    ``KL(target || softmax(logits))`` averaged over the batch. Standardisation is fitted on
    the member's valid training frames, per source.
    """
    tr = np.asarray(member.train, dtype=np.int64)
    ev = np.asarray(member.eval, dtype=np.int64)
    if tr.size == 0:
        raise BlemoreError("a member has no training clips")
    n_epochs = int(epochs or config.epochs)
    dev = resolve_device(device)
    T = torch.as_tensor(np.asarray(targets, dtype=np.float32))
    mask, pos = torch.as_tensor(packed.mask), torch.as_tensor(packed.positions)
    means, scales = _source_stats(packed, tr)
    toks = _standardised(packed, means, scales)
    torch.manual_seed(int(member.seed) % (2**63))
    g = torch.Generator().manual_seed(int(member.seed))
    net = AttentionFusion([t.shape[2] for t in toks], config=config).to(dev)
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    out = np.zeros((n_epochs, ev.size, T.shape[1]), dtype=np.float64)
    for epoch in range(n_epochs):
        net.train()
        perm = tr[torch.randperm(tr.size, generator=g).numpy()]
        for start in range(0, perm.size, config.batch_size):
            b = torch.as_tensor(perm[start : start + config.batch_size])
            logits = net([t[b].to(dev) for t in toks], mask[b].to(dev), pos[b].to(dev))
            loss = kl_torch(logits, T[b].to(dev))
            opt.zero_grad()
            loss.backward()
            opt.step()
        out[epoch] = _probabilities(net, toks, mask, pos, ev, dev)
        if progress is not None:
            progress(1)
    weights = {k: v.detach().cpu().numpy().copy() for k, v in net.state_dict().items()}
    return out, AttentionState(config, [t.shape[2] for t in toks], means, scales, weights)


def train_attention(
    packed: PackedSequences,
    targets: np.ndarray,
    members: Sequence[Member],
    *,
    config: AttentionConfig = AttentionConfig(),
    device: str = "auto",
    progress: Callable[[int], None] | None = None,
) -> list[np.ndarray]:
    """Train one :class:`AttentionFusion` per member (:func:`fit_attention`); eval probabilities ``(epochs, E_m, 6)`` each."""
    with torch_threads(1):
        return [fit_attention(packed, targets, m, config=config, device=device, progress=progress)[0]
                for m in members]
