"""A batched multi-fold trainer: many small heads trained at once, each as if alone.

Cross-validation trains the same small head on several training sets (the five
folds, plus the model on all training clips used for the test). Each of them is
a *member*. Here all members live in stacked tensors — weights ``(M, D, H)`` —
and every step is one batched matrix product (``torch.baddbmm``) for all of them.
Gradients are written out by hand (softmax + KL has a closed form; the input's
gradient is never needed). The Adam update follows ``torch.optim.Adam`` (weight
decay added to the gradient as L2): it runs on per-member views of the stacked
tensors, each with its own step count, through torch's fused CPU Adam kernel
(or the same update from ``torch._foreach_*`` operations, ``adam="foreach"``).
Per-member views make the step mask free: a member with no batch in a step is
left out of the call.

Each member behaves exactly as if trained alone:

- its own ``torch.Generator`` (seeded per member) draws its initial weights and
  its per-epoch shuffles, in the same order as alone;
- its standardisation (mean / std) is fitted on its own training rows only;
- its epoch has ``ceil(n_train / batch_size)`` steps (the last partial batch is
  kept, averaged over its true size); a step in which a member has no batch left
  does not touch that member (no update, no step count), so a member whose
  epoch has fewer batches is unaffected by the others.

After every epoch each member's evaluation rows are scored in one batched
forward pass (window logits averaged per clip before the softmax) and handed to
a callback, which may ask to keep a copy of some members' current weights.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(40, 5)).astype(np.float32)
>>> T = np.eye(6, dtype=np.float32)[rng.integers(0, 6, 40)]
>>> members = [Member(train=np.arange(0, 30), eval=np.arange(30, 40), seed=1)]
>>> out = train_members(X, T, members, hidden=8, config=TrainConfig(epochs=2, lr=1e-2))
>>> out.eval_probs[0].shape
(2, 10, 6)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from blemore.errors import BlemoreError

__all__ = ["TrainConfig", "Member", "TrainResult", "HeadParams", "train_members", "forward_probs", "fit_scaler"]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; defaults are the paper's."""

    epochs: int = 200
    lr: float = 5e-6
    weight_decay: float = 1e-3
    batch_size: int = 32
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    #: Adam implementation: torch's fused CPU kernel, or the same update composed of
    #: ``torch._foreach_*`` operations (as ``torch.optim.Adam(foreach=True)``).
    adam: str = "fused"
    #: CPU threads for training (None: 1). The per-step products are small (32 rows);
    #: on a shared CPU, thread synchronisation costs more than a second thread gains
    #: (measured: 2 threads 10x slower than 1 on a busy 2-core machine).
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise BlemoreError(f"epochs must be >= 1, got epochs={self.epochs}")
        if self.batch_size < 1:
            raise BlemoreError(f"batch size must be >= 1, got batch_size={self.batch_size}")
        if not self.lr > 0:
            raise BlemoreError(f"learning rate must be > 0, got lr={self.lr}")
        if self.adam not in ("fused", "foreach"):
            raise BlemoreError(f"adam must be 'fused' or 'foreach', got adam={self.adam!r}")
        if self.weight_decay < 0:
            raise BlemoreError(f"weight decay must be >= 0, got weight_decay={self.weight_decay}")


@dataclass
class Member:
    """One training set: row indices into ``X`` to train on and to evaluate.

    ``eval_groups`` maps each evaluation row to a clip number (0..C-1); the
    logits of rows of one clip are averaged before the softmax. ``None`` means
    one row per clip.
    """

    train: np.ndarray
    eval: np.ndarray
    seed: int
    eval_groups: np.ndarray | None = None


@dataclass
class HeadParams:
    """Weights of one trained head plus the standardisation it expects (numpy, float32)."""

    mean: np.ndarray
    scale: np.ndarray
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray | None = None
    b2: np.ndarray | None = None

    @property
    def hidden(self) -> int:
        return 0 if self.w2 is None else int(self.w1.shape[1])

    def as_dict(self) -> dict[str, np.ndarray]:
        d = {"mean": self.mean, "scale": self.scale, "w1": self.w1, "b1": self.b1}
        if self.w2 is not None:
            d.update(w2=self.w2, b2=self.b2)
        return d


