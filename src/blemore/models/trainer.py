"""A batched multi-member trainer: many small heads trained at once, each as if alone.

Cross-validation trains the same small head on several training sets (the five folds,
the inner folds of nested selection, the model on all training clips). Each of them is a
*member*. Here all members live in stacked tensors — weights ``(M, D, H)`` — and every step
is one batched matrix product (``torch.baddbmm``) for all of them. Gradients are written out
by hand (:mod:`blemore.models.losses` gives each loss's gradient in closed form; the input's
gradient is never needed). The Adam update follows ``torch.optim.Adam`` (weight decay added
to the gradient as L2): it runs on per-member views of the stacked tensors, each with its
own step count, through torch's fused Adam kernel (or the same update from
``torch._foreach_*`` operations, ``adam="foreach"``). Per-member views make the step mask
free: a member with no batch in a step is left out of the call.

Each member behaves exactly as if trained alone:

- its own ``torch.Generator`` (seeded per member, on the CPU whatever the device) draws its
  initial weights and its per-epoch shuffles, in the same order as alone;
- its standardisation (mean / std) is fitted on its own training rows only;
- its epoch has ``ceil(n_train / batch_size)`` steps (the last partial batch is kept,
  averaged over its true size); a step in which a member has no batch left does not touch
  that member (no update, no step count).

After every epoch each member's evaluation rows are scored in one batched forward pass
(a clip's rows' logits averaged before the loss's output function: softmax for ``kl``) and
handed to a callback, which may ask to keep a copy of some members' current weights.

The steps: :func:`pack_members` (standardise and pad every member's rows),
:func:`init_heads` (initial weights from each member's generator), :class:`BatchedAdam`
(the update), :func:`train_members` (epochs of steps, evaluation, callback).

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

import contextlib
import math
from dataclasses import dataclass, field
from typing import Callable, Iterator, Literal, Sequence

import numpy as np
import torch

from blemore.errors import BlemoreError
from blemore.models.losses import KL, LOSSES, Loss, LossName

__all__ = [
    "TrainConfig",
    "Member",
    "TrainResult",
    "HeadParams",
    "PackedMembers",
    "BatchedAdam",
    "train_members",
    "forward_probs",
    "forward_outputs",
    "fit_scaler",
    "init_linear",
    "init_heads",
    "pack_members",
    "epoch_batches",
    "torch_threads",
    "resolve_device",
]

AdamKind = Literal["fused", "foreach"]


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
    #: Adam implementation: torch's fused kernel, or the same update composed of
    #: ``torch._foreach_*`` operations (as ``torch.optim.Adam(foreach=True)``).
    adam: AdamKind = "fused"
    #: CPU threads for training (None: 1). The per-step products are small (32 rows);
    #: on a shared CPU, thread synchronisation costs more than a second thread gains
    #: (measured: 2 threads 10x slower than 1 on a busy 2-core machine).
    threads: int | None = None
    #: Where the stacked tensors live: "auto" (a CUDA GPU where one is present, else the CPU), "cpu",
    #: "cuda" or "cuda:N" (one code path).
    device: str = "auto"

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
        if self.threads is not None and self.threads < 1:
            raise BlemoreError(f"threads must be >= 1, got threads={self.threads}")


@dataclass
class Member:
    """One training set: row indices into ``X`` to train on and to evaluate.

    ``eval_groups`` maps each evaluation row to a clip number (0..C-1); the
    logits of rows of one clip are averaged before the output function. ``None``
    means one row per clip.
    """

    train: np.ndarray
    eval: np.ndarray
    seed: int
    eval_groups: np.ndarray | None = None


@dataclass
class HeadParams:
    """Weights of one trained head plus the standardisation it expects (numpy, float32).

    ``w1`` is ``(D, H)`` (or ``(D, C)`` for a linear head), ``b1`` ``(H,)``; an MLP adds
    ``w2`` ``(H, C)`` and ``b2`` ``(C,)``.
    """

    mean: np.ndarray
    scale: np.ndarray
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray | None = None
    b2: np.ndarray | None = None

    @property
    def hidden(self) -> int:
        return 0 if self.w2 is None else int(self.w1.shape[1])

    @property
    def dim(self) -> int:
        return int(self.w1.shape[0])

    @property
    def outputs(self) -> int:
        return int((self.w1 if self.w2 is None else self.w2).shape[1])

    def as_dict(self) -> dict[str, np.ndarray]:
        d = {"mean": self.mean, "scale": self.scale, "w1": self.w1, "b1": self.b1}
        if self.w2 is not None:
            d.update(w2=self.w2, b2=self.b2)
        return d

    @classmethod
    def from_dict(cls, arrays: dict[str, np.ndarray], *, source: str = "head") -> "HeadParams":
        """Check shapes and values of saved arrays and build the head; :class:`BlemoreError` if they do not fit."""
        missing = [k for k in ("mean", "scale", "w1", "b1") if k not in arrays]
        if missing or (("w2" in arrays) != ("b2" in arrays)):
            raise BlemoreError(f"{source}: the saved head lacks array(s) {', '.join(missing) or 'w2/b2'}")
        a = {k: np.asarray(v) for k, v in arrays.items() if k in ("mean", "scale", "w1", "b1", "w2", "b2")}
        for k, v in a.items():
            if not np.issubdtype(v.dtype, np.floating) or not np.isfinite(v).all():
                raise BlemoreError(f"{source}: array {k!r} is not finite floating-point data")
        D = a["w1"].shape[0] if a["w1"].ndim == 2 else -1
        ok = a["w1"].ndim == 2 and a["mean"].shape == (D,) and a["scale"].shape == (D,)
        ok = ok and a["b1"].shape == (a["w1"].shape[1],) and bool((a["scale"] > 0).all())
        if "w2" in a:
            ok = ok and a["w2"].ndim == 2 and a["w2"].shape[0] == a["w1"].shape[1]
            ok = ok and a["b2"].shape == (a["w2"].shape[1],)
        if not ok:
            shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in a.items())
            raise BlemoreError(f"{source}: the saved head's arrays do not fit together ({shapes})")
        return cls(**{k: v.astype(np.float32) for k, v in a.items()})


@dataclass
class TrainResult:
    """What :func:`train_members` returns.

    ``eval_probs[m]``: ``(epochs, C_m, K)`` outputs of member m's eval clips after every
    epoch (probabilities for the ``kl`` loss); ``train_loss``: ``(epochs, M)`` mean batch
    loss; ``final[m]``: weights after the last epoch; ``kept[key]``: ``(epoch, weights)`` of
    the last copy the callback asked for under ``key`` (epochs count from 1).
    """

    eval_probs: list[np.ndarray]
    train_loss: np.ndarray
    final: list[HeadParams]
    kept: dict = field(default_factory=dict)
    flops: float = 0.0


EpochCallback = Callable[[int, list[np.ndarray], np.ndarray], "Sequence[object] | None"]


# --------------------------------------------------------------------------- small shared pieces


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` CPU threads in torch (None: 1), then restore the previous setting."""
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, int(threads or 1)))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def resolve_device(device: str) -> torch.device:
    """``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` as a torch device; one line if CUDA is asked for and absent."""
    text = str(device).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "cuda" or text.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise BlemoreError(f"--device {device}: no CUDA GPU is available here; use --device cpu")
        return torch.device(text)
    raise BlemoreError(f"--device {device!r}: expected auto, cpu, cuda or cuda:N")


