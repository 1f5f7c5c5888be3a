"""The batched multi-member trainer: each member as if alone, against torch.optim.Adam; saved heads; devices."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from blemore.decoding import search_thresholds
from blemore.errors import BlemoreError
from blemore.labels import SOFT_VECTORS
from blemore.models.heads import canonical_model_name, hidden_size, parse_model_list
from blemore.models.trainer import HeadParams, Member, TrainConfig, forward_probs, train_members


def _data(n=260, d=12, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 36, n)
    proj = rng.normal(size=(6, d))
    X = (SOFT_VECTORS[labels] @ proj * 2 + rng.normal(size=(n, d)) + 3).astype(np.float32)
    # uneven fold sizes, so folds have different numbers of batches per epoch
    folds = np.repeat(np.arange(5), [70, 40, 55, 50, 45])
    return X, SOFT_VECTORS[labels].astype(np.float32), labels, folds


def _members(folds):
    return [Member(train=np.flatnonzero(folds != f), eval=np.flatnonzero(folds == f), seed=100 + f) for f in range(5)]


@pytest.fixture(autouse=True)
def _one_thread():
    """The reference implementation runs in torch's own threads; keep it to one (shared CPU)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


CFG = TrainConfig(epochs=6, lr=3e-3, weight_decay=1e-3, batch_size=32)


def _reference_alone(X, T, member, hidden, cfg):
    """Independent implementation: nn.Module + torch.optim.Adam, same generator order."""
    g = torch.Generator().manual_seed(member.seed)

    def lin(i, o):
        layer = torch.nn.Linear(i, o)
        b = 1 / math.sqrt(i)
        with torch.no_grad():
            layer.weight.copy_((torch.rand(o, i, generator=g) * 2 - 1) * b)
            layer.bias.copy_((torch.rand(o, generator=g) * 2 - 1) * b)
        return layer

    D = X.shape[1]
    net = torch.nn.Sequential(lin(D, hidden), torch.nn.ReLU(), lin(hidden, 6)) if hidden else lin(D, 6)
    xtr = torch.tensor(X[member.train])
    mu = xtr.double().mean(0).float()
    sd = xtr.double().std(0, unbiased=False).float()
    xs, ts = (xtr - mu) / sd, torch.tensor(T[member.train])
    xe = (torch.tensor(X[member.eval]) - mu) / sd
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    out = []
    for _ in range(cfg.epochs):
        perm = torch.randperm(len(member.train), generator=g)
        for s in range(0, len(perm), cfg.batch_size):
            b = perm[s : s + cfg.batch_size]
            opt.zero_grad()
            loss = torch.nn.functional.kl_div(torch.log_softmax(net(xs[b]), 1), ts[b], reduction="batchmean")
            loss.backward()
            opt.step()
        with torch.no_grad():
            out.append(torch.softmax(net(xe), 1).numpy())
    return np.stack(out)


