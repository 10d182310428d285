"""Name -> strategy class. The CLI, the app and the contract tests read this one table."""

from __future__ import annotations

from recsys_core.strategies.adapt import AdaptStrategy
from recsys_core.strategies.base import Strategy, StrategyConfig
from recsys_core.strategies.baselines import (
    PopularityStrategy,
    TargetOnlyStrategy,
    TextZeroShotStrategy,
)
from recsys_core.strategies.distill import DistillStrategy
from recsys_core.strategies.fine_tune import FineTuneStrategy
from recsys_core.strategies.fusion import FusionStrategy
from recsys_core.strategies.mapping import MappingStrategy

STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls
    for cls in (
        PopularityStrategy,
        TextZeroShotStrategy,
        TargetOnlyStrategy,
        FineTuneStrategy,
        DistillStrategy,
        AdaptStrategy,
        FusionStrategy,
        MappingStrategy,
    )
}


def get_strategy(name: str, options: dict | None = None) -> Strategy:
    """Instantiate a strategy by name with its options (validated by its config)."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose from: {', '.join(STRATEGIES)}")
    cls = STRATEGIES[name]
    cfg: StrategyConfig = cls.Config.from_dict(options or {})
    return cls(cfg)
