"""Cold-item metrics the field reports, beside the full-catalogue ``cold_items`` segment.

In a full-catalogue ranking a new item shows up only if the model puts its score on the
trained items' scale, which mixes two questions: does the model know *which* new item a
user will like, and how much exposure do new items get. These metrics answer the first
one alone, ranking each user's candidates among the cold items only:

* **cold-item AUC** (the LightFM paper's setting, Kula 2015): for a warm user with
  held-out cold test items P, among the other cold items N,
  ``AUC_u = (#{(p, n): s_p > s_n} + 0.5 #{(p, n): s_p = s_n}) / (|P| |N|)``, averaged
  over users (users whose cold test items are all the cold items have no N and are
  skipped);
* **cold-catalogue Recall@K / NDCG@K** (and the other list metrics): the same users'
  top-K lists over the cold items only, scored with :func:`ranking_metrics`, ties broken
  by ascending item index as everywhere else.

The candidate set is every item flagged ``cold_item`` in the test rows. History = the
user's train + valid items, as for ``cold_items``. Reported as the segment
``cold_catalogue``; AUC is the metric ``auc`` with k = 0 (it has no cut-off).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from recsys_core.evaluation.metrics import METRICS, metric_column, ranking_metrics
from recsys_core.evaluation.ranking import topk_from_scores

SEGMENT = "cold_catalogue"


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of a 1-d array, ties sharing their average rank: scipy's
    ``rankdata(x, method="average")``, NaN anywhere giving all NaN as its default does,
    without importing scipy.stats (0.4 s in every evaluating process; issue 13)."""
    x = np.asarray(x, dtype=np.float64)
    if np.isnan(x).any():
        return np.full(x.shape, np.nan)
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    first = np.r_[True, xs[1:] != xs[:-1]]  # the first of each run of equal values
    group = np.cumsum(first) - 1
    bounds = np.r_[np.flatnonzero(first), len(x)]  # each group's [start, stop)
    avg = (bounds[:-1] + bounds[1:] + 1) / 2.0  # mean of the 1-based ranks start+1..stop
    out = np.empty(len(x), dtype=np.float64)
    out[order] = avg[group]
    return out


def cold_item_auc(scores: np.ndarray, positives: np.ndarray) -> np.ndarray:
    """Per-row AUC of ``positives`` against the other columns, ties counted one half.

    Args:
        scores: float (n, m) scores of each row's m candidates.
        positives: bool (n, m), True for the row's held-out items.

    Returns:
        float64 (n,): AUC per row; NaN where a row has no positive or no negative.
    """
    scores = np.asarray(scores, dtype=np.float64)
    pos = np.asarray(positives, dtype=bool)
    rows, cols = np.nonzero(pos)
    return _auc(_rank_sums(scores, rows, cols), pos.sum(axis=1), pos.shape[1])


def _auc(rank_sum: np.ndarray, n_pos: np.ndarray, m: int) -> np.ndarray:
    """Per-row AUC from the sum of the positives' average ranks among the row's m
    candidates (Mann-Whitney); NaN without a positive or a negative."""
    n_pos = np.asarray(n_pos).astype(np.float64)
    n_neg = m - n_pos
    u = rank_sum - n_pos * (n_pos + 1) / 2  # Mann-Whitney U of positives
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = u / (n_pos * n_neg)
    auc[(n_pos == 0) | (n_neg == 0)] = np.nan
    return auc


