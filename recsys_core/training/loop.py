"""The training loop shared by every strategy: batches, losses, early stopping.

One step draws a batch of (user, positive item) pairs from each domain being trained
(the target alone, or source and target together for joint training), computes the
recommendation loss per domain, adds the strategy's extra term (L2-SP, distillation,
domain alignment) and takes an Adam step. Validation (NDCG@10 on the target's valid
interactions) decides early stopping and which epoch's weights are kept; test is never
looked at.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from recsys_core.memory import check_full_softmax
from recsys_core.models.two_tower import TwoTower
from recsys_core.training.callbacks import Callbacks, ProgressEvent
from recsys_core.training.device import native_bf16
from recsys_core.training.optim import Adam, RowAdam
from recsys_core.training.rng import seed_global

Loss = Literal["bpr", "softmax", "full-softmax"]

PROGRESS_EVERY_S = 2.0
"""Seconds between progress reports inside an epoch (each one is a run-store write)."""
_DENSE_POSITIVES_MAX = 1 << 25
"""largest user x item grid (cells) kept as a dense positives bitmap (32 MB of bool)."""


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (one per training stage)."""

    epochs: int = 40
    """upper bound on epochs; early stopping usually ends sooner."""
    batch_size: int = 4096
    lr: float = 0.005
    weight_decay: float = 0.0
    """L2 on the rows touched by a batch (embedding-style regularisation)."""
    loss: Loss = "softmax"
    """bpr: pairwise with one uniform negative (Rendle et al. 2009); softmax: sampled
    softmax over in-batch positives plus shared uniform negatives (accidental hits
    masked, logQ-corrected); full-softmax: cross-entropy over the domain's whole
    catalogue, exact and, for catalogues of a few thousand items, cheap."""
    n_negatives: int = 256
    """uniform negatives per batch for the softmax loss."""
    in_batch: int = 256
    """other rows' positives used as negatives per batch for the softmax loss."""
    temperature: float = 1.0
    """softmax temperature on the scores (raw dot products: 1 is the natural scale)."""
    patience: int = 4
    """epochs without validation gain before stopping (0 = never stop early)."""
    eval_every: int = 1
    seed: int = 0
    lr_decay: float = 1.0
    """multiply the learning rate by this after each epoch without validation gain
    (1 = constant): large steps early, fine steps once validation stalls."""
    max_per_epoch: int | None = None
    """visit at most this many pairs of the main domain per epoch (a fresh random sample
    each epoch): bounds the cost of pre-training on a large source."""
    amp: bool = True
    """bfloat16 mixed precision where the device computes bf16 natively (a CUDA GPU with
    bf16, a CPU with AVX512-BF16 or AMX; :func:`~recsys_core.training.device.native_bf16`):
    matrix products take bf16 inputs, while the weights, Adam's state, the softmax, the
    losses and every sum stay float32. False: float32 throughout, the same results on
    every CPU. Plain BPR-MF on a CPU always keeps its float32 closed-form step."""
    sparse_adam: bool = False
    """ids-only BPR (BPR-MF) only: lazy Adam that updates just the rows each batch touched
    (optim.RowAdam); off by default because it is not the dense Adam of RecBole's
    published settings. It was several times faster at 10M interactions before dense Adam
    became one fused kernel (issue 13); now dense Adam is as fast on a CPU
    (docs/design.md, the 10M bench)."""

    def __post_init__(self) -> None:
        if not 1 <= self.epochs <= 10_000:
            raise ValueError(f"epochs must be between 1 and 10000, got {self.epochs}")
        if not 8 <= self.batch_size <= 1_000_000:
            raise ValueError(f"batch_size must be between 8 and 1000000, got {self.batch_size}")
        if not 0 < self.lr < 10:
            raise ValueError(f"lr must be in (0, 10), got {self.lr}")
        if not 0 <= self.weight_decay < float("inf"):  # NaN fails too: it would train, then diverge
            raise ValueError(f"weight_decay must be a finite number >= 0, got {self.weight_decay}")
        if self.loss not in ("bpr", "softmax", "full-softmax"):
            raise ValueError(f"loss must be 'bpr', 'softmax' or 'full-softmax', not {self.loss!r}")
        if self.in_batch < 0:
            raise ValueError(f"in_batch must be >= 0, got {self.in_batch}")
        if self.n_negatives < 1:
            raise ValueError(f"n_negatives must be >= 1, got {self.n_negatives}")
        if not 0 < self.temperature <= 10:
            raise ValueError(f"temperature must be in (0, 10], got {self.temperature}")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must be in (0, 1], got {self.lr_decay}")
        if self.max_per_epoch is not None and self.max_per_epoch < self.batch_size:
            raise ValueError(f"max_per_epoch must be at least batch_size, got {self.max_per_epoch}")
        if self.patience < 0 or self.eval_every < 1:
            raise ValueError("patience must be >= 0 and eval_every >= 1")


