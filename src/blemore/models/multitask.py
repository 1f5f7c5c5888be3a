"""Heads beyond the paper's: salience as regression, trained by a small generic batched trainer.

:func:`train_generic` trains one small head per *member* (a training set of the
cross-validation) at once, like :func:`blemore.models.trainer.train_members`, but
for any output width and any loss, using plain torch autograd. Each member has its
own standardisation (fitted on its training rows), its own generator (initial
weights, shuffles) and its own mini-batches; the stacked parameters are updated by
one ``torch.optim.Adam`` (L2 weight decay). A member with fewer batches in an epoch
gets zero loss gradient in the remaining steps (Adam then still applies its
momentum and weight decay there), so members are *nearly*, not exactly, independent.

The salience-regression head (:data:`SALREG_OUTPUTS` = 7 outputs):

- 6 presence logits, one per emotion, trained with binary cross-entropy against the
  emotion set of the label (sigmoid: several may be present);
- 1 share logit, trained with squared error of ``sigmoid(share)`` against the share
  of the dominant emotion: 1.0 for a single, 0.5 for 50/50, 0.7 for 70/30.

:func:`decode_salreg` turns the 7 outputs into the nearest of the 36 labels: the
label that minimises the presence cross-entropy plus the squared share error
(scaled by :data:`SHARE_SCALE`); between a 70/30 and its 30/70 mirror, the emotion
with the larger presence logit takes the 70.

>>> import numpy as np
>>> from blemore.labels import LABEL_NAMES
>>> out = np.array([[-5, -5, -5, 5, 4, -5, 0.85]])  # hap and sad present, dominant share 0.7
>>> LABEL_NAMES[decode_salreg(out)[0]]
'hap_sad_70_30'
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch

from blemore.errors import BlemoreError
from blemore.labels import EMOTIONS, SOFT_VECTORS, VALID_LABELS
from blemore.models.trainer import Member, TrainConfig, _init_linear, epoch_batches, fit_scaler

__all__ = ["SALREG_OUTPUTS", "SHARE_SCALE", "salreg_targets", "salreg_loss", "decode_salreg", "train_generic"]

SALREG_OUTPUTS = len(EMOTIONS) + 1
#: Weight of the squared share error against the presence cross-entropy in decoding
#: (0.1 share error costs as much as 1 nat of presence evidence at the default).
SHARE_SCALE = 100.0

_PRESENCE = (SOFT_VECTORS > 0).astype(np.float64)  # (36, 6)
_SHARE = SOFT_VECTORS.max(axis=1)  # (36,) 1.0, 0.5 or 0.7
# For each label: the emotion that should have the larger presence logit (70/30 labels), else -1.
_DOMINANT = np.array(
    [int(np.argmax(v)) if l.is_blend and v.max() > 0.5 else -1 for l, v in zip(VALID_LABELS, SOFT_VECTORS)]
)
_MINOR = np.array(
    [
        int(np.flatnonzero((v > 0) & (v < 0.5))[0]) if l.is_blend and v.max() > 0.5 else -1
        for l, v in zip(VALID_LABELS, SOFT_VECTORS)
    ]
)


def salreg_targets(label_indices: np.ndarray) -> np.ndarray:
    """``(N, 7)`` targets: the 0/1 presence of each emotion, then the dominant share."""
    idx = np.asarray(label_indices, dtype=np.int64)
    return np.concatenate([_PRESENCE[idx], _SHARE[idx, None]], axis=1).astype(np.float32)


def salreg_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-row loss ``(..., )``: presence BCE (summed over emotions) + squared share error."""
    k = len(EMOTIONS)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(
        logits[..., :k], targets[..., :k], reduction="none"
    ).sum(dim=-1)
    share = torch.sigmoid(logits[..., k])
    return bce + (share - targets[..., k]) ** 2 * 10.0


def decode_salreg(outputs: np.ndarray) -> np.ndarray:
    """Label indices (N,) from salience-regression outputs ``(N, 7)`` (logits); see the module docstring."""
    out = np.asarray(outputs, dtype=np.float64)
    if out.ndim != 2 or out.shape[1] != SALREG_OUTPUTS:
        raise BlemoreError(f"salience-regression outputs must have shape (N, {SALREG_OUTPUTS}), got {out.shape}")
    k = len(EMOTIONS)
    z = out[:, :k]
    # log sigmoid and log (1 - sigmoid), stable
    log_p = -np.logaddexp(0.0, -z)
    log_q = -np.logaddexp(0.0, z)
    cost = -(log_p @ _PRESENCE.T + log_q @ (1.0 - _PRESENCE).T)  # (N, 36)
    share = 1.0 / (1.0 + np.exp(-out[:, k]))
    cost = cost + SHARE_SCALE * (share[:, None] - _SHARE[None, :]) ** 2
    # a 70/30 label whose dominant emotion has the smaller presence logit loses to its mirror
    blend70 = _DOMINANT >= 0
    wrong = np.zeros_like(cost, dtype=bool)
    wrong[:, blend70] = z[:, _DOMINANT[blend70]] < z[:, _MINOR[blend70]]
    cost = np.where(wrong, cost + 1e-6, cost)
    return np.argmin(cost, axis=1).astype(np.int64)


