"""Mapping: factorise each domain alone, learn a map between their user spaces (EMCDR).

Embedding-and-Mapping for Cross-Domain Recommendation (Man, Shen, Jin, Cheng; IJCAI
2017), with iALS (Hu, Koren, Volinsky 2008) as the factoriser of both domains:

1. **Factorise.** iALS on the source matrix (every usable source interaction, already
   cut by ``scn.source_history``) gives source user vectors ``U_s`` and item vectors
   ``V_s``; iALS on the target training matrix, tuned on validation exactly like the
   target-only iALS baseline, gives ``U_t`` and ``V_t``. The two factorisations never
   see each other's data: the only bridge is step 2.
2. **Map.** On *warm shared users* (target training rows and usable source rows) learn
   ``f(U_s[u]) ~ U_t[u]`` by least squares (EMCDR's latent-space mapping): ``linear``
   is ridge regression in closed form (the paper's linear mapping), ``mlp`` a small
   two-layer tanh network trained with Adam (the paper's MLP mapping) and early-stopped
   on held-out warm shared users.
3. **Apply.** A *cold shared user* (no target training row, some usable source rows)
   gets the target scores ``f(U_s[u]) . V_t``: recommendations with no target
   interaction at all (k = 0).

Blending (``blend="validation"``). How far a mapped vector can be trusted depends on
how much source history the user brings (under ``before-target`` a cold user keeps only
what they did before their first target interaction: often a handful of rows), and a
cold user who revealed k support items also has a target-side signal. So a cold shared
user with k support items is scored

    a_k z(f(U_s[u]) . V_t) + (1 - a_k) z(T_k(u))

with ``z`` a z-score over the catalogue per user (the parts live on different scales,
as in the fusion strategy) and ``T_k`` ONE target-only score: popularity, or (k >= 1) the
iALS fold-in of the support items. ``a_k`` and ``T_k`` are chosen per k on validation.
At ``a_k = 0`` the score *is* a target-only baseline, so any gain over the best of those
comes from the map, never from a new target-only hybrid. ``blend="none"`` scores cold
shared users by the mapped vector alone, as in the paper.

Validation, honestly. Cold users do not exist on the validation side, so they are
simulated on held-out warm shared users (never used to fit the map), following the
split's own cold-user protocol:

* they leave the target training matrix, and a second target iALS with the same
  hyper-parameters is fitted without them (their rows never shape the item factors);
  the candidate maps are fitted in that factorisation, on the other warm shared users;
* their source vector is re-solved (iALS fold-in against ``V_s``) from the source
  history a cold user would have: everything under ``all``; under ``before-target`` the
  rows from before their first target interaction (random subsets of the cold users'
  history sizes when there are no timestamps); users left with none do not vote;
* they reveal their first k target interactions by time as support (masked), and are
  scored on their interactions after the first max(k) (train then valid rows; test
  rows are never read), with NDCG@10.

The ridge of the linear map is chosen there too (k = 0); the map that scores is then
refitted on all warm shared users in the full target factorisation.

Everyone else falls back to the target side, with no transfer: warm users get their
target iALS factors (the target-only iALS baseline); cold users without usable source
history get ``T_k`` (popularity at k = 0, where iALS has only all-zero scores).

Layout: this module holds the two factorisations and the fit; the options are in
:mod:`~recsys_core.strategies.mapping_config`, the maps and how they are chosen in
:mod:`~recsys_core.strategies.mapping_maps`, the scorer and its blends in
:mod:`~recsys_core.strategies.mapping_scorer`, and the held-out users posing as cold
users, on whom every choice is made, in :mod:`~recsys_core.strategies.mapping_validation`.
Their public names are importable from here too.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict

import numpy as np
import scipy.sparse as sp
import torch

from recsys_core.data.scenario import Scenario
from recsys_core.models import DEFAULT_IALS_GRID, tune_on_validation
from recsys_core.models.ials import IALS, IALSConfig
from recsys_core.strategies.base import Context, Fitted, ModelSettings, Strategy, target_matrix
from recsys_core.strategies.mapping_config import MappingConfig
from recsys_core.strategies.mapping_maps import (
    RIDGE_GRID,
    LinearMap,
    MLPMap,
    choose_linear_map,
    choose_mlp_map,
    fit_linear_map,
    fit_mlp_map,
)
from recsys_core.strategies.mapping_scorer import (
    BLEND_STEP,
    MappingScorer,
    TargetSide,
    Weights,
    blend_grid,
)
from recsys_core.strategies.mapping_validation import (
    MAX_VALIDATION_USERS,
    MIN_VALIDATION_USERS,
    ColdTasks,
    HoldoutWorld,
    choose_blends,
    cold_tasks,
    simulated_source,
)
from recsys_core.training.callbacks import ProgressEvent

__all__ = [
    "BLEND_STEP",
    "MAX_VALIDATION_USERS",
    "MIN_VALIDATION_USERS",
    "RIDGE_GRID",
    "ColdTasks",
    "LinearMap",
    "MLPMap",
    "MappingConfig",
    "MappingScorer",
    "MappingStrategy",
    "TargetSide",
    "Weights",
    "blend_grid",
    "cold_shared_users",
    "fit_linear_map",
    "fit_mlp_map",
]


def _digest(*arrays: np.ndarray, extra: object = None) -> str:
    """Content hash of index arrays plus settings: cache keys that cannot go stale when a
    caller swaps the scenario's split (the what-if curves subsample it)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    h.update(repr(extra).encode())
    return h.hexdigest()[:20]


