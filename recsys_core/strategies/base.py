"""The one contract every strategy honours, and the pieces they share.

A strategy takes a :class:`Context` (the scenario, frozen text vectors, device,
callbacks, and a per-process cache so several strategies run together share the source
pre-training and the target-only model) and returns a :class:`Fitted`: a scorer that
the evaluation ranks the whole target catalogue with, plus the vectors of each stage
for the embedding-shift views, the training curve and facts worth reporting.

The training helpers strategies share live in :mod:`recsys_core.strategies.common`
and are re-exported here.

Adding a strategy = one module with a subclass of :class:`Strategy` registered in
:mod:`recsys_core.strategies.registry`; the contract tests then run it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from recsys_core.data.scenario import Scenario
from recsys_core.models.two_tower import TwoTower, TwoTowerConfig
from recsys_core.strategies.common import (
    TwoTowerScorer,
    cache_key,
    joint_history,
    make_validate,
    new_model,
    pretrain_source,
    source_data,
    stage_vectors,
    target_data,
    target_matrix,
    untrained_target_items,
    with_stage,
)
from recsys_core.strategies.step_cache import StepCache
from recsys_core.training.callbacks import Callbacks
from recsys_core.training.loop import TrainConfig

ModelName = Literal["two-tower", "bpr-mf", "ease", "ials"]


# Per-model defaults for the settings left unset (None). Measured on ML-100K under the
# RecBole protocol (see README): plain BPR-MF wants Adam at a small learning rate and
# patience, as in RecBole; the two-tower trains best with a full softmax over the target
# catalogue and a little L2 on the rows of each batch.
_MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "bpr-mf": {
        "loss": "bpr",
        "lr": 0.001,
        "batch_size": 2048,
        "patience": 10,
        "epochs": 150,
        "weight_decay": 0.0,
    },
    "two-tower": {
        "loss": "full-softmax",
        "lr": 0.01,
        "batch_size": 4096,
        "patience": 3,
        "epochs": 40,
        "weight_decay": 0.01,
    },
}


@dataclass(frozen=True)
class ModelSettings:
    """Settings every trained strategy shares (the CLI's --model/--dim/--epochs/...).

    Fields left at None take the per-model defaults of ``_MODEL_DEFAULTS``. Each field's
    help text lives in its ``metadata["help"]`` (:func:`field_help`), which the app's
    widgets and the CLI read: no source file is parsed at run time.
    """

    model: ModelName = field(
        default="two-tower",
        metadata={
            "help": (
                "two-tower: ids + text + history pooling; bpr-mf: ids only (plain BPR matrix "
                "factorisation); ease / ials: strong id-only target baselines (target-only "
                "only)."
            )
        },
    )
    dim: int = field(
        default=64,
        metadata={"help": "embedding dimension d of the user and item vectors."},
    )
    epochs: int | None = field(
        default=None,
        metadata={
            "help": (
                "upper bound on target training epochs (early stopping on validation "
                "NDCG@10); None: the model's default."
            )
        },
    )
    batch_size: int | None = field(
        default=None,
        metadata={"help": "interactions per training step; None: the model's default."},
    )
    lr: float | None = field(
        default=None,
        metadata={"help": "Adam learning rate; None: the model's default."},
    )
    loss: Literal["bpr", "softmax", "full-softmax"] | None = field(
        default=None,
        metadata={
            "help": (
                "bpr, sampled softmax, or full softmax over the catalogue (see TrainConfig.loss)."
            )
        },
    )
    weight_decay: float | None = field(
        default=None,
        metadata={
            "help": "L2 on the user and item vectors of each batch; None: the model's default."
        },
    )
    history_len: int = field(
        default=32,
        metadata={"help": "history items pooled into a user's vector during training."},
    )
    source_epochs: int = field(
        default=3,
        metadata={
            "help": (
                "epochs of pre-training on the source domain (on the ML-1M demo the target's "
                "validation peaks at the third)."
            )
        },
    )
    source_per_epoch: int = field(
        default=250_000,
        metadata={
            "help": (
                "source pairs visited per pre-training epoch (a fresh sample each epoch): "
                "keeps a 1M-interaction source to seconds per epoch on a laptop CPU."
            )
        },
    )
    source_loss: Literal["bpr", "softmax", "full-softmax"] = field(
        default="softmax",
        metadata={
            "help": (
                "loss of source pre-training: sampled softmax keeps a large source catalogue cheap."
            )
        },
    )
    patience: int | None = field(
        default=None,
        metadata={
            "help": "epochs without validation gain before stopping; None: the model's default."
        },
    )
    seed: int = field(
        default=0,
        metadata={"help": "random seed of the model and sampling."},
    )
    sparse_adam: bool = field(
        default=False,
        metadata={
            "help": (
                "bpr-mf only: lazy Adam that updates just the rows each batch touched, not "
                "the dense Adam of RecBole's published settings. Since the fused dense Adam "
                "it is no faster on a CPU: at 10M interactions and 687k users an epoch took "
                "20 to 21 s against dense Adam's 17 to 19 s (bench/bench_scale.py)."
            )
        },
    )
    precision: Literal["auto", "float32"] = field(
        default="auto",
        metadata={
            "help": (
                "auto: two-tower matrix products in bfloat16 where the device computes it "
                "natively (a CUDA GPU, a CPU with AVX512-BF16 or AMX), weights and sums in "
                "float32. On the demo a two-tower epoch 0.88 -> 0.71 s, and over three split "
                "seeds no segment's NDCG@10 moved by more than 0.72 times the half width of "
                "its 95% interval (docs/design.md). float32: the same numbers on every machine."
            )
        },
    )
    cold_item_scores: Literal["auto", "calibrated", "raw"] = field(
        default="auto",
        metadata={
            "help": (
                "how a two-tower ranks target items without training interactions: "
                '"calibrated" puts their content-path score on the trained items\' scale '
                '(TwoTowerScorer); "raw" keeps the model\'s own score, which ranks them below '
                'the whole catalogue; "auto" keeps whichever scores better on validation '
                "(whose rows include cold items)."
            )
        },
    )

    def __post_init__(self) -> None:
        if self.cold_item_scores not in ("auto", "calibrated", "raw"):
            raise ValueError(
                "cold_item_scores must be 'auto', 'calibrated' or 'raw', "
                f"not {self.cold_item_scores!r}"
            )
        if self.precision not in ("auto", "float32"):
            raise ValueError(f"precision must be 'auto' or 'float32', not {self.precision!r}")
        if self.model not in ("two-tower", "bpr-mf", "ease", "ials"):
            raise ValueError(f"model must be two-tower, bpr-mf, ease or ials, not {self.model!r}")
        if self.source_epochs < 1:
            raise ValueError(f"source_epochs must be >= 1, got {self.source_epochs}")
        defaults = _MODEL_DEFAULTS.get(self.model, _MODEL_DEFAULTS["two-tower"])
        for name, value in defaults.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        # Reuse the component configs' checks so every bad value has one message.
        self.tower()
        self.train_config()

    def tower(self, dim: int | None = None) -> TwoTowerConfig:
        mf = self.model == "bpr-mf"
        return TwoTowerConfig(
            dim=dim or self.dim, use_text=not mf, use_history=not mf, history_len=self.history_len
        )

    def train_config(self, epochs: int | None = None, **over: Any) -> TrainConfig:
        kw = dict(
            epochs=epochs or self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            loss=self.loss,
            patience=self.patience,
            weight_decay=self.weight_decay,
            seed=self.seed,
            sparse_adam=self.sparse_adam,
            amp=self.precision == "auto",
        )
        kw.update(over)
        return TrainConfig(**kw)


@dataclass
class Context:
    """What a strategy may use. ``cache`` lives for one process (one CLI call, one job)."""

    scenario: Scenario
    text: torch.Tensor | None
    """float32 (n_joint_items, text_dim) frozen L2-normalised text vectors, or None."""
    settings: ModelSettings = field(default_factory=ModelSettings)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    callbacks: Callbacks = field(default_factory=Callbacks)
    cache: StepCache = field(default_factory=StepCache)
    """results shared by the runs of one call (a plain dict is wrapped)."""

    def __post_init__(self) -> None:
        if not isinstance(self.cache, StepCache):
            self.cache = StepCache(dict(self.cache))

    def scorer(self, model: TwoTower, source_history: bool) -> TwoTowerScorer:
        """A TwoTowerScorer for ``model`` with this context's cold-item setting."""
        return TwoTowerScorer(
            model,
            self.scenario,
            source_history=source_history,
            device=self.device,
            calibrate_cold=self.settings.cold_item_scores != "raw",
        )


@dataclass
class Fitted:
    """A trained strategy.

    Attributes:
        scorer: object with ``score(users, history) -> (B, n_target_items)`` (the
            evaluation's Scorer protocol).
        stages: stage name -> {"items": (n_joint_items, d), "users": (n_joint_users, d)}
            numpy arrays, e.g. "source" (pre-trained), "final".
        history: training curve rows (epoch, loss, val_ndcg@10, seconds, stage).
        n_parameters: trainable parameters of the model that scores.
        info: anything worth showing (chosen hyper-parameters, student size, speed).
        weights: tensors to save (safetensors) or None.
    """

    scorer: Any
    stages: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    n_parameters: int = 0
    info: dict = field(default_factory=dict)
    weights: dict[str, torch.Tensor] | None = None


def field_help(cls: type) -> dict[str, str]:
    """field name -> help text of a config dataclass (class or instance).

    The text is declared once, as ``dataclasses.field(metadata={"help": ...})``; the
    app's widgets and the CLI read it from here. Metadata survives in an installed
    wheel, where the source files a docstring parser would need may be absent. Fields
    without help are left out.
    """
    if not is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    return {
        f.name: " ".join(str(f.metadata["help"]).split())
        for f in fields(cls)
        if f.metadata.get("help")
    }


@dataclass(frozen=True)
class StrategyConfig:
    """Base of the per-strategy configs (frozen, validated in ``__post_init__``).

    Every option is declared as ``field(default=..., metadata={"help": "..."})``; a test
    holds each field of each registered strategy's config to a non-empty help text.
    """

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> StrategyConfig:
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(
                f"unknown option(s) for {cls.__name__}: {', '.join(sorted(unknown))}; "
                f"known: {', '.join(sorted(names)) or 'none'}"
            )
        return cls(**d)


class Strategy(ABC):
    """Base contract. Subclasses set ``name``, ``Config``, ``kind`` and implement fit.

    What a strategy *is* is declared here, once, on its class; the pipeline, the CLI, the
    app and the verdict ask :mod:`recsys_core.strategies.registry`, never a list of
    names (issue 11). The contract tests check each declaration against behaviour.
    """

    name: ClassVar[str]
    Config: ClassVar[type[StrategyConfig]] = StrategyConfig
    kind: ClassVar[Literal["baseline", "transfer"]] = "transfer"
    """baseline: trained on the target alone (what a transfer gain is measured against);
    transfer: uses the source domain or a pretrained model's knowledge of the items."""
    needs_source: ClassVar[bool] = False
    """refuses a scenario without a source domain."""
    needs_shared_users: ClassVar[bool] = False
    """refuses a scenario whose domains share no user."""
    requires_text: ClassVar[bool] = False
    """refuses to run without item text vectors."""
    text_models: ClassVar[frozenset[str] | None] = frozenset({"two-tower", "ease", "ials"})
    """models (``ModelSettings.model``) under which the strategy reads the item text;
    None: never. The default is the two-tower family, whose text tower is off only for
    bpr-mf (:meth:`ModelSettings.tower`)."""
    in_suite: ClassVar[bool] = False
    """trained automatically as part of the baseline suite whenever a comparison holds
    a transfer strategy (``RunRequest.baselines="suite"``)."""
    blends_prior: ClassVar[bool] = True
    """its scorer gets the per-history-length popularity prior chosen on validation
    (:mod:`recsys_core.strategies.prior`); off for popularity itself and for strategies
    that already blend with it."""
    summary: ClassVar[str] = ""
    cost_hint: ClassVar[float] = 10.0
    """rough seconds of one run on the ML-1M -> ML-100K demo on a 2-core CPU, shared
    steps included; only orders the runs of a call longest first when the run store has
    no timings of its own (:mod:`recsys_core.runs.parallel`)."""

    def __init__(self, config: StrategyConfig | None = None) -> None:
        self.config = config if config is not None else self.Config()
        if not isinstance(self.config, self.Config):
            raise TypeError(f"{self.name} takes a {self.Config.__name__}")

    @classmethod
    def reads_text(cls, settings: ModelSettings) -> bool:
        """Whether a run under ``settings`` reads the frozen item text vectors."""
        if cls.requires_text:
            return True
        return cls.text_models is not None and settings.model in cls.text_models

    @classmethod
    def unavailable(cls, scn: Scenario, has_text: bool) -> str | None:
        """Why this strategy cannot run on ``scn`` (None if it can): one friendly sentence."""
        if cls.needs_source and not scn.has_source:
            return (
                f"{cls.name} needs a source domain, but scenario '{scn.name}' has none; "
                "pick a two-domain scenario (e.g. demo:ml1m-to-ml100k) or upload a source"
            )
        if cls.needs_shared_users and cls.needs_source and scn.has_source:
            n_shared = scn.links.shared_users if scn.links is not None else 0
            if not n_shared:
                return (
                    f"{cls.name} needs users present in both domains, but scenario "
                    f"'{scn.name}' shares none; use a scenario with shared users "
                    "(e.g. demo:ml1m-genres)"
                )
        if cls.requires_text and not has_text:
            return f"{cls.name} needs item text; load an item table with titles"
        return None

    def check(self, ctx: Context) -> None:
        """Raise the one friendly ValueError when the context lacks what fit needs."""
        why = self.unavailable(ctx.scenario, ctx.text is not None)
        if why:
            raise ValueError(why)

    def shared_steps(self, settings: ModelSettings) -> frozenset[str]:
        """Results this strategy's fit shares with other runs of one call, by step name
        (:class:`~recsys_core.strategies.step_cache.StepCache`: "pretrain_source",
        "target_two_tower", "fine_tune", "id_only:ials", ...). When runs fit in parallel
        (:mod:`recsys_core.runs.parallel`), a run is not started while another one is
        computing one of its steps: it would only wait for it. Empty by default."""
        return frozenset()

    @abstractmethod
    def fit(self, ctx: Context) -> Fitted:
        """Train on ``ctx.scenario`` and return a scorer over the target catalogue."""


__all__ = [
    "Context",
    "Fitted",
    "ModelName",
    "ModelSettings",
    "Strategy",
    "StrategyConfig",
    "TwoTowerScorer",
    "cache_key",
    "field_help",
    "joint_history",
    "make_validate",
    "new_model",
    "pretrain_source",
    "source_data",
    "stage_vectors",
    "target_data",
    "target_matrix",
    "untrained_target_items",
    "with_stage",
]
