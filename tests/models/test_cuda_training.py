"""The batched trainer on a CUDA GPU equals the CPU run (skipped where no GPU is present; CI has none)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from blemore.labels import SOFT_VECTORS
from blemore.models.trainer import Member, TrainConfig, forward_probs, train_members

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")


@pytest.mark.parametrize("hidden,loss", [(0, "kl"), (32, "kl"), (32, "salience")])
def test_cuda_training_equals_the_cpu_run(hidden, loss):
    from blemore.models.multitask import salreg_targets

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 36, 300)
    X = (SOFT_VECTORS[labels] @ rng.normal(size=(6, 20)) + rng.normal(size=(300, 20))).astype(np.float32)
    T = salreg_targets(labels) if loss == "salience" else SOFT_VECTORS[labels].astype(np.float32)
    folds = np.repeat(np.arange(5), 60)
    members = [Member(np.flatnonzero(folds != f), np.flatnonzero(folds == f), seed=f) for f in range(5)]
    cfg = dict(epochs=5, lr=1e-3)
    cpu = train_members(X, T, members, hidden=hidden, config=TrainConfig(**cfg), loss=loss)
    gpu = train_members(X, T, members, hidden=hidden, config=TrainConfig(**cfg, device="cuda"), loss=loss)
    for a, b in zip(cpu.eval_probs, gpu.eval_probs):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
    if loss == "kl":
        np.testing.assert_allclose(forward_probs(gpu.final[0], X[:10]), forward_probs(cpu.final[0], X[:10]),
                                   rtol=1e-3, atol=1e-4)