def _ials_progress(ctx: Context, stage: str, iterations: int):
    def cb(it: int, seconds: float, loss: float | None) -> None:
        ctx.callbacks.progress(
            ProgressEvent(
                stage=stage,
                epoch=it,
                epochs=iterations,
                loss=loss,
                seconds=seconds,
                fraction=it / iterations,
            )
        )

    return cb


def _source_ials(ctx: Context, cfg: MappingConfig) -> IALS:
    """iALS over the (n_joint_users, n_joint_items) matrix of usable source interactions."""
    s = ctx.scenario
    st = s.source_train
    conf = IALSConfig(
        factors=cfg.factors,
        reg=cfg.source_reg,
        alpha=cfg.source_alpha,
        iterations=cfg.iterations,
        seed=ctx.settings.seed,
        device=str(ctx.device),
    )
    # "content:" keys are safe to share between scenarios (see recsys_core.curves).
    key = "content:mapping-source-ials:" + _digest(
        st["user"].to_numpy(np.int64),
        st["item"].to_numpy(np.int64),
        extra=(s.n_users, s.n_items, asdict(conf)),
    )
    return ctx.cache.get_or_compute(
        key,
        lambda: IALS(conf).fit(
            s.source_matrix(),
            callback=_ials_progress(ctx, "mapping: factorise source", cfg.iterations),
            cancel=ctx.callbacks.should_cancel,
        ),
        step="mapping_source",
    )


def _target_ials(ctx: Context, cfg: MappingConfig) -> tuple[IALS, dict]:
    """The target iALS, tuned on validation over the target-only baseline's grid."""
    s = ctx.scenario
    n_u, n_i = s.n_target_users, s.n_target_items
    train = target_matrix(s)[:n_u, :n_i].tocsr()
    v = s.split.valid
    valid = sp.csr_matrix(
        (np.ones(len(v), np.float32), (v["user"].to_numpy(), v["item"].to_numpy())),
        shape=(n_u, n_i),
    )
    dev, seed = str(ctx.device), ctx.settings.seed
    grid = list(DEFAULT_IALS_GRID) if cfg.tune_target and valid.nnz else [{"factors": cfg.factors}]
    grid = [{**g, "iterations": cfg.iterations} for g in grid]
    tr = s.split.train
    key = "content:mapping-target-ials:" + _digest(
        tr["user"].to_numpy(np.int64),
        tr["item"].to_numpy(np.int64),
        v["user"].to_numpy(np.int64),
        v["item"].to_numpy(np.int64),
        extra=(n_u, n_i, grid, seed, dev),
    )

    def fit_target() -> tuple[IALS, dict]:
        ctx.callbacks.progress(ProgressEvent(stage="mapping: factorise target", fraction=0.0))
        if len(grid) > 1:
            best, model, table = tune_on_validation(
                lambda kw: IALS(IALSConfig(**kw, seed=seed, device=dev)), grid, train, valid
            )
        else:
            best, table = grid[0], []
            model = IALS(IALSConfig(**grid[0], seed=seed, device=dev)).fit(
                train, cancel=ctx.callbacks.should_cancel
            )
        ctx.callbacks.progress(ProgressEvent(stage="mapping: factorise target", fraction=1.0))
        return model, {"chosen": best, "grid": table}

    return ctx.cache.get_or_compute(key, fit_target, step="mapping_target")


