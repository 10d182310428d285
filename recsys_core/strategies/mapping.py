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
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from recsys_core.data.scenario import Scenario
from recsys_core.data.schema import ITEM, TIME, USER
from recsys_core.models import (
    DEFAULT_IALS_GRID,
    check_csr,
    full_ranking_metrics,
    tune_on_validation,
)
from recsys_core.models.ials import IALS, IALSConfig
from recsys_core.strategies.base import Context, Fitted, Strategy, StrategyConfig, target_matrix
from recsys_core.training.callbacks import Cancelled, ProgressEvent

RIDGE_GRID: tuple[float, ...] = (0.1, 1.0, 10.0, 100.0, 1000.0)
"""Ridge penalties tried for the linear map, in standardised-input units (inputs are
z-scored per dimension, so a penalty means the same on any factor scale)."""

BLEND_STEP = 0.1
"""Spacing of the simplex grid of blend weights (a, b, c): 66 points, 11 when b = 0."""

MIN_VALIDATION_USERS = 5
"""With fewer held-out users with validation items than this, choices fall back to
defaults (ridge by held-out squared error; mapped vector alone) instead of noise."""

MAX_VALIDATION_USERS = 2000
"""Held-out users scored per choice (a seeded sample beyond this): bounds the memory of
the (users, items) score matrices of the blend search."""


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


# ------------------------------------------------------------------------------ maps
@dataclass(frozen=True)
class LinearMap:
    """Affine map ``y = x @ weight + bias``.

    Attributes:
        weight: float64 (d_in, d_out).
        bias: float64 (d_out,).
    """

    weight: np.ndarray
    bias: np.ndarray

    def predict(self, x: np.ndarray) -> np.ndarray:
        """x: (n, d_in) -> float64 (n, d_out)."""
        return np.asarray(x, dtype=np.float64) @ self.weight + self.bias


