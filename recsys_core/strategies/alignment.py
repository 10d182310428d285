"""Domain-alignment losses between two sets of representations (rows = samples).

* :func:`mmd_loss`: MMD with a sum of RBF kernels (Gretton et al., JMLR 2012; the
  multi-kernel form of Long et al., DAN, ICML 2015), bandwidths around the median
  pairwise distance. It is a *training loss*: the biased estimate (i == j terms kept),
  differentiable and cheap. The MMD the product *reports* (adapt's "MMD before/after",
  the Embeddings page) is the unbiased estimate
  :func:`recsys_core.embeddings.shift.mmd_unbiased`; the two differ in scale and must
  not be compared with each other.
* CORAL: distance between the feature covariances (Sun & Saenko, Deep CORAL, 2016).
* DANN: a domain classifier trained through a gradient-reversal layer (Ganin &
  Lempitsky, ICML 2015); the towers learn to make domains indistinguishable.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn


def mmd_loss(
    x: torch.Tensor, y: torch.Tensor, scales: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
) -> torch.Tensor:
    """Alignment loss: biased MMD^2 between x (n, d) and y (m, d), summed RBF kernels.

    Returns a 0-d tensor with gradients. Biased (the diagonal terms stay in) and summed
    over the kernels rather than averaged: fine for a loss, whose scale the adapt weight
    absorbs, but not a figure to report (see the module docstring). The bandwidths are
    ``2 s med`` with ``med`` the median of the positive squared distances between
    distinct samples (the median heuristic), held fixed in the gradient.
    """
    return _MMDLoss.apply(torch.cat([x, y]).float(), len(x), tuple(float(s) for s in scales))


def mmd_loss_reference(
    x: torch.Tensor, y: torch.Tensor, scales: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
) -> torch.Tensor:
    """:func:`mmd_loss` through autograd, term by term: the definition the tests hold the
    fused one to."""
    z = torch.cat([x, y]).float()
    d2 = torch.cdist(z, z).pow(2)
    off = torch.ones_like(d2, dtype=torch.bool).triu_(1)
    pairs = d2.detach()[off]
    pairs = pairs[pairs > 0]
    med = pairs.median() if len(pairs) else torch.tensor(1.0)
    k = sum(torch.exp(-d2 / (2 * s * med)) for s in scales)
    n = len(x)
    return k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean()


def _kernel_sums(d2: torch.Tensor, rates: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """``sum_s exp(-r_s d2)`` and its derivative in d2, ``-sum_s r_s exp(-r_s d2)``.

    The default bandwidths double from one to the next, and exp(-2 r d) = exp(-r d)^2:
    then one exponential and a squaring per further kernel (each exponential of the
    (N, N) matrix cost as much as the rest of a kernel's work; issue 13). The squarings
    carry the float32 rounding of the first exponential up to 16-fold, about 1e-6.
    """
    rates = sorted(rates)
    doubling = all(b == 2 * a for a, b in itertools.pairwise(rates))
    k = torch.zeros_like(d2)
    dk = torch.zeros_like(d2)
    e = None
    for rate in rates:
        e = torch.exp(d2 * -rate) if e is None or not doubling else e.mul_(e)
        k += e
        dk.add_(e, alpha=-rate)
    return k, dk


class _MMDLoss(torch.autograd.Function):
    """Biased multi-kernel MMD^2 with its gradient written out (issue 13).

    Through autograd the loss took 55 ms a step on one CPU thread at 512 + 512 samples of
    d = 64, a third of an adapt step: ``cdist``'s backward, the masked median over the
    whole (N, N) matrix and five exponentials each with its own backward. Here the
    squared distances come from one Gram product, the median reads the upper triangle
    only (each pair once), and with
    ``L = sum_ij c_ij k(d2_ij)``, ``c`` = 1/n^2, 1/m^2 or -1/(nm) by block, the gradient
    is ``dL/dz_i = 4 (z_i sum_j A_ij - sum_j A_ij z_j)``, ``A = c * k'(d2)``: one more
    product. 20 ms the step, the same loss and gradients to float32 rounding.
    """

    @staticmethod
    def forward(ctx, z: torch.Tensor, n: int, scales: tuple[float, ...]):
        # float32 even under autocast: bfloat16 would cancel ||z_i||^2 + ||z_j||^2 - 2 z_i.z_j
        with torch.autocast(z.device.type, enabled=False):
            return _MMDLoss._forward(ctx, z, n, scales)

    @staticmethod
    def _forward(ctx, z: torch.Tensor, n: int, scales: tuple[float, ...]):
        N = len(z)
        m = N - n
        sq = (z * z).sum(1)
        # ||z_i - z_j||^2 from one product; its rounding may differ between (i, j) and
        # (j, i) in the last bit, which the loss and the gradient are not sensitive to
        d2 = torch.addmm(sq.unsqueeze(1) + sq.unsqueeze(0), z, z.T, alpha=-2).clamp_(min=0)
        d2.fill_diagonal_(0)
        iu = torch.triu_indices(N, N, 1, device=z.device)
        pairs = d2[iu[0], iu[1]]
        # The median of the positive distances (a sample drawn twice gives a 0): zeros
        # sort first, so it is the order statistic just past them, the lower middle one
        # as torch.median takes it; counting them is cheaper than filtering them out.
        n_zero = int((pairs == 0).sum())
        n_pos = len(pairs) - n_zero
        med = float(pairs.kthvalue(n_zero + (n_pos - 1) // 2 + 1).values) if n_pos else 1.0
        k, dk = _kernel_sums(d2, [1.0 / (2 * s * med) for s in scales])
        # c_ij by block: 1/n^2 within x, 1/m^2 within y, -1/(nm) across
        cxx, cyy, cxy = 1.0 / max(n * n, 1), 1.0 / max(m * m, 1), -1.0 / max(n * m, 1)
        loss = cxx * k[:n, :n].sum() + cyy * k[n:, n:].sum() + 2 * cxy * k[:n, n:].sum()
        dk[:n, :n] *= cxx
        dk[n:, n:] *= cyy
        dk[:n, n:] *= cxy
        dk[n:, :n] *= cxy
        ctx.save_for_backward(z, dk)
        return loss

    @staticmethod
    def backward(ctx, grad):
        z, A = ctx.saved_tensors
        g = (z * A.sum(1, keepdim=True) - A @ z).mul_(4 * grad)
        return g, None, None


def coral(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """||C_x - C_y||_F^2 / (4 d^2) with C the feature covariance."""
    d = x.shape[1]

    def cov(a: torch.Tensor) -> torch.Tensor:
        a = a.float() - a.float().mean(0, keepdim=True)
        return a.T @ a / max(len(a) - 1, 1)

    # float32 even under autocast: the covariances are differences of close sums
    with torch.autocast(x.device.type, enabled=False):
        return (cov(x) - cov(y)).pow(2).sum() / (4 * d * d)


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lam):  # type: ignore[override]
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        return -ctx.lam * grad, None


def grad_reverse(x: torch.Tensor, lam: float = 1.0) -> torch.Tensor:
    """Identity forward; multiplies the gradient by -lam backward (GRL)."""
    return _GradReverse.apply(x, lam)


class DomainClassifier(nn.Module):
    """Small MLP telling source (1) from target (0) representations."""

    def __init__(self, dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def loss(self, x_src: torch.Tensor, x_tgt: torch.Tensor) -> torch.Tensor:
        z = torch.cat([x_src, x_tgt]).float()
        y = torch.cat([torch.ones(len(x_src)), torch.zeros(len(x_tgt))]).to(z.device)
        return nn.functional.binary_cross_entropy_with_logits(self.net(z).squeeze(1), y)


def dann_schedule(progress: float) -> float:
    """Ganin & Lempitsky's ramp 2 / (1 + exp(-10 p)) - 1, from 0 to ~1 over training."""
    return 2.0 / (1.0 + math.exp(-10.0 * progress)) - 1.0
