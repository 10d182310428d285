"""Item-kNN: the classic neighbourhood baseline (Sarwar et al., WWW 2001; Deshpande and
Karypis, TOIS 2004), still among the strongest models for users with a few interactions
(Dacrema et al., RecSys 2019, "Are we really making much progress?").

Cosine similarity with shrinkage over binary interactions,

    sim(i, j) = |U_i & U_j| / (sqrt(|U_i|) sqrt(|U_j|) + shrink),

keeping each item's ``neighbours`` most similar items; a user (warm, or cold with k
support items) is scored ``score(u, j) = sum over i in history(u) of sim(i, j)``, so a
cold user needs no retraining. With no history every item scores 0 and the pipeline's
popularity prior takes over (:mod:`recsys_core.strategies.prior`). ``neighbours`` and
``shrink`` are chosen on validation through the evaluation's ranking
(:func:`recsys_core.models.tune_on_validation`).

The similarity is built block by block (``block`` columns at a time), so memory is
``n_items * block`` floats for the block plus the kept neighbours, never ``n_items^2``;
the block shrinks to the model memory budget, and a catalogue whose kept neighbours
cannot fit is refused before anything is allocated (:func:`recsys_core.memory.knn_block_columns`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

from recsys_core.memory import knn_block_columns
from recsys_core.strategies.base import Context, Fitted, Strategy, StrategyConfig


class ItemKNN:
    """Item-item cosine neighbourhood model with shrinkage.

    Attributes (after ``fit``):
        S: csr (n_items, n_items), S[i, j] = sim(i, j) for the ``neighbours`` largest
            similarities of each column j (the diagonal is 0).
    """

    def __init__(self, neighbours: int = 100, shrink: float = 10.0, block: int = 1024) -> None:
        if neighbours < 1:
            raise ValueError(f"neighbours must be >= 1, got {neighbours}")
        if shrink < 0:
            raise ValueError(f"shrink must be >= 0, got {shrink}")
        self.neighbours, self.shrink, self.block = neighbours, float(shrink), block
        self.S: sp.csr_matrix | None = None
        self.n_items = 0

    def fit(self, train: sp.csr_matrix) -> ItemKNN:
        """Similarities from a (n_users, n_items) matrix; any non-zero cell counts once."""
        X = sp.csr_matrix(train, dtype=np.float32, copy=True)
        X.data[:] = 1.0
        X.eliminate_zeros()
        n = X.shape[1]
        norms = np.sqrt(np.asarray(X.sum(axis=0)).ravel()).astype(np.float32)
        Xt = X.T.tocsr()
        kk = min(self.neighbours, max(n - 1, 1))
        # sized before anything is allocated: a block of ``block`` columns is n * block
        # cells, 40 GB for a 10M-item catalogue at 1,024 (issue 12)
        block = knn_block_columns(n, kk, self.block)
        rows, cols, vals = [], [], []
        for j0 in range(0, n, block):
            j1 = min(j0 + block, n)
            co = (Xt @ X[:, j0:j1]).toarray()  # (n, b) co-occurrence counts
            sim = co / (norms[:, None] * norms[None, j0:j1] + self.shrink + 1e-9)
            sim[np.arange(j0, j1), np.arange(j1 - j0)] = 0.0  # no item is its own neighbour
            if kk < n:
                top = np.argpartition(-sim, kk - 1, axis=0)[:kk]  # (kk, b)
            else:
                top = np.broadcast_to(np.arange(n)[:, None], (n, j1 - j0))
            v = np.take_along_axis(sim, top, axis=0)
            keep = v > 0
            rows.append(top[keep])
            cols.append((np.arange(j0, j1)[None, :] + np.zeros_like(top))[keep])
            vals.append(v[keep])
        self.S = sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
        )
        self.n_items = n
        return self

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        """float32 (B, n_items): summed similarities to each user's history items."""
        if self.S is None:
            raise RuntimeError("ItemKNN.score called before fit(): fit the model on train first")
        h = sp.csr_matrix(history, dtype=np.float32, copy=True)
        if h.shape[1] != self.n_items or h.shape[0] != len(np.asarray(users)):
            raise ValueError(
                f"history has shape {h.shape}, expected ({len(users)}, {self.n_items})"
            )
        h.data[:] = 1.0
        return torch.from_numpy(np.asarray((h @ self.S).todense(), dtype=np.float32))


@dataclass(frozen=True)
class ItemKNNConfig(StrategyConfig):
    neighbours: tuple[int, ...] = field(
        default=(50, 100, 200),
        metadata={"help": "neighbours kept per item; several values are tried on validation"},
    )
    shrink: tuple[float, ...] = field(
        default=(0.0, 10.0, 100.0),
        metadata={
            "help": "shrinkage of the cosine (damps pairs seen by few users); tried on validation"
        },
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "neighbours", tuple(int(n) for n in _as_tuple(self.neighbours)))
        object.__setattr__(self, "shrink", tuple(float(s) for s in _as_tuple(self.shrink)))
        if not self.neighbours or any(n < 1 or n > 10_000 for n in self.neighbours):
            raise ValueError(f"neighbours must be whole numbers in 1..10000, got {self.neighbours}")
        if not self.shrink or any(not 0 <= s <= 1e6 for s in self.shrink):
            raise ValueError(f"shrink must be numbers in 0..1e6, got {self.shrink}")


def _as_tuple(v) -> tuple:
    return tuple(v) if isinstance(v, list | tuple) else (v,)


class ItemKNNStrategy(Strategy):
    name = "item-knn"
    Config = ItemKNNConfig
    kind = "baseline"
    text_models = None
    in_suite = True
    cost_hint = 5.0
    summary = "Item-kNN: cosine item-item neighbours with shrinkage; strong for short histories."

    def fit(self, ctx: Context) -> Fitted:
        import time

        from recsys_core.models import tune_on_validation
        from recsys_core.strategies.baselines import target_train_csr, target_valid_csr

        cfg: ItemKNNConfig = self.config  # type: ignore[assignment]
        train, valid = target_train_csr(ctx), target_valid_csr(ctx)
        grid = [{"neighbours": n, "shrink": sh} for n in cfg.neighbours for sh in cfg.shrink]
        t0 = time.perf_counter()
        if len(grid) == 1 or valid.nnz == 0:
            best, model, table = grid[0], ItemKNN(**grid[0]).fit(train), []
        else:
            best, model, table = tune_on_validation(lambda kw: ItemKNN(**kw), grid, train, valid)
        return Fitted(
            scorer=model,
            n_parameters=int(model.S.nnz),
            info={"chosen": best, "grid": table, "fit_seconds": time.perf_counter() - t0},
        )