@dataclass
class TrainResult:
    """What :func:`train_members` returns.

    ``eval_probs[m]``: ``(epochs, C_m, 6)`` probabilities of member m's eval clips
    after every epoch; ``train_loss``: ``(epochs, M)`` mean batch loss;
    ``final[m]``: weights after the last epoch; ``kept[m]``: ``(epoch, weights)``
    of the last copy the callback asked for (epochs count from 1).
    """

    eval_probs: list[np.ndarray]
    train_loss: np.ndarray
    final: list[HeadParams]
    kept: dict = field(default_factory=dict)
    flops: float = 0.0


EpochCallback = Callable[[int, list[np.ndarray], np.ndarray], "Sequence[int] | None"]


def fit_scaler(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and scale as scikit-learn's ``StandardScaler`` (ddof=0; scale 1 where std is 0)."""
    x64 = x.double()
    mean = x64.mean(dim=0)
    std = x64.std(dim=0, unbiased=False)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return mean.float(), std.float()


def epoch_batches(
    n_train: Sequence[int], n_batches: np.ndarray, batch_size: int, gens: Sequence[torch.Generator]
) -> tuple[torch.Tensor, torch.Tensor]:
    """One epoch's shuffled mini-batches of every member, as index and weight tensors ``(S, M, B)``.

    Member m draws one permutation of its ``n_train[m]`` rows from its own generator (as
    when trained alone) and cuts it into ``n_batches[m]`` batches; the last one may be
    partial. ``wts`` averages each batch over its true size (1 / size on real rows, 0 on
    padding and on the steps after a member's last batch).
    """
    B, M, S = int(batch_size), len(n_train), int(np.max(n_batches))
    rows = torch.zeros(S, M, B, dtype=torch.long)
    wts = torch.zeros(S, M, B)
    batch_rows = torch.arange(B)
    for m in range(M):
        n = int(n_train[m])
        perm = torch.randperm(n, generator=gens[m])
        padded = torch.zeros(int(n_batches[m]) * B, dtype=torch.long)
        padded[:n] = perm
        rows[: n_batches[m], m] = padded.view(-1, B)
        full = n // B
        wts[:full, m] = 1.0 / B
        rest = n - full * B
        if rest:
            wts[full, m] = (batch_rows < rest).float() / rest
    return rows, wts


def _init_linear(fan_in: int, fan_out: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    # torch.nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias.
    bound = 1.0 / math.sqrt(fan_in)
    w = (torch.rand(fan_out, fan_in, generator=g) * 2 - 1) * bound
    b = (torch.rand(fan_out, generator=g) * 2 - 1) * bound
    return w.t().contiguous(), b


def train_members(
    X: np.ndarray,
    targets: np.ndarray,
    members: Sequence[Member],
    *,
    hidden: int,
    config: TrainConfig = TrainConfig(),
    on_epoch: EpochCallback | None = None,
    progress: Callable[[int], None] | None = None,
) -> TrainResult:
    """Train one head per member, all at once.

    Parameters
    ----------
    X : (N, D) float array
        Raw (unstandardised) rows; members index into it.
    targets : (N, 6) float array
        Soft targets (rows sum to 1).
    members : sequence of :class:`Member`
    hidden : int, keyword-only
        Hidden width; 0 for a linear head.
    config : :class:`TrainConfig`, keyword-only
    on_epoch : callable, keyword-only
        ``on_epoch(epoch, eval_probs, train_loss)`` after every epoch (epoch counts
        from 1; ``eval_probs[m]`` is ``(C_m, 6)``; ``train_loss`` is ``(M,)``). It
        returns the members whose current weights should be kept, or None; an
        item ``(m, tag)`` keeps member m's weights under the key ``(m, tag)``.
    progress : callable, keyword-only
        Called with 1 after every epoch (e.g. ``tqdm.update``).
    """
    if len(members) == 0:
        raise BlemoreError("nothing to train: no members")
    threads = 1 if config.threads is None else config.threads
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, int(threads)))
    try:
        return _train(X, targets, members, hidden=hidden, config=config, on_epoch=on_epoch, progress=progress)
    finally:
        torch.set_num_threads(previous)


