"""The popularity prior for short histories, blended in per history length.

On MovieLens, popularity beats every personalised model for users who revealed one to
five items (docs/design.md, "Evaluation"): a vector built from one or two items is noise that
the model trusts fully, so "knowing one thing about a user" made the two-tower worse
than knowing nothing (NDCG@10 0.44 at k = 0, 0.23 at k = 1 on the demo; issue 10).
Neighbourhood baselines have long shrunk short profiles toward the global prior
(Koren, KDD 2008, the baseline predictors; Sarwar et al., WWW 2001). Here every model
that scores a user from a short history gets

    score'(u, i) = (1 - w_k) * z(score(u, i)) + w_k * z(log(1 + pop(i)))

with z standardising each user's row over the catalogue and k the number of items the
user revealed (the weight of the largest calibrated k <= |history|; histories longer
than the largest calibrated k are left untouched). Each ``w_k`` is chosen on
*validation users treated as cold*: warm users who have validation rows are scored
from their first k training interactions alone, as a stranger (no id vector, no source
history: :func:`as_cold`), with all their training items masked and their validation
rows as the truth. The test set is never read. Among the weights, the one nearest the
prior within one standard error of the best is kept (:func:`one_se_choice`): popularity
unless the model's edge is measurable. ``w = 1`` is popularity itself, so each k's
choice is at least as good as popularity on that validation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from recsys_core.data.split_types import Split
from recsys_core.evaluation.evaluate import rows_csr

PRIOR_GRID: tuple[float, ...] = (
    *(round(0.1 * i, 1) for i in range(10)),
    0.95, 0.98, 0.99, 0.995, 1.0,
)  # fmt: skip
"""Blend weights tried per k (0 = the model alone, 1 = popularity alone). Fine near 1:
a model's z-scores are heavy-tailed (a few items far above the rest), so even a weight
of 0.1 lets them override popularity; on the demo EASE at k = 5 is best at 0.99."""


def as_cold(scorer: Any) -> Any:
    """``scorer`` scoring every user as one it never saw (from the history alone).

    Scorers that know users by id (the two-tower, iALS, fusion, the blend itself) say
    how through ``as_cold()``; the others (popularity, EASE, item-kNN, text zero-shot)
    already score from the history alone and are returned unchanged.
    """
    fn = getattr(scorer, "as_cold", None)
    return fn() if callable(fn) else scorer


def _z(x: torch.Tensor) -> torch.Tensor:
    """Row-wise standardisation; a constant row (no information) becomes all zeros."""
    x = x.float()
    return (x - x.mean(1, keepdim=True)) / x.std(1, keepdim=True).nan_to_num(0.0).clamp(min=1e-6)


def popularity_z(counts: np.ndarray) -> torch.Tensor:
    """float32 (1, n_items): z-scored log(1 + training count) of each item."""
    return _z(torch.from_numpy(np.log1p(np.asarray(counts, dtype=np.float32)))[None, :])


class PriorBlendScorer:
    """A scorer with the popularity prior blended in by history length.

    Args:
        base: the model's scorer.
        counts: (n_items,) target training interaction counts.
        weights: history length k -> weight w_k in [0, 1].
    """

    def __init__(self, base: Any, counts: np.ndarray, weights: dict[int, float]) -> None:
        self.base, self.counts = base, np.asarray(counts, dtype=np.float32)
        self.weights = {int(k): float(w) for k, w in weights.items()}
        self._pop = popularity_z(self.counts)
        ks = sorted(self.weights)
        self._ks = np.array(ks, dtype=np.int64)
        self._ws = np.array([self.weights[k] for k in ks], dtype=np.float32)

    def weight_for(self, n_known: np.ndarray) -> np.ndarray:
        """float32 (B,): w of the largest calibrated k <= n, 0 beyond the largest k."""
        n = np.asarray(n_known, dtype=np.int64)
        pos = np.searchsorted(self._ks, n, side="right") - 1
        w = np.where(pos >= 0, self._ws[pos.clip(min=0)], 0.0).astype(np.float32)
        w[n > self._ks[-1]] = 0.0
        return w

    def as_cold(self) -> PriorBlendScorer:
        return PriorBlendScorer(as_cold(self.base), self.counts, self.weights)

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        s = self.base.score(users, history)
        w = self.weight_for(np.diff(sp.csr_matrix(history).indptr))
        if not w.any():
            return s
        wt = torch.from_numpy(w).to(s.device).unsqueeze(1)
        blended = (1 - wt) * _z(s) + wt * self._pop.to(s.device)
        return torch.where(wt > 0, blended, s.float())


def _first_k(train: pd.DataFrame, users: np.ndarray, k: int, n_items: int) -> sp.csr_matrix:
    """csr (len(users), n_items): each user's first k training items in time order."""
    t = train[train["user"].isin(users)]
    if "timestamp" in t.columns:
        t = t.sort_values(["user", "timestamp"], kind="stable")
    else:
        t = t.sort_values("user", kind="stable")
    t = t.drop_duplicates(["user", "item"])
    t = t[t.groupby("user").cumcount() < k]
    pos = np.searchsorted(users, t["user"].to_numpy(np.int64))
    m = sp.csr_matrix(
        (np.ones(len(t), np.float32), (pos, t["item"].to_numpy(np.int64))),
        shape=(len(users), n_items),
    )
    m.data[:] = 1.0
    return m