def fit_scaler(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and scale as scikit-learn's ``StandardScaler`` (ddof=0; scale 1 where std is 0)."""
    x64 = x.double()
    mean = x64.mean(dim=0)
    std = x64.std(dim=0, unbiased=False)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return mean.float(), std.float()


def init_linear(fan_in: int, fan_out: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.nn.Linear``'s default initialisation, drawn from ``g``: ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``.

    Returns the weight as ``(fan_in, fan_out)`` (ready for ``x @ w``) and the bias.
    """
    bound = 1.0 / math.sqrt(fan_in)
    w = (torch.rand(fan_out, fan_in, generator=g) * 2 - 1) * bound
    b = (torch.rand(fan_out, generator=g) * 2 - 1) * bound
    return w.t().contiguous(), b


def init_heads(
    seeds: Sequence[int], dim: int, hidden: int, outputs: int
) -> tuple[list[torch.Tensor], list[torch.Generator]]:
    """Stacked initial weights ``[W1 (M,D,H), b1 (M,1,H)(, W2, b2)]`` and each member's generator.

    Member m's generator is seeded with ``seeds[m]`` and draws its weights first (then, in
    training, its shuffles), as when the member is trained alone.
    """
    gens, layers = [], []
    for seed in seeds:
        g = torch.Generator().manual_seed(int(seed))
        gens.append(g)
        if hidden:
            layers.append([*init_linear(dim, hidden, g), *init_linear(hidden, outputs, g)])
        else:
            layers.append(list(init_linear(dim, outputs, g)))
    params = [torch.stack([lay[i] for lay in layers]) for i in range(len(layers[0]))]
    params[1] = params[1].unsqueeze(1)
    if hidden:
        params[3] = params[3].unsqueeze(1)
    return params, gens


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


def head_logits(params: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Logits of stacked heads ``params`` on stacked rows ``x`` ``(M, R, D)`` -> ``(M, R, K)``."""
    if len(params) == 4:
        h = torch.baddbmm(params[1], x, params[0]).clamp_min_(0.0)
        return torch.baddbmm(params[3], h, params[2])
    return torch.baddbmm(params[1], x, params[0])


# --------------------------------------------------------------------------- packing members


@dataclass
class PackedMembers:
    """Every member's standardised rows, padded to common sizes (on the training device).

    ``x_train`` ``(M, n_max, D)`` and ``t_train`` ``(M, n_max, K)``; ``x_eval``
    ``(M, e_max, D)``; ``segments`` maps each padded eval row to ``m * c_max + clip`` (padding
    to a dump slot ``M * c_max``); ``seg_count`` counts rows per slot.
    """

    x_train: torch.Tensor
    t_train: torch.Tensor
    n_train: list[int]
    means: list[torch.Tensor]
    scales: list[torch.Tensor]
    x_eval: torch.Tensor
    n_clips: list[int]
    segments: torch.Tensor
    seg_count: torch.Tensor

    @property
    def n_members(self) -> int:
        return len(self.n_train)

    @property
    def c_max(self) -> int:
        return max(max(self.n_clips), 1)


def _eval_groups(mem: Member, n_eval: int, m: int) -> np.ndarray:
    g = np.arange(n_eval) if mem.eval_groups is None else np.asarray(mem.eval_groups, dtype=np.int64)
    if len(g) != n_eval:
        raise BlemoreError(f"member {m}: eval_groups has {len(g)} entries for {n_eval} eval rows")
    return g


def pack_members(X: np.ndarray, targets: np.ndarray, members: Sequence[Member], *,
                 device: torch.device | str = "cpu") -> PackedMembers:
    """Standardise each member's training and evaluation rows with its own training statistics; pad and stack."""
    Xt = torch.as_tensor(np.ascontiguousarray(X, dtype=np.float32))
    Tt = torch.as_tensor(np.ascontiguousarray(targets, dtype=np.float32))
    D, K, M = Xt.shape[1], Tt.shape[1], len(members)
    for m, mem in enumerate(members):
        if len(mem.train) == 0:
            raise BlemoreError(f"member {m}: no training rows")
    n_train = [len(m.train) for m in members]
    n_eval = [len(m.eval) for m in members]
    x_train, t_train = torch.zeros(M, max(n_train), D), torch.zeros(M, max(n_train), K)
    x_eval = torch.zeros(M, max(max(n_eval), 1), D)
    means, scales, groups = [], [], []
    for m, mem in enumerate(members):
        idx = torch.as_tensor(np.asarray(mem.train, dtype=np.int64))
        rows = Xt.index_select(0, idx)
        mu, sd = fit_scaler(rows)
        means.append(mu)
        scales.append(sd)
        x_train[m, : len(idx)] = (rows - mu) / sd
        t_train[m, : len(idx)] = Tt.index_select(0, idx)
        if n_eval[m]:
            ev = torch.as_tensor(np.asarray(mem.eval, dtype=np.int64))
            x_eval[m, : n_eval[m]] = (Xt.index_select(0, ev) - mu) / sd
        groups.append(_eval_groups(mem, n_eval[m], m))
    n_clips = [int(g.max()) + 1 if len(g) else 0 for g in groups]
    c_max, e_max = max(max(n_clips), 1), x_eval.shape[1]
    seg = torch.full((M, e_max), M * c_max, dtype=torch.long)
    for m in range(M):
        seg[m, : n_eval[m]] = torch.as_tensor(groups[m]) + m * c_max
    seg = seg.view(-1)
    seg_count = torch.zeros(M * c_max + 1).index_add_(0, seg, torch.ones(M * e_max)).clamp_min(1.0)
    dev = torch.device(device)
    return PackedMembers(x_train.to(dev), t_train.to(dev), n_train, means, scales, x_eval.to(dev), n_clips,
                         seg.to(dev), seg_count.to(dev))


# --------------------------------------------------------------------------- the update


class BatchedAdam:
    """``torch.optim.Adam`` (L2 weight decay) on stacked parameters, one step count per member.

    :meth:`step` updates only the members asked for, through per-member views of the
    stacked tensors (torch's fused kernel, or ``_foreach`` operations).
    """

    def __init__(self, params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor], config: TrainConfig) -> None:
        M = params[0].shape[0]
        self.config = config
        self.exp_avg = [torch.zeros_like(p) for p in params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in params]
        self.p_views = [[p[m] for p in params] for m in range(M)]
        self.g_views = [[g[m] for g in grads] for m in range(M)]
        self.m_views = [[t[m] for t in self.exp_avg] for m in range(M)]
        self.v_views = [[t[m] for t in self.exp_avg_sq] for m in range(M)]
        # One step counter per member, shared by its tensors (the kernel only reads it).
        self.counters = [torch.zeros((), dtype=torch.float32, device=params[0].device) for _ in range(M)]
        self.step_counts = [[self.counters[m]] * len(params) for m in range(M)]
        self.fused = config.adam == "fused" and hasattr(torch, "_fused_adam_")

    def step(self, members: Sequence[int]) -> None:
        ps, gs, ms, vs, sts = [], [], [], [], []
        for m in members:
            ps += self.p_views[m]
            gs += self.g_views[m]
            ms += self.m_views[m]
            vs += self.v_views[m]
            sts += self.step_counts[m]
        torch._foreach_add_([self.counters[m] for m in members], 1.0)
        c = self.config
        if self.fused:
            torch._fused_adam_(
                ps, gs, ms, vs, [], sts,
                lr=c.lr, beta1=c.beta1, beta2=c.beta2, weight_decay=c.weight_decay, eps=c.eps,
                amsgrad=False, maximize=False,
            )
        else:
            _foreach_adam(ps, gs, ms, vs, [float(t) for t in sts], c)


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


