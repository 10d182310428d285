"""A plain Adam over a list of dense tensors: torch's fused Adam kernel where the device
has one, its ``_foreach`` kernels otherwise.

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
        # the fused kernel reads the step count from a float tensor beside each parameter
        self._steps = [torch.zeros((), dtype=torch.float32, device=p.device) for p in self.params]
        self._fused = hasattr(torch, "_fused_adam_") and all(
            p.dtype == self.params[0].dtype and p.device == self.params[0].device
            for p in self.params
        )

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        live = [
            (p, m, v, s)
            for p, m, v, s in zip(self.params, self.m, self.v, self._steps)
            if p.grad is not None
        ]
        if not live:
            return
        ps, ms, vs, ss = (list(x) for x in zip(*live))
        grads = [p.grad for p in ps]
        self.t += 1
        if self._fused:
            # One kernel for the whole update where torch has it (CPU and CUDA): the
            # _foreach_ sequence below is seven passes over every table, 0.25 ms of a
            # 0.75 ms BPR-MF step on ML-100K against 0.07 ms fused (issue 13). Same
            # arithmetic (bias-corrected Adam, eps outside the square root).
            try:
                for s in ss:
                    s.fill_(self.t)
                torch._fused_adam_(
                    ps, grads, ms, vs, [], ss, lr=self.lr, beta1=self.b1, beta2=self.b2,
                    weight_decay=0.0, eps=self.eps, amsgrad=False, maximize=False,
                )  # fmt: skip
                return
            except (RuntimeError, NotImplementedError):
                self._fused = False  # a device without the kernel: the portable path
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
    TensorFlow's LazyAdam and ``torch.optim.SparseAdam`` do. A step then touches the
    batch's rows, not the table; on a CPU that no longer wins time: at 687k users x 64 the
    fused dense step is as fast (docs/design.md, the 10M bench). When every row is touched
    at every step it equals :class:`Adam`, whose state (and dense ``step``) it shares.
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
