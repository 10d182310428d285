"""Most-popular baseline: every user gets the same ranking, by training interaction count.

The floor every transfer claim must clear: on MovieLens it beats many personalised models
for users with a short history (docs/design.md, "Evaluation").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from recsys_core.models import check_csr, resolve_device


@dataclass(frozen=True)
class PopularityConfig:
    """Settings of :class:`Popularity`. Validates itself on construction."""

    device: str = "cpu"
    """torch device the scores are returned on."""

    def __post_init__(self) -> None:
        resolve_device(self.device)


class Popularity:
    """Score of item i = number of training users who interacted with i, for every user.

    Counts are interactions (non-zero cells), not summed strengths, so a few heavy
    repeat users cannot dominate. ID-only: cold items score zero by construction.

    Attributes (after ``fit``):
        counts: float32 tensor (n_items,) on ``config.device``.
        n_items: catalogue size.
    """

    user_independent = True
    """The same scores for every user: the ranking ranks the catalogue once for all
    (recsys_core/evaluation/ranking.py, the shared order)."""

    def __init__(self, config: PopularityConfig | None = None) -> None:
        self.config = config or PopularityConfig()
        self.counts: torch.Tensor | None = None
        self.n_items = 0

    def fit(self, train: sp.csr_matrix) -> Popularity:
        """Count the training interactions of each item.

        Args:
            train: CSR (n_users, n_items); any non-zero cell is one interaction.
        """
        X = check_csr(train, "train")
        counts = np.bincount(X.indices, minlength=X.shape[1]).astype(np.float32)
        self.counts = torch.from_numpy(counts).to(self.config.device)
        self.n_items = X.shape[1]
        return self

    @torch.no_grad()
    def score(
        self, users: np.ndarray, history: sp.csr_matrix, *, view: bool = False
    ) -> torch.Tensor:
        """The count vector repeated for each user.

        Args:
            users: int64 (B,) user indices (unused: the ranking is the same for all).
            history: CSR (B, n_items) (unused beyond its shape check).
            view: if True, return ``counts.expand(B, n_items)``, a read-only view with
                no copy (stride 0 along the batch). Writing into it, as an evaluator
                does when it masks seen items with -inf in place, raises or, for B = 1,
                silently corrupts the fitted counts; hence the default is a copy, the
                same (B, n_items) memory every other scorer returns.

        Returns:
            float32 tensor (B, n_items) on ``config.device``.
        """
        if self.counts is None:
            raise RuntimeError("Popularity.score called before fit(): fit the model on train first")
        n = np.asarray(users).shape[0]
        if history.shape != (n, self.n_items):
            raise ValueError(
                f"history has shape {history.shape}, expected ({n}, {self.n_items}): "
                "one row per user over the fitted catalogue"
            )
        scores = self.counts.unsqueeze(0).expand(n, -1)
        return scores if view else scores.clone()