class MappingStrategy(Strategy):
    name = "mapping"
    Config = MappingConfig
    needs_source = True
    needs_shared_users = True
    text_models = None
    # its scorer already blends the map with the popularity prior per k, on validation
    blends_prior = False
    cost_hint = 20.0
    summary = (
        "EMCDR: factorise source and target separately, learn a map from source to target "
        "user vectors on warm shared users, and recommend to cold shared users with no "
        "target history."
    )

    def shared_steps(self, settings: ModelSettings) -> frozenset[str]:
        return frozenset({"mapping_source", "mapping_target"})

    def fit(self, ctx: Context) -> Fitted:
        cfg: MappingConfig = self.config  # type: ignore[assignment]
        s = ctx.scenario
        self.check(ctx)
        t0 = time.perf_counter()
        seed = ctx.settings.seed
        n_u, n_i = s.n_target_users, s.n_target_items
        src = _source_ials(ctx, cfg)
        ctx.callbacks.check_cancel()
        tgt, tgt_info = _target_ials(ctx, cfg)
        ctx.callbacks.check_cancel()
        u_src = src.U.double().cpu().numpy()  # (n_joint_users, f_s)
        source = s.source_matrix()
        source.sum_duplicates()
        src_count = np.diff(source.indptr)
        has_source = src_count[:n_u] > 0
        warm = tgt.known_users
        warm_shared = np.flatnonzero(warm & has_source)
        if len(warm_shared) < 2:
            raise ValueError(
                f"mapping needs users who are in both domains and have target training data; "
                f"scenario '{s.name}' has {len(warm_shared)} such users (users with usable "
                f"source history: {int(has_source.sum())}). Pick a scenario with shared users "
                "(e.g. demo:ml1m-genres)"
            )
        rng = np.random.default_rng(seed)
        perm = rng.permutation(warm_shared)
        n_hold = round(cfg.holdout_frac * len(perm)) if len(perm) >= 10 else 0
        hold, fit_users = np.sort(perm[:n_hold]), np.sort(perm[n_hold:])
        cold = s.split.cold_users
        cold_sizes = src_count[cold][src_count[cold] > 0]
        train_csr = target_matrix(s)[:n_u, :n_i].tocsr()
        train_csr.data[:] = 1.0

        # The validation world: the held-out users leave the target training matrix, as
        # cold users do, and a second target iALS (same hyper-parameters) is fitted
        # without them; every choice below is made there (module docstring).
        keep_rows = np.ones(n_u, np.float32)
        keep_rows[hold] = 0.0
        sim_train = (sp.diags(keep_rows) @ train_csr).tocsr()
        sim_train.eliminate_zeros()
        chosen = dict(tgt_info["chosen"])
        sim = IALS(IALSConfig(**chosen, seed=seed, device=str(ctx.device))).fit(
            sim_train, cancel=ctx.callbacks.should_cancel
        )
        ks = sorted({0, *s.split.config.cold_ks}) if s.split.config.has_cold_segments else [0]
        x_hold, source_rule, kept = simulated_source(s, src, source, hold, cold_sizes, seed)
        # Held-out users left with no source row at all are not like any cold user the
        # map will score (those fall back to the target side), so they do not vote.
        sim_users, x_hold = hold[kept], x_hold[kept]
        tasks = cold_tasks(s, sim_users, ks, MAX_VALIDATION_USERS, seed)
        enough = len(tasks.users) >= MIN_VALIDATION_USERS
        x_task = x_hold[np.searchsorted(sim_users, tasks.users)]
        y_hold = sim.fold_in(train_csr[sim_users]).double().cpu().numpy()
        x_fit = u_src[fit_users]
        y_fit = sim.U[torch.from_numpy(fit_users)].double().cpu().numpy()
        world = HoldoutWorld(x_fit, y_fit, x_hold, y_hold, x_task, tasks, enough, sim.V)
        history: list[dict] = [
            {"epoch": i + 1, "loss": loss, "stage": "source iALS"}
            for i, loss in enumerate(src.loss_history)
        ]
        history += [
            {"epoch": i + 1, "loss": loss, "stage": "target iALS"}
            for i, loss in enumerate(tgt.loss_history)
        ]
        info: dict = {
            "mapper": cfg.mapper,
            "source_history": s.source_history,
            "warm_shared_users": len(warm_shared),
            "map_fit_users": len(fit_users),
            "map_holdout_users": len(hold),
            "simulated_cold_users": len(tasks.users),
            "cold_users": len(cold),
            "cold_shared_users": len(cold_sizes),
            "cold_source_interactions_median": float(np.median(cold_sizes))
            if len(cold_sizes)
            else 0.0,
            "target_ials": tgt_info["chosen"],
            "simulated_source": source_rule,
        }

        u_all_src, u_all_tgt = u_src[warm_shared], tgt.U[torch.from_numpy(warm_shared)]
        u_all_tgt = u_all_tgt.double().cpu().numpy()
        if cfg.mapper == "linear":
            fitted_map = choose_linear_map(cfg, world, u_all_src, u_all_tgt)
        else:
            fitted_map = choose_mlp_map(cfg, ctx, world, u_all_src, u_all_tgt)
        map_sim, final_map = fitted_map.map_sim, fitted_map.final_map
        history += fitted_map.history
        info.update(fitted_map.info)
        weights_t, n_map_params = fitted_map.weights, fitted_map.n_params
        ctx.callbacks.check_cancel()

        weights, fallback, blend_table = choose_blends(
            ctx, cfg.blend, sim, sim_train, map_sim, x_task, tasks, enough, ks
        )
        info["blend"] = cfg.blend
        info["blend_weights"] = {str(k): list(w) for k, w in weights.items()}
        info["fallback"] = {str(k): v for k, v in fallback.items()}
        info["blend_grid"] = blend_table

        v_tgt = tgt.V
        mapped_all = final_map.predict(u_src[:n_u]) * has_source[:, None]  # (n_target_users, f_t)
        mapped_t = torch.as_tensor(mapped_all, dtype=v_tgt.dtype, device=v_tgt.device)
        pop = torch.from_numpy(np.diff(train_csr.tocsc().indptr).astype(np.float32))
        scorer = MappingScorer(tgt, mapped_t, has_source, weights, fallback, pop.to(v_tgt.device))

        stages = _stage_vectors(s, src, tgt, mapped_all)
        info["fit_seconds"] = time.perf_counter() - t0
        info["caveats"] = (
            "ridge and blend weights are chosen on held-out warm shared users posing as cold "
            "users (left out of a second target factorisation; source history: "
            f"{source_rule}); the map that scores is refitted on all warm shared users"
        )
        n_params = int(tgt.U.numel() + tgt.V.numel() + src.U.numel() + src.V.numel() + n_map_params)
        return Fitted(
            scorer=scorer,
            stages=stages,
            history=history,
            n_parameters=n_params,
            info=info,
            weights=weights_t,
        )