def fit_linear_map(x: np.ndarray, y: np.ndarray, ridge: float) -> LinearMap:
    """Ridge regression of ``y`` on ``x`` with an unpenalised intercept, in closed form.

    Inputs are z-scored per column (so ``ridge`` is in standardised units), then
    ``W = (Xs^T Xs + ridge I)^-1 Xs^T (Y - mean Y)`` on the centred, scaled inputs
    ``Xs``; the scaling is folded back into the returned weight and bias. This is EMCDR's
    linear mapping (Man et al. 2017) with the usual L2 term.

    Args:
        x: (n, d_in) source user vectors.
        y: (n, d_out) target user vectors of the same users.
        ridge: penalty >= 0 (0 is plain least squares and needs n > d_in).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y) or len(x) < 2:
        raise ValueError(f"need (n, d) inputs and targets with n >= 2, got {x.shape} and {y.shape}")
    mu, sd = x.mean(0), x.std(0)
    sd = np.where(sd > 1e-12, sd, 1.0)  # a constant column carries nothing: it stays at 0
    xs = (x - mu) / sd
    y_mu = y.mean(0)
    w_std = np.linalg.solve(xs.T @ xs + ridge * np.eye(x.shape[1]), xs.T @ (y - y_mu))
    weight = w_std / sd[:, None]
    return LinearMap(weight=weight, bias=y_mu - mu @ weight)


class MLPMap(torch.nn.Module):
    """Two-layer tanh network ``x -> W2 tanh(W1 z(x) + b1) + b2`` (EMCDR's MLP mapping).

    ``z`` z-scores the input with the fit users' mean and spread (buffers), which keeps
    tanh out of saturation whatever the scale of the source factors.
    """

    def __init__(self, d_in: int, d_out: int, hidden: int, mu: np.ndarray, sd: np.ndarray) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(d_in, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, d_out)
        )
        self.register_buffer("mu", torch.as_tensor(mu, dtype=torch.float32))
        self.register_buffer("sd", torch.as_tensor(sd, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: float32 (n, d_in) -> (n, d_out)."""
        return self.net((x - self.mu) / self.sd)

    @torch.no_grad()
    def predict(self, x: np.ndarray) -> np.ndarray:
        """x: (n, d_in) numpy -> float64 (n, d_out) numpy, like :meth:`LinearMap.predict`."""
        t = torch.as_tensor(np.asarray(x), dtype=torch.float32, device=self.mu.device)
        return self(t).double().cpu().numpy()


def fit_mlp_map(
    x: np.ndarray,
    y: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    cfg: MappingConfig,
    seed: int,
    device: torch.device,
    should_cancel: Callable[[], bool] | None = None,
) -> tuple[MLPMap, list[dict]]:
    """Adam on the squared error, early-stopped on the held-out users' error.

    Args:
        x, y: (n, d_in), (n, d_out) fit users' source and target vectors.
        x_val, y_val: held-out users (may be empty: then the epoch bound decides).

    Returns:
        The map with the weights of its best held-out epoch, and one history row per
        epoch (epoch, loss = fit error, val_mse, seconds, stage "map").
    """
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    mu, sd = x.mean(0), x.std(0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    model = MLPMap(x.shape[1], y.shape[1], cfg.hidden, mu, sd).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.mlp_lr, weight_decay=cfg.mlp_weight_decay)
    xt = torch.as_tensor(x, dtype=torch.float32, device=device)
    yt = torch.as_tensor(y, dtype=torch.float32, device=device)
    xv = torch.as_tensor(x_val, dtype=torch.float32, device=device)
    yv = torch.as_tensor(y_val, dtype=torch.float32, device=device)
    batch = 256
    best, best_state, since = np.inf, None, 0
    history: list[dict] = []
    t0 = time.perf_counter()
    for epoch in range(1, cfg.mlp_epochs + 1):
        if should_cancel is not None and should_cancel():
            raise Cancelled("mapping: mlp training cancelled")
        model.train()
        order = torch.randperm(len(xt), generator=gen).to(device)
        total = 0.0
        for s in range(0, len(xt), batch):
            idx = order[s : s + batch]
            loss = (model(xt[idx]) - yt[idx]).pow(2).sum(1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        model.eval()
        with torch.no_grad():
            val = float((model(xv) - yv).pow(2).sum(1).mean()) if len(xv) else total / len(xt)
        history.append(
            {
                "epoch": epoch,
                "loss": total / len(xt),
                "val_mse": val,
                "seconds": time.perf_counter() - t0,
                "stage": "map",
            }
        )
        if val < best - 1e-9:
            best, since = val, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            since += 1
            if since >= cfg.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model, history


# ---------------------------------------------------------------------------- scorer
def _z(x: torch.Tensor) -> torch.Tensor:
    """Per-row z-score over the catalogue; a constant row becomes all zeros."""
    sd = x.std(1, keepdim=True)
    return torch.where(sd > 1e-12, (x - x.mean(1, keepdim=True)) / sd.clamp(min=1e-12), 0.0)


Weights = tuple[float, float, float]
"""(a, b, c): weights of the mapped, support fold-in and popularity z-scores."""

TargetSide = Literal["popularity", "fold-in"]


def blend_grid(with_support: bool, step: float = BLEND_STEP) -> list[Weights]:
    """Candidate weights (a, b, c): the mapped score plus ONE target-only score.

    ``a`` runs from 1 down to 0 in ``step``; the rest goes to popularity (c) or, when
    the user revealed support items, to their iALS fold-in (b), never to a mix of the
    two. At a = 0 a candidate is exactly a target-only baseline, so whatever the blend
    gains over the best of those baselines comes from the map (a > 0), not from a new
    target-only hybrid. Listed with a descending: ties go to the map.
    """
    n = round(1 / step)
    out: list[Weights] = []
    for i in range(n, -1, -1):
        a, rest = i / n, (n - i) / n  # exact tenths, no 1 - 0.7 = 0.30000000000000004
        out.append((a, 0.0, rest))
        if with_support and i < n:
            out.append((a, rest, 0.0))
    return out


class MappingScorer:
    """Scores the target catalogue: the map for cold shared users, iALS otherwise.

    Users are scored by what is known of them:

    * warm users (trained on): their target iALS factors (the target-only baseline);
    * cold shared users (usable source history): ``a z(mapped) + b z(fold-in) + c
      z(popularity)`` with the weights of their support size k;
    * other cold users: the target-only score chosen for k on validation, popularity or
      the iALS fold-in of their support (popularity when k = 0).

    Attributes:
        target: the fitted target iALS (item factors ``V`` (n_target_items, f_t)).
        mapped: float tensor (n_target_users, f_t): ``f(U_s[u])`` for users with usable
            source history, zero rows for the others.
        has_source: bool numpy (n_target_users,): the user has usable source rows.
        weights: support size k -> :data:`Weights` (k = 0 defaults to the map alone).
        fallback: support size k -> :data:`TargetSide` for cold users without source.
        popularity: float32 tensor (n_target_items,) training counts per item.
    """

    def __init__(
        self,
        target: IALS,
        mapped: torch.Tensor,
        has_source: np.ndarray,
        weights: dict[int, Weights],
        fallback: dict[int, TargetSide],
        popularity: torch.Tensor,
    ) -> None:
        self.target, self.mapped, self.has_source = target, mapped, has_source
        self.weights = {0: (1.0, 0.0, 0.0), **{int(k): tuple(w) for k, w in weights.items()}}
        self.fallback = {0: "popularity", **{int(k): v for k, v in fallback.items()}}
        self.popularity = popularity

    @staticmethod
    def _at(table: dict, k: int):
        """The entry of the largest tabulated support size <= k."""
        return table[max(s for s in table if s <= k)]

    def weight_for(self, k: int) -> Weights:
        """Blend weights for a cold shared user with k support items."""
        return self._at(self.weights, k)

    def fallback_for(self, k: int) -> TargetSide:
        """Target-only score for a cold user without source and k support items."""
        return "popularity" if k == 0 else self._at(self.fallback, k)

    def cold_shared(self, users: np.ndarray) -> np.ndarray:
        """bool (B,): users scored through the map (never trained on, usable source)."""
        users = np.asarray(users, dtype=np.int64)
        inside = (users >= 0) & (users < len(self.has_source))
        out = np.zeros(len(users), dtype=bool)
        u = users[inside]
        out[inside] = self.has_source[u] & ~self.target.known_users[u]
        return out

    @torch.no_grad()
    def score(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        """users int64 (B,), history csr (B, n_target_items) -> float32 (B, n_target_items)."""
        users = np.asarray(users, dtype=np.int64)
        hist = check_csr(history, "history", n_items=self.target.n_items)
        vecs = self.target.user_vectors(users, hist)  # trained rows, else fold-in of history
        scores = (vecs @ self.target.V.T).to(torch.float32)
        pop = self.popularity.to(scores.device)
        known = np.zeros(len(users), dtype=bool)
        inside = (users >= 0) & (users < self.target.n_users)
        known[inside] = self.target.known_users[users[inside]]
        k = np.diff(hist.indptr)
        shared = self.cold_shared(users)
        use_pop = (
            ~known & ~shared & np.array([self.fallback_for(int(x)) == "popularity" for x in k])
        )
        use_pop |= ~known & (k == 0) & ~shared
        if use_pop.any():
            scores[torch.from_numpy(np.flatnonzero(use_pop)).to(scores.device)] = pop
        if shared.any():
            rows = np.flatnonzero(shared)
            w = torch.tensor([self.weight_for(int(x)) for x in k[rows]], dtype=torch.float32)
            w = w.to(scores.device)
            r = torch.from_numpy(rows).to(scores.device)
            m = self.mapped[torch.from_numpy(users[rows]).to(self.mapped.device)]
            mapped = (m @ self.target.V.T).to(torch.float32)
            scores[r] = (
                w[:, :1] * _z(mapped)
                + w[:, 1:2] * _z(scores[r])  # the fold-in (all zeros when k = 0)
                + w[:, 2:] * _z(pop.expand_as(mapped))
            )
        return scores


class _FixedScores:
    """Scorer over precomputed rows (row j belongs to user j): validation helper."""

    def __init__(self, scores: torch.Tensor) -> None:
        self.scores = scores

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        return self.scores[torch.from_numpy(np.asarray(users))].clone()


def _ndcg(scores: torch.Tensor, seen: sp.csr_matrix, truth: sp.csr_matrix) -> float:
    """NDCG@10 of score rows (n, items) with ``seen`` masked and ``truth`` as targets."""
    users = np.arange(scores.shape[0], dtype=np.int64)
    return full_ranking_metrics(_FixedScores(scores), users, seen, seen, truth, k=10)["ndcg@10"]


# -------------------------------------------------------------------------- strategy
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
    if key not in ctx.cache:
        ctx.cache[key] = IALS(conf).fit(
            s.source_matrix(),
            callback=_ials_progress(ctx, "mapping: factorise source", cfg.iterations),
            cancel=ctx.callbacks.should_cancel,
        )
    return ctx.cache[key]


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
    if key not in ctx.cache:
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
        ctx.cache[key] = (model, {"chosen": best, "grid": table})
    return ctx.cache[key]


def _cold_like_source(
    scn: Scenario, source: sp.csr_matrix, users: np.ndarray
) -> sp.csr_matrix | None:
    """csr (len(users), n_joint_items): each user's usable source rows from before their
    first target interaction, the history a cold user keeps under ``before-target``.

    Source rows are matched to joint items by id; an item linked by title only is left
    out (a slightly thinner history), and only pairs in ``scn.source_train`` are used.
    None when either domain lacks timestamps.
    """
    raw = scn.source.interactions if scn.source is not None else None
    if raw is None or TIME not in raw.columns or not scn.target.has_time:
        return None
    u = pd.Index(scn.user_ids).get_indexer(raw[USER])
    i = pd.Index(scn.item_ids).get_indexer(raw[ITEM])
    row = np.full(scn.n_users, -1, np.int64)
    row[users] = np.arange(len(users))
    ok = (u >= 0) & (i >= 0)
    u, i, t = u[ok], i[ok], raw[TIME].to_numpy(np.int64)[ok]
    sel = row[u] >= 0
    u, i, t = u[sel], i[sel], t[sel]
    sel = t < scn.split.first_time[u]
    u, i = u[sel], i[sel]
    usable = np.asarray(source[u, i]).ravel() > 0
    u, i = u[usable], i[usable]
    m = sp.csr_matrix((np.ones(len(u), np.float32), (row[u], i)), shape=(len(users), scn.n_items))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def _simulated_source(
    scn: Scenario, src: IALS, source: sp.csr_matrix, users: np.ndarray, sizes: np.ndarray, seed: int
) -> tuple[np.ndarray, str, np.ndarray]:
    """Source vectors (len(users), f_s) of held-out users, as thin as a cold user's.

    ``all``: a cold user brings their whole usable history, so the factorisation's own
    vectors. ``before-target`` with timestamps: the rows from before the user's first
    target interaction (exactly what a cold user keeps), folded in against the source
    item factors. Without timestamps: a random subset of a size drawn from ``sizes``, the
    cold shared users' own history sizes.

    Returns:
        The vectors, which rule was used, and bool (len(users),): the user kept at least
        one source row (only those resemble cold *shared* users).
    """
    if len(users) == 0 or scn.source_history == "all" or len(sizes) == 0:
        full = src.U[torch.from_numpy(users)].double().cpu().numpy()
        return full, "full source history", np.diff(source.indptr)[users] > 0
    thin = _cold_like_source(scn, source, users)
    rule = "source rows before the first target interaction"
    if thin is None:
        rng = np.random.default_rng(seed)
        rows, cols = [], []
        for j, u in enumerate(users):
            items = source.indices[source.indptr[u] : source.indptr[u + 1]]
            n = min(len(items), int(rng.choice(sizes)))
            rows.append(np.full(n, j))
            cols.append(rng.choice(items, n, replace=False))
        r, c = np.concatenate(rows), np.concatenate(cols)
        thin = sp.csr_matrix(
            (np.ones(len(r), np.float32), (r, c)), shape=(len(users), source.shape[1])
        )
        rule = "random subsets of the cold users' history sizes (no timestamps)"
    return src.fold_in(thin).double().cpu().numpy(), rule, np.diff(thin.indptr) > 0


@dataclass(frozen=True)
class _ColdTasks:
    """Held-out warm users posing as cold users, by the split's own cold-user protocol.

    Attributes:
        users: int64 (n,) sorted target user indices with more than max(ks) target
            training + validation interactions.
        support: k -> csr (n, n_items) of each user's first k interactions by time.
        truth: csr (n, n_items) of the interactions after the first max(ks) ones.
    """

    users: np.ndarray
    support: dict[int, sp.csr_matrix]
    truth: sp.csr_matrix


def _cold_tasks(
    scn: Scenario, users: np.ndarray, ks: list[int], limit: int, seed: int
) -> _ColdTasks:
    """Support and truth of :class:`_ColdTasks` for ``users`` (test rows are never read).

    A user's sequence is their training rows by time, then their validation rows (which
    follow training in the cold-start and temporal protocols).
    """
    n_i = scn.n_target_items
    tr, va = scn.split.train, scn.split.valid
    t = tr[TIME].to_numpy(np.float64) if TIME in tr else np.zeros(len(tr))
    seq = pd.DataFrame(
        {
            "user": np.concatenate([tr["user"].to_numpy(), va["user"].to_numpy()]),
            "item": np.concatenate([tr["item"].to_numpy(), va["item"].to_numpy()]),
            "t": np.concatenate([t, np.full(len(va), np.inf)]),
        }
    )
    seq = seq[np.isin(seq["user"].to_numpy(), users)]
    seq = seq.sort_values(["user", "t"], kind="stable")
    pos = seq.groupby("user", sort=False).cumcount().to_numpy()
    kmax = max(ks)
    n = seq.groupby("user")["item"].size()
    chosen = np.sort(n.index[n.to_numpy() > kmax].to_numpy(np.int64))
    if len(chosen) > limit:
        chosen = np.sort(np.random.default_rng(seed).choice(chosen, limit, replace=False))

    def csr(mask: np.ndarray) -> sp.csr_matrix:
        part = seq[mask & np.isin(seq["user"].to_numpy(), chosen)]
        rows = np.searchsorted(chosen, part["user"].to_numpy())
        m = sp.csr_matrix(
            (np.ones(len(part), np.float32), (rows, part["item"].to_numpy())),
            shape=(len(chosen), n_i),
        )
        m.sum_duplicates()
        m.data[:] = 1.0
        return m

    return _ColdTasks(chosen, {k: csr(pos < k) for k in ks}, csr(pos >= kmax))


class MappingStrategy(Strategy):
    name = "mapping"
    Config = MappingConfig
    needs_source = True
    needs_shared_users = True
    text_models = None
    # its scorer already blends the map with the popularity prior per k, on validation
    blends_prior = False
    summary = (
        "EMCDR: factorise source and target separately, learn a map from source to target "
        "user vectors on warm shared users, and recommend to cold shared users with no "
        "target history."
    )

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
        x_hold, source_rule, kept = _simulated_source(s, src, source, hold, cold_sizes, seed)
        # Held-out users left with no source row at all are not like any cold user the
        # map will score (those fall back to the target side), so they do not vote.
        sim_users, x_hold = hold[kept], x_hold[kept]
        tasks = _cold_tasks(s, sim_users, ks, MAX_VALIDATION_USERS, seed)
        enough = len(tasks.users) >= MIN_VALIDATION_USERS
        x_task = x_hold[np.searchsorted(sim_users, tasks.users)]
        y_hold = sim.fold_in(train_csr[sim_users]).double().cpu().numpy()
        x_fit = u_src[fit_users]
        y_fit = sim.U[torch.from_numpy(fit_users)].double().cpu().numpy()
        v_sim = sim.V

        def mapped_scores(mp, x: np.ndarray) -> torch.Tensor:
            vecs = torch.as_tensor(mp.predict(x), dtype=v_sim.dtype, device=v_sim.device)
            return (vecs @ v_sim.T).float()

        empty_seen = tasks.support[0]
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
            table: list[dict] = []
            if cfg.ridge is not None:
                ridge = cfg.ridge
            elif len(sim_users) == 0:
                ridge = 10.0
            else:
                for lam in RIDGE_GRID:
                    f = fit_linear_map(x_fit, y_fit, lam)
                    err = float(((f.predict(x_hold) - y_hold) ** 2).sum(1).mean())
                    row = {"ridge": lam, "val_mse": err}
                    if enough:
                        row["val_ndcg@10"] = _ndcg(
                            mapped_scores(f, x_task), empty_seen, tasks.truth
                        )
                    table.append(row)
                key, sign = ("val_ndcg@10", 1) if enough else ("val_mse", -1)
                ridge = max(table, key=lambda r: sign * r[key])["ridge"]
            map_sim = fit_linear_map(x_fit, y_fit, ridge)
            # The scoring map is refitted on every warm shared user in the full target
            # factorisation: the held-out users only chose the ridge.
            final_map = fit_linear_map(u_all_src, u_all_tgt, ridge)
            info["ridge"] = ridge
            info["ridge_grid"] = table
            weights_t = {
                "map.weight": torch.from_numpy(final_map.weight.astype(np.float32)),
                "map.bias": torch.from_numpy(final_map.bias.astype(np.float32)),
            }
            n_map_params = final_map.weight.size + final_map.bias.size
        else:
            map_sim, mh = fit_mlp_map(
                x_fit, y_fit, x_hold, y_hold, cfg, seed, ctx.device, ctx.callbacks.should_cancel
            )
            history += mh
            best = min(mh, key=lambda r: r["val_mse"])
            # Refit on every warm shared user for the early-stopped number of epochs.
            fixed = replace(cfg, mlp_epochs=best["epoch"], patience=cfg.mlp_epochs)
            empty = np.zeros((0, u_all_src.shape[1]))
            final_map, _ = fit_mlp_map(
                u_all_src,
                u_all_tgt,
                empty,
                empty,
                fixed,
                seed,
                ctx.device,
                ctx.callbacks.should_cancel,
            )
            info["mlp_best_epoch"] = best["epoch"]
            info["mlp_epochs_run"] = len(mh)
            info["mlp_val_mse"] = best["val_mse"]
            weights_t = {f"map.{k}": v.detach().cpu() for k, v in final_map.state_dict().items()}
            n_map_params = sum(p.numel() for p in final_map.parameters())
        ctx.callbacks.check_cancel()

        weights, fallback, blend_table = self._blend_weights(
            ctx, sim, sim_train, map_sim, x_task, tasks, enough, ks
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

        # Stage vectors for the embedding views, in the joint index space; zero rows
        # where a factorisation has nothing to say.
        f_t = v_tgt.shape[1]
        items_t = np.zeros((s.n_items, f_t), np.float32)
        items_t[:n_i] = v_tgt.float().cpu().numpy()
        users_t = np.zeros((s.n_users, f_t), np.float32)
        u_tgt = tgt.U.double().cpu().numpy()
        users_t[:n_u] = np.where(warm[:, None], u_tgt, mapped_all).astype(np.float32)
        stages = {
            "source": {"items": src.V.float().cpu().numpy(), "users": src.U.float().cpu().numpy()},
            "final": {"items": items_t, "users": users_t},
        }
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

    def _blend_weights(
        self,
        ctx: Context,
        sim: IALS,
        sim_train: sp.csr_matrix,
        map_sim: LinearMap | MLPMap,
        x_task: np.ndarray,
        tasks: _ColdTasks,
        enough: bool,
        ks: list[int],
    ) -> tuple[dict[int, Weights], dict[int, TargetSide], list[dict]]:
        """Per support size k, on the simulated cold users: the blend weights of cold
        shared users and the target-only score of cold users without source.

        Scores and metric follow the cold-user protocol: support folded in and masked,
        truth = the interactions after the first max(ks).
        """
        cfg: MappingConfig = self.config  # type: ignore[assignment]
        mapped_only: dict[int, Weights] = dict.fromkeys(ks, (1.0, 0.0, 0.0))
        default_fallback: dict[int, TargetSide] = {k: "fold-in" if k else "popularity" for k in ks}
        if not enough:
            return mapped_only, default_fallback, []
        vecs = torch.as_tensor(map_sim.predict(x_task), dtype=sim.V.dtype, device=sim.V.device)
        z_map = _z((vecs @ sim.V.T).float())  # (n_tasks, n_items)
        pop = torch.from_numpy(np.diff(sim_train.tocsc().indptr).astype(np.float32))
        z_pop = _z(pop.unsqueeze(0).to(z_map.device)).expand_as(z_map)
        weights: dict[int, Weights] = {}
        fallback: dict[int, TargetSide] = {}
        table: list[dict] = []
        for k in ks:
            ctx.callbacks.check_cancel()
            support = tasks.support[k]
            if k > 0:
                z_fold = _z((sim.fold_in(support) @ sim.V.T).float()).to(z_map.device)
            else:
                z_fold = torch.zeros_like(z_map)
            scores = {
                w: _ndcg(w[0] * z_map + w[1] * z_fold + w[2] * z_pop, support, tasks.truth)
                for w in blend_grid(with_support=k > 0)
            }
            pop_only = scores[(0.0, 0.0, 1.0)]
            fold_only = scores[(0.0, 1.0, 0.0)] if k > 0 else float("-inf")
            fallback[k] = "fold-in" if fold_only > pop_only else "popularity"
            best = max(scores, key=lambda w: scores[w])  # first max: ties go to the map
            weights[k] = best if cfg.blend == "validation" else (1.0, 0.0, 0.0)
            table.append(
                {
                    "k": k,
                    "weights": list(weights[k]),
                    "fallback": fallback[k],
                    "users": len(tasks.users),
                    "val_ndcg@10": scores[weights[k]],
                    "val_ndcg@10_mapped_only": scores[(1.0, 0.0, 0.0)],
                    "val_ndcg@10_popularity_only": pop_only,
                    "val_ndcg@10_fold_in_only": fold_only if k > 0 else None,
                }
            )
        return weights, fallback, table


def cold_shared_users(scn: Scenario) -> np.ndarray:
    """int64 indices of cold target users with at least one usable source interaction."""
    cnt = np.bincount(scn.source_train["user"].to_numpy(), minlength=scn.n_users)
    cold = scn.split.cold_users
    return cold[cnt[cold] > 0]