def _train(
    X: np.ndarray,
    targets: np.ndarray,
    members: Sequence[Member],
    *,
    hidden: int,
    config: TrainConfig,
    on_epoch: EpochCallback | None,
    progress: Callable[[int], None] | None,
) -> TrainResult:
    Xt = torch.as_tensor(np.ascontiguousarray(X, dtype=np.float32))
    Tt = torch.as_tensor(np.ascontiguousarray(targets, dtype=np.float32))
    N, D = Xt.shape
    M = len(members)
    H = int(hidden)
    B = int(config.batch_size)
    C = Tt.shape[1]
    for m, mem in enumerate(members):
        if len(mem.train) == 0:
            raise BlemoreError(f"member {m}: no training rows")

    # --- per-member standardised training rows, padded to (M, Nmax, D) -----------------
    n_train = [len(m.train) for m in members]
    n_max = max(n_train)
    means, scales = [], []
    Xtr = torch.zeros(M, n_max, D)
    Ttr = torch.zeros(M, n_max, C)
    for m, mem in enumerate(members):
        idx = torch.as_tensor(np.asarray(mem.train, dtype=np.int64))
        rows = Xt.index_select(0, idx)
        mu, sd = fit_scaler(rows)
        means.append(mu)
        scales.append(sd)
        Xtr[m, : len(idx)] = (rows - mu) / sd
        Ttr[m, : len(idx)] = Tt.index_select(0, idx)
    Xtr_flat = Xtr.view(M * n_max, D)
    Ttr_flat = Ttr.view(M * n_max, C)
    # constant part of KL: sum t log t per row
    tlogt = torch.where(Ttr_flat > 0, Ttr_flat * torch.log(Ttr_flat.clamp_min(1e-30)), torch.zeros(()))
    tlogt = tlogt.sum(dim=1)

    # --- evaluation rows, standardised per member, padded to (M, Emax, D) ----------------
    n_eval = [len(m.eval) for m in members]
    e_max = max(max(n_eval), 1)
    Xev = torch.zeros(M, e_max, D)
    groups = []
    n_clips = []
    for m, mem in enumerate(members):
        if n_eval[m]:
            idx = torch.as_tensor(np.asarray(mem.eval, dtype=np.int64))
            Xev[m, : n_eval[m]] = (Xt.index_select(0, idx) - means[m]) / scales[m]
        g = np.arange(n_eval[m]) if mem.eval_groups is None else np.asarray(mem.eval_groups, dtype=np.int64)
        if len(g) != n_eval[m]:
            raise BlemoreError(f"member {m}: eval_groups has {len(g)} entries for {n_eval[m]} eval rows")
        groups.append(g)
        n_clips.append(int(g.max()) + 1 if len(g) else 0)
    c_max = max(max(n_clips), 1)
    # flat segment ids for per-clip averaging of logits; padding goes to a dump slot
    seg = torch.full((M, e_max), M * c_max, dtype=torch.long)
    for m in range(M):
        seg[m, : n_eval[m]] = torch.as_tensor(groups[m]) + m * c_max
    seg = seg.view(-1)
    seg_count = torch.zeros(M * c_max + 1).index_add_(0, seg, torch.ones(M * e_max)).clamp_min(1.0)

    # --- parameters (initialised from each member's generator) ------------------------
    gens = []
    W1s, b1s, W2s, b2s = [], [], [], []
    for mem in members:
        g = torch.Generator().manual_seed(int(mem.seed))
        gens.append(g)
        if H:
            w1, b1 = _init_linear(D, H, g)
            w2, b2 = _init_linear(H, C, g)
            W2s.append(w2)
            b2s.append(b2)
        else:
            w1, b1 = _init_linear(D, C, g)
        W1s.append(w1)
        b1s.append(b1)
    params = [torch.stack(W1s), torch.stack(b1s).unsqueeze(1)]
    if H:
        params += [torch.stack(W2s), torch.stack(b2s).unsqueeze(1)]
    exp_avg = [torch.zeros_like(p) for p in params]
    exp_avg_sq = [torch.zeros_like(p) for p in params]
    n_batches = np.array([math.ceil(n / B) for n in n_train])
    S = int(n_batches.max())
    offsets = torch.arange(M).view(M, 1) * n_max
    loss_sum = torch.zeros(M)
    flops = 0.0
    out_dim = H if H else C

    # Preallocated work buffers: large temporaries cost more (allocation, page faults)
    # than the arithmetic at these sizes.
    xbuf = torch.empty(M * B, D)
    tbuf = torch.empty(M * B, C)
    grads = [torch.empty_like(p) for p in params]
    if H:
        hbuf = torch.empty(M, B, H)
        dhbuf = torch.empty(M, B, H)
    logit_buf = torch.empty(M, B, C)
    # Per-member views for the fused Adam kernel: a member that has no batch in a
    # step is simply left out of the call (no update, its step count unchanged).
    p_views = [[p[m] for p in params] for m in range(M)]
    g_views = [[g[m] for g in grads] for m in range(M)]
    m_views = [[t[m] for t in exp_avg] for m in range(M)]
    v_views = [[t[m] for t in exp_avg_sq] for m in range(M)]
    # One step counter per member, shared by its tensors (the kernel only reads it).
    counters = [torch.zeros((), dtype=torch.float32) for _ in range(M)]
    step_counts = [[counters[m]] * len(params) for m in range(M)]
    use_fused = config.adam == "fused" and hasattr(torch, "_fused_adam_")

    def step(active: np.ndarray, rows: torch.Tensor, wts: torch.Tensor) -> None:
        nonlocal flops
        flat = rows.view(-1)
        torch.index_select(Xtr_flat, 0, flat, out=xbuf)
        torch.index_select(Ttr_flat, 0, flat, out=tbuf)
        x = xbuf.view(M, B, D)
        t = tbuf.view(M, B, C)
        if H:
            h = torch.baddbmm(params[1], x, params[0], out=hbuf).clamp_min_(0.0)
            logits = torch.baddbmm(params[3], h, params[2], out=logit_buf)
        else:
            logits = torch.baddbmm(params[1], x, params[0], out=logit_buf)
        logp = torch.log_softmax(logits, dim=2)
        w = wts.unsqueeze(2)  # (M, B, 1): 1/batch size, 0 on padding and for idle members
        G = (logp.exp() - t).mul_(w)  # d loss / d logits
        row_loss = tlogt.index_select(0, flat).view(M, B) - (t * logp).sum(dim=2)
        loss_sum.add_((row_loss * wts).sum(dim=1))
        if H:
            torch.bmm(h.transpose(1, 2), G, out=grads[2])
            torch.sum(G, dim=1, keepdim=True, out=grads[3])
            dh = torch.bmm(G, params[2].transpose(1, 2), out=dhbuf)
            dh = torch.ops.aten.threshold_backward(dh, h, 0.0)  # ReLU's gradient
            torch.bmm(x.transpose(1, 2), dh, out=grads[0])
            torch.sum(dh, dim=1, keepdim=True, out=grads[1])
        else:
            torch.bmm(x.transpose(1, 2), G, out=grads[0])
            torch.sum(G, dim=1, keepdim=True, out=grads[1])
        flops += 2.0 * M * B * D * out_dim * 2 + (2.0 * M * B * H * C * 3 if H else 0.0)
        ids = range(M) if active.all() else np.flatnonzero(active).tolist()
        ps, gs, ms, vs, sts = [], [], [], [], []
        for m in ids:
            ps += p_views[m]
            gs += g_views[m]
            ms += m_views[m]
            vs += v_views[m]
            sts += step_counts[m]
        torch._foreach_add_([counters[m] for m in ids], 1.0)
        if use_fused:
            # torch.optim.Adam(fused=True)'s kernel: L2 weight decay added to the gradient.
            torch._fused_adam_(
                ps, gs, ms, vs, [], sts,
                lr=config.lr, beta1=config.beta1, beta2=config.beta2,
                weight_decay=config.weight_decay, eps=config.eps, amsgrad=False, maximize=False,
            )
        else:
            _foreach_adam(ps, gs, ms, vs, [float(t) for t in sts], config)

    def evaluate() -> list[np.ndarray]:
        nonlocal flops
        with torch.inference_mode():
            if H:
                h = torch.baddbmm(params[1], Xev, params[0]).clamp_min_(0.0)
                logits = torch.baddbmm(params[3], h, params[2])
            else:
                logits = torch.baddbmm(params[1], Xev, params[0])
            flops += 2.0 * M * e_max * D * out_dim
            sums = torch.zeros(M * c_max + 1, C).index_add_(0, seg, logits.reshape(-1, C))
            probs = torch.softmax(sums / seg_count.unsqueeze(1), dim=1)[:-1].view(M, c_max, C).numpy()
        return [probs[m, : n_clips[m]].astype(np.float64) for m in range(M)]

    def snapshot(m: int) -> HeadParams:
        hp = HeadParams(
            mean=means[m].numpy().copy(),
            scale=scales[m].numpy().copy(),
            w1=params[0][m].numpy().copy(),
            b1=params[1][m, 0].numpy().copy(),
        )
        if H:
            hp.w2 = params[2][m].numpy().copy()
            hp.b2 = params[3][m, 0].numpy().copy()
        return hp

    eval_probs = [np.zeros((config.epochs, n_clips[m], C)) for m in range(M)]
    train_loss = np.zeros((config.epochs, M))
    kept: dict = {}
    for epoch in range(1, config.epochs + 1):
        rows, wts = epoch_batches(n_train, n_batches, B, gens)
        rows += offsets.view(1, M, 1)
        loss_sum.zero_()
        with torch.no_grad():
            for s in range(S):
                step(s < n_batches, rows[s], wts[s])
        ep_loss = (loss_sum / torch.as_tensor(n_batches, dtype=torch.float32)).numpy().astype(np.float64)
        train_loss[epoch - 1] = ep_loss
        probs = evaluate()
        for m in range(M):
            eval_probs[m][epoch - 1] = probs[m]
        if on_epoch is not None:
            keep = on_epoch(epoch, probs, ep_loss)
            for key in keep or ():
                m = key[0] if isinstance(key, tuple) else int(key)
                kept[key] = (epoch, snapshot(m))
        if progress is not None:
            progress(1)
    final = [snapshot(m) for m in range(M)]
    return TrainResult(eval_probs=eval_probs, train_loss=train_loss, final=final, kept=kept, flops=flops)


