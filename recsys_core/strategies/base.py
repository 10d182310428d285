"""The one contract every strategy honours, and the pieces they share.

A strategy takes a :class:`Context` (the scenario, frozen text vectors, device,
callbacks, and a per-process cache so several strategies run together share the source
pre-training and the target-only model) and returns a :class:`Fitted`: a scorer that
the evaluation ranks the whole target catalogue with, plus the vectors of each stage
for the embedding-shift views, the training curve and facts worth reporting.

Adding a strategy = one module with a subclass of :class:`Strategy` registered in
:mod:`recsys_core.strategies.registry`; the contract tests then run it.
"""

from __future__ import annotations

import copy
import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp
import torch

from recsys_core.data.scenario import Scenario
from recsys_core.models.two_tower import TwoTower, TwoTowerConfig
from recsys_core.training.callbacks import Callbacks
from recsys_core.training.loop import DomainData, TrainConfig, TrainResult, train

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
                "bpr-mf only: lazy Adam that updates just the rows each batch touched; about "
                "1.8x faster per epoch at 10M interactions and 687k users "
                "(bench/bench_scale.py), but not the dense Adam of RecBole's published "
                "settings."
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
    cache: dict = field(default_factory=dict)

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

    @abstractmethod
    def fit(self, ctx: Context) -> Fitted:
        """Train on ``ctx.scenario`` and return a scorer over the target catalogue."""


# ---------------------------------------------------------------------- shared helpers
def target_matrix(scn: Scenario, with_valid: bool = False) -> sp.csr_matrix:
    """(n_joint_users, n_joint_items) binary csr of target training (+valid) pairs."""
    parts = [scn.split.train[["user", "item"]]]
    if with_valid:
        parts.append(scn.split.valid[["user", "item"]])
    u = np.concatenate([p["user"].to_numpy() for p in parts])
    i = np.concatenate([p["item"].to_numpy() for p in parts])
    m = sp.csr_matrix((np.ones(len(u), np.float32), (u, i)), shape=(scn.n_users, scn.n_items))
    m.data[:] = 1.0
    return m


def target_data(
    scn: Scenario, history: sp.csr_matrix | None = None, weight: float = 1.0
) -> DomainData:
    tr = scn.split.train
    return DomainData(
        name="target",
        users=tr["user"].to_numpy(),
        items=tr["item"].to_numpy(),
        pool=np.arange(scn.n_target_items),
        history=history if history is not None else target_matrix(scn),
        weight=weight,
    )


def source_data(
    scn: Scenario,
    history: sp.csr_matrix | None = None,
    weight: float = 1.0,
    loss: str | None = None,
) -> DomainData:
    """Source training pairs in joint indices; ``loss`` overrides the run's loss."""
    st = scn.source_train
    return DomainData(
        name="source",
        users=st["user"].to_numpy(),
        items=st["item"].to_numpy(),
        pool=np.flatnonzero(scn.item_domain >= 1),
        history=history if history is not None else scn.source_matrix(),
        weight=weight,
        loss=loss,
    )


def joint_history(scn: Scenario) -> sp.csr_matrix:
    """Target train plus usable source interactions: all a user is known to have done."""
    m = (target_matrix(scn) + scn.source_matrix()).tocsr()
    m.data[:] = 1.0
    return m


class TwoTowerScorer:
    """Adapts a TwoTower to the evaluation's Scorer protocol over the target catalogue.

    With ``source_history`` a shared user's usable source interactions are pooled into
    their vector too (the scenario already cut them at the honest moment).

    With ``calibrate_cold`` (the default) target items without a target training
    interaction are scored by their content path put on the trained items' scale
    (:meth:`TwoTower._calibrate_untrained`). Validation sees this too: its rows include
    the validation cold items (``SplitConfig.valid_cold_item_frac``). :meth:`raw` is the
    same scorer without it, which a distillation teacher uses for its logits.
    """

    def __init__(
        self,
        model: TwoTower,
        scn: Scenario,
        source_history: bool,
        device: torch.device,
        calibrate_cold: bool = True,
    ):
        self.model, self.scn, self.device = model, scn, device
        self.source = scn.source_matrix() if (source_history and scn.has_source) else None
        self.calibrate_cold = calibrate_cold
        self.untrained = untrained_target_items(scn) if calibrate_cold else None
        self.anonymous = False

    def raw(self) -> TwoTowerScorer:
        """This scorer without the cold-item calibration (shares the model)."""
        out = copy.copy(self)
        out.calibrate_cold, out.untrained = False, None
        return out

    def as_cold(self) -> TwoTowerScorer:
        """This scorer treating every user as never trained: no id vector, no source
        history, only the target history it is given (shares the model)."""
        out = copy.copy(self)
        out.anonymous, out.source = True, None
        return out

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        extra = self.source[users] if self.source is not None else None
        return self.model.score_users(
            users,
            history,
            self.scn.n_target_items,
            extra,
            self.device,
            self.untrained,
            anonymous=self.anonymous,
        )


