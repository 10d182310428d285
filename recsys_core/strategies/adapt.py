"""Adapt: joint training on source and target with a domain-alignment loss.

Both domains are trained at once through the shared towers (one batch of each per
step); on top, an alignment term pulls the distributions of source and target item
representations together, so what the towers learn from the rich source is expressed
in the same region of the space the target uses:

    loss = rec_T + source_weight * rec_S + w(p) * align(items_S, items_T)

with ``align`` one of MMD, CORAL or DANN (see alignment.py) and ``w(p)`` constant or
ramped with training progress p (Ganin & Lempitsky 2015), so alignment does not fight
the recommendation loss before the towers have learned anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from recsys_core.embeddings.shift import REPORT_MAX_POINTS, REPORT_SEED, mmd_unbiased
from recsys_core.strategies.alignment import (
    DomainClassifier,
    coral,
    dann_schedule,
    grad_reverse,
    mmd_loss,
)
from recsys_core.strategies.base import (
    Context,
    Fitted,
    ModelSettings,
    Strategy,
    StrategyConfig,
    joint_history,
    make_validate,
    new_model,
    pretrain_source,
    source_data,
    stage_vectors,
    target_data,
    with_stage,
)
from recsys_core.training.loop import StepContext, train
from recsys_core.training.rng import seeded


@dataclass(frozen=True)
class AdaptConfig(StrategyConfig):
    method: Literal["mmd", "coral", "dann"] = field(
        default="mmd",
        metadata={"help": "which alignment loss."},
    )
    weight: float = field(
        default=1.0,
        metadata={"help": "maximum weight of the alignment loss."},
    )
    schedule: Literal["constant", "ramp"] = field(
        default="ramp",
        metadata={"help": "constant weight, or Ganin & Lempitsky's ramp from 0 to `weight`."},
    )
    source_weight: float = field(
        default=1.0,
        metadata={"help": "weight of the source recommendation loss in the joint objective."},
    )
    align_samples: int = field(
        default=512,
        metadata={"help": "items drawn from each domain per step for the alignment term."},
    )
    init: Literal["scratch", "source"] = field(
        default="scratch",
        metadata={"help": "start from random weights, or from the source pre-trained model."},
    )

    def __post_init__(self) -> None:
        if self.method not in ("mmd", "coral", "dann"):
            raise ValueError(f"method must be mmd, coral or dann, not {self.method!r}")
        if not 0 <= self.weight <= 1000:
            raise ValueError(f"weight must be between 0 and 1000, got {self.weight}")
        if self.schedule not in ("constant", "ramp"):
            raise ValueError(f"schedule must be constant or ramp, not {self.schedule!r}")
        if not 0 <= self.source_weight <= 100:
            raise ValueError(f"source_weight must be between 0 and 100, got {self.source_weight}")
        if not 8 <= self.align_samples <= 100_000:
            raise ValueError(
                f"align_samples must be between 8 and 100000, got {self.align_samples}"
            )
        if self.init not in ("scratch", "source"):
            raise ValueError(f"init must be scratch or source, not {self.init!r}")


def alignment_term(cfg: AdaptConfig, clf: DomainClassifier | None):
    """Build the extra-loss callable; also returns a list that records its values."""
    log: list[float] = []

    def term(c: StepContext, src_pool: torch.Tensor, tgt_pool: torch.Tensor, gen: torch.Generator):
        n = cfg.align_samples
        si = src_pool[torch.randint(len(src_pool), (n,), generator=gen).to(src_pool.device)]
        ti = tgt_pool[torch.randint(len(tgt_pool), (n,), generator=gen).to(tgt_pool.device)]
        xs, xt = c.item_vecs[si], c.item_vecs[ti]
        w = cfg.weight * (dann_schedule(c.progress) if cfg.schedule == "ramp" else 1.0)
        if cfg.method == "mmd":
            a = mmd_loss(xs, xt)
            out = w * a
        elif cfg.method == "coral":
            a = coral(xs, xt)
            out = w * a
        else:
            assert clf is not None
            # The classifier minimises its loss; the GRL makes the towers maximise it.
            a = clf.loss(grad_reverse(xs, w), grad_reverse(xt, w))
            out = a
        log.append(float(a.detach()))
        return out

    return term, log


class AdaptStrategy(Strategy):
    name = "adapt"
    Config = AdaptConfig
    needs_source = True
    cost_hint = 55.0
    summary = "Train on source and target together and align their item distributions (MMD, CORAL or DANN)."

    def shared_steps(self, settings: ModelSettings) -> frozenset[str]:
        cfg: AdaptConfig = self.config  # type: ignore[assignment]
        return frozenset({"pretrain_source"}) if cfg.init == "source" else frozenset()

    def fit(self, ctx: Context) -> Fitted:
        cfg: AdaptConfig = self.config  # type: ignore[assignment]
        s = ctx.scenario
        src_stage = None
        if cfg.init == "source":
            model, _ = pretrain_source(ctx)
            src_stage = stage_vectors(model, s, s.source_matrix())
        else:
            if not s.has_source:
                pretrain_source(ctx)  # raises the friendly "needs a source" error
            model = new_model(ctx)
        hist = joint_history(s)
        t_dom = target_data(s, history=hist)
        s_dom = source_data(
            s, history=hist, weight=cfg.source_weight, loss=ctx.settings.source_loss
        )
        # Source-only and target-only items: shared items belong to both and would only
        # blur the two distributions being compared.
        src_pool = torch.from_numpy(np.flatnonzero(s.item_domain == 1)).to(ctx.device)
        tgt_pool = torch.from_numpy(np.flatnonzero(s.item_domain == 0)).to(ctx.device)
        if len(src_pool) == 0 or len(tgt_pool) == 0:
            src_pool = torch.from_numpy(np.flatnonzero(s.item_domain >= 1)).to(ctx.device)
            tgt_pool = torch.arange(s.n_target_items, device=ctx.device)
        clf = None
        if cfg.method == "dann":
            with seeded(ctx.settings.seed + 31):
                clf = DomainClassifier(ctx.settings.dim).to(ctx.device)
        term, align_log = alignment_term(cfg, clf)
        gen = torch.Generator().manual_seed(ctx.settings.seed + 17)
        params = list(model.parameters()) + (list(clf.parameters()) if clf is not None else [])
        before = _domain_mmd(model, src_pool, tgt_pool)
        scorer = ctx.scorer(model, source_history=True)
        res = train(
            model,
            [t_dom, s_dom],
            ctx.settings.train_config(),
            validate=make_validate(scorer, s, ctx.device),
            extra_loss=lambda c: term(c, src_pool, tgt_pool, gen),
            params=params,
            callbacks=ctx.callbacks,
            stage=f"adapt ({cfg.method})",
            device=ctx.device,
        )
        after = _domain_mmd(model, src_pool, tgt_pool)
        stages = {"final": stage_vectors(model, s, hist)}
        if src_stage is not None:
            stages = {"source": src_stage, **stages}
        k = max(1, len(align_log) // 10)
        return Fitted(
            scorer=scorer,
            stages=stages,
            history=with_stage(res.history, "joint"),
            n_parameters=model.n_parameters()
            + (sum(p.numel() for p in clf.parameters()) if clf else 0),
            info={
                "best_epoch": res.best_epoch,
                "best_val_ndcg@10": res.best_val,
                "precision": res.precision,
                "alignment_loss_first": float(np.mean(align_log[:k])) if align_log else None,
                "alignment_loss_last": float(np.mean(align_log[-k:])) if align_log else None,
                "item_mmd_before": before,
                "item_mmd_after": after,
            },
            weights=dict(model.state_dict()),
        )


@torch.no_grad()
def _domain_mmd(model, src_pool: torch.Tensor, tgt_pool: torch.Tensor) -> float:
    """The reported MMD^2 between source-only and target-only item vectors.

    The same estimator, subsample and seed as the Embeddings page's "MMD source↔target"
    (:func:`~recsys_core.embeddings.shift.shift_report` on the stage's item vectors), so
    adapt's "MMD before/after" and that page agree on the same vectors. Vectors are
    taken as float32, as a stage stores them.
    """
    v = model.item_vectors().float().cpu().numpy()
    src, tgt = np.sort(src_pool.cpu().numpy()), np.sort(tgt_pool.cpu().numpy())
    return mmd_unbiased(v[src], v[tgt], max_points=REPORT_MAX_POINTS, seed=REPORT_SEED)