# --------------------------------------------------------------------------- one step, one evaluation


class _Steps:
    """The training step of all members on preallocated buffers (large temporaries cost more than the arithmetic)."""

    def __init__(self, packed: PackedMembers, params: list[torch.Tensor], loss: Loss, config: TrainConfig) -> None:
        M, n_max, D = packed.x_train.shape
        K = packed.t_train.shape[2]
        B = int(config.batch_size)
        dev = packed.x_train.device
        self.packed, self.params, self.loss = packed, params, loss
        self.M, self.B, self.D, self.K = M, B, D, K
        self.H = params[0].shape[2] if len(params) == 4 else 0
        self.x_flat = packed.x_train.view(M * n_max, D)
        self.t_flat = packed.t_train.view(M * n_max, K)
        self.constant = loss.constant(self.t_flat.cpu()).to(dev)
        self.offsets = (torch.arange(M) * n_max).view(1, M, 1)
        self.xbuf, self.tbuf = torch.empty(M * B, D, device=dev), torch.empty(M * B, K, device=dev)
        self.grads = [torch.empty_like(p) for p in params]
        if self.H:
            self.hbuf = torch.empty(M, B, self.H, device=dev)
            self.dhbuf = torch.empty(M, B, self.H, device=dev)
        self.logit_buf = torch.empty(M, B, K, device=dev)
        self.loss_sum = torch.zeros(M, device=dev)
        self.optimiser = BatchedAdam(params, self.grads, config)
        self.flops = 0.0

    def __call__(self, active: np.ndarray, rows: torch.Tensor, wts: torch.Tensor) -> None:
        M, B, D, K, H, params, grads = self.M, self.B, self.D, self.K, self.H, self.params, self.grads
        flat = rows.view(-1)
        torch.index_select(self.x_flat, 0, flat, out=self.xbuf)
        torch.index_select(self.t_flat, 0, flat, out=self.tbuf)
        x, t = self.xbuf.view(M, B, D), self.tbuf.view(M, B, K)
        if H:
            h = torch.baddbmm(params[1], x, params[0], out=self.hbuf).clamp_min_(0.0)
            logits = torch.baddbmm(params[3], h, params[2], out=self.logit_buf)
        else:
            logits = torch.baddbmm(params[1], x, params[0], out=self.logit_buf)
        G, logp = self.loss.gradient(logits, t, wts.unsqueeze(2))  # weights: 1/batch size, 0 on padding
        row_loss = self.loss.row_loss(logits, t, self.constant.index_select(0, flat).view(M, B), logp)
        self.loss_sum.add_((row_loss * wts).sum(dim=1))
        if H:
            torch.bmm(h.transpose(1, 2), G, out=grads[2])
            torch.sum(G, dim=1, keepdim=True, out=grads[3])
            dh = torch.bmm(G, params[2].transpose(1, 2), out=self.dhbuf)
            dh = torch.ops.aten.threshold_backward(dh, h, 0.0)  # ReLU's gradient
            torch.bmm(x.transpose(1, 2), dh, out=grads[0])
            torch.sum(dh, dim=1, keepdim=True, out=grads[1])
        else:
            torch.bmm(x.transpose(1, 2), G, out=grads[0])
            torch.sum(G, dim=1, keepdim=True, out=grads[1])
        out_dim = H if H else K
        self.flops += 2.0 * M * B * D * out_dim * 2 + (2.0 * M * B * H * K * 3 if H else 0.0)
        self.optimiser.step(range(M) if active.all() else np.flatnonzero(active).tolist())


