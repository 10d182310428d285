"""Top-K accuracy metrics per user, and beyond-accuracy measures, from ranked lists.

All metrics use binary relevance: an item is relevant to a user iff it is in the user's
ground truth (test items). With ``hits@K`` the number of relevant items among the first
K recommended, ``|T|`` the number of ground-truth items and ``rank`` 1-based:

* ``recall@K    = hits@K / |T|`` (RecBole's convention: the denominator is the number
  of test items, *not* ``min(|T|, K)``, so a user with 30 test items can reach at most
  20/30 at K = 20);
* ``precision@K = hits@K / K`` (K, not the length of a shorter list);
* ``hit@K       = 1 if hits@K > 0 else 0``;
* ``mrr@K       = 1 / rank of the first relevant item if it is within K, else 0``;
* ``ndcg@K      = DCG@K / IDCG@K`` with ``DCG@K = sum over relevant ranks r <= K of
  1 / log2(r + 1)`` and IDCG@K the DCG of an ideal list, which has its
  ``min(|T|, K)`` relevant items at ranks 1, 2, ...

Users with no ground-truth items are skipped (they get no row), not counted as zeros.
Padding ``-1`` in a list is "no recommendation": it never hits, but K stays K.
Lists come from :mod:`recsys_core.evaluation.ranking`: descending score, ties broken by
ascending item index, known items masked before the cut at K.

See docs/metrics.md for the same definitions with a worked example.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

METRICS: tuple[str, ...] = ("recall", "ndcg", "hit", "mrr", "precision")
"""Per-user accuracy metrics, in the column order of :func:`ranking_metrics`."""

Truth = sp.spmatrix | Sequence[np.ndarray] | Sequence[Sequence[int]]


def metric_column(metric: str, k: int) -> str:
    """Column name used in per-user frames: ``"ndcg@10"``; ``"auc"`` has no cut-off."""
    return "auc" if metric == "auc" else f"{metric}@{k}"


def truth_to_csr(truth: Truth, n_rows: int, n_items: int | None = None) -> sp.csr_matrix:
    """Ground truth as a binary csr (n_rows, n_items) with sorted, unique indices.

    Args:
        truth: csr/sparse matrix (n_rows, n_items), or a sequence of n_rows arrays of
            item indices (duplicates are merged).
        n_rows: number of users (rows of the top-K matrix).
        n_items: number of columns; for a sequence, default is (largest index + 1).
    """
    if sp.issparse(truth):
        m = sp.csr_matrix(truth, copy=True)
        if m.shape[0] != n_rows:
            raise ValueError(
                f"truth has {m.shape[0]} rows but the top-K lists have {n_rows}: one row per user"
            )
        m.sum_duplicates()
        m.eliminate_zeros()
        m.data = np.ones_like(m.data, dtype=np.float32)
        return m.astype(np.float32)
    rows = list(truth)
    if len(rows) != n_rows:
        raise ValueError(
            f"truth has {len(rows)} entries but the top-K lists have {n_rows}: one per user"
        )
    arrays = [np.asarray(r, dtype=np.int64).ravel() for r in rows]
    lengths = np.fromiter((len(a) for a in arrays), dtype=np.int64, count=len(arrays))
    indices = np.concatenate(arrays) if arrays else np.zeros(0, np.int64)
    if len(indices) and indices.min() < 0:
        raise ValueError("truth holds negative item indices; item indices start at 0")
    if n_items is None:
        n_items = int(indices.max()) + 1 if len(indices) else 0
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    m = sp.csr_matrix((np.ones(len(indices), np.float32), indices, indptr), shape=(n_rows, n_items))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def _check_topk(topk: np.ndarray) -> np.ndarray:
    topk = np.asarray(topk)
    if topk.ndim != 2:
        raise ValueError(f"top-K lists must be a 2-D (users, K) array, got shape {topk.shape}")
    if not np.issubdtype(topk.dtype, np.integer):
        raise ValueError(f"top-K lists must hold integer item indices, got dtype {topk.dtype}")
    topk = topk.astype(np.int64, copy=False)
    if topk.size and topk.min() < -1:
        raise ValueError("top-K lists may hold item indices >= 0 and -1 (padding) only")
    if topk.shape[1] > 1:
        s = np.sort(topk, axis=1)
        dup = (s[:, 1:] == s[:, :-1]) & (s[:, 1:] >= 0)
        if dup.any():
            row = int(np.flatnonzero(dup.any(axis=1))[0])
            raise ValueError(
                f"top-K list {row} recommends the same item twice; each list must hold "
                "distinct items (a repeated item would be counted as two hits)"
            )
    return topk


def hit_matrix(topk: np.ndarray, truth: sp.csr_matrix) -> np.ndarray:
    """bool (n, Kmax): ``topk[i, j]`` is in user i's ground truth (padding -1 never is).

    ``truth`` must be a canonical csr (sorted unique indices), as
    :func:`truth_to_csr` returns.
    """
    n, kmax = topk.shape
    n_items = truth.shape[1]
    if topk.size and topk.max() >= n_items:
        raise ValueError(
            f"top-K lists hold item index {int(topk.max())} but the catalogue has {n_items} items"
        )
    # Membership by merged keys row * n_items + item: one sorted search for all users
    # instead of a Python loop over them.
    row_of_truth = np.repeat(np.arange(n, dtype=np.int64), np.diff(truth.indptr))
    truth_keys = row_of_truth * n_items + truth.indices.astype(np.int64)
    keys = np.arange(n, dtype=np.int64)[:, None] * n_items + topk
    if len(truth_keys) == 0:
        return np.zeros((n, kmax), dtype=bool)
    pos = np.searchsorted(truth_keys, keys).clip(max=len(truth_keys) - 1)
    return (truth_keys[pos] == keys) & (topk >= 0)


def ranking_metrics(
    topk: np.ndarray,
    truth: Truth,
    ks: Sequence[int] = (5, 10, 20),
    users: np.ndarray | None = None,
) -> pd.DataFrame:
    """Per-user recall, ndcg, hit, mrr and precision at each K.

    Args:
        topk: int (n, Kmax) item indices in rank order, -1 for padding; Kmax >= max(ks).
        truth: ground truth, csr (n, n_items) or a sequence of n item-index arrays.
        ks: cut-offs.
        users: optional (n,) user ids to put in the ``user`` column (default 0..n-1).

    Returns:
        DataFrame with one row per user that has at least one ground-truth item (others
        are skipped), columns ``user`` then ``<metric>@<k>`` for metric in
        :data:`METRICS` (outer) and k in ks (inner), all float64. See the module
        docstring for the definitions.
    """
    topk = _check_topk(topk)
    n, kmax = topk.shape
    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be positive integers, got {ks}")
    if max(ks) > kmax:
        raise ValueError(
            f"the lists hold {kmax} items per user but metrics at K={max(ks)} were asked: "
            f"pass ks up to {kmax} or provide longer lists"
        )
    if users is None:
        users = np.arange(n, dtype=np.int64)
    users = np.asarray(users)
    if users.shape != (n,):
        raise ValueError(f"users must have one entry per list ({n}), got shape {users.shape}")
    n_items = None
    if not sp.issparse(truth):
        n_items = max(int(topk.max()) + 1 if topk.size else 0, 0)
        longest = [int(np.max(r)) + 1 for r in truth if len(r)]
        n_items = max([n_items, *longest])
    truth_m = truth_to_csr(truth, n, n_items)
    n_rel = np.diff(truth_m.indptr).astype(np.int64)
    keep = n_rel > 0
    topk, truth_m, n_rel, users = topk[keep], truth_m[keep], n_rel[keep], users[keep]

    hits = hit_matrix(topk, truth_m)
    cum_hits = np.cumsum(hits, axis=1, dtype=np.float64)
    # DCG discount 1 / log2(rank + 1) for ranks 1..Kmax
    disc = 1.0 / np.log2(np.arange(2, kmax + 2, dtype=np.float64))
    cum_dcg = np.cumsum(hits * disc, axis=1)
    cum_idcg = np.cumsum(disc)
    any_hit = hits.any(axis=1)
    first_rank = np.where(any_hit, hits.argmax(axis=1) + 1, np.iinfo(np.int64).max)

    out: dict[str, np.ndarray] = {"user": users}
    cols: dict[tuple[str, int], np.ndarray] = {}
    for k in ks:
        h = cum_hits[:, k - 1]
        cols["recall", k] = h / n_rel
        cols["precision", k] = h / k
        cols["hit", k] = (h > 0).astype(np.float64)
        cols["mrr", k] = np.where(first_rank <= k, 1.0 / np.minimum(first_rank, kmax), 0.0)
        cols["ndcg", k] = cum_dcg[:, k - 1] / cum_idcg[np.minimum(n_rel, k) - 1]
    for m in METRICS:
        for k in ks:
            out[metric_column(m, k)] = cols[m, k]
    return pd.DataFrame(out)


def coverage(topk: np.ndarray, n_items: int, k: int) -> float:
    """Catalogue coverage: distinct items in all users' top-k lists / n_items.

    Args:
        topk: int (n, Kmax) lists, -1 padding ignored.
        n_items: catalogue size (the denominator).
        k: cut-off (first k columns).

    Returns:
        float in [0, 1]; NaN when n_items is 0.
    """
    topk = np.asarray(topk)
    if n_items <= 0:
        return float("nan")
    items = topk[:, :k]
    return float(len(np.unique(items[items >= 0])) / n_items)


def average_popularity(topk: np.ndarray, item_pop: np.ndarray, k: int) -> float:
    """Average recommended popularity (ARP): mean over users of the mean popularity of
    their top-k items.

    Args:
        topk: int (n, Kmax) lists, -1 padding ignored (a user's mean is over the items
            actually recommended; users with an empty list are skipped).
        item_pop: (n_items,) popularity of each item, usually its number of training
            interactions.
        k: cut-off (first k columns).

    Returns:
        float; NaN when no user has any recommended item.
    """
    topk = np.asarray(topk)[:, :k]
    item_pop = np.asarray(item_pop, dtype=np.float64)
    valid = topk >= 0
    pop = np.where(valid, item_pop[np.where(valid, topk, 0)], 0.0)
    n_valid = valid.sum(axis=1)
    has = n_valid > 0
    if not has.any():
        return float("nan")
    return float(np.mean(pop[has].sum(axis=1) / n_valid[has]))
