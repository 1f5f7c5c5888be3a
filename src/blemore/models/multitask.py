"""A head beyond the paper's: salience as regression.

The salience-regression head (:data:`SALREG_OUTPUTS` = 7 outputs), trained by the batched
trainer (:func:`blemore.models.trainer.train_members` with ``loss="salience"``, its
gradient in :mod:`blemore.models.losses`), so every member is exactly independent:

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

import numpy as np

from blemore.errors import BlemoreError
from blemore.labels import EMOTIONS, SOFT_VECTORS, VALID_LABELS

__all__ = ["SALREG_OUTPUTS", "SHARE_SCALE", "salreg_targets", "decode_salreg"]

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
