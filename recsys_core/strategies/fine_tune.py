"""Fine-tune: pre-train on the source, carry the shared parts over, train on the target.

What carries over lives in the joint index space (see data/scenario.py): the text
tower, the pooling, and the id embeddings of shared items and users are the *same rows*
in both stages, so nothing needs copying. Options:

* ``freeze``: keep parts at their source values (the text tower, the item embeddings).
* ``l2sp``: the L2-SP penalty ``lambda * ||theta - theta_source||^2`` (Li, Grandvalet &
  Davoine, ICML 2018) over every carried parameter (for id tables: only rows that the
  source trained), keeping the model near its source starting point instead of near
  zero; this is the "transfer loss" of the source articles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

from recsys_core.strategies.base import (
    Context,
    Fitted,
    ModelSettings,
    Strategy,
    StrategyConfig,
    joint_history,
    make_validate,
    pretrain_source,
    stage_vectors,
    target_data,
    with_stage,
)
from recsys_core.training.loop import StepContext, train

Freeze = Literal["none", "text", "items", "text+items"]


@dataclass(frozen=True)
class FineTuneConfig(StrategyConfig):
    freeze: Freeze = field(
        default="none",
        metadata={
            "help": (
                "parts kept at their source values: none, text (the text tower), items (item "
                "id embeddings and biases), text+items."
            )
        },
    )
    l2sp: float = field(
        default=0.0,
        metadata={"help": "L2-SP weight lambda (0 = plain fine-tuning). Useful range 1e-4..1e-1."},
    )
    lr_scale: float = field(
        default=1.0,
        metadata={
            "help": (
                "multiplier on the learning rate for the target stage (smaller keeps more source)."
            )
        },
    )

    def __post_init__(self) -> None:
        if self.freeze not in ("none", "text", "items", "text+items"):
            raise ValueError(f"freeze must be none, text, items or text+items, not {self.freeze!r}")
        if not 0 <= self.l2sp <= 100:
            raise ValueError(f"l2sp must be between 0 and 100, got {self.l2sp}")
        if not 0 < self.lr_scale <= 10:
            raise ValueError(f"lr_scale must be in (0, 10], got {self.lr_scale}")


def frozen_names(freeze: str) -> set[str]:
    out: set[str] = set()
    if "text" in freeze:
        out |= {"text_proj", "text_bias"}
    if "items" in freeze:
        out |= {"item_emb", "item_bias"}
    return out


def l2sp_term(
    model: torch.nn.Module, anchor: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]
):
    """sum over carried params of ||theta - theta_src||^2 (masked rows for id tables)."""
    total = torch.zeros((), device=next(model.parameters()).device)
    for name, p in model.named_parameters():
        if name not in anchor or not p.requires_grad:
            continue
        diff = (p - anchor[name]).pow(2)
        if name in masks:
            m = masks[name]
            diff = diff * (m.unsqueeze(1) if diff.dim() == 2 else m)
        total = total + diff.sum()
    return total


class FineTuneStrategy(Strategy):
    name = "fine-tune"
    Config = FineTuneConfig
    needs_source = True
    cost_hint = 34.0
    summary = "Pre-train on the source, carry shared items, users and the text tower over, train on the target."

    def shared_steps(self, settings: ModelSettings) -> frozenset[str]:
        return frozenset({"pretrain_source", "fine_tune"})

    def fit(self, ctx: Context) -> Fitted:
        return fine_tuned(ctx, self.config)  # type: ignore[arg-type]


def fine_tuned(ctx: Context, cfg: FineTuneConfig) -> Fitted:
    """Fine-tune with ``cfg``; cached per process, so distill's default teacher (source
    then target, same width) is this very model when both run in one batch."""
    from dataclasses import asdict

    from recsys_core.strategies.base import cache_key

    key = cache_key(
        "fine-tune",
        cfg.to_dict(),
        asdict(ctx.settings),
        ctx.scenario.fingerprint(),
        str(ctx.device),
    )
    return ctx.cache.get_or_compute(key, lambda: _fine_tune(ctx, cfg), step="fine_tune")


def _fine_tune(ctx: Context, cfg: FineTuneConfig) -> Fitted:
    s = ctx.scenario
    model, src_res = pretrain_source(ctx)
    hist = joint_history(s)
    src_stage = stage_vectors(model, s, s.source_matrix())
    anchor = {n: p.detach().clone() for n, p in model.named_parameters()}
    masks = {
        "user_emb": model.trained_user.float(),
        "item_emb": model.trained_item.float(),
        "item_bias": model.trained_item.float(),
    }
    masks = {k: v for k, v in masks.items() if hasattr(model, k)}
    frozen = frozen_names(cfg.freeze)
    for n, p in model.named_parameters():
        p.requires_grad_(n.split(".")[0] not in frozen)
    extra = None
    if cfg.l2sp > 0:

        def extra(c: StepContext) -> torch.Tensor:
            return cfg.l2sp * l2sp_term(c.model, anchor, masks)

    scorer = ctx.scorer(model, source_history=True)
    tc = ctx.settings.train_config(lr=ctx.settings.lr * cfg.lr_scale)
    res = train(
        model,
        [target_data(s, history=hist)],
        tc,
        validate=make_validate(scorer, s, ctx.device),
        extra_loss=extra,
        callbacks=ctx.callbacks,
        stage="fine-tune target",
        device=ctx.device,
    )
    for p in model.parameters():
        p.requires_grad_(True)
    return Fitted(
        scorer=scorer,
        stages={"source": src_stage, "final": stage_vectors(model, s, hist)},
        history=with_stage(src_res.history, "source") + with_stage(res.history, "target"),
        n_parameters=model.n_parameters(),
        info={
            "source_best_epoch": src_res.best_epoch,
            "source_val_ndcg@10": src_res.best_val,
            "best_epoch": res.best_epoch,
            "best_val_ndcg@10": res.best_val,
            "precision": res.precision,
            "frozen": sorted(frozen),
        },
        weights=dict(model.state_dict()),
    )
