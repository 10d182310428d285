"""The scorer of the mapping strategy, and the blends it may apply.

:class:`MappingScorer` scores the target catalogue from the fitted target iALS, the
mapped source vectors and per-support-size blend weights; :func:`blend_grid` lists the
blends a validation search may choose from. Fitting happens in
:mod:`recsys_core.strategies.mapping`.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch

from recsys_core.models import check_csr
from recsys_core.models.ials import IALS

BLEND_STEP = 0.1
"""Spacing of the simplex grid of blend weights (a, b, c): 66 points, 11 when b = 0."""


def zscore_rows(x: torch.Tensor) -> torch.Tensor:
    """Per-row z-score over the catalogue, (B, n) -> (B, n); a constant row becomes all
    zeros."""
    sd = x.std(1, keepdim=True)
    return torch.where(sd > 1e-12, (x - x.mean(1, keepdim=True)) / sd.clamp(min=1e-12), 0.0)


Weights = tuple[float, float, float]
"""(a, b, c): weights of the mapped, support fold-in and popularity z-scores."""

TargetSide = Literal["popularity", "fold-in"]


def blend_grid(with_support: bool, step: float = BLEND_STEP) -> list[Weights]:
    """Candidate weights (a, b, c): the mapped score plus ONE target-only score.

    ``a`` runs from 1 down to 0 in ``step``; the rest goes to popularity (c) or, when
    the user revealed support items, to their iALS fold-in (b), never to a mix of the
    two. At a = 0 a candidate is exactly a target-only baseline, so whatever the blend
    gains over the best of those baselines comes from the map (a > 0), not from a new
    target-only hybrid. Listed with a descending: ties go to the map.
    """
    n = round(1 / step)
    out: list[Weights] = []
    for i in range(n, -1, -1):
        a, rest = i / n, (n - i) / n  # exact tenths, no 1 - 0.7 = 0.30000000000000004
        out.append((a, 0.0, rest))
        if with_support and i < n:
            out.append((a, rest, 0.0))
    return out


class MappingScorer:
    """Scores the target catalogue: the map for cold shared users, iALS otherwise.

    Users are scored by what is known of them:

    * warm users (trained on): their target iALS factors (the target-only baseline);
    * cold shared users (usable source history): ``a z(mapped) + b z(fold-in) + c
      z(popularity)`` with the weights of their support size k;
    * other cold users: the target-only score chosen for k on validation, popularity or
      the iALS fold-in of their support (popularity when k = 0).

    Attributes:
        target: the fitted target iALS (item factors ``V`` (n_target_items, f_t)).
        mapped: float tensor (n_target_users, f_t): ``f(U_s[u])`` for users with usable
            source history, zero rows for the others.
        has_source: bool numpy (n_target_users,): the user has usable source rows.
        weights: support size k -> :data:`Weights` (k = 0 defaults to the map alone).
        fallback: support size k -> :data:`TargetSide` for cold users without source.
        popularity: float32 tensor (n_target_items,) training counts per item.
    """

    def __init__(
        self,
        target: IALS,
        mapped: torch.Tensor,
        has_source: np.ndarray,
        weights: dict[int, Weights],
        fallback: dict[int, TargetSide],
        popularity: torch.Tensor,
    ) -> None:
        self.target, self.mapped, self.has_source = target, mapped, has_source
        self.weights = {0: (1.0, 0.0, 0.0), **{int(k): tuple(w) for k, w in weights.items()}}
        self.fallback = {0: "popularity", **{int(k): v for k, v in fallback.items()}}
        self.popularity = popularity

    @staticmethod
    def _at(table: dict, k: int):
        """The entry of the largest tabulated support size <= k."""
        return table[max(s for s in table if s <= k)]

    def weight_for(self, k: int) -> Weights:
        """Blend weights for a cold shared user with k support items."""
        return self._at(self.weights, k)

    def fallback_for(self, k: int) -> TargetSide:
        """Target-only score for a cold user without source and k support items."""
        return "popularity" if k == 0 else self._at(self.fallback, k)

    def cold_shared(self, users: np.ndarray) -> np.ndarray:
        """bool (B,): users scored through the map (never trained on, usable source)."""
        users = np.asarray(users, dtype=np.int64)
        inside = (users >= 0) & (users < len(self.has_source))
        out = np.zeros(len(users), dtype=bool)
        u = users[inside]
        out[inside] = self.has_source[u] & ~self.target.known_users[u]
        return out

    @torch.no_grad()
    def score(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        """users int64 (B,), history csr (B, n_target_items) -> float32 (B, n_target_items)."""
        users = np.asarray(users, dtype=np.int64)
        hist = check_csr(history, "history", n_items=self.target.n_items)
        vecs = self.target.user_vectors(users, hist)  # trained rows, else fold-in of history
        scores = (vecs @ self.target.V.T).to(torch.float32)
        pop = self.popularity.to(scores.device)
        known = np.zeros(len(users), dtype=bool)
        inside = (users >= 0) & (users < self.target.n_users)
        known[inside] = self.target.known_users[users[inside]]
        k = np.diff(hist.indptr)
        shared = self.cold_shared(users)
        use_pop = (
            ~known & ~shared & np.array([self.fallback_for(int(x)) == "popularity" for x in k])
        )
        use_pop |= ~known & (k == 0) & ~shared
        if use_pop.any():
            scores[torch.from_numpy(np.flatnonzero(use_pop)).to(scores.device)] = pop
        if shared.any():
            rows = np.flatnonzero(shared)
            w = torch.tensor([self.weight_for(int(x)) for x in k[rows]], dtype=torch.float32)
            w = w.to(scores.device)
            r = torch.from_numpy(rows).to(scores.device)
            m = self.mapped[torch.from_numpy(users[rows]).to(self.mapped.device)]
            mapped = (m @ self.target.V.T).to(torch.float32)
            scores[r] = (
                w[:, :1] * zscore_rows(mapped)
                + w[:, 1:2] * zscore_rows(scores[r])  # the fold-in (all zeros when k = 0)
                + w[:, 2:] * zscore_rows(pop.expand_as(mapped))
            )
        return scores