def _foreach_adam(
    ps: list[torch.Tensor], gs: list[torch.Tensor], ms: list[torch.Tensor], vs: list[torch.Tensor],
    steps: list[float], config: TrainConfig,
) -> None:
    """Adam on lists of tensors, step by step as ``torch.optim.Adam(foreach=True)``.

    Each tensor has its own step count (members that skipped steps lag behind).
    """
    if config.weight_decay:
        gs = torch._foreach_add(gs, ps, alpha=config.weight_decay)
    torch._foreach_lerp_(ms, gs, 1.0 - config.beta1)
    torch._foreach_mul_(vs, config.beta2)
    torch._foreach_addcmul_(vs, gs, gs, 1.0 - config.beta2)
    bc1 = [1.0 - config.beta1**s for s in steps]
    bc2_sqrt = [math.sqrt(1.0 - config.beta2**s) for s in steps]
    denom = torch._foreach_sqrt(vs)
    torch._foreach_div_(denom, bc2_sqrt)
    torch._foreach_add_(denom, config.eps)
    torch._foreach_addcdiv_(ps, ms, denom, [-config.lr / b for b in bc1])


def forward_probs(params: HeadParams, X: np.ndarray, *, groups: np.ndarray | None = None) -> np.ndarray:
    """Probabilities of a trained head on raw rows ``X`` (logits averaged per group)."""
    x = (torch.as_tensor(np.asarray(X, dtype=np.float32)) - torch.as_tensor(params.mean)) / torch.as_tensor(
        params.scale
    )
    with torch.inference_mode():
        z = x @ torch.as_tensor(params.w1) + torch.as_tensor(params.b1)
        if params.w2 is not None:
            z = z.clamp_min(0.0) @ torch.as_tensor(params.w2) + torch.as_tensor(params.b2)
        if groups is not None:
            g = torch.as_tensor(np.asarray(groups, dtype=np.int64))
            n = int(g.max()) + 1 if len(g) else 0
            sums = torch.zeros(n, z.shape[1]).index_add_(0, g, z)
            cnt = torch.zeros(n).index_add_(0, g, torch.ones(len(g))).clamp_min(1.0)
            z = sums / cnt.unsqueeze(1)
        return torch.softmax(z, dim=1).numpy().astype(np.float64)