def train_generic(
    X: np.ndarray,
    targets: np.ndarray,
    members: Sequence[Member],
    *,
    hidden: int,
    out_dim: int,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    config: TrainConfig = TrainConfig(),
    progress: Callable[[int], None] | None = None,
) -> list[np.ndarray]:
    """Train one head per member with any per-row ``loss(logits, targets)``; return eval outputs.

    Parameters
    ----------
    X : (N, D) array
        Raw rows (one per clip); each member standardises with its own training rows.
    targets : (N, T) array
        Whatever ``loss`` expects as targets.
    members : sequence of :class:`~blemore.models.trainer.Member`
        Training and evaluation rows (``eval_groups`` is ignored: one row per clip).
    hidden : int, keyword-only
        Hidden width; 0 for a linear head.
    out_dim : int, keyword-only
        Number of outputs (logits).
    loss : callable, keyword-only
        ``loss(logits (M, B, out_dim), targets (M, B, T)) -> (M, B)`` per-row losses.
    config : TrainConfig, keyword-only
        Epochs, learning rate, weight decay, batch size.

    Returns
    -------
    list of numpy.ndarray
        Member m's raw outputs (logits) on its eval rows after every epoch, ``(epochs, E_m, out_dim)``.

    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(30, 4)).astype(np.float32)
    >>> T = rng.normal(size=(30, 2)).astype(np.float32)
    >>> mse = lambda z, t: ((z - t) ** 2).sum(-1)
    >>> out = train_generic(X, T, [Member(np.arange(20), np.arange(20, 30), seed=0)], hidden=0, out_dim=2,
    ...                     loss=mse, config=TrainConfig(epochs=3, lr=1e-2))
    >>> out[0].shape
    (3, 10, 2)
    """
    if len(members) == 0:
        raise BlemoreError("nothing to train: no members")
    previous = torch.get_num_threads()
    threads = config.threads or 1
    torch.set_num_threads(max(1, int(threads)))
    try:
        return _train_generic(X, targets, members, hidden=hidden, out_dim=out_dim, loss=loss, config=config,
                              progress=progress)
    finally:
        torch.set_num_threads(previous)


def _train_generic(X, targets, members, *, hidden, out_dim, loss, config, progress) -> list[np.ndarray]:
    Xt = torch.as_tensor(np.ascontiguousarray(X, dtype=np.float32))
    Tt = torch.as_tensor(np.ascontiguousarray(targets, dtype=np.float32))
    D = Xt.shape[1]
    M = len(members)
    B = int(config.batch_size)
    H = int(hidden)
    n_train = [len(m.train) for m in members]
    if min(n_train) == 0:
        raise BlemoreError("a member has no training rows")
    n_max = max(n_train)
    Xtr = torch.zeros(M, n_max, D)
    Ttr = torch.zeros(M, n_max, Tt.shape[1])
    n_eval = [len(m.eval) for m in members]
    e_max = max(max(n_eval), 1)
    Xev = torch.zeros(M, e_max, D)
    gens = []
    params_init: list[list[torch.Tensor]] = []
    for m, mem in enumerate(members):
        idx = torch.as_tensor(np.asarray(mem.train, dtype=np.int64))
        rows = Xt.index_select(0, idx)
        mu, sd = fit_scaler(rows)
        Xtr[m, : len(idx)] = (rows - mu) / sd
        Ttr[m, : len(idx)] = Tt.index_select(0, idx)
        if n_eval[m]:
            ev = torch.as_tensor(np.asarray(mem.eval, dtype=np.int64))
            Xev[m, : n_eval[m]] = (Xt.index_select(0, ev) - mu) / sd
        g = torch.Generator().manual_seed(int(mem.seed))
        gens.append(g)
        if H:
            w1, b1 = _init_linear(D, H, g)
            w2, b2 = _init_linear(H, out_dim, g)
            params_init.append([w1, b1, w2, b2])
        else:
            params_init.append(list(_init_linear(D, out_dim, g)))
    params = [torch.stack([p[i] for p in params_init]).requires_grad_(True) for i in range(len(params_init[0]))]
    opt = torch.optim.Adam(params, lr=config.lr, betas=(config.beta1, config.beta2), eps=config.eps,
                           weight_decay=config.weight_decay)

    def forward(x: torch.Tensor) -> torch.Tensor:
        if H:
            h = torch.baddbmm(params[1].unsqueeze(1), x, params[0]).clamp_min(0.0)
            return torch.baddbmm(params[3].unsqueeze(1), h, params[2])
        return torch.baddbmm(params[1].unsqueeze(1), x, params[0])

    n_batches = np.array([math.ceil(n / B) for n in n_train])
    S = int(n_batches.max())
    out = [np.zeros((config.epochs, n_eval[m], out_dim), dtype=np.float32) for m in range(M)]
    ar = torch.arange(M).view(M, 1)
    for epoch in range(config.epochs):
        rows, wts = epoch_batches(n_train, n_batches, B, gens)
        for s in range(S):
            x = Xtr[ar, rows[s]]
            t = Ttr[ar, rows[s]]
            opt.zero_grad(set_to_none=False)
            total = (loss(forward(x), t) * wts[s]).sum()
            total.backward()
            opt.step()
        with torch.no_grad():
            z = forward(Xev).numpy()
        for m in range(M):
            out[m][epoch] = z[m, : n_eval[m]]
        if progress is not None:
            progress(1)
    return out