def _evaluate(packed: PackedMembers, params: list[torch.Tensor], loss: Loss) -> list[np.ndarray]:
    """Every member's outputs on its eval clips (rows' logits averaged per clip, then the loss's output)."""
    M, c_max = packed.n_members, packed.c_max
    with torch.inference_mode():
        logits = head_logits(params, packed.x_eval)
        K = logits.shape[2]
        sums = torch.zeros(M * c_max + 1, K, device=logits.device).index_add_(0, packed.segments, logits.reshape(-1, K))
        out = loss.output(sums / packed.seg_count.unsqueeze(1))[:-1].view(M, c_max, K).cpu().numpy()
    return [out[m, : packed.n_clips[m]].astype(np.float64) for m in range(M)]


def _snapshot(packed: PackedMembers, params: list[torch.Tensor], m: int) -> HeadParams:
    arrays = [p[m].detach().cpu().numpy().copy() for p in params]
    hp = HeadParams(mean=packed.means[m].numpy().copy(), scale=packed.scales[m].numpy().copy(),
                    w1=arrays[0], b1=arrays[1][0])
    if len(params) == 4:
        hp.w2, hp.b2 = arrays[2], arrays[3][0]
    return hp


# --------------------------------------------------------------------------- training


def train_members(
    X: np.ndarray,
    targets: np.ndarray,
    members: Sequence[Member],
    *,
    hidden: int,
    config: TrainConfig = TrainConfig(),
    loss: LossName | Loss = "kl",
    on_epoch: EpochCallback | None = None,
    progress: Callable[[int], None] | None = None,
    keep: Callable[[np.ndarray], np.ndarray] | None = None,
) -> TrainResult:
    """Train one head per member, all at once.

    Parameters
    ----------
    X : (N, D) float array
        Raw (unstandardised) rows; members index into it.
    targets : (N, K) float array
        Targets of the loss (soft labels summing to 1 for ``kl``).
    members : sequence of :class:`Member`
    hidden : int, keyword-only
        Hidden width; 0 for a linear head.
    config : :class:`TrainConfig`, keyword-only
    loss : ``"kl"`` (default), ``"salience"`` or a :class:`~blemore.models.losses.Loss`, keyword-only
    on_epoch : callable, keyword-only
        ``on_epoch(epoch, eval_outputs, train_loss)`` after every epoch (epoch counts from 1;
        ``eval_outputs[m]`` is ``(C_m, K)``; ``train_loss`` is ``(M,)``). It returns the
        members whose current weights should be kept, or None; an item ``(m, tag)`` keeps
        member m's weights under the key ``(m, tag)``, an int m under ``m``.
    progress : callable, keyword-only
        Called with 1 after every epoch (e.g. ``tqdm.update``).
    keep : callable, keyword-only
        What to store of a member's outputs after each epoch (e.g. the decoded labels, far
        smaller than 36 probabilities); default: the outputs as float32 (they are float32
        softmax values, so nothing is lost; :attr:`TrainResult.eval_probs` is float64).
    """
    if len(members) == 0:
        raise BlemoreError("nothing to train: no members")
    the_loss = LOSSES[loss] if isinstance(loss, str) else loss
    with torch_threads(config.threads):
        device = resolve_device(config.device)
        packed = pack_members(X, targets, members, device=device)
        params, gens = init_heads([m.seed for m in members], packed.x_train.shape[2], int(hidden),
                                  packed.t_train.shape[2])
        params = [p.to(device) for p in params]
        return _train(packed, params, gens, the_loss, config, on_epoch, progress, keep)