def _stage_vectors(
    scn: Scenario, src: IALS, tgt: IALS, mapped_all: np.ndarray
) -> dict[str, dict[str, np.ndarray]]:
    """Stage vectors for the embedding views, in the joint index space; zero rows where
    a factorisation has nothing to say. Final users: trained target factors for warm
    users, the mapped vector (n_target_users, f_t) for the others."""
    n_u, n_i = scn.n_target_users, scn.n_target_items
    f_t = tgt.V.shape[1]
    items_t = np.zeros((scn.n_items, f_t), np.float32)
    items_t[:n_i] = tgt.V.float().cpu().numpy()
    users_t = np.zeros((scn.n_users, f_t), np.float32)
    u_tgt = tgt.U.double().cpu().numpy()
    users_t[:n_u] = np.where(tgt.known_users[:, None], u_tgt, mapped_all).astype(np.float32)
    return {
        "source": {"items": src.V.float().cpu().numpy(), "users": src.U.float().cpu().numpy()},
        "final": {"items": items_t, "users": users_t},
    }


def cold_shared_users(scn: Scenario) -> np.ndarray:
    """int64 indices of cold target users with at least one usable source interaction."""
    cnt = np.bincount(scn.source_train["user"].to_numpy(), minlength=scn.n_users)
    cold = scn.split.cold_users
    return cold[cnt[cold] > 0]
