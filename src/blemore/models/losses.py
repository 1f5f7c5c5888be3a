"""The losses of the heads, in one place, with their gradients written out.

The batched trainer (:mod:`blemore.models.trainer`) never calls autograd: each loss gives
its per-row value and its gradient with respect to the logits in closed form, and says how
a clip's (averaged) logits become its outputs.

=============  ===============================================================  ==========
name           per-row loss of logits ``z`` and target ``t``                     output
=============  ===============================================================  ==========
``kl``         ``KL(t || softmax(z))`` (the paper's; with one-hot targets it is  softmax
               the cross-entropy of the 36-way head)
``salience``   presence BCE (6 sigmoids, summed) + ``10 (sigmoid(z_7) - t_7)^2``  logits
               (the salience-regression head, :mod:`blemore.models.multitask`)
=============  ===============================================================  ==========

Batches are averaged over their true size: the trainer passes per-row weights ``w``
(``1 / batch size`` on real rows, 0 on padding), so the gradient of the batch loss is
``w * dloss/dz`` row by row.

:func:`kl_batchmean` is the same KL in numpy, for validation curves.

>>> import torch
>>> z = torch.zeros(1, 6); t = torch.full((1, 6), 1 / 6)
>>> float(KL.row_loss(z, t, row_entropy(t))[0])
0.0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np
import torch

__all__ = ["Loss", "KL", "SALIENCE", "LOSSES", "LossName", "row_entropy", "kl_batchmean", "kl_torch"]

LossName = Literal["kl", "salience"]

#: Weight of the squared share error in the salience loss.
SHARE_WEIGHT = 10.0


def row_entropy(targets: torch.Tensor) -> torch.Tensor:
    """``sum t log t`` per row (0 log 0 = 0): the constant part of ``KL(t || p)``."""
    tlogt = torch.where(targets > 0, targets * torch.log(targets.clamp_min(1e-30)), torch.zeros(()))
    return tlogt.sum(dim=-1)


@dataclass(frozen=True)
class Loss:
    """A loss of the batched trainer: its gradient, its value and the outputs it predicts.

    ``gradient(logits, targets, weights)`` returns ``weights * dloss/dlogits`` (``weights``
    broadcast over the last axis) and the log-softmax it computed on the way (or None);
    ``row_loss(logits, targets, constant)`` the per-row loss (``constant`` from
    :meth:`constant`, e.g. ``sum t log t``); ``output`` maps averaged logits to what the
    head predicts.
    """

    name: LossName
    gradient: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]
    row_loss: Callable[..., torch.Tensor]
    output: Callable[[torch.Tensor], torch.Tensor]
    constant: Callable[[torch.Tensor], torch.Tensor]


def _kl_gradient(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor):
    logp = torch.log_softmax(logits, dim=-1)
    return (logp.exp() - targets).mul_(weights), logp


def _kl_row_loss(logits: torch.Tensor, targets: torch.Tensor, constant: torch.Tensor,
                 logp: torch.Tensor | None = None) -> torch.Tensor:
    if logp is None:
        logp = torch.log_softmax(logits, dim=-1)
    return constant - (targets * logp).sum(dim=-1)


def _softmax(logits: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits, dim=-1)


def _salience_gradient(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor):
    s = torch.sigmoid(logits)
    g = s - targets
    share, target_share = s[..., -1], targets[..., -1]
    g[..., -1] = 2.0 * SHARE_WEIGHT * (share - target_share) * share * (1.0 - share)
    return g.mul_(weights), None


def _salience_row_loss(logits: torch.Tensor, targets: torch.Tensor, constant: torch.Tensor,
                       logp: torch.Tensor | None = None) -> torch.Tensor:
    z, t = logits[..., :-1], targets[..., :-1]
    bce = torch.nn.functional.binary_cross_entropy_with_logits(z, t, reduction="none").sum(dim=-1)
    share = torch.sigmoid(logits[..., -1])
    return bce + SHARE_WEIGHT * (share - targets[..., -1]) ** 2


def _identity(logits: torch.Tensor) -> torch.Tensor:
    return logits


def _no_constant(targets: torch.Tensor) -> torch.Tensor:
    return torch.zeros(targets.shape[:-1])


KL = Loss("kl", _kl_gradient, _kl_row_loss, _softmax, row_entropy)
SALIENCE = Loss("salience", _salience_gradient, _salience_row_loss, _identity, _no_constant)
#: Losses by name.
LOSSES: dict[str, Loss] = {"kl": KL, "salience": SALIENCE}


def kl_torch(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``KL(targets || softmax(logits))`` averaged over the batch, differentiable (``kl_div(..., "batchmean")``)."""
    logp = torch.log_softmax(logits, dim=-1)
    terms = torch.where(targets > 0, targets * (torch.log(targets.clamp_min(1e-30)) - logp), torch.zeros(()))
    return terms.sum() / max(len(targets), 1)


def kl_batchmean(targets: np.ndarray, probs: np.ndarray) -> float:
    """``KL(targets || probs)`` averaged over rows, in float64 numpy (probabilities clipped at 1e-30)."""
    t = np.asarray(targets, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(t > 0, t * (np.log(np.where(t > 0, t, 1.0)) - np.log(np.clip(probs, 1e-30, None))), 0.0)
    return float(terms.sum() / max(len(t), 1))
