"""EASE (Steck, WWW 2019) as a baseline of its own: a closed-form item-item model that is
among the strongest id-only recommenders on MovieLens. Its l2 is chosen on validation
(:data:`recsys_core.models.DEFAULT_EASE_GRID`). A cold user is scored from their k
support items (``x_u B``); with no history it falls back to the popularity prior, which
the pipeline blends in per history length (:mod:`recsys_core.strategies.prior`).
"""

from __future__ import annotations

from dataclasses import dataclass

from recsys_core.strategies.base import (
    Context,
    Fitted,
    ModelSettings,
    Strategy,
    StrategyConfig,
)
from recsys_core.strategies.baselines import fit_id_only


@dataclass(frozen=True)
class EASEStrategyConfig(StrategyConfig):
    """EASE has no option here: its l2 is tuned on validation."""


class EASEStrategy(Strategy):
    name = "ease"
    Config = EASEStrategyConfig
    kind = "baseline"
    text_models = None
    in_suite = True
    cost_hint = 4.0
    summary = "EASE: closed-form item-item regression on the target; l2 chosen on validation."

    def shared_steps(self, settings: ModelSettings) -> frozenset[str]:
        return frozenset({"id_only:ease"})

    def fit(self, ctx: Context) -> Fitted:
        return fit_id_only(ctx, "ease")
