"""Fusion: blend the collaborative score with the text zero-shot score.

The simple "large model plus small model" fusion of the source articles: the pretrained
language model knows what items *are*, the collaborative model knows what people *do*.
Scores live on different scales, so each is standardised per user (z-score over the
catalogue) before ``(1 - beta) * z_collab + beta * z_text``; beta is picked on the
validation split from a grid, and the chosen value is reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from recsys_core.strategies.base import Context, Fitted, Strategy, StrategyConfig
from recsys_core.strategies.baselines import fit_target_two_tower, item_popularity


@dataclass(frozen=True)
class FusionConfig(StrategyConfig):
    betas: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
    """candidate text weights tried on validation."""
    beta: float | None = None
    """fix the text weight instead of choosing it on validation."""

    def __post_init__(self) -> None:
        vals = (*self.betas, self.beta) if self.beta is not None else self.betas
        if not vals or any(not 0 <= b <= 1 for b in vals):
            raise ValueError(f"fusion weights must lie in [0, 1], got {vals}")


def _z(x: torch.Tensor) -> torch.Tensor:
    return (x - x.mean(1, keepdim=True)) / x.std(1, keepdim=True).clamp(min=1e-6)


class FusionScorer:
    """(1 - beta) * z(collaborative) + beta * z(text zero-shot), per user."""

    def __init__(self, collab, text, beta: float) -> None:
        self.collab, self.text, self.beta = collab, text, beta

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        a = _z(self.collab.score(users, history).float())
        if self.beta == 0:
            return a
        b = _z(self.text.score(users, history).float()).to(a.device)
        return (1 - self.beta) * a + self.beta * b


class FusionStrategy(Strategy):
    name = "fusion"
    Config = FusionConfig
    summary = "Blend the target-only collaborative model with the text zero-shot model; weight chosen on validation."

    def fit(self, ctx: Context) -> Fitted:
        from recsys_core.evaluation.evaluate import validation_metric
        from recsys_core.models.text_zero_shot import TextZeroShot

        cfg: FusionConfig = self.config  # type: ignore[assignment]
        s = ctx.scenario
        if ctx.text is None:
            raise ValueError("fusion needs item text; load an item table with titles")
        base = fit_target_two_tower(ctx)
        text = TextZeroShot(ctx.text, s.n_target_items, item_popularity(ctx), ctx.device)
        grid = (cfg.beta,) if cfg.beta is not None else cfg.betas
        table = []
        for b in grid:
            v = validation_metric(
                FusionScorer(base.scorer, text, b),
                s.split,
                metric="ndcg",
                k=10,
                device=str(ctx.device),
            )
            table.append({"beta": b, "val_ndcg@10": v})
        best = max(table, key=lambda r: r["val_ndcg@10"])
        return Fitted(
            scorer=FusionScorer(base.scorer, text, best["beta"]),
            stages=base.stages,
            history=base.history,
            n_parameters=base.n_parameters,
            info={"chosen": {"beta": best["beta"]}, "grid": table},
        )
