"""Options of the mapping strategy (``--option mapping.KEY=VALUE``, a TOML
``[options.mapping]`` table, the Train page's widgets): one frozen, validated dataclass
with the help text of each field."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from recsys_core.strategies.base import StrategyConfig


@dataclass(frozen=True)
class MappingConfig(StrategyConfig):
    """Options of :class:`MappingStrategy` (``--option mapping.KEY=VALUE``)."""

    mapper: Literal["linear", "mlp"] = field(
        default="linear",
        metadata={
            "help": (
                "linear: ridge regression U_s -> U_t in closed form; mlp: two-layer tanh "
                "network (EMCDR's two mapping functions)."
            )
        },
    )
    blend: Literal["none", "validation"] = field(
        default="validation",
        metadata={
            "help": (
                "none: cold shared users get the mapped vector alone; validation: the mapped "
                "score mixed with one target-only score (popularity or the support fold-in), "
                "weight and partner per support size k chosen on simulated cold users (module"
                " docstring)."
            )
        },
    )
    factors: int = field(
        default=64,
        metadata={
            "help": (
                "latent dimension of the source factorisation (the target's is tuned with it)."
            )
        },
    )
    tune_target: bool = field(
        default=True,
        metadata={
            "help": (
                "choose the target iALS on validation over the target-only baseline's grid; "
                "False uses IALSConfig defaults at ``factors``."
            )
        },
    )
    source_reg: float = field(
        default=0.1,
        metadata={
            "help": "iALS penalty of the source factorisation (no target signal can tune it)."
        },
    )
    source_alpha: float = field(
        default=0.5,
        metadata={"help": "iALS confidence slope of the source factorisation."},
    )
    iterations: int = field(
        default=15,
        metadata={"help": "iALS sweeps, both domains."},
    )
    ridge: float | None = field(
        default=None,
        metadata={
            "help": "fixed ridge penalty of the linear map; None chooses it on held-out users."
        },
    )
    hidden: int = field(
        default=128,
        metadata={"help": "hidden width of the mlp mapper."},
    )
    mlp_epochs: int = field(
        default=300,
        metadata={"help": "upper bound on mlp epochs (early stopping usually ends sooner)."},
    )
    mlp_lr: float = field(
        default=0.003,
        metadata={"help": "Adam learning rate of the mlp mapper."},
    )
    mlp_weight_decay: float = field(
        default=1e-4,
        metadata={"help": "Adam weight decay of the mlp mapper."},
    )
    patience: int = field(
        default=20,
        metadata={"help": "mlp epochs without a better held-out error before stopping."},
    )
    holdout_frac: float = field(
        default=0.2,
        metadata={
            "help": (
                "share of warm shared users held out of the map fit; they choose the ridge, "
                "stop the mlp and choose the blend weights."
            )
        },
    )

    def __post_init__(self) -> None:
        if self.mapper not in ("linear", "mlp"):
            raise ValueError(f"mapper must be 'linear' or 'mlp', not {self.mapper!r}")
        if self.blend not in ("none", "validation"):
            raise ValueError(f"blend must be 'none' or 'validation', not {self.blend!r}")
        for name in ("factors", "hidden", "iterations", "mlp_epochs", "patience"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.factors > 1024:
            raise ValueError(f"factors must be at most 1024 (try 64), got {self.factors}")
        if not isinstance(self.tune_target, bool):
            raise ValueError(f"tune_target must be true or false, got {self.tune_target!r}")
        if not (self.source_reg > 0 and self.source_alpha > 0):
            raise ValueError(
                f"source_reg and source_alpha must be > 0, got {self.source_reg}, {self.source_alpha}"
            )
        if self.ridge is not None and not 0 <= self.ridge <= 1e6:
            raise ValueError(f"ridge must be between 0 and 1e6 (or unset), got {self.ridge}")
        if not 0 < self.mlp_lr <= 1:
            raise ValueError(f"mlp_lr must be in (0, 1], got {self.mlp_lr}")
        if not 0 <= self.mlp_weight_decay <= 1:
            raise ValueError(f"mlp_weight_decay must be in [0, 1], got {self.mlp_weight_decay}")
        if not 0 < self.holdout_frac < 0.9:
            raise ValueError(f"holdout_frac must be in (0, 0.9), got {self.holdout_frac}")