def one_se_choice(values: np.ndarray) -> int:
    """Index of the candidate to keep, from per-user scores (n_candidates, n_users)
    ordered from the model (w = 0) to the prior (w = 1).

    The one-standard-error rule (Breiman et al. 1984; Hastie, Tibshirani and Friedman,
    "Elements of Statistical Learning", 7.10): the candidate nearest the prior whose mean
    is within one standard error of the best one, the error being that of the paired
    per-user difference to the best. Validation for short histories is small and noisy
    (NDCG@10 about 0.05 on the demo, 849 users): without the rule a model could be
    preferred to popularity by chance at one k and lose 0.09 on test there (adapt at
    k = 5 did); with it, the model is kept only where its edge is measurable.
    """
    means = values.mean(axis=1)
    best = int(np.argmax(means))
    n = values.shape[1]
    if n < 2:
        return best
    se = (values - values[best]).std(axis=1, ddof=1) / np.sqrt(n)
    ok = np.flatnonzero(means >= means[best] - se)
    return int(ok.max())


def choose_prior_weights(
    scorer: Any,
    split: Split,
    counts: np.ndarray,
    ks: tuple[int, ...] | list[int],
    grid: tuple[float, ...] = PRIOR_GRID,
    max_users: int = 2000,
    seed: int = 0,
    batch_size: int = 1024,
) -> tuple[dict[int, float], list[dict]]:
    """Choose w_k per k on validation users treated as cold (module docstring).

    Returns:
        (weights k -> w, table): the table has one row per (k, w) with the validation
        NDCG@10 and the number of users. The weight kept is the one-standard-error
        choice of :func:`one_se_choice`.
    """
    from recsys_core.evaluation.metrics import ranking_metrics
    from recsys_core.evaluation.ranking import topk_from_scores

    n_items = split.n_items
    valid = split.valid
    users = np.unique(valid["user"].to_numpy(np.int64))
    if max_users and len(users) > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
    weights: dict[int, float] = {}
    table: list[dict] = []
    if len(users) == 0:
        return {int(k): 0.0 for k in ks}, table
    known = rows_csr([split.train], users, n_items)
    truth = rows_csr([valid], users, n_items)
    n_train = np.diff(known.indptr)
    pop = popularity_z(counts)
    cold = as_cold(scorer)
    for k in sorted({int(k) for k in ks}):
        sel = np.flatnonzero(n_train >= k)
        if len(sel) == 0:
            weights[k] = 0.0
            continue
        hist = _first_k(split.train, users[sel], k, n_items)
        per_user: list[list[np.ndarray]] = [[] for _ in grid]  # NDCG@10 per user, per w
        for start in range(0, len(sel), batch_size):
            rows = sel[start : start + batch_size]
            with torch.no_grad():
                base = _z(cold.score(users[rows], hist[start : start + batch_size]).cpu())
            ex = known[rows].tocoo()
            masked = torch.zeros(base.shape, dtype=torch.bool)
            masked[torch.from_numpy(ex.row).long(), torch.from_numpy(ex.col).long()] = True
            for j, w in enumerate(grid):
                blended = (1 - w) * base + w * pop
                lists = topk_from_scores(blended, masked, 10).numpy()
                pu = ranking_metrics(lists, truth[rows], (10,), users=users[rows])
                per_user[j].append(pu["ndcg@10"].to_numpy(np.float64))
        v = np.stack([np.concatenate(x) for x in per_user])  # (len(grid), n_users)
        j = one_se_choice(v)
        weights[k] = float(grid[j])
        table += [
            {"k": k, "w": float(w), "val_ndcg@10": float(m), "users": v.shape[1]}
            for w, m in zip(grid, v.mean(axis=1))
        ]
    return weights, table
