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
