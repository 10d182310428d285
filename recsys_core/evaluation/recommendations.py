"""Ready-made recommendation lists (user, item, rank) scored like a model: they become the
top-K rankings :func:`~recsys_core.evaluation.evaluate.evaluate_topk` takes (re-exported
from :mod:`recsys_core.evaluation.evaluate`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys_core.data.split_types import Split
from recsys_core.evaluation.evaluate import WARM_RANKING, EvalConfig, EvalResult, evaluate_topk


def recommendations_to_topk(recs: pd.DataFrame, k_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Long-format recommendations -> (users, items) top-K arrays.

    Args:
        recs: DataFrame with columns ``user``, ``item`` (int indices into the split's
            maps; decode original ids with ``IdMap.encode`` first) and ``rank`` (1 = best;
            only the order matters). One row per recommended (user, item).
        k_max: list length kept per user (longer lists are cut, shorter ones padded -1).

    Returns:
        (users int64 (n,), items int64 (n, k_max)), users sorted ascending.
    """
    missing = {"user", "item", "rank"} - set(recs.columns)
    if missing:
        raise ValueError(
            f"recommendations need columns user, item, rank; missing {sorted(missing)}"
        )
    if k_max < 1:
        raise ValueError(f"k_max must be >= 1, got {k_max}")
    r = recs[["user", "item", "rank"]]
    if r.isna().any().any():
        raise ValueError("recommendations contain empty user, item or rank values")
    if r.duplicated(["user", "item"]).any():
        raise ValueError("recommendations list the same (user, item) twice; keep one rank per pair")
    if (r["item"] < 0).any() or (r["user"] < 0).any():
        raise ValueError("recommendations hold negative (unknown) user or item indices")
    r = r.sort_values(["user", "rank", "item"], kind="stable")
    u = r["user"].to_numpy(dtype=np.int64)
    it = r["item"].to_numpy(dtype=np.int64)
    users, start, counts = np.unique(u, return_index=True, return_counts=True)
    pos = np.arange(len(u)) - np.repeat(start, counts)
    keep = pos < k_max
    items = np.full((len(users), k_max), -1, dtype=np.int64)
    items[np.repeat(np.arange(len(users)), counts)[keep], pos[keep]] = it[keep]
    return users, items


def evaluate_recommendations(
    recs: pd.DataFrame,
    split: Split,
    config: EvalConfig | None = None,
    cold_k: int | None = None,
) -> EvalResult:
    """Score an external recommendation list (user, item, rank) like a model.

    The list is used as the warm ranking and as the cold ranking at support size
    ``cold_k`` (default: the largest K in the split; an external system sees one history
    per user). Users without a list count with zeros.
    """
    config = config or EvalConfig()
    if cold_k is not None and cold_k not in split.support:
        raise ValueError(f"cold_k must be one of the split's support sizes {sorted(split.support)}")
    ranked = recommendations_to_topk(recs, config.k_max)
    if ranked[1].size and ranked[1].max() >= split.n_items:
        raise ValueError(
            f"recommendations hold item index {int(ranked[1].max())} but the catalogue has "
            f"{split.n_items} items"
        )
    rankings = {WARM_RANKING: ranked}
    if split.support:
        k = max(split.support) if cold_k is None else cold_k
        rankings[f"cold_k{k}"] = ranked
    return evaluate_topk(rankings, split, config)
