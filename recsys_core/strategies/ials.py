"""iALS (Hu, Koren and Volinsky, ICDM 2008; the revised settings of Rendle et al. 2022) as
a baseline of its own, tuned on validation (:data:`recsys_core.models.DEFAULT_IALS_GRID`).
A cold user is folded in exactly from their k support items; with no history the
pipeline's popularity prior takes over (:mod:`recsys_core.strategies.prior`).
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
class IALSStrategyConfig(StrategyConfig):
    """iALS has no option here: factors, reg and alpha are tuned on validation."""


class IALSStrategy(Strategy):
    name = "ials"
    Config = IALSStrategyConfig
    kind = "baseline"
    text_models = None
    in_suite = True
    cost_hint = 12.0
    summary = "iALS: implicit alternating least squares on the target; tuned on validation."

    def shared_steps(self, settings: ModelSettings) -> frozenset[str]:
        return frozenset({"id_only:ials"})

    def fit(self, ctx: Context) -> Fitted:
        return fit_id_only(ctx, "ials")
