"""Name -> strategy class: the one table the CLI, the app, the verdict and the contract
tests read. What each strategy can do is declared on its class (see
:class:`~recsys_core.strategies.base.Strategy`); the helpers below only ask those
declarations, so adding a strategy is one module plus one line in ``STRATEGIES``.
"""

from __future__ import annotations

from collections.abc import Iterable

from recsys_core.strategies.adapt import AdaptStrategy
from recsys_core.strategies.base import ModelSettings, Strategy, StrategyConfig
from recsys_core.strategies.baselines import (
    PopularityStrategy,
    TargetOnlyStrategy,
    TextZeroShotStrategy,
)
from recsys_core.strategies.content_map import ContentMapStrategy
from recsys_core.strategies.distill import DistillStrategy
from recsys_core.strategies.ease import EASEStrategy
from recsys_core.strategies.fine_tune import FineTuneStrategy
from recsys_core.strategies.fusion import FusionStrategy
from recsys_core.strategies.ials import IALSStrategy
from recsys_core.strategies.item_knn import ItemKNNStrategy
from recsys_core.strategies.mapping import MappingStrategy

STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls
    for cls in (
        PopularityStrategy,
        TextZeroShotStrategy,
        TargetOnlyStrategy,
        ItemKNNStrategy,
        EASEStrategy,
        IALSStrategy,
        ContentMapStrategy,
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


def kind_of(name: str) -> str | None:
    """ "baseline", "transfer", or None for a name the registry does not know (an
    uploaded external run, say: neither a baseline nor a transfer strategy)."""
    cls = STRATEGIES.get(name)
    return cls.kind if cls is not None else None


def baseline_names() -> list[str]:
    """Every baseline strategy, in registry order."""
    return [n for n, c in STRATEGIES.items() if c.kind == "baseline"]


def transfer_names() -> list[str]:
    """Every transfer strategy, in registry order."""
    return [n for n, c in STRATEGIES.items() if c.kind == "transfer"]


def suite_names(has_text: bool) -> list[str]:
    """The baseline suite trained beside any transfer strategy (``in_suite``), less those
    that need item text when the scenario has none."""
    return [
        n
        for n, c in STRATEGIES.items()
        if c.in_suite and c.kind == "baseline" and (has_text or not c.requires_text)
    ]


def needs_text(names: Iterable[str], settings: ModelSettings) -> bool:
    """Whether any of ``names`` reads item text under ``settings``: the one rule that
    decides whether a batch encodes the item text (tens of seconds the first time)."""
    return any(STRATEGIES[n].reads_text(settings) for n in names if n in STRATEGIES)