def _rank_sums(scores: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """float64 (n,): per row of ``scores`` (n, m), the sum of the average ranks (1 =
    lowest score, ties averaged) of the positives at (rows[j], cols[j]).

    Exactly what ``rankdata(scores, "average", axis=1)`` gives summed over the positives
    (which is how it was computed), without sorting any row: a positive's average rank is
    ``#{lower} + (#{equal} + 1) / 2`` (its own score counts as equal). Rows hold a few
    positives among thousands of candidates, so comparing each positive with its row
    costs a few passes over the scores where sorting every row cost 30% of a cold-item
    evaluation (issue 13). Every term is a whole or half number, so the sums are exact
    and equal. A row holding NaN keeps rankdata's rule (NaN).
    """
    scores = np.asarray(scores, dtype=np.float64)
    n, m = scores.shape
    out = np.zeros(n, dtype=np.float64)
    if np.isnan(scores).any():
        ranks = np.array([average_ranks(row) for row in scores])
        return out + np.bincount(rows, weights=ranks[rows, cols], minlength=n)
    step = max(1, _PAIR_BLOCK // max(m, 1))
    for a in range(0, len(rows), step):
        r, c = rows[a : a + step], cols[a : a + step]
        block = scores[r]  # (p, m): each positive's row
        v = scores[r, c][:, None]
        rank = (block < v).sum(axis=1) + ((block == v).sum(axis=1) + 1) / 2
        out += np.bincount(r, weights=rank, minlength=n)
    return out


_PAIR_BLOCK = 1 << 22
"""Most (positive, candidate) comparisons held at once by :func:`_rank_sums`."""


def cold_catalogue_per_user(
    scorer,
    users: np.ndarray,
    history: sp.csr_matrix,
    truth: sp.csr_matrix,
    cold: np.ndarray,
    ks: tuple[int, ...],
    batch_size: int = 1024,
) -> pd.DataFrame:
    """Per-user cold-catalogue metrics and AUC.

    Args:
        scorer: the evaluation's Scorer.
        users: int64 (n,) warm users with cold test items.
        history: csr (n, n_items) train + valid items of each user (what the scorer sees).
        truth: csr (n, n_items) each user's cold test items.
        cold: int64 (m,) sorted item indices of the cold items (the candidates).
        ks: cut-offs.

    Returns:
        DataFrame [user, recall@K..., ndcg@K..., ..., auc], one row per user with truth.
    """
    k_max = max(ks)
    m = len(cold)
    lists = np.full((len(users), k_max), -1, dtype=np.int64)
    aucs = np.full(len(users), np.nan)
    cold_t = torch.from_numpy(np.asarray(cold, dtype=np.int64))
    # each user's cold test items as (row, candidate) pairs: a sparse (n, m), not dense
    t_cold = sp.csr_matrix(truth[:, cold] > 0)
    t_cold.sum_duplicates()
    shared = shared_ranks = None
    if getattr(scorer, "user_independent", False) and len(users):
        # one row for everyone (popularity; recsys_core/evaluation/ranking.py): its
        # candidates are ranked once, and each user's AUC sums its positives' ranks
        row = torch.as_tensor(scorer.score(users[:1], history[:1]))
        shared = row.float().cpu().index_select(1, cold_t).numpy()  # (1, m)
        shared_ranks = average_ranks(shared[0].astype(np.float64))
        if np.isnan(shared_ranks).any():
            shared = shared_ranks = None  # the general path keeps NaN's rules
    with torch.no_grad():
        for start in range(0, len(users), batch_size):
            stop = min(start + batch_size, len(users))
            pos = t_cold[start:stop]
            n_pos = np.diff(pos.indptr)
            rows = np.repeat(np.arange(stop - start), n_pos)
            if shared is not None:
                s = np.broadcast_to(shared, (stop - start, m))
                sums = np.bincount(rows, weights=shared_ranks[pos.indices], minlength=stop - start)
            else:
                s = torch.as_tensor(scorer.score(users[start:stop], history[start:stop]))
                s = s.float().cpu().index_select(1, cold_t).numpy()  # (B, m)
                sums = _rank_sums(s, rows, pos.indices)
            aucs[start:stop] = _auc(sums, n_pos, m)
            # descending score, ties by ascending item index (cold is sorted): the
            # ranking's exact top-k, not a full argsort of every row
            order = topk_from_scores(torch.from_numpy(np.ascontiguousarray(s)), None, k_max)
            lists[start:stop, : order.shape[1]] = np.asarray(cold)[order.numpy()]
    pu = ranking_metrics(lists, truth, ks, users=users)
    auc = pd.Series(aucs, index=users)
    pu["auc"] = auc.loc[pu["user"].to_numpy()].to_numpy()
    return pu


def summary_rows(pu: pd.DataFrame, ks: tuple[int, ...], n_boot: int, alpha: float, seed: int):
    """Summary rows (segment, metric, k, value, ci_low, ci_high, n_users) of the segment."""
    from recsys_core.evaluation.bootstrap import bootstrap_ci_columns

    cols = [metric_column(m, k) for m in METRICS for k in ks]
    rows = []
    n = len(pu)
    values = pu[cols].to_numpy(dtype=np.float64)
    auc = pu["auc"].dropna().to_numpy(dtype=np.float64)[:, None]
    if n_boot > 0 and n:
        mean, low, high = bootstrap_ci_columns(values, n_boot, alpha, seed)
    else:
        mean = values.mean(axis=0) if n else np.full(len(cols), np.nan)
        low = high = np.full(len(cols), np.nan)
    j = 0
    for m in METRICS:
        for k in ks:
            rows.append((SEGMENT, m, k, float(mean[j]), float(low[j]), float(high[j]), n))
            j += 1
    if len(auc):
        if n_boot > 0:
            am, al, ah = bootstrap_ci_columns(auc, n_boot, alpha, seed)
            rows.append((SEGMENT, "auc", 0, float(am[0]), float(al[0]), float(ah[0]), len(auc)))
        else:
            rows.append((SEGMENT, "auc", 0, float(auc.mean()), np.nan, np.nan, len(auc)))
    return rows
