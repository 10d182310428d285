"""Scores of each row's own candidate items, ``u[b] . V[cand[b, j]] + bias[cand[b, j]]``,
with gradients, computed the cheaper of two ways.

Distillation scores each batch user against ~100 candidates (the teacher's top items and
random ones, recsys_core/strategies/distill.py). Gathering a (B, K, d) tensor of item
rows and contracting it is the obvious way; its backward scatters B x K rows back into
the item table one at a time, and on the demo's student (B = 4,096, K = 100, d = 16,
1,664 items) the pair took 33 ms a step on one CPU thread. When the catalogue is not
much larger than K, scoring a block of rows against every item and picking the
candidates is cheaper: the block's (rows, C) scores stay in cache, the backward writes
the candidates' gradients into that block and feeds it to two matrix products, as the
full softmax does (``FullSoftmaxLoss``). 14 ms the same step, same values to float32
rounding (issue 13). On a large catalogue the gather is kept: a block would cost C x d
per row where the gather costs K x d.
"""

from __future__ import annotations

import torch

BLOCK_BYTES = 1 << 20
"""float32 scores per block on a CPU (1 MiB: about 157 rows of 1,664 items)."""
GPU_BLOCK_BYTES = 64 << 20
"""Per block on a GPU, where a kernel launch, not the cache, is what a block costs."""
DENSE_RATIO = 20
"""Use the dense blocks while the catalogue has at most this many items per candidate:
measured 2.3x faster at 17 (1,664 items, 100 candidates)."""


def candidate_scores(
    u: torch.Tensor, V: torch.Tensor, b: torch.Tensor, cand: torch.Tensor
) -> torch.Tensor:
    """Each row's scores of its own candidates.

    Args:
        u: float (B, d) row vectors.
        V: float (C, d) item vectors.
        b: float (C,) item biases.
        cand: int64 (B, K) item indices in [0, C) (repeats allowed).

    Returns:
        float (B, K): ``u[i] . V[cand[i, j]] + b[cand[i, j]]``, differentiable in u, V, b.
    """
    B, K = cand.shape
    C = len(V)
    autocast = torch.is_autocast_enabled(u.device.type)
    if C > DENSE_RATIO * K or (autocast and u.device.type != "cpu"):
        flat = cand.reshape(-1)
        cv = V.index_select(0, flat).reshape(B, K, -1)
        return torch.einsum("bd,bcd->bc", u, cv) + b.index_select(0, flat).reshape(B, K)
    return _BlockedCandidateScores.apply(u, V, b, cand, autocast)


class _BlockedCandidateScores(torch.autograd.Function):
    """:func:`candidate_scores` a block of rows at a time against the whole catalogue."""

    @staticmethod
    def forward(ctx, u, V, b, cand, low: bool = False):
        # ``low`` (CPU autocast): bfloat16 products, float32 scores and sums, cast by
        # hand because autocast does not reach ``out=`` products.
        B, C = len(u), len(V)
        budget = BLOCK_BYTES if u.device.type == "cpu" else GPU_BLOCK_BYTES
        rows = min(B, max(16, budget // (4 * max(C, 1))))
        mm_dtype = torch.bfloat16 if low else torch.float32
        um, Vm, bf = u.to(mm_dtype), V.to(mm_dtype), b.float()
        out = u.new_empty(cand.shape, dtype=torch.float32)
        block = u.new_empty(rows, C, dtype=torch.float32)
        Vt = Vm.T
        with torch.autocast(u.device.type, enabled=False):
            for start in range(0, B, rows):
                stop = min(start + rows, B)
                if low:
                    x = block[: stop - start].copy_(torch.mm(um[start:stop], Vt)).add_(bf)
                else:
                    x = torch.addmm(bf, um[start:stop], Vt, out=block[: stop - start])
                torch.gather(x, 1, cand[start:stop], out=out[start:stop])
        ctx.save_for_backward(um, Vm, cand)
        ctx.rows = rows
        ctx.dtypes = (u.dtype, V.dtype, b.dtype)
        return out

    @staticmethod
    def backward(ctx, grad):
        um, Vm, cand = ctx.saved_tensors
        need_u, need_v, need_b = ctx.needs_input_grad[:3]
        B, C, rows = len(um), len(Vm), ctx.rows
        low = um.dtype == torch.bfloat16
        grad = grad.float().contiguous()
        g_u = um.new_empty(um.shape, dtype=torch.float32) if need_u else None
        g_v = Vm.new_zeros(Vm.shape, dtype=torch.float32) if need_v else None
        g_b = Vm.new_zeros(C, dtype=torch.float32) if need_b else None
        block = um.new_empty(rows, C, dtype=torch.float32)
        with torch.autocast(um.device.type, enabled=False):
            for start in range(0, B, rows):
                stop = min(start + rows, B)
                G = block[: stop - start].zero_()
                G.scatter_add_(1, cand[start:stop], grad[start:stop])  # repeats add up
                if need_b:
                    g_b += G.sum(0)
                if low:
                    Gm = G.to(torch.bfloat16)
                    if need_u:
                        g_u[start:stop] = torch.mm(Gm, Vm)
                    if need_v:
                        g_v += torch.mm(Gm.T, um[start:stop])
                else:
                    if need_u:
                        torch.mm(G, Vm, out=g_u[start:stop])
                    if need_v:
                        g_v.addmm_(G.T, um[start:stop])
        dt_u, dt_v, dt_b = ctx.dtypes
        return (
            None if g_u is None else g_u.to(dt_u),
            None if g_v is None else g_v.to(dt_v),
            None if g_b is None else g_b.to(dt_b),
            None,
            None,
        )