@dataclass
class DomainData:
    """Training pairs of one domain in joint indices.

    Attributes:
        users, items: int64 (n,) positive pairs.
        pool: int64 (m,) the items negatives are drawn from (this domain's catalogue).
        history: (n_joint_users, n_joint_items) csr used for history pooling.
        weight: multiplier of this domain's loss.
        loss: this domain's loss, or None for the TrainConfig's (a large source in
            joint training can use the cheaper sampled softmax).
    """

    name: str
    users: np.ndarray
    items: np.ndarray
    pool: np.ndarray
    history: sp.csr_matrix
    weight: float = 1.0
    loss: Loss | None = None

    def __len__(self) -> int:
        return len(self.users)


@dataclass
class StepContext:
    """What an extra loss term sees at each step."""

    model: TwoTower
    item_vecs: torch.Tensor
    """(n_live, d) this step's item vectors: every item the domains' pools and histories
    reach (joint indices 0..n_live-1)."""
    biases: torch.Tensor
    """(n_live,) this step's item biases."""
    batches: dict[str, tuple[torch.Tensor, torch.Tensor]]
    user_vecs: dict[str, torch.Tensor]
    progress: float
    step: int


ExtraLoss = Callable[[StepContext], torch.Tensor]


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_val: float = float("nan")
    seconds: float = 0.0
    epochs_run: int = 0
    precision: str = "float32"
    """"bfloat16-mixed" when the steps ran under bf16 autocast (TrainConfig.amp)."""