def _as_float32(outputs: np.ndarray) -> np.ndarray:
    return outputs.astype(np.float32)


def _train(packed: PackedMembers, params: list[torch.Tensor], gens: list[torch.Generator], loss: Loss,
           config: TrainConfig, on_epoch: EpochCallback | None, progress: Callable[[int], None] | None,
           keep: Callable[[np.ndarray], np.ndarray] | None) -> TrainResult:
    M, B = packed.n_members, int(config.batch_size)
    steps = _Steps(packed, params, loss, config)
    n_batches = np.array([math.ceil(n / B) for n in packed.n_train])
    store = keep or _as_float32
    eval_probs: list[np.ndarray] = []
    train_loss = np.zeros((config.epochs, M))
    kept: dict = {}
    for epoch in range(1, config.epochs + 1):
        rows, wts = epoch_batches(packed.n_train, n_batches, B, gens)
        rows = (rows + steps.offsets.view(1, M, 1)).to(params[0].device)
        wts = wts.to(params[0].device)
        steps.loss_sum.zero_()
        with torch.no_grad():
            for s in range(int(n_batches.max())):
                steps(s < n_batches, rows[s], wts[s])
        ep_loss = (steps.loss_sum.cpu() / torch.as_tensor(n_batches, dtype=torch.float32)).numpy().astype(np.float64)
        train_loss[epoch - 1] = ep_loss
        probs = _evaluate(packed, params, loss)
        steps.flops += 2.0 * M * packed.x_eval.shape[1] * packed.x_eval.shape[2] * (params[0].shape[2])
        for m in range(M):
            kept_outputs = store(probs[m])
            if epoch == 1:
                eval_probs.append(np.zeros((config.epochs, *kept_outputs.shape), dtype=kept_outputs.dtype))
            eval_probs[m][epoch - 1] = kept_outputs
        if on_epoch is not None:
            for key in on_epoch(epoch, probs, ep_loss) or ():
                m = key[0] if isinstance(key, tuple) else int(key)
                kept[key] = (epoch, _snapshot(packed, params, m))
        if progress is not None:
            progress(1)
    final = [_snapshot(packed, params, m) for m in range(M)]
    if keep is None:
        eval_probs = [e.astype(np.float64) for e in eval_probs]
    return TrainResult(eval_probs=eval_probs, train_loss=train_loss, final=final, kept=kept, flops=steps.flops)


# --------------------------------------------------------------------------- a trained head on new rows


def forward_outputs(params: HeadParams, X: np.ndarray, *, groups: np.ndarray | None = None,
                    loss: LossName | Loss = "kl") -> np.ndarray:
    """Outputs of a trained head on raw rows ``X`` (logits averaged per group, then the loss's output)."""
    the_loss = LOSSES[loss] if isinstance(loss, str) else loss
    if np.asarray(X).ndim != 2 or np.asarray(X).shape[1] != params.dim:
        raise BlemoreError(f"the head expects rows of {params.dim} features, got shape {np.asarray(X).shape}")
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
        return the_loss.output(z).numpy().astype(np.float64)


def forward_probs(params: HeadParams, X: np.ndarray, *, groups: np.ndarray | None = None) -> np.ndarray:
    """Probabilities of a trained KL head on raw rows ``X`` (logits averaged per group before the softmax)."""
    return forward_outputs(params, X, groups=groups, loss=KL)
