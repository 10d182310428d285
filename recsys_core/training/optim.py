"""A plain Adam over a list of dense tensors, written with torch's ``_foreach`` kernels.

Why not ``torch.optim.Adam``: constructing any built-in optimizer imports
``torch._dynamo`` (about 2 s on a laptop CPU), which is a large share of a 6-second
training run; the update itself is the same (Kingma & Ba 2015, bias-corrected, no
weight decay: regularisation lives in the loss).
"""

from __future__ import annotations

import math

import torch


class Adam:
    """Adam on dense parameters; ``step()`` after ``backward()``, like torch.optim."""

    def __init__(
        self, params: list[torch.Tensor], lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8
    ):
        if not params:
            raise ValueError("Adam needs at least one parameter")
        self.params = list(params)
        self.lr, (self.b1, self.b2), self.eps = lr, betas, eps
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.t = 0

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        live = [(p, m, v) for p, m, v in zip(self.params, self.m, self.v) if p.grad is not None]
        if not live:
            return
        ps, ms, vs = (list(x) for x in zip(*live))
        grads = [p.grad for p in ps]
        self.t += 1
        torch._foreach_lerp_(ms, grads, 1 - self.b1)
        torch._foreach_mul_(vs, self.b2)
        torch._foreach_addcmul_(vs, grads, grads, 1 - self.b2)
        bc1 = 1 - self.b1**self.t
        bc2 = 1 - self.b2**self.t
        denom = torch._foreach_sqrt(vs)
        torch._foreach_div_(denom, math.sqrt(bc2))
        torch._foreach_add_(denom, self.eps)
        torch._foreach_addcdiv_(ps, ms, denom, -self.lr / bc1)


class RowAdam(Adam):
    """Lazy Adam over embedding tables: a step updates only the rows a batch touched.

    The moments and weights of untouched rows stay as they are, where dense Adam would
    keep moving them with decaying momentum; bias correction uses the global step, as
    TensorFlow's LazyAdam and ``torch.optim.SparseAdam`` do. A step then costs the batch's
    rows, not the table: at 687k users x 64, dense Adam is most of a BPR epoch
    (bench/bench_scale.py). When every row is touched at every step it equals :class:`Adam`,
    whose state (and dense ``step``) it shares.
    """

    @torch.no_grad()
    def step_rows(self, updates: list[tuple[int, torch.Tensor, torch.Tensor]]) -> None:
        """One Adam step. ``updates``: (parameter position, rows (n,), gradients (n, ...))
        per table; a row may repeat (its gradients are summed)."""
        self.t += 1
        bc1 = 1 - self.b1**self.t
        bc2 = 1 - self.b2**self.t
        for i, rows, grads in updates:
            p, m, v = self.params[i], self.m[i], self.v[i]
            uniq, inv = torch.unique(rows, return_inverse=True)
            g = torch.zeros((len(uniq), *grads.shape[1:]), dtype=grads.dtype, device=grads.device)
            g.index_add_(0, inv, grads)
            mr = m.index_select(0, uniq).lerp_(g, 1 - self.b1)
            vr = v.index_select(0, uniq).mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
            m.index_copy_(0, uniq, mr)
            v.index_copy_(0, uniq, vr)
            step = (mr / bc1) / ((vr / bc2).sqrt_().add_(self.eps))
            p.index_add_(0, uniq, step, alpha=-self.lr)
