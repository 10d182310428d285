"""The validation world of the mapping strategy: held-out warm shared users posing as
cold users, on whom the ridge, the blend weights and the fallbacks are chosen.

Cold users do not exist on the validation side, so they are simulated following the
split's own cold-user protocol (see the module docstring of
:mod:`recsys_core.strategies.mapping`): a source history as thin as a cold user's
(:func:`simulated_source`), support = their first k interactions by time and truth =
the later ones (:func:`cold_tasks`), scored with NDCG@10 through the evaluation's own
ranking (:func:`ndcg_at_10`). Test rows are never read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from recsys_core.data.scenario import Scenario
from recsys_core.data.schema import ITEM, TIME, USER
from recsys_core.models import full_ranking_metrics
from recsys_core.models.ials import IALS
from recsys_core.strategies.base import Context
from recsys_core.strategies.mapping_scorer import TargetSide, Weights, blend_grid, zscore_rows


class UserMap(Protocol):
    """A fitted map from source to target user vectors (LinearMap, MLPMap)."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        """x: (n, f_s) -> float64 (n, f_t)."""
        ...


MIN_VALIDATION_USERS = 5
"""With fewer held-out users with validation items than this, choices fall back to
defaults (ridge by held-out squared error; mapped vector alone) instead of noise."""

MAX_VALIDATION_USERS = 2000
"""Held-out users scored per choice (a seeded sample beyond this): bounds the memory of
the (users, items) score matrices of the blend search."""


class FixedScores:
    """Scorer over precomputed rows (row j belongs to user j): validation helper."""

    def __init__(self, scores: torch.Tensor) -> None:
        self.scores = scores

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        return self.scores[torch.from_numpy(np.asarray(users))].clone()


def ndcg_at_10(scores: torch.Tensor, seen: sp.csr_matrix, truth: sp.csr_matrix) -> float:
    """NDCG@10 of score rows (n, items) with ``seen`` masked and ``truth`` as targets."""
    users = np.arange(scores.shape[0], dtype=np.int64)
    return full_ranking_metrics(FixedScores(scores), users, seen, seen, truth, k=10)["ndcg@10"]


@dataclass(frozen=True)
class HoldoutWorld:
    """The validation world a map is chosen in (see ``MappingStrategy.fit``): held-out
    warm shared users, some posing as cold users.

    Attributes:
        x_fit, y_fit: (n_fit, f_s), (n_fit, f_t) source and simulated-target vectors of
            the warm shared users the candidate maps are fitted on.
        x_hold, y_hold: (n_hold, f_s), (n_hold, f_t) held-out users' thin source vectors
            and their target fold-ins (the squared error of a map).
        x_task: (n_tasks, f_s) source vectors of ``tasks.users``.
        tasks: the held-out users posing as cold users.
        enough: whether there are enough of them to judge by NDCG.
        v_sim: item factors (n_target_items, f_t) of the simulated target iALS.
    """

    x_fit: np.ndarray
    y_fit: np.ndarray
    x_hold: np.ndarray
    y_hold: np.ndarray
    x_task: np.ndarray
    tasks: ColdTasks
    enough: bool
    v_sim: torch.Tensor

    def ndcg(self, mp: UserMap) -> float:
        """NDCG@10 of the simulated cold users scored by ``mp`` alone (k = 0)."""
        vecs = torch.as_tensor(
            mp.predict(self.x_task), dtype=self.v_sim.dtype, device=self.v_sim.device
        )
        scores = (vecs @ self.v_sim.T).float()
        return ndcg_at_10(scores, self.tasks.support[0], self.tasks.truth)


def cold_like_source(
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


def simulated_source(
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
    thin = cold_like_source(scn, source, users)
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
class ColdTasks:
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


def cold_tasks(scn: Scenario, users: np.ndarray, ks: list[int], limit: int, seed: int) -> ColdTasks:
    """Support and truth of :class:`ColdTasks` for ``users`` (test rows are never read).

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

    return ColdTasks(chosen, {k: csr(pos < k) for k in ks}, csr(pos >= kmax))


def choose_blends(
    ctx: Context,
    blend: str,
    sim: IALS,
    sim_train: sp.csr_matrix,
    map_sim: UserMap,
    x_task: np.ndarray,
    tasks: ColdTasks,
    enough: bool,
    ks: list[int],
) -> tuple[dict[int, Weights], dict[int, TargetSide], list[dict]]:
    """Per support size k, on the simulated cold users: the blend weights of cold
    shared users and the target-only score of cold users without source.

    Scores and metric follow the cold-user protocol: support folded in and masked,
    truth = the interactions after the first max(ks). With ``blend="none"`` the map
    alone scores cold shared users (the table still reports every candidate).

    Returns:
        k -> weights, k -> fallback, and one table row per k for the run's info.
    """
    mapped_only: dict[int, Weights] = dict.fromkeys(ks, (1.0, 0.0, 0.0))
    default_fallback: dict[int, TargetSide] = {k: "fold-in" if k else "popularity" for k in ks}
    if not enough:
        return mapped_only, default_fallback, []
    vecs = torch.as_tensor(map_sim.predict(x_task), dtype=sim.V.dtype, device=sim.V.device)
    z_map = zscore_rows((vecs @ sim.V.T).float())  # (n_tasks, n_items)
    pop = torch.from_numpy(np.diff(sim_train.tocsc().indptr).astype(np.float32))
    z_pop = zscore_rows(pop.unsqueeze(0).to(z_map.device)).expand_as(z_map)
    weights: dict[int, Weights] = {}
    fallback: dict[int, TargetSide] = {}
    table: list[dict] = []
    for k in ks:
        ctx.callbacks.check_cancel()
        support = tasks.support[k]
        if k > 0:
            z_fold = zscore_rows((sim.fold_in(support) @ sim.V.T).float()).to(z_map.device)
        else:
            z_fold = torch.zeros_like(z_map)
        scores = {
            w: ndcg_at_10(w[0] * z_map + w[1] * z_fold + w[2] * z_pop, support, tasks.truth)
            for w in blend_grid(with_support=k > 0)
        }
        pop_only = scores[(0.0, 0.0, 1.0)]
        fold_only = scores[(0.0, 1.0, 0.0)] if k > 0 else float("-inf")
        fallback[k] = "fold-in" if fold_only > pop_only else "popularity"
        best = max(scores, key=lambda w: scores[w])  # first max: ties go to the map
        weights[k] = best if blend == "validation" else (1.0, 0.0, 0.0)
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
