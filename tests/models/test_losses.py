"""The losses' hand-written gradients against autograd; the numpy KL against torch's."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from blemore.labels import SOFT_VECTORS
from blemore.models.losses import KL, SALIENCE, kl_batchmean, kl_torch, row_entropy
from blemore.models.multitask import salreg_targets


def _autograd(loss, logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    z = logits.clone().requires_grad_(True)
    value = (loss.row_loss(z, targets, loss.constant(targets)) * weights).sum()
    value.backward()
    return z.grad


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), rows=st.integers(1, 12), scale=st.floats(0.1, 8.0))
def test_gradients_are_the_autograd_gradients(seed, rows, scale):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 36, (rows,), generator=g).numpy()
    weights = torch.rand(rows, generator=g)
    for loss, targets, width in ((KL, SOFT_VECTORS[labels], 6), (SALIENCE, salreg_targets(labels), 7)):
        logits = torch.randn(rows, width, generator=g, dtype=torch.float64) * scale
        t = torch.as_tensor(np.asarray(targets), dtype=torch.float64)
        ours, _ = loss.gradient(logits.clone(), t, weights.double().unsqueeze(1))
        torch.testing.assert_close(ours, _autograd(loss, logits, t, weights.double()), rtol=1e-9, atol=1e-12)


def test_kl_values_agree_with_torch_kl_div():
    rng = np.random.default_rng(0)
    logits = torch.as_tensor(rng.normal(size=(9, 6)))
    targets = torch.as_tensor(SOFT_VECTORS[rng.integers(0, 36, 9)])
    reference = torch.nn.functional.kl_div(torch.log_softmax(logits, 1), targets, reduction="batchmean")
    torch.testing.assert_close(kl_torch(logits, targets), reference)
    torch.testing.assert_close(KL.row_loss(logits, targets, row_entropy(targets)).mean(), reference)
    probs = torch.softmax(logits, 1).numpy()
    assert abs(kl_batchmean(targets.numpy(), probs) - reference.item()) < 1e-12
