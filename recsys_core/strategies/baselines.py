"""Baselines every chart compares to: popularity, text zero-shot, target-only.

A transfer gain counts only against the best of them (docs/design.md, "Strategies"),
which is why target-only also offers the strong id-only models EASE (Steck 2019) and
iALS (Hu et al. 2008), each tuned on validation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recsys_core.strategies.base import (
    Context,
    Fitted,
    ModelSettings,
    Strategy,
    StrategyConfig,
    make_validate,
    new_model,
    stage_vectors,
    target_data,
    target_matrix,
    with_stage,
)
from recsys_core.training.loop import train


def target_train_csr(ctx: Context):
    """(n_target_users, n_target_items) csr of target training pairs."""
    s = ctx.scenario
    return target_matrix(s)[: s.n_target_users, : s.n_target_items].tocsr()


def target_valid_csr(ctx: Context):
    """(n_target_users, n_target_items) csr of target validation pairs (what the id-only
    baselines tune their hyper-parameters on)."""
    import scipy.sparse as sp

    s, v = ctx.scenario, ctx.scenario.split.valid
    return sp.csr_matrix(
        (np.ones(len(v), np.float32), (v["user"].to_numpy(), v["item"].to_numpy())),
        shape=(s.n_target_users, s.n_target_items),
    )


def item_popularity(ctx: Context) -> np.ndarray:
    s = ctx.scenario
    return np.bincount(s.split.train["item"].to_numpy(), minlength=s.n_target_items).astype(
        np.float32
    )


@dataclass(frozen=True)
class PopularityConfig(StrategyConfig):
    pass


class PopularityStrategy(Strategy):
    name = "popularity"
    Config = PopularityConfig
    kind = "baseline"
    text_models = None
    in_suite = True
    blends_prior = False  # it *is* the prior
    cost_hint = 0.2
    summary = "Everyone gets the most-interacted target items. Hard to beat for thin histories."

    def fit(self, ctx: Context) -> Fitted:
        from recsys_core.models.popularity import Popularity

        model = Popularity().fit(target_train_csr(ctx))
        return Fitted(scorer=model, n_parameters=ctx.scenario.n_target_items)


@dataclass(frozen=True)
class TextZeroShotConfig(StrategyConfig):
    pass


class TextZeroShotStrategy(Strategy):
    name = "text-zero-shot"
    Config = TextZeroShotConfig
    kind = "baseline"
    requires_text = True
    in_suite = True
    cost_hint = 2.0
    summary = "No training: a user is the mean text vector of their history, scored by cosine."

    def fit(self, ctx: Context) -> Fitted:
        from recsys_core.models.text_zero_shot import TextZeroShot

        self.check(ctx)
        s = ctx.scenario
        scorer = TextZeroShot(ctx.text, s.n_target_items, item_popularity(ctx), ctx.device)
        items = ctx.text.cpu().numpy()
        return Fitted(
            scorer=scorer,
            stages={"text": {"items": items}},
            info={"empty_history": "falls back to popularity"},
        )


@dataclass(frozen=True)
class TargetOnlyConfig(StrategyConfig):
    """Target-only uses the shared ModelSettings (--model two-tower|bpr-mf|ease|ials)."""


class TargetOnlyStrategy(Strategy):
    name = "target-only"
    Config = TargetOnlyConfig
    kind = "baseline"
    text_models = frozenset({"two-tower"})  # bpr-mf, ease and ials are id-only
    in_suite = True
    cost_hint = 20.0
    summary = "Train on the target alone: the two-tower, BPR-MF, or the strong EASE / iALS."

    def shared_steps(self, settings: ModelSettings) -> frozenset[str]:
        m = settings.model
        return frozenset({f"id_only:{m}" if m in ("ease", "ials") else "target_two_tower"})

    def fit(self, ctx: Context) -> Fitted:
        m = ctx.settings.model
        if m in ("ease", "ials"):
            return fit_id_only(ctx, m)
        return fit_target_two_tower(ctx)


def fit_target_two_tower(ctx: Context) -> Fitted:
    """The two-tower (or BPR-MF) trained on the target only; cached per process."""
    from dataclasses import asdict

    from recsys_core.strategies.base import cache_key

    s = ctx.scenario
    key = cache_key("target-only", asdict(ctx.settings), s.fingerprint(), str(ctx.device))
    return ctx.cache.get_or_compute(
        key, lambda: _fit_target_two_tower(ctx), step="target_two_tower"
    )


def _fit_target_two_tower(ctx: Context) -> Fitted:
    s = ctx.scenario
    model = new_model(ctx)
    scorer = ctx.scorer(model, source_history=False)
    res = train(
        model,
        [target_data(s)],
        ctx.settings.train_config(),
        validate=make_validate(scorer, s, ctx.device),
        callbacks=ctx.callbacks,
        stage="train target",
        device=ctx.device,
    )
    return Fitted(
        scorer=scorer,
        stages={"final": stage_vectors(model, s, target_matrix(s))},
        history=with_stage(res.history, "target"),
        n_parameters=model.n_parameters(),
        info={
            "best_epoch": res.best_epoch,
            "best_val_ndcg@10": res.best_val,
            "precision": res.precision,
        },
        weights=dict(model.state_dict()),
    )


def fit_id_only(ctx: Context, which: str) -> Fitted:
    """EASE or iALS with its key hyper-parameter chosen on validation; cached per process
    (the suite's ``ease`` and a target-only run with ``--model ease`` train it once)."""
    from recsys_core.strategies.base import cache_key

    s = ctx.scenario
    key = cache_key("id-only", which, ctx.settings.seed, s.fingerprint(), str(ctx.device))
    return ctx.cache.get_or_compute(key, lambda: _fit_id_only(ctx, which), step=f"id_only:{which}")


def _fit_id_only(ctx: Context, which: str) -> Fitted:
    import time

    train_csr = target_train_csr(ctx)
    valid_csr = target_valid_csr(ctx)
    dev = str(ctx.device)
    t0 = time.perf_counter()
    from recsys_core.models import DEFAULT_EASE_GRID, DEFAULT_IALS_GRID, tune_on_validation

    if which == "ease":
        from recsys_core.models.ease import EASE, EASEConfig

        best, model, table = tune_on_validation(
            lambda l2: EASE(EASEConfig(l2=l2, device=dev)), DEFAULT_EASE_GRID, train_csr, valid_csr
        )
        info = {"chosen": {"l2": best}, "grid": table}
    else:
        from recsys_core.models.ials import IALS, IALSConfig

        best, model, table = tune_on_validation(
            lambda kw: IALS(IALSConfig(**kw, seed=ctx.settings.seed, device=dev)),
            DEFAULT_IALS_GRID,
            train_csr,
            valid_csr,
        )
        info = {"chosen": best, "grid": table}
    info["fit_seconds"] = time.perf_counter() - t0
    info["cold_items"] = "id-only: cold items score zero by construction"
    return Fitted(scorer=model, info=info)
