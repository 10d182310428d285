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
    if C > DENSE_RATIO * K or torch.is_autocast_enabled(u.device.type):
        flat = cand.reshape(-1)
        cv = V.index_select(0, flat).reshape(B, K, -1)
        return torch.einsum("bd,bcd->bc", u, cv) + b.index_select(0, flat).reshape(B, K)
    return _BlockedCandidateScores.apply(u, V, b, cand)


class _BlockedCandidateScores(torch.autograd.Function):
    """:func:`candidate_scores` a block of rows at a time against the whole catalogue."""

    @staticmethod
    def forward(ctx, u, V, b, cand):
        B, C = len(u), len(V)
        budget = BLOCK_BYTES if u.device.type == "cpu" else GPU_BLOCK_BYTES
        rows = min(B, max(16, budget // (4 * max(C, 1))))
        out = u.new_empty(cand.shape)
        block = u.new_empty(rows, C)
        Vt = V.T
        for start in range(0, B, rows):
            stop = min(start + rows, B)
            x = torch.addmm(b, u[start:stop], Vt, out=block[: stop - start])
            torch.gather(x, 1, cand[start:stop], out=out[start:stop])
        ctx.save_for_backward(u, V, cand)
        ctx.rows = rows
        return out

    @staticmethod
    def backward(ctx, grad):
        u, V, cand = ctx.saved_tensors
        need_u, need_v, need_b = ctx.needs_input_grad[:3]
        B, C, rows = len(u), len(V), ctx.rows
        grad = grad.contiguous()
        g_u = torch.empty_like(u) if need_u else None
        g_v = torch.zeros_like(V) if need_v else None
        g_b = V.new_zeros(C) if need_b else None
        block = u.new_empty(rows, C)
        for start in range(0, B, rows):
            stop = min(start + rows, B)
            G = block[: stop - start].zero_()
            G.scatter_add_(1, cand[start:stop], grad[start:stop])  # repeats add up
            if need_u:
                torch.mm(G, V, out=g_u[start:stop])
            if need_v:
                g_v.addmm_(G.T, u[start:stop])
            if need_b:
                g_b += G.sum(0)
        return g_u, g_v, g_b, None
