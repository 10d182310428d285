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

import math

import torch
from torch import nn


def mmd_loss(
    x: torch.Tensor, y: torch.Tensor, scales: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
) -> torch.Tensor:
    """Alignment loss: biased MMD^2 between x (n, d) and y (m, d), summed RBF kernels.

    Returns a 0-d tensor with gradients. Biased (the diagonal terms stay in) and summed
    over the kernels rather than averaged: fine for a loss, whose scale the adapt weight
    absorbs, but not a figure to report (see the module docstring).
    """
    z = torch.cat([x, y]).float()
    d2 = torch.cdist(z, z).pow(2)
    # Median heuristic, detached: the bandwidth follows the data but is not optimised.
    med = d2.detach()[d2.detach() > 0].median() if (d2 > 0).any() else torch.tensor(1.0)
    k = sum(torch.exp(-d2 / (2 * s * med)) for s in scales)
    n = len(x)
    return k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean()


def coral(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """||C_x - C_y||_F^2 / (4 d^2) with C the feature covariance."""
    d = x.shape[1]

    def cov(a: torch.Tensor) -> torch.Tensor:
        a = a.float() - a.float().mean(0, keepdim=True)
        return a.T @ a / max(len(a) - 1, 1)

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
