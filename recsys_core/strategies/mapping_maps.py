"""The maps of the mapping strategy (EMCDR's latent-space mapping, Man et al. 2017):
from a user's source vector to their target vector, fitted on warm shared users.

* :func:`fit_linear_map` -> :class:`LinearMap`: ridge regression in closed form;
* :func:`fit_mlp_map` -> :class:`MLPMap`: a two-layer tanh network trained with Adam,
  early-stopped on held-out users.

Both expose ``predict(x: (n, d_in)) -> float64 (n, d_out)``. :func:`choose_linear_map`
and :func:`choose_mlp_map` pick the ridge or the number of epochs on held-out users
(:class:`~recsys_core.strategies.mapping_validation.HoldoutWorld`) and refit the map
that scores on every warm shared user.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from recsys_core.strategies.base import Context
from recsys_core.strategies.mapping_config import MappingConfig
from recsys_core.strategies.mapping_validation import HoldoutWorld
from recsys_core.training.callbacks import Cancelled
from recsys_core.training.rng import seeded

RIDGE_GRID: tuple[float, ...] = (0.1, 1.0, 10.0, 100.0, 1000.0)
"""Ridge penalties tried for the linear map, in standardised-input units (inputs are
z-scored per dimension, so a penalty means the same on any factor scale)."""


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
    *,
    hidden: int,
    lr: float,
    weight_decay: float,
    epochs: int,
    patience: int,
    seed: int,
    device: torch.device,
    should_cancel: Callable[[], bool] | None = None,
) -> tuple[MLPMap, list[dict]]:
    """Adam on the squared error, early-stopped on the held-out users' error.

    Args:
        x, y: (n, d_in), (n, d_out) fit users' source and target vectors.
        x_val, y_val: held-out users (may be empty: then the epoch bound decides).
        hidden: width of the hidden layer.
        lr, weight_decay: Adam's.
        epochs: upper bound on epochs.
        patience: epochs without a better held-out error before stopping.

    Returns:
        The map with the weights of its best held-out epoch, and one history row per
        epoch (epoch, loss = fit error, val_mse, seconds, stage "map").
    """
    gen = torch.Generator().manual_seed(seed)
    mu, sd = x.mean(0), x.std(0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    with seeded(seed):  # parallel runs: seed and draw as one step
        model = MLPMap(x.shape[1], y.shape[1], hidden, mu, sd).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    xt = torch.as_tensor(x, dtype=torch.float32, device=device)
    yt = torch.as_tensor(y, dtype=torch.float32, device=device)
    xv = torch.as_tensor(x_val, dtype=torch.float32, device=device)
    yv = torch.as_tensor(y_val, dtype=torch.float32, device=device)
    batch = 256
    best, best_state, since = np.inf, None, 0
    history: list[dict] = []
    t0 = time.perf_counter()
    for epoch in range(1, epochs + 1):
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
            if since >= patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model, history


@dataclass
class FittedMap:
    """A chosen map: the one the blends are chosen with (``map_sim``, in the validation
    world) and the one that scores (``final_map``, refitted on every warm shared user)."""

    map_sim: LinearMap | MLPMap
    final_map: LinearMap | MLPMap
    info: dict
    weights: dict[str, torch.Tensor]
    n_params: int
    history: list[dict]


def choose_linear_map(
    cfg: MappingConfig, world: HoldoutWorld, u_all_src: np.ndarray, u_all_tgt: np.ndarray
) -> FittedMap:
    """Ridge chosen on the held-out users (NDCG@10 when there are enough of them, else
    squared error), then the scoring map refitted with it on every warm shared user."""
    table: list[dict] = []
    if cfg.ridge is not None:
        ridge = cfg.ridge
    elif len(world.x_hold) == 0:
        ridge = 10.0
    else:
        for lam in RIDGE_GRID:
            f = fit_linear_map(world.x_fit, world.y_fit, lam)
            err = float(((f.predict(world.x_hold) - world.y_hold) ** 2).sum(1).mean())
            row = {"ridge": lam, "val_mse": err}
            if world.enough:
                row["val_ndcg@10"] = world.ndcg(f)
            table.append(row)
        key, sign = ("val_ndcg@10", 1) if world.enough else ("val_mse", -1)
        ridge = max(table, key=lambda r: sign * r[key])["ridge"]
    map_sim = fit_linear_map(world.x_fit, world.y_fit, ridge)
    # The scoring map is refitted on every warm shared user in the full target
    # factorisation: the held-out users only chose the ridge.
    final_map = fit_linear_map(u_all_src, u_all_tgt, ridge)
    return FittedMap(
        map_sim,
        final_map,
        {"ridge": ridge, "ridge_grid": table},
        {
            "map.weight": torch.from_numpy(final_map.weight.astype(np.float32)),
            "map.bias": torch.from_numpy(final_map.bias.astype(np.float32)),
        },
        final_map.weight.size + final_map.bias.size,
        [],
    )


def choose_mlp_map(
    cfg: MappingConfig,
    ctx: Context,
    world: HoldoutWorld,
    u_all_src: np.ndarray,
    u_all_tgt: np.ndarray,
) -> FittedMap:
    """The mlp early-stopped on the held-out users, then refitted on every warm shared
    user for the early-stopped number of epochs."""
    mlp = dict(
        hidden=cfg.hidden,
        lr=cfg.mlp_lr,
        weight_decay=cfg.mlp_weight_decay,
        seed=ctx.settings.seed,
        device=ctx.device,
        should_cancel=ctx.callbacks.should_cancel,
    )
    map_sim, mh = fit_mlp_map(
        world.x_fit,
        world.y_fit,
        world.x_hold,
        world.y_hold,
        epochs=cfg.mlp_epochs,
        patience=cfg.patience,
        **mlp,
    )
    best = min(mh, key=lambda r: r["val_mse"])
    empty = np.zeros((0, u_all_src.shape[1]))
    final_map, _ = fit_mlp_map(
        u_all_src, u_all_tgt, empty, empty, epochs=best["epoch"], patience=cfg.mlp_epochs, **mlp
    )
    return FittedMap(
        map_sim,
        final_map,
        {
            "mlp_best_epoch": best["epoch"],
            "mlp_epochs_run": len(mh),
            "mlp_val_mse": best["val_mse"],
        },
        {f"map.{k}": v.detach().cpu() for k, v in final_map.state_dict().items()},
        sum(p.numel() for p in final_map.parameters()),
        mh,
    )