@pytest.mark.parametrize("hidden,adam", [(0, "fused"), (16, "fused"), (16, "foreach")])
def test_matches_torch_adam_reference(hidden, adam):
    X, T, _, folds = _data()
    members = _members(folds)
    res = train_members(X, T, members, hidden=hidden, config=TrainConfig(**{**CFG.__dict__, "adam": adam}))
    for f in (0, 1):  # the largest and the smallest training set
        ref = _reference_alone(X, T, members[f], hidden, CFG)
        np.testing.assert_allclose(res.eval_probs[f], ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("hidden", [0, 32])
def test_batched_equals_each_fold_alone(hidden):
    X, T, labels, folds = _data(seed=1)
    members = _members(folds)
    batched = train_members(X, T, members, hidden=hidden, config=CFG)
    for f, m in enumerate(members):
        alone = train_members(X, T, [m], hidden=hidden, config=CFG)
        np.testing.assert_allclose(batched.eval_probs[f], alone.eval_probs[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(batched.train_loss[:, f], alone.train_loss[:, 0], rtol=1e-5)
        truth = labels[m.eval]
        sel = []
        for probs in (batched.eval_probs[f], alone.eval_probs[0]):
            runs = [search_thresholds(p, truth) for p in probs]
            e = int(np.argmax([r.score for r in runs]))
            sel.append((e, runs[e].alpha, runs[e].beta, runs[e].score))
        assert sel[0] == sel[1]


def test_same_seed_same_result_and_seed_matters():
    X, T, _, folds = _data()
    a = train_members(X, T, _members(folds), hidden=8, config=CFG)
    b = train_members(X, T, _members(folds), hidden=8, config=CFG)
    assert all(np.array_equal(x, y) for x, y in zip(a.eval_probs, b.eval_probs))
    other = [Member(m.train, m.eval, seed=m.seed + 1) for m in _members(folds)]
    c = train_members(X, T, other, hidden=8, config=CFG)
    assert not np.array_equal(a.eval_probs[0], c.eval_probs[0])


def test_window_logits_averaged_per_clip_and_forward_probs():
    X, T, _, folds = _data()
    groups = np.arange(40) // 4  # 10 clips of 4 rows each
    m = Member(train=np.arange(40, 260), eval=np.arange(40), seed=3, eval_groups=groups)
    res = train_members(X, T, [m], hidden=8, config=CFG)
    assert res.eval_probs[0].shape == (CFG.epochs, 10, 6)
    again = forward_probs(res.final[0], X[:40], groups=groups)
    np.testing.assert_allclose(again, res.eval_probs[0][-1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(again.sum(1), 1.0, rtol=1e-6)


def test_kept_snapshot_is_that_epochs_weights():
    X, T, _, folds = _data()
    m = _members(folds)[0]
    res = train_members(X, T, [m], hidden=8, config=CFG, on_epoch=lambda e, p, l: [0] if e == 2 else None)
    epoch, params = res.kept[0]
    assert epoch == 2
    np.testing.assert_allclose(forward_probs(params, X[m.eval]), res.eval_probs[0][1], rtol=1e-5, atol=1e-6)


def test_model_names():
    assert canonical_model_name("MLP_512") == "mlp512" and hidden_size("mlp-256") == 256
    assert parse_model_list("linear, mlp512,linear") == ["linear", "mlp512"]
    with pytest.raises(BlemoreError, match="unknown model 'mlp1024': expected one of linear, mlp256, mlp512"):
        parse_model_list("linear,mlp1024")


def test_bad_config():
    with pytest.raises(BlemoreError, match="epochs must be >= 1"):
        TrainConfig(epochs=0)
    with pytest.raises(BlemoreError, match="learning rate"):
        TrainConfig(lr=0)


def test_salience_heads_are_exactly_independent_members():
    """The salience-regression loss through the same trainer: a member batched with others equals it alone."""
    from blemore.models.multitask import salreg_targets

    X, _, labels, folds = _data(seed=2)
    T = salreg_targets(labels)
    members = _members(folds)
    batched = train_members(X, T, members, hidden=16, config=CFG, loss="salience")
    for f in (0, 3):
        alone = train_members(X, T, [members[f]], hidden=16, config=CFG, loss="salience")
        np.testing.assert_allclose(batched.eval_probs[f], alone.eval_probs[0], rtol=1e-5, atol=1e-6)
    assert batched.eval_probs[0].shape == (CFG.epochs, len(members[0].eval), 7)  # raw outputs, no softmax


def test_kept_outputs_can_be_labels():
    X, T, _, folds = _data()
    res = train_members(X, T, _members(folds)[:2], hidden=0, config=CFG,
                        keep=lambda out: np.argmax(out, axis=1).astype(np.int16))
    assert res.eval_probs[0].dtype == np.int16 and res.eval_probs[0].shape == (CFG.epochs, 70)


def test_device_and_threads():
    X, T, _, folds = _data()
    with pytest.raises(BlemoreError, match="--device 'tpu': expected auto, cpu, cuda or cuda:N"):
        train_members(X, T, _members(folds)[:1], hidden=0, config=TrainConfig(epochs=1, device="tpu"))
    if not torch.cuda.is_available():
        with pytest.raises(BlemoreError, match="no CUDA GPU is available here; use --device cpu"):
            train_members(X, T, _members(folds)[:1], hidden=0, config=TrainConfig(epochs=1, device="cuda"))
    before = torch.get_num_threads()
    train_members(X, T, _members(folds)[:1], hidden=0, config=TrainConfig(epochs=1, threads=2))
    assert torch.get_num_threads() == before
    with pytest.raises(BlemoreError, match="threads must be >= 1"):
        TrainConfig(threads=0)


def test_saved_heads_are_checked_when_loaded():
    X, T, _, folds = _data()
    head = train_members(X, T, _members(folds)[:1], hidden=8, config=CFG).final[0]
    again = HeadParams.from_dict(head.as_dict())
    np.testing.assert_array_equal(forward_probs(again, X), forward_probs(head, X))
    bad = head.as_dict()
    bad["w2"] = bad["w2"][:, :5]
    with pytest.raises(BlemoreError, match="x.npz: the saved head's arrays do not fit together"):
        HeadParams.from_dict(bad, source="x.npz")
    with pytest.raises(BlemoreError, match="lacks array"):
        HeadParams.from_dict({k: v for k, v in head.as_dict().items() if k != "scale"})
    nan = head.as_dict()
    nan["w1"] = nan["w1"].copy()
    nan["w1"][0, 0] = np.nan
    with pytest.raises(BlemoreError, match="array 'w1' is not finite"):
        HeadParams.from_dict(nan)
    with pytest.raises(BlemoreError, match="the head expects rows of 12 features"):
        forward_probs(head, X[:, :5])
