"""Fusion: blend the collaborative score with the text zero-shot score.

The simple "large model plus small model" fusion of the source articles: the pretrained
language model knows what items *are*, the collaborative model knows what people *do*.
Scores live on different scales, so each is standardised per user (z-score over the
catalogue) before ``(1 - beta) * z_collab + beta * z_text``; beta is picked on the
validation split from a grid, and the chosen value is reported.

Items with no training interaction (cold items) have no collaborative evidence. With the
text fallback, the collaborative z-score is computed over the trained items only and an
untrained item takes its text z-score in its place: the content fallback of hybrid
recommenders (Schein et al., SIGIR 2002; DropoutNet, Volkovs et al. 2017, uses the
content path alone for new items). Without it, new items keep the base two-tower's own
scores (calibrated or raw, see TwoTowerScorer). Which of the two, and beta, are chosen
together on validation, whose rows include validation cold items.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

from recsys_core.strategies.base import (
    Context,
    Fitted,
    ModelSettings,
    Strategy,
    StrategyConfig,
    untrained_target_items,
)
from recsys_core.strategies.baselines import fit_target_two_tower, item_popularity


@dataclass(frozen=True)
class FusionConfig(StrategyConfig):
    betas: tuple[float, ...] = field(
        default=(0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9),
        metadata={"help": "candidate text weights tried on validation."},
    )
    beta: float | None = field(
        default=None,
        metadata={"help": "fix the text weight instead of choosing it on validation."},
    )

    def __post_init__(self) -> None:
        vals = (*self.betas, self.beta) if self.beta is not None else self.betas
        if not vals or any(not 0 <= b <= 1 for b in vals):
            raise ValueError(f"fusion weights must lie in [0, 1], got {vals}")


def _z(x: torch.Tensor) -> torch.Tensor:
    return (x - x.mean(1, keepdim=True)) / x.std(1, keepdim=True).clamp(min=1e-6)


class FusionScorer:
    """(1 - beta) * z(collaborative) + beta * z(text zero-shot), per user.

    ``untrained``: optional bool (n_items,) of items without training interactions; the
    collaborative z-score is standardised over the other items, and these take the text
    z-score instead (content fallback, see the module docstring).
    """

    def __init__(self, collab, text, beta: float, untrained: torch.Tensor | None = None) -> None:
        self.collab, self.text, self.beta = collab, text, beta
        has_cold = untrained is not None and bool(untrained.any()) and not bool(untrained.all())
        self.untrained = untrained if has_cold else None

    def as_cold(self) -> FusionScorer:
        """The same blend with the collaborative part scoring users as cold ones."""
        from recsys_core.strategies.prior import as_cold

        out = FusionScorer(as_cold(self.collab), self.text, self.beta)
        out.untrained = self.untrained
        return out

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        raw = self.collab.score(users, history).float()
        if self.untrained is None:
            a = _z(raw)
            if self.beta == 0:
                return a
            b = _z(self.text.score(users, history).float()).to(a.device)
            return (1 - self.beta) * a + self.beta * b
        cold = self.untrained.to(raw.device)
        warm = raw[:, ~cold]
        a = (raw - warm.mean(1, keepdim=True)) / warm.std(1, keepdim=True).clamp(min=1e-6)
        b = _z(self.text.score(users, history).float()).to(a.device)
        a = torch.where(cold.unsqueeze(0), b, a)
        return (1 - self.beta) * a + self.beta * b


class FusionStrategy(Strategy):
    name = "fusion"
    Config = FusionConfig
    requires_text = True
    cost_hint = 3.0
    summary = "Blend the target-only collaborative model with the text zero-shot model; weight chosen on validation."

    def shared_steps(self, settings: ModelSettings) -> frozenset[str]:
        return frozenset({"target_two_tower"})

    def fit(self, ctx: Context) -> Fitted:
        from recsys_core.evaluation.evaluate import ValidationSet
        from recsys_core.models.text_zero_shot import TextZeroShot

        cfg: FusionConfig = self.config  # type: ignore[assignment]
        s = ctx.scenario
        self.check(ctx)
        base = fit_target_two_tower(ctx)
        text = TextZeroShot(ctx.text, s.n_target_items, item_popularity(ctx), ctx.device)
        untrained = untrained_target_items(s)
        grid = (cfg.beta,) if cfg.beta is not None else cfg.betas
        # Whether new items take the text z-score (the fallback) or keep the base
        # two-tower's own scores for them is chosen on validation with beta: its rows
        # include validation cold items (SplitConfig.valid_cold_item_frac).
        fallbacks = (True, False) if bool(untrained.any()) else (False,)
        check = ValidationSet(s.split, metric="ndcg", k=10, device=str(ctx.device))
        table = []
        for fb in fallbacks:
            for b in grid:
                v = check(FusionScorer(base.scorer, text, b, untrained if fb else None))
                table.append({"beta": b, "text_fallback": fb, "val_ndcg@10": v})
        best = max(table, key=lambda r: r["val_ndcg@10"])
        return Fitted(
            scorer=FusionScorer(
                base.scorer, text, best["beta"], untrained if best["text_fallback"] else None
            ),
            stages=base.stages,
            history=base.history,
            n_parameters=base.n_parameters,
            info={
                "chosen": {"beta": best["beta"], "text_fallback": best["text_fallback"]},
                "grid": table,
                "untrained_items": int(untrained.sum()),
            },
        )