class _DeviceDomain:
    """DomainData moved to the device once (pairs, pools, csr structure)."""

    def __init__(self, d: DomainData, device: torch.device) -> None:
        self.name, self.weight, self.loss = d.name, d.weight, d.loss
        self.users = torch.from_numpy(d.users.astype(np.int64)).to(device)
        self.items = torch.from_numpy(d.items.astype(np.int64)).to(device)
        self.pool = torch.from_numpy(d.pool.astype(np.int64)).to(device)
        h = d.history.tocsr()
        self.indptr = torch.from_numpy(h.indptr.astype(np.int64)).to(device)
        self.indices = torch.from_numpy(h.indices.astype(np.int64)).to(device)
        self.n = len(d)
        # Sorted keys user * n_items + item of every positive pair, so BPR can reject
        # negatives the user actually interacted with (as RecBole's sampler does).
        self.n_items_key = int(d.history.shape[1])
        keys = np.unique(d.users.astype(np.int64) * self.n_items_key + d.items.astype(np.int64))
        self.pos_keys = torch.from_numpy(keys).to(device)
        # For a small user x item grid a dense bitmap answers "is this a positive?" with
        # one gather instead of a binary search over every pair (10x cheaper per step).
        self.pos_dense: torch.Tensor | None = None
        n_cells = int(d.history.shape[0]) * self.n_items_key
        if n_cells <= _DENSE_POSITIVES_MAX:
            dense = torch.zeros(n_cells, dtype=torch.bool)
            dense[torch.from_numpy(keys)] = True
            self.pos_dense = dense.to(device)
        # log of each item's expected count among the softmax candidates of one batch
        # (in-batch positives drawn by frequency, plus uniform negatives): the logQ
        # correction of Yi et al., RecSys 2019, so popular items are not over-penalised
        # for being everyone's in-batch negative.
        freq = np.bincount(d.items, minlength=self.n_items_key).astype(np.float64) / max(
            len(d.items), 1
        )
        self.freq = torch.from_numpy(freq).float().to(device)
        # position of each joint item in this domain's pool (-1 outside), for full softmax
        pos_in_pool = np.full(self.n_items_key, -1, np.int64)
        pos_in_pool[d.pool] = np.arange(len(d.pool))
        self.pos_in_pool = torch.from_numpy(pos_in_pool).to(device)
        self.pool_is_prefix = bool(np.array_equal(d.pool, np.arange(len(d.pool))))
        # Highest joint item index this domain's training reads (pool or history) + 1.
        top = max(int(d.pool.max(initial=-1)), int(h.indices.max(initial=-1)))
        self.n_live_items = top + 1

    def is_positive(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        k = users * self.n_items_key + items
        if self.pos_dense is not None:
            return self.pos_dense.index_select(0, k)
        idx = torch.searchsorted(self.pos_keys, k).clamp(max=len(self.pos_keys) - 1)
        return self.pos_keys[idx] == k


def mark_trained(model: TwoTower, domains: list[DomainData]) -> None:
    """Flag the users and items that appear in training pairs (their id rows now count)."""
    for d in domains:
        model.trained_user[torch.from_numpy(np.unique(d.users))] = True
        model.trained_item[torch.from_numpy(np.unique(d.items))] = True


def _bpr_negatives(d: _DeviceDomain, users: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One uniform negative per row from the domain's pool, redrawn (up to 3 times) where
    it is one of the user's positives, as RecBole's sampler does."""
    pool, dev, n = d.pool, users.device, len(users)
    neg = pool.index_select(0, torch.randint(len(pool), (n,), generator=gen).to(dev))
    for _ in range(3):
        bad = d.is_positive(users, neg)
        if not bool(bad.any()):
            break
        fresh = pool.index_select(0, torch.randint(len(pool), (n,), generator=gen).to(dev))
        neg = torch.where(bad, fresh, neg)
    return neg


def _uses_ids_only_bpr(
    model: TwoTower, dd: list[_DeviceDomain], cfg: TrainConfig, extra_loss, params, amp: bool
) -> bool:
    """True when a step is plain BPR matrix factorisation, which :func:`_bpr_mf_step` does
    with closed-form gradients."""
    c = model.config
    return (
        len(dd) == 1
        and extra_loss is None
        and params is None
        and not amp
        and c.use_ids
        and not model.use_text
        and not c.use_history
        and (dd[0].loss or cfg.loss) == "bpr"
    )


@torch.no_grad()
def _bpr_mf_step(
    model: TwoTower,
    d: _DeviceDomain,
    cfg: TrainConfig,
    users: torch.Tensor,
    pos: torch.Tensor,
    gen: torch.Generator,
    row_updates: list | None = None,
) -> torch.Tensor:
    """BPR loss of an ids-only model, with its gradients written to the parameters' .grad
    (or, with ``row_updates``, appended there as (table, rows, gradients) for
    :class:`~recsys_core.training.optim.RowAdam`: user_emb, item_emb, item_bias).

    The same loss, weight decay and untrained-row masking as the autograd path
    (``_rec_loss`` over ``item_vectors``), but with the gradients of
    ``-log sigmoid(x)``, ``x = <u, p - n> + b_p - b_n``, written in closed form: at a batch
    of 2,048 and d = 64, autograd's bookkeeping and the dense scatter of a full-table
    gather cost 3.5 ms a step where the arithmetic needs a fraction of a millisecond,
    which made plain BPR on ML-100K three times slower than it should be (issue 3).
    Returns the scalar loss.
    """
    U, item_emb, b = model.user_emb, model.item_emb, model.item_bias
    neg = _bpr_negatives(d, users, gen)
    B = len(users)
    # index_select, not tensor[idx]: on a CPU the generic advanced-indexing kernel is
    # about 8x slower for a (2048, 64) row gather. The batch's users and positives are
    # training pairs, so train() has flagged them trained; only a negative may be an
    # untrained (masked) item.
    mn = model.trained_item.index_select(0, neg).to(U.dtype)
    u = U.index_select(0, users)
    p = item_emb.index_select(0, pos)
    n = item_emb.index_select(0, neg) * mn.unsqueeze(1)
    x = (u * (p - n)).sum(1) + b.index_select(0, pos) - b.index_select(0, neg) * mn
    loss = -F.logsigmoid(x).mean()
    g = (-torch.sigmoid(-x) / B).unsqueeze(1)  # dloss/dx, (B, 1)
    g_u = g * (p - n)
    g_p = g * u
    g_n = -g_p
    if cfg.weight_decay:
        wd = cfg.weight_decay
        loss = loss + wd * (u.pow(2).sum(1).mean() + p.pow(2).sum(1).mean())
        g_u = g_u + (2 * wd / B) * u
        g_p = g_p + (2 * wd / B) * p
    both = torch.cat([pos, neg])
    m_both = torch.cat([torch.ones_like(mn), mn]).unsqueeze(1)
    g_i = torch.cat([g_p, g_n]) * m_both
    g_b = (torch.cat([g, -g]) * m_both).squeeze(1)
    if row_updates is not None:  # lazy Adam: hand over the touched rows only
        row_updates.extend([(0, users, g_u), (1, both, g_i), (2, both, g_b)])
        return loss
    # the previous step's gradient buffers are reused: Adam has read them already
    for table, rows, grads in ((U, users, g_u), (item_emb, both, g_i), (b, both, g_b)):
        if table.grad is None or table.grad.shape != table.shape:
            table.grad = torch.zeros_like(table)
        else:
            table.grad.zero_()
        table.grad.index_add_(0, rows, grads)
    return loss


class FullSoftmaxLoss(torch.autograd.Function):
    """Mean cross-entropy of ``(u @ V.T + b) / T`` against ``target``, gradients included.

    The same value and gradients as ``F.cross_entropy(torch.addmm(b, u, V.T) / T,
    target)`` (to float32 rounding), computed a block of rows at a time in the forward
    pass: each block's logits are turned in place into ``softmax - onehot`` and fed to
    the two matrix products at once, and the backward only scales the gradients it was
    handed. On a CPU a block of about 1 MiB stays in the core's cache, so the softmax's
    passes read cache instead of memory, and no (B, C) tensor exists at all; the
    composite's (B, C) logits, log-probabilities, their gradient and a zero-filled NLL
    gradient made the full softmax about two thirds of a two-tower step on the demo
    (B = 4,096, C = 1,664; issue 13). One exponential per logit: the block's row maximum
    and sum give the log-sum-exp. The same trick as the "fused linear cross-entropy" of
    large-vocabulary language models, where the (B, vocabulary) logits do not fit.
    On a GPU the block is the whole batch (one kernel each, as before); float32 only
    (under autocast the loop uses the composite).

    Shapes: u (B, d), V (C, d), b (C,), target int64 (B,) in [0, C). Returns a scalar.
    """

    BLOCK_BYTES = 1 << 20
    """Logits per block on a CPU: 1 MiB of float32 (about 157 rows of the demo's 1,664
    items), half a core's L2 cache on the machines measured."""

    @staticmethod
    def forward(ctx, u, V, b, target, temperature: float, low: bool = False):
        # Casting is done here, by hand: autocast does not reach ``out=`` products.
        with torch.autocast(u.device.type, enabled=False):
            grads, total = _blocked_softmax(
                u, V, b, target, temperature, low, ctx.needs_input_grad[:3]
            )
        ctx.grads = grads
        ctx.dtypes = (u.dtype, V.dtype, b.dtype)
        return total

    @staticmethod
    def backward(ctx, grad):
        g_u, g_v, g_b = (
            (g * grad).to(dt) if g is not None else None
            for g, dt in zip(ctx.grads, ctx.dtypes, strict=True)
        )
        ctx.grads = None  # one backward per forward, as the saved-tensor rule would have it
        return g_u, g_v, g_b, None, None, None


def _blocked_softmax(u, V, b, target, temperature: float, low: bool, needs: tuple):
    """The work of :class:`FullSoftmaxLoss` (float32 gradients of u, V, b, and the loss).

    ``low``: the three products take bfloat16 inputs (a CPU with AVX512-BF16 or AMX runs
    them 2 to 2.9x faster than float32 at the demo's shapes); the logits, the softmax and
    every sum stay float32, as under CUDA autocast.
    """
    B, C = len(u), len(V)
    need_u, need_v, need_b = needs
    u, V, b = u.float(), V.float(), b.float()
    mm_dtype = torch.bfloat16 if low else torch.float32
    um, Vm = u.to(mm_dtype), V.to(mm_dtype)  # no copy in float32
    rows = B if u.device.type != "cpu" else max(16, FullSoftmaxLoss.BLOCK_BYTES // (4 * C))
    rows = min(rows, B)
    g_u = torch.empty_like(u) if need_u else None
    g_v = torch.zeros_like(V) if need_v else None
    g_b = torch.zeros_like(b) if need_b else None
    total = u.new_zeros(())
    block = u.new_empty(rows, C)
    Vt = Vm.T
    for start in range(0, B, rows):
        stop = min(start + rows, B)
        uc, tc = um[start:stop], target[start:stop].unsqueeze(1)
        if low:
            x = block[: stop - start].copy_(torch.mm(uc, Vt)).add_(b)
        else:
            x = torch.addmm(b, uc, Vt, out=block[: stop - start])
        if temperature != 1.0:
            x.div_(temperature)
        x_target = x.gather(1, tc)
        top = x.amax(1, keepdim=True)
        p = x.sub_(top).exp_()  # exp(x - max): the block's only exponential
        mass = p.sum(1, keepdim=True)
        total += (top + mass.log() - x_target).sum()  # log-sum-exp minus the target
        p.div_(mass).scatter_add_(1, tc, p.new_full((stop - start, 1), -1.0))
        if need_b:
            g_b += p.sum(0)
        pm = p.to(mm_dtype)
        if need_u:
            if low:
                g_u[start:stop] = torch.mm(pm, Vm)
            else:
                torch.mm(p, V, out=g_u[start:stop])
        if need_v:
            if low:
                g_v += torch.mm(pm.T, uc)
            else:
                g_v.addmm_(p.T, uc)
    scale = 1.0 / (B * temperature)
    grads = tuple(g.mul_(scale) if g is not None else None for g in (g_u, g_v, g_b))
    return grads, total / B


def _rec_loss(
    d: _DeviceDomain,
    cfg: TrainConfig,
    users: torch.Tensor,
    user_vec: torch.Tensor,
    pos: torch.Tensor,
    item_vecs: torch.Tensor,
    biases: torch.Tensor,
    gen: torch.Generator,
) -> torch.Tensor:
    """Recommendation loss for one domain's batch. user_vec (B, d), pos (B,)."""
    dev = pos.device
    pool = d.pool
    loss = d.loss or cfg.loss
    pos_score = (user_vec * item_vecs.index_select(0, pos)).sum(1) + biases.index_select(0, pos)
    if loss == "bpr":
        neg = _bpr_negatives(d, users, gen)
        neg_score = (user_vec * item_vecs.index_select(0, neg)).sum(1) + biases.index_select(0, neg)
        return -F.logsigmoid(pos_score - neg_score).mean()
    if loss == "full-softmax":
        if d.pool_is_prefix:  # the target's items come first in the joint index
            pv, pb = item_vecs[: len(pool)], biases[: len(pool)]
        else:
            pv, pb = item_vecs.index_select(0, pool), biases.index_select(0, pool)
        target = d.pos_in_pool.index_select(0, pos)
        if torch.is_autocast_enabled(dev.type) and dev.type != "cpu":
            logits = torch.addmm(pb, user_vec, pv.T)
            if cfg.temperature != 1.0:
                logits = logits / cfg.temperature
            return F.cross_entropy(logits, target)
        low = torch.is_autocast_enabled(dev.type)  # bfloat16 products on a CPU
        return FullSoftmaxLoss.apply(user_vec, pv, pb, target, cfg.temperature, low)
    # Sampled softmax over shared candidates: up to `in_batch` positives of other rows
    # (drawn by popularity) plus `n_negatives` uniform items. Each row scores its own
    # positive first; candidates equal to it (accidental hits) are masked. Every logit
    # gets the logQ correction (Yi et al., RecSys 2019): minus the log of the item's
    # expected count among the candidates, so popular items are not over-penalised.
    # Shared candidates keep the cost at B x (in_batch + n_negatives) per step instead of
    # B x B, which is what makes a 1M-interaction source epoch take seconds on a CPU.
    n_ib = min(len(pos), cfg.in_batch)
    uni = pool.index_select(0, torch.randint(len(pool), (cfg.n_negatives,), generator=gen).to(dev))
    cand = torch.cat([pos[:n_ib], uni])
    logq_c = torch.log(n_ib * d.freq.index_select(0, cand) + cfg.n_negatives / len(pool))
    logq_p = torch.log(n_ib * d.freq.index_select(0, pos) + cfg.n_negatives / len(pool))
    neg_logits = torch.addmm(
        biases.index_select(0, cand), user_vec, item_vecs.index_select(0, cand).T
    )
    if cfg.temperature != 1.0:
        neg_logits = neg_logits / cfg.temperature
    neg_logits = neg_logits - logq_c
    neg_logits = neg_logits.masked_fill(cand.unsqueeze(0) == pos.unsqueeze(1), float("-inf"))
    pos_logits = pos_score / cfg.temperature - logq_p
    logits = torch.cat([pos_logits.unsqueeze(1), neg_logits], dim=1)
    target = torch.zeros(len(pos), dtype=torch.long, device=dev)
    return F.cross_entropy(logits, target)


def train(
    model: TwoTower,
    domains: list[DomainData],
    cfg: TrainConfig,
    *,
    validate: Callable[[], float] | None = None,
    extra_loss: ExtraLoss | None = None,
    params: list[torch.nn.Parameter] | None = None,
    callbacks: Callbacks | None = None,
    stage: str = "train",
    device: torch.device | str = "cpu",
) -> TrainResult:
    """Train ``model`` on ``domains`` (the first one defines the epoch length).

    Keeps the weights of the best validation epoch (when ``validate`` is given) and
    restores them at the end. ``params`` restricts what is optimised (frozen layers).
    Raises :class:`Cancelled` when the callbacks ask to stop.
    """
    # a full softmax too large for memory is refused now, not at the first step (issue 12)
    check_full_softmax(domains, cfg)
    cb = callbacks or Callbacks()
    device = torch.device(device)
    seed_global(cfg.seed)  # CUDA sampling draws from the global generator (gen_for)
    gen = torch.Generator().manual_seed(cfg.seed)
    model.to(device)
    mark_trained(model, domains)
    dd = [_DeviceDomain(d, device) for d in domains]
    trainable = [
        p for p in (params if params is not None else model.parameters()) if p.requires_grad
    ]
    opt = Adam(trainable, lr=cfg.lr) if trainable else None
    main = dd[0]
    epoch_len = min(main.n, cfg.max_per_epoch or main.n)
    steps_per_epoch = max(1, math.ceil(epoch_len / cfg.batch_size))
    total_steps = steps_per_epoch * cfg.epochs
    use_amp = cfg.amp and native_bf16(device)
    # Items past every domain's pool and history are never read by a step: leave their
    # text unprojected (training on the target alone touches a third of the demo's items).
    n_live = max(d.n_live_items for d in dd)
    # On a CPU plain BPR-MF keeps its float32 closed form: faster than any autocast step.
    amp_gpu = use_amp and device.type != "cpu"
    fast_bpr = opt is not None and _uses_ids_only_bpr(model, dd, cfg, extra_loss, params, amp_gpu)
    if fast_bpr:
        use_amp = False
    row_opt = None
    if fast_bpr and cfg.sparse_adam:
        row_opt = RowAdam([model.user_emb, model.item_emb, model.item_bias], lr=cfg.lr)
    result = TrainResult(precision="bfloat16-mixed" if use_amp else "float32")
    best_state = None
    bad_epochs = 0
    t0 = time.perf_counter()
    step = 0
    # Announce the stage at once (a bar appears, the run's clock starts), then report
    # within an epoch too: one epoch of source pre-training can take minutes.
    cb.progress(ProgressEvent(stage=stage, epochs=cfg.epochs, fraction=0.0))
    last_report = t0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        perm = torch.randperm(main.n, generator=gen)[:epoch_len].to(device)
        epoch_loss, n_batches = 0.0, 0
        for b in range(steps_per_epoch):
            cb.check_cancel()
            now = time.perf_counter()
            if n_batches and now - last_report >= PROGRESS_EVERY_S:
                last_report = now
                cb.progress(
                    ProgressEvent(
                        stage=stage,
                        epoch=epoch,
                        epochs=cfg.epochs,
                        step=step,
                        loss=epoch_loss / n_batches,
                        seconds=now - t0,
                        fraction=(epoch - 1 + b / steps_per_epoch) / cfg.epochs,
                    )
                )
            batches: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
            for d in dd:
                if d is main:
                    idx = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]
                else:
                    idx = torch.randint(d.n, (min(cfg.batch_size, d.n),), generator=gen).to(device)
                batches[d.name] = (d.users.index_select(0, idx), d.items.index_select(0, idx))
            if fast_bpr:
                u, i = batches[main.name]
                if row_opt is not None:
                    rows: list = []
                    loss = _bpr_mf_step(model, main, cfg, u, i, gen, rows)
                    row_opt.step_rows(rows)
                else:
                    loss = _bpr_mf_step(model, main, cfg, u, i, gen)
                    opt.step()
                epoch_loss += float(loss)
                n_batches += 1
                step += 1
                continue
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
                keep = model.id_keep_mask(gen)
                item_vecs = model.item_vectors(keep=keep, limit=n_live)
                biases = model.item_biases(keep=keep, limit=n_live)
                loss = torch.zeros((), device=device)
                user_vecs: dict[str, torch.Tensor] = {}
                for d in dd:
                    u, i = batches[d.name]
                    hs = hc = None
                    if model.config.use_history:
                        hs, hc = model.sampled_history(
                            u, i, d.indptr, d.indices, item_vecs, gen_for(device, gen)
                        )
                    uv = model.user_vectors_from_sum(u, hs, hc)
                    user_vecs[d.name] = uv
                    loss = loss + d.weight * _rec_loss(d, cfg, u, uv, i, item_vecs, biases, gen)
                    if cfg.weight_decay:
                        loss = loss + cfg.weight_decay * (
                            uv.pow(2).sum(1).mean() + item_vecs[i].pow(2).sum(1).mean()
                        )
                if extra_loss is not None:
                    ctx = StepContext(
                        model, item_vecs, biases, batches, user_vecs, step / total_steps, step
                    )
                    loss = loss + extra_loss(ctx)
            if opt is not None:
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            epoch_loss += float(loss.detach())
            n_batches += 1
            step += 1
        row = {"epoch": epoch, "loss": epoch_loss / n_batches, "seconds": time.perf_counter() - t0}
        if validate is not None and epoch % cfg.eval_every == 0:
            val = float(validate())
            row["val_ndcg@10"] = val
            if not (val <= result.best_val):  # first epoch, or an improvement
                result.best_val, result.best_epoch = val, epoch
                best_state = copy.deepcopy(model.state_dict())
                bad_epochs = 0
            else:
                bad_epochs += 1
                if cfg.lr_decay != 1.0:
                    for o in (opt, row_opt):
                        if o is not None:
                            o.lr *= cfg.lr_decay
        result.history.append(row)
        result.epochs_run = epoch
        last_report = time.perf_counter()
        cb.progress(
            ProgressEvent(
                stage=stage,
                epoch=epoch,
                epochs=cfg.epochs,
                step=step,
                loss=row["loss"],
                val_metric=row.get("val_ndcg@10"),
                seconds=row["seconds"],
                fraction=epoch / cfg.epochs,
            )
        )
        if cfg.patience and bad_epochs >= cfg.patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    result.seconds = time.perf_counter() - t0
    return result


def gen_for(device: torch.device, cpu_gen: torch.Generator) -> torch.Generator | None:
    """A generator usable for sampling on ``device`` (CUDA sampling uses the global RNG)."""
    return cpu_gen if device.type == "cpu" else None