def untrained_target_items(scn: Scenario) -> torch.Tensor:
    """bool (n_target_items,): target items with no target training interaction."""
    return torch.from_numpy(~scn.split.trained_items()[: scn.n_target_items])


def make_validate(scorer: Any, scn: Scenario, device: torch.device):
    """A closure returning validation NDCG@10 (warm users, valid items; never test)."""
    from recsys_core.evaluation.evaluate import ValidationSet

    # Early stopping looks at the validation rows of trained items only: with the
    # validation cold items in, the curve follows how the text tower happens to place
    # new items, which swings from epoch to epoch (on the demo it stopped fine-tuning
    # at its second epoch and lost 0.04 NDCG@10 on test). How new items are scored is
    # judged afterwards, on all rows (pipeline: cold_item_scores="auto").
    check = ValidationSet(scn.split, metric="ndcg", k=10, device=str(device), rows="warm-items")

    def _validate() -> float:
        return check(scorer)

    return _validate


def stage_vectors(model: TwoTower, scn: Scenario, history: sp.csr_matrix) -> dict[str, np.ndarray]:
    """Item vectors (n_joint_items, d) and user vectors (n_joint_users, d) of a model."""
    model.eval()
    with torch.no_grad():
        items = model.item_vectors()
        users = torch.arange(scn.n_users, device=items.device)
        hs = hc = None
        if model.config.use_history:
            from recsys_core.models.two_tower import _pool

            hs, hc = _pool(history, items, items.device)
        uv = model.user_vectors_from_sum(users, hs, hc)
        bias = model.item_biases()
        out = {
            "items": items.float().cpu().numpy(),
            "users": uv.float().cpu().numpy(),
            "item_bias": bias.float().cpu().numpy(),
        }
        if model.use_text:
            # the content path alone, so a saved run can score new items as it was
            # evaluated (cold-item calibration; recommend.recommend_for_history)
            out["content"] = model.text_proj(model.text).float().cpu().numpy()
            out["content_bias"] = model.text_bias(model.text).squeeze(1).float().cpu().numpy()
    return out


def new_model(ctx: Context, dim: int | None = None) -> TwoTower:
    s = ctx.scenario
    torch.manual_seed(ctx.settings.seed)
    return TwoTower(s.n_users, s.n_items, ctx.settings.tower(dim), ctx.text)


def cache_key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def pretrain_source(ctx: Context, dim: int | None = None) -> tuple[TwoTower, TrainResult]:
    """Train the two-tower on the source domain alone (shared across strategies).

    Validated on the target's valid split through the shared items and text: it tells
    how well the source model transfers, and picks the source epoch to carry over.
    Returns a fresh copy each call so a strategy may modify it.
    """
    scn = ctx.scenario
    if not scn.has_source:
        raise ValueError(
            f"strategy needs a source domain, but scenario '{scn.name}' has none; "
            "pick a two-domain scenario (e.g. demo:ml1m-to-ml100k) or upload a source"
        )
    key = cache_key("source", asdict(ctx.settings), dim, scn.fingerprint(), str(ctx.device))
    if key not in ctx.cache:
        model = new_model(ctx, dim)
        scorer = ctx.scorer(model, source_history=True)
        res = train(
            model,
            [source_data(scn)],
            ctx.settings.train_config(
                epochs=ctx.settings.source_epochs,
                max_per_epoch=max(ctx.settings.source_per_epoch, ctx.settings.batch_size),
                loss=ctx.settings.source_loss,
            ),
            validate=make_validate(scorer, scn, ctx.device),
            callbacks=ctx.callbacks,
            stage="pretrain source",
            device=ctx.device,
        )
        ctx.cache[key] = (model, res)
    model, res = ctx.cache[key]
    return copy.deepcopy(model), res


def with_stage(history: list[dict], stage: str) -> list[dict]:
    return [{**row, "stage": stage} for row in history]
